//! The audit log: every mutating call and every denied one (401, 403) is
//! recorded with who made it, what it was, how it ended and its request id,
//! in the store (per organization, for `/weir/v1/audit-log`) and as a
//! structured log line (target `weir::audit`). Neither ever holds a secret:
//! only the path, the principal and the error's message are kept.

use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use weir_catalog::AuditRecord;

use crate::auth::Principal;
use crate::AppState;

/// Where a request's authenticated caller is left for the audit record.
#[derive(Debug, Clone, Default)]
pub struct Caller(Arc<Mutex<Option<(String, String)>>>);

impl Caller {
    pub fn set(&self, p: &Principal) {
        *self.0.lock().expect("not poisoned") = Some((p.org_id.clone(), p.audit_name()));
    }

    fn get(&self) -> Option<(String, String)> {
        self.0.lock().expect("not poisoned").clone()
    }
}

/// The message of an error answer, for the audit record.
#[derive(Debug, Clone)]
pub struct ErrorDetail(pub String);

pub async fn record(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let caller = Caller::default();
    req.extensions_mut().insert(caller.clone());
    let resp = next.run(req).await;
    let status = resp.status();
    let mutating = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    let denied = status.as_u16() == 401 || status.as_u16() == 403;
    // Workers' own reports are the scheduler's traffic, not a tenant's.
    if !(mutating || denied) || path.starts_with("/internal/") {
        return resp;
    }
    let (org, principal) = caller
        .get()
        .unwrap_or_else(|| (String::new(), "anonymous".into()));
    let result = if denied {
        "denied"
    } else if status.is_success() {
        "allowed"
    } else {
        "failed"
    };
    let detail = resp
        .extensions()
        .get::<ErrorDetail>()
        .map(|d| d.0.clone())
        .unwrap_or_default();
    tracing::info!(
        target: "weir::audit",
        org,
        principal,
        method = %method,
        path,
        status = status.as_u16(),
        result,
        request_id,
        detail,
        "audit"
    );
    if !org.is_empty() {
        let rec = AuditRecord {
            id: 0,
            at: weir_catalog::now_millis(),
            principal,
            method: method.to_string(),
            path,
            status: status.as_u16() as i64,
            result: result.into(),
            request_id,
            detail,
        };
        if let Err(e) = state.store.append_audit(&org, &rec).await {
            tracing::error!(error = %e, "the audit record could not be stored");
        }
    }
    resp
}
