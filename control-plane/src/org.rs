//! The organization and Kafka-cluster lookups that clients of the managed
//! service make before they run SQL: `/org/v2/organizations`,
//! `/org/v2/environments` (which can also be created, renamed and, when
//! empty, deleted) and `/cmk/v2/clusters` (the Kafka clusters registered in
//! an environment, which SQL sees as databases). Scoped like every route to
//! the caller's organization, and to what its roles let it see.

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Principal;
use crate::authz::{Crn, Permission};
use crate::{ApiError, AppState};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(organizations))
        .routes(routes!(organization))
        .routes(routes!(environments, create_environment))
        .routes(routes!(environment, update_environment, delete_environment))
        .routes(routes!(clusters))
        .routes(routes!(cluster))
}

/// A one-page list, as the managed service's v2 APIs shape them.
fn list(
    state: &AppState,
    api_version: &str,
    kind: &str,
    path: &str,
    data: Vec<Value>,
) -> Json<Value> {
    Json(json!({
        "api_version": api_version,
        "kind": kind,
        "metadata": {"first": format!("{}{path}", state.public_url), "next": Value::Null, "total_size": data.len()},
        "data": data,
    }))
}

async fn organization_resource(state: &AppState, id: &str) -> Result<Value, ApiError> {
    let name = state
        .store
        .get_organization(id)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("organization '{id}'")))?;
    Ok(json!({
        "api_version": "org/v2",
        "kind": "Organization",
        "id": id,
        "metadata": {
            "self": format!("{}/org/v2/organizations/{id}", state.public_url),
            "resource_name": format!("crn://weir/organization={id}"),
        },
        "display_name": name,
    }))
}

/// The caller's organization: an API key belongs to exactly one.
#[utoipa::path(
    get,
    path = "/org/v2/organizations",
    tag = "Organization",
    responses((status = 200, description = "Success", body = serde_json::Value, content_type = "application/json"))
)]
async fn organizations(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    principal
        .access
        .require(Permission::View, &Crn::organization(&principal.org_id))?;
    let org = organization_resource(&state, &principal.org_id).await?;
    Ok(list(
        &state,
        "org/v2",
        "OrganizationList",
        "/org/v2/organizations",
        vec![org],
    ))
}

#[utoipa::path(
    get,
    path = "/org/v2/organizations/{id}",
    tag = "Organization",
    params(("id" = String, Path, description = "The resource id")),
    responses((status = 200, description = "Success", body = serde_json::Value, content_type = "application/json"))
)]
async fn organization(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.check_org(&id)?;
    principal
        .access
        .require(Permission::View, &Crn::organization(&id))?;
    Ok(Json(organization_resource(&state, &id).await?))
}

fn environment_resource(state: &AppState, org: &str, id: &str, name: &str) -> Value {
    json!({
        "api_version": "org/v2",
        "kind": "Environment",
        "id": id,
        "metadata": {
            "self": format!("{}/org/v2/environments/{id}", state.public_url),
            "resource_name": format!("crn://weir/organization={org}/environment={id}"),
        },
        "display_name": name,
    })
}

#[utoipa::path(
    get,
    path = "/org/v2/environments",
    tag = "Organization",
    responses((status = 200, description = "Success", body = serde_json::Value, content_type = "application/json"))
)]
async fn environments(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    let envs = state.store.list_environments(&principal.org_id).await?;
    let data = envs
        .iter()
        .filter(|e| {
            principal
                .access
                .allows(Permission::View, &Crn::environment(&e.org_id, &e.id))
        })
        .map(|e| environment_resource(&state, &e.org_id, &e.id, &e.name))
        .collect();
    Ok(list(
        &state,
        "org/v2",
        "EnvironmentList",
        "/org/v2/environments",
        data,
    ))
}

#[utoipa::path(
    get,
    path = "/org/v2/environments/{id}",
    tag = "Organization",
    params(("id" = String, Path, description = "The resource id")),
    responses((status = 200, description = "Success", body = serde_json::Value, content_type = "application/json"))
)]
async fn environment(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let e = state
        .store
        .get_environment(&principal.org_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("environment '{id}'")))?;
    principal
        .access
        .require(Permission::View, &Crn::environment(&e.org_id, &e.id))?;
    Ok(Json(environment_resource(
        &state, &e.org_id, &e.id, &e.name,
    )))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EnvParam {
    pub environment: Option<String>,
}

/// The environment a CMK request names in `?environment=`, in the caller's
/// organization.
pub(crate) async fn env_of(
    state: &AppState,
    p: &Principal,
    q: &EnvParam,
) -> Result<String, ApiError> {
    let env = q.environment.as_deref().ok_or_else(|| {
        ApiError::bad_request("the 'environment' query parameter is required (an environment id)")
    })?;
    let id = state
        .store
        .get_environment(&p.org_id, env)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("environment '{env}'")))?
        .id;
    p.access
        .require(Permission::View, &Crn::environment(&p.org_id, &id))?;
    Ok(id)
}

fn cluster_resource(state: &AppState, env: &str, c: &weir_catalog::ClusterRecord) -> Value {
    json!({
        "api_version": "cmk/v2",
        "kind": "Cluster",
        "id": c.id,
        "metadata": {
            "self": format!("{}/cmk/v2/clusters/{}?environment={env}", state.public_url, c.id),
        },
        "spec": {
            "display_name": c.name,
            "kafka_bootstrap_endpoint": c.bootstrap,
            "availability": "SINGLE_ZONE",
            "cloud": "SELF_HOSTED",
            "region": "local",
            "config": {"kind": "Basic"},
            "environment": {"id": env},
        },
        "status": {"phase": "PROVISIONED"},
    })
}

#[utoipa::path(
    get,
    path = "/cmk/v2/clusters",
    params(EnvParam),
    tag = "Organization",
    responses((status = 200, description = "Success", body = serde_json::Value, content_type = "application/json"))
)]
async fn clusters(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<EnvParam>,
) -> Result<Json<Value>, ApiError> {
    let env = env_of(&state, &principal, &q).await?;
    let data = state
        .store
        .list_clusters(&principal.org_id, &env)
        .await?
        .iter()
        .filter(|c| {
            principal.access.allows(
                Permission::View,
                &Crn::cluster(&principal.org_id, &env, &c.id),
            )
        })
        .map(|c| cluster_resource(&state, &env, c))
        .collect();
    Ok(list(
        &state,
        "cmk/v2",
        "ClusterList",
        &format!("/cmk/v2/clusters?environment={env}"),
        data,
    ))
}

#[utoipa::path(
    get,
    path = "/cmk/v2/clusters/{id}",
    tag = "Organization",
    params(EnvParam, ("id" = String, Path, description = "The resource id")),
    responses((status = 200, description = "Success", body = serde_json::Value, content_type = "application/json"))
)]
async fn cluster(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Query(q): Query<EnvParam>,
) -> Result<Json<Value>, ApiError> {
    let env = env_of(&state, &principal, &q).await?;
    let c = state
        .store
        .list_clusters(&principal.org_id, &env)
        .await?
        .into_iter()
        .find(|c| c.id == id || c.name == id)
        .ok_or_else(|| ApiError::not_found(&format!("Kafka cluster '{id}'")))?;
    principal.access.require(
        Permission::View,
        &Crn::cluster(&principal.org_id, &env, &c.id),
    )?;
    Ok(Json(cluster_resource(&state, &env, &c)))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct EnvironmentBody {
    #[serde(default)]
    display_name: Option<String>,
}

fn display_name(b: &EnvironmentBody) -> Result<String, ApiError> {
    let n = b.display_name.as_deref().unwrap_or_default().trim();
    if n.is_empty() || n.chars().count() > 64 || n.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "display_name is required: 1 to 64 characters, without control characters",
        ));
    }
    Ok(n.to_string())
}

/// A new, empty environment (its Kafka clusters and pools are added to it
/// afterwards).
#[utoipa::path(
    post,
    path = "/org/v2/environments",
    tag = "Organization",
    request_body(content = EnvironmentBody, content_type = "application/json"),
    responses((status = 201, description = "Success", body = serde_json::Value, content_type = "application/json"))
)]
async fn create_environment(
    State(state): State<AppState>,
    principal: Principal,
    body: Result<Json<EnvironmentBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(axum::http::StatusCode, Json<Value>), ApiError> {
    let Json(b) = body?;
    let name = display_name(&b)?;
    let org = &principal.org_id;
    let id = format!("env-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    principal
        .access
        .require(Permission::Manage, &Crn::environment(org, &id))?;
    if state
        .store
        .list_environments(org)
        .await?
        .iter()
        .any(|e| e.name == name)
    {
        return Err(ApiError::conflict(format!(
            "an environment named '{name}' already exists"
        )));
    }
    state.store.ensure_environment(org, &id, &name).await?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(environment_resource(&state, org, &id, &name)),
    ))
}

/// The caller's environment `id`, if its roles let it manage it.
async fn environment_to_manage(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> Result<weir_catalog::EnvironmentRecord, ApiError> {
    let org = &principal.org_id;
    let e = state
        .store
        .get_environment(org, id)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("environment '{id}'")))?;
    principal
        .access
        .require(Permission::Manage, &Crn::environment(org, &e.id))?;
    Ok(e)
}

#[utoipa::path(
    patch,
    path = "/org/v2/environments/{id}",
    tag = "Organization",
    params(("id" = String, Path, description = "The resource id")),
    request_body(content = EnvironmentBody, content_type = "application/json"),
    responses((status = 200, description = "Success", body = serde_json::Value, content_type = "application/json"))
)]
async fn update_environment(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    body: Result<Json<EnvironmentBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(b) = body?;
    let name = display_name(&b)?;
    let org = &principal.org_id;
    let e = environment_to_manage(&state, &principal, &id).await?;
    state.store.rename_environment(org, &e.id, &name).await?;
    Ok(Json(environment_resource(&state, org, &e.id, &name)))
}

/// Deletes an environment that holds nothing; one that still has Kafka
/// clusters, pools or statements is refused, saying which.
#[utoipa::path(
    delete,
    path = "/org/v2/environments/{id}",
    tag = "Organization",
    params(("id" = String, Path, description = "The resource id")),
    responses((status = 204, description = "Done; no body"))
)]
async fn delete_environment(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<axum::http::StatusCode, ApiError> {
    let org = &principal.org_id;
    let e = environment_to_manage(&state, &principal, &id).await?;
    match state.store.delete_environment(org, &e.id).await? {
        Ok(true) => Ok(axum::http::StatusCode::NO_CONTENT),
        Ok(false) => Err(ApiError::not_found(&format!("environment '{id}'"))),
        Err(held) => Err(ApiError::conflict(format!(
            "environment '{id}' still holds {held}; delete them first"
        ))),
    }
}
