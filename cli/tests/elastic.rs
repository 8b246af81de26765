//! The elastic pool under a stepped load, with real processes: `weir
//! server --workers` whose provisioner starts `weir worker` processes as
//! tasks need slots, the test broker, and a producer driving a keyed
//! aggregation over a 12-partition topic through idle → low → 4× → low →
//! idle. The pool's autoscaler settings are second-scale (and its target
//! utilization low, so that rates this 2-core machine sustains beside the
//! broker and the producer call for more than one task).

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::cluster::*;
use support::*;

const PARTITIONS: i64 = 12;
const KEYS: i64 = 40;
const STABILIZATION: f64 = 6.0;
/// Records a second of the low steps.
const LOW: u64 = 500;

/// Produces `rate` records a second (in 100 ms slices) until `rate` is
/// `u64::MAX`; returns how many it produced.
fn feeder(topic: String, rate: Arc<AtomicU64>) -> std::thread::JoinHandle<i64> {
    std::thread::spawn(move || {
        let mut next = 0i64;
        loop {
            let r = rate.load(Ordering::SeqCst);
            if r == u64::MAX {
                return next;
            }
            let tick = Instant::now();
            let n = (r / 10) as i64;
            if n > 0 {
                let p: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
                    .set("bootstrap.servers", broker())
                    .set("linger.ms", "5")
                    .create()
                    .unwrap();
                let values: Vec<(i64, String)> = (next..next + n)
                    .map(|i| (i, format!(r#"{{"k":{},"v":{}}}"#, i % KEYS, i % 7)))
                    .collect();
                let sent: Vec<_> = values
                    .iter()
                    .map(|(i, v)| {
                        p.send_result(
                            rdkafka::producer::FutureRecord::<(), _>::to(&topic)
                                .partition((i % PARTITIONS) as i32)
                                .payload(v),
                        )
                        .map_err(|(e, _)| e)
                        .unwrap()
                    })
                    .collect();
                futures_lite(sent);
                next += n;
            }
            if let Some(rest) = Duration::from_millis(100).checked_sub(tick.elapsed()) {
                std::thread::sleep(rest);
            }
        }
    })
}

/// Waits for every delivery of a slice.
fn futures_lite(sent: Vec<rdkafka::producer::DeliveryFuture>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for f in sent {
            f.await.unwrap().map_err(|(e, _)| e).unwrap();
        }
    });
}

/// What the test saw of the statement, twice a second.
#[derive(Debug, Clone)]
struct Seen {
    at: f64,
    unix_minute: i64,
    tasks_placed: u64,
    pending: u64,
    parallelism: BTreeMap<String, u64>,
    state: String,
    reason: String,
}

fn look(dev: &Dev, name: &str, t0: Instant) -> Seen {
    let s = describe(dev, name);
    let sc = &s["status"]["scaling"];
    let placed = s["status"]["stages"]
        .as_array()
        .map(|st| {
            st.iter()
                .flat_map(|x| x["tasks"].as_array().cloned().unwrap_or_default())
                .filter(|t| t["worker"].is_string())
                .count() as u64
        })
        .unwrap_or(0);
    Seen {
        at: t0.elapsed().as_secs_f64(),
        unix_minute: chrono::Utc::now().timestamp() / 60,
        tasks_placed: placed,
        pending: sc["pending_records"].as_u64().unwrap_or(0),
        parallelism: sc["parallelism"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
                    .collect()
            })
            .unwrap_or_default(),
        state: sc["state"].as_str().unwrap_or("").to_string(),
        reason: sc["last_decision"]["reason"]
            .as_str()
            .unwrap_or("")
            .to_string(),
    }
}

/// Runs alone (`.config/nextest.toml`), so that other tests do not take
/// the cores whose busy time it measures. Capacity is read from busy time
/// less the time a task waits for the broker's acknowledgements, so it
/// follows the per-row cost, not how quickly the broker answers.
#[test]
fn a_stepped_load_scales_the_pool_up_and_down_to_zero_and_bills_what_it_held() {
    let dir = temp_dir();
    let db = format!("sqlite://{}", dir.join("weir.db").display());
    let dev = provisioning_server(&dir, &db, 8);
    let server_pid = dev.child.id();
    let pool = dev.env["WEIR_COMPUTE_POOL"].clone();
    dev.ok(&[
        "compute-pool",
        "update",
        &pool,
        "--max-cfu",
        "6",
        "--target-utilization",
        "0.3",
        "--catch-up-seconds",
        "20",
        "--stabilization-seconds",
        &STABILIZATION.to_string(),
        "--max-scale-down",
        "0.5",
        "--rescale-grace-seconds",
        "3",
        "--window-seconds",
        "6",
        "--interval-seconds",
        "1",
    ]);
    let (src, dst) = (unique("load"), unique("totals"));
    for sql in [
        format!("CREATE TABLE `{src}` (k BIGINT, v BIGINT) DISTRIBUTED BY HASH(k) INTO {PARTITIONS} BUCKETS"),
        format!("CREATE TABLE `{dst}` (k BIGINT, n BIGINT, s BIGINT, PRIMARY KEY (k) NOT ENFORCED)"),
    ] {
        dev.ok(&["statement", "create", "--wait", "--sql", &sql]);
    }
    // Idle: no statement, no worker.
    assert_eq!(child_processes(server_pid), 0, "workers before any task");

    let rate = Arc::new(AtomicU64::new(0));
    let feed = feeder(src.clone(), rate.clone());
    dev.ok(&[
        "statement",
        "create",
        "--name",
        "totals",
        "--property",
        "sql.parallelism=auto",
        "--sql",
        // Each row costs the source stage a hash of 16 KiB (what a parse
        // of a large record would): about 0.4 ms in a debug build, so one
        // task keeps up with the low steps and not with the 4× one at the
        // pool's target utilization of 0.3.
        &format!(
            "INSERT INTO `{dst}` SELECT k, COUNT(*) AS n, SUM(v) AS s FROM `{src}` \
             WHERE SHA256(REPEAT(CAST(v AS STRING), 16384)) IS NOT NULL GROUP BY k"
        ),
    ]);
    let t0 = Instant::now();
    let t0_utc = chrono::Utc::now();
    dev.wait_phase("totals", "RUNNING");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child_processes(server_pid) == 0 {
        assert!(
            Instant::now() < deadline,
            "no worker started for the statement"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        child_processes(server_pid),
        1,
        "one worker holds its first tasks"
    );

    let mut seen: Vec<Seen> = vec![];
    let phase = |rate_now: u64, secs: f64, seen: &mut Vec<Seen>| -> (f64, f64) {
        rate.store(rate_now, Ordering::SeqCst);
        let start = t0.elapsed().as_secs_f64();
        while t0.elapsed().as_secs_f64() < start + secs {
            seen.push(look(&dev, "totals", t0));
            std::thread::sleep(Duration::from_millis(500));
        }
        (start, t0.elapsed().as_secs_f64())
    };
    let low1 = phase(LOW, 12.0, &mut seen);
    let high = phase(4 * LOW, 30.0, &mut seen);
    let low2 = phase(LOW, 15.0, &mut seen);
    // Long enough for the replays that follow each rescale (at-least-once
    // on this broker: a restarted task reads again from its last stored
    // position) to stop feeding the keyed stage, and for each stage to step
    // down one stabilization period at a time: a run that ended while the
    // keyed stage was at 2 and still stepping down failed at 45 s.
    let idle = phase(0, 75.0, &mut seen);
    rate.store(u64::MAX, Ordering::SeqCst);
    let produced = feed.join().unwrap();

    let events: Vec<Value> = dev.json(&["statement", "scaling-events", "totals"])["data"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let report = || {
        let mut r = String::new();
        for e in events.iter().rev() {
            r.push_str(&format!(
                "{} {} {}→{} {} {}\n",
                e["at"], e["stage"], e["from"], e["to"], e["state"], e["reason"]
            ));
        }
        for s in &seen {
            r.push_str(&format!(
                "t={:.1} placed={} pending={} {:?} {} {}\n",
                s.at, s.tasks_placed, s.pending, s.parallelism, s.state, s.reason
            ));
        }
        r
    };
    let total = |s: &Seen| s.parallelism.values().sum::<u64>();
    let most = |from: f64, to: f64| {
        seen.iter()
            .filter(|s| s.at >= from && s.at <= to)
            .map(total)
            .max()
            .unwrap_or(0)
    };
    // It grew under the 4× load, each stage in at most two scale-up
    // decisions during the step, and the lag it built up was worked off
    // before the load dropped.
    let peak = most(high.0, high.1);
    assert!(peak > 2, "no stage grew under 4× load\n{}", report());
    let _ = low1;
    let since_t0 = |e: &Value| {
        let at = chrono::DateTime::parse_from_rfc3339(e["at"].as_str().unwrap()).unwrap();
        (at.with_timezone(&chrono::Utc) - t0_utc).num_milliseconds() as f64 / 1000.0
    };
    let mut ups_in_high: BTreeMap<String, usize> = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e["to"].as_u64() > e["from"].as_u64())
        .filter(|e| (high.0..high.1).contains(&since_t0(e)))
    {
        *ups_in_high
            .entry(e["stage"].as_str().unwrap_or("").to_string())
            .or_default() += 1;
    }
    assert!(
        ups_in_high.values().all(|n| *n <= 2),
        "a stage took more than two scale-up decisions in the 4× step: {ups_in_high:?}\n{}",
        report()
    );
    let settled = |from: f64, to: f64| {
        seen.iter()
            .rev()
            .find(|s| s.at >= from && s.at <= to)
            .map(|s| s.pending)
    };
    for (name, (from, to)) in [("4×", high), ("second low", low2)] {
        let p = settled(from, to).unwrap_or(u64::MAX);
        assert!(
            p < 2_000,
            "{p} records behind at the end of the {name} step\n{}",
            report()
        );
    }
    // Back down once idle, never more than one scale-down per stage per
    // stabilization period.
    let last = seen.last().unwrap();
    assert!(
        last.parallelism.values().all(|p| *p == 1),
        "not back to one task per stage after idling\n{}",
        report()
    );
    let mut downs: BTreeMap<String, Vec<chrono::DateTime<chrono::Utc>>> = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e["to"].as_u64() < e["from"].as_u64())
    {
        let at = chrono::DateTime::parse_from_rfc3339(e["at"].as_str().unwrap()).unwrap();
        downs
            .entry(e["stage"].as_str().unwrap().to_string())
            .or_default()
            .push(at.into());
    }
    for (stage, mut at) in downs {
        at.sort();
        for w in at.windows(2) {
            let gap = (w[1] - w[0]).num_milliseconds() as f64 / 1000.0;
            assert!(
                gap >= STABILIZATION,
                "{stage} scaled down twice within {gap} s\n{}",
                report()
            );
        }
    }
    let _ = idle;
    // What it did, for `--no-capture`.
    eprintln!("{}", report());

    // The result is exactly right.
    let mut want: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for i in 0..produced {
        let e = want.entry(i % KEYS).or_default();
        e.0 += 1;
        e.1 += i % 7;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: BTreeMap<i64, (i64, i64)> = upsert_table(&broker(), &dst)
            .values()
            .map(|v| {
                (
                    v["k"].as_i64().unwrap(),
                    (v["n"].as_i64().unwrap(), v["s"].as_i64().unwrap()),
                )
            })
            .collect();
        if got == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "totals differ from what was produced ({produced} records): got {} keys, first difference {:?}",
            got.len(),
            want.iter().find(|(k, v)| got.get(k) != Some(v))
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // Stopped: the pool goes back to zero workers.
    dev.ok(&["statement", "stop", "totals"]);
    let deadline = Instant::now() + Duration::from_secs(40);
    while child_processes(server_pid) > 0 {
        assert!(
            Instant::now() < deadline,
            "workers still running 40 s after the stop"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let pool_now = dev.json(&["compute-pool", "describe", &pool]);
    assert_eq!(pool_now["status"]["current_cfu"], 0, "{pool_now}");

    // Metering: each minute billed once, at what its tasks held: between
    // the fewest and the most placed tasks the test saw in that minute.
    let today = chrono::Utc::now().date_naive();
    let usage = dev.json(&[
        "usage",
        "--start",
        &today.to_string(),
        "--end",
        &(today + chrono::Duration::days(1)).to_string(),
        "--granularity",
        "MINUTE",
        "--statement",
        "totals",
    ]);
    let rows = usage["data"].as_array().unwrap();
    assert!(!rows.is_empty(), "{usage}");
    for r in rows {
        let minute = chrono::DateTime::parse_from_rfc3339(r["start"].as_str().unwrap())
            .unwrap()
            .timestamp()
            / 60;
        let cfu = r["cfu_minutes"].as_u64().unwrap();
        let in_minute: Vec<u64> = seen
            .iter()
            .filter(|s| s.unix_minute == minute)
            .map(|s| s.tasks_placed)
            .collect();
        if in_minute.is_empty() {
            continue;
        }
        let most = *in_minute.iter().max().unwrap();
        assert!(
            cfu >= 1 && cfu <= most.max(1) + 2,
            "minute {minute}: billed {cfu} CFU, the test saw {in_minute:?} tasks placed\n{usage}"
        );
        assert!(
            cfu >= most,
            "minute {minute}: billed {cfu} CFU but {most} tasks were placed at once\n{usage}"
        );
    }
    dev.interrupt();
}
