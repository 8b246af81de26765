//! Logs and traces of a `weir` process. Logs go to stderr (`WEIR_LOG`
//! filters them). Traces go to an OpenTelemetry collector over OTLP
//! (HTTP/protobuf) when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set: every API request is a
//! span carrying its request id (the one error bodies and the audit log
//! show), and statement lifecycles are spans of their own. Without the
//! variable nothing is exported and nothing is spent on it.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::WithHttpConfig;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Sends OTLP requests with the workspace's one HTTP client, on the tokio
/// runtime (the batch exporter calls from a thread of its own).
#[derive(Debug)]
struct RuntimeClient {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for RuntimeClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let http = self.http.clone();
        let (parts, body) = request.into_parts();
        let task = self.runtime.spawn(async move {
            let resp = http
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let mut out = Response::builder().status(resp.status());
            if let Some(h) = out.headers_mut() {
                *h = resp.headers().clone();
            }
            let body = resp.bytes().await?;
            Ok::<_, HttpError>(out.body(body)?)
        });
        task.await?
    }
}

/// What must live until the process ends: dropping it flushes the spans
/// not exported yet.
pub struct Telemetry(Option<opentelemetry_sdk::trace::SdkTracerProvider>);

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = p.shutdown();
        }
    }
}

fn otlp_configured() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var(v).is_ok_and(|s| !s.trim().is_empty()))
}

/// Installs the process's subscriber; call once, on the runtime.
pub fn init() -> anyhow::Result<Telemetry> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG")
        .unwrap_or_else(|_| "warn,weir=info".into());
    let fmt = || tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    if !otlp_configured() {
        tracing_subscriber::registry()
            .with(fmt().with_filter(filter))
            .init();
        return Ok(Telemetry(None));
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(RuntimeClient {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()?,
            runtime: tokio::runtime::Handle::current(),
        })
        .build()?;
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "weir".into());
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service)
                .build(),
        )
        .build();
    // Spans of Weir's own crates (info and up), whatever WEIR_LOG prints.
    let traces = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("weir"))
        .with_filter(tracing_subscriber::EnvFilter::new(
            "warn,weir=info,weir_control_plane=info,weir_compute_pool=info,weir_sql_gateway=info,weir_catalog=info",
        ));
    tracing_subscriber::registry()
        .with(fmt().with_filter(filter))
        .with(traces)
        .init();
    Ok(Telemetry(Some(provider)))
}
