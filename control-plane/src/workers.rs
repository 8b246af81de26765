//! The compute pools' workers as the control plane sees them: who is
//! registered, which tasks each holds a lease on, and the internal API
//! they talk to (`/internal/v1`, see `weir_compute_pool::worker::protocol`).
//!
//! A statement placed on a pool waits here as a task until a worker of the
//! pool with a free slot heartbeats; it is then leased to that worker
//! under a new epoch. A worker silent for the lease timeout is dropped and
//! its tasks wait for another worker, which restores them from their last
//! checkpoint and stored offsets. Every report names the worker and the
//! epoch; one for a lease that moved on is refused (409) and not kept.
//!
//! The leases live in this process's memory: a restarted server resumes
//! every running statement as a new task, and workers that heartbeat to it
//! are told to register again (404), stopping what they ran. Several
//! servers sharing one store would need the leases in the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use tokio::sync::oneshot;
use weir_api::Phase;
use weir_catalog::registry::SchemaRegistry;
use weir_catalog::Store;
use weir_compute_pool::worker::protocol::{
    Assignment, Heartbeat, HeartbeatReply, Register, Registered, ReportBody, SchemaAnswer,
    TaskReport,
};
use weir_compute_pool::{Outcome, ResultsBuffer, StatementMetrics};

use crate::{ApiError, AppState};

/// `org`, `env`, statement name.
pub(crate) type Key = (String, String, String);

/// How workers reach and prove themselves to this server.
#[derive(Debug, Clone)]
pub struct WorkersConfig {
    /// The credential workers present (`Authorization: Bearer ...`).
    pub credential: String,
    /// A worker silent this long loses its leases.
    pub lease_timeout: Duration,
    /// How often workers heartbeat: the server holds a heartbeat it has
    /// nothing to answer for up to this long, and the worker sends the
    /// next one on the answer.
    pub heartbeat_interval: Duration,
    /// Start and stop `weir worker` child processes as pools need them;
    /// `None`: workers are started by someone else.
    pub processes: Option<ProcessWorkers>,
}

/// How the process provisioner starts workers.
#[derive(Debug, Clone)]
pub struct ProcessWorkers {
    /// The `weir` binary.
    pub bin: std::path::PathBuf,
    /// The file holding [`WorkersConfig::credential`].
    pub credential_file: std::path::PathBuf,
    pub slots: u32,
    pub log_dir: std::path::PathBuf,
}

/// The largest report a worker may send (a page of a `SELECT`'s rows).
const MAX_REPORT_BYTES: usize = 64 << 20;

pub struct Workers {
    config: WorkersConfig,
    store: Store,
    inner: Mutex<Registry>,
    /// Something a waiting heartbeat may have to answer: a task queued,
    /// stopped, freed or put back.
    changed: tokio::sync::Notify,
}

#[derive(Default)]
struct Registry {
    workers: HashMap<String, WorkerEntry>,
    tasks: HashMap<String, TaskEntry>,
    epochs: u64,
    /// Each pool's `max_cfu`: the most tasks it runs at once (one task is
    /// one CFU for now).
    max_cfu: HashMap<String, usize>,
}

struct WorkerEntry {
    pool: String,
    slots: u32,
    name: String,
    last_seen: Instant,
    /// Tasks to tell it to stop at its next heartbeat.
    stop: Vec<(String, u64)>,
}

struct TaskEntry {
    key: Key,
    pool: String,
    assignment: Assignment,
    /// The worker holding the lease, if any.
    worker: Option<String>,
    epoch: u64,
    metrics: Arc<StatementMetrics>,
    results: Option<Arc<ResultsBuffer>>,
    outcome: Option<oneshot::Sender<Outcome>>,
    /// Asked to stop: not to be leased again.
    revoked: bool,
    /// When the current lease was given.
    leased_at: Instant,
    /// Workers lost while holding it: a statement that takes down every
    /// worker it lands on fails instead of going round the pool forever.
    losses: u32,
    /// Put back after its worker was lost, and not leased again until its
    /// `PENDING` status is written (which must not land after the next
    /// worker's `RUNNING`).
    held_back: bool,
}

/// Workers a task may lose before its statement fails.
const MAX_LOSSES: u32 = 3;

/// A new task's handles for its supervisor.
pub(crate) struct Submitted {
    pub outcome: oneshot::Receiver<Outcome>,
}

impl Workers {
    pub fn new(config: WorkersConfig, store: Store) -> Workers {
        Workers {
            config,
            store,
            inner: Mutex::default(),
            changed: tokio::sync::Notify::new(),
        }
    }

    pub fn config(&self) -> &WorkersConfig {
        &self.config
    }

    /// Queues a statement's task for a worker of `pool`.
    pub(crate) fn submit(
        &self,
        key: Key,
        pool: String,
        assignment: Assignment,
        metrics: Arc<StatementMetrics>,
        results: Option<Arc<ResultsBuffer>>,
        max_cfu: usize,
    ) -> Submitted {
        let (tx, rx) = oneshot::channel();
        let task = assignment.task.clone();
        let mut g = self.inner.lock().unwrap();
        g.max_cfu.insert(pool.clone(), max_cfu);
        g.tasks.insert(
            task,
            TaskEntry {
                key,
                pool,
                assignment,
                worker: None,
                epoch: 0,
                metrics,
                results,
                outcome: Some(tx),
                revoked: false,
                leased_at: Instant::now(),
                losses: 0,
                held_back: false,
            },
        );
        drop(g);
        self.changed.notify_waiters();
        Submitted { outcome: rx }
    }

    /// Tasks of `pool` holding a lease: its CFU in use.
    pub fn current_cfu(&self, pool: &str) -> usize {
        let g = self.inner.lock().unwrap();
        g.tasks
            .values()
            .filter(|t| t.pool == pool && t.worker.is_some())
            .count()
    }

    /// Whether a worker holds `task`'s lease.
    pub fn is_leased(&self, task: &str) -> bool {
        let g = self.inner.lock().unwrap();
        g.tasks.get(task).is_some_and(|t| t.worker.is_some())
    }

    /// A pool's `max_cfu` changed: leases are given up to the new figure
    /// (tasks already running keep theirs when it shrinks).
    pub fn set_max_cfu(&self, pool: &str, max_cfu: usize) {
        let mut g = self.inner.lock().unwrap();
        if let Some(m) = g.max_cfu.get_mut(pool) {
            *m = max_cfu;
        }
        drop(g);
        self.changed.notify_waiters();
    }

    /// Asks a task to stop: its worker is told at its next heartbeat and
    /// reports when it has drained; a task no worker holds ends at once.
    pub(crate) fn revoke(&self, task: &str) {
        self.revoke_locked(task);
        self.changed.notify_waiters();
    }

    fn revoke_locked(&self, task: &str) {
        let mut g = self.inner.lock().unwrap();
        let Some(t) = g.tasks.get_mut(task) else {
            return;
        };
        t.revoked = true;
        match t.worker.clone() {
            Some(w) => {
                let stop = (task.to_string(), t.epoch);
                if let Some(w) = g.workers.get_mut(&w) {
                    w.stop.push(stop);
                }
            }
            None => {
                if let Some(mut t) = g.tasks.remove(task) {
                    if let Some(tx) = t.outcome.take() {
                        let _ = tx.send(Outcome::Stopped);
                    }
                }
            }
        }
    }

    /// Forgets a task without an outcome (its supervisor gave up waiting).
    pub(crate) fn forget(&self, task: &str) {
        self.inner.lock().unwrap().tasks.remove(task);
    }

    /// The worker running `task`, by name.
    pub fn worker_of(&self, task: &str) -> Option<String> {
        let g = self.inner.lock().unwrap();
        let w = g.tasks.get(task)?.worker.as_ref()?;
        g.workers.get(w).map(|w| w.name.clone())
    }

    fn register(&self, r: Register) -> Registered {
        let id = format!("wkr-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        self.inner.lock().unwrap().workers.insert(
            id.clone(),
            WorkerEntry {
                pool: r.pool,
                slots: r.slots.max(1),
                name: r.name,
                last_seen: Instant::now(),
                stop: vec![],
            },
        );
        Registered {
            worker_id: id,
            heartbeat_interval_ms: self.config.heartbeat_interval.as_millis() as u64,
            lease_timeout_ms: self.config.lease_timeout.as_millis() as u64,
        }
    }

    /// A heartbeat: `None` for a worker this server does not know.
    /// Returns the reply and the statements that just got a worker.
    fn heartbeat(&self, id: &str, hb: Heartbeat) -> Option<(HeartbeatReply, Vec<(Key, String)>)> {
        let mut g = self.inner.lock().unwrap();
        let Registry {
            workers,
            tasks,
            epochs,
            max_cfu,
        } = &mut *g;
        let w = workers.get_mut(id)?;
        w.last_seen = Instant::now();
        let mut reply = HeartbeatReply {
            stop: std::mem::take(&mut w.stop),
            start: vec![],
        };
        for s in &hb.tasks {
            match tasks.get(&s.task) {
                Some(t) if t.worker.as_deref() == Some(id) && t.epoch == s.epoch => {
                    t.metrics.set_from(&s.metrics);
                }
                // A task it runs under a lease it no longer holds.
                _ => reply.stop.push((s.task.clone(), s.epoch)),
            }
        }
        // A task leased to it that it does not report under that lease
        // (the reply that leased it was lost, or an older run of it was
        // still draining there) waits for a worker again.
        let grace = self.config.heartbeat_interval * 3;
        for t in tasks.values_mut() {
            if t.worker.as_deref() == Some(id)
                && t.leased_at.elapsed() > grace
                && !hb
                    .tasks
                    .iter()
                    .any(|s| s.task == t.assignment.task && s.epoch == t.epoch)
            {
                t.worker = None;
            }
        }
        let (pool, slots, name) = (w.pool.clone(), w.slots, w.name.clone());
        let held_by = |worker: &str| {
            tasks
                .values()
                .filter(|t| t.worker.as_deref() == Some(worker))
                .count()
        };
        let held = held_by(id);
        let mut free = (slots as usize).saturating_sub(held);
        // Spread: while other workers of the pool have room too, a worker
        // takes no more than its even share of the pool's tasks (running
        // and waiting), so that a parallel statement's tasks land on
        // several workers.
        let waiting = tasks
            .values()
            .filter(|t| t.worker.is_none() && !t.revoked && !t.held_back && t.pool == pool)
            .count();
        let with_room = workers
            .iter()
            .filter(|(wid, x)| x.pool == pool && held_by(wid) < x.slots as usize)
            .count()
            .max(1);
        let pool_in_use = tasks
            .values()
            .filter(|t| t.pool == pool && t.worker.is_some())
            .count();
        free = free.min(
            (waiting + pool_in_use)
                .div_ceil(with_room)
                .saturating_sub(held),
        );
        // And no more than the pool's max_cfu across its workers.
        let pool_max = max_cfu.get(&pool).copied().unwrap_or(usize::MAX);
        free = free.min(pool_max.saturating_sub(pool_in_use));
        let mut placed = vec![];
        let mut pending: Vec<&mut TaskEntry> = tasks
            .values_mut()
            .filter(|t| t.worker.is_none() && !t.revoked && !t.held_back && t.pool == pool)
            .collect();
        pending.sort_by(|a, b| {
            (&a.assignment.key, &a.assignment.task).cmp(&(&b.assignment.key, &b.assignment.task))
        });
        for t in pending {
            if free == 0 {
                break;
            }
            *epochs += 1;
            t.epoch = *epochs;
            t.worker = Some(id.to_string());
            t.leased_at = Instant::now();
            let mut a = t.assignment.clone();
            a.epoch = t.epoch;
            reply.start.push(a);
            placed.push((t.key.clone(), name.clone()));
            free -= 1;
        }
        Some((reply, placed))
    }

    /// Checks that `worker` holds `task`'s lease under `epoch`.
    fn lease(&self, task: &str, r: &TaskReport) -> Result<LeaseView, StatusCode> {
        let g = self.inner.lock().unwrap();
        match g.tasks.get(task) {
            Some(t) if t.worker.as_deref() == Some(&r.worker_id) && t.epoch == r.epoch => {
                Ok(LeaseView {
                    key: t.key.clone(),
                    results: t.results.clone(),
                })
            }
            _ => Err(StatusCode::CONFLICT),
        }
    }

    /// Ends a task with the outcome its worker reported.
    fn finish(&self, task: &str, r: &TaskReport, outcome: Outcome, m: &weir_api::StatementMetrics) {
        let mut g = self.inner.lock().unwrap();
        let holds = g
            .tasks
            .get(task)
            .is_some_and(|t| t.worker.as_deref() == Some(&r.worker_id) && t.epoch == r.epoch);
        if holds {
            if let Some(mut t) = g.tasks.remove(task) {
                t.metrics.set_from(m);
                if let Some(tx) = t.outcome.take() {
                    let _ = tx.send(outcome);
                }
            }
            drop(g);
            // A slot and a CFU of the pool are free.
            self.changed.notify_waiters();
        }
    }

    /// Drops workers silent for the lease timeout (or, with `leaving`,
    /// that one worker); their tasks wait for another worker (or end, if
    /// they were being stopped). Returns the statements that lost their
    /// worker.
    fn expire(&self, leaving: Option<&str>) -> Vec<(Key, String)> {
        let mut g = self.inner.lock().unwrap();
        let timeout = self.config.lease_timeout;
        let lost: Vec<(String, String)> = g
            .workers
            .iter()
            .filter(|(id, w)| match leaving {
                Some(l) => id.as_str() == l,
                None => w.last_seen.elapsed() > timeout,
            })
            .map(|(id, w)| (id.clone(), w.name.clone()))
            .collect();
        let mut moved = vec![];
        for (id, name) in lost {
            tracing::warn!(worker = %id, name = %name, "a worker stopped heartbeating; its tasks go to others");
            g.workers.remove(&id);
            let held: Vec<String> = g
                .tasks
                .iter()
                .filter(|(_, t)| t.worker.as_deref() == Some(id.as_str()))
                .map(|(k, _)| k.clone())
                .collect();
            for task in held {
                let Some(t) = g.tasks.get_mut(&task) else {
                    continue;
                };
                if leaving.is_none() {
                    t.losses += 1;
                }
                let end = if t.revoked {
                    Some(Outcome::Stopped)
                } else if t.losses >= MAX_LOSSES {
                    Some(Outcome::Failed(format!(
                        "the statement's worker was lost {MAX_LOSSES} times while running it (last: '{name}'); \
                         it may be taking its workers down: see the workers' logs"
                    )))
                } else {
                    None
                };
                match end {
                    Some(outcome) => {
                        if let Some(mut t) = g.tasks.remove(&task) {
                            if let Some(tx) = t.outcome.take() {
                                let _ = tx.send(outcome);
                            }
                        }
                    }
                    None => {
                        t.worker = None;
                        t.held_back = true;
                        moved.push((t.key.clone(), name.clone()));
                    }
                }
            }
        }
        moved
    }

    /// Drops lost workers every half heartbeat interval until cancelled.
    pub async fn run_expiry(self: Arc<Self>, cancel: tokio_util::sync::CancellationToken) {
        let every = (self.config.heartbeat_interval / 2).max(Duration::from_millis(50));
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let moved = self.expire(None);
            self.mark_moved(moved, "stopped heartbeating").await;
        }
    }

    /// Writes `PENDING` for tasks put back, then lets them be leased.
    async fn mark_moved(&self, moved: Vec<(Key, String)>, why: &str) {
        if moved.is_empty() {
            return;
        }
        for ((o, e, n), worker) in &moved {
            let detail = format!(
                "its worker '{worker}' {why}; waiting for another worker of the pool to restore it from its last checkpoint"
            );
            let _ = self
                .store
                .update_statement_status(o, e, n, Phase::Pending.as_str(), &detail)
                .await;
        }
        for t in self.inner.lock().unwrap().tasks.values_mut() {
            if moved.iter().any(|(k, _)| *k == t.key) {
                t.held_back = false;
            }
        }
        self.changed.notify_waiters();
    }

    /// Tasks per pool that need a slot (leased or waiting), for the
    /// provisioner.
    pub fn demand(&self) -> HashMap<String, usize> {
        let g = self.inner.lock().unwrap();
        let mut d: HashMap<String, usize> = HashMap::new();
        for t in g.tasks.values().filter(|t| !t.revoked) {
            *d.entry(t.pool.clone()).or_default() += 1;
        }
        for (pool, n) in d.iter_mut() {
            *n = (*n).min(g.max_cfu.get(pool).copied().unwrap_or(usize::MAX));
        }
        d
    }
}

struct LeaseView {
    key: Key,
    results: Option<Arc<ResultsBuffer>>,
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/internal/v1/workers", post(register))
        .route("/internal/v1/workers/{id}/heartbeat", post(heartbeat))
        .route("/internal/v1/workers/{id}/leave", post(leave))
        .route("/internal/v1/tasks/{task}/{kind}", post(report))
        .layer(DefaultBodyLimit::max(MAX_REPORT_BYTES))
}

/// The workers of this server, after checking the caller's credential.
fn authorized(state: &AppState, headers: &HeaderMap) -> Result<Arc<Workers>, ApiError> {
    let Some(workers) = state.scheduler.workers() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "this server runs statements itself and takes no workers (start it with --workers)",
        ));
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let want = workers.config.credential.as_bytes();
    // Compare in constant time: the hashes have one length.
    let (a, b) = (
        crate::auth::digest(given),
        crate::auth::digest(&workers.config.credential),
    );
    let same = a
        .bytes()
        .zip(b.bytes())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0;
    if !same || want.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a worker credential is required: this one is wrong or revoked",
        ));
    }
    Ok(workers)
}

/// A worker's JSON body, read only once its credential has been checked
/// (a caller without one cannot make the server buffer anything), up to
/// [`MAX_REPORT_BYTES`].
async fn read_body<T: serde::de::DeserializeOwned>(req: Request) -> Result<T, ApiError> {
    let bytes = axum::body::to_bytes(req.into_body(), MAX_REPORT_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("a worker's report is at most {MAX_REPORT_BYTES} bytes"),
            )
        })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("a malformed worker message: {e}")))
}

async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    req: Request,
) -> Result<Json<Registered>, ApiError> {
    let workers = authorized(&state, &headers)?;
    let r: Register = read_body(req).await?;
    if r.pool.is_empty() || r.slots == 0 {
        return Err(ApiError::bad_request(
            "a worker needs a pool and at least one slot",
        ));
    }
    tracing::info!(pool = %r.pool, slots = r.slots, name = %r.name, "a worker registered");
    Ok(Json(workers.register(r)))
}

async fn heartbeat(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    req: Request,
) -> Result<Json<HeartbeatReply>, ApiError> {
    let workers = authorized(&state, &headers)?;
    let hb: Heartbeat = read_body(req).await?;
    // With nothing to tell the worker, hold its heartbeat (up to one
    // interval) until there is: a new statement starts in milliseconds,
    // not at the next heartbeat.
    let changed = workers.changed.notified();
    tokio::pin!(changed);
    changed.as_mut().enable();
    let unknown = || ApiError::not_found(&format!("worker '{id}'"));
    let (mut reply, mut placed) = workers.heartbeat(&id, hb.clone()).ok_or_else(unknown)?;
    if reply.start.is_empty() && reply.stop.is_empty() {
        let interval = workers.config.heartbeat_interval;
        if tokio::time::timeout(interval, changed).await.is_ok() {
            (reply, placed) = workers.heartbeat(&id, hb).ok_or_else(unknown)?;
        }
    }
    for ((o, e, n), _) in placed {
        let _ = state
            .store
            .update_statement_status(&o, &e, &n, Phase::Running.as_str(), "")
            .await;
    }
    Ok(Json(reply))
}

/// A worker leaving its pool after draining its tasks: they wait for
/// other workers at once, not after the lease timeout.
async fn leave(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let workers = authorized(&state, &headers)?;
    let moved = workers.expire(Some(&id));
    workers.mark_moved(moved, "left its pool").await;
    Ok(StatusCode::NO_CONTENT)
}

async fn report(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((task, kind)): Path<(String, String)>,
    req: Request,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let workers = authorized(&state, &headers)?;
    let r: TaskReport = read_body(req).await?;
    let conflict = || {
        ApiError::new(
            StatusCode::CONFLICT,
            "lease_lost",
            format!(
                "worker '{}' does not hold task '{task}' under epoch {}",
                r.worker_id, r.epoch
            ),
        )
    };
    let lease = workers.lease(&task, &r).map_err(|_| conflict())?;
    let (o, e, n) = &lease.key;
    let store = &state.store;
    let expected = r.body.kind();
    if kind != expected {
        return Err(ApiError::bad_request(format!(
            "a '{expected}' report sent to /{kind}"
        )));
    }
    match &r.body {
        ReportBody::Offsets { topic, offsets } => {
            store.save_offsets(o, e, n, topic, offsets).await?;
        }
        ReportBody::Exception { message } => store.add_exception(o, e, n, message).await?,
        ReportBody::Degraded { detail } => {
            let (phase, detail) = match detail {
                Some(d) => (Phase::Degraded, d.as_str()),
                None => (Phase::Running, ""),
            };
            store
                .update_statement_status(o, e, n, phase.as_str(), detail)
                .await?;
        }
        ReportBody::Results { rows, complete } => {
            let Some(buf) = lease.results else {
                return Err(ApiError::bad_request("this task is not a SELECT"));
            };
            let idle = state.config.results_idle_timeout;
            if buf.idle_for() > idle {
                return Ok(StatusCode::GONE.into_response());
            }
            buf.push(rows.clone()).await;
            if *complete {
                buf.complete_part(&task);
            }
        }
        ReportBody::Finished { outcome, metrics } => {
            workers.finish(&task, &r, outcome.clone(), metrics);
        }
        ReportBody::Schema { id } => {
            let r = match SchemaRegistry::of(store, o, e).await {
                Ok(r) => r.resolved(*id as i64).await,
                Err(e) => Err(e),
            };
            let (schema, error) = match r {
                Ok(s) => (s, None),
                // The registry's failure is the statement's to report,
                // not a failed report.
                Err(e) => (None, Some(e.to_string())),
            };
            return Ok(axum::Json(SchemaAnswer {
                schema,
                id: None,
                error,
            })
            .into_response());
        }
        ReportBody::RegisterSchema {
            subject,
            schema_type,
            schema,
        } => {
            let r = match SchemaRegistry::of(store, o, e).await {
                Ok(r) => r.register(subject, *schema_type, schema, &[]).await,
                Err(e) => Err(e.into()),
            };
            let (id, error) = match r {
                Ok(id) => (Some(id as u32), None),
                Err(e) => (None, Some(e.to_string())),
            };
            return Ok(axum::Json(SchemaAnswer {
                schema: None,
                id,
                error,
            })
            .into_response());
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_compute_pool::worker::protocol::TaskStatus;

    async fn workers(lease_ms: u64) -> Workers {
        let db = std::env::temp_dir().join(format!("weir-workers-{}.db", uuid::Uuid::new_v4()));
        let store = Store::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        Workers::new(
            WorkersConfig {
                credential: "c".into(),
                lease_timeout: Duration::from_millis(lease_ms),
                heartbeat_interval: Duration::from_millis(10),
                processes: None,
            },
            store,
        )
    }

    fn assignment(task: &str) -> Assignment {
        Assignment {
            task: task.into(),
            epoch: 0,
            key: format!("o/e/{task}/u"),
            sql: "SELECT 1".into(),
            properties: Default::default(),
            context: weir_sql_gateway::CatalogContext {
                org: "o".into(),
                env_id: "e".into(),
                catalog: "c".into(),
                database: "d".into(),
                clusters: vec![],
                environments: vec![],
                tables: vec![],
                time_zone: "UTC".into(),
                bounded: false,
                snapshot: false,
                parallelism: None,
                max_parallelism: None,
                drop_subjects: false,
            },
            start_offsets: Default::default(),
            checkpoint_dir: None,
            results_idle_timeout_ms: 1,
            results_capacity: 1,
            default_memory_limit: 1,
            role: Default::default(),
        }
    }

    fn submit(w: &Workers, task: &str) -> oneshot::Receiver<Outcome> {
        let key = ("o".into(), "e".into(), task.into());
        w.submit(
            key,
            "pool".into(),
            assignment(task),
            Default::default(),
            None,
            100,
        )
        .outcome
    }

    fn register(w: &Workers, slots: u32) -> String {
        w.register(Register {
            pool: "pool".into(),
            slots,
            name: "w".into(),
        })
        .worker_id
    }

    fn beat(w: &Workers, id: &str, running: &[(&str, u64)]) -> HeartbeatReply {
        let hb = Heartbeat {
            tasks: running
                .iter()
                .map(|(t, e)| TaskStatus {
                    task: t.to_string(),
                    epoch: *e,
                    metrics: Default::default(),
                })
                .collect(),
        };
        w.heartbeat(id, hb).expect("a known worker").0
    }

    fn report(worker: &str, epoch: u64) -> TaskReport {
        TaskReport {
            worker_id: worker.into(),
            epoch,
            body: ReportBody::Exception {
                message: "x".into(),
            },
        }
    }

    #[tokio::test]
    async fn a_task_is_leased_to_one_worker_at_a_time_up_to_its_slots() {
        let w = workers(60_000).await;
        let _rx = ["t1", "t2", "t3"].map(|t| submit(&w, t));
        let a = register(&w, 2);
        let started = beat(&w, &a, &[]).start;
        assert_eq!(started.len(), 2, "two slots");
        assert!(started.iter().all(|s| s.epoch > 0));
        let b = register(&w, 2);
        let rest = beat(&w, &b, &[]).start;
        assert_eq!(rest.len(), 1);
        assert!(!started.iter().any(|s| s.task == rest[0].task));
        // Only the holder, under its epoch, may report.
        let t = &started[0];
        assert!(w.lease(&t.task, &report(&a, t.epoch)).is_ok());
        assert_eq!(
            w.lease(&t.task, &report(&b, t.epoch)).err(),
            Some(StatusCode::CONFLICT)
        );
        assert_eq!(
            w.lease(&t.task, &report(&a, t.epoch + 100)).err(),
            Some(StatusCode::CONFLICT)
        );
        assert!(w.heartbeat("wkr-unknown", Heartbeat::default()).is_none());
    }

    #[tokio::test]
    async fn a_lost_workers_task_moves_under_a_new_epoch_and_fails_after_three_losses() {
        let w = workers(30).await;
        let mut rx = submit(&w, "t");
        let mut last_epoch = 0;
        for loss in 1..=MAX_LOSSES {
            let id = register(&w, 1);
            let s = beat(&w, &id, &[]).start;
            assert_eq!(s.len(), 1, "loss {loss}: the task is leased again");
            assert!(s[0].epoch > last_epoch, "a new epoch");
            last_epoch = s[0].epoch;
            tokio::time::sleep(Duration::from_millis(60)).await;
            let moved = w.expire(None);
            // Put back until the last loss, which fails it.
            assert_eq!(moved.len(), usize::from(loss < MAX_LOSSES));
            w.mark_moved(moved, "was lost").await;
            assert_eq!(
                w.lease("t", &report(&id, last_epoch)).err(),
                Some(StatusCode::CONFLICT),
                "a lost worker's reports are refused"
            );
        }
        match rx.try_recv() {
            Ok(Outcome::Failed(m)) => assert!(m.contains("lost 3 times"), "{m}"),
            other => panic!("wanted a failure, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_leased_task_its_worker_does_not_report_is_leased_again() {
        let w = workers(60_000).await;
        let _rx = submit(&w, "t");
        let a = register(&w, 1);
        assert_eq!(beat(&w, &a, &[]).start.len(), 1);
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The reply was lost: the worker reports no task, and is given it
        // again under a new epoch.
        let again = beat(&w, &a, &[]).start;
        assert_eq!(again.len(), 1);
        assert!(again[0].epoch > 1);
    }

    #[tokio::test]
    async fn a_stopped_task_ends_when_its_worker_is_told_and_reports() {
        let w = workers(60_000).await;
        let mut rx = submit(&w, "t");
        let a = register(&w, 1);
        let t = beat(&w, &a, &[]).start.remove(0);
        w.revoke("t");
        assert_eq!(
            beat(&w, &a, &[("t", t.epoch)]).stop,
            vec![("t".to_string(), t.epoch)]
        );
        w.finish(
            "t",
            &report(&a, t.epoch),
            Outcome::Stopped,
            &Default::default(),
        );
        assert_eq!(rx.try_recv().ok(), Some(Outcome::Stopped));
        // Never leased again.
        let b = register(&w, 1);
        assert!(beat(&w, &b, &[]).start.is_empty());
    }

    #[tokio::test]
    async fn waiting_tasks_are_spread_over_the_workers_with_room() {
        let w = workers(60_000).await;
        let _rx: Vec<_> = ["t1", "t2", "t3", "t4"]
            .iter()
            .map(|t| submit(&w, t))
            .collect();
        let (a, b) = (register(&w, 4), register(&w, 4));
        let first = beat(&w, &a, &[]).start;
        assert_eq!(first.len(), 2, "an even share of four over two workers");
        let second = beat(&w, &b, &[]).start;
        assert_eq!(second.len(), 2, "the rest");
        let running = |v: &[Assignment]| -> Vec<(String, u64)> {
            v.iter().map(|s| (s.task.clone(), s.epoch)).collect()
        };
        let (on_a, on_b) = (running(&first), running(&second));
        fn refs(v: &[(String, u64)]) -> Vec<(&str, u64)> {
            v.iter().map(|(t, e)| (t.as_str(), *e)).collect()
        }
        // More waits: shared again among those with room.
        let _more: Vec<_> = ["t5", "t6", "t7"].iter().map(|t| submit(&w, t)).collect();
        let c = register(&w, 1);
        assert_eq!(beat(&w, &c, &[]).start.len(), 1, "its one slot");
        // c is full now: a and b share the pool's seven tasks.
        assert_eq!(beat(&w, &a, &refs(&on_a)).start.len(), 2, "its share");
        assert!(beat(&w, &b, &refs(&on_b)).start.is_empty(), "none left");
    }

    #[tokio::test]
    async fn a_pool_runs_no_more_tasks_than_its_max_cfu() {
        let w = workers(60_000).await;
        let key = |t: &str| ("o".to_string(), "e".to_string(), t.to_string());
        let _subs: Vec<Submitted> = ["t1", "t2", "t3"]
            .iter()
            .map(|t| {
                w.submit(
                    key(t),
                    "pool".into(),
                    assignment(t),
                    Default::default(),
                    None,
                    2,
                )
            })
            .collect();
        let a = register(&w, 4);
        let started = beat(&w, &a, &[]).start;
        assert_eq!(started.len(), 2, "max_cfu 2, though 4 slots are free");
        assert_eq!(w.current_cfu("pool"), 2);
        assert_eq!(
            w.demand()["pool"],
            2,
            "the provisioner sizes for max_cfu, not the queue"
        );
        let running: Vec<(&str, u64)> =
            started.iter().map(|s| (s.task.as_str(), s.epoch)).collect();
        assert!(beat(&w, &a, &running).start.is_empty(), "still at max_cfu");
    }
}
