//! Compute pools as a resource (`/fcpm/v2/compute-pools`), metering of
//! CFU-minutes and the usage, costs and Prometheus routes, against a real
//! server, store (SQLite and PostgreSQL) and broker.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use weir_api::{ComputePoolRequest, ComputePoolSpec, Phase};

async fn call(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.expect("server answers");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn pools_url(weir: &Weir) -> String {
    format!("{}/fcpm/v2/compute-pools", weir.url())
}

fn auth(weir: &Weir, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    r.basic_auth(&weir.dev.key, Some(&weir.dev.secret))
}

#[tokio::test]
async fn pools_are_created_listed_changed_and_deleted_sqlite() {
    pool_lifecycle("sqlite").await;
}

#[tokio::test]
async fn pools_are_created_listed_changed_and_deleted_postgres() {
    pool_lifecycle("postgres").await;
}

async fn pool_lifecycle(backend: &str) {
    let weir = Weir::start_backend(backend).await;
    let c = &weir.client;
    let created = c
        .create_pool(&ComputePoolRequest {
            spec: ComputePoolSpec {
                display_name: Some("analytics".into()),
                max_cfu: Some(4),
                ..Default::default()
            },
        })
        .await
        .unwrap();
    assert!(created.id.starts_with("lfcp-"), "{}", created.id);
    assert_eq!(created.spec.max_cfu, Some(4));
    assert_eq!(created.status.phase, "PROVISIONED");
    assert_eq!(created.status.current_cfu, 0);
    assert_eq!(created.spec.environment.as_ref().unwrap().id, weir.dev.env);
    // The defaults of the autoscaler are shown.
    assert_eq!(
        created.spec.autoscaler.unwrap().target_utilization,
        weir_api::AutoscalerSettings::default().target_utilization
    );

    let list = c.list_pools().await.unwrap();
    let ids: Vec<&str> = list.data.iter().map(|p| p.id.as_str()).collect();
    assert!(ids.contains(&created.id.as_str()), "{ids:?}");
    assert!(ids.contains(&weir.dev.pool.as_str()), "{ids:?}");

    // max_cfu and the name change; what is left out stays.
    let changed = c
        .update_pool(
            &created.id,
            &ComputePoolRequest {
                spec: ComputePoolSpec {
                    max_cfu: Some(8),
                    ..Default::default()
                },
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.spec.max_cfu, Some(8));
    assert_eq!(changed.spec.display_name.as_deref(), Some("analytics"));
    let settings = weir_api::AutoscalerSettings {
        stabilization_seconds: 5.0,
        ..Default::default()
    };
    let changed = c
        .update_pool(
            &created.id,
            &ComputePoolRequest {
                spec: ComputePoolSpec {
                    display_name: Some("analytics-2".into()),
                    autoscaler: Some(settings),
                    ..Default::default()
                },
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.spec.display_name.as_deref(), Some("analytics-2"));
    assert_eq!(changed.spec.max_cfu, Some(8));
    assert_eq!(changed.spec.autoscaler, Some(settings));
    assert_eq!(c.get_pool(&created.id).await.unwrap().spec, changed.spec);

    c.delete_pool(&created.id).await.unwrap();
    let gone = c.get_pool(&created.id).await.unwrap_err();
    assert_eq!(gone.status().map(|s| s.as_u16()), Some(404), "{gone}");
    weir.stop().await;
}

#[tokio::test]
async fn bad_pool_requests_get_4xx_with_a_message() {
    let weir = Weir::start().await;
    let http = reqwest::Client::new();
    let url = pools_url(&weir);
    let env = weir.dev.env.clone();
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            http.post(format!("{url}?environment={env}"))
                .json(&json!({"spec": {"display_name": "p", "max_cfu": 0}})),
            400,
            "max_cfu",
        ),
        (
            http.post(format!("{url}?environment={env}"))
                .json(&json!({"spec": {"display_name": "p", "max_cfu": -3}})),
            400,
            "max_cfu",
        ),
        (
            http.post(format!("{url}?environment={env}"))
                .json(&json!({"spec": {"display_name": "p", "max_cfu": 100000}})),
            400,
            "1024",
        ),
        (
            http.post(format!("{url}?environment={env}"))
                .json(&json!({"spec": {"display_name": "p"}})),
            400,
            "max_cfu is required",
        ),
        (
            http.post(format!("{url}?environment={env}")).json(
                &json!({"spec": {"display_name": "p", "max_cfu": 2, "autoscaler": {"target_utilization": 1.5}}}),
            ),
            400,
            "target_utilization",
        ),
        (
            http.post(&url)
                .json(&json!({"spec": {"display_name": "p", "max_cfu": 2}})),
            400,
            "environment",
        ),
        (
            http.post(&url).json(
                &json!({"spec": {"display_name": "p", "max_cfu": 2, "environment": {"id": "env-nope"}}}),
            ),
            404,
            "env-nope",
        ),
        (
            http.get(format!("{url}/lfcp-nope?environment={env}")),
            404,
            "lfcp-nope",
        ),
        (
            http.patch(format!("{url}/lfcp-nope?environment={env}"))
                .json(&json!({"spec": {"max_cfu": 2}})),
            404,
            "lfcp-nope",
        ),
        (
            http.patch(format!("{url}/{}?environment={env}", weir.dev.pool))
                .json(&json!({"spec": {"max_cfu": 0}})),
            400,
            "max_cfu",
        ),
        (
            http.delete(format!("{url}/lfcp-nope?environment={env}")),
            404,
            "lfcp-nope",
        ),
        (
            http.post(format!("{url}?environment={env}"))
                .header("content-type", "application/json")
                .body("{not json"),
            400,
            "",
        ),
    ];
    for (req, status, needle) in cases {
        let (got, body) = call(auth(&weir, req)).await;
        assert_eq!(got, status, "{body}");
        assert!(body.to_string().contains(needle), "{needle}: {body}");
    }
    // Nothing was created by the bad requests.
    assert_eq!(weir.client.list_pools().await.unwrap().data.len(), 1);
    weir.stop().await;
}

/// A statement that keeps running: it reads a topic nobody writes to.
async fn run_forever(weir: &Weir, name: &str) {
    let src = unique("idle");
    weir.ddl(&format!("CREATE TABLE `{src}` (id BIGINT)")).await;
    weir.ddl(&format!("CREATE TABLE `{src}_out` (id BIGINT)"))
        .await;
    let s = weir
        .submit(
            name,
            &format!("INSERT INTO `{src}_out` SELECT id FROM `{src}`"),
        )
        .await
        .unwrap();
    assert_eq!(s.status.phase, Phase::Running, "{}", s.status.detail);
}

#[tokio::test]
async fn a_pool_running_a_statement_counts_it_and_cannot_be_deleted() {
    let weir = Weir::start().await;
    run_forever(&weir, "keeps-running").await;
    let pool = weir.client.get_pool(&weir.dev.pool).await.unwrap();
    assert_eq!(pool.status.current_cfu, 1);

    let err = weir.client.delete_pool(&weir.dev.pool).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(409), "{err}");
    assert!(err.to_string().contains("'keeps-running'"), "{err}");

    // max_cfu can be raised while it runs.
    let raised = weir
        .client
        .update_pool(
            &weir.dev.pool,
            &ComputePoolRequest {
                spec: ComputePoolSpec {
                    max_cfu: Some(20),
                    ..Default::default()
                },
            },
        )
        .await
        .unwrap();
    assert_eq!(raised.spec.max_cfu, Some(20));
    assert_eq!(raised.status.current_cfu, 1);

    weir.client.delete_statement("keeps-running").await.unwrap();
    weir.client.delete_pool(&weir.dev.pool).await.unwrap();
    weir.stop().await;
}

#[tokio::test]
async fn another_tenant_cannot_see_or_touch_pools_usage_or_metrics() {
    let weir = Weir::start().await;
    run_forever(&weir, "tenant-a-statement").await;
    let (key, secret) = weir.second_tenant().await;
    let http = reqwest::Client::new();
    let url = pools_url(&weir);
    let (env, pool) = (&weir.dev.env, &weir.dev.pool);
    for req in [
        http.get(format!("{url}?environment={env}")),
        http.get(format!("{url}/{pool}?environment={env}")),
        http.patch(format!("{url}/{pool}?environment={env}"))
            .json(&json!({"spec": {"max_cfu": 1}})),
        http.delete(format!("{url}/{pool}?environment={env}")),
        http.post(format!("{url}?environment={env}"))
            .json(&json!({"spec": {"display_name": "x", "max_cfu": 1}})),
        http.get(format!(
            "{}/weir/v1/usage?environment={env}&start=2020-01-01&end=2020-01-02",
            weir.url()
        )),
    ] {
        let (status, body) = call(req.basic_auth(&key, Some(&secret))).await;
        assert_eq!(status, 404, "{body}");
    }
    // Its own pool list in its own environment is empty; its usage and
    // metrics show nothing of tenant A.
    let (status, body) = call(
        http.get(format!("{url}?environment=env-b"))
            .basic_auth(&key, Some(&secret)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"], json!([]));
    // Let the meter record tenant A's first minute.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let today = chrono::Utc::now().date_naive();
    let range = format!("start={today}&end={}", today + chrono::Duration::days(1));
    let (status, body) = call(
        http.get(format!("{}/weir/v1/usage?{range}", weir.url()))
            .basic_auth(&key, Some(&secret)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total_cfu_minutes"], 0, "{body}");
    let (status, body) = call(auth(
        &weir,
        http.get(format!("{}/weir/v1/usage?{range}", weir.url())),
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["total_cfu_minutes"].as_i64().unwrap() >= 1, "{body}");
    let b_metrics = http
        .get(format!("{}/metrics", weir.url()))
        .basic_auth(&key, Some(&secret))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!b_metrics.contains(pool.as_str()), "{b_metrics}");
    assert!(!b_metrics.contains("tenant-a-statement"), "{b_metrics}");
    weir.stop().await;
}

#[tokio::test]
async fn metrics_show_the_pools_cfu_and_each_statements() {
    let weir = Weir::start().await;
    run_forever(&weir, "metered").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let http = reqwest::Client::new();
    let resp = auth(&weir, http.get(format!("{}/metrics", weir.url())))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    let value = |prefix: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (env, pool) = (&weir.dev.env, &weir.dev.pool);
    let labels = format!("{{environment=\"{env}\",compute_pool=\"{pool}\"}}");
    assert_eq!(
        value(&format!("weir_compute_pool_current_cfu{labels}")),
        1.0
    );
    assert_eq!(value(&format!("weir_compute_pool_max_cfu{labels}")), 10.0);
    assert!(value(&format!("weir_compute_pool_cfu_minutes_total{labels}")) >= 1.0);
    assert_eq!(
        value(&format!(
            "weir_statement_current_cfu{{environment=\"{env}\",compute_pool=\"{pool}\",statement=\"metered\"}}"
        )),
        1.0
    );
    assert_eq!(
        value(&format!(
            "weir_statement_scaling_state{{environment=\"{env}\",compute_pool=\"{pool}\",statement=\"metered\",state=\"OK\"}}"
        )),
        1.0
    );
    assert!(text.contains("weir_statement_pending_records{"), "{text}");
    // Unauthenticated scrapes are refused.
    let (status, _) = call(http.get(format!("{}/metrics", weir.url()))).await;
    assert_eq!(status, 401);
    weir.stop().await;
}

#[tokio::test]
async fn usage_is_billed_per_started_minute_once_across_a_restart_sqlite() {
    usage_across_restart("sqlite").await;
}

#[tokio::test]
async fn usage_is_billed_per_started_minute_once_across_a_restart_postgres() {
    usage_across_restart("postgres").await;
}

async fn usage_across_restart(backend: &str) {
    let weir = Weir::start_backend(backend).await;
    let started = chrono::Utc::now();
    run_forever(&weir, "billed").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The restart resumes it; the meter of the new process records the
    // same minute again.
    let weir = weir.restart().await;
    weir.wait_phase("billed", Phase::Running, Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ended = chrono::Utc::now();
    weir.client.delete_statement("billed").await.unwrap();
    let start = started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let start = format!("{}:00Z", &start[..16]);
    let end = (ended + chrono::Duration::minutes(1)).to_rfc3339();
    let u = weir
        .client
        .usage(&[
            ("start", &start),
            ("end", &end),
            ("granularity", "MINUTE"),
            ("statement", "billed"),
            ("environment", &weir.dev.env),
        ])
        .await
        .unwrap();
    // One CFU in every minute it ran, whatever part of it: never two.
    let minutes_spanned = (ended.timestamp() / 60 - started.timestamp() / 60 + 1) as usize;
    assert!(!u.data.is_empty(), "{u:?}");
    assert!(u.data.len() <= minutes_spanned, "{u:?}");
    for b in &u.data {
        assert_eq!(b.cfu_minutes, 1, "{u:?}");
        assert_eq!(b.statement, "billed");
        assert_eq!(b.compute_pool, weir.dev.pool);
    }
    assert_eq!(u.total_cfu_minutes, u.data.len() as i64);
    // Hourly totals add up to the same.
    let hourly = weir
        .client
        .usage(&[("start", &start), ("end", &end)])
        .await
        .unwrap();
    assert_eq!(hourly.total_cfu_minutes, u.total_cfu_minutes, "{hourly:?}");
    weir.stop().await;
}

#[tokio::test]
async fn bad_usage_queries_get_400_with_a_message() {
    let weir = Weir::start().await;
    for (q, needle) in [
        (
            vec![("start", "2026-01-02"), ("end", "2026-01-01")],
            "must be after",
        ),
        (vec![("start", "2026-01-02")], "both required"),
        (vec![], "both required"),
        (
            vec![("start", "2026-01-01"), ("end", "2026-06-01")],
            "longer than 31 days",
        ),
        (
            vec![
                ("start", "2026-01-01"),
                ("end", "2026-01-03"),
                ("granularity", "MINUTE"),
            ],
            "longer than 1 days",
        ),
        (
            vec![
                ("start", "2026-01-01"),
                ("end", "2026-01-02"),
                ("granularity", "WEEKLY"),
            ],
            "WEEKLY",
        ),
        (
            vec![("start", "yesterday"), ("end", "2026-01-02")],
            "RFC 3339",
        ),
        (
            vec![
                ("start", "2026-01-01"),
                ("end", "2026-01-02"),
                ("group_by", "moon"),
            ],
            "moon",
        ),
    ] {
        let err = weir.client.usage(&q).await.unwrap_err();
        assert_eq!(err.status().map(|s| s.as_u16()), Some(400), "{q:?}: {err}");
        assert!(err.to_string().contains(needle), "{q:?}: {err}");
    }
    // Costs need a configured price.
    let http = reqwest::Client::new();
    let (status, body) = call(auth(
        &weir,
        http.get(format!(
            "{}/billing/v1/costs?start_date=2026-01-01&end_date=2026-01-02",
            weir.url()
        )),
    ))
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(body.to_string().contains("price"), "{body}");
    weir.stop().await;
}

#[tokio::test]
async fn costs_are_daily_line_items_per_pool_at_the_configured_price() {
    let weir = Weir::start_with(|c| c.price_per_cfu_hour = Some(0.6)).await;
    run_forever(&weir, "costly").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let today = chrono::Utc::now().date_naive();
    let http = reqwest::Client::new();
    let (status, body) = call(auth(
        &weir,
        http.get(format!(
            "{}/billing/v1/costs?start_date={today}&end_date={}",
            weir.url(),
            today + chrono::Duration::days(1)
        )),
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    let items = body["data"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{body}");
    let item = &items[0];
    assert_eq!(item["product"], "FLINK");
    assert_eq!(item["line_type"], "FLINK_NUM_CFUS");
    assert_eq!(item["resource"]["id"], weir.dev.pool);
    assert_eq!(item["start_date"], today.to_string());
    let hours = item["quantity"].as_f64().unwrap();
    assert!(hours >= 1.0 / 60.0, "{item}");
    let amount = item["amount"].as_f64().unwrap();
    assert!(
        (amount - (hours * 0.6 * 100.0).round() / 100.0).abs() < 1e-9,
        "{item}"
    );
    weir.stop().await;
}
