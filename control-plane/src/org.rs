//! The organization and Kafka-cluster lookups that clients of the managed
//! service make before they run SQL: `/org/v2/organizations`,
//! `/org/v2/environments` (which can also be created, renamed and, when
//! empty, deleted) and `/cmk/v2/clusters` (the Kafka clusters registered in
//! an environment, which SQL sees as databases). Scoped like every route to
//! the caller's organization, and to what its roles let it see.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

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
        .routes(routes!(clusters, create_cluster))
        .routes(routes!(cluster, delete_cluster))
}

async fn organization_resource(state: &AppState, id: &str) -> Result<Value, ApiError> {
    let name = state
        .store
        .get_organization(id)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("organization '{id}'")))?;
    Ok(crate::answer(weir_api::Organization {
        api_version: "org/v2".into(),
        kind: "Organization".into(),
        id: id.to_string(),
        metadata: crate::meta(
            format!("{}/org/v2/organizations/{id}", state.public_url),
            Crn::organization(id).as_str(),
            None,
        ),
        display_name: name,
    }))
}

/// The caller's organization: an API key belongs to exactly one.
#[utoipa::path(
    get,
    path = "/org/v2/organizations",
    tag = "Organization",
    responses((status = 200, description = "Success", body = weir_api::ResourceList<weir_api::Organization>, content_type = "application/json"))
)]
async fn organizations(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    principal
        .access
        .require(Permission::View, &Crn::organization(&principal.org_id))?;
    let org = organization_resource(&state, &principal.org_id).await?;
    Ok(crate::iam::list_of(
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
    responses((status = 200, description = "Success", body = weir_api::Organization, content_type = "application/json"))
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
    crate::answer(weir_api::Environment {
        api_version: "org/v2".into(),
        kind: "Environment".into(),
        id: id.to_string(),
        metadata: crate::meta(
            format!("{}/org/v2/environments/{id}", state.public_url),
            Crn::environment(org, id).as_str(),
            None,
        ),
        display_name: name.to_string(),
    })
}

#[utoipa::path(
    get,
    path = "/org/v2/environments",
    tag = "Organization",
    responses((status = 200, description = "Success", body = weir_api::ResourceList<weir_api::Environment>, content_type = "application/json"))
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
    Ok(crate::iam::list_of(
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
    responses((status = 200, description = "Success", body = weir_api::Environment, content_type = "application/json"))
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
    crate::answer(weir_api::KafkaCluster {
        api_version: "cmk/v2".into(),
        kind: "Cluster".into(),
        id: c.id.clone(),
        metadata: crate::meta(
            format!(
                "{}/cmk/v2/clusters/{}?environment={env}",
                state.public_url, c.id
            ),
            "",
            None,
        ),
        spec: weir_api::KafkaClusterSpec {
            display_name: c.name.clone(),
            kafka_bootstrap_endpoint: c.bootstrap.clone(),
            availability: "SINGLE_ZONE".into(),
            cloud: "SELF_HOSTED".into(),
            region: "local".into(),
            config: weir_api::KindOnly {
                kind: "Basic".into(),
            },
            environment: weir_api::IdRef {
                id: env.to_string(),
            },
            // The password is never shown again.
            credentials: c.sasl.as_ref().map(|s| weir_api::SaslUser {
                mechanism: s.mechanism.clone(),
                username: s.username.clone(),
            }),
        },
        status: weir_api::KafkaClusterStatus {
            phase: "PROVISIONED".into(),
        },
    })
}

#[utoipa::path(
    get,
    path = "/cmk/v2/clusters",
    params(EnvParam),
    tag = "Organization",
    responses((status = 200, description = "Success", body = weir_api::ResourceList<weir_api::KafkaCluster>, content_type = "application/json"))
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
    Ok(crate::iam::list_of(
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
    responses((status = 200, description = "Success", body = weir_api::KafkaCluster, content_type = "application/json"))
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
    responses((status = 201, description = "Success", body = weir_api::Environment, content_type = "application/json"))
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
    responses((status = 200, description = "Success", body = weir_api::Environment, content_type = "application/json"))
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

/// Clusters one environment may register.
const MAX_CLUSTERS: usize = 20;
/// How long a cluster being registered has to answer.
const CLUSTER_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Deserialize, utoipa::ToSchema)]
struct ClusterEnvRef {
    id: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
struct ClusterSpecBody {
    /// The SQL database name its topics' tables are in.
    display_name: String,
    /// `host:port[,host:port...]` of its brokers.
    kafka_bootstrap_endpoint: String,
    #[serde(default)]
    environment: Option<ClusterEnvRef>,
    /// SASL credentials, when its brokers ask for them (kept sealed;
    /// never shown again).
    #[serde(default)]
    credentials: Option<ClusterCredentials>,
}

#[derive(Deserialize, utoipa::ToSchema)]
struct ClusterCredentials {
    /// `PLAIN` (the default; the one mechanism this build's Kafka client
    /// can use without TLS).
    #[serde(default)]
    mechanism: Option<String>,
    username: String,
    password: String,
}

/// The longest SASL user name or password accepted.
const MAX_CREDENTIAL_BYTES: usize = 1024;

impl ClusterCredentials {
    fn check(self) -> Result<weir_catalog::SaslCredentials, ApiError> {
        let mechanism = self
            .mechanism
            .unwrap_or_else(|| "PLAIN".into())
            .to_ascii_uppercase();
        if !weir_catalog::SASL_MECHANISMS.contains(&mechanism.as_str()) {
            return Err(ApiError::bad_request(format!(
                "credentials.mechanism '{mechanism}' is not supported; use one of {}",
                weir_catalog::SASL_MECHANISMS.join(", ")
            )));
        }
        for (what, v) in [("username", &self.username), ("password", &self.password)] {
            if v.is_empty() || v.len() > MAX_CREDENTIAL_BYTES || v.contains('\0') {
                return Err(ApiError::bad_request(format!(
                    "credentials.{what} is 1 to {MAX_CREDENTIAL_BYTES} bytes, without NUL"
                )));
            }
        }
        Ok(weir_catalog::SaslCredentials {
            mechanism,
            username: self.username,
            password: self.password,
        })
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
struct ClusterBody {
    spec: ClusterSpecBody,
}

/// Registers a Kafka cluster in an environment: its topics become tables
/// of a database named `display_name` within seconds. It must answer a
/// metadata request first.
#[utoipa::path(
    post,
    path = "/cmk/v2/clusters",
    params(EnvParam),
    tag = "Organization",
    request_body(content = ClusterBody, content_type = "application/json"),
    responses((status = 201, description = "Success", body = weir_api::KafkaCluster, content_type = "application/json"))
)]
async fn create_cluster(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<EnvParam>,
    body: Result<Json<ClusterBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(b) = body?;
    let q = EnvParam {
        environment: b
            .spec
            .environment
            .as_ref()
            .map(|e| e.id.clone())
            .or(q.environment),
    };
    let env = env_of(&state, &principal, &q).await?;
    let org = principal.org_id.clone();
    let id = format!("lkc-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    principal
        .access
        .require(Permission::Manage, &Crn::cluster(&org, &env, &id))?;
    let sasl = b
        .spec
        .credentials
        .map(ClusterCredentials::check)
        .transpose()?;
    let name = b.spec.display_name.trim().to_string();
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(ApiError::bad_request(
            "display_name is the cluster's SQL database name: 1 to 64 letters, digits, '_' or '-'",
        ));
    }
    let bootstrap = b.spec.kafka_bootstrap_endpoint.trim().to_string();
    if bootstrap.is_empty()
        || bootstrap.len() > 1024
        || bootstrap
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        || !bootstrap.split(',').all(|hp| {
            hp.rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
        })
    {
        return Err(ApiError::bad_request(
            "kafka_bootstrap_endpoint is host:port[,host:port...]",
        ));
    }
    let existing = state.store.list_clusters(&org, &env).await?;
    state.config.limits.quota(
        "Kafka clusters in an environment",
        existing.len(),
        MAX_CLUSTERS,
    )?;
    if existing.iter().any(|c| c.name == name) {
        return Err(ApiError::conflict(format!(
            "environment '{env}' already has a Kafka cluster named '{name}'"
        )));
    }
    let kafka = weir_catalog::KafkaConnection {
        bootstrap: bootstrap.clone(),
        sasl,
    };
    let admin =
        weir_catalog::KafkaAdmin::new(&kafka).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let topics = admin
        .topics_within(CLUSTER_CHECK_TIMEOUT)
        .await
        .map_err(|e| {
            ApiError::bad_request(format!(
                "the Kafka cluster at {bootstrap} did not answer within {} s: {e}",
                CLUSTER_CHECK_TIMEOUT.as_secs()
            ))
        })?;
    let rec = weir_catalog::ClusterRecord {
        id,
        name,
        bootstrap,
        sasl: kafka.sasl,
    };
    state.store.ensure_cluster(&org, &env, &rec).await?;
    tracing::info!(
        org,
        env,
        cluster = rec.id,
        topics = topics.len(),
        "a Kafka cluster is registered"
    );
    Ok((
        StatusCode::CREATED,
        Json(cluster_resource(&state, &env, &rec)),
    ))
}

/// Forgets a Kafka cluster and the tables of its topics (the topics stay
/// in Kafka). Refused while statements run in the environment.
#[utoipa::path(
    delete,
    path = "/cmk/v2/clusters/{id}",
    params(EnvParam, ("id" = String, Path, description = "The resource id")),
    tag = "Organization",
    responses((status = 204, description = "Done; no body"))
)]
async fn delete_cluster(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Query(q): Query<EnvParam>,
) -> Result<StatusCode, ApiError> {
    let env = env_of(&state, &principal, &q).await?;
    let org = principal.org_id.clone();
    let c = state
        .store
        .list_clusters(&org, &env)
        .await?
        .into_iter()
        .find(|c| c.id == id || c.name == id)
        .ok_or_else(|| ApiError::not_found(&format!("Kafka cluster '{id}'")))?;
    principal
        .access
        .require(Permission::Manage, &Crn::cluster(&org, &env, &c.id))?;
    let running: Vec<String> = state
        .store
        .list_statements(&org, &env, &Default::default(), None, 10_000)
        .await?
        .into_iter()
        .filter(|s| weir_api::Phase::parse(&s.phase).is_none_or(|p| !p.is_terminal()))
        .map(|s| s.name)
        .take(5)
        .collect();
    if !running.is_empty() {
        return Err(ApiError::conflict(format!(
            "statements still run in environment '{env}' ({}); stop them before removing Kafka cluster '{}'",
            running.join(", "),
            c.name
        )));
    }
    state.store.delete_cluster(&org, &env, &c.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
