//! `weir worker`: one member of a compute pool. It registers with the
//! control plane, heartbeats, runs the tasks it is leased on the local
//! [`Worker`](crate::Worker), and reports their offsets, exceptions,
//! results and outcome through the internal API ([`super::protocol`]). It
//! never reads the store; it talks to the control plane, Kafka and the
//! checkpoint folder only.
//!
//! A worker that cannot reach the control plane for its lease timeout
//! stops its tasks: by then the server has given them to another worker.
//! A report the server refuses (409: the lease moved) fails the task here,
//! so its output is never committed under a lease it lost.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use reqwest::StatusCode;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use weir_sql_gateway::Planner;

use super::protocol::{
    Assignment, Heartbeat, HeartbeatReply, Register, Registered, ReportBody, TaskReport, TaskStatus,
};
use crate::{Outcome, StatementEvents, StatementMetrics, Worker};

/// Errors that end a worker process.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("the control plane at {url} refused this worker's credential (401): check --credential-file or WEIR_WORKER_CREDENTIAL")]
    Unauthorized { url: String },
    #[error("the control plane at {url} refused to register this worker: {status} {body}")]
    Refused {
        url: String,
        status: u16,
        body: String,
    },
}

/// How a `weir worker` process joins its pool.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// The control plane's URL, e.g. `http://127.0.0.1:8080`.
    pub control_plane: String,
    pub pool: String,
    pub slots: u32,
    pub credential: String,
    /// For logs and the statement's status.
    pub name: String,
}

/// A task this worker runs.
struct Local {
    epoch: u64,
    cancel: CancellationToken,
    metrics: Arc<StatementMetrics>,
}

struct Client {
    http: reqwest::Client,
    base: String,
    credential: String,
}

impl Client {
    async fn post<B: Serialize>(&self, path: &str, body: &B) -> reqwest::Result<reqwest::Response> {
        self.http
            .post(format!("{}/internal/v1/{path}", self.base))
            .bearer_auth(&self.credential)
            .json(body)
            .send()
            .await
    }
}

/// Runs the worker until `cancel`: registers (again whenever the server
/// forgets it), heartbeats, starts and stops tasks.
pub async fn run(config: RemoteConfig, cancel: CancellationToken) -> Result<(), RemoteError> {
    let client = Arc::new(Client {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(600))
            .build()
            .expect("an HTTP client builds"),
        base: config.control_plane.trim_end_matches('/').to_string(),
        credential: config.credential.clone(),
    });
    let planner = Arc::new(Planner::new());
    let tasks: Arc<Mutex<HashMap<String, Local>>> = Default::default();
    let mut last_id = None;
    while !cancel.is_cancelled() {
        let Some(reg) = register(&client, &config, &cancel).await? else {
            break;
        };
        tracing::info!(worker = %reg.worker_id, pool = %config.pool, "registered");
        last_id = Some(reg.worker_id.clone());
        let beat = Duration::from_millis(reg.heartbeat_interval_ms.max(50));
        let lease = Duration::from_millis(reg.lease_timeout_ms);
        let mut last_ok = Instant::now();
        // The server holds a heartbeat it has nothing to answer for up to
        // an interval: the next goes at once, except after a failure.
        let mut pause = Duration::ZERO;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
            }
            pause = beat;
            let hb = Heartbeat {
                tasks: tasks
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|(t, l)| TaskStatus {
                        task: t.clone(),
                        epoch: l.epoch,
                        metrics: l.metrics.snapshot(),
                    })
                    .collect(),
            };
            let path = format!("workers/{}/heartbeat", reg.worker_id);
            let reply = tokio::select! {
                _ = cancel.cancelled() => break,
                r = client.post(&path, &hb) => r,
            };
            match reply {
                Ok(r) if r.status() == StatusCode::OK => {
                    last_ok = Instant::now();
                    // The server answers at once only with work, else
                    // after holding it an interval: no pause either way.
                    pause = Duration::ZERO;
                    let reply = match r.json::<HeartbeatReply>().await {
                        Ok(reply) => reply,
                        Err(e) => {
                            tracing::error!(error = %e, "the control plane's heartbeat reply could not be read");
                            continue;
                        }
                    };
                    for (task, epoch) in reply.stop {
                        if let Some(l) = tasks.lock().unwrap().get(&task) {
                            if l.epoch == epoch {
                                l.cancel.cancel();
                            }
                        }
                    }
                    for a in reply.start {
                        start_task(&client, &planner, &tasks, &reg.worker_id, a);
                    }
                }
                Ok(r) if r.status() == StatusCode::NOT_FOUND => {
                    tracing::warn!(worker = %reg.worker_id, "the control plane no longer knows this worker: stopping its tasks and registering again");
                    stop_all(&tasks);
                    break;
                }
                Ok(r) if r.status() == StatusCode::UNAUTHORIZED => {
                    stop_all(&tasks);
                    return Err(RemoteError::Unauthorized {
                        url: client.base.clone(),
                    });
                }
                other => {
                    if let Err(e) = other {
                        tracing::warn!(error = %e, "heartbeat failed");
                    }
                    if last_ok.elapsed() > lease {
                        tracing::warn!("no heartbeat answered for the lease timeout: stopping this worker's tasks, which the control plane has given to others");
                        stop_all(&tasks);
                        break;
                    }
                }
            }
        }
    }
    // Leaving: the tasks drain (committing what they wrote) without
    // reporting an outcome, and the server gives them to other workers.
    LEAVING.store(true, Ordering::Release);
    stop_all(&tasks);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !tasks.lock().unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if let Some(id) = last_id {
        let _ = client.post(&format!("workers/{id}/leave"), &()).await;
    }
    Ok(())
}

/// The worker is leaving its pool: its stopped tasks are handed back, not
/// ended.
static LEAVING: AtomicBool = AtomicBool::new(false);

fn stop_all(tasks: &Mutex<HashMap<String, Local>>) {
    for l in tasks.lock().unwrap().values() {
        l.cancel.cancel();
    }
}

/// Registers, retrying while the control plane cannot be reached; `None`
/// when cancelled first.
async fn register(
    client: &Client,
    config: &RemoteConfig,
    cancel: &CancellationToken,
) -> Result<Option<Registered>, RemoteError> {
    let body = Register {
        pool: config.pool.clone(),
        slots: config.slots,
        name: config.name.clone(),
    };
    let mut wait = Duration::from_millis(100);
    loop {
        match client.post("workers", &body).await {
            Ok(r) if r.status().is_success() => {
                if let Ok(reg) = r.json::<Registered>().await {
                    return Ok(Some(reg));
                }
            }
            Ok(r) if r.status() == StatusCode::UNAUTHORIZED => {
                return Err(RemoteError::Unauthorized {
                    url: client.base.clone(),
                })
            }
            Ok(r) if r.status().is_client_error() => {
                return Err(RemoteError::Refused {
                    url: client.base.clone(),
                    status: r.status().as_u16(),
                    body: r.text().await.unwrap_or_default(),
                })
            }
            Ok(r) => tracing::warn!(status = %r.status(), "registering failed; retrying"),
            Err(e) => tracing::warn!(error = %e, "cannot reach the control plane; retrying"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return Ok(None),
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(Duration::from_secs(2));
    }
}

/// Reports of one task, sent to the control plane under its lease.
struct HttpEvents {
    client: Arc<Client>,
    task: String,
    worker_id: String,
    epoch: u64,
    /// The server refused a report: the lease moved.
    lost: Arc<AtomicBool>,
}

impl HttpEvents {
    /// Posts a report until the control plane answers something other than
    /// a server error (backing off between tries); a 409 means the lease is
    /// lost.
    async fn deliver(&self, body: ReportBody) -> Result<reqwest::Response, String> {
        let kind = body.kind();
        let report = TaskReport {
            worker_id: self.worker_id.clone(),
            epoch: self.epoch,
            body,
        };
        let mut wait = Duration::from_millis(100);
        for _ in 0..8 {
            match self
                .client
                .post(&format!("tasks/{}/{kind}", self.task), &report)
                .await
            {
                Ok(r) if r.status() == StatusCode::CONFLICT => {
                    self.lost.store(true, Ordering::Release);
                    return Err(format!(
                        "this worker no longer holds task {}'s lease; its output is not committed",
                        self.task
                    ));
                }
                Ok(r) if r.status().is_server_error() => {}
                Ok(r) => return Ok(r),
                Err(e) => {
                    tracing::warn!(error = %e, "reporting to the control plane failed; retrying")
                }
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
        }
        Err("the control plane cannot be reached to report progress".into())
    }

    async fn send(&self, body: ReportBody) -> Result<StatusCode, String> {
        Ok(self.deliver(body).await?.status())
    }

    /// A report the control plane answers with a [`SchemaAnswer`].
    async fn ask(&self, body: ReportBody) -> Result<crate::worker::protocol::SchemaAnswer, String> {
        let r = self.deliver(body).await?;
        if !r.status().is_success() {
            return Err(format!("the control plane refused: {}", r.status()));
        }
        r.json().await.map_err(|e| e.to_string())
    }
}

impl StatementEvents for HttpEvents {
    fn schema<'a>(
        &'a self,
        id: u32,
    ) -> BoxFuture<'a, Result<Option<weir_catalog::registry::RegisteredSchema>, String>> {
        Box::pin(async move {
            let a = self.ask(ReportBody::Schema { id }).await?;
            match (a.schema, a.error) {
                (_, Some(e)) => Err(e),
                (s, None) => Ok(s),
            }
        })
    }

    fn register_schema<'a>(
        &'a self,
        subject: &'a str,
        schema_type: weir_catalog::registry::SchemaType,
        schema: &'a str,
    ) -> BoxFuture<'a, Result<u32, String>> {
        Box::pin(async move {
            let a = self
                .ask(ReportBody::RegisterSchema {
                    subject: subject.to_string(),
                    schema_type,
                    schema: schema.to_string(),
                })
                .await?;
            match (a.id, a.error) {
                (Some(id), _) => Ok(id),
                (None, Some(e)) => Err(e),
                (None, None) => Err("the control plane registered nothing".into()),
            }
        })
    }

    fn commit<'a>(
        &'a self,
        topic: &'a str,
        offsets: &'a [(i32, i64)],
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.send(ReportBody::Offsets {
                topic: topic.to_string(),
                offsets: offsets.to_vec(),
            })
            .await
            .map(|_| ())
        })
    }

    fn exception<'a>(&'a self, message: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let _ = self
                .send(ReportBody::Exception {
                    message: message.to_string(),
                })
                .await;
        })
    }

    fn degraded<'a>(&'a self, detail: Option<&'a str>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let _ = self
                .send(ReportBody::Degraded {
                    detail: detail.map(str::to_string),
                })
                .await;
        })
    }
}

/// Rows a results report carries at most.
const RESULTS_PAGE_ROWS: usize = 2048;

fn start_task(
    client: &Arc<Client>,
    planner: &Arc<Planner>,
    tasks: &Arc<Mutex<HashMap<String, Local>>>,
    worker_id: &str,
    mut a: Assignment,
) {
    let task = a.task.clone();
    let cancel = CancellationToken::new();
    let metrics = Arc::new(StatementMetrics::default());
    {
        let mut t = tasks.lock().unwrap();
        if let Some(old) = t.get(&task) {
            // An earlier run is still draining (same consumer group and
            // transactional id): not both at once. The server leases it
            // again once that run has ended.
            tracing::info!(task = %task, running = old.epoch, offered = a.epoch, "task still draining here");
            return;
        }
        t.insert(
            task.clone(),
            Local {
                epoch: a.epoch,
                cancel: cancel.clone(),
                metrics: metrics.clone(),
            },
        );
    }
    let events = Arc::new(HttpEvents {
        client: client.clone(),
        task: task.clone(),
        worker_id: worker_id.to_string(),
        epoch: a.epoch,
        lost: Default::default(),
    });
    let (planner, tasks) = (planner.clone(), tasks.clone());
    tokio::spawn(async move {
        tracing::info!(task = %task, epoch = a.epoch, statement = %a.key, "starting a task");
        // The server forwards results and stops an unread SELECT itself.
        a.results_idle_timeout_ms = u64::MAX / 4;
        let outcome = run_task(a, &planner, events.clone(), cancel, metrics.clone()).await;
        tracing::info!(task = %task, outcome = ?outcome, "task ended");
        if !events.lost.load(Ordering::Acquire) && !LEAVING.load(Ordering::Acquire) {
            let _ = events
                .send(ReportBody::Finished {
                    outcome: outcome.clone(),
                    metrics: metrics.snapshot(),
                })
                .await;
        }
        tasks.lock().unwrap().remove(&task);
    });
}

/// Plans and runs one task to its end, forwarding a `SELECT`'s results.
async fn run_task(
    a: Assignment,
    planner: &Arc<Planner>,
    events: Arc<HttpEvents>,
    cancel: CancellationToken,
    metrics: Arc<StatementMetrics>,
) -> Outcome {
    let (sql, ctx, p) = (a.sql.clone(), a.context.clone(), planner.clone());
    // On the planner's large stack, as the server plans: the deepest
    // expression it accepted must not overflow a worker's.
    let planned = tokio::task::spawn_blocking(move || {
        weir_sql_gateway::limits::on_planner_stack(|| weir_sql_gateway::replan(&p, &sql, &ctx))
    })
    .await;
    let plan = match planned {
        Ok(Ok(Ok(plan))) => plan,
        Ok(Ok(Err(e))) => return Outcome::Failed(e.to_string()),
        Ok(Err(crash)) => {
            return Outcome::Failed(format!(
                "Weir failed while planning this statement ({crash}); this is a bug in Weir, not in the SQL"
            ))
        }
        Err(e) => return Outcome::Failed(format!("the planner thread failed: {e}")),
    };
    let task = match a.into_task(plan, events.clone()) {
        Ok(t) => t,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let running = Worker.start(task);
    let (stop, handle, results, m) = running.into_parts();
    // Mirror the statement's counters into the ones heartbeats report.
    let mirror = {
        let (m, metrics) = (m.clone(), metrics.clone());
        tokio::spawn(async move {
            loop {
                metrics.set_from(&m.snapshot());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let forward = results.clone().map(|buf| {
        let (events, stop) = (events.clone(), stop.clone());
        tokio::spawn(async move {
            let mut from = 0;
            loop {
                let page = buf.page(from, RESULTS_PAGE_ROWS);
                let complete = page.next.is_none();
                if !page.rows.is_empty() || complete {
                    from = page.next.unwrap_or(from);
                    match events
                        .send(ReportBody::Results {
                            rows: page.rows,
                            complete,
                        })
                        .await
                    {
                        Ok(StatusCode::GONE) => {
                            // Nobody reads the results: stop.
                            stop.cancel();
                            buf.close();
                            return true;
                        }
                        Err(_) => {
                            stop.cancel();
                            buf.close();
                            return false;
                        }
                        Ok(_) => {}
                    }
                    if complete {
                        return false;
                    }
                } else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        })
    });
    let stopper = {
        let (cancel, stop, results) = (cancel.clone(), stop.clone(), results.clone());
        tokio::spawn(async move {
            cancel.cancelled().await;
            stop.cancel();
            if let Some(r) = results {
                r.close();
            }
        })
    };
    let mut outcome = handle.await;
    if let Some(f) = forward {
        if let Some(r) = &results {
            // A statement that ended without completing its results
            // (stopped, failed) still sends what it had, then ends them.
            r.complete();
        }
        if f.await.unwrap_or(false) {
            outcome = Outcome::ResultsAbandoned;
        }
    }
    stopper.abort();
    mirror.abort();
    metrics.set_from(&m.snapshot());
    outcome
}
