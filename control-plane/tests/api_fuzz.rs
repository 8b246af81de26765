//! Generated request bodies, statement properties, names, paths and
//! headers through the REST API of a real server: no request may make it
//! fail (a 5xx) or stop answering, and every refusal has the API's error
//! shape. `WEIR_API_FUZZ_REQUESTS` (default 400) sets how many requests,
//! `WEIR_FUZZ_SEED` repeats a run.

mod common;

use std::time::Instant;

use common::*;
use serde_json::{json, Value};
use weir_api::ErrorBody;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const PROPERTY_KEYS: &[&str] = &[
    "sql.current-catalog",
    "sql.current-database",
    "sql.local-time-zone",
    "sql.tables.scan.idle-timeout",
    "execution.checkpointing.interval",
    "sql.state-ttl",
    "table.exec.state.ttl",
    "sql.memory.limit",
    "sql.memory.soft-limit",
    "table.exec.mini-batch.enabled",
    "",
    "x",
    "\u{0}",
];

const PROPERTY_VALUES: &[&str] = &[
    "",
    "0",
    "-1",
    "1 s",
    "10 min",
    "99999999999999999999 d",
    "9223372036854775807",
    "1 mb",
    "0 gb",
    "18446744073709551615 tb",
    "UTC",
    "Asia/Shanghai",
    "+99:99",
    "GMT-05:00",
    "Mars/Olympus",
    "default",
    "cluster_0",
    "nope",
    "\u{1F600}",
    "true",
    "' OR 1=1 --",
];

const STATEMENTS: &[&str] = &[
    "SELECT id FROM fz",
    "SELECT id, COUNT(*) FROM fz GROUP BY id",
    "SELECT window_start, COUNT(*) FROM TABLE(TUMBLE(TABLE fz, DESCRIPTOR(ts), INTERVAL '1' SECOND)) GROUP BY window_start, window_end",
    "SHOW TABLES",
    "SET 'sql.local-time-zone' = 'UTC'",
    "SELECT 1",
    "EXPLAIN SELECT id FROM fz",
    "",
    "SELECT",
    ";;;",
];

/// A JSON value of any shape, up to `depth` deep.
fn any_value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth == 0 { 5 } else { 8 }) {
        0 => Value::Null,
        1 => json!(rng.next().is_multiple_of(2)),
        2 => json!(rng.next() as i64),
        3 => json!(rng.pick(PROPERTY_VALUES)),
        4 => json!("x".repeat(rng.below(3) * 10_000)),
        5 | 6 => Value::Array(
            (0..rng.below(4))
                .map(|_| any_value(rng, depth - 1))
                .collect(),
        ),
        _ => {
            let mut m = serde_json::Map::new();
            for _ in 0..rng.below(4) {
                m.insert(
                    rng.pick(&["name", "spec", "statement", "properties", "stopped", "x"])
                        .to_string(),
                    any_value(rng, depth - 1),
                );
            }
            Value::Object(m)
        }
    }
}

fn properties(rng: &mut Rng) -> Value {
    let mut m = serde_json::Map::new();
    for _ in 0..rng.below(4) {
        m.insert(
            rng.pick(PROPERTY_KEYS).to_string(),
            json!(rng.pick(PROPERTY_VALUES)),
        );
    }
    Value::Object(m)
}

/// A statement body: mostly well-formed with generated parts, sometimes
/// any JSON, sometimes not JSON at all.
fn body(rng: &mut Rng, n: usize) -> Vec<u8> {
    match rng.below(10) {
        0 => any_value(rng, 4).to_string().into_bytes(),
        1 => {
            // Deep nesting, past any parser's recursion limit.
            let d = *rng.pick(&[100, 1_000, 100_000]);
            format!(
                r#"{{"spec":{{"statement":"SELECT 1","properties":{}{}}}}}"#,
                "[".repeat(d),
                "]".repeat(d)
            )
            .into_bytes()
        }
        2 => {
            let mut b = json!({"spec": {"statement": "SELECT 1"}})
                .to_string()
                .into_bytes();
            b.truncate(rng.below(b.len()));
            b
        }
        3 => vec![0xff, 0xfe, b'{', 0x80, b'}'],
        _ => {
            let name = match rng.below(6) {
                0 => json!(rng.pick(&["", "-a", "A", "a/b", "..", "ünï", "a\u{0}b"])),
                1 => json!("a".repeat(rng.below(300))),
                2 => json!(rng.next() as i64),
                _ => json!(format!("fz-{n}")),
            };
            let statement = match rng.below(5) {
                0 => any_value(rng, 1),
                _ => json!(rng.pick(STATEMENTS)),
            };
            json!({
                "name": name,
                "spec": {
                    "statement": statement,
                    "properties": if rng.below(5) == 0 { any_value(rng, 2) } else { properties(rng) },
                    "stopped": rng.below(4) == 0,
                    "compute_pool_id": if rng.below(6) == 0 { json!("lfcp-nope") } else { Value::Null },
                }
            })
            .to_string()
            .into_bytes()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_requests_never_make_the_api_fail_or_stop_answering() {
    let requests: usize = std::env::var("WEIR_API_FUZZ_REQUESTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    let seed: u64 = std::env::var("WEIR_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let weir = Weir::start().await;
    weir.ddl("CREATE TABLE fz (id BIGINT, s STRING, ts TIMESTAMP(3), WATERMARK FOR ts AS ts)")
        .await;
    let base = format!(
        "{}/sql/v1/organizations/{}/environments/{}/statements",
        weir.url(),
        weir.dev.org,
        weir.dev.env
    );
    // A fresh connection per request: the server may close a connection
    // after refusing a request early (a body too large), and a pooled
    // client that reuses it races with the close, which would be the
    // client's failure, not the API's.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut rng = Rng(seed);
    let start = Instant::now();
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    for n in 0..requests {
        let name = match rng.below(6) {
            0 => "%2e%2e".to_string(),
            1 => "a".repeat(5_000),
            2 => "%00%ff".to_string(),
            3 => format!("fz-{}", rng.below(n + 1)),
            _ => format!("fz-{n}"),
        };
        let (method, url) = match rng.below(8) {
            0..=3 => (reqwest::Method::POST, base.clone()),
            4 => (reqwest::Method::PUT, format!("{base}/{name}")),
            5 => (
                reqwest::Method::GET,
                format!(
                    "{base}/{name}/results?page_token={}",
                    rng.pick(&["", "-1", "99999999999999999999", "x"])
                ),
            ),
            6 => (reqwest::Method::DELETE, format!("{base}/{name}")),
            _ => (reqwest::Method::PATCH, format!("{base}/{name}")),
        };
        let content_type = *rng.pick(&[
            "application/json",
            "application/json",
            "application/json",
            "text/plain",
            "application/json; charset=utf-16",
        ]);
        let body = body(&mut rng, n);
        let sent = format!(
            "{method} {url} ({content_type}): {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        );
        let resp = http
            .request(method, &url)
            .basic_auth(&weir.dev.key, Some(&weir.dev.secret))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("no answer to {sent}: {e}"));
        let status = resp.status().as_u16();
        *by_status.entry(status).or_default() += 1;
        let text = resp.text().await.unwrap();
        assert!(status < 500, "{status} for {sent}: {text}");
        if status >= 400 {
            serde_json::from_str::<ErrorBody>(&text).unwrap_or_else(|e| {
                panic!("{status} without the error shape ({e}) for {sent}: {text}")
            });
        }
        if status == 201 {
            // Keep the server light: what was created goes again.
            let v: Value = serde_json::from_str(&text).unwrap();
            let created = v["name"].as_str().unwrap();
            weir.client.delete_statement(created).await.unwrap();
        }
    }
    println!(
        "api fuzz: {requests} requests in {:.1} s, seed {seed}: statuses {by_status:?}",
        start.elapsed().as_secs_f64()
    );
    // Still answering.
    weir.client.list_statements(None).await.unwrap();
    weir.stop().await;
}
