//! API keys: HTTP Basic `key:secret`, checked against a SHA-256 of the
//! secret. A request learns its organization from its key, and may touch only
//! that organization: another organization's path answers 404, exactly as if
//! it did not exist.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::{ApiError, AppState};

/// The caller, as proven by its API key.
#[derive(Debug, Clone)]
pub struct Principal {
    pub key_id: String,
    pub org_id: String,
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
}

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
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
        let given = hash_secret(secret);
        // Compare in constant time.
        let same = given.len() == rec.secret_hash.len()
            && given
                .bytes()
                .zip(rec.secret_hash.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !same {
            return Err(ApiError::unauthorized());
        }
        Ok(Principal {
            key_id: rec.id,
            org_id: rec.org_id,
        })
    }
}
