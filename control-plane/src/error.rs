//! The one error type of the API, and its JSON shape.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use weir_api::{ErrorBody, ErrorItem, ErrorSource};
use weir_catalog::CatalogError;
use weir_sql_gateway::{SqlError, SqlErrorKind};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub source: Option<ErrorSource>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            detail: detail.into(),
            source: None,
        }
    }
    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", detail)
    }
    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} was not found"),
        )
    }
    pub fn conflict(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", detail)
    }
    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "send an API key and secret as HTTP Basic credentials (weir dev prints them; `source .weir/dev.env`)",
        )
    }
    /// The caller is known but its roles do not allow the call.
    pub fn forbidden(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }
    pub fn internal(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }
}

/// A request body that is not the JSON the route takes.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(e: axum::extract::rejection::JsonRejection) -> ApiError {
        ApiError::new(e.status(), "invalid_body", e.body_text())
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> ApiError {
        match &e {
            CatalogError::AlreadyExists { .. } => ApiError::conflict(e.to_string()),
            CatalogError::NotFound { what, name } => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{what} '{name}' was not found"),
            ),
            CatalogError::StaleVersion { .. } => ApiError::conflict(e.to_string()),
            CatalogError::Kafka(_) | CatalogError::Topic { .. } => {
                ApiError::new(StatusCode::BAD_GATEWAY, "kafka_unavailable", e.to_string())
            }
            CatalogError::NoSecretKey => {
                ApiError::new(StatusCode::CONFLICT, "no_secret_key", e.to_string())
            }
            CatalogError::Registry { .. } => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "schema_registry_unavailable",
                e.to_string(),
            ),
            _ => {
                tracing::error!(error = %e, "store failure");
                ApiError::internal("the metadata store failed; see the server log")
            }
        }
    }
}

impl From<SqlError> for ApiError {
    fn from(e: SqlError) -> ApiError {
        match e {
            SqlError::Catalog(c) => c.into(),
            SqlError::User {
                kind,
                message,
                position,
            } => {
                let (status, code) = match kind {
                    SqlErrorKind::Parse => (StatusCode::BAD_REQUEST, "invalid_sql"),
                    SqlErrorKind::Validation => (StatusCode::BAD_REQUEST, "invalid_sql"),
                    SqlErrorKind::Unsupported => (StatusCode::BAD_REQUEST, "unsupported_sql"),
                    SqlErrorKind::Conflict => (StatusCode::CONFLICT, "conflict"),
                };
                // Clients that show only the detail still see where.
                let detail = match position {
                    Some((line, column)) if !message.contains("line ") => {
                        format!("{message} (line {line}, column {column})")
                    }
                    _ => message,
                };
                ApiError {
                    status,
                    code,
                    detail,
                    source: Some(ErrorSource {
                        pointer: Some("/spec/statement".into()),
                        line: position.map(|p| p.0),
                        column: position.map(|p| p.1),
                    }),
                }
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let title = self
            .status
            .canonical_reason()
            .unwrap_or("Error")
            .to_string();
        let body = ErrorBody {
            errors: vec![ErrorItem {
                status: self.status.as_u16().to_string(),
                code: self.code.to_string(),
                title,
                detail: self.detail,
                source: self.source,
            }],
        };
        let detail = crate::audit::ErrorDetail(body.errors[0].detail.clone());
        let mut resp = (self.status, Json(body)).into_response();
        resp.extensions_mut().insert(detail);
        resp
    }
}

/// A route Weir does not serve, named, so that a client written for the
/// managed service says which of its calls has no counterpart here.
pub async fn not_found(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "Weir does not serve {method} {}; see the README's client compatibility table",
            uri.path()
        ),
    )
}

/// Gives the API's error shape to the refusals axum makes itself (a path
/// that does not decode, a method a route does not have), so that every
/// 4xx and 5xx a client sees has the same JSON body.
pub async fn every_error_in_one_shape(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let allow = resp.headers().get(axum::http::header::ALLOW).cloned();
    let bytes = axum::body::to_bytes(resp.into_body(), 64 << 10)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).trim().to_string();
    let detail = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("the request was refused")
            .to_string()
    } else {
        text
    };
    let code = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::NOT_FOUND => "not_found",
        s if s.is_server_error() => "internal",
        _ => "invalid_request",
    };
    let mut shaped = ApiError::new(status, code, detail).into_response();
    if let Some(allow) = allow {
        shaped
            .headers_mut()
            .insert(axum::http::header::ALLOW, allow);
    }
    shaped
}
