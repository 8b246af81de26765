//! Credentials at rest: a password given to the API (an external schema
//! registry's, later a Kafka cluster's) is sealed with AES-256-GCM under
//! the server's secret key before it reaches the database, and opened only
//! when Weir connects with it. The key is a 32-byte file (`weir dev` makes
//! one in its data directory; `weir server --secret-key-file`), readable by
//! its owner only; a database copied without it holds no usable secret.
//! What this module does not do: rotate keys, or keep secrets out of
//! memory.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use crate::CatalogError;

/// Sealed values start with this, then base64 of nonce and ciphertext.
const PREFIX: &str = "sealed:v1:";
const KEY_LEN: usize = 32;

/// The server's secret key.
pub struct SecretKey(LessSafeKey);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<SecretKey, String> {
        if bytes.len() != KEY_LEN {
            return Err(format!(
                "a secret key is {KEY_LEN} bytes; this one is {}",
                bytes.len()
            ));
        }
        let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| "not an AES-256 key")?;
        Ok(SecretKey(LessSafeKey::new(key)))
    }

    /// Reads the key at `path`, or makes a new random one there (mode 0600)
    /// when there is none.
    pub fn load_or_create(path: &Path) -> Result<SecretKey, String> {
        let what = |e: std::io::Error| format!("the secret key file {}: {e}", path.display());
        match std::fs::read(path) {
            Ok(bytes) => SecretKey::from_bytes(&bytes)
                .map_err(|e| format!("the secret key file {}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(what)?;
                }
                let mut bytes = [0u8; KEY_LEN];
                SystemRandom::new()
                    .fill(&mut bytes)
                    .map_err(|_| "the system has no randomness to make a key from".to_string())?;
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut f = options.open(path).map_err(what)?;
                f.write_all(&bytes).map_err(what)?;
                f.sync_all().map_err(what)?;
                SecretKey::from_bytes(&bytes)
            }
            Err(e) => Err(what(e)),
        }
    }

    /// `plain`, sealed: a fresh random nonce each time.
    pub fn seal(&self, plain: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("the system has randomness");
        let mut data = plain.as_bytes().to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(PREFIX),
                &mut data,
            )
            .expect("sealing a short text cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        )
    }

    /// The text `seal` made.
    pub fn open(&self, sealed: &str) -> Result<String, CatalogError> {
        let bad = |why: &str| CatalogError::Corrupt(format!("a sealed credential {why}"));
        let body = sealed
            .strip_prefix(PREFIX)
            .ok_or_else(|| bad("lacks its prefix"))?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| bad("is not base64"))?;
        if raw.len() < NONCE_LEN {
            return Err(bad("is too short"));
        }
        let (nonce, data) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| bad("has a bad nonce"))?;
        let mut data = data.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(PREFIX), &mut data)
            .map_err(|_| {
                CatalogError::Corrupt(
                    "a credential was sealed with another secret key than this server's; set it again through the API, or start the server with the key it was sealed with".into(),
                )
            })?;
        String::from_utf8(plain.to_vec()).map_err(|_| bad("is not text"))
    }
}

/// Whether a stored value is sealed (values stored before sealing existed
/// are plain).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_texts_open_with_their_key_only() {
        let dir = std::env::temp_dir().join(format!("weir-secret-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // The folder is made too, as for `weir server`'s default path.
        let path = dir.join("nested").join("secret.key");
        let key = SecretKey::load_or_create(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let a = key.seal("hunter2");
        let b = key.seal("hunter2");
        assert!(is_sealed(&a) && !a.contains("hunter2"));
        assert_ne!(a, b, "each seal has its own nonce");
        // The same file gives the same key.
        let again = SecretKey::load_or_create(&path).unwrap();
        assert_eq!(again.open(&a).unwrap(), "hunter2");
        // Another key, or a changed byte, does not open it.
        let other = SecretKey::from_bytes(&[7u8; 32]).unwrap();
        assert!(other
            .open(&a)
            .unwrap_err()
            .to_string()
            .contains("another secret key"));
        let mut tampered = a.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(key.open(&tampered).is_err());
        assert!(SecretKey::from_bytes(&[0u8; 16]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
