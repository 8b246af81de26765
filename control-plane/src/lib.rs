//! The control plane: the REST API, authentication, the statement
//! lifecycle, placement of statements on a worker, and the background loops
//! (topic discovery).
//!
//! It wires the lower crates together: requests are authenticated here
//! ([`auth`]), SQL is handed to `sql-gateway`, records are kept through
//! `catalog`'s store, and plans run on a `compute-pool` [`weir_compute_pool::Worker`]
//! placed by the [`scheduler`], or on `weir worker` processes that talk to
//! it through [`workers`]. It does not parse SQL or run operators itself.
//!
//! Start with [`Server`] and [`router`].

mod access;
mod audit;
pub mod auth;
pub mod authz;
pub mod autoscaler;
pub mod dev;
mod error;
mod iam;
mod identity;
pub mod limits;
pub mod oauth;
mod openapi;
mod org;
pub mod parallel;
mod planning;
pub(crate) mod pools;
pub mod provisioner;
pub mod registry;
pub mod scaling;
mod scheduler;
mod statements;
mod sync;
mod usage;
pub use usage::{organizations, samples, Sample, METRICS};
pub mod workers;
mod workspace;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use weir_catalog::Store;
use weir_sql_gateway::Planner;

pub use error::ApiError;
pub use scheduler::Scheduler;
pub use workers::{ProcessWorkers, WorkersConfig};

/// Settings of a control-plane process. `weir dev` fills every field.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `sqlite://PATH` or `postgres://...`.
    pub database_url: String,
    /// Where the API listens, e.g. `127.0.0.1:8080`.
    pub listen: String,
    /// The URL clients use to reach the API (for `Location` and `self`).
    pub public_url: Option<String>,
    /// A `SELECT` whose results nobody reads for this long is stopped.
    pub results_idle_timeout: Duration,
    /// How often topics are discovered.
    pub topic_sync_interval: Duration,
    /// Rows a `SELECT` may buffer before it waits for a reader.
    pub results_capacity: usize,
    /// The folder stateful statements checkpoint into; `None`: no
    /// checkpoints (they replay their sources on restart).
    pub checkpoint_dir: Option<std::path::PathBuf>,
    /// A statement's memory limit unless its `'sql.memory.limit'` says
    /// otherwise (bytes).
    pub statement_memory_limit: u64,
    /// Place statements on `weir worker` processes that register with this
    /// credential; `None`: run them on this process's own worker.
    pub workers: Option<WorkersConfig>,
    /// The price of one CFU-hour, for `/billing/v1/costs`; `None`: no
    /// costs view.
    pub price_per_cfu_hour: Option<f64>,
    /// How often the CFUs running statements hold are sampled for metering.
    pub meter_interval: Duration,
    /// How often running statements' principals are checked for the roles
    /// their statements need (a statement whose principal lost one fails).
    pub access_check_interval: Duration,
    /// Request rates per principal and quotas per environment and
    /// organization.
    pub limits: limits::Limits,
    /// How long an identity provider's JWKS is used before it is fetched
    /// again (a token with an unknown key id fetches it sooner).
    pub jwks_cache_ttl: Duration,
    /// The key that seals stored credentials (made when missing); `None`:
    /// the server stores none, and setting one is refused.
    pub secret_key_file: Option<std::path::PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            database_url: "sqlite://.weir/weir.db".into(),
            listen: "127.0.0.1:8080".into(),
            public_url: None,
            results_idle_timeout: Duration::from_secs(300),
            topic_sync_interval: Duration::from_secs(2),
            results_capacity: 100_000,
            checkpoint_dir: Some(".weir/checkpoints".into()),
            statement_memory_limit: weir_sql_gateway::limits::DEFAULT_MEMORY_LIMIT,
            workers: None,
            price_per_cfu_hour: None,
            meter_interval: Duration::from_secs(1),
            access_check_interval: Duration::from_secs(5),
            limits: limits::Limits::default(),
            jwks_cache_ttl: Duration::from_secs(300),
            secret_key_file: None,
        }
    }
}

/// Shared state of the API handlers.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub planner: Arc<Planner>,
    pub scheduler: Scheduler,
    pub config: Arc<ServerConfig>,
    pub public_url: Arc<str>,
    /// Request rates per principal.
    pub limiter: Arc<limits::RateLimiter>,
    /// Identity providers' signing keys, for bearer tokens.
    pub tokens: Arc<oauth::Jwks>,
}

/// Bad or huge bodies get a 4xx, never a panic or an unbounded read.
const MAX_BODY_BYTES: usize = 1 << 20;
/// How much of an oversized body is read and thrown away before the 413, so
/// that a client still sending it sees the answer rather than a connection
/// reset (the server closing a socket with unread data sends a TCP RST).
const DRAIN_BODY_BYTES: usize = 64 << 20;

/// Every route of the API, with the document of the public ones.
fn api_router(state: &AppState) -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::router::OpenApiRouter;
    OpenApiRouter::new()
        .merge(statements::routes())
        .merge(org::routes())
        .merge(pools::routes())
        .merge(usage::routes())
        .merge(limits::routes())
        .merge(workspace::routes())
        .layer(axum::middleware::from_fn(refuse_oversized_bodies))
        // Workers' reports carry pages of results: a limit of their own.
        // They are internal: not in the document.
        .merge(OpenApiRouter::from(workers::routes()))
        .layer(axum::middleware::from_fn(error::every_error_in_one_shape))
        // The schema registry answers in Confluent's error shape.
        .merge(registry::routes())
        .merge(iam::routes())
        .merge(identity::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit::record,
        ))
        // Each request is a span (exported when OTLP is configured) that
        // carries the request id set just outside it.
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(
                    |resp: &axum::http::Response<_>, _: Duration, span: &tracing::Span| {
                        span.record("http.response.status_code", resp.status().as_u16());
                    },
                )
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// The span of one API request: method, route path and request id; never
/// headers or the query, which may carry credentials.
fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "request",
        http.request.method = %req.method(),
        url.path = req.uri().path(),
        request_id,
        http.response.status_code = tracing::field::Empty,
    )
}

/// The OpenAPI document of the API, as `/openapi.json` serves it.
pub fn openapi_document() -> serde_json::Value {
    // The routes only: no request reaches this state.
    let mut routes = utoipa_axum::router::OpenApiRouter::<AppState>::new()
        .merge(statements::routes())
        .merge(org::routes())
        .merge(pools::routes())
        .merge(usage::routes())
        .merge(registry::routes())
        .merge(iam::routes())
        .merge(identity::routes())
        .merge(limits::routes())
        .merge(workspace::routes());
    openapi::document(routes.to_openapi())
}

pub fn router(state: AppState) -> Router {
    let (router, api) = api_router(&state).split_for_parts();
    let doc: Arc<str> = serde_json::to_string_pretty(&openapi::document(api))
        .expect("a document serializes")
        .into();
    router
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        doc.to_string(),
                    )
                }
            }),
        )
        .fallback(web_or_not_found)
        .with_state(state)
}

/// The web workspace's files (the page at `/`), or the API's 404 for any
/// other path. The page is public; what it shows needs an API key.
async fn web_or_not_found(
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> axum::response::Response {
    use axum::http::header;
    use axum::response::IntoResponse;
    let path = uri.path();
    let asset = if method != axum::http::Method::GET && method != axum::http::Method::HEAD {
        None
    } else if path == "/" {
        Some(weir_web::index())
    } else {
        weir_web::asset(path)
    };
    let Some(a) = asset else {
        return error::not_found(method, uri).await.into_response();
    };
    let cache = if a.immutable {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        [
            (header::CONTENT_TYPE, a.content_type),
            (header::CACHE_CONTROL, cache),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
            // CodeMirror sets styles from script; nothing else is inline.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
            ),
        ],
        a.bytes,
    )
        .into_response()
}

/// Buffers a request body up to [`MAX_BODY_BYTES`]; a larger one is read to
/// its end (up to [`DRAIN_BODY_BYTES`]) and answered with 413.
async fn refuse_oversized_bodies(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    use futures::StreamExt;

    let (parts, body) = req.into_parts();
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    let mut read = 0usize;
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return ApiError::bad_request("the request body could not be read").into_response();
        };
        read += chunk.len();
        if read <= MAX_BODY_BYTES {
            buf.extend_from_slice(&chunk);
        } else {
            buf = Vec::new();
            if read > DRAIN_BODY_BYTES {
                break;
            }
        }
    }
    if read > MAX_BODY_BYTES {
        return ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
        )
        .into_response();
    }
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(buf),
    ))
    .await
}

/// A running control plane with its worker.
pub struct Server {
    pub url: String,
    pub state: AppState,
    cancel: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Stops the process provisioner (after the statements, so that their
    /// workers can still report while they drain).
    provisioning: CancellationToken,
    provisioner: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Connects the store, resumes the statements that were running, starts
    /// topic discovery and serves the API.
    pub async fn start(config: ServerConfig) -> Result<Server, ApiError> {
        let mut store = Store::connect(&config.database_url).await?;
        if let Some(path) = &config.secret_key_file {
            let key = weir_catalog::secrets::SecretKey::load_or_create(path)
                .map_err(ApiError::internal)?;
            store = store.with_secret_key(key);
        }
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .map_err(|e| ApiError::internal(format!("cannot listen on {}: {e}", config.listen)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        let planner = Arc::new(Planner::new());
        let config = Arc::new(config);
        let workers = config
            .workers
            .clone()
            .map(|w| Arc::new(workers::Workers::new(w, store.clone())));
        let scheduler = Scheduler::new(
            store.clone(),
            planner.clone(),
            config.clone(),
            workers.clone(),
        );
        let state = AppState {
            store: store.clone(),
            planner,
            scheduler: scheduler.clone(),
            config: config.clone(),
            public_url: Arc::from(url.as_str()),
            limiter: Arc::default(),
            tokens: Arc::default(),
        };
        let cancel = CancellationToken::new();
        let mut tasks = vec![];
        let app = router(state.clone());
        let c = cancel.clone();
        tasks.push(tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { c.cancelled().await })
                .await;
        }));
        tasks.push(tokio::spawn(sync::run(
            store.clone(),
            config.topic_sync_interval,
            cancel.clone(),
        )));
        tasks.push(tokio::spawn(usage::run_meter(
            scheduler.clone(),
            store.clone(),
            config.meter_interval,
            cancel.clone(),
        )));
        tasks.push(tokio::spawn(scaling::run(
            scheduler.clone(),
            cancel.clone(),
        )));
        tasks.push(tokio::spawn(access::watch(
            store.clone(),
            scheduler.clone(),
            config.access_check_interval,
            cancel.clone(),
        )));
        let provisioning = CancellationToken::new();
        let mut provisioner = None;
        if let Some(w) = workers {
            tasks.push(tokio::spawn(w.clone().run_expiry(cancel.clone())));
            if let Some(p) = &w.config().processes {
                let every = w.config().heartbeat_interval;
                let process = Arc::new(provisioner::ProcessProvisioner::new(
                    p.bin.clone(),
                    url.clone(),
                    p.credential_file.clone(),
                    p.slots,
                    p.log_dir.clone(),
                ));
                provisioner = Some(tokio::spawn(provisioner::run(
                    w,
                    process,
                    every,
                    provisioning.clone(),
                )));
            }
        }
        scheduler.resume_all().await;
        Ok(Server {
            url,
            state,
            cancel,
            tasks,
            provisioning,
            provisioner,
        })
    }

    /// Stops serving, then stops every statement after it drains, so that
    /// the next start resumes exactly where this one left off.
    pub async fn shutdown(self) {
        if self.state.scheduler.workers().is_some() {
            // Statements on workers drain and report through the API:
            // stop them while it still answers, then the workers.
            self.state.scheduler.shutdown().await;
            self.provisioning.cancel();
            if let Some(p) = self.provisioner {
                let _ = p.await;
            }
        }
        self.cancel.cancel();
        self.state.scheduler.shutdown().await;
        for t in self.tasks {
            let _ = t.await;
        }
        self.state.store.close().await;
    }
}

/// A typed answer of `weir_api` as JSON: the document describes the type,
/// and the answer is made from it.
pub(crate) fn answer<T: serde::Serialize>(t: T) -> serde_json::Value {
    serde_json::to_value(t).expect("API types serialize")
}

/// The metadata of a resource.
pub(crate) fn meta(url: String, crn: &str, created_at: Option<i64>) -> weir_api::ResourceMeta {
    weir_api::ResourceMeta {
        self_: url,
        resource_name: crn.to_string(),
        created_at: created_at.map(iam::iso),
    }
}
