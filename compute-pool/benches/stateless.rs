//! Records per second per core of a stateless `INSERT INTO ... SELECT`
//! from a JSON topic to a JSON topic:
//!
//! (a) the engine alone: in-memory ~200-byte JSON records are decoded into
//!     Arrow batches, filtered and projected, and encoded to Kafka
//!     keys/values, on one thread;
//! (b) through the broker: the same statement on the worker against a real
//!     broker (`WEIR_BENCH_BOOTSTRAP` or `WEIR_TEST_BOOTSTRAP`), from the
//!     first record read until the last output is acknowledged, with the
//!     CPU time of this process.
//!
//! `cargo bench -p weir-compute-pool --bench stateless`
//! (`WEIR_BENCH_RECORDS` sets the record count; default 2,000,000 in
//! memory and 200,000 through the broker).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use weir_catalog::KafkaAdmin;
use weir_compute_pool::connector::decode::{RawRecord, SourceDecoder};
use weir_compute_pool::connector::encode::kafka_records;
use weir_compute_pool::{compile, BranchSource, StatementEvents, StatementTask, Worker};
use weir_sql_gateway::{analyze, Analysis, CatalogContext, Planner, SinkSpec, StreamingPlan};

#[path = "support/cpu.rs"]
mod cpu;
use cpu::cpu_seconds;

const SQL: &str =
    "INSERT INTO big SELECT id, UPPER(who) AS who, amount * 2 AS total FROM orders WHERE amount > 50";
const BATCH: usize = 8192;

fn plan(src_topic: &str, dst_topic: &str) -> StreamingPlan {
    let planner = Planner::new();
    let mut ctx = CatalogContext::from_ddl(
        &planner,
        &[
            "CREATE TABLE orders (id BIGINT, who STRING, amount DOUBLE, country STRING, note STRING, tags ARRAY<STRING>)",
            "CREATE TABLE big (id BIGINT, who STRING, total DOUBLE) DISTRIBUTED BY HASH(id) INTO 2 BUCKETS",
        ],
    )
    .expect("DDL plans");
    ctx.tables[0].1.topic = src_topic.to_string();
    ctx.tables[1].1.topic = dst_topic.to_string();
    match analyze(&planner, SQL, &ctx).expect("plans") {
        Analysis::Streaming { plan, .. } => *plan,
        _ => unreachable!(),
    }
}

fn record(id: i64) -> String {
    let who = ["alice", "bob", "carol", "dave", "erin"][(id % 5) as usize];
    let amount = (id * 37 % 1000) as f64 / 10.0;
    format!(
        r#"{{"id":{id},"who":"{who}","amount":{amount:.1},"country":"{}","note":"order {id} placed through the web shop with standard shipping, gift wrapped, left at the door","tags":["a","b","gift"]}}"#,
        ["NL", "DE", "FR"][(id % 3) as usize]
    )
}

fn records_from_env(default: usize) -> usize {
    std::env::var("WEIR_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn engine_alone() {
    let n = records_from_env(2_000_000);
    let plan = plan("orders", "big");
    let compiled = compile(&plan).unwrap();
    let branch = &compiled.branches[0];
    let BranchSource::Kafka(spec) = &branch.source else {
        unreachable!()
    };
    let decoder = SourceDecoder::new(spec).unwrap();
    let SinkSpec::Table { table: sink, .. } = &plan.sink else {
        unreachable!()
    };
    let values: Vec<String> = (0..n as i64).map(record).collect();
    let bytes: usize = values.iter().map(String::len).sum();

    let (mut t_decode, mut t_ops, mut t_encode) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut out_records = 0usize;
    let mut out_bytes = 0usize;
    let start = Instant::now();
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
                timestamp_ms: 1_700_000_000_000,
            })
            .collect();
        let t = Instant::now();
        let (batch, bad) = decoder.decode(&raw).unwrap();
        assert!(bad.is_empty());
        let t2 = Instant::now();
        let out = branch.process(batch.unwrap(), None).unwrap();
        let t3 = Instant::now();
        if let Some(out) = out {
            let recs = kafka_records(sink, &out).unwrap();
            out_records += recs.len();
            out_bytes += recs
                .iter()
                .map(|(k, v)| k.as_ref().map_or(0, |b| b.len()) + v.as_ref().map_or(0, |b| b.len()))
                .sum::<usize>();
        }
        let t4 = Instant::now();
        t_decode += t2 - t;
        t_ops += t3 - t2;
        t_encode += t4 - t3;
    }
    let total = start.elapsed().as_secs_f64();
    println!("(a) engine alone, one thread: {n} records, {:.0} bytes/record avg, {out_records} out ({out_bytes} bytes)", bytes as f64 / n as f64);
    println!(
        "    total {:.3} s = {:.0} records/s/core ({:.1} MB/s in)",
        total,
        n as f64 / total,
        bytes as f64 / total / 1e6
    );
    for (name, d) in [
        ("decode JSON -> Arrow", t_decode),
        ("filter + project", t_ops),
        ("encode keys + JSON values", t_encode),
    ] {
        println!(
            "    {name:<26} {:>7.3} s  {:>12.0} records/s",
            d.as_secs_f64(),
            n as f64 / d.as_secs_f64()
        );
    }
}

/// Counts the input offsets the sink has committed.
struct Progress {
    committed: AtomicI64,
}

impl StatementEvents for Progress {
    fn commit<'a>(
        &'a self,
        _topic: &'a str,
        offsets: &'a [(i32, i64)],
    ) -> BoxFuture<'a, Result<(), String>> {
        // One partition: the next offset is the count of records done.
        let next = offsets.iter().map(|(_, o)| *o).max().unwrap_or(0);
        self.committed.fetch_max(next, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    }
    fn exception<'a>(&'a self, message: &'a str) -> BoxFuture<'a, ()> {
        eprintln!("exception: {message}");
        Box::pin(async {})
    }
}

async fn through_broker(bootstrap: String) {
    let n = records_from_env(200_000);
    let suffix = &uuid_like();
    let (src, dst) = (format!("bench_src_{suffix}"), format!("bench_dst_{suffix}"));
    let admin = KafkaAdmin::new(&weir_catalog::KafkaConnection::plain(&bootstrap)).unwrap();
    admin.create_topic(&src, 1, &[]).await.unwrap();
    admin.create_topic(&dst, 2, &[]).await.unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "20")
        .create()
        .unwrap();
    let t = Instant::now();
    for lo in (0..n as i64).step_by(10_000) {
        let futures: Vec<_> = (lo..(lo + 10_000).min(n as i64))
            .map(|id| {
                let v = record(id);
                producer
                    .send_result(FutureRecord::<(), _>::to(&src).payload(&v))
                    .map_err(|(e, _)| e)
                    .unwrap()
            })
            .collect();
        for f in futures {
            f.await.unwrap().map_err(|(e, _)| e).unwrap();
        }
    }
    println!(
        "(b) through the broker at {bootstrap}: {n} records produced in {:.2} s (not counted)",
        t.elapsed().as_secs_f64()
    );

    let progress = Arc::new(Progress {
        committed: AtomicI64::new(0),
    });
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    let running = Worker.start(StatementTask {
        key: format!("bench/{suffix}"),
        plan: plan(&src, &dst),
        kafka: weir_catalog::KafkaConnection::plain(&bootstrap),
        start_offsets: HashMap::new(),
        events: progress.clone(),
        results_idle_timeout: Duration::from_secs(60),
        results_capacity: 1000,
        idle_timeout: None,
        state_ttl: None,
        checkpoints: None,
        memory_limit: weir_sql_gateway::limits::MemoryLimit {
            soft: u64::MAX,
            hard: u64::MAX,
        },
        role: Default::default(),
    });
    let deadline = Instant::now() + Duration::from_secs(600);
    while progress.committed.load(Ordering::SeqCst) < n as i64 {
        assert!(
            Instant::now() < deadline,
            "the statement did not finish in 10 minutes"
        );
        assert!(!running.is_finished(), "the statement ended early");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let out = running.metrics.records_out.load(Ordering::Relaxed);
    running.stop();
    running.join().await;
    println!(
        "    {n} in, {out} out and acknowledged in {wall:.2} s wall = {:.0} records/s; Weir process CPU {cpu:.2} s = {:.0} records per CPU-second (the broker runs in its own process)",
        n as f64 / wall,
        n as f64 / cpu
    );
    let _ = admin.delete_topic(&src).await;
    let _ = admin.delete_topic(&dst).await;
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not run us.
    engine_alone();
    let bootstrap = std::env::var("WEIR_BENCH_BOOTSTRAP")
        .or_else(|_| std::env::var("WEIR_TEST_BOOTSTRAP"))
        .ok();
    match bootstrap {
        Some(b) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(through_broker(b)),
        None => println!("(b) skipped: set WEIR_BENCH_BOOTSTRAP to a broker (infra/test.sh starts one; `weir dev` prints one)"),
    }
}
