//! Stateful statements the whole way, against the real broker:
//! - a window aggregation: event-time watermarks from three source
//!   partitions, a tumbling window `INSERT`, the sink read back with an
//!   independent consumer and compared with counts computed here, and a
//!   late record dropped and counted;
//! - a group aggregation: an update stream into an upsert table (the last
//!   record per key is the current result) and through the results API
//!   (the -U/+U changelog, replayed, gives the same result), and that
//!   upsert table read back by another statement as an update stream,
//!   a tombstone deleting its key; a retract table read back by its
//!   `__op` headers, with a headers metadata column; an event-time
//!   temporal join against such an upsert table;
//! - regular joins: a LEFT JOIN of two topics through the results API (the
//!   changelog, replayed, is one row per order, padded or matched), and a
//!   self-join joined again into an append table, stopped and resumed
//!   from its checkpoint: every order's row exactly once.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use weir_api::Phase;

const CLICKS: i64 = 3_000;
const WHO: [&str; 4] = ["ann", "ben", "cat", "dan"];

/// `2024-01-01 00:00:00` plus `ms` milliseconds, as the JSON source reads it.
fn ts(ms: i64) -> String {
    format!(
        "2024-01-01 {:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// The window start Weir writes for a one-second window holding `ms`, as
/// Flink's `json` format does (its default SQL timestamp standard).
fn window_start(ms: i64) -> String {
    let s = ms / 1000;
    format!(
        "2024-01-01 {:02}:{:02}:{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Click `id` happens at `id * 7` ms, out of order within each partition
/// by up to 300 ms (inside the watermark's one-second bound).
fn click_ms(id: i64) -> i64 {
    id * 7 + if id % 5 == 0 { -300 } else { 0 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tumbling_window_counts_reach_the_sink_once_the_watermark_passes() {
    let weir = Weir::start().await;
    let src = unique("clicks");
    let dst = unique("per-second");
    weir.ddl(&format!(
        "CREATE TABLE `{src}` (id BIGINT, who STRING, ts TIMESTAMP(3), \
         WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) DISTRIBUTED INTO 3 BUCKETS"
    ))
    .await;
    weir.ddl(&format!(
        "CREATE TABLE `{dst}` (window_start TIMESTAMP(3), who STRING, n BIGINT, first_id BIGINT)"
    ))
    .await;
    let records: Vec<(i32, Option<String>, String)> = (300 / 7 + 1..CLICKS)
        .map(|id| {
            let who = WHO[(id % 4) as usize];
            let v = format!(r#"{{"id":{id},"who":"{who}","ts":"{}"}}"#, ts(click_ms(id)));
            ((id % 3) as i32, None, v)
        })
        .collect();
    produce(&src, &records).await;
    // One record per partition far ahead closes every window of the clicks.
    let end = CLICKS * 7 + 5_000;
    let closers: Vec<_> = (0..3)
        .map(|p| {
            let v = format!(r#"{{"id":-1,"who":"zed","ts":"{}"}}"#, ts(end));
            (p, None, v)
        })
        .collect();
    produce(&src, &closers).await;

    let mut expected: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    for id in 300 / 7 + 1..CLICKS {
        let e = expected
            .entry((window_start(click_ms(id)), WHO[(id % 4) as usize].into()))
            .or_insert((0, i64::MAX));
        e.0 += 1;
        e.1 = e.1.min(id);
    }

    let s = weir
        .submit(
            "per-second",
            &format!(
                "INSERT INTO `{dst}` SELECT window_start, who, COUNT(*) AS n, MIN(id) AS first_id \
                 FROM TABLE(TUMBLE(TABLE `{src}`, DESCRIPTOR(ts), INTERVAL '1' SECOND)) \
                 GROUP BY window_start, window_end, who"
            ),
        )
        .await
        .unwrap();
    assert_eq!(s.status.phase, Phase::Running, "{}", s.status.detail);
    assert!(s.status.traits.as_ref().unwrap().is_append_only);

    let got = consume(
        &dst,
        expected.len(),
        Duration::from_secs(60),
        Duration::from_secs(2),
    )
    .await;
    let mut rows: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    for r in &got {
        let v: Value = serde_json::from_str(r.value.as_deref().expect("a value")).unwrap();
        let key = (
            v["window_start"]
                .as_str()
                .expect("window_start")
                .to_string(),
            v["who"].as_str().expect("who").to_string(),
        );
        let val = (v["n"].as_i64().unwrap(), v["first_id"].as_i64().unwrap());
        assert!(
            rows.insert(key.clone(), val).is_none(),
            "{key:?} fired twice"
        );
    }
    assert_eq!(rows, expected, "every window fires once with exact counts");

    // A record for a window that has fired is late: dropped and counted.
    produce(
        &src,
        &[(
            0,
            None,
            r#"{"id":0,"who":"ann","ts":"2024-01-01 00:00:01"}"#.into(),
        )],
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = weir.client.get_statement("per-second").await.unwrap();
        let m = s.status.metrics.expect("metrics of a running statement");
        if m.records_late == 1 {
            assert_eq!(m.records_in, records.len() as u64 + 4);
            // The closers' window is still open and held in state.
            assert_eq!((m.state_windows, m.state_groups), (1, 1));
            break;
        }
        assert!(Instant::now() < deadline, "late record not counted: {m:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let again = consume(
        &dst,
        expected.len(),
        Duration::from_secs(10),
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(again.len(), got.len(), "a late record changes no output");
    weir.stop().await;
}

const VOTES: i64 = 3_000;

/// `(who, COUNT(*), SUM(n))` per key for votes `0..VOTES`, computed here.
fn expected_tally() -> BTreeMap<String, (i64, i64)> {
    let mut t: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for id in 0..VOTES {
        let e = t.entry(WHO[(id % 4) as usize].into()).or_default();
        e.0 += 1;
        e.1 += id % 7;
    }
    t
}

async fn votes_table(weir: &Weir) -> String {
    let src = unique("votes");
    weir.ddl(&format!(
        "CREATE TABLE `{src}` (who STRING, n INT) DISTRIBUTED INTO 3 BUCKETS"
    ))
    .await;
    let records: Vec<(i32, Option<String>, String)> = (0..VOTES)
        .map(|id| {
            let v = format!(r#"{{"who":"{}","n":{}}}"#, WHO[(id % 4) as usize], id % 7);
            ((id % 3) as i32, None, v)
        })
        .collect();
    produce(&src, &records).await;
    src
}

/// The votes source, and an upsert table for their tally.
async fn tally_tables(weir: &Weir) -> (String, String) {
    let src = votes_table(weir).await;
    let dst = unique("tally");
    weir.ddl(&format!(
        "CREATE TABLE `{dst}` (who STRING, votes BIGINT, total BIGINT, PRIMARY KEY (who) NOT ENFORCED)"
    ))
    .await;
    (src, dst)
}

/// Starts statement `name`, which tallies the votes of `src` into `dst`.
async fn tally_into(weir: &Weir, name: &str, src: &str, dst: &str) -> weir_api::Statement {
    let s = weir
        .submit(
            name,
            &format!(
                "INSERT INTO `{dst}` SELECT who, COUNT(*) AS votes, SUM(n) AS total FROM `{src}` GROUP BY who"
            ),
        )
        .await
        .unwrap();
    assert_eq!(s.status.phase, Phase::Running, "{}", s.status.detail);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_aggregation_upserts_the_current_result_per_key() {
    let weir = Weir::start().await;
    let (src, dst) = tally_tables(&weir).await;
    // An append-only table cannot take the updates: refused at creation.
    let plain = unique("plain");
    weir.ddl(&format!(
        "CREATE TABLE `{plain}` (who STRING, votes BIGINT, total BIGINT)"
    ))
    .await;
    let refused = weir
        .submit(
            "into-plain",
            &format!(
                "INSERT INTO `{plain}` SELECT who, COUNT(*), SUM(n) FROM `{src}` GROUP BY who"
            ),
        )
        .await
        .expect_err("updates into an append-only table");
    assert!(refused.to_string().contains("append-only"), "{refused}");

    let s = tally_into(&weir, "tally", &src, &dst).await;
    assert!(!s.status.traits.as_ref().unwrap().is_append_only);

    let want = expected_tally();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = consume_at_most(&dst, usize::MAX, Duration::from_secs(3), Duration::ZERO).await;
        // Records of one key share a partition, so the last one read is the
        // current row, as a compacted topic would keep it.
        let mut last: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for r in &got {
            let key: Value = serde_json::from_str(r.key.as_deref().expect("a key")).unwrap();
            let v: Value = serde_json::from_str(r.value.as_deref().expect("no deletes")).unwrap();
            assert_eq!(key, json!({"who": v["who"]}), "keyed by the primary key");
            last.insert(
                v["who"].as_str().unwrap().into(),
                (v["votes"].as_i64().unwrap(), v["total"].as_i64().unwrap()),
            );
        }
        if last == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sink holds {last:?}, want {want:?}"
        );
    }
    let m = weir
        .client
        .get_statement("tally")
        .await
        .unwrap()
        .status
        .metrics
        .expect("metrics");
    assert_eq!(m.state_groups, 4, "one state entry per key");
    assert!(m.state_bytes > 0, "state bytes reported: {m:?}");
    weir.stop().await;
}

/// Replays a statement's results into the table they describe, until it
/// equals `want` (panics after a minute); returns the `next` token.
async fn replay_until(
    weir: &Weir,
    name: &str,
    table: &mut BTreeMap<String, (i64, i64)>,
    mut next: Option<String>,
    want: &BTreeMap<String, (i64, i64)>,
) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while table != want {
        assert!(
            Instant::now() < deadline,
            "results hold {table:?}, want {want:?}"
        );
        let page = weir.client.results(name, next.as_deref()).await.unwrap();
        for r in page.results.data {
            let who = r.row[0].as_str().unwrap().to_string();
            let int = |i: usize| r.row[i].as_str().unwrap().parse::<i64>().unwrap();
            let row = (int(1), int(2));
            match r.op {
                0 => assert!(
                    table.insert(who, row).is_none(),
                    "+I of a key already present"
                ),
                1 | 3 => assert_eq!(
                    table.remove(&who),
                    Some(row),
                    "-U/-D retracts the current row"
                ),
                2 => assert!(table.insert(who, row).is_none(), "+U follows its -U"),
                op => panic!("op {op}"),
            }
        }
        next = Some(page.metadata.next);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    next
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upsert_table_written_by_one_statement_reads_as_an_update_stream() {
    let weir = Weir::start().await;
    let (src, dst) = tally_tables(&weir).await;
    tally_into(&weir, "tally-in", &src, &dst).await;
    // A second statement reads the upsert table the first writes: its
    // records, normalized by key, replay to the current tally.
    let s = weir
        .submit(
            "tally-out",
            &format!("SELECT who, votes, total FROM `{dst}` /*+ OPTIONS('scan.startup.mode'='earliest-offset') */"),
        )
        .await
        .unwrap();
    assert_eq!(s.status.phase, Phase::Running, "{}", s.status.detail);
    let traits = s.status.traits.unwrap();
    assert!(
        !traits.is_append_only,
        "an upsert table is an update stream"
    );
    assert_eq!(
        traits.upsert_columns,
        Some(vec![0]),
        "keyed by its primary key"
    );
    let mut want = expected_tally();
    let mut table = BTreeMap::new();
    let next = replay_until(&weir, "tally-out", &mut table, None, &want).await;
    // A tombstone deletes its key.
    produce_tombstone(&dst, 0, r#"{"who":"ann"}"#).await;
    want.remove("ann");
    replay_until(&weir, "tally-out", &mut table, next, &want).await;
    weir.stop().await;
}

/// Reads statement `name`'s results from `next` until at least `want`
/// rows came (panics after a minute); the rows (kind and values) and the
/// token to read on.
async fn results_at_least(
    weir: &Weir,
    name: &str,
    want: usize,
    mut next: Option<String>,
) -> (Vec<(u8, Vec<Value>)>, Option<String>) {
    let mut got = vec![];
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < want {
        assert!(Instant::now() < deadline, "results so far: {got:?}");
        let page = weir.client.results(name, next.as_deref()).await.unwrap();
        got.extend(page.results.data.into_iter().map(|r| (r.op, r.row)));
        next = Some(page.metadata.next);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (got, next)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retract_table_reads_as_the_changelog_its_headers_describe() {
    let weir = Weir::start().await;
    let t = unique("changes");
    weir.ddl(&format!(
        "CREATE TABLE `{t}` (k INT, v INT, h MAP<STRING, BYTES> METADATA FROM 'headers' VIRTUAL) \
         DISTRIBUTED INTO 1 BUCKETS WITH ('changelog.mode' = 'retract')"
    ))
    .await;
    produce_with_headers(
        &t,
        &[
            (&[], r#"{"k":1,"v":10}"#),
            (&[("__op", "-U"), ("trace", "t1")], r#"{"k":1,"v":10}"#),
            (&[("__op", "+U")], r#"{"k":1,"v":11}"#),
        ],
    )
    .await;
    let s = weir
        .submit(
            "read-changes",
            &format!("SELECT k, v, CAST(h['trace'] AS STRING) AS trace FROM `{t}`"),
        )
        .await
        .unwrap();
    assert_eq!(s.status.phase, Phase::Running, "{}", s.status.detail);
    assert!(!s.status.traits.unwrap().is_append_only);
    let (got, _) = results_at_least(&weir, "read-changes", 3, None).await;
    assert_eq!(
        got,
        vec![
            (0, vec![json!("1"), json!("10"), Value::Null]),
            (1, vec![json!("1"), json!("10"), json!("t1")]),
            (2, vec![json!("1"), json!("11"), Value::Null]),
        ]
    );
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporal_join_uses_the_rate_valid_at_each_orders_time() {
    let weir = Weir::start().await;
    let (orders, rates) = (unique("orders"), unique("rates"));
    weir.ddl(&format!(
        "CREATE TABLE `{orders}` (id INT, cur STRING, ts TIMESTAMP(3), WATERMARK FOR ts AS ts) \
         DISTRIBUTED INTO 1 BUCKETS"
    ))
    .await;
    weir.ddl(&format!(
        "CREATE TABLE `{rates}` (cur STRING, rate INT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts, \
         PRIMARY KEY (cur) NOT ENFORCED) DISTRIBUTED INTO 1 BUCKETS"
    ))
    .await;
    let rate = |r: i64, s: i64| {
        (
            0,
            Some(r#"{"cur":"eur"}"#.to_string()),
            format!(r#"{{"cur":"eur","rate":{r},"ts":"{}"}}"#, ts(s * 1000)),
        )
    };
    produce(&rates, &[rate(114, 0), rate(116, 5), rate(119, 10)]).await;
    let order = |id: i64, s: i64| {
        (
            0,
            None,
            format!(r#"{{"id":{id},"cur":"eur","ts":"{}"}}"#, ts(s * 1000)),
        )
    };
    produce(&orders, &[order(1, 1), order(7, 7)]).await;
    let s = weir
        .submit_with(
            "priced",
            &format!(
                "SELECT o.id, r.rate FROM `{orders}` AS o \
                 JOIN `{rates}` FOR SYSTEM_TIME AS OF o.ts AS r ON o.cur = r.cur"
            ),
            BTreeMap::from([(
                "sql.tables.scan.idle-timeout".to_string(),
                "2 s".to_string(),
            )]),
        )
        .await
        .unwrap();
    assert_eq!(s.status.phase, Phase::Running, "{}", s.status.detail);
    assert!(s.status.traits.unwrap().is_append_only);
    // Orders 1 and 7 go when both topics' watermarks pass them.
    let (mut got, next) = results_at_least(&weir, "priced", 2, None).await;
    // The rates then go quiet, and count out of the watermark once idle
    // (as in Flink): an order arriving after that is joined at once with
    // the last version, though the rates' own watermark is behind it. (Had
    // the orders gone quiet too, nothing would move, as in Flink.)
    tokio::time::sleep(Duration::from_secs(3)).await;
    produce(&orders, &[order(20, 20)]).await;
    let (more, _) = results_at_least(&weir, "priced", 1, next).await;
    got.extend(more);
    assert_eq!(
        got,
        vec![
            (0, vec![json!("1"), json!("114")]),
            (0, vec![json!("7"), json!("116")]),
            (0, vec![json!("20"), json!("119")]),
        ]
    );
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_aggregation_results_are_a_consistent_changelog() {
    let weir = Weir::start().await;
    let src = votes_table(&weir).await;
    let s = weir
        .submit(
            "live-tally",
            &format!("SELECT who, COUNT(*) AS votes, SUM(n) AS total FROM `{src}` GROUP BY who"),
        )
        .await
        .unwrap();
    assert_eq!(s.status.phase, Phase::Running, "{}", s.status.detail);
    let traits = s.status.traits.unwrap();
    assert!(!traits.is_append_only);
    assert_eq!(traits.upsert_columns, Some(vec![0]));

    let mut table = BTreeMap::new();
    replay_until(&weir, "live-tally", &mut table, None, &expected_tally()).await;
    weir.stop().await;
}

const ORDERS: i64 = 600;
/// Customers with a city; `dan` has none until the resume test adds one.
const CITIES: [(&str, &str); 3] = [("ann", "oslo"), ("ben", "rome"), ("cat", "lima")];

fn order_records(ids: std::ops::Range<i64>) -> Vec<(i32, Option<String>, String)> {
    ids.map(|id| {
        let who = WHO[(id % 4) as usize];
        (
            (id % 3) as i32,
            None,
            format!(r#"{{"oid":{id},"cust":"{who}"}}"#),
        )
    })
    .collect()
}

async fn join_tables(weir: &Weir) -> (String, String) {
    let orders = unique("orders");
    let customers = unique("customers");
    weir.ddl(&format!(
        "CREATE TABLE `{orders}` (oid BIGINT, cust STRING) DISTRIBUTED INTO 3 BUCKETS"
    ))
    .await;
    weir.ddl(&format!(
        "CREATE TABLE `{customers}` (name STRING, city STRING) DISTRIBUTED INTO 1 BUCKETS"
    ))
    .await;
    (orders, customers)
}

async fn produce_customers(topic: &str, cities: &[(&str, &str)]) {
    let records: Vec<_> = cities
        .iter()
        .map(|(n, c)| (0, None, format!(r#"{{"name":"{n}","city":"{c}"}}"#)))
        .collect();
    produce(topic, &records).await;
}

/// The city order `id` joins with (`None` for a customer without one).
fn city_of(id: i64, cities: &[(&str, &str)]) -> Option<String> {
    let who = WHO[(id % 4) as usize];
    cities
        .iter()
        .find(|(n, _)| *n == who)
        .map(|(_, c)| c.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn left_join_results_replay_to_one_row_per_order() {
    let weir = Weir::start().await;
    let (orders, customers) = join_tables(&weir).await;
    // Half the orders before the customers and half after: whichever input
    // the worker reads first, the changelog must settle on the same rows.
    produce(&orders, &order_records(0..ORDERS / 2)).await;
    produce_customers(&customers, &CITIES).await;
    produce(&orders, &order_records(ORDERS / 2..ORDERS)).await;
    let s = weir
        .submit(
            "orders-with-city",
            &format!(
                "SELECT o.oid, c.city FROM `{orders}` AS o LEFT JOIN `{customers}` AS c ON o.cust = c.name"
            ),
        )
        .await
        .unwrap();
    assert_eq!(s.status.phase, Phase::Running, "{}", s.status.detail);
    assert!(!s.status.traits.as_ref().unwrap().is_append_only);

    let want: BTreeMap<i64, Option<String>> =
        (0..ORDERS).map(|id| (id, city_of(id, &CITIES))).collect();
    let mut table: BTreeMap<(i64, Option<String>), i64> = BTreeMap::new();
    let mut next: Option<String> = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let current: BTreeMap<i64, Option<String>> = table
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|((id, c), _)| (*id, c.clone()))
            .collect();
        if current == want && table.values().all(|n| *n == 0 || *n == 1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "results hold {} rows, want {}",
            current.len(),
            want.len()
        );
        let page = weir
            .client
            .results("orders-with-city", next.as_deref())
            .await
            .unwrap();
        for r in page.results.data {
            let row = (
                r.row[0].as_str().unwrap().parse::<i64>().unwrap(),
                r.row[1].as_str().map(str::to_string),
            );
            let n = table.entry(row.clone()).or_default();
            match r.op {
                0 | 2 => *n += 1,
                1 | 3 => {
                    assert!(*n > 0, "{row:?} retracted while not present");
                    *n -= 1;
                }
                op => panic!("op {op}"),
            }
        }
        next = Some(page.metadata.next);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_resumes_from_its_checkpoint_with_every_row_once() {
    let weir = Weir::start().await;
    let (orders, customers) = join_tables(&weir).await;
    let dst = unique("order-cities");
    weir.ddl(&format!("CREATE TABLE `{dst}` (oid BIGINT, city STRING)"))
        .await;
    produce_customers(&customers, &CITIES).await;
    produce(&orders, &order_records(0..ORDERS)).await;
    // The self-join reads the orders topic once for both of its inputs,
    // at one position in the checkpoint.
    let s = weir
        .submit(
            "order-cities",
            &format!(
                "INSERT INTO `{dst}` SELECT a.oid, c.city FROM `{orders}` AS a \
                 JOIN `{orders}` AS b ON a.oid = b.oid \
                 JOIN `{customers}` AS c ON b.cust = c.name"
            ),
        )
        .await
        .unwrap();
    assert_eq!(s.status.phase, Phase::Running, "{}", s.status.detail);
    assert!(s.status.traits.as_ref().unwrap().is_append_only);
    let first = (0..ORDERS)
        .filter(|id| city_of(*id, &CITIES).is_some())
        .count();
    consume(&dst, first, Duration::from_secs(60), Duration::ZERO).await;

    let mut s = weir.client.get_statement("order-cities").await.unwrap();
    s.spec.stopped = true;
    let stopped = weir.client.update_statement(&s).await.unwrap();
    assert_eq!(stopped.status.phase, Phase::Stopped);
    let m = stopped.status.metrics.clone();
    // While stopped: more orders, and dan's city, which matches dan's old
    // orders only if the join's state came back.
    produce(&orders, &order_records(ORDERS..2 * ORDERS)).await;
    let all = [CITIES[0], CITIES[1], CITIES[2], ("dan", "kyiv")];
    produce_customers(&customers, &all[3..]).await;
    let mut s = weir.client.get_statement("order-cities").await.unwrap();
    s.spec.stopped = false;
    weir.client.update_statement(&s).await.unwrap();
    weir.wait_phase("order-cities", Phase::Running, Duration::from_secs(30))
        .await;

    let want: BTreeMap<i64, String> = (0..2 * ORDERS)
        .map(|id| (id, city_of(id, &all).expect("every customer has a city")))
        .collect();
    let got = consume(
        &dst,
        want.len(),
        Duration::from_secs(60),
        Duration::from_secs(2),
    )
    .await;
    let mut rows: BTreeMap<i64, String> = BTreeMap::new();
    for r in &got {
        let v: Value = serde_json::from_str(r.value.as_deref().expect("a value")).unwrap();
        let id = v["oid"].as_i64().unwrap();
        let city = v["city"].as_str().unwrap().to_string();
        assert!(
            rows.insert(id, city).is_none(),
            "order {id} written twice (metrics when stopped: {m:?})"
        );
    }
    assert_eq!(rows, want, "every order once, with its city");
    let m = weir
        .client
        .get_statement("order-cities")
        .await
        .unwrap()
        .status
        .metrics
        .expect("metrics");
    // Dan's orders from before the stop matched his city: the join's state
    // came back from the stop's checkpoint. The order reader and the
    // customer reader resumed where they were: only what arrived while
    // stopped is read, once.
    assert_eq!(m.records_in, ORDERS as u64 + 1, "{m:?}");
    // Rows held: every order on both sides of the self-join, every joined
    // pair on the left of the second join, and the four customers.
    assert_eq!(m.state_groups, 3 * (2 * ORDERS as u64) + 4, "{m:?}");
    weir.stop().await;
}
