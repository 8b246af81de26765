//! The autoscaler on a running statement, against a real server, store and
//! broker: a stateless statement over a 4-partition topic grows to its
//! partition count while records arrive faster than the pool's settings
//! allow one task, and goes back to one task when they stop, with every
//! decision visible in its status and scaling events, and no record lost
//! or doubled across the rescales (they checkpoint and drain).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use weir_api::{
    AutoscalerSettings, ComputePoolRequest, ComputePoolSpec, CreateStatementRequest, Phase,
    ScalingState, StatementSpec,
};

/// Settings that make a few thousand records a second "too much" for one
/// task (a target utilization of 0.1%), with second-scale periods.
fn eager() -> AutoscalerSettings {
    AutoscalerSettings {
        target_utilization: 0.001,
        catch_up_seconds: 10.0,
        stabilization_seconds: 4.0,
        max_scale_down: 1.0,
        rescale_grace_seconds: 2.0,
        window_seconds: 5.0,
        interval_seconds: 1.0,
        rescale_pause_seconds: 1.0,
    }
}

async fn source_tasks(weir: &Weir, name: &str) -> u32 {
    let s = weir.client.get_statement(name).await.unwrap();
    s.status
        .scaling
        .as_ref()
        .and_then(|sc| sc.parallelism.get("source").copied())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_stateless_statement_grows_under_load_and_shrinks_when_idle() {
    let weir = Weir::start().await;
    let pool = weir
        .client
        .create_pool(&ComputePoolRequest {
            spec: ComputePoolSpec {
                display_name: Some("elastic".into()),
                max_cfu: Some(8),
                autoscaler: Some(eager()),
                ..Default::default()
            },
        })
        .await
        .unwrap();
    let (src, dst) = (unique("as_src"), unique("as_dst"));
    weir.ddl(&format!(
        "CREATE TABLE `{src}` (id BIGINT) DISTRIBUTED BY HASH(id) INTO 4 BUCKETS"
    ))
    .await;
    weir.ddl(&format!("CREATE TABLE `{dst}` (id BIGINT)")).await;
    weir.client
        .create_statement(&CreateStatementRequest {
            metadata: None,
            name: Some("elastic-copy".into()),
            spec: StatementSpec {
                statement: format!("INSERT INTO `{dst}` SELECT id FROM `{src}`"),
                compute_pool_id: Some(pool.id.clone()),
                properties: BTreeMap::new(),
                ..Default::default()
            },
        })
        .await
        .unwrap();
    let s = weir
        .wait_phase("elastic-copy", Phase::Running, Duration::from_secs(30))
        .await;
    let sc = s.status.scaling.expect("a scaling status");
    assert_eq!(sc.mode, "AUTO", "{sc:?}");
    assert_eq!(sc.parallelism.get("source"), Some(&1), "{sc:?}");
    assert!(!sc.split, "a stateless statement starts as one task");

    // Load: records keep arriving until it has grown to 4 tasks.
    let mut next = 0i64;
    let started = Instant::now();
    loop {
        let batch: Vec<_> = (next..next + 2_000)
            .map(|i| ((i % 4) as i32, None, format!(r#"{{"id":{i}}}"#)))
            .collect();
        produce(&src, &batch).await;
        next += 2_000;
        if source_tasks(&weir, "elastic-copy").await == 4 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no scale-up to the 4 partitions within 60 s: {:?}",
            weir.client
                .get_statement("elastic-copy")
                .await
                .unwrap()
                .status
                .scaling
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The decision is in the status before its tasks run: wait for them.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = weir.client.get_statement("elastic-copy").await.unwrap();
        let running = s.status.phase == Phase::Running
            && s.status.stages.first().map(|st| st.parallelism) == Some(4);
        if running {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "4 source tasks not running after 30 s: {:?} {:?}",
            s.status.phase,
            s.status.stages
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events = weir.client.scaling_events("elastic-copy").await.unwrap();
    let up = events
        .data
        .iter()
        .find(|d| d.to > d.from)
        .unwrap_or_else(|| panic!("no scale-up event: {events:?}"));
    assert_eq!(up.state, ScalingState::PendingScaleUp);
    assert!(up.reason.contains("tasks to keep up"), "{}", up.reason);
    assert!(up.true_rate.is_some() && up.input_rate > 0.0, "{up:?}");

    // Idle: back to one task after the stabilization period.
    let idle = Instant::now();
    while source_tasks(&weir, "elastic-copy").await != 1 {
        assert!(
            idle.elapsed() < Duration::from_secs(60),
            "no scale-down within 60 s of idling: {:?}",
            weir.client
                .get_statement("elastic-copy")
                .await
                .unwrap()
                .status
                .scaling
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let events = weir.client.scaling_events("elastic-copy").await.unwrap();
    let down = events
        .data
        .iter()
        .find(|d| d.to < d.from)
        .expect("a scale-down event");
    assert!(down.reason.contains("the most needed"), "{}", down.reason);
    let s = weir
        .wait_phase("elastic-copy", Phase::Running, Duration::from_secs(30))
        .await;
    assert!(
        s.status.scaling.unwrap().split,
        "once split, it stays in stages"
    );

    // Every record once: the rescales drained and stored their offsets.
    let got = consume(
        &dst,
        next as usize,
        Duration::from_secs(60),
        Duration::from_secs(2),
    )
    .await;
    let mut ids: Vec<i64> = got
        .iter()
        .map(|r| {
            serde_json::from_str::<serde_json::Value>(r.value.as_deref().unwrap()).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    ids.sort();
    let dups = ids.windows(2).filter(|w| w[0] == w[1]).count();
    ids.dedup();
    assert_eq!(ids.len() as i64, next, "records lost");
    assert_eq!(dups, 0, "records doubled across graceful rescales");
    weir.stop().await;
}
