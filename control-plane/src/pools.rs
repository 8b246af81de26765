//! `/fcpm/v2/compute-pools`: create, list, get, update and delete the
//! compute pools of an environment. A pool's `status.current_cfu` is the
//! task slots its statements hold now, from the scheduler; its `max_cfu`
//! can change while statements run (a pool that grows lets waiting
//! statements start). A pool with statements that have not ended cannot be
//! deleted.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use weir_api::{
    AutoscalerSettings, ComputePool, ComputePoolList, ComputePoolRequest, ComputePoolSpec,
    ComputePoolStatus, EnvironmentRef, PoolMeta, FCPM_API_VERSION, MAX_POOL_CFU,
};
use weir_catalog::PoolRecord;

use crate::auth::Principal;
use crate::authz::{Crn, Permission};
use crate::limits::Quota;
use crate::org::{env_of, EnvParam};
use crate::{ApiError, AppState};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_one, update, delete))
}

use crate::iam::iso;

/// A pool's autoscaler settings: the stored ones over the defaults.
pub(crate) fn settings_of(p: &PoolRecord) -> AutoscalerSettings {
    serde_json::from_str(&p.autoscaler).unwrap_or_default()
}

fn resource(state: &AppState, org: &str, env: &str, p: &PoolRecord) -> ComputePool {
    let url = &state.public_url;
    ComputePool {
        api_version: FCPM_API_VERSION.into(),
        kind: "ComputePool".into(),
        id: p.id.clone(),
        metadata: PoolMeta {
            self_: format!("{url}/fcpm/v2/compute-pools/{}?environment={env}", p.id),
            resource_name: format!(
                "crn://weir/organization={org}/environment={env}/flink-region=local/compute-pool={}",
                p.id
            ),
            created_at: iso(p.created_at),
            updated_at: iso(p.updated_at.max(p.created_at)),
        },
        spec: ComputePoolSpec {
            display_name: Some(p.display_name.clone()),
            cloud: Some("SELF_HOSTED".into()),
            region: Some("local".into()),
            max_cfu: Some(p.max_cfu),
            environment: Some(EnvironmentRef {
                id: env.to_string(),
                related: format!("{url}/org/v2/environments/{env}"),
                resource_name: format!("crn://weir/organization={org}/environment={env}"),
            }),
            autoscaler: Some(settings_of(p)),
        },
        status: ComputePoolStatus {
            phase: "PROVISIONED".into(),
            current_cfu: state.scheduler.pool_cfu(org, env, &p.id) as i64,
        },
    }
}

/// The environment of a request: `?environment=` or the body's
/// `spec.environment.id` (the managed service's clients send either).
async fn env_from(
    state: &AppState,
    p: &Principal,
    q: &EnvParam,
    spec: Option<&ComputePoolSpec>,
) -> Result<String, ApiError> {
    let from_body = spec
        .and_then(|s| s.environment.as_ref())
        .map(|e| e.id.clone());
    let q = EnvParam {
        environment: q.environment.clone().or(from_body),
    };
    env_of(state, p, &q).await
}

fn check_max_cfu(v: i64) -> Result<i64, ApiError> {
    if !(1..=MAX_POOL_CFU).contains(&v) {
        return Err(ApiError::bad_request(format!(
            "spec.max_cfu is {v}; a compute pool's max_cfu must be from 1 to {MAX_POOL_CFU}"
        )));
    }
    Ok(v)
}

fn check_display_name(v: &str) -> Result<String, ApiError> {
    let v = v.trim();
    if v.is_empty() || v.chars().count() > 64 || v.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "spec.display_name must be 1 to 64 characters, without control characters",
        ));
    }
    Ok(v.to_string())
}

fn check_settings(s: &AutoscalerSettings) -> Result<String, ApiError> {
    s.validate().map_err(ApiError::bad_request)?;
    serde_json::to_string(s).map_err(|e| ApiError::internal(e.to_string()))
}

#[utoipa::path(
    get,
    path = "/fcpm/v2/compute-pools",
    params(EnvParam),
    tag = "Compute pools",
    responses((status = 200, description = "Success", body = weir_api::ComputePoolList, content_type = "application/json"))
)]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<EnvParam>,
) -> Result<Json<ComputePoolList>, ApiError> {
    let env = env_of(&state, &principal, &q).await?;
    let pools = state.store.list_pools(&principal.org_id, &env).await?;
    Ok(Json(ComputePoolList {
        api_version: FCPM_API_VERSION.into(),
        kind: "ComputePoolList".into(),
        data: pools
            .iter()
            .filter(|p| {
                principal
                    .access
                    .allows(Permission::View, &Crn::pool(&principal.org_id, &env, &p.id))
            })
            .map(|p| resource(&state, &principal.org_id, &env, p))
            .collect(),
    }))
}

#[utoipa::path(
    post,
    path = "/fcpm/v2/compute-pools",
    params(EnvParam),
    tag = "Compute pools",
    request_body(content = weir_api::ComputePoolRequest, content_type = "application/json"),
    responses((status = 202, description = "Success", body = weir_api::ComputePool, content_type = "application/json"))
)]
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<EnvParam>,
    body: Result<Json<ComputePoolRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<ComputePool>), ApiError> {
    let Json(req) = body?;
    let env = env_from(&state, &principal, &q, Some(&req.spec)).await?;
    let spec = req.spec;
    let display_name = check_display_name(spec.display_name.as_deref().ok_or_else(|| {
        ApiError::bad_request("spec.display_name is required: a name for the pool")
    })?)?;
    let max_cfu = check_max_cfu(spec.max_cfu.ok_or_else(|| {
        ApiError::bad_request(format!(
            "spec.max_cfu is required: the most CFUs (task slots) the pool's statements may hold, 1 to {MAX_POOL_CFU}"
        ))
    })?)?;
    let mut rec = PoolRecord::new(
        &format!("lfcp-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]),
        &display_name,
        max_cfu,
    );
    principal.access.require(
        Permission::Manage,
        &Crn::pool(&principal.org_id, &env, &rec.id),
    )?;
    state
        .config
        .limits
        .admit(&state.store, Quota::ComputePools, &principal.org_id, &env)
        .await?;
    if let Some(s) = &spec.autoscaler {
        rec.autoscaler = check_settings(s)?;
    }
    state
        .store
        .create_pool(&principal.org_id, &env, &rec)
        .await?;
    let rec = state
        .store
        .get_pool(&principal.org_id, &env, &rec.id)
        .await?
        .ok_or_else(|| ApiError::internal("a pool just created is gone"))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(resource(&state, &principal.org_id, &env, &rec)),
    ))
}

async fn find(state: &AppState, org: &str, env: &str, id: &str) -> Result<PoolRecord, ApiError> {
    state
        .store
        .get_pool(org, env, id)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("compute pool '{id}'")))
}

#[utoipa::path(
    get,
    path = "/fcpm/v2/compute-pools/{id}",
    tag = "Compute pools",
    params(EnvParam, ("id" = String, Path, description = "The resource id")),
    responses((status = 200, description = "Success", body = weir_api::ComputePool, content_type = "application/json"))
)]
async fn get_one(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Query(q): Query<EnvParam>,
) -> Result<Json<ComputePool>, ApiError> {
    let env = env_of(&state, &principal, &q).await?;
    let rec = find(&state, &principal.org_id, &env, &id).await?;
    principal
        .access
        .require(Permission::View, &Crn::pool(&principal.org_id, &env, &id))?;
    Ok(Json(resource(&state, &principal.org_id, &env, &rec)))
}

/// Changes the display name, `max_cfu` or autoscaler settings; fields left
/// out keep their value.
#[utoipa::path(
    patch,
    path = "/fcpm/v2/compute-pools/{id}",
    tag = "Compute pools",
    params(EnvParam, ("id" = String, Path, description = "The resource id")),
    request_body(content = weir_api::ComputePoolRequest, content_type = "application/json"),
    responses((status = 200, description = "Success", body = weir_api::ComputePool, content_type = "application/json"))
)]
async fn update(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Query(q): Query<EnvParam>,
    body: Result<Json<ComputePoolRequest>, JsonRejection>,
) -> Result<Json<ComputePool>, ApiError> {
    let Json(req) = body?;
    let env = env_from(&state, &principal, &q, Some(&req.spec)).await?;
    let org = &principal.org_id;
    let mut rec = find(&state, org, &env, &id).await?;
    principal
        .access
        .require(Permission::Manage, &Crn::pool(org, &env, &id))?;
    if let Some(n) = &req.spec.display_name {
        rec.display_name = check_display_name(n)?;
    }
    if let Some(m) = req.spec.max_cfu {
        rec.max_cfu = check_max_cfu(m)?;
    }
    if let Some(s) = &req.spec.autoscaler {
        rec.autoscaler = check_settings(s)?;
    }
    state.store.update_pool(org, &env, &rec).await?;
    state.scheduler.pool_changed(&rec.id, rec.max_cfu as usize);
    let rec = find(&state, org, &env, &id).await?;
    Ok(Json(resource(&state, org, &env, &rec)))
}

#[utoipa::path(
    delete,
    path = "/fcpm/v2/compute-pools/{id}",
    tag = "Compute pools",
    params(EnvParam, ("id" = String, Path, description = "The resource id")),
    responses((status = 204, description = "Done; no body"))
)]
async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Query(q): Query<EnvParam>,
) -> Result<StatusCode, ApiError> {
    let env = env_of(&state, &principal, &q).await?;
    find(&state, &principal.org_id, &env, &id).await?;
    principal
        .access
        .require(Permission::Manage, &Crn::pool(&principal.org_id, &env, &id))?;
    match state
        .store
        .delete_pool(&principal.org_id, &env, &id)
        .await?
    {
        Ok(true) => Ok(StatusCode::NO_CONTENT),
        Ok(false) => Err(ApiError::not_found(&format!("compute pool '{id}'"))),
        Err(running) => Err(ApiError::conflict(format!(
            "compute pool '{id}' still runs statements: {}. Stop or delete them first",
            running
                .iter()
                .map(|n| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
