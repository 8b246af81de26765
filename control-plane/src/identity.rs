//! OAuth identity providers (`/iam/v2/identity-providers`) and their
//! identity pools (`.../{provider}/identity-pools`), shaped like the
//! managed service's APIs. A provider is an issuer with its JWKS URL and
//! the audience its tokens for Weir carry; a pool maps the provider's
//! tokens whose claims match its filter to the principal `User:pool-...`,
//! which role bindings then name. Managing them takes an organization
//! admin; checking tokens is [`crate::oauth`]'s.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use weir_catalog::{IdentityPoolRecord, IdentityProviderRecord};

use crate::auth::Principal;
use crate::authz::{Crn, Permission};
use crate::iam::{list, text_field};
use crate::oauth::filter;
use crate::{ApiError, AppState};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_providers, create_provider))
        .routes(routes!(get_provider, update_provider, delete_provider))
        .routes(routes!(list_pools, create_pool))
        .routes(routes!(get_pool, update_pool, delete_pool))
}

/// Quotas: providers per organization, pools per provider.
const MAX_PROVIDERS: usize = 100;
const MAX_POOLS: usize = 500;
/// The longest issuer, JWKS URL or audience.
const MAX_URL_CHARS: usize = 1024;

fn new_id(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

fn provider_json(state: &AppState, org: &str, p: &IdentityProviderRecord) -> Value {
    crate::answer(weir_api::IdentityProvider {
        api_version: "iam/v2".into(),
        kind: "IdentityProvider".into(),
        id: p.id.clone(),
        metadata: crate::meta(
            format!("{}/iam/v2/identity-providers/{}", state.public_url, p.id),
            Crn::identity_provider(org, &p.id).as_str(),
            Some(p.created_at),
        ),
        display_name: p.display_name.clone(),
        description: p.description.clone(),
        state: "ENABLED".into(),
        issuer: p.issuer.clone(),
        jwks_uri: p.jwks_uri.clone(),
        audience: p.audience.clone(),
    })
}

fn pool_json(state: &AppState, org: &str, p: &IdentityPoolRecord) -> Value {
    crate::answer(weir_api::IdentityPool {
        api_version: "iam/v2".into(),
        kind: "IdentityPool".into(),
        id: p.id.clone(),
        metadata: crate::meta(
            format!(
                "{}/iam/v2/identity-providers/{}/identity-pools/{}",
                state.public_url, p.provider_id, p.id
            ),
            Crn::identity_pool(org, &p.provider_id, &p.id).as_str(),
            Some(p.created_at),
        ),
        display_name: p.display_name.clone(),
        description: p.description.clone(),
        identity_claim: p.identity_claim.clone(),
        filter: p.filter.clone(),
        principal: format!("User:{}", p.id),
        identity_provider: weir_api::IdRef {
            id: p.provider_id.clone(),
        },
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ProviderBody {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    jwks_uri: Option<String>,
    #[serde(default)]
    audience: Option<String>,
}

fn url_field(what: &str, v: &str) -> Result<String, ApiError> {
    let v = v.trim();
    if v.is_empty() {
        return Err(ApiError::bad_request(format!("{what} is required")));
    }
    if v.chars().count() > MAX_URL_CHARS || v.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "{what} must be at most {MAX_URL_CHARS} characters, without control characters"
        )));
    }
    Ok(v.to_string())
}

/// The provider's keys must be readable before tokens depend on them.
async fn check_jwks(state: &AppState, uri: &str) -> Result<(), ApiError> {
    state
        .tokens
        .fetch(uri)
        .await
        .map(|_| ())
        .map_err(|e| ApiError::bad_request(format!("jwks_uri: {e}")))
}

#[utoipa::path(
    get,
    path = "/iam/v2/identity-providers",
    tag = "IAM",
    responses((status = 200, description = "Success", body = weir_api::ResourceList<weir_api::IdentityProvider>, content_type = "application/json"))
)]
async fn list_providers(
    State(state): State<AppState>,
    p: Principal,
) -> Result<Json<Value>, ApiError> {
    let org = &p.org_id;
    let data = state
        .store
        .list_identity_providers(org)
        .await?
        .iter()
        .filter(|i| {
            p.access
                .allows(Permission::View, &Crn::identity_provider(org, &i.id))
        })
        .map(|i| provider_json(&state, org, i))
        .collect();
    Ok(list(
        &state,
        "IdentityProviderList",
        "/iam/v2/identity-providers",
        data,
    ))
}

#[utoipa::path(
    post,
    path = "/iam/v2/identity-providers",
    tag = "IAM",
    request_body(content = ProviderBody, content_type = "application/json"),
    responses((status = 201, description = "Success", body = weir_api::IdentityProvider, content_type = "application/json"))
)]
async fn create_provider(
    State(state): State<AppState>,
    p: Principal,
    body: Result<Json<ProviderBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(b) = body?;
    let org = &p.org_id;
    let id = new_id("op");
    p.access
        .require(Permission::Manage, &Crn::identity_provider(org, &id))?;
    state.config.limits.quota(
        "identity providers in an organization",
        state.store.list_identity_providers(org).await?.len(),
        MAX_PROVIDERS,
    )?;
    let rec = IdentityProviderRecord {
        id,
        display_name: text_field(
            "display_name",
            b.display_name.as_deref().unwrap_or_default(),
            64,
            true,
        )?,
        description: text_field(
            "description",
            b.description.as_deref().unwrap_or_default(),
            256,
            false,
        )?,
        issuer: url_field("issuer", b.issuer.as_deref().unwrap_or_default())?,
        jwks_uri: url_field("jwks_uri", b.jwks_uri.as_deref().unwrap_or_default())?,
        audience: url_field(
            "audience (the 'aud' the provider's tokens for Weir carry)",
            b.audience.as_deref().unwrap_or_default(),
        )?,
        created_at: weir_catalog::now_millis(),
    };
    check_jwks(&state, &rec.jwks_uri).await?;
    state.store.create_identity_provider(org, &rec).await?;
    Ok((StatusCode::CREATED, Json(provider_json(&state, org, &rec))))
}

async fn find_provider(
    state: &AppState,
    p: &Principal,
    id: &str,
    need: Permission,
) -> Result<IdentityProviderRecord, ApiError> {
    let rec = state
        .store
        .get_identity_provider(&p.org_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("identity provider '{id}'")))?;
    p.access
        .require(need, &Crn::identity_provider(&p.org_id, id))?;
    Ok(rec)
}

#[utoipa::path(
    get,
    path = "/iam/v2/identity-providers/{id}",
    tag = "IAM",
    params(("id" = String, Path, description = "The resource id")),
    responses((status = 200, description = "Success", body = weir_api::IdentityProvider, content_type = "application/json"))
)]
async fn get_provider(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let rec = find_provider(&state, &p, &id, Permission::View).await?;
    Ok(Json(provider_json(&state, &p.org_id, &rec)))
}

#[utoipa::path(
    patch,
    path = "/iam/v2/identity-providers/{id}",
    tag = "IAM",
    params(("id" = String, Path, description = "The resource id")),
    request_body(content = ProviderBody, content_type = "application/json"),
    responses((status = 200, description = "Success", body = weir_api::IdentityProvider, content_type = "application/json"))
)]
async fn update_provider(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    body: Result<Json<ProviderBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(b) = body?;
    let mut rec = find_provider(&state, &p, &id, Permission::Manage).await?;
    if let Some(v) = &b.display_name {
        rec.display_name = text_field("display_name", v, 64, true)?;
    }
    if let Some(v) = &b.description {
        rec.description = text_field("description", v, 256, false)?;
    }
    if let Some(v) = &b.issuer {
        rec.issuer = url_field("issuer", v)?;
    }
    if let Some(v) = &b.audience {
        rec.audience = url_field("audience", v)?;
    }
    if let Some(v) = &b.jwks_uri {
        rec.jwks_uri = url_field("jwks_uri", v)?;
        check_jwks(&state, &rec.jwks_uri).await?;
    }
    state
        .store
        .update_identity_provider(&p.org_id, &rec)
        .await?;
    Ok(Json(provider_json(&state, &p.org_id, &rec)))
}

#[utoipa::path(
    delete,
    path = "/iam/v2/identity-providers/{id}",
    tag = "IAM",
    params(("id" = String, Path, description = "The resource id")),
    responses((status = 204, description = "Done; no body"))
)]
async fn delete_provider(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    find_provider(&state, &p, &id, Permission::Manage).await?;
    state.store.delete_identity_provider(&p.org_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- identity pools ----------------------------------------------------------

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PoolBody {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    identity_claim: Option<String>,
    #[serde(default)]
    filter: Option<String>,
}

fn filter_field(v: &str) -> Result<String, ApiError> {
    filter::parse(v).map_err(|e| ApiError::bad_request(format!("filter: {e}")))?;
    Ok(v.trim().to_string())
}

fn claim_field(v: &str) -> Result<String, ApiError> {
    if v.chars().count() > 256 {
        return Err(ApiError::bad_request(
            "identity_claim is at most 256 characters",
        ));
    }
    filter::parse_path(v).map_err(|e| {
        ApiError::bad_request(format!(
            "identity_claim: {e} (a claim path such as claims.sub)"
        ))
    })?;
    Ok(v.trim().to_string())
}

#[utoipa::path(
    get,
    path = "/iam/v2/identity-providers/{provider}/identity-pools",
    tag = "IAM",
    params(("provider" = String, Path, description = "The identity provider id")),
    responses((status = 200, description = "Success", body = weir_api::ResourceList<weir_api::IdentityPool>, content_type = "application/json"))
)]
async fn list_pools(
    State(state): State<AppState>,
    p: Principal,
    Path(provider): Path<String>,
) -> Result<Json<Value>, ApiError> {
    find_provider(&state, &p, &provider, Permission::View).await?;
    let org = &p.org_id;
    let data = state
        .store
        .list_identity_pools(org, &provider)
        .await?
        .iter()
        .map(|i| pool_json(&state, org, i))
        .collect();
    Ok(list(
        &state,
        "IdentityPoolList",
        &format!("/iam/v2/identity-providers/{provider}/identity-pools"),
        data,
    ))
}

#[utoipa::path(
    post,
    path = "/iam/v2/identity-providers/{provider}/identity-pools",
    tag = "IAM",
    params(("provider" = String, Path, description = "The identity provider id")),
    request_body(content = PoolBody, content_type = "application/json"),
    responses((status = 201, description = "Success", body = weir_api::IdentityPool, content_type = "application/json"))
)]
async fn create_pool(
    State(state): State<AppState>,
    p: Principal,
    Path(provider): Path<String>,
    body: Result<Json<PoolBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    find_provider(&state, &p, &provider, Permission::Manage).await?;
    let Json(b) = body?;
    let org = &p.org_id;
    state.config.limits.quota(
        "identity pools of a provider",
        state.store.list_identity_pools(org, &provider).await?.len(),
        MAX_POOLS,
    )?;
    let rec = IdentityPoolRecord {
        id: new_id("pool"),
        provider_id: provider,
        display_name: text_field(
            "display_name",
            b.display_name.as_deref().unwrap_or_default(),
            64,
            true,
        )?,
        description: text_field(
            "description",
            b.description.as_deref().unwrap_or_default(),
            256,
            false,
        )?,
        identity_claim: claim_field(b.identity_claim.as_deref().unwrap_or("claims.sub"))?,
        filter: filter_field(b.filter.as_deref().ok_or_else(|| {
            ApiError::bad_request(
                "filter is required: which of the provider's tokens the pool admits, e.g. claims.sub == \"svc-etl\" (true admits all)",
            )
        })?)?,
        created_at: weir_catalog::now_millis(),
    };
    state.store.create_identity_pool(org, &rec).await?;
    Ok((StatusCode::CREATED, Json(pool_json(&state, org, &rec))))
}

async fn find_pool(
    state: &AppState,
    p: &Principal,
    provider: &str,
    id: &str,
    need: Permission,
) -> Result<IdentityPoolRecord, ApiError> {
    find_provider(state, p, provider, Permission::View).await?;
    let rec = state
        .store
        .get_identity_pool(&p.org_id, id)
        .await?
        .filter(|r| r.provider_id == provider)
        .ok_or_else(|| ApiError::not_found(&format!("identity pool '{id}'")))?;
    p.access
        .require(need, &Crn::identity_pool(&p.org_id, provider, id))?;
    Ok(rec)
}

#[utoipa::path(
    get,
    path = "/iam/v2/identity-providers/{provider}/identity-pools/{id}",
    tag = "IAM",
    params(("provider" = String, Path, description = "The identity provider id"), ("id" = String, Path, description = "The resource id")),
    responses((status = 200, description = "Success", body = weir_api::IdentityPool, content_type = "application/json"))
)]
async fn get_pool(
    State(state): State<AppState>,
    p: Principal,
    Path((provider, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let rec = find_pool(&state, &p, &provider, &id, Permission::View).await?;
    Ok(Json(pool_json(&state, &p.org_id, &rec)))
}

#[utoipa::path(
    patch,
    path = "/iam/v2/identity-providers/{provider}/identity-pools/{id}",
    tag = "IAM",
    params(("provider" = String, Path, description = "The identity provider id"), ("id" = String, Path, description = "The resource id")),
    request_body(content = PoolBody, content_type = "application/json"),
    responses((status = 200, description = "Success", body = weir_api::IdentityPool, content_type = "application/json"))
)]
async fn update_pool(
    State(state): State<AppState>,
    p: Principal,
    Path((provider, id)): Path<(String, String)>,
    body: Result<Json<PoolBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(b) = body?;
    let mut rec = find_pool(&state, &p, &provider, &id, Permission::Manage).await?;
    if let Some(v) = &b.display_name {
        rec.display_name = text_field("display_name", v, 64, true)?;
    }
    if let Some(v) = &b.description {
        rec.description = text_field("description", v, 256, false)?;
    }
    if let Some(v) = &b.identity_claim {
        rec.identity_claim = claim_field(v)?;
    }
    if let Some(v) = &b.filter {
        rec.filter = filter_field(v)?;
    }
    state.store.update_identity_pool(&p.org_id, &rec).await?;
    Ok(Json(pool_json(&state, &p.org_id, &rec)))
}

#[utoipa::path(
    delete,
    path = "/iam/v2/identity-providers/{provider}/identity-pools/{id}",
    tag = "IAM",
    params(("provider" = String, Path, description = "The identity provider id"), ("id" = String, Path, description = "The resource id")),
    responses((status = 204, description = "Done; no body"))
)]
async fn delete_pool(
    State(state): State<AppState>,
    p: Principal,
    Path((provider, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    find_pool(&state, &p, &provider, &id, Permission::Manage).await?;
    state.store.delete_identity_pool(&p.org_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
