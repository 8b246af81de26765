//! Logs and traces of a `weir` process. Logs go to stderr (`WEIR_LOG`
//! filters them). Traces go to an OpenTelemetry collector over OTLP
//! (HTTP/protobuf) when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set: every API request is a
//! span carrying its request id (the one error bodies and the audit log
//! show), and statement lifecycles are spans of their own. Metrics go the
//! same way (`OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` also turns them on,
//! every `OTEL_METRIC_EXPORT_INTERVAL` ms, 60 s by default): the pools' and
//! statements' figures the Prometheus endpoint `/metrics` serves, for every
//! organization with statements in this process. Without the variables
//! nothing is exported and nothing is spent on it.

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
/// and metrics not exported yet.
pub struct Telemetry(
    Option<opentelemetry_sdk::trace::SdkTracerProvider>,
    Option<opentelemetry_sdk::metrics::SdkMeterProvider>,
);

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = p.shutdown();
        }
        if let Some(p) = self.1.take() {
            let _ = p.shutdown();
        }
    }
}

fn set(var: &str) -> bool {
    std::env::var(var).is_ok_and(|s| !s.trim().is_empty())
}

fn otlp_configured() -> bool {
    set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
}

fn otlp_metrics_configured() -> bool {
    set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
}

fn http_client() -> anyhow::Result<RuntimeClient> {
    Ok(RuntimeClient {
        http: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()?,
        runtime: tokio::runtime::Handle::current(),
    })
}

fn resource() -> opentelemetry_sdk::Resource {
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "weir".into());
    opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build()
}

/// The meter provider of the OTLP metrics export, installed as the global
/// one, when an endpoint is configured.
fn metrics_provider() -> anyhow::Result<Option<opentelemetry_sdk::metrics::SdkMeterProvider>> {
    if !otlp_metrics_configured() {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_http_client(http_client()?)
        .build()?;
    let reader = opentelemetry_sdk::metrics::PeriodicReader::builder(exporter)
        .with_interval(export_interval())
        .build();
    let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_reader(reader)
        .with_resource(resource())
        .build();
    opentelemetry::global::set_meter_provider(provider.clone());
    METRICS_ON.store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(Some(provider))
}

/// `OTEL_METRIC_EXPORT_INTERVAL` (milliseconds; 60 s when unset or not a
/// number), at least 100 ms: 0 would export in a busy loop.
fn export_interval() -> std::time::Duration {
    std::env::var("OTEL_METRIC_EXPORT_INTERVAL")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(
            std::time::Duration::from_secs(60),
            std::time::Duration::from_millis,
        )
        .max(std::time::Duration::from_millis(100))
}

static METRICS_ON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Exports the metrics of `state`'s pools and statements over OTLP, when
/// it is configured: observable instruments read a snapshot that a task
/// refreshes (the store is asynchronous, the SDK's callbacks are not).
pub fn export_metrics(state: weir_control_plane::AppState) {
    use opentelemetry::KeyValue;
    use std::sync::{Arc, RwLock};
    if !METRICS_ON.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    type Snapshot = Arc<RwLock<Vec<(String, weir_control_plane::Sample)>>>;
    let snapshot: Snapshot = Default::default();
    let interval = export_interval();
    {
        let snapshot = snapshot.clone();
        tokio::spawn(async move {
            let mut orgs: Vec<String> = vec![];
            loop {
                match weir_control_plane::organizations(&state).await {
                    Ok(o) => orgs = o,
                    Err(e) => tracing::warn!(error = %e.detail, "listing the organizations"),
                }
                let mut all = vec![];
                for o in &orgs {
                    match weir_control_plane::samples(&state, o).await {
                        Ok(s) => all.extend(s.into_iter().map(|s| (o.clone(), s))),
                        Err(e) => tracing::warn!(error = %e.detail, "metrics of an organization"),
                    }
                }
                *snapshot.write().unwrap_or_else(|e| e.into_inner()) = all;
                // Fresh for the next export.
                tokio::time::sleep(interval / 2).await;
            }
        });
    }
    let meter = opentelemetry::global::meter("weir");
    for (name, counter, help) in weir_control_plane::METRICS {
        let snapshot = snapshot.clone();
        let observe = move |emit: &dyn Fn(u64, &[KeyValue])| {
            for (org, s) in snapshot.read().unwrap_or_else(|e| e.into_inner()).iter() {
                if s.name != name {
                    continue;
                }
                let mut attrs = vec![KeyValue::new("organization", org.clone())];
                attrs.extend(s.labels.iter().map(|(k, v)| KeyValue::new(*k, v.clone())));
                emit(s.value, &attrs);
            }
        };
        if counter {
            meter
                .u64_observable_counter(name)
                .with_description(help)
                .with_callback(move |o| observe(&|v, a| o.observe(v, a)))
                .build();
        } else {
            meter
                .u64_observable_gauge(name)
                .with_description(help)
                .with_callback(move |o| observe(&|v, a| o.observe(v, a)))
                .build();
        }
    }
}

/// Installs the process's subscriber; call once, on the runtime.
pub fn init() -> anyhow::Result<Telemetry> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG")
        .unwrap_or_else(|_| "warn,weir=info".into());
    let fmt = || tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let meters = metrics_provider()?;
    if !otlp_configured() {
        tracing_subscriber::registry()
            .with(fmt().with_filter(filter))
            .init();
        return Ok(Telemetry(None, meters));
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(http_client()?)
        .build()?;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource())
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
    Ok(Telemetry(Some(provider), meters))
}
