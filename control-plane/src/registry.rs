//! The built-in schema registry: Confluent's Schema Registry REST API,
//! served per environment at `/schema-registry/{environment}` (the URL a
//! Confluent client is given), authenticated by API key like the rest of the
//! API and stored in Weir's database. Subjects, versions, schemas by id,
//! references, AVRO / PROTOBUF / JSON, compatibility levels with real
//! checking, soft and hard deletes, and the error codes Confluent's clients
//! expect (40401 subject, 40402 version, 40403 schema not found, 409
//! incompatible, 42201 invalid schema, ...).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use weir_catalog::registry::{
    incompatibilities, level_of, normalized, parse, parsed, reference_texts, register_schema,
    Compatibility, ExternalRegistry, RegisterError, RegisteredSchema, RegistryConfig,
    SchemaReference, SchemaType, SubjectVersion,
};

use crate::auth::Principal;
use crate::authz::{Crn, Permission};
use crate::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(subjects))
        .routes(routes!(lookup, delete_subject))
        .routes(routes!(versions, register))
        .routes(routes!(version, delete_version))
        .routes(routes!(version_schema))
        .routes(routes!(referenced_by))
        .routes(routes!(schemas))
        .routes(routes!(schema_by_id))
        .routes(routes!(raw_schema_by_id))
        .routes(routes!(schema_versions))
        .routes(routes!(types))
        .routes(routes!(compatibility_one))
        .routes(routes!(compatibility_all))
        .routes(routes!(global_config, set_global_config))
        .routes(routes!(
            subject_config,
            set_subject_config,
            delete_subject_config
        ))
        .routes(routes!(mode))
        .routes(routes!(subject_mode))
        .routes(routes!(settings, set_settings, reset_settings))
}

/// An error in the registry's own shape: `{"error_code", "message"}`.
#[derive(Debug)]
pub struct RegistryError {
    status: StatusCode,
    code: u32,
    message: String,
}

impl RegistryError {
    fn new(status: StatusCode, code: u32, message: impl Into<String>) -> RegistryError {
        RegistryError {
            status,
            code,
            message: message.into(),
        }
    }
    fn subject_not_found(subject: &str) -> RegistryError {
        Self::new(
            StatusCode::NOT_FOUND,
            40401,
            format!("Subject '{subject}' not found."),
        )
    }
    fn version_not_found(subject: &str, version: &str) -> RegistryError {
        Self::new(
            StatusCode::NOT_FOUND,
            40402,
            format!("Version {version} not found for subject '{subject}'."),
        )
    }
    fn schema_not_found(what: impl std::fmt::Display) -> RegistryError {
        Self::new(
            StatusCode::NOT_FOUND,
            40403,
            format!("Schema {what} not found"),
        )
    }
    fn invalid_schema(message: impl Into<String>) -> RegistryError {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, 42201, message)
    }
    fn bad_request(message: impl Into<String>) -> RegistryError {
        Self::new(StatusCode::BAD_REQUEST, 400, message)
    }
}

impl From<weir_catalog::CatalogError> for RegistryError {
    fn from(e: weir_catalog::CatalogError) -> RegistryError {
        tracing::error!(error = %e, "schema registry: store failed");
        RegistryError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            50001,
            format!("Error in the backend data store: {e}"),
        )
    }
}

impl From<RegisterError> for RegistryError {
    fn from(e: RegisterError) -> RegistryError {
        match e {
            RegisterError::Invalid(m) => RegistryError::invalid_schema(m),
            RegisterError::Incompatible(m) => RegistryError::new(StatusCode::CONFLICT, 409, m),
            RegisterError::Store(e) => e.into(),
        }
    }
}

impl From<crate::ApiError> for RegistryError {
    fn from(e: crate::ApiError) -> RegistryError {
        RegistryError::new(e.status, e.status.as_u16() as u32, e.detail)
    }
}

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (error code {})", self.message, self.code)
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        reply(
            self.status,
            json!({"error_code": self.code, "message": self.message}),
        )
    }
}

fn reply(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        body.to_string(),
    )
        .into_response()
}

fn ok(body: Value) -> Result<Response, RegistryError> {
    Ok(reply(StatusCode::OK, body))
}

type Reply = Result<Response, RegistryError>;

/// The caller's organization and the environment of the path, checked to
/// be the caller's (another organization's environment is a 404, as if it
/// did not exist).
async fn scope(
    state: &AppState,
    p: &Principal,
    env: &str,
) -> Result<(String, String), RegistryError> {
    let e = state
        .store
        .get_environment(&p.org_id, env)
        .await?
        .ok_or_else(|| {
            RegistryError::new(
                StatusCode::NOT_FOUND,
                404,
                format!("environment '{env}' not found"),
            )
        })?;
    // One registry per environment: with an external one, this one is not
    // the environment's (its subjects would type no table).
    if let Some(c) = state.store.environment_registry(&p.org_id, &e.id).await? {
        return Err(RegistryError::new(
            StatusCode::NOT_FOUND,
            404,
            format!(
                "environment '{}' uses the external schema registry at {}; register and read its schemas there (DELETE /weir/v1/environments/{}/schema-registry returns it to this built-in one)",
                e.id, c.url, e.id
            ),
        ));
    }
    p.access
        .require(Permission::View, &Crn::registry(&p.org_id, &e.id))?;
    Ok((p.org_id.clone(), e.id))
}

/// `Ok` when the caller's roles allow `need` on `crn`; the registry's
/// error shape otherwise.
fn allowed(p: &Principal, need: Permission, crn: &Crn) -> Result<(), RegistryError> {
    Ok(p.access.require(need, crn)?)
}

/// A query flag as clients send it: `true`, `True` (Python's `str(True)`),
/// `1`; anything else is false.
fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let s = String::deserialize(d)?;
    Ok(matches!(
        s.to_ascii_lowercase().as_str(),
        "true" | "1" | "yes"
    ))
}

#[derive(Deserialize, Default)]
struct ListParams {
    #[serde(default, deserialize_with = "flag")]
    deleted: bool,
    #[serde(default, deserialize_with = "flag")]
    permanent: bool,
    #[serde(default, deserialize_with = "flag")]
    verbose: bool,
    #[serde(default, rename = "defaultToGlobal", deserialize_with = "flag")]
    default_to_global: bool,
    #[serde(default, rename = "subjectPrefix")]
    subject_prefix: Option<String>,
}

#[derive(Deserialize)]
struct SchemaBody {
    schema: String,
    #[serde(default, rename = "schemaType")]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<SchemaReference>,
}

fn body_of<T: serde::de::DeserializeOwned>(bytes: &Bytes) -> Result<T, RegistryError> {
    serde_json::from_slice(bytes).map_err(|e| {
        RegistryError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            422,
            format!("Invalid request body: {e}"),
        )
    })
}

fn schema_type_name(s: &RegisteredSchema) -> Option<String> {
    (s.schema_type != SchemaType::Avro).then(|| s.schema_type.as_str().to_string())
}

fn references(s: &RegisteredSchema) -> Option<Vec<weir_api::RegistryReference>> {
    (!s.references.is_empty()).then(|| {
        s.references
            .iter()
            .map(|r| weir_api::RegistryReference {
                name: r.name.clone(),
                subject: r.subject.clone(),
                version: r.version,
            })
            .collect()
    })
}

fn schema_json(s: &RegisteredSchema) -> Value {
    crate::answer(weir_api::RegistrySchema {
        schema: s.schema.clone(),
        schema_type: schema_type_name(s),
        references: references(s),
    })
}

fn version_of(v: &SubjectVersion) -> weir_api::RegistrySchemaVersion {
    weir_api::RegistrySchemaVersion {
        subject: v.subject.clone(),
        version: v.version,
        id: v.schema.id,
        schema: v.schema.schema.clone(),
        schema_type: schema_type_name(&v.schema),
        references: references(&v.schema),
    }
}

fn version_json(v: &SubjectVersion) -> Value {
    crate::answer(version_of(v))
}

fn schema_type_of(b: &SchemaBody) -> Result<SchemaType, RegistryError> {
    match &b.schema_type {
        None => Ok(SchemaType::Avro),
        Some(t) => SchemaType::parse(t).ok_or_else(|| {
            RegistryError::invalid_schema(format!(
                "Invalid schema type '{t}': use AVRO, PROTOBUF or JSON"
            ))
        }),
    }
}

#[utoipa::path(
    get,
    path = "/schema-registry/{env}/subjects",
    tag = "Schema registry",
    params(("env" = String, Path, description = "The environment id")),
    responses((status = 200, description = "Success", body = Vec<String>, content_type = "application/vnd.schemaregistry.v1+json"))
)]
async fn subjects(
    State(state): State<AppState>,
    p: Principal,
    Path(env): Path<String>,
    Query(q): Query<ListParams>,
) -> Reply {
    let (org, env) = scope(&state, &p, &env).await?;
    let mut list = state.store.registry_subjects(&org, &env, q.deleted).await?;
    if let Some(prefix) = &q.subject_prefix {
        list.retain(|s| s.starts_with(prefix.as_str()));
    }
    ok(json!(list))
}

/// A subject's versions, or 40401 when it has none (live, or any when
/// `deleted`).
async fn subject_versions(
    state: &AppState,
    org: &str,
    env: &str,
    subject: &str,
    deleted: bool,
) -> Result<Vec<SubjectVersion>, RegistryError> {
    let v = state
        .store
        .registry_versions(org, env, subject, deleted)
        .await?;
    if v.is_empty() {
        return Err(RegistryError::subject_not_found(subject));
    }
    Ok(v)
}

#[utoipa::path(
    get,
    path = "/schema-registry/{env}/subjects/{subject}/versions",
    tag = "Schema registry",
    params(("env" = String, Path, description = "The environment id"), ("subject" = String, Path, description = "The subject name")),
    responses((status = 200, description = "Success", body = Vec<i64>, content_type = "application/vnd.schemaregistry.v1+json"))
)]
async fn versions(
    State(state): State<AppState>,
    p: Principal,
    Path((env, subject)): Path<(String, String)>,
    Query(q): Query<ListParams>,
) -> Reply {
    let (org, env) = scope(&state, &p, &env).await?;
    let v = subject_versions(&state, &org, &env, &subject, q.deleted).await?;
    ok(json!(v.iter().map(|v| v.version).collect::<Vec<_>>()))
}

/// `latest`, `-1` or a positive version number.
fn find_version<'a>(
    versions: &'a [SubjectVersion],
    subject: &str,
    version: &str,
) -> Result<&'a SubjectVersion, RegistryError> {
    if version == "latest" || version == "-1" {
        return versions
            .last()
            .ok_or_else(|| RegistryError::version_not_found(subject, version));
    }
    let n: i64 = version.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
        RegistryError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42202,
            format!("The specified version '{version}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""),
        )
    })?;
    versions
        .iter()
        .find(|v| v.version == n)
        .ok_or_else(|| RegistryError::version_not_found(subject, version))
}

#[utoipa::path(
    get,
    path = "/schema-registry/{env}/subjects/{subject}/versions/{version}",
    tag = "Schema registry",
    params(("env" = String, Path, description = "The environment id"), ("subject" = String, Path, description = "The subject name"), ("version" = String, Path, description = "A version number, or latest")),
    responses((status = 200, description = "Success", body = weir_api::RegistrySchemaVersion, content_type = "application/vnd.schemaregistry.v1+json"))
)]
async fn version(
    State(state): State<AppState>,
    p: Principal,
    Path((env, subject, version)): Path<(String, String, String)>,
    Query(q): Query<ListParams>,
) -> Reply {
    let (org, env) = scope(&state, &p, &env).await?;
    let v = subject_versions(&state, &org, &env, &subject, q.deleted).await?;
    ok(version_json(find_version(&v, &subject, &version)?))
}

#[utoipa::path(
    get,
    path = "/schema-registry/{env}/subjects/{subject}/versions/{version}/schema",
    tag = "Schema registry",
    params(("env" = String, Path, description = "The environment id"), ("subject" = String, Path, description = "The subject name"), ("version" = String, Path, description = "A version number, or latest")),
    responses((status = 200, description = "Success", body = serde_json::Value, content_type = "application/vnd.schemaregistry.v1+json"))
)]
async fn version_schema(
    State(state): State<AppState>,
    p: Principal,
    Path((env, subject, version)): Path<(String, String, String)>,
) -> Reply {
    let (org, env) = scope(&state, &p, &env).await?;
    let v = subject_versions(&state, &org, &env, &subject, false).await?;
    let v = find_version(&v, &subject, &version)?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        v.schema.schema.clone(),
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/schema-registry/{env}/subjects/{subject}/versions/{version}/referencedby",
    tag = "Schema registry",
    params(("env" = String, Path, description = "The environment id"), ("subject" = String, Path, description = "The subject name"), ("version" = String, Path, description = "A version number, or latest")),
    responses((status = 200, description = "Success", body = Vec<i64>, content_type = "application/vnd.schemaregistry.v1+json"))
)]
async fn referenced_by(
    State(state): State<AppState>,
    p: Principal,
    Path((env, subject, version)): Path<(String, String, String)>,
) -> Reply {
    let (org, env) = scope(&state, &p, &env).await?;
    let v = subject_versions(&state, &org, &env, &subject, false).await?;
    let target = find_version(&v, &subject, &version)?;
    let mut ids = vec![];
    for s in state.store.registry_all(&org, &env).await? {
        if s.schema
            .references
            .iter()
            .any(|r| r.subject == subject && (r.version == target.version || r.version == -1))
        {
            ids.push(s.schema.id);
        }
    }
    ids.sort();
    ids.dedup();
    ok(json!(ids))
}

#[utoipa::path(
    post,
    path = "/schema-registry/{env}/subjects/{subject}/versions",
    tag = "Schema registry",
    params(("env" = String, Path, description = "The environment id"), ("subject" = String, Path, description = "The subject name")),
    request_body(content = serde_json::Value, content_type = "application/vnd.schemaregistry.v1+json"),
    responses((status = 200, description = "Success", body = weir_api::RegisteredId, content_type = "application/vnd.schemaregistry.v1+json"))
)]
async fn register(
    State(state): State<AppState>,
    p: Principal,
    Path((env, subject)): Path<(String, String)>,
    body: Bytes,
) -> Reply {
    let (org, env) = scope(&state, &p, &env).await?;
    allowed(&p, Permission::Write, &Crn::subject(&org, &env, &subject))?;
    let b: SchemaBody = body_of(&body)?;
    let ty = schema_type_of(&b)?;
    let id = register_schema(
        &state.store,
        &org,
        &env,
        &subject,
        ty,
        &b.schema,
        &b.references,
    )
    .await?;
    ok(json!({"id": id}))
}

#[utoipa::path(
    post,
    path = "/schema-registry/{env}/subjects/{subject}",
    tag = "Schema registry",
    params(("env" = String, Path, description = "The environment id"), ("subject" = String, Path, description = "The subject name")),
    request_body(content = serde_json::Value, content_type = "application/vnd.schemaregistry.v1+json"),
    responses((status = 200, description = "Success", body = weir_api::RegistrySchemaVersion, content_type = "application/vnd.schemaregistry.v1+json"))
)]
async fn lookup(
    State(state): State<AppState>,
    p: Principal,
    Path((env, subject)): Path<(String, String)>,
    Query(q): Query<ListParams>,
    body: Bytes,
) -> Reply {
    let (org, env) = scope(&state, &p, &env).await?;
    let b: SchemaBody = body_of(&body)?;
    let ty = schema_type_of(&b)?;
    let v = subject_versions(&state, &org, &env, &subject, q.deleted).await?;
    let norm = normalized(ty, &b.schema);
    let found = v.iter().find(|v| {
        v.schema.schema_type == ty
            && normalized(ty, &v.schema.schema) == norm
            && v.schema.references == b.references
    });
    match found {
        Some(v) => ok(version_json(v)),
        None => Err(RegistryError::schema_not_found("")),
    }
}

#[utoipa::path(
    delete,
    path = "/schema-registry/{env}/subjects/{subject}",
    tag = "Schema registry",
    params(("env" = String, Path, description = "The environment id"), ("subject" = String, Path, description = "The subject name")),
    responses((status = 200, description = "Success", body = Vec<i64>, content_type = "application/vnd.schemaregistry.v1+json"))
)]
async fn delete_subject(
    State(state): State<AppState>,
    p: Principal,
    Path((env, subject)): Path<(String, String)>,
    Query(q): Query<ListParams>,
) -> Reply {
    let (org, env) = scope(&state, &p, &env).await?;
    allowed(&p, Permission::Manage, &Crn::subject(&org, &env, &subject))?;
    let all = subject_versions(&state, &org, &env, &subject, true).await?;
    let live = all.iter().any(|v| !v.deleted);
    if q.permanent {
        if live {
            return Err(RegistryError::new(
                StatusCode::NOT_FOUND,
                40405,
                format!(
                    "Subject '{subject}' was not deleted first before being permanently deleted"
                ),
            ));
        }
        let gone = state
            .store
            .registry_hard_delete(&org, &env, &subject, None)
            .await?;
        return ok(json!(gone));
    }
    if !live {
        return Err(RegistryError::new(
            StatusCode::NOT_FOUND,
            40404,
            format!(
                "Subject '{subject}' was soft deleted.Set permanent=true to delete permanently"
            ),
        ));
    }
    let marked = state
        .store
        .registry_soft_delete(&org, &env, &subject, None)
        .await?;
    ok(json!(marked))
}

#[utoipa::path(
    delete,
    path = "/schema-registry/{env}/subjects/{subject}/versions/{version}",
    tag = "Schema registry",
    params(("env" = String, Path, description = "The environment id"), ("subject" = String, Path, description = "The subject name"), ("version" = String, Path, description = "A version number, or latest")),
    responses((status = 200, description = "Success", body = i64, content_type = "application/vnd.schemaregistry.v1+json"))
)]
async fn delete_version(
    State(state): State<AppState>,
    p: Principal,
    Path((env, subject, version)): Path<(String, String, String)>,
    Query(q): Query<ListParams>,
) -> Reply {
    let (org, env) = scope(&state, &p, &env).await?;
    allowed(&p, Permission::Manage, &Crn::subject(&org, &env, &subject))?;
    let all = subject_versions(&state, &org, &env, &subject, true).await?;
    let v = if version == "latest" || version == "-1" {
        let live: Vec<SubjectVersion> = all.iter().filter(|v| !v.deleted).cloned().collect();
        find_version(&live, &subject, &version)?.clone()
    } else {
        find_version(&all, &subject, &version)?.clone()
    };
    if q.permanent {
        if !v.deleted {
            return Err(RegistryError::new(
                StatusCode::NOT_FOUND,
                40407,
                format!(
                    "Subject '{subject}' Version {} was not deleted first before being permanently deleted",
                    v.version
                ),
            ));
        }
        state
            .store
            .registry_hard_delete(&org, &env, &subject, Some(v.version))
            .await?;
        return ok(json!(v.version));
    }
    if v.deleted {
        return Err(RegistryError::new(
            StatusCode::NOT_FOUND,
            40406,
            format!(
                "Subject '{subject}' Version {} was soft deleted.Set permanent=true to delete permanently",
                v.version
            ),
        ));
    }
    state
        .store
        .registry_soft_delete(&org, &env, &subject, Some(v.version))
        .await?;
    ok(json!(v.version))
}

/// Schema `id` of the caller's environment `env`, or 40403.
async fn schema_in(
    state: &AppState,
    p: &Principal,
    env: &str,
    id: &str,
) -> Result<RegisteredSchema, RegistryError> {
    let (org, env) = scope(state, p, env).await?;
    let id: i64 = id
        .parse()
        .map_err(|_| RegistryError::schema_not_found(id))?;
    state
        .store
        .registry_schema(&org, &env, id)
        .await?
        .ok_or_else(|| RegistryError::schema_not_found(id))
}

#[utoipa::path(
    get,
    path = "/schema-registry/{env}/schemas/ids/{id}",
    tag = "Schema registry",
    params(("env" = String, Path, description = "The environment id"), ("id" = String, Path, description = "The resource id")),
    responses((status = 200, description = "Success", body = weir_api::RegistrySchema, content_type = "application/vnd.schemaregistry.v1+json"))
)]
async fn schema_by_id(
    State(state): State<AppState>,
    p: Principal,
    Path((env, id)): Path<(String, String)>,
) -> Reply {
    ok(schema_json(&schema_in(&state, &p, &env, &id).await?))
}

#[utoipa::path(
    get,
    path = "/schema-registry/{env}/schemas/ids/{id}/schema",
    tag = "Schema registry",
    params(("env" = String, Path, description = "The environment id"), ("id" = String, Path, description = "The resource id")),
    responses((status = 200, description = "Success", body = serde_json::Value, content_type = "application/vnd.schemaregistry.v1+json"))
)]
async fn raw_schema_by_id(
    State(state): State<AppState>,
    p: Principal,
    Path((env, id)): Path<(String, String)>,
) -> Reply {
    let s = schema_in(&state, &p, &env, &id).await?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        s.schema,
    )
        .into_response())
}

#[derive(Deserialize, Default)]
struct SchemasParams {
    #[serde(default, rename = "subjectPrefix")]
    subject_prefix: Option<String>,
    #[serde(default, rename = "latestOnly", deserialize_with = "flag")]
    latest_only: bool,
    #[serde(default)]
    offset: Option<usize>,
    #[serde(default)]
    limit: Option<i64>,
}

/// `GET /schemas`: every live subject version (or only each subject's
/// latest) with its schema, as Confluent Platform 7 serves it.
#[utoipa::path(
    get,
    path = "/schema-registry/{env}/schemas",
    tag = "Schema registry",
    params(("env" = String, Path, description = "The environment id")),
    responses((status = 200, description = "Success", body = Vec<weir_api::RegistrySchemaVersion>, content_type = "application/vnd.schemaregistry.v1+json"))
)]
async fn schemas(
    State(state): State<AppState>,
    p: Principal,
    Path(env): Path<String>,
    Query(q): Query<SchemasParams>,
) -> Reply {
    let (org, env) = scope(&state, &p, &env).await?;
    let mut list = if q.latest_only {
        state.store.registry_latest(&org, &env).await?
    } else {
        state.store.registry_all(&org, &env).await?
    };
    if let Some(prefix) = &q.subject_prefix {
        list.retain(|v| v.subject.starts_with(prefix.as_str()));
    }
    let limit = match q.limit {
        Some(l) if l >= 0 => l as usize,
        _ => usize::MAX,
    };
    ok(json!(list
        .iter()
        .skip(q.offset.unwrap_or(0))
        .take(limit)
        .map(version_of)
        .collect::<Vec<_>>()))
}

#[utoipa::path(
    get,
    path = "/schema-registry/{env}/schemas/ids/{id}/versions",
    tag = "Schema registry",
    params(("env" = String, Path, description = "The environment id"), ("id" = String, Path, description = "The resource id")),
    responses((status = 200, description = "Success", body = Vec<weir_api::SubjectVersionRef>, content_type = "application/vnd.schemaregistry.v1+json"))
)]
async fn schema_versions(
    State(state): State<AppState>,
    p: Principal,
    Path((env, id)): Path<(String, String)>,
) -> Reply {
    let s = schema_in(&state, &p, &env, &id).await?;
    let (org, env) = scope(&state, &p, &env).await?;
    let v = state
        .store
        .registry_schema_versions(&org, &env, s.id)
        .await?;
    ok(json!(v
        .iter()
        .map(|(s, v)| json!({"subject": s, "version": v}))
        .collect::<Vec<_>>()))
}

#[utoipa::path(
    get,
    path = "/schema-registry/{env}/schemas/types",
    tag = "Schema registry",
    params(("env" = String, Path, description = "The environment id")),
    responses((status = 200, description = "Success", body = Vec<String>, content_type = "application/vnd.schemaregistry.v1+json"))
)]
async fn types(State(state): State<AppState>, p: Principal, Path(env): Path<String>) -> Reply {
    scope(&state, &p, &env).await?;
    ok(json!(["JSON", "PROTOBUF", "AVRO"]))
}

async fn compatibility(
    state: &AppState,
    p: &Principal,
    env: &str,
    subject: &str,
    version: Option<&str>,
    verbose: bool,
    body: &Bytes,
) -> Reply {
    let (org, env) = scope(state, p, env).await?;
    let b: SchemaBody = body_of(body)?;
    let ty = schema_type_of(&b)?;
    let refs = reference_texts(&state.store, &org, &env, &b.references).await?;
    let new = parse(ty, &b.schema, &refs).map_err(RegistryError::invalid_schema)?;
    let live = state
        .store
        .registry_versions(&org, &env, subject, false)
        .await?;
    let against: Vec<&SubjectVersion> = match version {
        Some(v) => {
            if live.is_empty() {
                return Err(RegistryError::subject_not_found(subject));
            }
            vec![find_version(&live, subject, v)?]
        }
        None => live.iter().collect(),
    };
    let level = level_of(&state.store, &org, &env, subject).await?;
    let mut previous = vec![];
    for v in against {
        previous.push(parsed(&state.store, &org, &env, &v.schema).await?);
    }
    // A check against one version is that version alone, whatever the
    // transitivity; against all, every one.
    let why = if version.is_some() {
        incompatibilities(level, &new, &previous)
    } else {
        let mut out = vec![];
        for i in 0..previous.len() {
            out.extend(incompatibilities(level, &new, &previous[i..=i]));
        }
        out
    };
    let mut out = json!({"is_compatible": why.is_empty()});
    if verbose {
        out["messages"] = json!(why);
    }
    ok(out)
}

#[utoipa::path(
    post,
    path = "/schema-registry/{env}/compatibility/subjects/{subject}/versions/{version}",
    tag = "Schema registry",
    params(("env" = String, Path, description = "The environment id"), ("subject" = String, Path, description = "The subject name"), ("version" = String, Path, description = "A version number, or latest")),
    request_body(content = serde_json::Value, content_type = "application/vnd.schemaregistry.v1+json"),
    responses((status = 200, description = "Success", body = weir_api::CompatibilityResult, content_type = "application/vnd.schemaregistry.v1+json"))
)]
async fn compatibility_one(
    State(state): State<AppState>,
    p: Principal,
    Path((env, subject, version)): Path<(String, String, String)>,
    Query(q): Query<ListParams>,
    body: Bytes,
) -> Reply {
    compatibility(&state, &p, &env, &subject, Some(&version), q.verbose, &body).await
}

#[utoipa::path(
    post,
    path = "/schema-registry/{env}/compatibility/subjects/{subject}/versions",
    tag = "Schema registry",
    params(("env" = String, Path, description = "The environment id"), ("subject" = String, Path, description = "The subject name")),
    request_body(content = serde_json::Value, content_type = "application/vnd.schemaregistry.v1+json"),
    responses((status = 200, description = "Success", body = weir_api::CompatibilityResult, content_type = "application/vnd.schemaregistry.v1+json"))
)]
async fn compatibility_all(
    State(state): State<AppState>,
    p: Principal,
    Path((env, subject)): Path<(String, String)>,
    Query(q): Query<ListParams>,
    body: Bytes,
) -> Reply {
    compatibility(&state, &p, &env, &subject, None, q.verbose, &body).await
}

#[derive(Deserialize)]
struct ConfigBody {
    compatibility: Option<String>,
    #[serde(rename = "compatibilityLevel")]
    compatibility_level: Option<String>,
}

fn level_from(body: &Bytes) -> Result<Compatibility, RegistryError> {
    let b: ConfigBody = body_of(body)?;
    let name = b
        .compatibility
        .or(b.compatibility_level)
        .ok_or_else(|| RegistryError::bad_request("the body names no 'compatibility'"))?;
    Compatibility::parse(&name).ok_or_else(|| {
        RegistryError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42203,
            format!("Invalid compatibility level '{name}': use NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL or FULL_TRANSITIVE"),
        )
    })
}

#[utoipa::path(
    get,
    path = "/schema-registry/{env}/config",
    tag = "Schema registry",
    params(("env" = String, Path, description = "The environment id")),
    responses((status = 200, description = "Success", body = weir_api::CompatibilityLevel, content_type = "application/vnd.schemaregistry.v1+json"))
)]
async fn global_config(
    State(state): State<AppState>,
    p: Principal,
    Path(env): Path<String>,
) -> Reply {
    let (org, env) = scope(&state, &p, &env).await?;
    let l = state
        .store
        .registry_compatibility(&org, &env, "")
        .await?
        .unwrap_or_default();
    ok(json!({"compatibilityLevel": l.as_str()}))
}

#[utoipa::path(
    put,
    path = "/schema-registry/{env}/config",
    tag = "Schema registry",
    params(("env" = String, Path, description = "The environment id")),
    request_body(content = serde_json::Value, content_type = "application/vnd.schemaregistry.v1+json"),
    responses((status = 200, description = "Success", body = weir_api::CompatibilityUpdate, content_type = "application/vnd.schemaregistry.v1+json"))
)]
async fn set_global_config(
    State(state): State<AppState>,
    p: Principal,
    Path(env): Path<String>,
    body: Bytes,
) -> Reply {
    let (org, env) = scope(&state, &p, &env).await?;
    allowed(&p, Permission::Manage, &Crn::registry(&org, &env))?;
    let l = level_from(&body)?;
    state
        .store
        .set_registry_compatibility(&org, &env, "", l)
        .await?;
    ok(json!({"compatibility": l.as_str()}))
}

#[utoipa::path(
    get,
    path = "/schema-registry/{env}/config/{subject}",
    tag = "Schema registry",
    params(("env" = String, Path, description = "The environment id"), ("subject" = String, Path, description = "The subject name")),
    responses((status = 200, description = "Success", body = weir_api::CompatibilityLevel, content_type = "application/vnd.schemaregistry.v1+json"))
)]
async fn subject_config(
    State(state): State<AppState>,
    p: Principal,
    Path((env, subject)): Path<(String, String)>,
    Query(q): Query<ListParams>,
) -> Reply {
    let (org, env) = scope(&state, &p, &env).await?;
    match state
        .store
        .registry_compatibility(&org, &env, &subject)
        .await?
    {
        Some(l) => ok(json!({"compatibilityLevel": l.as_str()})),
        None if q.default_to_global => {
            let l = level_of(&state.store, &org, &env, "").await?;
            ok(json!({"compatibilityLevel": l.as_str()}))
        }
        None => Err(RegistryError::new(
            StatusCode::NOT_FOUND,
            40408,
            format!("Subject '{subject}' does not have subject-level compatibility configured"),
        )),
    }
}

#[utoipa::path(
    put,
    path = "/schema-registry/{env}/config/{subject}",
    tag = "Schema registry",
    params(("env" = String, Path, description = "The environment id"), ("subject" = String, Path, description = "The subject name")),
    request_body(content = serde_json::Value, content_type = "application/vnd.schemaregistry.v1+json"),
    responses((status = 200, description = "Success", body = weir_api::CompatibilityUpdate, content_type = "application/vnd.schemaregistry.v1+json"))
)]
async fn set_subject_config(
    State(state): State<AppState>,
    p: Principal,
    Path((env, subject)): Path<(String, String)>,
    body: Bytes,
) -> Reply {
    let (org, env) = scope(&state, &p, &env).await?;
    allowed(&p, Permission::Manage, &Crn::subject(&org, &env, &subject))?;
    let l = level_from(&body)?;
    state
        .store
        .set_registry_compatibility(&org, &env, &subject, l)
        .await?;
    ok(json!({"compatibility": l.as_str()}))
}

#[utoipa::path(
    delete,
    path = "/schema-registry/{env}/config/{subject}",
    tag = "Schema registry",
    params(("env" = String, Path, description = "The environment id"), ("subject" = String, Path, description = "The subject name")),
    responses((status = 200, description = "Success", body = weir_api::CompatibilityLevel, content_type = "application/vnd.schemaregistry.v1+json"))
)]
async fn delete_subject_config(
    State(state): State<AppState>,
    p: Principal,
    Path((env, subject)): Path<(String, String)>,
) -> Reply {
    let (org, env) = scope(&state, &p, &env).await?;
    allowed(&p, Permission::Manage, &Crn::subject(&org, &env, &subject))?;
    let Some(l) = state
        .store
        .registry_compatibility(&org, &env, &subject)
        .await?
    else {
        return Err(RegistryError::subject_not_found(&subject));
    };
    state
        .store
        .delete_registry_compatibility(&org, &env, &subject)
        .await?;
    ok(json!({"compatibilityLevel": l.as_str()}))
}

#[utoipa::path(
    get,
    path = "/schema-registry/{env}/mode",
    tag = "Schema registry",
    params(("env" = String, Path, description = "The environment id")),
    responses((status = 200, description = "Success", body = weir_api::RegistryMode, content_type = "application/vnd.schemaregistry.v1+json"))
)]
async fn mode(
    State(state): State<AppState>,
    p: Principal,
    Path(params): Path<Vec<(String, String)>>,
) -> Reply {
    let env = params
        .iter()
        .find(|(k, _)| k == "env")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    scope(&state, &p, &env).await?;
    ok(json!({"mode": "READWRITE"}))
}

/// A subject's mode: always READWRITE, as the registry's.
#[utoipa::path(
    get,
    path = "/schema-registry/{env}/mode/{subject}",
    tag = "Schema registry",
    params(("env" = String, Path, description = "The environment id"), ("subject" = String, Path, description = "The subject name")),
    responses((status = 200, description = "Success", body = weir_api::RegistryMode, content_type = "application/vnd.schemaregistry.v1+json"))
)]
async fn subject_mode(
    state: State<AppState>,
    p: Principal,
    params: Path<Vec<(String, String)>>,
) -> Reply {
    mode(state, p, params).await
}

/// What `PUT /weir/v1/environments/{env}/schema-registry` takes.
#[derive(Deserialize, utoipa::ToSchema)]
struct SettingsBody {
    url: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    /// PEM certificates to trust for an https URL (a private CA).
    #[serde(default)]
    ca_certificate: Option<String>,
}

/// The caller's environment named in a path (404 otherwise), if
/// its roles allow `need` on it.
pub(crate) async fn settings_env(
    state: &AppState,
    p: &Principal,
    env: &str,
    need: Permission,
) -> Result<String, crate::ApiError> {
    let id = state
        .store
        .get_environment(&p.org_id, env)
        .await?
        .ok_or_else(|| crate::ApiError::not_found(&format!("environment '{env}'")))?
        .id;
    p.access.require(need, &Crn::environment(&p.org_id, &id))?;
    Ok(id)
}

fn settings_json(state: &AppState, env: &str, c: Option<&RegistryConfig>) -> Value {
    match c {
        None => crate::answer(weir_api::SchemaRegistrySetting {
            kind: "SchemaRegistry".into(),
            environment: env.to_string(),
            built_in: true,
            url: format!("{}/schema-registry/{env}", state.public_url),
            username: None,
            password_set: None,
            ca_certificate: None,
        }),
        Some(c) => crate::answer(weir_api::SchemaRegistrySetting {
            kind: "SchemaRegistry".into(),
            environment: env.to_string(),
            built_in: false,
            url: c.url.clone(),
            username: c.username.clone(),
            // The password is never shown again.
            password_set: Some(c.password.is_some()),
            ca_certificate: c.ca_certificate.clone(),
        }),
    }
}

/// The environment's schema registry: the built-in one, or the external
/// one it syncs from.
#[utoipa::path(
    get,
    path = "/weir/v1/environments/{env}/schema-registry",
    tag = "Schema registry",
    params(("env" = String, Path, description = "The environment id")),
    responses((status = 200, description = "Success", body = weir_api::SchemaRegistrySetting, content_type = "application/json"))
)]
async fn settings(
    State(state): State<AppState>,
    p: Principal,
    Path(env): Path<String>,
) -> Result<axum::Json<Value>, crate::ApiError> {
    let env = settings_env(&state, &p, &env, Permission::View).await?;
    let c = state.store.environment_registry(&p.org_id, &env).await?;
    Ok(axum::Json(settings_json(&state, &env, c.as_ref())))
}

/// Points the environment at an external Confluent-compatible registry,
/// after checking that it answers and takes the credentials.
#[utoipa::path(
    put,
    path = "/weir/v1/environments/{env}/schema-registry",
    tag = "Schema registry",
    params(("env" = String, Path, description = "The environment id")),
    request_body(content = SettingsBody, content_type = "application/json"),
    responses((status = 200, description = "Success", body = weir_api::SchemaRegistrySetting, content_type = "application/json"))
)]
async fn set_settings(
    State(state): State<AppState>,
    p: Principal,
    Path(env): Path<String>,
    body: Result<axum::Json<SettingsBody>, axum::extract::rejection::JsonRejection>,
) -> Result<axum::Json<Value>, crate::ApiError> {
    let env = settings_env(&state, &p, &env, Permission::Manage).await?;
    let axum::Json(b) = body?;
    if b.url.len() > 2048
        || b.username.as_ref().is_some_and(|u| u.len() > 1024)
        || b.password.as_ref().is_some_and(|p| p.len() > 1024)
        || b.ca_certificate.as_ref().is_some_and(|c| c.len() > 65536)
    {
        return Err(crate::ApiError::bad_request(
            "url is at most 2048 bytes, username and password at most 1024, ca_certificate at most 65536",
        ));
    }
    let config = RegistryConfig {
        url: b.url.trim_end_matches('/').to_string(),
        username: b.username.filter(|u| !u.is_empty()),
        password: b.password,
        ca_certificate: b.ca_certificate.filter(|c| !c.trim().is_empty()),
    };
    let own = format!("{}/schema-registry/{env}", state.public_url);
    if config.url == own {
        return Err(crate::ApiError::bad_request(format!(
            "{own} is this environment's built-in registry; DELETE this setting to use it"
        )));
    }
    let client =
        ExternalRegistry::new(&config).map_err(|e| crate::ApiError::bad_request(e.to_string()))?;
    let subjects = client
        .check()
        .await
        .map_err(|e| crate::ApiError::bad_request(e.to_string()))?;
    state
        .store
        .set_environment_registry(&p.org_id, &env, Some(&config))
        .await?;
    tracing::info!(
        org = p.org_id,
        env,
        url = config.url,
        subjects,
        "environment uses an external schema registry"
    );
    Ok(axum::Json(settings_json(&state, &env, Some(&config))))
}

/// Returns the environment to its built-in registry.
#[utoipa::path(
    delete,
    path = "/weir/v1/environments/{env}/schema-registry",
    tag = "Schema registry",
    params(("env" = String, Path, description = "The environment id")),
    responses((status = 200, description = "Success", body = weir_api::SchemaRegistrySetting, content_type = "application/json"))
)]
async fn reset_settings(
    State(state): State<AppState>,
    p: Principal,
    Path(env): Path<String>,
) -> Result<axum::Json<Value>, crate::ApiError> {
    let env = settings_env(&state, &p, &env, Permission::Manage).await?;
    state
        .store
        .set_environment_registry(&p.org_id, &env, None)
        .await?;
    Ok(axum::Json(settings_json(&state, &env, None)))
}
