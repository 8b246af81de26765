//! Metering and what reads it: the loop that records each running
//! statement's CFUs per minute ([`run_meter`]), the usage API
//! (`/weir/v1/usage`), a costs view shaped like the managed service's
//! billing API (`/billing/v1/costs`, when a price per CFU-hour is
//! configured), and a Prometheus endpoint (`/metrics`). Every route answers
//! for the caller's organization only.

use std::collections::HashMap;
use std::fmt::Write;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use weir_api::{UsageBucket, UsageList};
use weir_catalog::{now_millis, Store, UsageFilter, UsageRecord};

use crate::auth::Principal;
use crate::authz::{Crn, Permission};
use crate::{ApiError, AppState, Scheduler};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(usage))
        .routes(routes!(costs))
        .routes(routes!(metrics))
}

const MINUTE_MS: i64 = 60_000;

/// Every `every`, records the CFUs each running statement holds in the
/// current minute. A minute's row is written when it first has a figure
/// and again only when the figure grows (the store keeps the larger), so a
/// restart or a retry never bills a minute twice, and a statement that ran
/// for any part of a minute is billed that minute. The first look in a
/// minute also counts what was held at the last look before it (held, at
/// a resolution of `every`, when the minute began).
pub async fn run_meter(
    scheduler: Scheduler,
    store: Store,
    every: Duration,
    cancel: CancellationToken,
) {
    // (org, env, uid) -> (minute, cfu written)
    let mut written: HashMap<(String, String, String), (i64, usize)> = HashMap::new();
    // (org, env, uid) -> (minute, cfu) held at the last look
    let mut held: HashMap<(String, String, String), (i64, usize)> = HashMap::new();
    loop {
        let minute = now_millis() / MINUTE_MS * MINUTE_MS;
        let mut now_held = HashMap::new();
        for a in scheduler.allocations() {
            let k = (a.org.clone(), a.env.clone(), a.uid.clone());
            // What was held at the last look, in an earlier minute, was
            // held when this minute began, unless it changed in the moment
            // between: a rescale just after the minute turned must not
            // hide the slots held before it.
            let carried = held
                .get(&k)
                .filter(|(m, _)| *m < minute)
                .map_or(0, |(_, c)| *c);
            now_held.insert(k.clone(), (minute, a.cfu));
            let cfu = a.cfu.max(carried);
            if cfu == 0 {
                continue;
            }
            if written
                .get(&k)
                .is_some_and(|&(m, written)| m == minute && written >= cfu)
            {
                continue;
            }
            let rec = UsageRecord {
                env_id: a.env.clone(),
                pool_id: a.pool.clone(),
                statement_name: a.name.clone(),
                statement_uid: a.uid.clone(),
                minute,
                cfu: cfu as i64,
            };
            match store.record_usage(&a.org, &rec).await {
                Ok(()) => {
                    written.insert(k, (minute, cfu));
                }
                Err(e) => tracing::warn!(error = %e, "cannot record usage; retrying"),
            }
        }
        written.retain(|_, (m, _)| *m >= minute - MINUTE_MS);
        held = now_held;
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct UsageQuery {
    start: Option<String>,
    end: Option<String>,
    granularity: Option<String>,
    environment: Option<String>,
    compute_pool: Option<String>,
    statement: Option<String>,
    group_by: Option<String>,
}

/// An instant in RFC 3339 or a date (`YYYY-MM-DD`, midnight UTC), in ms.
fn parse_time(name: &str, v: &str) -> Result<i64, ApiError> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc()
            .timestamp_millis());
    }
    Err(ApiError::bad_request(format!(
        "'{name}' is '{v}': give an RFC 3339 time such as 2026-12-05T10:00:00Z or a date such as 2026-12-05"
    )))
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// A checked time range `[start, end)` no longer than `longest_days`.
fn range(
    start: Option<&str>,
    end: Option<&str>,
    names: (&str, &str),
    longest_days: i64,
) -> Result<(i64, i64), ApiError> {
    let (Some(s), Some(e)) = (start, end) else {
        return Err(ApiError::bad_request(format!(
            "'{}' and '{}' are both required: usage is read over a bounded range",
            names.0, names.1
        )));
    };
    let (s, e) = (parse_time(names.0, s)?, parse_time(names.1, e)?);
    if e <= s {
        return Err(ApiError::bad_request(format!(
            "'{}' ({}) must be after '{}' ({})",
            names.1,
            iso(e),
            names.0,
            iso(s)
        )));
    }
    if e - s > longest_days * 86_400_000 {
        return Err(ApiError::bad_request(format!(
            "the range from '{}' to '{}' is longer than {longest_days} days at this granularity; \
             ask for a shorter range or a coarser granularity",
            names.0, names.1
        )));
    }
    Ok((s, e))
}

#[utoipa::path(
    get,
    path = "/weir/v1/usage",
    params(UsageQuery),
    tag = "Usage",
    responses((status = 200, description = "Success", body = weir_api::UsageList, content_type = "application/json"))
)]
async fn usage(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<UsageQuery>,
) -> Result<Json<UsageList>, ApiError> {
    principal
        .access
        .require(Permission::View, &Crn::billing(&principal.org_id))?;
    let granularity = q.granularity.as_deref().unwrap_or("HOURLY").to_uppercase();
    let (bucket, longest_days) = match granularity.as_str() {
        "MINUTE" => (MINUTE_MS, 1),
        "HOURLY" => (60 * MINUTE_MS, 31),
        "DAILY" => (1440 * MINUTE_MS, 366),
        other => {
            return Err(ApiError::bad_request(format!(
                "granularity '{other}' is not one of MINUTE, HOURLY, DAILY"
            )))
        }
    };
    let by_statement = match q.group_by.as_deref() {
        None | Some("compute_pool") => q.statement.is_some(),
        Some("statement") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "group_by '{other}' is not one of compute_pool, statement"
            )))
        }
    };
    let (start, end) = range(
        q.start.as_deref(),
        q.end.as_deref(),
        ("start", "end"),
        longest_days,
    )?;
    if let Some(env) = &q.environment {
        crate::org::env_of(
            &state,
            &principal,
            &crate::org::EnvParam {
                environment: Some(env.clone()),
            },
        )
        .await?;
    }
    let filter = UsageFilter {
        env_id: q.environment.clone(),
        pool_id: q.compute_pool.clone(),
        statement_name: q.statement.clone(),
        start,
        end,
    };
    let rows = state
        .store
        .usage_totals(&principal.org_id, &filter, bucket, by_statement)
        .await?;
    let total = rows.iter().map(|r| r.cfu).sum();
    Ok(Json(UsageList {
        api_version: "weir/v1".into(),
        kind: "UsageList".into(),
        granularity,
        start: iso(start),
        end: iso(end),
        total_cfu_minutes: total,
        data: rows
            .into_iter()
            .map(|r| UsageBucket {
                start: iso(r.minute),
                end: iso(r.minute + bucket),
                environment: r.env_id,
                compute_pool: r.pool_id,
                statement: r.statement_name,
                cfu_minutes: r.cfu,
                cfu_hours: r.cfu as f64 / 60.0,
            })
            .collect(),
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct CostsQuery {
    start_date: Option<String>,
    end_date: Option<String>,
}

/// Daily cost line items per compute pool, as the managed service's
/// billing API shapes them: product `FLINK`, line type `FLINK_NUM_CFUS`.
#[utoipa::path(
    get,
    path = "/billing/v1/costs",
    params(CostsQuery),
    tag = "Usage",
    responses((status = 200, description = "Success", body = weir_api::ResourceList<weir_api::Cost>, content_type = "application/json"))
)]
async fn costs(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<CostsQuery>,
) -> Result<Json<Value>, ApiError> {
    principal
        .access
        .require(Permission::View, &Crn::billing(&principal.org_id))?;
    let Some(price) = state.config.price_per_cfu_hour else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_configured",
            "no price per CFU-hour is configured on this server (start it with \
             --price-per-cfu-hour); /weir/v1/usage gives the CFU-hours",
        ));
    };
    let (start, end) = range(
        q.start_date.as_deref(),
        q.end_date.as_deref(),
        ("start_date", "end_date"),
        366,
    )?;
    let filter = UsageFilter {
        start,
        end,
        ..Default::default()
    };
    let rows = state
        .store
        .usage_totals(&principal.org_id, &filter, 1440 * MINUTE_MS, false)
        .await?;
    let mut names: HashMap<(String, String), String> = HashMap::new();
    let mut data = vec![];
    for r in rows {
        let k = (r.env_id.clone(), r.pool_id.clone());
        if !names.contains_key(&k) {
            let name = state
                .store
                .get_pool(&principal.org_id, &r.env_id, &r.pool_id)
                .await?
                .map(|p| p.display_name)
                .unwrap_or_else(|| format!("{} (deleted)", r.pool_id));
            names.insert(k.clone(), name);
        }
        let hours = r.cfu as f64 / 60.0;
        let amount = (hours * price * 100.0).round() / 100.0;
        let day = |ms: i64| iso(ms)[..10].to_string();
        data.push(weir_api::Cost {
            api_version: "billing/v1".into(),
            kind: "Cost".into(),
            id: format!("{}-{}-{}", r.env_id, r.pool_id, day(r.minute)),
            start_date: day(r.minute),
            end_date: day(r.minute + 1440 * MINUTE_MS),
            granularity: "DAILY".into(),
            product: "FLINK".into(),
            line_type: "FLINK_NUM_CFUS".into(),
            network_access_type: "INTERNET".into(),
            unit: "CFU-hour".into(),
            quantity: hours,
            price,
            original_amount: amount,
            discount_amount: 0.0,
            amount,
            resource: weir_api::CostResource {
                id: r.pool_id.clone(),
                display_name: names[&k].clone(),
                environment: weir_api::IdRef {
                    id: r.env_id.clone(),
                },
            },
        });
    }
    Ok(Json(crate::answer(weir_api::ResourceList {
        api_version: "billing/v1".into(),
        kind: "CostList".into(),
        metadata: weir_api::ListPage {
            first: None,
            next: None,
            total_size: data.len(),
        },
        data,
    })))
}

/// Escapes a Prometheus label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The metrics of pools and statements: `(name, counter?, help)`. The
/// Prometheus endpoint and the OTLP export show the same ones.
pub const METRICS: [(&str, bool, &str); 9] = [
    (
        "weir_compute_pool_current_cfu",
        false,
        "Task slots the pool's statements hold now.",
    ),
    ("weir_compute_pool_max_cfu", false, "The pool's CFU limit."),
    (
        "weir_compute_pool_cfu_minutes_total",
        true,
        "CFU-minutes the pool's statements were billed.",
    ),
    (
        "weir_statement_current_cfu",
        false,
        "Task slots the statement holds now.",
    ),
    (
        "weir_statement_records_in_total",
        true,
        "Records the statement read since it last started.",
    ),
    (
        "weir_statement_records_out_total",
        true,
        "Records the statement wrote since it last started.",
    ),
    (
        "weir_statement_state_bytes",
        false,
        "Bytes of operator state the statement holds.",
    ),
    (
        "weir_statement_pending_records",
        false,
        "Records in the statement's input not read yet (where known).",
    ),
    (
        "weir_statement_scaling_state",
        false,
        "1 for the autoscaler's state of the statement.",
    ),
];

/// One value of one of [`METRICS`].
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: &'static str,
    pub labels: Vec<(&'static str, String)>,
    pub value: u64,
}

/// Every organization in the store: whose metrics the process exports (a
/// pool reports its limit before any statement of its organization runs).
pub async fn organizations(state: &AppState) -> Result<Vec<String>, ApiError> {
    Ok(state.store.all_organizations().await?)
}

/// The metrics of organization `org`'s pools and statements now.
pub async fn samples(state: &AppState, org: &str) -> Result<Vec<Sample>, ApiError> {
    let allocations: Vec<_> = state
        .scheduler
        .allocations()
        .into_iter()
        .filter(|a| a.org == org)
        .collect();
    let mut pools = vec![];
    for env in state.store.list_environments(org).await? {
        for p in state.store.list_pools(org, &env.id).await? {
            pools.push((env.id.clone(), p));
        }
    }
    let consumed = state
        .store
        .usage_totals(
            org,
            &UsageFilter {
                start: 0,
                end: i64::MAX,
                ..Default::default()
            },
            i64::MAX,
            false,
        )
        .await?;
    let mut out = vec![];
    for (env, p) in &pools {
        let labels = vec![("environment", env.clone()), ("compute_pool", p.id.clone())];
        let cfu: usize = allocations
            .iter()
            .filter(|a| &a.env == env && a.pool == p.id)
            .map(|a| a.cfu)
            .sum();
        let used: i64 = consumed
            .iter()
            .filter(|r| &r.env_id == env && r.pool_id == p.id)
            .map(|r| r.cfu)
            .sum();
        for (name, value) in [
            ("weir_compute_pool_current_cfu", cfu as u64),
            ("weir_compute_pool_max_cfu", p.max_cfu.max(0) as u64),
            ("weir_compute_pool_cfu_minutes_total", used.max(0) as u64),
        ] {
            out.push(Sample {
                name,
                labels: labels.clone(),
                value,
            });
        }
    }
    for a in &allocations {
        let labels = vec![
            ("environment", a.env.clone()),
            ("compute_pool", a.pool.clone()),
            ("statement", a.name.clone()),
        ];
        let m = state.scheduler.metrics(&a.org, &a.env, &a.name);
        for (name, value) in [
            ("weir_statement_current_cfu", a.cfu as u64),
            (
                "weir_statement_records_in_total",
                m.as_ref().map_or(0, |m| m.records_in),
            ),
            (
                "weir_statement_records_out_total",
                m.as_ref().map_or(0, |m| m.records_out),
            ),
            (
                "weir_statement_state_bytes",
                m.as_ref().map_or(0, |m| m.state_bytes),
            ),
            (
                "weir_statement_pending_records",
                m.as_ref().map_or(0, |m| m.pending_records),
            ),
        ] {
            out.push(Sample {
                name,
                labels: labels.clone(),
                value,
            });
        }
        let Some(json) = state
            .store
            .scaling_status(&a.org, &a.env, &a.name, &a.uid)
            .await?
        else {
            continue;
        };
        let Ok(sc) = serde_json::from_str::<weir_api::ScalingStatus>(&json) else {
            continue;
        };
        let scaling = serde_json::to_value(sc.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let mut labels = labels;
        labels.push(("state", scaling));
        out.push(Sample {
            name: "weir_statement_scaling_state",
            labels,
            value: 1,
        });
    }
    Ok(out)
}

/// The caller's organization's pools and statements in the Prometheus text
/// format (scrape it with the API key as basic-auth credentials).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "Usage",
    responses((status = 200, description = "Prometheus text", body = String, content_type = "text/plain"))
)]
async fn metrics(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<impl IntoResponse, ApiError> {
    principal
        .access
        .require(Permission::View, &Crn::billing(&principal.org_id))?;
    let samples = samples(&state, &principal.org_id).await?;
    let mut out = String::new();
    for (name, counter, help) in METRICS {
        let kind = if counter { "counter" } else { "gauge" };
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for s in samples.iter().filter(|s| s.name == name) {
            let labels: Vec<String> = s
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
                .collect();
            let _ = writeln!(out, "{name}{{{}}} {}", labels.join(","), s.value);
        }
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out))
}
