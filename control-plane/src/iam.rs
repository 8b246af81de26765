//! Identity and access, shaped like the managed service's public APIs:
//! service accounts (`/iam/v2/service-accounts`), API keys
//! (`/iam/v2/api-keys`: owner, scope, the secret shown once and kept only
//! as an Argon2 hash), role bindings (`/iam/v2/role-bindings`), and the
//! audit log of mutating and denied calls (`/weir/v1/audit-log`). Every
//! route is scoped to the caller's organization and checks its roles.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use weir_catalog::{ApiKeyInfo, RoleBindingRecord, ServiceAccountRecord};

use crate::auth::{hash_secret, new_key, Principal};
use crate::authz::{parse_pattern, Crn, Permission, Role};
use crate::limits::Quota;
use crate::{ApiError, AppState};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_service_accounts, create_service_account))
        .routes(routes!(
            get_service_account,
            update_service_account,
            delete_service_account
        ))
        .routes(routes!(list_keys, create_key))
        .routes(routes!(get_key, update_key, delete_key))
        .routes(routes!(list_bindings, create_binding))
        .routes(routes!(get_binding, delete_binding))
        .routes(routes!(audit_log))
}

/// The longest principal or resource name a binding takes.
const MAX_NAME_BYTES: usize = 1024;

pub(crate) fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

pub(crate) fn list(state: &AppState, kind: &str, path: &str, data: Vec<Value>) -> Json<Value> {
    list_of(state, "iam/v2", kind, path, data)
}

/// A one-page list, as the managed service's v2 APIs shape them.
pub(crate) fn list_of(
    state: &AppState,
    api_version: &str,
    kind: &str,
    path: &str,
    data: Vec<Value>,
) -> Json<Value> {
    Json(json!({
        "api_version": api_version,
        "kind": kind,
        "metadata": weir_api::ListPage {
            first: Some(format!("{}{path}", state.public_url)),
            next: None,
            total_size: data.len(),
        },
        "data": data,
    }))
}

/// A display name or description: printable, bounded.
pub(crate) fn text_field(
    what: &str,
    v: &str,
    max: usize,
    required: bool,
) -> Result<String, ApiError> {
    let v = v.trim();
    if required && v.is_empty() {
        return Err(ApiError::bad_request(format!("{what} is required")));
    }
    if v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "{what} must be at most {max} characters, without control characters"
        )));
    }
    Ok(v.to_string())
}

// ---- service accounts ------------------------------------------------------

fn service_account_json(state: &AppState, org: &str, s: &ServiceAccountRecord) -> Value {
    crate::answer(weir_api::ServiceAccount {
        api_version: "iam/v2".into(),
        kind: "ServiceAccount".into(),
        id: s.id.clone(),
        metadata: crate::meta(
            format!("{}/iam/v2/service-accounts/{}", state.public_url, s.id),
            Crn::service_account(org, &s.id).as_str(),
            Some(s.created_at),
        ),
        display_name: s.display_name.clone(),
        description: s.description.clone(),
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
struct ServiceAccountBody {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

#[utoipa::path(
    get,
    path = "/iam/v2/service-accounts",
    tag = "IAM",
    responses((status = 200, description = "Success", body = weir_api::ResourceList<weir_api::ServiceAccount>, content_type = "application/json"))
)]
async fn list_service_accounts(
    State(state): State<AppState>,
    p: Principal,
) -> Result<Json<Value>, ApiError> {
    let org = &p.org_id;
    let data = state
        .store
        .list_service_accounts(org)
        .await?
        .iter()
        .filter(|s| {
            p.access
                .allows(Permission::View, &Crn::service_account(org, &s.id))
        })
        .map(|s| service_account_json(&state, org, s))
        .collect();
    Ok(list(
        &state,
        "ServiceAccountList",
        "/iam/v2/service-accounts",
        data,
    ))
}

#[utoipa::path(
    post,
    path = "/iam/v2/service-accounts",
    tag = "IAM",
    request_body(content = ServiceAccountBody, content_type = "application/json"),
    responses((status = 201, description = "Success", body = weir_api::ServiceAccount, content_type = "application/json"))
)]
async fn create_service_account(
    State(state): State<AppState>,
    p: Principal,
    body: Result<Json<ServiceAccountBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(b) = body?;
    let org = &p.org_id;
    let id = format!("sa-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    p.access
        .require(Permission::Manage, &Crn::service_account(org, &id))?;
    state
        .config
        .limits
        .admit(&state.store, Quota::ServiceAccounts, org, "")
        .await?;
    let rec = ServiceAccountRecord {
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
        created_at: weir_catalog::now_millis(),
    };
    state.store.create_service_account(org, &rec).await?;
    Ok((
        StatusCode::CREATED,
        Json(service_account_json(&state, org, &rec)),
    ))
}

async fn find_service_account(
    state: &AppState,
    p: &Principal,
    id: &str,
    need: Permission,
) -> Result<ServiceAccountRecord, ApiError> {
    let s = state
        .store
        .get_service_account(&p.org_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("service account '{id}'")))?;
    p.access
        .require(need, &Crn::service_account(&p.org_id, id))?;
    Ok(s)
}

#[utoipa::path(
    get,
    path = "/iam/v2/service-accounts/{id}",
    tag = "IAM",
    params(("id" = String, Path, description = "The resource id")),
    responses((status = 200, description = "Success", body = weir_api::ServiceAccount, content_type = "application/json"))
)]
async fn get_service_account(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let s = find_service_account(&state, &p, &id, Permission::View).await?;
    Ok(Json(service_account_json(&state, &p.org_id, &s)))
}

#[utoipa::path(
    patch,
    path = "/iam/v2/service-accounts/{id}",
    tag = "IAM",
    params(("id" = String, Path, description = "The resource id")),
    request_body(content = ServiceAccountBody, content_type = "application/json"),
    responses((status = 200, description = "Success", body = weir_api::ServiceAccount, content_type = "application/json"))
)]
async fn update_service_account(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    body: Result<Json<ServiceAccountBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(b) = body?;
    find_service_account(&state, &p, &id, Permission::Manage).await?;
    if b.display_name.is_some() {
        return Err(ApiError::bad_request(
            "display_name cannot change; only description can",
        ));
    }
    let description = text_field(
        "description",
        b.description.as_deref().unwrap_or_default(),
        256,
        false,
    )?;
    state
        .store
        .update_service_account(&p.org_id, &id, &description)
        .await?;
    let s = find_service_account(&state, &p, &id, Permission::View).await?;
    Ok(Json(service_account_json(&state, &p.org_id, &s)))
}

#[utoipa::path(
    delete,
    path = "/iam/v2/service-accounts/{id}",
    tag = "IAM",
    params(("id" = String, Path, description = "The resource id")),
    responses((status = 204, description = "Done; no body"))
)]
async fn delete_service_account(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    find_service_account(&state, &p, &id, Permission::Manage).await?;
    state.store.delete_service_account(&p.org_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- API keys ----------------------------------------------------------------

fn owner_kind(id: &str) -> &'static str {
    if id.starts_with("sa-") {
        "ServiceAccount"
    } else {
        "User"
    }
}

fn key_json(state: &AppState, org: &str, k: &ApiKeyInfo, secret: Option<&str>) -> Value {
    let typed = |id: &str, kind: &str| weir_api::TypedRef {
        id: id.to_string(),
        kind: kind.to_string(),
    };
    crate::answer(weir_api::ApiKey {
        api_version: "iam/v2".into(),
        kind: "ApiKey".into(),
        id: k.id.clone(),
        metadata: crate::meta(
            format!("{}/iam/v2/api-keys/{}", state.public_url, k.id),
            Crn::api_key(org, &k.id).as_str(),
            Some(k.created_at),
        ),
        spec: weir_api::ApiKeySpec {
            display_name: k.description.clone(),
            description: k.description.clone(),
            owner: typed(&k.owner_id, owner_kind(&k.owner_id)),
            resource: match &k.scope {
                Some(s) => typed(s, "Environment"),
                None => typed(Crn::organization(org).as_str(), "Organization"),
            },
            // Shown once, in the answer that makes the key.
            secret: secret.map(str::to_string),
        },
    })
}

/// Whether the caller may see (or with `Manage`, change) a key: its own,
/// or one whose owner it may manage.
fn may_touch_key(p: &Principal, k: &ApiKeyInfo, need: Permission) -> bool {
    k.owner_id == p.principal_id
        || p.access.allows(need, &Crn::api_key(&p.org_id, &k.id))
        || (k.owner_id.starts_with("sa-")
            && p.access.allows(
                Permission::Manage,
                &Crn::service_account(&p.org_id, &k.owner_id),
            ))
}

#[derive(Deserialize, Default)]
struct KeyQuery {
    #[serde(default, rename = "spec.owner")]
    owner: Option<String>,
}

#[utoipa::path(
    get,
    path = "/iam/v2/api-keys",
    tag = "IAM",
    responses((status = 200, description = "Success", body = weir_api::ResourceList<weir_api::ApiKey>, content_type = "application/json"))
)]
async fn list_keys(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<KeyQuery>,
) -> Result<Json<Value>, ApiError> {
    let org = &p.org_id;
    let data = state
        .store
        .list_api_keys(org, q.owner.as_deref())
        .await?
        .iter()
        .filter(|k| may_touch_key(&p, k, Permission::View))
        .map(|k| key_json(&state, org, k, None))
        .collect();
    Ok(list(&state, "ApiKeyList", "/iam/v2/api-keys", data))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct Ref {
    id: String,
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
struct KeySpec {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    owner: Option<Ref>,
    #[serde(default)]
    resource: Option<Ref>,
}

#[derive(Deserialize, utoipa::ToSchema)]
struct KeyBody {
    #[serde(default)]
    spec: KeySpec,
}

#[utoipa::path(
    post,
    path = "/iam/v2/api-keys",
    tag = "IAM",
    request_body(content = KeyBody, content_type = "application/json"),
    responses((status = 202, description = "Success", body = weir_api::ApiKey, content_type = "application/json"))
)]
async fn create_key(
    State(state): State<AppState>,
    p: Principal,
    body: Result<Json<KeyBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(b) = body?;
    let org = p.org_id.clone();
    let owner = b
        .spec
        .owner
        .map(|o| o.id)
        .unwrap_or_else(|| p.principal_id.clone());
    if owner != p.principal_id {
        if !owner.starts_with("sa-")
            || state
                .store
                .get_service_account(&org, &owner)
                .await?
                .is_none()
        {
            return Err(ApiError::bad_request(format!(
                "spec.owner.id '{owner}' is not a service account of this organization (a key is owned by its caller or by a service account)"
            )));
        }
        p.access
            .require(Permission::Manage, &Crn::service_account(&org, &owner))?;
    }
    // A key may be limited to one environment (or to the organization).
    let scope = match b.spec.resource.map(|r| r.id) {
        None => None,
        Some(r) if r == org || r == Crn::organization(&org).as_str() => None,
        Some(r) => {
            let env = state
                .store
                .get_environment(&org, r.trim_start_matches(&format!("{}/environment=", Crn::organization(&org))))
                .await?
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "spec.resource.id '{r}' is neither this organization nor one of its environments"
                    ))
                })?;
            Some(Crn::environment(&org, &env.id).as_str().to_string())
        }
    };
    let description = text_field(
        "spec.description",
        b.spec
            .description
            .or(b.spec.display_name)
            .as_deref()
            .unwrap_or_default(),
        256,
        false,
    )?;
    state
        .config
        .limits
        .admit(&state.store, Quota::ApiKeys, &org, "")
        .await?;
    let (id, secret) = new_key();
    let hash = hash_secret(&secret);
    state
        .store
        .create_owned_api_key(&org, &id, &hash, &owner, scope.as_deref(), &description)
        .await?;
    let info = state
        .store
        .get_api_key(&org, &id)
        .await?
        .ok_or_else(|| ApiError::internal("a key just made is gone"))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(key_json(&state, &org, &info, Some(&secret))),
    ))
}

async fn find_key(
    state: &AppState,
    p: &Principal,
    id: &str,
    need: Permission,
) -> Result<ApiKeyInfo, ApiError> {
    let k = state
        .store
        .get_api_key(&p.org_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("API key '{id}'")))?;
    if !may_touch_key(p, &k, need) {
        p.access.require(need, &Crn::api_key(&p.org_id, id))?;
    }
    Ok(k)
}

#[utoipa::path(
    get,
    path = "/iam/v2/api-keys/{id}",
    tag = "IAM",
    params(("id" = String, Path, description = "The resource id")),
    responses((status = 200, description = "Success", body = weir_api::ApiKey, content_type = "application/json"))
)]
async fn get_key(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let k = find_key(&state, &p, &id, Permission::View).await?;
    Ok(Json(key_json(&state, &p.org_id, &k, None)))
}

#[utoipa::path(
    patch,
    path = "/iam/v2/api-keys/{id}",
    tag = "IAM",
    params(("id" = String, Path, description = "The resource id")),
    request_body(content = KeyBody, content_type = "application/json"),
    responses((status = 200, description = "Success", body = weir_api::ApiKey, content_type = "application/json"))
)]
async fn update_key(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    body: Result<Json<KeyBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(b) = body?;
    find_key(&state, &p, &id, Permission::Manage).await?;
    if b.spec.owner.is_some() || b.spec.resource.is_some() {
        return Err(ApiError::bad_request(
            "a key's owner and resource cannot change; make a new key",
        ));
    }
    let description = text_field(
        "spec.description",
        b.spec
            .description
            .or(b.spec.display_name)
            .as_deref()
            .unwrap_or_default(),
        256,
        false,
    )?;
    state
        .store
        .update_api_key(&p.org_id, &id, &description)
        .await?;
    let k = find_key(&state, &p, &id, Permission::View).await?;
    Ok(Json(key_json(&state, &p.org_id, &k, None)))
}

#[utoipa::path(
    delete,
    path = "/iam/v2/api-keys/{id}",
    tag = "IAM",
    params(("id" = String, Path, description = "The resource id")),
    responses((status = 204, description = "Done; no body"))
)]
async fn delete_key(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    find_key(&state, &p, &id, Permission::Manage).await?;
    state.store.delete_api_key(&p.org_id, &id).await?;
    crate::auth::forget_key(&id);
    Ok(StatusCode::NO_CONTENT)
}

// ---- role bindings -------------------------------------------------------------

fn binding_json(state: &AppState, org: &str, b: &RoleBindingRecord) -> Value {
    crate::answer(weir_api::RoleBinding {
        api_version: "iam/v2".into(),
        kind: "RoleBinding".into(),
        id: b.id.clone(),
        metadata: crate::meta(
            format!("{}/iam/v2/role-bindings/{}", state.public_url, b.id),
            Crn::role_binding(org, &b.id).as_str(),
            Some(b.created_at),
        ),
        principal: b.principal.clone(),
        role_name: b.role_name.clone(),
        crn_pattern: b.crn_pattern.clone(),
    })
}

/// Whether the caller may see a binding: its own, or one on a resource it
/// may manage.
fn may_see_binding(p: &Principal, b: &RoleBindingRecord) -> bool {
    b.principal == format!("User:{}", p.principal_id)
        || parse_pattern(&b.crn_pattern).is_some_and(|c| {
            p.access.allows(Permission::View, &c) && p.access.allows(Permission::Manage, &c)
        })
        || p.access
            .allows(Permission::View, &Crn::role_binding(&p.org_id, &b.id))
}

#[derive(Deserialize, Default)]
struct BindingQuery {
    #[serde(default)]
    principal: Option<String>,
    #[serde(default)]
    crn_pattern: Option<String>,
    #[serde(default)]
    role_name: Option<String>,
}

#[utoipa::path(
    get,
    path = "/iam/v2/role-bindings",
    tag = "IAM",
    responses((status = 200, description = "Success", body = weir_api::ResourceList<weir_api::RoleBinding>, content_type = "application/json"))
)]
async fn list_bindings(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<BindingQuery>,
) -> Result<Json<Value>, ApiError> {
    let org = &p.org_id;
    let data = state
        .store
        .list_role_bindings(org, q.principal.as_deref())
        .await?
        .iter()
        .filter(|b| q.role_name.as_ref().is_none_or(|r| &b.role_name == r))
        .filter(|b| q.crn_pattern.as_ref().is_none_or(|c| &b.crn_pattern == c))
        .filter(|b| may_see_binding(&p, b))
        .map(|b| binding_json(&state, org, b))
        .collect();
    Ok(list(
        &state,
        "RoleBindingList",
        "/iam/v2/role-bindings",
        data,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct BindingBody {
    principal: String,
    role_name: String,
    crn_pattern: String,
}

#[utoipa::path(
    post,
    path = "/iam/v2/role-bindings",
    tag = "IAM",
    request_body(content = BindingBody, content_type = "application/json"),
    responses((status = 201, description = "Success", body = weir_api::RoleBinding, content_type = "application/json"))
)]
async fn create_binding(
    State(state): State<AppState>,
    p: Principal,
    body: Result<Json<BindingBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(b) = body?;
    let org = &p.org_id;
    if b.crn_pattern.len() > MAX_NAME_BYTES || b.principal.len() > MAX_NAME_BYTES {
        return Err(ApiError::bad_request(format!(
            "principal and crn_pattern are at most {MAX_NAME_BYTES} bytes"
        )));
    }
    let role = Role::parse(&b.role_name).ok_or_else(|| {
        ApiError::bad_request(format!(
            "role_name '{}' is not a role; use one of: {}",
            b.role_name,
            crate::authz::ROLES
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let pattern = parse_pattern(&b.crn_pattern).ok_or_else(|| {
        ApiError::bad_request(format!(
            "crn_pattern '{}' is not a resource name like crn://weir/organization={org}/environment=<id>",
            b.crn_pattern
        ))
    })?;
    if pattern.org() != Some(org.as_str()) {
        return Err(ApiError::bad_request(format!(
            "crn_pattern '{}' is not in this organization ({org})",
            b.crn_pattern
        )));
    }
    let principal_id = b.principal.strip_prefix("User:").ok_or_else(|| {
        ApiError::bad_request(format!(
            "principal '{}' is not 'User:<id>' (a user u-..., a service account sa-... or an identity pool pool-...)",
            b.principal
        ))
    })?;
    if principal_id.starts_with("pool-")
        && state
            .store
            .get_identity_pool(org, principal_id)
            .await?
            .is_none()
    {
        return Err(ApiError::bad_request(format!(
            "principal '{}' names no identity pool of this organization",
            b.principal
        )));
    }
    if principal_id.starts_with("sa-")
        && state
            .store
            .get_service_account(org, principal_id)
            .await?
            .is_none()
    {
        return Err(ApiError::bad_request(format!(
            "principal '{}' names no service account of this organization",
            b.principal
        )));
    }
    // Granting takes managing what is granted: no one hands out more than
    // it holds, and only an organization admin makes another.
    p.access.require(Permission::Manage, &pattern)?;
    if role == Role::OrganizationAdmin {
        p.access
            .require(Permission::Manage, &Crn::organization(org))?;
    }
    let rec = RoleBindingRecord {
        id: format!("rb-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]),
        principal: b.principal.clone(),
        role_name: role.as_str().into(),
        crn_pattern: pattern.as_str().into(),
        created_at: weir_catalog::now_millis(),
    };
    state.store.create_role_binding(org, &rec).await?;
    Ok((StatusCode::CREATED, Json(binding_json(&state, org, &rec))))
}

async fn find_binding(
    state: &AppState,
    p: &Principal,
    id: &str,
) -> Result<RoleBindingRecord, ApiError> {
    let b = state
        .store
        .get_role_binding(&p.org_id, id)
        .await?
        .filter(|b| may_see_binding(p, b))
        .ok_or_else(|| ApiError::not_found(&format!("role binding '{id}'")))?;
    Ok(b)
}

#[utoipa::path(
    get,
    path = "/iam/v2/role-bindings/{id}",
    tag = "IAM",
    params(("id" = String, Path, description = "The resource id")),
    responses((status = 200, description = "Success", body = weir_api::RoleBinding, content_type = "application/json"))
)]
async fn get_binding(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let b = find_binding(&state, &p, &id).await?;
    Ok(Json(binding_json(&state, &p.org_id, &b)))
}

#[utoipa::path(
    delete,
    path = "/iam/v2/role-bindings/{id}",
    tag = "IAM",
    params(("id" = String, Path, description = "The resource id")),
    responses((status = 204, description = "Done; no body"))
)]
async fn delete_binding(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let b = find_binding(&state, &p, &id).await?;
    let pattern = parse_pattern(&b.crn_pattern).unwrap_or_else(|| Crn::organization(&p.org_id));
    p.access.require(Permission::Manage, &pattern)?;
    if b.role_name == Role::OrganizationAdmin.as_str() {
        p.access
            .require(Permission::Manage, &Crn::organization(&p.org_id))?;
    }
    state.store.delete_role_binding(&p.org_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- audit log -------------------------------------------------------------------

#[derive(Deserialize, Default)]
struct AuditQuery {
    /// Milliseconds since the epoch; default: the last 24 hours.
    #[serde(default)]
    since: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/weir/v1/audit-log",
    tag = "IAM",
    responses((status = 200, description = "Success", body = weir_api::ResourceList<weir_api::AuditEntry>, content_type = "application/json"))
)]
async fn audit_log(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    p.access
        .require(Permission::Manage, &Crn::organization(&p.org_id))?;
    let since = q
        .since
        .unwrap_or_else(|| weir_catalog::now_millis() - 24 * 3600 * 1000);
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    let data: Vec<weir_api::AuditEntry> = state
        .store
        .list_audit(&p.org_id, since, limit)
        .await?
        .into_iter()
        .map(|r| weir_api::AuditEntry {
            id: r.id,
            time: iso(r.at),
            principal: r.principal,
            method: r.method,
            path: r.path,
            status: r.status,
            result: r.result,
            request_id: r.request_id,
            detail: r.detail,
        })
        .collect();
    Ok(Json(crate::answer(weir_api::ResourceList {
        api_version: "weir/v1".into(),
        kind: "AuditLog".into(),
        metadata: weir_api::ListPage {
            first: None,
            next: None,
            total_size: data.len(),
        },
        data,
    })))
}
