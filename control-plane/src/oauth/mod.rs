//! OAuth/OIDC bearer tokens. A token is accepted when an identity provider
//! of some organization has its issuer, its signature verifies with a key
//! of that provider's JWKS, its audience is the provider's, it has not
//! expired and is not early (`exp`, `nbf`, 30 s of leeway), and exactly
//! one of the provider's identity pools admits its claims (or the one the
//! `Weir-Identity-Pool-Id` header names). The caller is then the pool,
//! `User:pool-...`, with the pool's role bindings.
//!
//! JWKS documents are fetched on first use and kept for a while
//! ([`crate::ServerConfig::jwks_cache_ttl`]); a token signed with a key id
//! the cached document lacks fetches it again (at most once a second per
//! provider), so keys rotate without a restart. Only asymmetric algorithms
//! are accepted: `none` and the HMAC family (whose "key" would be public)
//! are refused.

pub mod filter;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use weir_catalog::{IdentityPoolRecord, IdentityProviderRecord};

use crate::auth::Principal;
use crate::authz::Access;
use crate::{ApiError, AppState};

/// The algorithms a token may be signed with.
pub const ACCEPTED: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The header that picks one of several pools a token matches.
pub const POOL_HEADER: &str = "weir-identity-pool-id";
/// The managed service's name for it, accepted too.
pub const CONFLUENT_POOL_HEADER: &str = "confluent-identity-pool-id";

/// Longer tokens are refused before any parsing.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// A JWKS document larger than this is not read.
const MAX_JWKS_BYTES: usize = 1 << 20;
/// How long fetching a JWKS may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// An unknown key id fetches the JWKS again at most this often.
const MIN_REFETCH: Duration = Duration::from_secs(1);
/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;

#[derive(Clone)]
struct Cached {
    set: Arc<JwkSet>,
    fetched: Instant,
}

/// The providers' signing keys, by JWKS URL.
pub struct Jwks {
    http: reqwest::Client,
    cache: Mutex<HashMap<String, Cached>>,
}

impl Default for Jwks {
    fn default() -> Self {
        Jwks {
            http: reqwest::Client::builder()
                .timeout(FETCH_TIMEOUT)
                .build()
                .expect("a client without custom TLS settings builds"),
            cache: Mutex::default(),
        }
    }
}

impl Jwks {
    /// Fetches a JWKS document (not from the cache): for checking a
    /// provider's `jwks_uri` when it is set, and for refreshing.
    pub async fn fetch(&self, uri: &str) -> Result<JwkSet, String> {
        let url = reqwest::Url::parse(uri).map_err(|e| format!("'{uri}' is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("'{uri}' is not an http or https URL"));
        }
        let mut resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("{uri} did not answer: {}", weir_api::with_causes(&e)))?;
        if !resp.status().is_success() {
            return Err(format!("{uri} answered {}", resp.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("reading {uri}: {}", weir_api::with_causes(&e)))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_JWKS_BYTES {
                return Err(format!("{uri} answered more than {MAX_JWKS_BYTES} bytes"));
            }
        }
        let set: JwkSet = serde_json::from_slice(&body).map_err(|e| {
            format!("{uri} did not answer a JWKS document ({{\"keys\": [...]}}): {e}")
        })?;
        if set.keys.is_empty() {
            return Err(format!("{uri} lists no keys"));
        }
        Ok(set)
    }

    /// The provider's keys: cached while fresh and while they have `kid`.
    async fn keys(
        &self,
        uri: &str,
        ttl: Duration,
        kid: Option<&str>,
    ) -> Result<Arc<JwkSet>, String> {
        let cached = self.cache.lock().expect("not poisoned").get(uri).cloned();
        if let Some(c) = &cached {
            let age = c.fetched.elapsed();
            let has = kid.is_none_or(|k| c.set.find(k).is_some());
            if age < ttl && (has || age < MIN_REFETCH) {
                return Ok(c.set.clone());
            }
        }
        match self.fetch(uri).await {
            Ok(set) => {
                let set = Arc::new(set);
                let mut cache = self.cache.lock().expect("not poisoned");
                // Bounded: providers are few; start over rather than grow.
                if cache.len() > 10_000 {
                    cache.clear();
                }
                cache.insert(
                    uri.to_string(),
                    Cached {
                        set: set.clone(),
                        fetched: Instant::now(),
                    },
                );
                Ok(set)
            }
            // The provider is down: the keys it last published still hold
            // for another period, so an outage there is not one here.
            Err(e) => match cached {
                Some(c) if c.fetched.elapsed() < ttl * 2 => Ok(c.set),
                _ => Err(e),
            },
        }
    }
}

fn refused(why: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        format!("the bearer token was refused: {why}"),
    )
}

fn reason(e: &jsonwebtoken::errors::Error, p: &IdentityProviderRecord) -> String {
    match e.kind() {
        ErrorKind::ExpiredSignature => "it has expired (exp)".into(),
        ErrorKind::ImmatureSignature => "it is not valid yet (nbf)".into(),
        ErrorKind::InvalidAudience => format!("its audience (aud) is not '{}'", p.audience),
        ErrorKind::InvalidIssuer => format!("its issuer (iss) is not '{}'", p.issuer),
        ErrorKind::InvalidSignature => "its signature does not verify".into(),
        ErrorKind::MissingRequiredClaim(c) => format!("it has no '{c}' claim"),
        ErrorKind::InvalidAlgorithm => "its alg does not match the key's".into(),
        _ => format!("it could not be checked ({e})"),
    }
}

/// The caller a bearer token proves.
pub async fn principal(
    state: &AppState,
    token: &str,
    pool_hint: Option<&str>,
) -> Result<Principal, ApiError> {
    let token = token.trim();
    if token.len() > MAX_TOKEN_BYTES {
        return Err(refused(format!(
            "it is longer than {MAX_TOKEN_BYTES} bytes"
        )));
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| {
        refused("it is not a JWT signed with an accepted algorithm (alg none is never accepted)")
    })?;
    if !ACCEPTED.contains(&header.alg) {
        return Err(refused(format!(
            "alg {:?} is not accepted; sign with RS256/384/512, PS256/384/512, ES256/384 or EdDSA",
            header.alg
        )));
    }
    // The issuer picks the provider whose keys then check everything.
    let unverified: Value = jsonwebtoken::dangerous::insecure_decode(token)
        .map(|d| d.claims)
        .map_err(|_| refused("its claims are not JSON"))?;
    let Some(issuer) = unverified.get("iss").and_then(Value::as_str) else {
        return Err(refused("it has no 'iss' claim"));
    };
    if issuer.len() > 1024 {
        return Err(refused("its issuer is longer than 1024 bytes"));
    }
    let providers = state.store.identity_providers_by_issuer(issuer).await?;
    if providers.is_empty() {
        return Err(refused(format!(
            "no identity provider has the issuer '{issuer}'"
        )));
    }
    let ttl = state.config.jwks_cache_ttl;
    let mut why = String::new();
    for (org, provider) in &providers {
        let keys = match state
            .tokens
            .keys(&provider.jwks_uri, ttl, header.kid.as_deref())
            .await
        {
            Ok(k) => k,
            Err(e) => {
                why = format!("the identity provider's keys could not be read: {e}");
                continue;
            }
        };
        let jwk = match header.kid.as_deref() {
            Some(kid) => keys.find(kid),
            None if keys.keys.len() == 1 => keys.keys.first(),
            None => None,
        };
        let Some(jwk) = jwk else {
            why = match header.kid.as_deref() {
                Some(kid) => format!("the identity provider's JWKS has no key '{kid}'"),
                None => "it has no 'kid' and the provider publishes several keys".into(),
            };
            continue;
        };
        let key = match DecodingKey::from_jwk(jwk) {
            Ok(k) => k,
            Err(e) => {
                why = format!("the identity provider's key cannot verify: {e}");
                continue;
            }
        };
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[&provider.issuer]);
        v.set_audience(&[&provider.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        v.validate_nbf = true;
        v.leeway = LEEWAY_SECS;
        match jsonwebtoken::decode::<Value>(token, &key, &v) {
            Ok(data) => return pool_principal(state, org, provider, &data.claims, pool_hint).await,
            Err(e) => why = reason(&e, provider),
        }
    }
    Err(refused(why))
}

fn admits(pool: &IdentityPoolRecord, claims: &Value) -> bool {
    filter::parse(&pool.filter).is_ok_and(|f| f.matches(claims))
}

async fn pool_principal(
    state: &AppState,
    org: &str,
    provider: &IdentityProviderRecord,
    claims: &Value,
    hint: Option<&str>,
) -> Result<Principal, ApiError> {
    let pools = state.store.list_identity_pools(org, &provider.id).await?;
    let matching: Vec<&IdentityPoolRecord> = pools
        .iter()
        .filter(|p| hint.is_none_or(|h| p.id == h))
        .filter(|p| admits(p, claims))
        .collect();
    let pool = match matching.as_slice() {
        [one] => *one,
        [] => {
            return Err(refused(match hint {
                Some(h) => format!(
                    "identity pool '{h}' of provider '{}' does not admit it (no such pool, or its filter does not match the token's claims)",
                    provider.display_name
                ),
                None => format!(
                    "no identity pool of provider '{}' admits it (their filters do not match the token's claims)",
                    provider.display_name
                ),
            }))
        }
        several => {
            return Err(refused(format!(
                "several identity pools admit it ({}); name one in the Weir-Identity-Pool-Id header",
                several.iter().map(|p| p.id.as_str()).collect::<Vec<_>>().join(", ")
            )))
        }
    };
    let subject = filter::parse_path(&pool.identity_claim)
        .ok()
        .and_then(|path| filter::lookup(claims, &path).cloned())
        .map(|v| match v {
            Value::String(s) => s,
            v => v.to_string(),
        })
        .map(|s| s.chars().take(256).collect());
    let user = format!("User:{}", pool.id);
    let bindings = state.store.list_role_bindings(org, Some(&user)).await?;
    Ok(Principal {
        access: Access::new(&user, &bindings, None),
        key_id: format!("token:{}", provider.id),
        org_id: org.to_string(),
        principal_id: pool.id.clone(),
        subject,
    })
}
