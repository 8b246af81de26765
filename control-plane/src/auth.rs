//! Who is calling: HTTP Basic `key:secret` with an API key, or an OAuth
//! bearer token ([`crate::oauth`]). A key's secret
//! is kept only as an Argon2id hash (keys made before that, as SHA-256);
//! checking one costs tens of milliseconds, so a secret once checked is
//! remembered in memory (as a SHA-256, beside the stored hash it matched)
//! until its key changes. A request learns its organization, its principal
//! (the key's owner: a user `u-...` or a service account `sa-...`) and that
//! principal's role bindings ([`crate::authz::Access`]); another
//! organization's path answers 404, exactly as if it did not exist.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::authz::Access;
use crate::{ApiError, AppState};

/// The caller, as proven by its API key.
#[derive(Debug, Clone)]
pub struct Principal {
    pub key_id: String,
    pub org_id: String,
    /// The key's owner: `u-...` or `sa-...`.
    pub principal_id: String,
    /// What the owner's role bindings allow, within the key's scope.
    pub access: Access,
    /// Who a bearer token names (its pool's identity claim, such as
    /// `sub`), for the audit log; `None` for an API key.
    pub subject: Option<String>,
}

impl Principal {
    /// The 404 for a path naming another organization.
    pub fn check_org(&self, org: &str) -> Result<(), ApiError> {
        if self.org_id == org {
            Ok(())
        } else {
            Err(ApiError::not_found(&format!("organization '{org}'")))
        }
    }

    /// `User:<id>`, as role bindings name principals.
    pub fn user(&self) -> String {
        format!("User:{}", self.principal_id)
    }

    /// Who made a call, for the audit log: the principal, and for a token
    /// the identity it names.
    pub fn audit_name(&self) -> String {
        match &self.subject {
            Some(s) => format!("User:{} ({s})", self.principal_id),
            None => self.user(),
        }
    }
}

/// The SHA-256 of a text, in hex: for comparing two secrets in constant
/// time (not for storing one).
pub fn digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The stored form of a new secret: an Argon2id PHC string.
pub fn hash_secret(secret: &str) -> String {
    Argon2::default()
        .hash_password(secret.as_bytes(), &SaltString::generate(&mut OsRng))
        .map(|h| h.to_string())
        .expect("Argon2 hashes any secret")
}

/// Whether `secret` is the one `stored` was made from (Argon2id, or the
/// SHA-256 hex of keys made before it).
pub fn secret_matches(secret: &str, stored: &str) -> bool {
    if stored.starts_with("$argon2") {
        return PasswordHash::new(stored)
            .map(|h| {
                Argon2::default()
                    .verify_password(secret.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false);
    }
    let given = digest(secret);
    // Compare in constant time.
    given.len() == stored.len()
        && given
            .bytes()
            .zip(stored.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// A new random key id and secret.
pub fn new_key() -> (String, String) {
    let id = uuid::Uuid::new_v4().simple().to_string()[..16].to_uppercase();
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    (id, secret)
}

/// Secrets checked already: key id → (the stored hash it matched, the
/// SHA-256 of the secret). A changed or deleted key misses.
type Checked = HashMap<String, (String, [u8; 32])>;

fn checked() -> &'static Mutex<Checked> {
    static CHECKED: OnceLock<Mutex<Checked>> = OnceLock::new();
    CHECKED.get_or_init(Default::default)
}

/// At most this many remembered secrets (then the memory starts over).
const MAX_CHECKED: usize = 10_000;

fn verified(key: &str, secret: &str, stored: &str) -> bool {
    let fast: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
    if let Some((hash, remembered)) = checked().lock().expect("not poisoned").get(key) {
        if hash == stored {
            return remembered
                .iter()
                .zip(fast.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        }
    }
    if !secret_matches(secret, stored) {
        return false;
    }
    let mut c = checked().lock().expect("not poisoned");
    if c.len() >= MAX_CHECKED {
        c.clear();
    }
    c.insert(key.to_string(), (stored.to_string(), fast));
    true
}

/// Forgets a deleted key's checked secret.
pub fn forget_key(key: &str) {
    checked().lock().expect("not poisoned").remove(key);
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(ApiError::unauthorized)?;
        if let Some(token) = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
        {
            let hint = [
                crate::oauth::POOL_HEADER,
                crate::oauth::CONFLUENT_POOL_HEADER,
            ]
            .iter()
            .find_map(|h| parts.headers.get(*h).and_then(|v| v.to_str().ok()));
            let principal = crate::oauth::principal(state, token, hint).await?;
            return admit(parts, state, principal);
        }
        let encoded = header
            .strip_prefix("Basic ")
            .ok_or_else(ApiError::unauthorized)?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| ApiError::unauthorized())?;
        let decoded = String::from_utf8(decoded).map_err(|_| ApiError::unauthorized())?;
        let (key, secret) = decoded.split_once(':').ok_or_else(ApiError::unauthorized)?;
        let rec = state
            .store
            .find_api_key(key)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        // The slow hash runs off the async threads.
        let (k, s, stored) = (key.to_string(), secret.to_string(), rec.secret_hash.clone());
        let ok = tokio::task::spawn_blocking(move || verified(&k, &s, &stored))
            .await
            .unwrap_or(false);
        if !ok {
            return Err(ApiError::unauthorized());
        }
        let bindings = state
            .store
            .list_role_bindings(&rec.org_id, Some(&format!("User:{}", rec.owner_id)))
            .await?;
        let principal = Principal {
            access: Access::new(
                &format!("User:{}", rec.owner_id),
                &bindings,
                rec.scope.as_deref(),
            ),
            key_id: rec.id,
            org_id: rec.org_id,
            principal_id: rec.owner_id,
            subject: None,
        };
        admit(parts, state, principal)
    }
}

/// A proven caller, left for the audit record and counted against its
/// request rate.
fn admit(parts: &Parts, state: &AppState, principal: Principal) -> Result<Principal, ApiError> {
    if let Some(slot) = parts.extensions.get::<crate::audit::Caller>() {
        slot.set(&principal);
    }
    state
        .limiter
        .take(&state.config.limits, &principal.user())?;
    Ok(principal)
}
