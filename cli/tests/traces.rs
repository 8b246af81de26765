//! Traces and metrics: `weir dev` with `OTEL_EXPORTER_OTLP_ENDPOINT` set
//! exports spans over OTLP/HTTP to a collector (a local stand-in that
//! decodes them with the OpenTelemetry protobuf definitions). An API
//! request is a span with its request id; a statement's life is a span
//! naming the statement; no secret is in anything exported. The pools' and
//! statements' metrics (what `/metrics` serves) are exported the same way.

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use support::*;

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            AnyValue::StringValue(s) => s.clone(),
            AnyValue::IntValue(i) => i.to_string(),
            other => format!("{other:?}"),
        })
}

/// Every span the collector has been sent so far.
fn spans(c: &Collector) -> Vec<Span> {
    c.bodies_of("/v1/traces")
        .iter()
        .flat_map(|b| {
            ExportTraceServiceRequest::decode(b.as_slice())
                .expect("an OTLP trace export")
                .resource_spans
        })
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans)
        .collect()
}

fn wait_for_span(c: &Collector, what: &str, f: impl Fn(&Span) -> bool) -> Span {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = spans(c).into_iter().find(|s| f(s)) {
            return s;
        }
        assert!(Instant::now() < deadline, "no span {what} in 30 s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn requests_and_statements_are_traced_over_otlp_without_secrets() {
    let collector = Collector::start();
    let dir = temp_dir();
    let dev = Dev::start_with_env(
        &dir,
        &["--bootstrap", &broker()],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.url),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
            ("OTEL_SERVICE_NAME", "weir-under-test"),
        ],
    );
    // A request with a request id of our own, sent by hand.
    let url = dev.env["WEIR_URL"]
        .trim_start_matches("http://")
        .to_string();
    let (key, secret) = (&dev.env["WEIR_API_KEY"], &dev.env["WEIR_API_SECRET"]);
    let auth = {
        use std::fmt::Write as _;
        let raw = format!("{key}:{secret}");
        // Base64 by hand: the test needs no crate for one header.
        const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in raw.as_bytes().chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
            for i in 0..4 {
                if i <= chunk.len() {
                    out.write_char(T[(n >> (18 - 6 * i) & 63) as usize] as char)
                        .unwrap();
                } else {
                    out.push('=');
                }
            }
        }
        out
    };
    let request_id = format!("trace-check-{}", std::process::id());
    let mut conn = std::net::TcpStream::connect(&url).unwrap();
    write!(
        conn,
        "GET /org/v2/environments HTTP/1.1\r\nHost: {url}\r\nAuthorization: Basic {auth}\r\nx-request-id: {request_id}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let span = wait_for_span(&collector, "for the request", |s| {
        s.name == "request" && attribute(s, "request_id").as_deref() == Some(request_id.as_str())
    });
    assert_eq!(
        attribute(&span, "url.path").as_deref(),
        Some("/org/v2/environments")
    );
    assert_eq!(
        attribute(&span, "http.response.status_code").as_deref(),
        Some("200")
    );
    // A statement's life.
    let name = format!("traced-{}", std::process::id());
    dev.ok(&[
        "statement",
        "create",
        "--name",
        &name,
        "--wait",
        "--sql",
        "SELECT 1",
    ]);
    let span = wait_for_span(&collector, "for the statement", |s| {
        s.name == "statement" && attribute(s, "statement").as_deref() == Some(name.as_str())
    });
    assert!(attribute(&span, "pool").is_some());
    // The service is named as configured, and nothing exported holds the
    // secret.
    let bodies: Vec<u8> = collector
        .bodies
        .lock()
        .unwrap()
        .iter()
        .flat_map(|(_, b)| b.clone())
        .collect();
    assert!(String::from_utf8_lossy(&bodies).contains("weir-under-test"));
    assert!(
        !bodies.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the API secret is in an exported span"
    );
    assert!(
        !bodies.windows(auth.len()).any(|w| w == auth.as_bytes()),
        "the Authorization header is in an exported span"
    );
    dev.interrupt();
}

/// Every data point of metric `name` the collector has been sent:
/// (attributes, value).
fn points(c: &Collector, name: &str) -> Vec<(Vec<(String, String)>, i64)> {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point::Value};
    let mut out = vec![];
    for b in c.bodies_of("/v1/metrics") {
        let req =
            ExportMetricsServiceRequest::decode(b.as_slice()).expect("an OTLP metrics export");
        for m in req
            .resource_metrics
            .into_iter()
            .flat_map(|r| r.scope_metrics)
            .flat_map(|s| s.metrics)
            .filter(|m| m.name == name)
        {
            let dps = match m.data {
                Some(Data::Gauge(g)) => g.data_points,
                Some(Data::Sum(s)) => s.data_points,
                _ => vec![],
            };
            for p in dps {
                let attrs = p
                    .attributes
                    .iter()
                    .map(|a| {
                        let v = match a.value.as_ref().and_then(|v| v.value.as_ref()) {
                            Some(AnyValue::StringValue(s)) => s.clone(),
                            other => format!("{other:?}"),
                        };
                        (a.key.clone(), v)
                    })
                    .collect();
                let v = match p.value {
                    Some(Value::AsInt(i)) => i,
                    Some(Value::AsDouble(d)) => d as i64,
                    None => 0,
                };
                out.push((attrs, v));
            }
        }
    }
    out
}

fn has(attrs: &[(String, String)], key: &str, value: &str) -> bool {
    attrs.iter().any(|(k, v)| k == key && v == value)
}

#[test]
fn pool_and_statement_metrics_are_exported_over_otlp() {
    let collector = Collector::start();
    let dir = temp_dir();
    let endpoint = format!("{}/v1/metrics", collector.url);
    let dev = Dev::start_with_env(
        &dir.join("dev"),
        &["--bootstrap", &broker()],
        &[
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", endpoint.as_str()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
        ],
    );
    // A pool reports before any statement of its organization runs.
    let (pool, org) = (&dev.env["WEIR_COMPUTE_POOL"], &dev.env["WEIR_ORG"]);
    let pool_limit = || {
        points(&collector, "weir_compute_pool_max_cfu")
            .into_iter()
            .any(|(a, v)| has(&a, "compute_pool", pool) && has(&a, "organization", org) && v > 0)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pool_limit() {
        assert!(
            Instant::now() < deadline,
            "the pool's limit was not exported in 30 s before any statement ran"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let input = unique("otlp_in");
    let output = unique("otlp_out");
    dev.ok(&[
        "sql",
        &format!("CREATE TABLE {input} (id BIGINT, amount DOUBLE)"),
    ]);
    dev.ok(&[
        "sql",
        &format!("CREATE TABLE {output} (id BIGINT, amount DOUBLE)"),
    ]);
    dev.ok(&[
        "statement",
        "create",
        "--name",
        "copy",
        "--wait",
        "--sql",
        &format!("INSERT INTO {output} SELECT id, amount FROM {input}"),
    ]);
    produce(&input, 0..25);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let records = points(&collector, "weir_statement_records_in_total");
        let read = records
            .iter()
            .filter(|(a, _)| has(a, "statement", "copy") && has(a, "compute_pool", pool))
            .map(|(_, v)| *v)
            .max();
        let cfu = points(&collector, "weir_statement_current_cfu")
            .into_iter()
            .any(|(a, v)| has(&a, "statement", "copy") && v >= 1);
        if read == Some(25) && cfu {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "metrics not exported in 60 s: records_in {read:?}, statement cfu {cfu}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
