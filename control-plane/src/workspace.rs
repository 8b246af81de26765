//! The web workspace's saved cells (`/weir/v1/environments/{env}/workspace`):
//! each user's cells in each environment, so that a reload or another
//! browser brings them back. A caller reads and writes only its own.

use axum::extract::{Path, State};
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::authz::Permission;
use crate::{ApiError, AppState};

/// At most this many cells, and this many bytes of SQL in one.
const MAX_CELLS: usize = 200;
const MAX_CELL_SQL: usize = 256 * 1024;

/// One SQL cell: its text and where it runs.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceCell {
    /// The page's id for the cell.
    pub id: String,
    pub sql: String,
    /// `sql.current-catalog` for the cell's statements.
    #[serde(default)]
    pub catalog: String,
    /// `sql.current-database` for the cell's statements.
    #[serde(default)]
    pub database: String,
}

/// A user's cells in an environment, in order.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceDoc {
    pub cells: Vec<WorkspaceCell>,
    /// When it was saved (RFC 3339); empty before the first save. Ignored
    /// in a `PUT`.
    #[serde(default)]
    pub updated_at: String,
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_workspace, put_workspace))
}

/// The caller's saved cells in `env` (none before it saves any).
#[utoipa::path(
    get,
    path = "/weir/v1/environments/{env}/workspace",
    tag = "Workspace",
    params(("env" = String, Path, description = "The environment id")),
    responses((status = 200, description = "Success", body = WorkspaceDoc, content_type = "application/json"))
)]
async fn get_workspace(
    State(state): State<AppState>,
    p: Principal,
    Path(env): Path<String>,
) -> Result<Json<WorkspaceDoc>, ApiError> {
    let env = crate::registry::settings_env(&state, &p, &env, Permission::View).await?;
    let saved = state
        .store
        .get_workspace(&p.org_id, &env, &p.principal_id)
        .await?;
    let Some((body, at)) = saved else {
        return Ok(Json(WorkspaceDoc {
            cells: vec![],
            updated_at: String::new(),
        }));
    };
    let mut doc: WorkspaceDoc = serde_json::from_str(&body)
        .map_err(|e| ApiError::internal(format!("a saved workspace does not read back: {e}")))?;
    doc.updated_at = crate::iam::iso(at);
    Ok(Json(doc))
}

/// Replaces the caller's saved cells in `env`.
#[utoipa::path(
    put,
    path = "/weir/v1/environments/{env}/workspace",
    tag = "Workspace",
    params(("env" = String, Path, description = "The environment id")),
    request_body(content = WorkspaceDoc, content_type = "application/json"),
    responses((status = 200, description = "Success", body = WorkspaceDoc, content_type = "application/json"))
)]
async fn put_workspace(
    State(state): State<AppState>,
    p: Principal,
    Path(env): Path<String>,
    body: Result<Json<WorkspaceDoc>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<WorkspaceDoc>, ApiError> {
    let env = crate::registry::settings_env(&state, &p, &env, Permission::View).await?;
    let Json(mut doc) = body?;
    if doc.cells.len() > MAX_CELLS {
        return Err(ApiError::bad_request(format!(
            "a workspace holds at most {MAX_CELLS} cells; this one has {}",
            doc.cells.len()
        )));
    }
    if let Some((i, c)) = doc
        .cells
        .iter()
        .enumerate()
        .find(|(_, c)| c.sql.len() > MAX_CELL_SQL || c.id.len() > 64)
    {
        return Err(ApiError::bad_request(format!(
            "cell {i} ('{}') is too large: at most {MAX_CELL_SQL} bytes of SQL and an id of 64",
            c.id.chars().take(64).collect::<String>()
        )));
    }
    let now = chrono::Utc::now().timestamp_millis();
    doc.updated_at = String::new();
    let body = serde_json::to_string(&doc).map_err(|e| ApiError::internal(e.to_string()))?;
    state
        .store
        .put_workspace(&p.org_id, &env, &p.principal_id, &body, now)
        .await?;
    doc.updated_at = crate::iam::iso(now);
    Ok(Json(doc))
}
