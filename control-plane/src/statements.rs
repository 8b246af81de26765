//! `/sql/v1/organizations/{org}/environments/{env}/statements`.

use std::collections::BTreeMap;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use weir_api::{
    CreateStatementRequest, ListMeta, ObjectMeta, Phase, ResultData, ResultRow, Statement,
    StatementException, StatementExceptionList, StatementList, StatementResult, StatementSpec,
    StatementStatus, StatementTraits, SQL_API_VERSION,
};
use weir_catalog::{now_millis, SpecUpdate, StatementRecord};
use weir_sql_gateway::{analyze, execute_metadata, Analysis, CatalogContext, ResultSet, SinkSpec};

use crate::auth::Principal;
use crate::authz::{Crn, Permission};
use crate::limits::Quota;
use crate::{ApiError, AppState};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_one, update, patch, delete))
        .routes(routes!(results))
        .routes(routes!(exceptions))
        .routes(routes!(scaling_events))
}

/// The autoscaler's decisions for a statement, newest first (the last 100).
#[utoipa::path(
    get,
    path = "/sql/v1/organizations/{org}/environments/{env}/statements/{name}/scaling-events",
    tag = "Statements",
    params(("org" = String, Path, description = "The organization id"), ("env" = String, Path, description = "The environment id"), ("name" = String, Path, description = "The statement name")),
    responses((status = 200, description = "Success", body = weir_api::ScalingEventList, content_type = "application/json"))
)]
async fn scaling_events(
    State(state): State<AppState>,
    principal: Principal,
    Path((org, env, name)): Path<(String, String, String)>,
) -> Result<Json<weir_api::ScalingEventList>, ApiError> {
    let env_id = tenant(&state, &principal, &org, &env).await?;
    require_statement(&state, &principal, &org, &env_id, &name, Permission::View).await?;
    let data = state
        .store
        .scaling_events(&org, &env_id, &name, 100)
        .await?
        .iter()
        .filter_map(|e| serde_json::from_str(e).ok())
        .collect();
    Ok(Json(weir_api::ScalingEventList {
        api_version: SQL_API_VERSION.into(),
        kind: "ScalingEventList".into(),
        data,
    }))
}

/// The statement, if the caller may `need` it (404 when it does not
/// exist, 403 when the caller's roles do not allow it).
async fn require_statement(
    state: &AppState,
    p: &Principal,
    org: &str,
    env_id: &str,
    name: &str,
    need: Permission,
) -> Result<StatementRecord, ApiError> {
    let rec = state
        .store
        .get_statement(org, env_id, name)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("statement '{name}'")))?;
    may(p, &rec, need)?;
    Ok(rec)
}

/// Checks the caller's organization and that the environment exists in it.
async fn tenant(state: &AppState, p: &Principal, org: &str, env: &str) -> Result<String, ApiError> {
    p.check_org(org)?;
    let e = state
        .store
        .get_environment(org, env)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("environment '{env}'")))?;
    p.access
        .require(Permission::View, &Crn::environment(org, &e.id))?;
    Ok(e.id)
}

/// The principal a statement runs as (`spec.principal`).
fn owner_of(rec: &StatementRecord) -> Option<String> {
    serde_json::from_str::<StatementSpec>(&rec.spec)
        .ok()
        .and_then(|s| s.principal)
}

/// Whether the caller may `need` the statement: `View` it, or `Manage` it
/// (any statement with a role that manages statements, its own with one
/// that manages its own).
fn may(p: &Principal, rec: &StatementRecord, need: Permission) -> Result<(), ApiError> {
    let crn = Crn::statement(&rec.org_id, &rec.env_id, &rec.name);
    if need == Permission::Manage
        && owner_of(rec).as_deref() == Some(p.principal_id.as_str())
        && p.access.allows(Permission::ManageOwn, &crn)
    {
        return Ok(());
    }
    p.access.require(need, &crn)
}

/// The caller may have statements run as `principal`: itself, or a service
/// account of the organization it may manage.
async fn may_run_as(state: &AppState, p: &Principal, principal: &str) -> Result<(), ApiError> {
    if principal == p.principal_id {
        return Ok(());
    }
    if !principal.starts_with("sa-")
        || state
            .store
            .get_service_account(&p.org_id, principal)
            .await?
            .is_none()
    {
        return Err(ApiError::bad_request(format!(
            "spec.principal '{principal}' is not a service account of this organization (a statement runs as its caller or as a service account)"
        )));
    }
    p.access.require(
        Permission::Manage,
        &Crn::service_account(&p.org_id, principal),
    )
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

use crate::iam::iso;

fn statement_url(state: &AppState, org: &str, env: &str, name: &str) -> String {
    format!(
        "{}/sql/v1/organizations/{org}/environments/{env}/statements/{name}",
        state.public_url
    )
}

async fn to_resource(state: &AppState, rec: &StatementRecord) -> Result<Statement, ApiError> {
    let spec: StatementSpec =
        serde_json::from_str(&rec.spec).map_err(|e| ApiError::internal(e.to_string()))?;
    let traits: Option<StatementTraits> = rec
        .traits
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok());
    let mut latest_offsets = BTreeMap::new();
    let offsets = state
        .store
        .load_offsets(&rec.org_id, &rec.env_id, &rec.name)
        .await?;
    for (topic, p, o) in &offsets {
        let e: &mut String = latest_offsets.entry(topic.clone()).or_default();
        if !e.is_empty() {
            e.push(',');
        }
        e.push_str(&format!("partition:{p},offset:{o}"));
    }
    let latest_offsets_timestamp = state
        .store
        .offsets_updated_at(&rec.org_id, &rec.env_id, &rec.name)
        .await?
        .map(iso);
    let metrics = state.scheduler.metrics(&rec.org_id, &rec.env_id, &rec.name);
    let metrics_pending = metrics.as_ref().map(|m| m.pending_records);
    let metrics = metrics.or_else(|| {
        rec.metrics
            .as_deref()
            .and_then(|m| serde_json::from_str(m).ok())
    });
    Ok(Statement {
        api_version: SQL_API_VERSION.into(),
        kind: "Statement".into(),
        organization_id: rec.org_id.clone(),
        environment_id: rec.env_id.clone(),
        name: rec.name.clone(),
        metadata: ObjectMeta {
            self_: statement_url(state, &rec.org_id, &rec.env_id, &rec.name),
            created_at: iso(rec.created_at),
            updated_at: iso(rec.updated_at),
            uid: rec.uid.clone(),
            resource_version: rec.resource_version.to_string(),
            labels: serde_json::from_str(&rec.labels).unwrap_or_default(),
        },
        spec,
        status: StatementStatus {
            phase: Phase::parse(&rec.phase).unwrap_or_default(),
            detail: rec.detail.clone(),
            traits,
            latest_offsets,
            latest_offsets_timestamp,
            metrics,
            worker: state
                .scheduler
                .workers()
                .and_then(|w| w.worker_of(&rec.uid)),
            stages: state.scheduler.stages(&rec.org_id, &rec.env_id, &rec.name),
            scaling: scaling_of(state, rec, metrics_pending).await?,
        },
    })
}

/// A statement's scaling status, its pending records live while it runs.
async fn scaling_of(
    state: &AppState,
    rec: &StatementRecord,
    pending: Option<u64>,
) -> Result<Option<weir_api::ScalingStatus>, ApiError> {
    let Some(json) = state
        .store
        .scaling_status(&rec.org_id, &rec.env_id, &rec.name, &rec.uid)
        .await?
    else {
        return Ok(None);
    };
    let mut s: weir_api::ScalingStatus =
        serde_json::from_str(&json).map_err(|e| ApiError::internal(e.to_string()))?;
    if pending.is_some() {
        s.pending_records = pending;
    }
    Ok(Some(s))
}

/// The most labels one statement may carry.
const MAX_LABELS: usize = 64;

#[utoipa::path(
    post,
    path = "/sql/v1/organizations/{org}/environments/{env}/statements",
    tag = "Statements",
    params(("org" = String, Path, description = "The organization id"), ("env" = String, Path, description = "The environment id")),
    request_body(content = weir_api::CreateStatementRequest, content_type = "application/json"),
    responses((status = 200, description = "Success", body = weir_api::Statement, content_type = "application/json"), (status = 201, description = "Success", body = weir_api::Statement, content_type = "application/json"))
)]
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Path((org, env)): Path<(String, String)>,
    body: Result<Json<CreateStatementRequest>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let env_id = tenant(&state, &principal, &org, &env).await?;
    let Json(req) = body?;
    let name = match req.name {
        Some(n) if valid_name(&n) => n,
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "statement name '{n}' is not valid: use 1 to 100 lowercase letters, digits and '-', not starting or ending with '-'"
            )))
        }
        None => format!("stmt-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
    };
    let labels = req.metadata.map(|m| m.labels).unwrap_or_default();
    if labels.len() > MAX_LABELS {
        return Err(ApiError::bad_request(format!(
            "a statement takes at most {MAX_LABELS} labels, not {}",
            labels.len()
        )));
    }
    if let Some((k, v)) = labels
        .iter()
        .find(|(k, v)| k.is_empty() || k.len() > 253 || v.len() > 1024)
    {
        return Err(ApiError::bad_request(format!(
            "label '{k}' = '{v}' is not valid: a key of 1 to 253 characters and a value of at most 1024"
        )));
    }
    let mut spec = req.spec;
    if spec.statement.trim().is_empty() {
        return Err(ApiError::bad_request(
            "spec.statement is empty: send the SQL text to run",
        ));
    }
    if let Some(pool) = &spec.compute_pool_id {
        if state.store.get_pool(&org, &env_id, pool).await?.is_none() {
            return Err(ApiError::bad_request(format!(
                "compute pool '{pool}' does not exist in environment '{env}'"
            )));
        }
        principal
            .access
            .require(Permission::Run, &Crn::pool(&org, &env_id, pool))?;
    } else {
        spec.compute_pool_id = state
            .store
            .list_pools(&org, &env_id)
            .await?
            .first()
            .map(|p| p.id.clone());
    }
    // A statement runs as its principal: the caller, or a service account
    // the caller may run as.
    let runs_as = spec
        .principal
        .get_or_insert(principal.principal_id.clone())
        .clone();
    may_run_as(&state, &principal, &runs_as).await?;
    if let Some(pool) = &spec.compute_pool_id {
        principal
            .access
            .require(Permission::Run, &Crn::pool(&org, &env_id, pool))?;
    }
    if state
        .store
        .get_statement(&org, &env_id, &name)
        .await?
        .is_some()
    {
        return Err(ApiError::conflict(format!(
            "statement '{name}' already exists; choose another name or delete it first"
        )));
    }
    state
        .config
        .limits
        .admit(&state.store, Quota::Statements, &org, &env_id)
        .await?;
    let ctx = CatalogContext::load(&state.store, &org, &env_id, &spec.properties).await?;
    let planner = state.planner.clone();
    let sql = spec.statement.clone();
    let planned = crate::planning::isolated(state.scheduler.planning(), &org, move || {
        let analysis = analyze(&planner, &sql, &ctx);
        (analysis, ctx)
    })
    .await;
    let (analysis, ctx) = match planned {
        Ok((analysis, ctx)) => (analysis?, ctx),
        Err(crash) => {
            return failed_in_planning(&state, &org, &env_id, &name, spec, &crash)
                .await
                .map(IntoResponse::into_response);
        }
    };
    // Every table the statement reads, writes or changes, for its
    // principal: refused now, naming the role and the table, if missing.
    let needs = crate::access::needs(&ctx, &analysis);
    let runs_as_access = if runs_as == principal.principal_id {
        principal.access.clone()
    } else {
        crate::access::access_of(&state.store, &org, &runs_as).await?
    };
    crate::access::check(&runs_as_access, &needs)?;
    weir_sql_gateway::idle_timeout_ms(&spec.properties)?;
    weir_sql_gateway::checkpoint_interval_ms(&spec.properties)?;
    weir_sql_gateway::state_ttl_ms(&spec.properties)?;
    weir_sql_gateway::memory_limit(&spec.properties, state.config.statement_memory_limit)?;
    let mut rec = new_record(&org, &env_id, &name, &spec, Phase::Pending);
    rec.labels = serde_json::to_string(&labels).expect("labels serialize");
    // `'sql.dry-run' = 'true'`: validated and planned, answered in full
    // here, and neither kept nor run (a DDL changes nothing).
    let dry_run = spec
        .properties
        .get("sql.dry-run")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let start = match analysis {
        Analysis::Metadata(stmt) if dry_run => {
            rec.phase = Phase::Completed.as_str().into();
            rec.traits = Some(
                serde_json::to_string(&StatementTraits {
                    sql_kind: metadata_kind(&stmt).into(),
                    is_bounded: true,
                    is_append_only: true,
                    upsert_columns: None,
                    schema: None,
                })
                .expect("traits serialize"),
            );
            false
        }
        Analysis::Metadata(stmt) => {
            let result =
                execute_metadata(&state.planner, &stmt, &ctx, &state.store, &spec.properties)
                    .await?;
            let kind = metadata_kind(&stmt);
            rec.phase = Phase::Completed.as_str().into();
            rec.traits = Some(traits_json(kind, true, &result));
            rec.result = Some(serde_json::to_string(&result.rows).expect("rows serialize"));
            false
        }
        Analysis::Explain(text) => {
            let result = ResultSet {
                columns: vec![("plan".into(), weir_catalog::SqlType::String, false)],
                rows: vec![vec![json!(text)]],
            };
            rec.phase = Phase::Completed.as_str().into();
            rec.traits = Some(traits_json("EXPLAIN", true, &result));
            rec.result = Some(serde_json::to_string(&result.rows).expect("rows serialize"));
            false
        }
        Analysis::Streaming {
            plan,
            sql_kind,
            create,
            if_not_exists,
        } => {
            // Refused now (a 400), not when a worker starts it.
            ctx.plan_cluster(&plan)?;
            if let Some(def) = create.filter(|_| !dry_run) {
                let cluster = ctx.current_cluster()?.clone();
                weir_sql_gateway::create_table(&state.store, &ctx, &cluster, &def, if_not_exists)
                    .await?;
            }
            let columns = plan
                .output_schema
                .fields()
                .iter()
                .map(|f| weir_api::ColumnDescriptor {
                    name: f.name().clone(),
                    type_: weir_catalog::SqlType::from_arrow(f.data_type())
                        .map(|t| t.descriptor(f.is_nullable()))
                        .unwrap_or_default(),
                })
                .collect();
            // A bounded SELECT's result is its final rows, inserts only.
            let append_only = plan.root.is_append_only()
                || (plan.is_bounded() && matches!(plan.sink, SinkSpec::Results));
            let traits = StatementTraits {
                sql_kind: sql_kind.into(),
                is_bounded: plan.is_bounded(),
                is_append_only: append_only,
                upsert_columns: (!append_only)
                    .then(|| plan.root.upsert_key())
                    .flatten()
                    .map(|k| k.into_iter().map(|i| i as u32).collect()),
                schema: matches!(plan.sink, SinkSpec::Results)
                    .then_some(weir_api::ResultSchema { columns }),
            };
            rec.traits = Some(serde_json::to_string(&traits).expect("traits serialize"));
            check_slots(
                &state,
                &org,
                &env_id,
                spec.compute_pool_id.as_deref(),
                &plan,
                &ctx,
            )
            .await?;
            if spec.stopped {
                rec.phase = Phase::Stopped.as_str().into();
            }
            !spec.stopped
        }
    };
    rec.spec = serde_json::to_string(&spec).expect("spec serializes");
    if dry_run {
        if rec.phase == Phase::Pending.as_str() {
            rec.phase = Phase::Completed.as_str().into();
        }
        let resource = to_resource(&state, &rec).await?;
        return Ok((StatusCode::OK, Json(resource)).into_response());
    }
    state.store.insert_statement(&rec).await?;
    if start {
        crate::access::record(&state.store, &org, &env_id, &name, &runs_as, &needs).await?;
        if let Err(e) = state.scheduler.start(&org, &env_id, &name).await {
            state
                .store
                .update_statement_status(&org, &env_id, &name, Phase::Failed.as_str(), &e.detail)
                .await?;
        }
    }
    let rec = state
        .store
        .get_statement(&org, &env_id, &name)
        .await?
        .ok_or_else(|| ApiError::internal("statement vanished"))?;
    let resource = to_resource(&state, &rec).await?;
    let location = resource.metadata.self_.clone();
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(resource),
    )
        .into_response())
}

/// Refuses a statement whose tasks could never all run at once on its
/// pool (one CFU per task).
async fn check_slots(
    state: &AppState,
    org: &str,
    env_id: &str,
    pool: Option<&str>,
    plan: &weir_sql_gateway::StreamingPlan,
    ctx: &CatalogContext,
) -> Result<(), ApiError> {
    let needed = crate::parallel::tasks_needed(plan, ctx.parallelism);
    let Some(pool) = pool else { return Ok(()) };
    let Some(rec) = state.store.get_pool(org, env_id, pool).await? else {
        return Ok(());
    };
    let max = rec.max_cfu.max(0) as usize;
    if needed > max {
        let p = ctx.parallelism.unwrap_or(1);
        return Err(ApiError::bad_request(format!(
            "'{}' = '{p}' needs {needed} tasks ({}), more than compute pool '{pool}' has: its max_cfu is {max}, one CFU per task. Lower '{}' or raise the pool's max_cfu",
            weir_sql_gateway::properties::PARALLELISM,
            if needed == 2 * p as usize { format!("{p} reading the sources and {p} running the keyed operator") } else { format!("{p} reading the sources") },
            weir_sql_gateway::properties::PARALLELISM,
        )));
    }
    Ok(())
}

/// A new statement's record in `phase`, its spec and detail still empty.
fn new_record(
    org: &str,
    env_id: &str,
    name: &str,
    spec: &StatementSpec,
    phase: Phase,
) -> StatementRecord {
    let now = now_millis();
    StatementRecord {
        org_id: org.to_string(),
        env_id: env_id.to_string(),
        name: name.to_string(),
        uid: uuid::Uuid::new_v4().to_string(),
        compute_pool_id: spec.compute_pool_id.clone(),
        spec: String::new(),
        phase: phase.as_str().into(),
        detail: String::new(),
        traits: None,
        result: None,
        metrics: None,
        resource_version: 1,
        created_at: now,
        updated_at: now,
        labels: "{}".into(),
    }
}

/// Keeps a statement whose planning crashed as `FAILED`, the crash in its
/// exceptions: a bug in Weir, not in the SQL, and nothing else is affected.
async fn failed_in_planning(
    state: &AppState,
    org: &str,
    env_id: &str,
    name: &str,
    spec: StatementSpec,
    crash: &str,
) -> Result<
    (
        StatusCode,
        [(header::HeaderName, String); 1],
        Json<Statement>,
    ),
    ApiError,
> {
    tracing::error!(
        org,
        env = env_id,
        statement = name,
        crash,
        "planning crashed"
    );
    let detail = format!(
        "Weir failed while planning this statement ({crash}). This is a bug in Weir, not in the \
         SQL; the statement was not started and nothing else was affected"
    );
    let mut rec = new_record(org, env_id, name, &spec, Phase::Failed);
    rec.spec = serde_json::to_string(&spec).expect("spec serializes");
    rec.detail = detail.clone();
    state.store.insert_statement(&rec).await?;
    state
        .store
        .add_exception(org, env_id, name, &detail)
        .await?;
    let resource = to_resource(state, &rec).await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, resource.metadata.self_.clone())],
        Json(resource),
    ))
}

fn metadata_kind(stmt: &weir_sql_gateway::FlinkStatement) -> &'static str {
    use weir_sql_gateway::{FlinkStatement as F, ShowKind as S};
    match stmt {
        F::Show(S::Tables) => "SHOW_TABLES",
        F::Show(S::Databases) => "SHOW_DATABASES",
        F::Show(S::Catalogs) => "SHOW_CATALOGS",
        F::Show(S::CreateTable(_)) => "SHOW_CREATE_TABLE",
        F::Show(_) => "SHOW",
        F::Describe { .. } => "DESCRIBE",
        F::UseCatalog(_) => "USE_CATALOG",
        F::UseDatabase(_) => "USE",
        F::Set(_) => "SET",
        F::Reset(_) => "RESET",
        F::CreateTable { .. } => "CREATE_TABLE",
        F::DropTable { .. } => "DROP_TABLE",
        F::CreateView { .. } => "CREATE_VIEW",
        F::DropView { .. } => "DROP_VIEW",
        F::AlterTableSet { .. } | F::AlterTable { .. } => "ALTER_TABLE",
        _ => "OTHER",
    }
}

fn traits_json(kind: &str, bounded: bool, result: &ResultSet) -> String {
    serde_json::to_string(&StatementTraits {
        sql_kind: kind.into(),
        is_bounded: bounded,
        is_append_only: true,
        upsert_columns: None,
        schema: Some(result.schema()),
    })
    .expect("traits serialize")
}

#[utoipa::path(
    get,
    path = "/sql/v1/organizations/{org}/environments/{env}/statements/{name}",
    tag = "Statements",
    params(("org" = String, Path, description = "The organization id"), ("env" = String, Path, description = "The environment id"), ("name" = String, Path, description = "The statement name")),
    responses((status = 200, description = "Success", body = weir_api::Statement, content_type = "application/json"))
)]
async fn get_one(
    State(state): State<AppState>,
    principal: Principal,
    Path((org, env, name)): Path<(String, String, String)>,
) -> Result<Json<Statement>, ApiError> {
    let env_id = tenant(&state, &principal, &org, &env).await?;
    let rec = require_statement(&state, &principal, &org, &env_id, &name, Permission::View).await?;
    Ok(Json(to_resource(&state, &rec).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    page_size: Option<i64>,
    page_token: Option<String>,
    #[serde(rename = "spec.compute_pool_id")]
    compute_pool_id: Option<String>,
    /// `key=value[,key=value...]`: statements with all of these labels.
    label_selector: Option<String>,
    /// A part of the statement's name.
    statement_name_search_query: Option<String>,
}

#[utoipa::path(
    get,
    path = "/sql/v1/organizations/{org}/environments/{env}/statements",
    tag = "Statements",
    params(ListParams, ("org" = String, Path, description = "The organization id"), ("env" = String, Path, description = "The environment id")),
    responses((status = 200, description = "Success", body = weir_api::StatementList, content_type = "application/json"))
)]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Path((org, env)): Path<(String, String)>,
    Query(params): Query<ListParams>,
) -> Result<Json<StatementList>, ApiError> {
    let env_id = tenant(&state, &principal, &org, &env).await?;
    let size = params.page_size.unwrap_or(100);
    if !(1..=1000).contains(&size) {
        return Err(ApiError::bad_request(
            "page_size must be between 1 and 1000",
        ));
    }
    if let Some(t) = params.page_token.as_deref().filter(|t| !t.is_empty()) {
        if !valid_name(t) {
            return Err(ApiError::bad_request(
                "page_token is not one this API gave out; start again without it",
            ));
        }
    }
    let mut filter = weir_catalog::StatementFilter {
        compute_pool: params.compute_pool_id.clone(),
        name_contains: params.statement_name_search_query.clone(),
        ..Default::default()
    };
    for term in params
        .label_selector
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        match term.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() && !v.contains('=') => filter
                .labels
                .push((k.trim().to_string(), v.trim().to_string())),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "label_selector term '{term}' is not key=value; Weir takes key=value terms separated by commas"
                )))
            }
        }
    }
    let recs = state
        .store
        .list_statements(
            &org,
            &env_id,
            &filter,
            params.page_token.as_deref(),
            size + 1,
        )
        .await?;
    let more = recs.len() as i64 > size;
    let mut data = vec![];
    for r in recs.iter().take(size as usize) {
        // Only the statements the caller may see.
        if may(&principal, r, Permission::View).is_ok() {
            data.push(to_resource(&state, r).await?);
        }
    }
    let base = format!(
        "{}/sql/v1/organizations/{org}/environments/{env}/statements",
        state.public_url
    );
    let next = if more {
        // The next page keeps the filters of this one.
        let mut query: Vec<(&str, String)> = vec![
            ("page_size", size.to_string()),
            (
                "page_token",
                data.last().map(|s| s.name.clone()).unwrap_or_default(),
            ),
        ];
        for (k, v) in [
            ("spec.compute_pool_id", &params.compute_pool_id),
            ("label_selector", &params.label_selector),
            (
                "statement_name_search_query",
                &params.statement_name_search_query,
            ),
        ] {
            if let Some(v) = v {
                query.push((k, v.clone()));
            }
        }
        format!(
            "{base}?{}",
            serde_urlencoded::to_string(&query).expect("strings encode")
        )
    } else {
        String::new()
    };
    Ok(Json(StatementList {
        api_version: SQL_API_VERSION.into(),
        kind: "StatementList".into(),
        metadata: ListMeta { self_: base, next },
        data,
    }))
}

#[utoipa::path(
    put,
    path = "/sql/v1/organizations/{org}/environments/{env}/statements/{name}",
    tag = "Statements",
    params(("org" = String, Path, description = "The organization id"), ("env" = String, Path, description = "The environment id"), ("name" = String, Path, description = "The statement name")),
    request_body(content = weir_api::Statement, content_type = "application/json"),
    responses((status = 200, description = "Success", body = weir_api::Statement, content_type = "application/json"))
)]
async fn update(
    State(state): State<AppState>,
    principal: Principal,
    Path((org, env, name)): Path<(String, String, String)>,
    body: Result<Json<Statement>, JsonRejection>,
) -> Result<Json<Statement>, ApiError> {
    let env_id = tenant(&state, &principal, &org, &env).await?;
    let Json(new) = body?;
    let version: i64 = new.metadata.resource_version.parse().map_err(|_| {
        ApiError::bad_request("metadata.resource_version is required: send the version you read")
    })?;
    let key = weir_sql_gateway::properties::PARALLELISM;
    let change = Change {
        parallelism: Some(new.spec.properties.get(key).cloned()),
        statement: Some(new.spec.statement),
        stopped: Some(new.spec.stopped),
        compute_pool_id: new.spec.compute_pool_id,
        principal: new.spec.principal,
    };
    apply(
        &state,
        &principal,
        &org,
        &env_id,
        &name,
        Some(version),
        change,
    )
    .await
}

/// One operation of a JSON Patch (RFC 6902) body.
#[derive(Deserialize, utoipa::ToSchema)]
struct PatchOp {
    op: String,
    path: String,
    #[serde(default)]
    value: serde_json::Value,
}

/// `PATCH` with a JSON Patch body, as the managed service's clients stop
/// and resume a statement (`[{"op": "replace", "path": "/spec/stopped",
/// "value": true}]`) or move it to another pool or principal. Only those
/// paths can change; the SQL cannot.
#[utoipa::path(
    patch,
    path = "/sql/v1/organizations/{org}/environments/{env}/statements/{name}",
    tag = "Statements",
    params(("org" = String, Path, description = "The organization id"), ("env" = String, Path, description = "The environment id"), ("name" = String, Path, description = "The statement name")),
    request_body(content = Vec<PatchOp>, content_type = "application/json-patch+json"),
    responses((status = 200, description = "Success", body = weir_api::Statement, content_type = "application/json"))
)]
async fn patch(
    State(state): State<AppState>,
    principal: Principal,
    Path((org, env, name)): Path<(String, String, String)>,
    body: Result<Json<Vec<PatchOp>>, JsonRejection>,
) -> Result<Json<Statement>, ApiError> {
    let env_id = tenant(&state, &principal, &org, &env).await?;
    let Json(ops) = body.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!(
                "the body must be a JSON Patch: an array of {{\"op\", \"path\", \"value\"}} ({})",
                e.body_text()
            ),
        )
    })?;
    let mut change = Change::default();
    for (i, op) in ops.iter().enumerate() {
        if !matches!(op.op.as_str(), "replace" | "add") {
            return Err(ApiError::bad_request(format!(
                "patch operation {i}: op '{}' is not supported; use \"replace\"",
                op.op
            )));
        }
        let text = |what: &str| -> Result<Option<String>, ApiError> {
            match &op.value {
                serde_json::Value::String(s) => Ok(Some(s.clone())),
                serde_json::Value::Null => Ok(None),
                v => Err(ApiError::bad_request(format!(
                    "patch operation {i}: {what} must be a string, not {v}"
                ))),
            }
        };
        match op.path.as_str() {
            "/spec/stopped" => {
                change.stopped = Some(op.value.as_bool().ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "patch operation {i}: /spec/stopped must be true or false, not {}",
                        op.value
                    ))
                })?)
            }
            "/spec/compute_pool_id" => change.compute_pool_id = text("/spec/compute_pool_id")?,
            "/spec/principal" => change.principal = text("/spec/principal")?,
            "/spec/statement" => change.statement = text("/spec/statement")?,
            "/spec/properties/sql.parallelism" => {
                change.parallelism = Some(match &op.value {
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    _ => text("/spec/properties/sql.parallelism")?,
                })
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "patch operation {i}: path '{other}' cannot be changed; \
                     a statement's /spec/stopped, /spec/compute_pool_id, /spec/principal and \
                     /spec/properties/sql.parallelism can"
                )))
            }
        }
    }
    apply(&state, &principal, &org, &env_id, &name, None, change).await
}

/// What an update or a patch asks to change; `None` leaves a field as it is.
#[derive(Default)]
struct Change {
    /// A new `'sql.parallelism'` (`Some(None)`: unset it): a rescale.
    parallelism: Option<Option<String>>,
    statement: Option<String>,
    stopped: Option<bool>,
    compute_pool_id: Option<String>,
    principal: Option<String>,
}

/// Applies `change` to a statement (at `expected_version` when given: a
/// `PUT` must carry the version it read), stopping or restarting it.
async fn apply(
    state: &AppState,
    caller: &Principal,
    org: &str,
    env_id: &str,
    name: &str,
    expected_version: Option<i64>,
    change: Change,
) -> Result<Json<Statement>, ApiError> {
    let rec = require_statement(state, caller, org, env_id, name, Permission::Manage).await?;
    // Another pool takes running statements on it; another principal must
    // be one the caller may run as, with every role the statement needs.
    if let Some(pool) = change
        .compute_pool_id
        .as_ref()
        .filter(|p| Some(*p) != rec.compute_pool_id.as_ref())
    {
        caller
            .access
            .require(Permission::Run, &Crn::pool(org, env_id, pool))?;
    }
    if let Some(new) = change
        .principal
        .as_ref()
        .filter(|p| Some(p.as_str()) != owner_of(&rec).as_deref())
    {
        may_run_as(state, caller, new).await?;
        if let Some((_, needs)) = state.store.statement_access(org, env_id, name).await? {
            let access = crate::access::access_of(&state.store, org, new).await?;
            crate::access::check(&access, &crate::access::decode(&needs))?;
            state
                .store
                .set_statement_access(org, env_id, name, new, &needs)
                .await?;
        }
    }
    let mut spec: StatementSpec =
        serde_json::from_str(&rec.spec).map_err(|e| ApiError::internal(e.to_string()))?;
    if change.statement.is_some_and(|s| s != spec.statement) {
        return Err(ApiError::bad_request(
            "spec.statement cannot change; create a new statement for new SQL",
        ));
    }
    let version = expected_version.unwrap_or(rec.resource_version);
    if version != rec.resource_version {
        return Err(ApiError::conflict(format!(
            "resource_version {version} is stale (current is {}); read the statement again and retry",
            rec.resource_version
        )));
    }
    let key = weir_sql_gateway::properties::PARALLELISM;
    let rescale = change
        .parallelism
        .filter(|p| p.as_ref() != spec.properties.get(key));
    if let Some(p) = &rescale {
        let mut props = spec.properties.clone();
        match p {
            Some(v) => props.insert(key.to_string(), v.clone()),
            None => props.remove(key),
        };
        check_rescale(state, org, env_id, &rec, &spec, &props).await?;
        if !spec.stopped && !Phase::parse(&rec.phase).unwrap_or_default().is_terminal() {
            // The tasks drain and checkpoint; they start again below.
            state.scheduler.stop(org, env_id, name).await;
        }
        spec.properties = props;
    }
    let stopped = change.stopped.unwrap_or(spec.stopped);
    let phase = Phase::parse(&rec.phase).unwrap_or_default();
    let streaming = !matches!(phase, Phase::Completed) || rec.result.is_none();
    let (new_phase, detail) = match (spec.stopped, stopped) {
        (false, true) if streaming && !phase.is_terminal() => {
            state.scheduler.stop(org, env_id, name).await;
            (Phase::Stopped, "stopped by request".to_string())
        }
        (true, false) if streaming => (Phase::Pending, String::new()),
        (false, false) if rescale.is_some() && !phase.is_terminal() => {
            (Phase::Pending, "rescaling".to_string())
        }
        _ => (phase, rec.detail.clone()),
    };
    spec.stopped = stopped;
    spec.compute_pool_id = change.compute_pool_id.or(spec.compute_pool_id);
    spec.principal = change.principal.or(spec.principal);
    let spec_json = serde_json::to_string(&spec).expect("spec serializes");
    state
        .store
        .update_statement_spec(
            org,
            env_id,
            name,
            SpecUpdate {
                expected_version: version,
                spec: &spec_json,
                phase: new_phase.as_str(),
                detail: &detail,
            },
        )
        .await?;
    if new_phase == Phase::Pending {
        if let Err(e) = state.scheduler.start(org, env_id, name).await {
            state
                .store
                .update_statement_status(org, env_id, name, Phase::Failed.as_str(), &e.detail)
                .await?;
        }
    }
    let rec = state
        .store
        .get_statement(org, env_id, name)
        .await?
        .ok_or_else(|| ApiError::internal("statement vanished"))?;
    Ok(Json(to_resource(state, &rec).await?))
}

/// Refuses a change of `'sql.parallelism'` (to `props`) that the statement
/// cannot make: a value out of range or beyond its pool, or one that would
/// split state kept by a single task (or merge state kept per partition).
async fn check_rescale(
    state: &AppState,
    org: &str,
    env_id: &str,
    rec: &StatementRecord,
    spec: &StatementSpec,
    props: &BTreeMap<String, String>,
) -> Result<(), ApiError> {
    let key = weir_sql_gateway::properties::PARALLELISM;
    let ctx = CatalogContext::load(&state.store, org, env_id, props).await?;
    let planner = state.planner.clone();
    let sql = spec.statement.clone();
    let (plan, ctx) = crate::planning::isolated(state.scheduler.planning(), org, move || {
        (weir_sql_gateway::replan(&planner, &sql, &ctx), ctx)
    })
    .await
    .map_err(ApiError::internal)?;
    let plan = plan?;
    if matches!(plan.sink, weir_sql_gateway::SinkSpec::Results) {
        return Err(ApiError::bad_request(format!(
            "statement '{}' is a SELECT, whose '{key}' is set when it starts: run it again with the parallelism wanted",
            rec.name
        )));
    }
    let shape = weir_sql_gateway::stages::Shape::of(&plan);
    let before = spec.properties.contains_key(key);
    let stored = state
        .store
        .scaling_status(org, env_id, &rec.name, &rec.uid)
        .await?;
    if before && crate::scaling::kept_whole(&shape, stored.as_deref()) {
        return Err(ApiError::bad_request(format!(
            "statement '{}' cannot be rescaled: {}",
            rec.name,
            crate::scaling::KEPT_WHOLE
        )));
    }
    if matches!(shape, weir_sql_gateway::stages::Shape::Keyed { .. })
        && before != ctx.parallelism.is_some()
    {
        return Err(ApiError::bad_request(if before {
            format!("'{key}' cannot be removed: the statement keeps its state per repartition partition; set it to 1 instead")
        } else {
            format!("statement '{}' was started without '{key}', so one task holds all of its state, which cannot be split; create the statement again with '{key}' to run it in parallel", rec.name)
        }));
    }
    check_slots(
        state,
        org,
        env_id,
        spec.compute_pool_id.as_deref(),
        &plan,
        &ctx,
    )
    .await
}

#[utoipa::path(
    delete,
    path = "/sql/v1/organizations/{org}/environments/{env}/statements/{name}",
    tag = "Statements",
    params(("org" = String, Path, description = "The organization id"), ("env" = String, Path, description = "The environment id"), ("name" = String, Path, description = "The statement name")),
    responses((status = 202, description = "Success", body = weir_api::Empty, content_type = "application/json"))
)]
async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path((org, env, name)): Path<(String, String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let env_id = tenant(&state, &principal, &org, &env).await?;
    require_statement(&state, &principal, &org, &env_id, &name, Permission::Manage).await?;
    state
        .store
        .update_statement_status(&org, &env_id, &name, Phase::Deleting.as_str(), "")
        .await?;
    state.scheduler.stop(&org, &env_id, &name).await;
    if let Some(rec) = state.store.get_statement(&org, &env_id, &name).await? {
        let spec: Option<StatementSpec> = serde_json::from_str(&rec.spec).ok();
        let parallel = spec.as_ref().is_some_and(|s| {
            s.properties
                .contains_key(weir_sql_gateway::properties::PARALLELISM)
        });
        if let (true, Some(spec)) = (parallel, spec) {
            if let Ok(ctx) =
                CatalogContext::load(&state.store, &org, &env_id, &spec.properties).await
            {
                crate::parallel::delete_exchange(&ctx, &rec.uid).await;
            }
        }
    }
    state.store.delete_statement(&org, &env_id, &name).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(crate::answer(weir_api::Empty {})),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ResultParams {
    page_token: Option<String>,
}

const RESULT_PAGE_ROWS: usize = 1000;

#[utoipa::path(
    get,
    path = "/sql/v1/organizations/{org}/environments/{env}/statements/{name}/results",
    tag = "Statements",
    params(ResultParams, ("org" = String, Path, description = "The organization id"), ("env" = String, Path, description = "The environment id"), ("name" = String, Path, description = "The statement name")),
    responses((status = 200, description = "Success", body = weir_api::StatementResult, content_type = "application/json"))
)]
async fn results(
    State(state): State<AppState>,
    principal: Principal,
    Path((org, env, name)): Path<(String, String, String)>,
    Query(params): Query<ResultParams>,
) -> Result<Json<StatementResult>, ApiError> {
    let env_id = tenant(&state, &principal, &org, &env).await?;
    let rec = require_statement(&state, &principal, &org, &env_id, &name, Permission::View).await?;
    let from: u64 = match params.page_token.as_deref() {
        None | Some("") => 0,
        Some(t) => t
            .parse()
            .map_err(|_| ApiError::bad_request("page_token is not one this API gave out"))?,
    };
    let base = format!("{}/results", statement_url(&state, &org, &env, &name));
    let (rows, next) = if let Some(result) = &rec.result {
        let rows: Vec<Vec<serde_json::Value>> =
            serde_json::from_str(result).map_err(|e| ApiError::internal(e.to_string()))?;
        let rows: Vec<ResultRow> = rows
            .into_iter()
            .skip(from as usize)
            .map(|row| ResultRow { op: 0, row })
            .collect();
        (rows, None)
    } else if let Some(buf) = state.scheduler.results(&org, &env_id, &name) {
        let page = buf.page(from, RESULT_PAGE_ROWS);
        (page.rows, page.next)
    } else {
        let phase = Phase::parse(&rec.phase).unwrap_or_default();
        // Running but not placed yet: come back later.
        (
            vec![],
            (!phase.is_terminal() && phase != Phase::Failed)
                .then_some(from)
                .filter(|_| {
                    rec.traits
                        .as_deref()
                        .is_some_and(|t| t.contains("\"SELECT\""))
                }),
        )
    };
    Ok(Json(StatementResult {
        api_version: SQL_API_VERSION.into(),
        kind: "StatementResult".into(),
        metadata: ListMeta {
            self_: base.clone(),
            next: next
                .map(|n| format!("{base}?page_token={n}"))
                .unwrap_or_default(),
        },
        results: ResultData { data: rows },
    }))
}

#[utoipa::path(
    get,
    path = "/sql/v1/organizations/{org}/environments/{env}/statements/{name}/exceptions",
    tag = "Statements",
    params(("org" = String, Path, description = "The organization id"), ("env" = String, Path, description = "The environment id"), ("name" = String, Path, description = "The statement name")),
    responses((status = 200, description = "Success", body = weir_api::StatementExceptionList, content_type = "application/json"))
)]
async fn exceptions(
    State(state): State<AppState>,
    principal: Principal,
    Path((org, env, name)): Path<(String, String, String)>,
) -> Result<Json<StatementExceptionList>, ApiError> {
    let env_id = tenant(&state, &principal, &org, &env).await?;
    require_statement(&state, &principal, &org, &env_id, &name, Permission::View).await?;
    let data = state
        .store
        .list_exceptions(&org, &env_id, &name, 10)
        .await?
        .into_iter()
        .map(|(message, t)| StatementException {
            name: name.clone(),
            message,
            timestamp: iso(t),
        })
        .collect();
    Ok(Json(StatementExceptionList {
        api_version: SQL_API_VERSION.into(),
        kind: "StatementExceptionList".into(),
        data,
    }))
}
