//! Nexmark through the real broker (`WEIR_TEST_BOOTSTRAP`, started by
//! `infra/test.sh`): the generator's events are produced as JSON into three
//! topics, queries run on the worker as `CREATE TABLE ... AS SELECT` into a
//! topic, and an independent consumer reads that topic back. What it holds
//! must equal, record for record, what the same plan writes when run in
//! process over the same events (which `tests/queries.rs` checks against
//! references computed without Weir): append-only output as a multiset of
//! records, upsert output as the table its keys and tombstones leave.

#[path = "support/broker.rs"]
mod broker;
#[path = "support/replay.rs"]
mod replay;

use std::collections::{BTreeMap, HashMap};

use broker::Record;
use weir_compute_pool::encode::kafka_changes;
use weir_compute_pool::run_in_memory;
use weir_nexmark::queries::query;
use weir_nexmark::{Event, Generator, GeneratorConfig};

const EVENTS: u64 = 30_000;

fn bootstrap() -> String {
    std::env::var("WEIR_TEST_BOOTSTRAP")
        .expect("WEIR_TEST_BOOTSTRAP is not set: run the suite with infra/test.sh, which starts the test broker")
}

/// The table a sink topic describes: every record of an append-only
/// table, or the last value per key of an upsert table (a tombstone
/// deletes).
fn table_of(records: &[Record], upsert: bool) -> BTreeMap<String, usize> {
    let text = |b: &Option<Vec<u8>>| {
        b.as_deref().map_or("null".to_string(), |b| {
            String::from_utf8_lossy(b).into_owned()
        })
    };
    let mut out = BTreeMap::new();
    if upsert {
        let mut last: HashMap<String, Option<String>> = HashMap::new();
        for (k, v) in records {
            last.insert(text(k), v.as_ref().map(|_| text(v)));
        }
        for (k, v) in last {
            if let Some(v) = v {
                *out.entry(format!("{k} => {v}")).or_default() += 1;
            }
        }
    } else {
        for (k, v) in records {
            *out.entry(format!("{} => {}", text(k), text(v)))
                .or_default() += 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nexmark_queries_through_the_broker_write_what_they_write_in_process() {
    let bootstrap = bootstrap();
    let events: Vec<Event> = Generator::new(GeneratorConfig {
        first_event: 0,
        events: EVENTS,
        events_per_second: 1_000,
        base_time_ms: 1_704_153_590_000,
    })
    .collect();
    let t = std::time::Instant::now();
    let loaded = broker::load(&bootstrap, &broker::unique_suffix(), &events).await;
    eprintln!(
        "{EVENTS} events produced in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let polls = replay::polls(&events, |t| loaded.topics[t].clone());
    // A regular join (q3), a window joined back to its input (q7), a join
    // of windows (q8), sessions (q11), and update streams into upsert
    // tables: an aggregation over a join (q4), deduplication (q18) and a
    // Top-N with row numbers (q19). q5's output is an update stream without
    // a key, which only a 'retract' table, not supported yet, could take.
    for name in ["q3", "q7", "q8", "q11", "q4", "q18", "q19"] {
        let q = query(name).expect("a query");
        let (plan, table) =
            broker::plan_into_topic(&loaded, &format!("nexmark_{name}"), q.sql).await;
        let upsert = !table.primary_key.is_empty();
        eprintln!("{name}: planned into {} (upsert: {upsert})", table.topic);
        let local = run_in_memory(&plan, &polls).unwrap_or_else(|e| panic!("{name} runs: {e}"));
        let mut want = vec![];
        for c in &local.batches {
            want.extend(kafka_changes(&table, c).expect("encodes"));
        }
        assert!(
            !want.is_empty(),
            "{name}: no output in process, a weak test"
        );
        let run = broker::run(&loaded, &format!("nexmark/{name}"), plan).await;
        let read_at = std::time::Instant::now();
        let want_table = table_of(&want, upsert);
        // An upsert table may take fewer updates through the broker, whose
        // polls are larger: its final rows must agree, not its records.
        let got = broker::read_topic(&bootstrap, &table.topic, |got| {
            if upsert {
                table_of(got, true) == want_table
            } else {
                got.len() >= want.len()
            }
        });
        let read_s = read_at.elapsed().as_secs_f64();
        let got_table = table_of(&got, upsert);
        if got_table != want_table {
            panic!(
                "{name}: the topic holds {} records, in process wrote {}\n{}",
                got.len(),
                want.len(),
                replay::differences(&want_table, &got_table)
            );
        }
        if !upsert {
            assert_eq!(got.len(), want.len(), "{name}: duplicates in the topic");
        }
        eprintln!(
            "{name}: {} records read, {} written, in {:.2} s; sink read back in {read_s:.2} s",
            run.records_in,
            got.len(),
            run.wall.as_secs_f64()
        );
    }
}
