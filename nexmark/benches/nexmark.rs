//! Nexmark throughput of the engine alone: every query Weir runs, over the
//! same generated events, on one thread, with JSON decoding, watermarks and
//! the operators' state included and the broker left out; then, when a
//! broker is given (`WEIR_BENCH_BOOTSTRAP` or `WEIR_TEST_BOOTSTRAP`),
//! through it: the events produced as JSON into three topics once (and
//! q13's side input into a fourth, before them), and each
//! query run on the worker into a topic (`CREATE TABLE ... AS`, or into
//! the statement's results should a query not go into a table) from its first
//! record read until every record is processed and its output
//! acknowledged. `WEIR_BENCH_BROKER_EVENTS` sets that run's event count
//! (default 200,000).
//!
//! `cargo bench -p weir-nexmark --bench nexmark` prints events/s per core
//! (events over the CPU seconds the query took; a query reads only the
//! topics it names, so `read` says how many of the events it decoded) and
//! the operator state held at the end. `WEIR_BENCH_EVENTS` sets the event count (default
//! 1,000,000, 10,000 events per second of event time, so 100 s of
//! auctions), `WEIR_BENCH_QUERIES` a comma-separated subset (`q0,q5`).
//!
//! Records reach the engine as polls (q13's side input first) of one table's records from each
//! second of events, as a consumer of three topics would see them; within
//! the 4 s watermark delay, so no record is late.

use std::time::Instant;

use weir_compute_pool::{compile, run_in_memory, BranchSource, MemoryPoll, MemoryRecord};
use weir_nexmark::queries::{QUERIES, SIDE_INPUT_TABLE, TABLES};
use weir_nexmark::{Generator, GeneratorConfig};
use weir_sql_gateway::{analyze, Analysis, CatalogContext, Planner};

#[path = "../tests/support/broker.rs"]
mod broker;
#[path = "../../compute-pool/benches/support/cpu.rs"]
mod cpu;
#[path = "../tests/support/replay.rs"]
mod replay;
use cpu::cpu_seconds;

const RATE: u64 = 10_000;

fn polls(events: u64) -> Vec<MemoryPoll> {
    let generator = Generator::new(GeneratorConfig {
        events,
        events_per_second: RATE,
        ..Default::default()
    });
    // q13's side input, read before the events.
    let mut polls = vec![replay::side_input_poll(
        GeneratorConfig::default().base_time_ms,
    )];
    let mut offsets = [0i64; 3];
    let mut second: Vec<Vec<MemoryRecord>> = vec![vec![], vec![], vec![]];
    let flush = |second: &mut Vec<Vec<MemoryRecord>>, polls: &mut Vec<MemoryPoll>| {
        for (table, records) in ["person", "auction", "bid"].iter().zip(second.iter_mut()) {
            if let Some(first) = records.first() {
                polls.push(MemoryPoll {
                    topic: table.to_string(),
                    at_ms: first.timestamp_ms,
                    records: std::mem::take(records),
                });
            }
        }
    };
    for (n, e) in generator.enumerate() {
        let t = ["person", "auction", "bid"]
            .iter()
            .position(|t| *t == e.table())
            .expect("a table");
        second[t].push(MemoryRecord {
            partition: 0,
            offset: offsets[t],
            timestamp_ms: e.timestamp_ms(),
            key: None,
            value: Some(e.to_json()),
            headers: vec![],
        });
        offsets[t] += 1;
        if (n as u64 + 1).is_multiple_of(RATE) {
            flush(&mut second, &mut polls);
        }
    }
    flush(&mut second, &mut polls);
    polls
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn selected(only: &Option<Vec<String>>, name: &str) -> bool {
    only.as_ref().is_none_or(|o| o.iter().any(|n| n == name))
}

fn main() {
    let only: Option<Vec<String>> = std::env::var("WEIR_BENCH_QUERIES")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
    engine_alone(env_u64("WEIR_BENCH_EVENTS", 1_000_000), &only);
    let bootstrap = std::env::var("WEIR_BENCH_BOOTSTRAP")
        .or_else(|_| std::env::var("WEIR_TEST_BOOTSTRAP"))
        .ok();
    match bootstrap {
        Some(b) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(through_broker(
                &b,
                env_u64("WEIR_BENCH_BROKER_EVENTS", 200_000),
                &only,
            )),
        None => println!(
            "\nThrough the broker: skipped; set WEIR_BENCH_BOOTSTRAP to a broker (`weir dev` prints one)"
        ),
    }
}

async fn through_broker(bootstrap: &str, events: u64, only: &Option<Vec<String>>) {
    let generated: Vec<weir_nexmark::Event> = Generator::new(GeneratorConfig {
        events,
        events_per_second: RATE,
        ..Default::default()
    })
    .collect();
    let t = Instant::now();
    let loaded = broker::load(bootstrap, &broker::unique_suffix(), &generated).await;
    println!(
        "\nNexmark through the broker at {bootstrap}: {events} events produced in {:.1} s (not counted); \
         CPU is this process's (worker and its Kafka clients), the broker runs in its own",
        t.elapsed().as_secs_f64()
    );
    println!(
        "{:<5} {:>14} {:>8} {:>8} {:>12} {:>10} {:>10} {:>9}  sink",
        "query", "events/s/core", "CPU s", "wall s", "events/s", "read", "rows out", "state MB"
    );
    for q in QUERIES {
        if !selected(only, q.name) {
            continue;
        }
        let name = format!("nexmark_{}", q.name);
        let (plan, sink) = match broker::try_plan_into_topic(&loaded, &name, q.sql).await {
            Ok((plan, _)) => (plan, "topic"),
            Err(_) => (broker::plan_select(&loaded, q.sql), "results"),
        };
        let cpu = cpu_seconds();
        let run = broker::run(&loaded, &format!("bench/{}", q.name), plan).await;
        let cpu = cpu_seconds() - cpu;
        println!(
            "{:<5} {:>14.0} {:>8.2} {:>8.2} {:>12.0} {:>10} {:>10} {:>9.1}  {sink}",
            q.name,
            events as f64 / cpu,
            cpu,
            run.wall.as_secs_f64(),
            events as f64 / run.wall.as_secs_f64(),
            run.records_in,
            run.records_out,
            run.state_bytes as f64 / 1e6,
        );
    }
}

fn engine_alone(events: u64, only: &Option<Vec<String>>) {
    let t = Instant::now();
    let polls = polls(events);
    let bytes: usize = polls
        .iter()
        .flat_map(|p| &p.records)
        .map(|r| r.value.as_ref().map_or(0, Vec::len))
        .sum();
    println!(
        "Nexmark, engine alone: {events} events ({} MB of JSON, generated in {:.1} s), one thread",
        bytes / 1_000_000,
        t.elapsed().as_secs_f64()
    );
    println!(
        "{:<5} {:>14} {:>8} {:>10} {:>10} {:>11} {:>9} {:>8}",
        "query", "events/s/core", "CPU s", "read", "rows out", "state rows", "state MB", "B/row"
    );
    let planner = Planner::new();
    let ddl: Vec<&str> = TABLES.iter().copied().chain([SIDE_INPUT_TABLE]).collect();
    let ctx = CatalogContext::from_ddl(&planner, &ddl).expect("the DDL plans");
    for q in QUERIES {
        if !selected(only, q.name) {
            continue;
        }
        let Ok(Analysis::Streaming { plan, .. }) = analyze(&planner, q.sql, &ctx) else {
            panic!("{} does not plan", q.name)
        };
        // Records of the topics the query reads (the events/s figure counts
        // every event, as Flink's suite does with its one generated table).
        let topics: Vec<String> = compile(&plan)
            .expect("compiles")
            .branches
            .iter()
            .filter_map(|b| match &b.source {
                BranchSource::Kafka(spec) => Some(spec.table.topic.clone()),
                BranchSource::Values(_) => None,
            })
            .collect();
        let read: usize = polls
            .iter()
            .filter(|p| topics.contains(&p.topic))
            .map(|p| p.records.len())
            .sum();
        let cpu = cpu_seconds();
        let out = run_in_memory(&plan, &polls).expect("runs");
        let cpu = cpu_seconds() - cpu;
        assert_eq!(out.late, 0, "{}: no record is late", q.name);
        let rows: usize = out.batches.iter().map(|c| c.num_rows()).sum();
        println!(
            "{:<5} {:>14.0} {:>8.2} {:>10} {:>10} {:>11} {:>9.1} {:>8.0}",
            q.name,
            events as f64 / cpu,
            cpu,
            read,
            rows,
            out.state_groups,
            out.state_bytes as f64 / 1e6,
            out.state_bytes as f64 / out.state_groups.max(1) as f64,
        );
    }
}
