//! A window aggregation the whole way: event-time watermarks from three
//! source partitions of the real broker, a tumbling window `INSERT`, the
//! sink read back with an independent consumer and compared with counts
//! computed here, and a late record dropped and counted.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
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

/// The window start Weir writes for a one-second window holding `ms`.
fn window_start(ms: i64) -> String {
    let s = ms / 1000;
    format!(
        "2024-01-01T{:02}:{:02}:{:02}",
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
