//! Applies the autoscaler ([`crate::autoscaler`]) to running statements:
//! which statements it sizes, the metrics window it keeps of each stage,
//! and the loop that decides and rescales. A decision, its inputs and its
//! reason are kept as the statement's scaling status and events.
//!
//! Which statements scale: a stateless one unless `'sql.parallelism'` pins
//! it (it starts as one task and, once split, stays in stages); a keyed one
//! when `'sql.parallelism'` is `'auto'` (two stages from the start). Either
//! is exactly-once where the broker has Kafka transactions. A keyed
//! statement without the property runs as one task that holds all of its
//! state, which cannot be split.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use weir_api::{AutoscalerSettings, ScalingDecision, ScalingState, ScalingStatus};
use weir_sql_gateway::stages::{ParallelismSetting, Shape};

use crate::autoscaler::{decide, History, Sample, ScaleUp, Stage};
use crate::parallel::StageCounts;
use crate::workers::Key;
use crate::Scheduler;

pub const AUTO: &str = "AUTO";
pub const PINNED: &str = "PINNED";
pub const FIXED: &str = "FIXED";
/// The stage names of a statement's status.
pub const SOURCE_STAGE: &str = "source";
pub const WHOLE_STAGE: &str = "statement";

/// Why a keyed statement that ran as one task stays one.
pub const KEPT_WHOLE: &str =
    "it was started as one task, whose checkpoints hold all of its state, \
     which cannot be split; create the statement again to run it in parallel";

/// Whether a keyed statement ran as one task before (its `stored` scaling
/// status says it was not split): its state is in that task's checkpoints,
/// not per repartition partition, so it stays one task. So it is for a
/// statement whose plan became splittable after it started (stacked
/// operators on a common key, run as one task by earlier versions).
pub fn kept_whole(shape: &Shape, stored: Option<&str>) -> bool {
    let Some(status) = stored.and_then(|s| serde_json::from_str::<ScalingStatus>(s).ok()) else {
        return false;
    };
    matches!(shape, Shape::Keyed { .. }) && !status.split
}

/// How a statement of `shape` with `setting` is sized, and why when it is
/// not.
pub fn mode(shape: &Shape, setting: ParallelismSetting, select: bool) -> (&'static str, String) {
    match (shape, setting) {
        (Shape::Single(why), _) => (FIXED, format!("runs as one task: {why}")),
        (_, ParallelismSetting::Fixed(n)) => (PINNED, format!("'sql.parallelism' = '{n}'")),
        // Run again with other tasks, a SELECT would show rows twice.
        _ if select => (
            FIXED,
            "runs as one task: a SELECT is not rescaled; set 'sql.parallelism' to a number to read its partitions with that many tasks".into(),
        ),
        (Shape::Stateless, _) | (Shape::Keyed { .. }, ParallelismSetting::Auto) => {
            (AUTO, String::new())
        }
        (Shape::Keyed { .. }, ParallelismSetting::Unset) => (
            FIXED,
            "runs as one task holding all of its keyed state (exactly-once where the broker has \
             transactions); create it with 'sql.parallelism' = 'auto' to have it scaled in two \
             stages (exactly-once across them where the broker has transactions)"
                .into(),
        ),
    }
}

/// The tasks per stage an autoscaled statement starts with: what its
/// status last said; `None` for a stateless statement never split (it runs
/// as one task).
pub fn counts(
    status: &ScalingStatus,
    shape: &Shape,
    operator: Option<&str>,
) -> Option<StageCounts> {
    let source = status.parallelism.get(SOURCE_STAGE).copied();
    match shape {
        Shape::Stateless => source
            .filter(|s| *s > 1 || status.split)
            .map(|s| StageCounts {
                source: s.max(1),
                keyed: 1,
            }),
        Shape::Keyed { .. } => Some(StageCounts {
            source: source.unwrap_or(1).max(1),
            keyed: operator
                .and_then(|o| status.parallelism.get(o).copied())
                .unwrap_or(1)
                .max(1),
        }),
        Shape::Single(_) => None,
    }
}

/// One stage of a running autoscaled statement, as the scheduler sees it.
#[derive(Debug, Clone)]
pub struct ObservedStage {
    pub name: String,
    pub tasks: u32,
    /// Its input's partitions (0: unknown).
    pub partitions: u32,
    pub metrics: Vec<weir_api::StatementMetrics>,
}

/// A running autoscaled statement.
#[derive(Debug, Clone)]
pub struct Observed {
    pub key: Key,
    pub uid: String,
    pub pool: String,
    pub stages: Vec<ObservedStage>,
    /// Whether it runs in stages (see [`ScalingStatus::split`]).
    pub split: bool,
}

/// What is remembered of one statement between ticks.
struct Track {
    uid: String,
    last_rescale: f64,
    /// `(at, per stage: per task metrics)`, oldest first.
    snapshots: VecDeque<(f64, BTreeMap<String, StageSnapshot>)>,
    recommendations: HashMap<String, Vec<(f64, u32)>>,
    scale_ups: HashMap<String, ScaleUp>,
    last_decided: f64,
    /// The status last written, to write only changes.
    written: Option<ScalingStatus>,
}

impl Track {
    fn new(uid: &str, now: f64) -> Track {
        Track {
            uid: uid.to_string(),
            last_rescale: now,
            snapshots: VecDeque::new(),
            recommendations: HashMap::new(),
            scale_ups: HashMap::new(),
            last_decided: now,
            written: None,
        }
    }
}

/// How often metrics are sampled.
const TICK: Duration = Duration::from_secs(1);

/// Samples every autoscaled statement each second and decides each at its
/// pool's interval, rescaling those whose decision changes a stage.
pub async fn run(scheduler: Scheduler, cancel: CancellationToken) {
    let clock = Instant::now();
    let mut tracks: HashMap<Key, Track> = HashMap::new();
    let mut settings: HashMap<(String, String, String), (f64, AutoscalerSettings, u32)> =
        HashMap::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(TICK) => {}
        }
        let now = clock.elapsed().as_secs_f64();
        let observed = scheduler.observe_autoscaled();
        tracks.retain(|k, t| {
            observed.iter().any(|o| &o.key == k && o.uid == t.uid) || now - t.last_rescale < 60.0
        });
        settings.retain(|_, (at, _, _)| now - *at < 10.0);
        for o in observed {
            let (org, env, _) = &o.key;
            let pool_key = (org.clone(), env.clone(), o.pool.clone());
            if !settings.contains_key(&pool_key) {
                let Ok(Some(p)) = scheduler.store().get_pool(org, env, &o.pool).await else {
                    continue;
                };
                settings.insert(
                    pool_key.clone(),
                    (now, crate::pools::settings_of(&p), p.max_cfu.max(0) as u32),
                );
            }
            let (_, s, max_cfu) = settings[&pool_key];
            let t = tracks
                .entry(o.key.clone())
                .or_insert_with(|| Track::new(&o.uid, now));
            if t.uid != o.uid {
                // The same name, a new statement.
                *t = Track::new(&o.uid, now);
            }
            t.snapshots.push_back((
                now,
                o.stages
                    .iter()
                    .map(|st| (st.name.clone(), StageSnapshot::of(&st.metrics)))
                    .collect(),
            ));
            while t
                .snapshots
                .front()
                .is_some_and(|(at, _)| *at < now - s.window_seconds - TICK.as_secs_f64())
            {
                t.snapshots.pop_front();
            }
            if now - t.last_decided < s.interval_seconds {
                continue;
            }
            t.last_decided = now;
            let in_use = scheduler.pool_cfu(org, env, &o.pool) as u32;
            let mut free = max_cfu.saturating_sub(in_use);
            let mut decisions = vec![];
            for st in &o.stages {
                let window = samples(&t.snapshots, &st.name);
                let history = History {
                    last_rescale: Some(t.last_rescale),
                    recommendations: t.recommendations.get(&st.name).cloned().unwrap_or_default(),
                    last_scale_up: t.scale_ups.get(&st.name).copied(),
                };
                let stage = Stage {
                    name: st.name.clone(),
                    current: st.tasks,
                    partitions: st.partitions,
                    free_slots: free,
                    pinned: None,
                };
                let d = decide(now, &stage, &window, &history, &s);
                match (d.to.cmp(&d.from), d.capacity) {
                    (std::cmp::Ordering::Greater, Some(capacity)) => {
                        t.scale_ups.insert(
                            st.name.clone(),
                            ScaleUp {
                                from: d.from,
                                to: d.to,
                                capacity,
                                input_rate: d.input_rate,
                            },
                        );
                    }
                    (std::cmp::Ordering::Less, _) => {
                        t.scale_ups.remove(&st.name);
                    }
                    _ => {}
                }
                free = free.saturating_sub(d.to.saturating_sub(st.tasks));
                let recs = t.recommendations.entry(st.name.clone()).or_default();
                recs.push((now, d.recommended));
                recs.retain(|(at, _)| *at >= now - s.stabilization_seconds - s.interval_seconds);
                decisions.push(d);
            }
            let pending = o.stages.first().and_then(|st| {
                (!st.metrics.is_empty()).then(|| st.metrics.iter().map(|m| m.pending_records).sum())
            });
            let rescale = decisions.iter().any(|d| d.to != d.from);
            let state = overall(&decisions);
            let shown = decisions
                .iter()
                .find(|d| d.to != d.from)
                .or_else(|| decisions.iter().find(|d| d.state != ScalingState::Ok))
                .or(decisions.first())
                .cloned()
                .map(|mut d| {
                    d.at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                    d
                });
            let mut status = ScalingStatus {
                state,
                mode: AUTO.into(),
                detail: String::new(),
                parallelism: decisions.iter().map(|d| (d.stage.clone(), d.to)).collect(),
                pending_records: pending,
                last_decision: shown.clone(),
                split: false,
            };
            status.split = o.split || status.parallelism.get(SOURCE_STAGE).is_some_and(|p| *p > 1);
            // An event when something changes: a rescale, or a new state.
            let changed_state = t.written.as_ref().is_none_or(|w| w.state != state);
            if rescale || changed_state {
                for d in decisions.iter().filter(|d| !rescale || d.to != d.from) {
                    let mut d = d.clone();
                    d.at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                    let _ = scheduler
                        .store()
                        .add_scaling_event(
                            org,
                            env,
                            &o.key.2,
                            &o.uid,
                            &serde_json::to_string(&d).expect("serializes"),
                        )
                        .await;
                }
            }
            if rescale {
                let counts = StageCounts {
                    source: status.parallelism.get(SOURCE_STAGE).copied().unwrap_or(1),
                    keyed: decisions
                        .iter()
                        .find(|d| d.stage != SOURCE_STAGE)
                        .map_or(1, |d| d.to),
                };
                let what: Vec<String> = decisions
                    .iter()
                    .filter(|d| d.to != d.from)
                    .map(|d| format!("{} {} → {} tasks", d.stage, d.from, d.to))
                    .collect();
                let _ = write_status(&scheduler, &o, &status).await;
                t.written = Some(status.clone());
                if let Err(e) = scheduler.rescale(&o.key, &what.join(", "), counts).await {
                    tracing::warn!(statement = ?o.key, error = ?e, "the autoscaler could not rescale a statement");
                }
                t.last_rescale = now;
                t.snapshots.clear();
                // The tasks run again: until metrics say otherwise, OK.
                status.state = match state {
                    ScalingState::PoolExhausted => state,
                    _ => ScalingState::Ok,
                };
            }
            if t.written.as_ref() != Some(&status) {
                let _ = write_status(&scheduler, &o, &status).await;
                t.written = Some(status);
            }
        }
    }
}

async fn write_status(
    scheduler: &Scheduler,
    o: &Observed,
    status: &ScalingStatus,
) -> Result<(), weir_catalog::CatalogError> {
    let (org, env, name) = &o.key;
    scheduler
        .store()
        .set_scaling_status(
            org,
            env,
            name,
            &o.uid,
            &serde_json::to_string(status).expect("serializes"),
        )
        .await
}

/// The statement's state from its stages' decisions: the most pressing.
fn overall(decisions: &[ScalingDecision]) -> ScalingState {
    let has = |s: ScalingState| decisions.iter().any(|d| d.state == s);
    if has(ScalingState::PoolExhausted) {
        ScalingState::PoolExhausted
    } else if has(ScalingState::PendingScaleUp) {
        ScalingState::PendingScaleUp
    } else if has(ScalingState::PendingScaleDown) {
        ScalingState::PendingScaleDown
    } else {
        ScalingState::Ok
    }
}

/// What a window keeps of one stage at one instant: its summed input
/// figures, and each task's busy time and records consumed (16 bytes per
/// task, so that a long window of a wide stage stays small).
#[derive(Debug, Clone, PartialEq)]
struct StageSnapshot {
    ends: u64,
    pending: u64,
    unknown: u64,
    /// Whether any partition's lag is known.
    known_any: bool,
    /// `(busy_ms, input_consumed)` per task.
    tasks: Vec<(u64, u64)>,
}

impl StageSnapshot {
    fn of(m: &[weir_api::StatementMetrics]) -> StageSnapshot {
        let unknown = m.iter().map(|x| x.input_unknown_partitions).sum::<u64>();
        StageSnapshot {
            ends: m.iter().map(|x| x.input_end_offsets).sum(),
            pending: m.iter().map(|x| x.pending_records).sum(),
            unknown,
            known_any: m
                .iter()
                .any(|x| x.input_end_offsets > 0 || x.pending_records > 0)
                || unknown == 0,
            tasks: m.iter().map(|x| (x.busy_ms, x.input_consumed)).collect(),
        }
    }
}

/// One stage's samples from consecutive snapshots: the input rate from how
/// its partitions' end offsets grew, its lag (the known part; `None` when
/// no partition's lag is known), and the busiest task's records per busy
/// second.
fn samples(
    snapshots: &VecDeque<(f64, BTreeMap<String, StageSnapshot>)>,
    stage: &str,
) -> Vec<Sample> {
    let mut out = vec![];
    for pair in snapshots.iter().collect::<Vec<_>>().windows(2) {
        let ((t0, a), (t1, b)) = (pair[0], pair[1]);
        let (Some(a), Some(b)) = (a.get(stage), b.get(stage)) else {
            continue;
        };
        let dt = t1 - t0;
        // A pair is comparable only when the same partitions were known in
        // both: one that becomes known adds its whole end offset at once.
        if dt <= 0.0 || a.tasks.len() != b.tasks.len() || a.unknown != b.unknown {
            continue;
        }
        let input_rate = (b.ends as f64 - a.ends as f64).max(0.0) / dt;
        let lag = b.known_any.then_some(b.pending as f64);
        // The busiest task: the most busy time in the interval.
        let busiest = a
            .tasks
            .iter()
            .zip(&b.tasks)
            .map(|((busy0, n0), (busy1, n1))| {
                (
                    busy1.saturating_sub(*busy0) as f64 / 1000.0,
                    n1.saturating_sub(*n0) as f64,
                )
            })
            .max_by(|p, q| p.0.total_cmp(&q.0));
        let true_rate = busiest.and_then(|(busy, n)| (busy > 0.005 && n > 0.0).then(|| n / busy));
        out.push(Sample {
            at: *t1,
            input_rate,
            lag,
            true_rate,
        });
    }
    out
}
