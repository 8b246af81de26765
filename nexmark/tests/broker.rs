//! Nexmark through the real broker (`WEIR_TEST_BOOTSTRAP`, started by
//! `infra/test.sh`): the generator's events are produced as JSON into three
//! topics, queries run on the worker as `CREATE TABLE ... AS SELECT` into a
//! topic, and an independent consumer reads that topic back. What it holds
//! must equal, record for record, what the same plan writes when run in
//! process over the same events (which `tests/queries.rs` checks against
//! references computed without Weir): append-only output as a multiset of
//! records, upsert output as the table its keys and tombstones leave,
//! retract output as the table its `__op` headers leave.

#[path = "support/broker.rs"]
mod broker;
#[path = "support/replay.rs"]
mod replay;

use std::collections::{BTreeMap, HashMap};

use broker::Record;
use weir_compute_pool::connector::encode::{kafka_changes, op_header};
use weir_compute_pool::run_in_memory;
use weir_nexmark::queries::query;
use weir_nexmark::{Event, Generator, GeneratorConfig};

const EVENTS: u64 = 30_000;

fn bootstrap() -> String {
    std::env::var("WEIR_TEST_BOOTSTRAP")
        .expect("WEIR_TEST_BOOTSTRAP is not set: run the suite with infra/test.sh, which starts the test broker")
}

/// How a sink table's records make its rows.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Append,
    /// The last value per key; a tombstone deletes.
    Upsert,
    /// `+I`/`+U` add a row, `-U`/`-D` (the `__op` header) remove one.
    Retract,
}

/// The table a sink topic describes; `None` when a retraction removes a
/// row that is not there.
fn table_of(records: &[Record], mode: Mode) -> Option<BTreeMap<String, usize>> {
    let text = |b: &Option<Vec<u8>>| {
        b.as_deref().map_or("null".to_string(), |b| {
            String::from_utf8_lossy(b).into_owned()
        })
    };
    let mut out: BTreeMap<String, usize> = BTreeMap::new();
    if mode == Mode::Upsert {
        let mut last: HashMap<String, Option<String>> = HashMap::new();
        for (k, v, _) in records {
            last.insert(text(k), v.as_ref().map(|_| text(v)));
        }
        for (k, v) in last.into_iter().filter_map(|(k, v)| Some((k, v?))) {
            *out.entry(format!("{k} => {v}")).or_default() += 1;
        }
        return Some(out);
    }
    for (k, v, op) in records {
        let row = format!("{} => {}", text(k), text(v));
        let retracts = mode == Mode::Retract && matches!(op.as_deref(), Some("-U" | "-D"));
        if !retracts {
            *out.entry(row).or_default() += 1;
            continue;
        }
        let n = out.get_mut(&row)?;
        *n -= 1;
        if *n == 0 {
            out.remove(&row);
        }
    }
    Some(out)
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
    // of windows (q8), sessions (q11); update streams into upsert tables:
    // an aggregation over a join (q4), deduplication (q18) and a Top-N with
    // row numbers (q19); and q5's update stream, which has no key, into a
    // retract table.
    for name in ["q3", "q7", "q8", "q11", "q4", "q18", "q19", "q5"] {
        let q = query(name).expect("a query");
        let (plan, table) =
            broker::plan_into_topic(&loaded, &format!("nexmark_{name}"), q.sql).await;
        let mode = match table.changelog_mode() {
            "upsert" => Mode::Upsert,
            "retract" => Mode::Retract,
            _ => Mode::Append,
        };
        eprintln!("{name}: planned into {} ({mode:?})", table.topic);
        let local = run_in_memory(&plan, &polls).unwrap_or_else(|e| panic!("{name} runs: {e}"));
        let mut want = vec![];
        for c in &local.batches {
            let records = kafka_changes(&table, c).expect("encodes");
            want.extend(records.into_iter().enumerate().map(|(i, (k, v))| {
                let op = (mode == Mode::Retract).then(|| op_header(c, i).to_string());
                (k.map(|b| b.to_vec()), v.map(|b| b.to_vec()), op)
            }));
        }
        assert!(
            !want.is_empty(),
            "{name}: no output in process, a weak test"
        );
        let run = broker::run(&loaded, &format!("nexmark/{name}"), plan).await;
        let read_at = std::time::Instant::now();
        let want_table = table_of(&want, mode)
            .unwrap_or_else(|| panic!("{name}: in process retracts a row it did not write"));
        // An updating table may take fewer updates through the broker,
        // whose polls are larger: its final rows must agree, not its
        // records.
        let got = broker::read_topic(&bootstrap, &table.topic, |got| {
            if mode == Mode::Append {
                got.len() >= want.len()
            } else {
                table_of(got, mode).as_ref() == Some(&want_table)
            }
        });
        let read_s = read_at.elapsed().as_secs_f64();
        let got_table = table_of(&got, mode)
            .unwrap_or_else(|| panic!("{name}: the topic retracts a row it does not hold"));
        if got_table != want_table {
            panic!(
                "{name}: the topic holds {} records, in process wrote {}\n{}",
                got.len(),
                want.len(),
                replay::differences(&want_table, &got_table)
            );
        }
        if mode == Mode::Append {
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
