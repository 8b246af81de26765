//! Two tenants on one server: one runs a steady statement with a known
//! output, the other sends what used to take the process down or starve it
//! (a 20,000-term expression, a runaway HOP window, an aggregation that
//! grows without end, a huge cross join). The first tenant's output stays
//! exact, its pace stays within a stated bound of its pace alone, and the
//! API keeps answering throughout.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use weir_api::{Client, CreateStatementRequest, Credentials, Phase, StatementSpec};
use weir_catalog::{ClusterRecord, PoolRecord};
use weir_control_plane::auth::{hash_secret, new_key};

/// Records of tenant A's steady statement.
const STEADY: i64 = 40_000;

/// Creates a second organization with its own environment, cluster
/// registration (the same broker), pool and key.
async fn second_tenant(weir: &Weir) -> Client {
    let store = &weir.server.as_ref().unwrap().state.store;
    store
        .ensure_organization("org-noisy", "noisy")
        .await
        .unwrap();
    store
        .ensure_environment("org-noisy", "env-noisy", "noisy")
        .await
        .unwrap();
    store
        .ensure_cluster(
            "org-noisy",
            "env-noisy",
            &ClusterRecord {
                id: "lkc-noisy".into(),
                name: "cluster_0".into(),
                bootstrap: broker(),
                sasl: None,
            },
        )
        .await
        .unwrap();
    store
        .ensure_pool(
            "org-noisy",
            "env-noisy",
            &PoolRecord::new("lfcp-noisy", "noisy", 10),
        )
        .await
        .unwrap();
    let (key, secret) = new_key();
    store
        .create_api_key("org-noisy", &key, &hash_secret(&secret), "noisy")
        .await
        .unwrap();
    Client::new(
        weir.url(),
        "org-noisy",
        "env-noisy",
        Some(Credentials { key, secret }),
    )
}

async fn create(
    c: &Client,
    name: &str,
    sql: &str,
    properties: &[(&str, &str)],
) -> Result<weir_api::Statement, weir_api::ClientError> {
    c.create_statement(&CreateStatementRequest {
        metadata: None,
        name: Some(name.into()),
        spec: StatementSpec {
            statement: sql.into(),
            properties: properties
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            ..Default::default()
        },
    })
    .await
}

/// Runs tenant A's filter from `src` into a new table and returns how long
/// it took to write all of it, checking the output is exactly the input
/// rows that pass.
async fn steady_run(weir: &Weir, src: &str, name: &str) -> Duration {
    let sink = unique("steady_out");
    weir.ddl(&format!("CREATE TABLE `{sink}` (id BIGINT, amount DOUBLE)"))
        .await;
    let start = Instant::now();
    weir.submit(
        name,
        &format!("INSERT INTO `{sink}` SELECT id, amount FROM `{src}` WHERE amount > 50"),
    )
    .await
    .unwrap();
    let want: Vec<i64> = (0..STEADY).filter(|id| order_amount(*id) > 50.0).collect();
    let got = consume(&sink, want.len(), Duration::from_secs(120), Duration::ZERO).await;
    let took = start.elapsed();
    let settled = consume(
        &sink,
        want.len(),
        Duration::from_secs(30),
        Duration::from_secs(1),
    )
    .await;
    let mut ids: Vec<i64> = settled
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_str(r.value.as_deref().unwrap()).unwrap();
            v["id"].as_i64().unwrap()
        })
        .collect();
    ids.sort();
    assert_eq!(
        ids, want,
        "tenant A's output is not exactly its input's passing rows"
    );
    assert!(got.len() >= want.len());
    weir.client.delete_statement(name).await.unwrap();
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_tenant_does_not_disturb_its_neighbours_output_pace_or_api() {
    let weir = Weir::start().await;
    let noisy = second_tenant(&weir).await;

    // Tenant A's input.
    let src = unique("steady_in");
    weir.ddl(&orders_ddl(&src, "")).await;
    let records: Vec<_> = (0..STEADY)
        .map(|id| ((id % 3) as i32, None, order_json(id)))
        .collect();
    produce(&src, &records).await;
    let alone = steady_run(&weir, &src, "alone").await;

    // Tenant B's inputs: many keys, and two tables to cross.
    let keys = unique("noisy_keys");
    create(
        &noisy,
        "t1",
        &format!("CREATE TABLE {keys} (id BIGINT, amount DOUBLE)"),
        &[],
    )
    .await
    .unwrap();
    let many: Vec<_> = (0..200_000)
        .map(|id| (0, None, format!(r#"{{"id":{id},"amount":1}}"#)))
        .collect();
    produce(&keys, &many).await;
    let (x, y) = (unique("noisy_x"), unique("noisy_y"));
    for t in [&x, &y] {
        create(
            &noisy,
            &unique("t").replace('_', "-"),
            &format!("CREATE TABLE {t} (id BIGINT, pad STRING)"),
            &[],
        )
        .await
        .unwrap();
        let rows: Vec<_> = (0..3_000)
            .map(|id| {
                (
                    0,
                    None,
                    format!(r#"{{"id":{id},"pad":"{}"}}"#, "p".repeat(100)),
                )
            })
            .collect();
        produce(t, &rows).await;
    }

    // The API is probed every 50 ms while tenant B is hostile.
    let probing = Arc::new(AtomicBool::new(true));
    let probe = {
        let (client, probing) = (weir.client.clone(), probing.clone());
        tokio::spawn(async move {
            let mut latencies = vec![];
            while probing.load(Ordering::SeqCst) {
                let t = Instant::now();
                client
                    .list_statements(None)
                    .await
                    .expect("the API answers tenant A while tenant B is hostile");
                latencies.push(t.elapsed());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            latencies
        })
    };

    // Tenant B: refused at once.
    let sum = format!("SELECT {}1", "1 + ".repeat(19_999));
    let e = create(&noisy, "sum", &sum, &[]).await.unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(400), "{e:?}");
    let hop = format!(
        "SELECT id, window_start, COUNT(*) FROM TABLE(HOP(TABLE {keys}, DESCRIPTOR($rowtime), \
         INTERVAL '0.001' SECOND, INTERVAL '1' DAY)) GROUP BY id, window_start, window_end"
    );
    let e = create(&noisy, "hop", &hop, &[]).await.unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(400), "{e:?}");
    // Tenant B: runs until its memory limit, and a cross join of 9 million
    // pairs that keeps a core busy.
    let counts = unique("noisy_counts");
    create(
        &noisy,
        "t2",
        &format!("CREATE TABLE {counts} (id BIGINT, n BIGINT, PRIMARY KEY (id) NOT ENFORCED)"),
        &[],
    )
    .await
    .unwrap();
    create(
        &noisy,
        "runaway",
        &format!("INSERT INTO {counts} SELECT id, COUNT(*) AS n FROM {keys} GROUP BY id"),
        &[("sql.memory.limit", "16 mb")],
    )
    .await
    .unwrap();
    create(
        &noisy,
        "cross",
        &format!("SELECT COUNT(*) AS pairs FROM {x} AS x CROSS JOIN {y} AS y"),
        &[("sql.memory.limit", "256 mb")],
    )
    .await
    .unwrap();

    // Tenant B: statements that are slow to plan (a 500-term sum each),
    // several at once; its organization plans one at a time.
    let slow_plans: Vec<_> = (0..3)
        .map(|i| {
            let (noisy, sql) = (
                noisy.clone(),
                format!("SELECT {}id FROM {keys}", "id + ".repeat(499)),
            );
            tokio::spawn(async move { create(&noisy, &format!("deep-{i}"), &sql, &[]).await })
        })
        .collect();

    let beside = steady_run(&weir, &src, "beside").await;
    for (i, p) in slow_plans.into_iter().enumerate() {
        let s = p.await.unwrap().expect("a 500-term sum plans");
        assert_ne!(s.status.phase, Phase::Failed, "{}", s.status.detail);
        // Nobody reads its 200,000 rows: it waits for a reader, and a
        // delete must still end it.
        tokio::time::timeout(
            Duration::from_secs(30),
            noisy.delete_statement(&format!("deep-{i}")),
        )
        .await
        .expect("deleting a SELECT that waits for its reader returns")
        .unwrap();
    }

    // The runaway statement failed on its own, saying why.
    let deadline = Instant::now() + Duration::from_secs(60);
    let runaway = loop {
        let s = noisy.get_statement("runaway").await.unwrap();
        if s.status.phase == Phase::Failed || Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        runaway.status.phase,
        Phase::Failed,
        "{}",
        runaway.status.detail
    );
    assert!(
        runaway.status.detail.contains("'sql.memory.limit'"),
        "{}",
        runaway.status.detail
    );
    let cross = noisy.get_statement("cross").await.unwrap();
    noisy.delete_statement("cross").await.unwrap();

    probing.store(false, Ordering::SeqCst);
    let mut latencies = probe.await.unwrap();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "tenant A: {STEADY} records in {:.2} s alone, {:.2} s beside the hostile tenant ({:.2}x); \
         the cross join was {:?} with {} rows out; API latency over {} probes: p50 {:?}, p99 {:?}, max {:?}",
        alone.as_secs_f64(),
        beside.as_secs_f64(),
        beside.as_secs_f64() / alone.as_secs_f64(),
        cross.status.phase,
        cross.status.metrics.as_ref().map_or(0, |m| m.records_out),
        latencies.len(),
        at(0.5),
        at(0.99),
        latencies.last().unwrap()
    );
    // The stated bounds: tenant A keeps at least a quarter of its pace
    // alone (two cores shared with two busy statements), and no API call
    // waits more than 2 s.
    assert!(
        beside <= alone * 4 + Duration::from_secs(5),
        "tenant A took {beside:?} beside the hostile tenant, {alone:?} alone"
    );
    assert!(
        *latencies.last().unwrap() < Duration::from_secs(2),
        "an API call waited {:?}",
        latencies.last().unwrap()
    );
    weir.stop().await;
}
