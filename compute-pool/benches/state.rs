//! Memory of operator state per key, and the rate at which the stateful
//! operators take records, on one thread with in-memory input:
//!
//! - group aggregation keyed by a BIGINT and by a STRING,
//! - a tumbling-window aggregation whose window stays open (every key
//!   held), as Nexmark-style per-key windows do between firings,
//! - a regular self-join matching each record with itself (every record
//!   held on both inputs; "groups" are the rows held, B/key per row).
//!
//! State bytes are the operators' own estimate (`state_bytes`: keys,
//! accumulators, last emitted values, hash slots), the figure the
//! statement metric `state_bytes` reports; allocator overhead is not in
//! it. `cargo bench -p weir-compute-pool --bench state` (`WEIR_BENCH_KEYS`
//! sets the key count, default 200,000; every key gets 5 records).

use std::time::Instant;

use weir_compute_pool::compile;
use weir_compute_pool::connector::decode::{RawRecord, SourceDecoder};
use weir_compute_pool::BranchSource;
use weir_sql_gateway::{analyze, Analysis, CatalogContext, Planner};

const BATCH: usize = 8192;
const PER_KEY: usize = 5;

fn plan(sql: &str) -> weir_sql_gateway::StreamingPlan {
    let planner = Planner::new();
    let ctx = CatalogContext::from_ddl(
        &planner,
        &["CREATE TABLE t (k BIGINT, who STRING, x DOUBLE, ts TIMESTAMP(3), WATERMARK FOR ts AS ts)"],
    )
    .expect("DDL plans");
    match analyze(&planner, sql, &ctx).expect("plans") {
        Analysis::Streaming { plan, .. } => *plan,
        _ => unreachable!(),
    }
}

fn run(name: &str, sql: &str, keys: usize) {
    let plan = plan(sql);
    let mut compiled = compile(&plan).expect("compiles");
    let decoders: Vec<SourceDecoder> = compiled
        .branches
        .iter()
        .map(|b| match &b.source {
            BranchSource::Kafka(spec) => SourceDecoder::new(spec).expect("decoder"),
            BranchSource::Values(_) => unreachable!(),
        })
        .collect();
    // Key i's records are spread over the input (i, i + keys, ...), all in
    // the first hour.
    let values: Vec<String> = (0..keys * PER_KEY)
        .map(|n| {
            let k = n % keys;
            format!(
                r#"{{"k":{k},"who":"user-{k:08}","x":{}.5,"ts":"2024-01-01 00:{:02}:{:02}"}}"#,
                n % 100,
                (n / 60) % 60,
                n % 60
            )
        })
        .collect();
    let start = Instant::now();
    let mut out_rows = 0usize;
    for (i, chunk) in values.chunks(BATCH).enumerate() {
        let raw: Vec<RawRecord<'_>> = chunk
            .iter()
            .enumerate()
            .map(|(j, v)| RawRecord {
                headers: &[],
                key: None,
                value: Some(v.as_bytes()),
                partition: 0,
                offset: (i * BATCH + j) as i64,
                timestamp_ms: 0,
            })
            .collect();
        for (branch, decoder) in compiled.branches.iter().zip(&decoders) {
            let (batch, bad) = decoder.decode(&raw).expect("decodes");
            assert!(bad.is_empty());
            if let Some(b) = branch.process(batch.expect("rows"), None).expect("runs") {
                for c in compiled
                    .stages
                    .process(branch.target, b)
                    .expect("stages run")
                {
                    out_rows += c.batch.num_rows();
                }
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let (windows, groups) = compiled.stages.state_size();
    let bytes = compiled.stages.state_bytes();
    println!(
        "{name:<34} {keys:>9} keys {groups:>9} groups ({windows} windows) {:>10.1} MiB  {:>6.0} B/key  {:>9.0} records/s  ({out_rows} changes out)",
        bytes as f64 / (1 << 20) as f64,
        bytes as f64 / groups.max(1) as f64,
        values.len() as f64 / secs,
    );
}

fn main() {
    let keys = std::env::var("WEIR_BENCH_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    println!("state per key, {PER_KEY} records per key, one thread (decode included in records/s)");
    run(
        "group: BIGINT key, COUNT+SUM",
        "SELECT k, COUNT(*), SUM(x) FROM t GROUP BY k",
        keys,
    );
    run(
        "group: STRING key, COUNT+MAX+AVG",
        "SELECT who, COUNT(*), MAX(x), AVG(x) FROM t GROUP BY who",
        keys,
    );
    run(
        "window: BIGINT key, COUNT+SUM",
        "SELECT window_start, k, COUNT(*), SUM(x) FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' HOUR)) GROUP BY window_start, window_end, k",
        keys,
    );
    run(
        "join: self-join 1:1 on (k, ts)",
        "SELECT a.k, a.who, b.x FROM t AS a JOIN t AS b ON a.k = b.k AND a.ts = b.ts",
        keys,
    );
}
