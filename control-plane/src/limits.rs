//! Limits one tenant meets before it can crowd out the others: a request
//! rate per principal (a token bucket: a sustained rate and a burst), and
//! quotas on how many statements and compute pools an environment holds and
//! how many API keys and service accounts an organization holds. Each
//! refusal is a 429 that names the limit and its value.
//!
//! The server's quotas are the ceiling; an organization admin may set
//! lower ones for the organization or each environment
//! (`/weir/v1/environments/{env}/limits`, `/weir/v1/organization/limits`),
//! to share an allowance between teams. Nobody but the server's operator
//! raises the ceiling.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::http::StatusCode;

use axum::extract::{Path, State};
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::authz::{Crn, Permission};
use crate::{ApiError, AppState};

/// The limits of a server; `weir dev` and `weir server` take the defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Requests per second one principal may make, sustained.
    pub requests_per_second: f64,
    /// Requests one principal may make at once above the sustained rate.
    pub request_burst: f64,
    pub statements_per_environment: usize,
    pub pools_per_environment: usize,
    pub api_keys_per_organization: usize,
    pub service_accounts_per_organization: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            requests_per_second: 200.0,
            request_burst: 2000.0,
            statements_per_environment: 5000,
            pools_per_environment: 100,
            api_keys_per_organization: 2000,
            service_accounts_per_organization: 1000,
        }
    }
}

impl Limits {
    /// The 429 of a quota that `count` (what exists now) has reached.
    pub fn quota(&self, what: &str, count: usize, limit: usize) -> Result<(), ApiError> {
        if count < limit {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "quota_exceeded",
            format!("the quota of {limit} {what} is reached ({count} exist); delete some first or raise the server's limit"),
        ))
    }
}

/// A quota a tenant may lower for itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    Statements,
    ComputePools,
    ApiKeys,
    ServiceAccounts,
}

impl Quota {
    pub const ENVIRONMENT: [Quota; 2] = [Quota::Statements, Quota::ComputePools];
    pub const ORGANIZATION: [Quota; 2] = [Quota::ApiKeys, Quota::ServiceAccounts];

    /// Its name in the API and the store.
    pub fn name(self) -> &'static str {
        match self {
            Quota::Statements => "statements",
            Quota::ComputePools => "compute_pools",
            Quota::ApiKeys => "api_keys",
            Quota::ServiceAccounts => "service_accounts",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Quota::Statements => "statements in an environment",
            Quota::ComputePools => "compute pools in an environment",
            Quota::ApiKeys => "API keys in an organization",
            Quota::ServiceAccounts => "service accounts in an organization",
        }
    }

    fn is_environment(self) -> bool {
        Quota::ENVIRONMENT.contains(&self)
    }

    /// The server's value: the most a tenant may set.
    pub fn server_limit(self, limits: &Limits) -> usize {
        match self {
            Quota::Statements => limits.statements_per_environment,
            Quota::ComputePools => limits.pools_per_environment,
            Quota::ApiKeys => limits.api_keys_per_organization,
            Quota::ServiceAccounts => limits.service_accounts_per_organization,
        }
    }

    /// How many exist now in `org` (and `env`, for an environment quota).
    pub async fn used(
        self,
        store: &weir_catalog::Store,
        org: &str,
        env: &str,
    ) -> Result<usize, ApiError> {
        Ok(match self {
            Quota::Statements => store.count_statements(org, env).await? as usize,
            Quota::ComputePools => store.list_pools(org, env).await?.len(),
            Quota::ApiKeys => store.list_api_keys(org, None).await?.len(),
            Quota::ServiceAccounts => store.list_service_accounts(org).await?.len(),
        })
    }
}

impl Limits {
    /// The value of `quota` for `org`/`env`: the tenant's own when it set
    /// one, else the server's; and whether it is the tenant's.
    pub async fn effective(
        &self,
        store: &weir_catalog::Store,
        quota: Quota,
        org: &str,
        env: &str,
    ) -> Result<(usize, bool), ApiError> {
        let scope = quota.is_environment().then_some(env);
        let own = store.tenant_limits(org, scope).await?;
        let server = quota.server_limit(self);
        Ok(match own.get(quota.name()) {
            Some(v) => ((*v).clamp(0, server as i64) as usize, true),
            None => (server, false),
        })
    }

    /// Refuses one more of `quota` in `org`/`env` with a 429 when it is
    /// reached, saying whose limit it is and who may raise it.
    pub async fn admit(
        &self,
        store: &weir_catalog::Store,
        quota: Quota,
        org: &str,
        env: &str,
    ) -> Result<(), ApiError> {
        let (limit, own) = self.effective(store, quota, org, env).await?;
        let count = quota.used(store, org, env).await?;
        if count < limit {
            return Ok(());
        }
        let raise = if own {
            let path = if quota.is_environment() {
                format!("/weir/v1/environments/{env}/limits")
            } else {
                "/weir/v1/organization/limits".to_string()
            };
            format!(
                "an organization admin set it ({path}; the server allows up to {})",
                quota.server_limit(self)
            )
        } else {
            "it is the server's limit".to_string()
        };
        Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "quota_exceeded",
            format!(
                "the quota of {limit} {} is reached ({count} exist); delete some first: {raise}",
                quota.what()
            ),
        ))
    }
}

/// Token buckets by principal.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// At most this many principals are tracked; past it idle ones are dropped.
const MAX_TRACKED: usize = 100_000;

impl RateLimiter {
    /// Takes one request of `principal`'s bucket, or the 429 that says
    /// when to come back.
    pub fn take(&self, limits: &Limits, principal: &str) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut b = self.buckets.lock().expect("not poisoned");
        if b.len() >= MAX_TRACKED {
            // Full buckets carry no state worth keeping.
            b.retain(|_, (tokens, at)| {
                *tokens + at.elapsed().as_secs_f64() * limits.requests_per_second
                    < limits.request_burst
            });
        }
        let (tokens, at) = b
            .entry(principal.to_string())
            .or_insert((limits.request_burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * limits.requests_per_second)
            .min(limits.request_burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            return Ok(());
        }
        let wait_ms = ((1.0 - *tokens) / limits.requests_per_second * 1000.0).ceil() as u64;
        Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "{principal} is over its rate limit of {} requests per second (burst {}); retry in {wait_ms} ms",
                limits.requests_per_second, limits.request_burst
            ),
        ))
    }
}

// ---- the API -------------------------------------------------------------

/// One quota as the API shows it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct QuotaView {
    /// The value in force: the tenant's own, or the server's.
    pub limit: u64,
    /// How many exist now (creating more is refused at `limit`).
    pub used: u64,
    /// The most the tenant may set: the server's value.
    pub server_limit: u64,
    /// Whether the organization set `limit` itself.
    pub set_by_organization: bool,
}

/// The quotas of an environment or of an organization.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct LimitsView {
    /// `Limits`.
    pub kind: String,
    /// `environment` or `organization`.
    pub scope: String,
    /// The environment, for an environment's quotas.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Name (`statements`, `compute_pools`; `api_keys`,
    /// `service_accounts`) → its quota.
    pub limits: std::collections::BTreeMap<String, QuotaView>,
}

/// New values: a number sets the quota (at most the server's), `null`
/// returns it to the server's, a name left out stays as it is.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentLimitsPatch {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    pub statements: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    pub compute_pools: Option<Option<u64>>,
}

/// As [`EnvironmentLimitsPatch`], for the organization's quotas.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrganizationLimitsPatch {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    pub api_keys: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    pub service_accounts: Option<Option<u64>>,
}

/// A field given (`Some`), as a value or `null`, apart from one left out.
fn present<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(environment_limits, set_environment_limits))
        .routes(routes!(organization_limits, set_organization_limits))
}

async fn view(state: &AppState, org: &str, env: Option<&str>) -> Result<LimitsView, ApiError> {
    let quotas: &[Quota] = match env {
        Some(_) => &Quota::ENVIRONMENT,
        None => &Quota::ORGANIZATION,
    };
    let mut limits = std::collections::BTreeMap::new();
    for q in quotas {
        let e = env.unwrap_or("");
        let (limit, own) = state
            .config
            .limits
            .effective(&state.store, *q, org, e)
            .await?;
        limits.insert(
            q.name().to_string(),
            QuotaView {
                limit: limit as u64,
                used: q.used(&state.store, org, e).await? as u64,
                server_limit: q.server_limit(&state.config.limits) as u64,
                set_by_organization: own,
            },
        );
    }
    Ok(LimitsView {
        kind: "Limits".into(),
        scope: if env.is_some() {
            "environment"
        } else {
            "organization"
        }
        .into(),
        environment: env.map(str::to_string),
        limits,
    })
}

async fn set(
    state: &AppState,
    org: &str,
    env: Option<&str>,
    changes: &[(Quota, Option<Option<u64>>)],
) -> Result<(), ApiError> {
    for (q, change) in changes {
        let server = q.server_limit(&state.config.limits) as u64;
        if let Some(Some(v)) = change {
            if *v > server {
                return Err(ApiError::bad_request(format!(
                    "{} can be at most {server}, the server's limit",
                    q.name()
                )));
            }
        }
    }
    for (q, change) in changes {
        if let Some(v) = change {
            state
                .store
                .set_tenant_limit(org, env, q.name(), v.map(|v| v as i64))
                .await?;
        }
    }
    Ok(())
}

/// An environment's quotas: the value in force, how many exist, and the
/// server's ceiling.
#[utoipa::path(
    get,
    path = "/weir/v1/environments/{env}/limits",
    tag = "Organization",
    params(("env" = String, Path, description = "The environment id")),
    responses((status = 200, description = "Success", body = LimitsView, content_type = "application/json"))
)]
async fn environment_limits(
    State(state): State<AppState>,
    p: Principal,
    Path(env): Path<String>,
) -> Result<Json<LimitsView>, ApiError> {
    let env = crate::registry::settings_env(&state, &p, &env, Permission::View).await?;
    Ok(Json(view(&state, &p.org_id, Some(&env)).await?))
}

/// Sets an environment's quotas, at most the server's; an organization
/// admin's call (an environment admin cannot raise its own). Lowering one
/// below what exists refuses new ones and keeps the rest.
#[utoipa::path(
    patch,
    path = "/weir/v1/environments/{env}/limits",
    tag = "Organization",
    params(("env" = String, Path, description = "The environment id")),
    request_body(content = EnvironmentLimitsPatch, content_type = "application/json"),
    responses((status = 200, description = "Success", body = LimitsView, content_type = "application/json"))
)]
async fn set_environment_limits(
    State(state): State<AppState>,
    p: Principal,
    Path(env): Path<String>,
    body: Result<Json<EnvironmentLimitsPatch>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<LimitsView>, ApiError> {
    let env = crate::registry::settings_env(&state, &p, &env, Permission::View).await?;
    p.access
        .require(Permission::Manage, &Crn::organization(&p.org_id))?;
    let Json(b) = body?;
    set(
        &state,
        &p.org_id,
        Some(&env),
        &[
            (Quota::Statements, b.statements),
            (Quota::ComputePools, b.compute_pools),
        ],
    )
    .await?;
    Ok(Json(view(&state, &p.org_id, Some(&env)).await?))
}

/// The organization's quotas.
#[utoipa::path(
    get,
    path = "/weir/v1/organization/limits",
    tag = "Organization",
    responses((status = 200, description = "Success", body = LimitsView, content_type = "application/json"))
)]
async fn organization_limits(
    State(state): State<AppState>,
    p: Principal,
) -> Result<Json<LimitsView>, ApiError> {
    p.access
        .require(Permission::View, &Crn::organization(&p.org_id))?;
    Ok(Json(view(&state, &p.org_id, None).await?))
}

/// Sets the organization's quotas, at most the server's.
#[utoipa::path(
    patch,
    path = "/weir/v1/organization/limits",
    tag = "Organization",
    request_body(content = OrganizationLimitsPatch, content_type = "application/json"),
    responses((status = 200, description = "Success", body = LimitsView, content_type = "application/json"))
)]
async fn set_organization_limits(
    State(state): State<AppState>,
    p: Principal,
    body: Result<Json<OrganizationLimitsPatch>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<LimitsView>, ApiError> {
    p.access
        .require(Permission::Manage, &Crn::organization(&p.org_id))?;
    let Json(b) = body?;
    set(
        &state,
        &p.org_id,
        None,
        &[
            (Quota::ApiKeys, b.api_keys),
            (Quota::ServiceAccounts, b.service_accounts),
        ],
    )
    .await?;
    Ok(Json(view(&state, &p.org_id, None).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refuses_then_refills() {
        let limits = Limits {
            requests_per_second: 1000.0,
            request_burst: 3.0,
            ..Limits::default()
        };
        let r = RateLimiter::default();
        for _ in 0..3 {
            r.take(&limits, "User:a").unwrap();
        }
        let e = r.take(&limits, "User:a").unwrap_err();
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(e.detail.contains("rate limit of 1000"), "{}", e.detail);
        // Another principal has its own bucket.
        r.take(&limits, "User:b").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        r.take(&limits, "User:a").unwrap();
    }

    #[test]
    fn a_quota_names_itself() {
        let l = Limits::default();
        assert!(l.quota("statements in an environment", 3, 4).is_ok());
        let e = l.quota("statements in an environment", 4, 4).unwrap_err();
        assert!(e.detail.contains("quota of 4 statements"), "{}", e.detail);
    }
}
