//! Placement and supervision of statements.
//!
//! A server either runs statements on its own local worker (`weir dev`, and
//! `weir server` without `--workers`) or places each on a compute pool's
//! `weir worker` processes ([`crate::workers`]). Either way the scheduler
//! plans the statement again from its stored SQL and properties (so a
//! restart needs nothing but the store, and a bad statement fails here, not
//! on a worker), starts it from its stored offsets, and turns the outcome
//! into the statement's phase.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio_util::sync::CancellationToken;
use weir_api::{Phase, StatementSpec};
use weir_catalog::registry::SchemaRegistry;
use weir_catalog::Store;
use weir_compute_pool::worker::protocol::Assignment;
use weir_compute_pool::{Outcome, ResultsBuffer, StatementEvents, StatementMetrics, Worker};
use weir_sql_gateway::{replan, CatalogContext, Planner, SinkSpec};

use crate::workers::{Key, Workers};
use crate::{ApiError, ServerConfig};

struct Entry {
    cancel: CancellationToken,
    supervisor: tokio::task::JoinHandle<()>,
    results: Option<Arc<ResultsBuffer>>,
    /// Each task's counters.
    metrics: Vec<Arc<StatementMetrics>>,
    /// The statement's tasks (one, unless it has `'sql.parallelism'`), and
    /// the keyed operator of a parallel one.
    tasks: Vec<Assignment>,
    operator: Option<&'static str>,
    /// The compute pool it runs on, and its uid (usage is metered by it).
    pool: String,
    uid: String,
    /// An autoscaled statement's input partitions per stage name.
    autoscaled: Option<Vec<(String, u32)>>,
}

/// The task slots one statement holds now.
#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    pub org: String,
    pub env: String,
    pub name: String,
    pub uid: String,
    pub pool: String,
    pub cfu: usize,
}

impl Entry {
    /// Asks the statement to stop; a `SELECT` waiting for a reader to make
    /// room in its results stops waiting.
    fn stop(&self) {
        self.cancel.cancel();
        if let Some(r) = &self.results {
            r.close();
        }
    }
}

#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    planner: Arc<Planner>,
    config: Arc<ServerConfig>,
    worker: Worker,
    running: Mutex<HashMap<Key, Entry>>,
    planning: crate::planning::PlanningGates,
    /// Where statements run when not on the local worker.
    workers: Option<Arc<Workers>>,
}

/// Reports of one statement, written to the store.
struct StoreEvents {
    store: Store,
    key: Key,
}

impl StatementEvents for StoreEvents {
    fn schema<'a>(
        &'a self,
        id: u32,
    ) -> BoxFuture<'a, Result<Option<weir_catalog::registry::RegisteredSchema>, String>> {
        async move {
            let (o, e, _) = &self.key;
            SchemaRegistry::of(&self.store, o, e)
                .await
                .map_err(|e| e.to_string())?
                .resolved(id as i64)
                .await
                .map_err(|e| e.to_string())
        }
        .boxed()
    }

    fn register_schema<'a>(
        &'a self,
        subject: &'a str,
        schema_type: weir_catalog::registry::SchemaType,
        schema: &'a str,
    ) -> BoxFuture<'a, Result<u32, String>> {
        async move {
            let (o, e, _) = &self.key;
            SchemaRegistry::of(&self.store, o, e)
                .await
                .map_err(|e| e.to_string())?
                .register(subject, schema_type, schema, &[])
                .await
                .map(|id| id as u32)
                .map_err(|e| e.to_string())
        }
        .boxed()
    }

    fn commit<'a>(
        &'a self,
        topic: &'a str,
        offsets: &'a [(i32, i64)],
    ) -> BoxFuture<'a, Result<(), String>> {
        async move {
            let (o, e, n) = &self.key;
            self.store
                .save_offsets(o, e, n, topic, offsets)
                .await
                .map_err(|e| e.to_string())
        }
        .boxed()
    }

    fn degraded<'a>(&'a self, detail: Option<&'a str>) -> BoxFuture<'a, ()> {
        async move {
            let (o, e, n) = &self.key;
            let (phase, detail) = match detail {
                Some(d) => (Phase::Degraded, d),
                None => (Phase::Running, ""),
            };
            if let Err(err) = self
                .store
                .update_statement_status(o, e, n, phase.as_str(), detail)
                .await
            {
                tracing::warn!(error = %err, "cannot record a statement's phase");
            }
        }
        .boxed()
    }

    fn exception<'a>(&'a self, message: &'a str) -> BoxFuture<'a, ()> {
        async move {
            let (o, e, n) = &self.key;
            if let Err(err) = self.store.add_exception(o, e, n, message).await {
                tracing::warn!(error = %err, "cannot store a statement exception");
            }
        }
        .boxed()
    }
}

/// The rows and bytes a `SELECT`'s results buffer on the server holds
/// before its tasks wait for a reader.
fn results_limits(config: &ServerConfig) -> (usize, usize) {
    (
        config.results_capacity,
        (64usize << 20).min((config.statement_memory_limit / 2) as usize),
    )
}

impl Scheduler {
    pub fn new(
        store: Store,
        planner: Arc<Planner>,
        config: Arc<ServerConfig>,
        workers: Option<Arc<Workers>>,
    ) -> Scheduler {
        Scheduler {
            inner: Arc::new(Inner {
                store,
                planner,
                config,
                worker: Worker,
                running: Mutex::new(HashMap::new()),
                planning: Default::default(),
                workers,
            }),
        }
    }

    /// Starts (or resumes) a stored statement and marks it RUNNING.
    pub async fn start(&self, org: &str, env: &str, name: &str) -> Result<(), ApiError> {
        let inner = &self.inner;
        let key: Key = (org.to_string(), env.to_string(), name.to_string());
        if inner.running.lock().unwrap().contains_key(&key) {
            return Ok(());
        }
        let rec = inner
            .store
            .get_statement(org, env, name)
            .await?
            .ok_or_else(|| ApiError::not_found(&format!("statement '{name}'")))?;
        let spec: StatementSpec = serde_json::from_str(&rec.spec)
            .map_err(|e| ApiError::internal(format!("stored spec: {e}")))?;
        let ctx = CatalogContext::load(&inner.store, org, env, &spec.properties).await?;
        let planner = inner.planner.clone();
        let sql = spec.statement.clone();
        let ctx_for_tasks = ctx.clone();
        let (plan, ctx) = crate::planning::isolated(&inner.planning, org, move || {
            (replan(&planner, &sql, &ctx), ctx)
        })
        .await
        .map_err(|crash| {
            ApiError::internal(format!(
                "Weir failed while planning this statement ({crash}); this is a bug in Weir, \
                     not in the SQL"
            ))
        })?;
        let plan = plan?;
        let mut start_offsets: HashMap<String, HashMap<i32, i64>> = HashMap::new();
        for (topic, p, o) in inner.store.load_offsets(org, env, name).await? {
            start_offsets.entry(topic).or_default().insert(p, o);
        }
        let is_select = matches!(plan.sink, SinkSpec::Results);
        let uid = rec.uid.clone();
        let assignment = Assignment {
            task: rec.uid.clone(),
            epoch: 0,
            key: format!("{org}/{env}/{name}/{}", rec.uid),
            sql: spec.statement.clone(),
            properties: spec.properties.clone(),
            context: ctx,
            start_offsets,
            checkpoint_dir: inner.config.checkpoint_dir.clone(),
            results_idle_timeout_ms: inner.config.results_idle_timeout.as_millis() as u64,
            results_capacity: inner.config.results_capacity,
            default_memory_limit: inner.config.statement_memory_limit,
            role: Default::default(),
        };
        let shape = weir_sql_gateway::stages::Shape::of(&plan);
        let operator = match &shape {
            weir_sql_gateway::stages::Shape::Keyed { operator, .. } => Some(*operator),
            _ => None,
        };
        let setting = weir_sql_gateway::stages::parallelism_setting(&spec.properties)
            .unwrap_or(weir_sql_gateway::stages::ParallelismSetting::Unset);
        let stored = inner.store.scaling_status(org, env, name, &uid).await?;
        let kept_whole = setting != weir_sql_gateway::stages::ParallelismSetting::Unset
            && crate::scaling::kept_whole(&shape, stored.as_deref());
        let (mode, why) = match kept_whole {
            true => (
                crate::scaling::FIXED,
                format!("runs as one task: {}", crate::scaling::KEPT_WHOLE),
            ),
            false => crate::scaling::mode(&shape, setting, is_select),
        };
        let mut scaling: weir_api::ScalingStatus = stored
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default();
        scaling.mode = mode.to_string();
        scaling.detail = why;
        let counts = (mode == crate::scaling::AUTO)
            .then(|| crate::scaling::counts(&scaling, &shape, operator))
            .flatten();
        let tasks = match kept_whole {
            true => vec![assignment],
            false => {
                crate::parallel::tasks(assignment, &plan, &ctx_for_tasks, &uid, counts).await?
            }
        };
        scaling.parallelism = crate::parallel::stage_counts(&tasks, operator);
        scaling.split = tasks.iter().any(|t| t.role != Default::default());
        let autoscaled = match mode {
            crate::scaling::AUTO => Some(
                crate::parallel::stage_partitions(&plan, &ctx_for_tasks, &tasks, operator).await,
            ),
            _ => None,
        };
        inner
            .store
            .set_scaling_status(
                org,
                env,
                name,
                &uid,
                &serde_json::to_string(&scaling).expect("serializes"),
            )
            .await?;
        let pool = rec
            .compute_pool_id
            .clone()
            .unwrap_or_else(|| crate::dev::DEV_POOL.to_string());
        if let Some(workers) = &inner.workers {
            return self
                .place(
                    key,
                    (pool, uid, autoscaled),
                    (tasks, operator),
                    is_select,
                    workers.clone(),
                )
                .await;
        }
        let events: Arc<dyn StatementEvents> = Arc::new(StoreEvents {
            store: inner.store.clone(),
            key: key.clone(),
        });
        let mut runnable = Vec::with_capacity(tasks.len());
        for a in &tasks {
            runnable.push(
                a.clone()
                    .into_task(plan.clone(), events.clone())
                    .map_err(|e| ApiError::bad_request(e.to_string()))?,
            );
        }
        inner
            .store
            .update_statement_status(org, env, name, Phase::Running.as_str(), "")
            .await?;
        let cancel = CancellationToken::new();
        let mut handles = vec![];
        let mut metrics = vec![];
        // A SELECT of several tasks gathers their rows in one buffer.
        let shared = (is_select && runnable.len() > 1).then(|| {
            let (rows, bytes) = results_limits(&inner.config);
            let buffer = match plan.is_bounded() && !plan.root.is_append_only() {
                true => ResultsBuffer::final_result(rows, bytes),
                false => ResultsBuffer::new(rows, bytes),
            };
            Arc::new(buffer.with_parts(runnable.len()))
        });
        let mut results = None;
        for task in runnable {
            let running = inner.worker.start_into(task, shared.clone());
            let (c, handle, r, m) = running.into_parts();
            let parent = cancel.clone();
            tokio::spawn(async move {
                parent.cancelled().await;
                c.cancel();
            });
            handles.push(handle);
            metrics.push(m);
            results = results.or(r);
        }
        let this = self.clone();
        let k = key.clone();
        let m = metrics.clone();
        let (c, r) = (cancel.clone(), results.clone());
        let span = statement_span(&key, &pool);
        let supervisor = tokio::spawn(tracing::Instrument::instrument(
            async move {
                let outcome = first_failure(handles, || {
                    c.cancel();
                    if let Some(r) = &r {
                        r.close();
                    }
                })
                .await;
                this.finished(&k, outcome, &m, is_select).await;
            },
            span,
        ));
        self.keep(
            key,
            Entry {
                cancel,
                supervisor,
                results,
                metrics,
                tasks,
                operator,
                pool,
                uid,
                autoscaled,
            },
        );
        Ok(())
    }

    /// Keeps a started statement's handles until it ends.
    fn keep(&self, key: Key, entry: Entry) {
        self.inner.running.lock().unwrap().insert(key, entry);
    }

    /// The workers statements are placed on; `None`: the local worker.
    pub fn workers(&self) -> Option<Arc<Workers>> {
        self.inner.workers.clone()
    }

    /// Places a planned statement on `pool`'s workers: it is PENDING until
    /// one with a free slot takes it, and a supervisor turns the outcome
    /// its worker reports into its phase.
    async fn place(
        &self,
        key: Key,
        (pool, uid, autoscaled): (String, String, Option<Vec<(String, u32)>>),
        (tasks, operator): (Vec<Assignment>, Option<&'static str>),
        is_select: bool,
        workers: Arc<Workers>,
    ) -> Result<(), ApiError> {
        let (o, e, n) = key.clone();
        let ids: Vec<String> = tasks.iter().map(|a| a.task.clone()).collect();
        let config = &self.inner.config;
        let results = is_select.then(|| {
            let (rows, bytes) = results_limits(config);
            Arc::new(ResultsBuffer::new(rows, bytes).with_parts(tasks.len()))
        });
        let metrics: Vec<Arc<StatementMetrics>> = tasks.iter().map(|_| Arc::default()).collect();
        let max_cfu = self
            .inner
            .store
            .get_pool(&o, &e, &pool)
            .await?
            .map_or(usize::MAX, |p| p.max_cfu.max(0) as usize);
        // PENDING first: a worker's heartbeat may lease it at once.
        let in_use = workers.current_cfu(&pool);
        let detail = if in_use + tasks.len() > max_cfu {
            format!(
                "compute pool '{pool}' has {in_use} of its max_cfu of {max_cfu} in use (one CFU per task) and this statement needs {}; waiting for statements to end, or raise max_cfu",
                tasks.len()
            )
        } else {
            format!("waiting for a worker of compute pool '{pool}' with a free slot")
        };
        self.inner
            .store
            .update_statement_status(&o, &e, &n, Phase::Pending.as_str(), &detail)
            .await?;
        let mut outcomes = vec![];
        for (a, m) in tasks.iter().zip(&metrics) {
            let submitted = workers.submit(
                key.clone(),
                pool.clone(),
                a.clone(),
                m.clone(),
                results.clone(),
                max_cfu,
            );
            outcomes.push(submitted.outcome);
        }
        let cancel = CancellationToken::new();
        let (this, k, m, c, r) = (
            self.clone(),
            key.clone(),
            metrics.clone(),
            cancel.clone(),
            results.clone(),
        );
        let idle_timeout = config.results_idle_timeout;
        // A stopped statement's worker drains before it reports; past this
        // the statement counts as stopped anyway.
        let drain = workers.config().lease_timeout * 2 + Duration::from_secs(30);
        let span = statement_span(&key, &pool);
        let supervisor = tokio::spawn(tracing::Instrument::instrument(
            async move {
                let revoke_all = || {
                    for t in &ids {
                        workers.revoke(t);
                    }
                };
                let mut pending: futures::stream::FuturesUnordered<_> = outcomes
                    .into_iter()
                    .map(|rx| async move { rx.await.unwrap_or(Outcome::Stopped) })
                    .collect();
                let mut done = vec![];
                let mut abandoned = false;
                let mut failing = false;
                let outcome = loop {
                    tokio::select! {
                        o = futures::StreamExt::next(&mut pending) => match o {
                            None => break combine(done),
                            Some(o) => {
                                // The first task to fail stops the others.
                                if matches!(o, Outcome::Failed(_)) && !failing {
                                    failing = true;
                                    revoke_all();
                                }
                                done.push(o);
                            }
                        },
                        _ = c.cancelled() => {
                            revoke_all();
                            let rest = futures::StreamExt::collect::<Vec<_>>(&mut pending);
                            break match tokio::time::timeout(drain, rest).await {
                                Ok(rest) => {
                                    done.extend(rest);
                                    combine(done)
                                }
                                Err(_) => {
                                    for t in &ids {
                                        workers.forget(t);
                                    }
                                    Outcome::Stopped
                                }
                            };
                        }
                        _ = tokio::time::sleep(Duration::from_secs(1)), if r.is_some() && !abandoned => {
                            if r.as_ref().is_some_and(|r| r.idle_for() > idle_timeout) {
                                abandoned = true;
                                revoke_all();
                            }
                        }
                    }
                };
                let outcome = match outcome {
                    Outcome::Stopped if abandoned => Outcome::ResultsAbandoned,
                    o => o,
                };
                this.finished(&k, outcome, &m, is_select).await;
            },
            span,
        ));
        self.keep(
            key,
            Entry {
                cancel,
                supervisor,
                results,
                metrics,
                tasks,
                operator,
                pool,
                uid,
                autoscaled,
            },
        );
        Ok(())
    }

    async fn finished(
        &self,
        key: &Key,
        outcome: Outcome,
        metrics: &[Arc<StatementMetrics>],
        is_select: bool,
    ) {
        let (o, e, n) = key;
        let store = &self.inner.store;
        let metrics_json = serde_json::to_string(&sum(metrics)).expect("metrics serialize");
        let _ = store.set_statement_metrics(o, e, n, &metrics_json).await;
        let update = match &outcome {
            Outcome::Completed => Some((Phase::Completed, String::new())),
            // Stopped on request: whoever asked sets the phase.
            Outcome::Stopped => None,
            Outcome::ResultsAbandoned => Some((
                Phase::Stopped,
                format!(
                    "stopped: nobody read the results for {} s",
                    self.inner.config.results_idle_timeout.as_secs()
                ),
            )),
            Outcome::Failed(msg) => Some((Phase::Failed, msg.clone())),
        };
        if let Some((phase, detail)) = update {
            if let Err(err) = store
                .update_statement_status(o, e, n, phase.as_str(), &detail)
                .await
            {
                tracing::warn!(error = %err, "cannot record a statement's outcome");
            }
        }
        // A finished SELECT keeps its buffer for its readers until deleted.
        if !(is_select && matches!(outcome, Outcome::Completed | Outcome::Failed(_))) {
            self.inner.running.lock().unwrap().remove(key);
        }
    }

    /// The planning permits of each organization (see [`crate::planning`]).
    pub(crate) fn planning(&self) -> &crate::planning::PlanningGates {
        &self.inner.planning
    }

    /// Stops a statement after it drains what it read; returns once it has.
    pub async fn stop(&self, org: &str, env: &str, name: &str) {
        let key: Key = (org.to_string(), env.to_string(), name.to_string());
        let entry = self.inner.running.lock().unwrap().remove(&key);
        if let Some(entry) = entry {
            entry.stop();
            let _ = entry.supervisor.await;
        }
    }

    pub fn results(&self, org: &str, env: &str, name: &str) -> Option<Arc<ResultsBuffer>> {
        let key: Key = (org.to_string(), env.to_string(), name.to_string());
        self.inner
            .running
            .lock()
            .unwrap()
            .get(&key)
            .and_then(|e| e.results.clone())
    }

    pub fn metrics(&self, org: &str, env: &str, name: &str) -> Option<weir_api::StatementMetrics> {
        let key: Key = (org.to_string(), env.to_string(), name.to_string());
        self.inner
            .running
            .lock()
            .unwrap()
            .get(&key)
            .map(|e| sum(&e.metrics))
    }

    /// A parallel statement's stages and where each task runs; empty for
    /// a statement that is one task.
    pub fn stages(&self, org: &str, env: &str, name: &str) -> Vec<weir_api::StageStatus> {
        let key: Key = (org.to_string(), env.to_string(), name.to_string());
        let g = self.inner.running.lock().unwrap();
        let Some(e) = g.get(&key) else {
            return vec![];
        };
        // Without worker processes every task runs in this process, the
        // local worker.
        let workers = self.inner.workers.clone();
        crate::parallel::stages_status(&e.tasks, e.operator, |t| match &workers {
            Some(w) => w.worker_of(t),
            None => Some("local".into()),
        })
    }

    /// The task slots each running statement holds: on worker processes,
    /// the tasks a worker has leased; on this process's own worker, every
    /// task of a statement that has not ended.
    pub fn allocations(&self) -> Vec<Allocation> {
        let g = self.inner.running.lock().unwrap();
        g.iter()
            .filter(|(_, e)| !e.supervisor.is_finished() && !e.cancel.is_cancelled())
            .map(|((org, env, name), e)| Allocation {
                org: org.clone(),
                env: env.clone(),
                name: name.clone(),
                uid: e.uid.clone(),
                pool: e.pool.clone(),
                cfu: match &self.inner.workers {
                    Some(w) => e.tasks.iter().filter(|t| w.is_leased(&t.task)).count(),
                    None => e.tasks.len(),
                },
            })
            .collect()
    }

    /// The running statements the autoscaler sizes, with each stage's
    /// tasks' metrics.
    pub(crate) fn observe_autoscaled(&self) -> Vec<crate::scaling::Observed> {
        let g = self.inner.running.lock().unwrap();
        g.iter()
            .filter(|(_, e)| !e.supervisor.is_finished() && !e.cancel.is_cancelled())
            .filter_map(|(key, e)| {
                let parts = e.autoscaled.as_ref()?;
                let mut stages: Vec<crate::scaling::ObservedStage> = parts
                    .iter()
                    .map(|(name, partitions)| crate::scaling::ObservedStage {
                        name: name.clone(),
                        tasks: 0,
                        partitions: *partitions,
                        metrics: vec![],
                    })
                    .collect();
                for (a, m) in e.tasks.iter().zip(&e.metrics) {
                    let name = crate::parallel::stage_of(&a.role, e.operator);
                    if let Some(st) = stages.iter_mut().find(|s| s.name == name) {
                        st.tasks += 1;
                        st.metrics.push(m.snapshot());
                    }
                }
                Some(crate::scaling::Observed {
                    key: key.clone(),
                    uid: e.uid.clone(),
                    pool: e.pool.clone(),
                    stages,
                    split: e.tasks.iter().any(|t| t.role != Default::default()),
                })
            })
            .collect()
    }

    /// Restarts a statement with `counts` tasks per stage (the autoscaler's
    /// decision, already in its scaling status): its tasks checkpoint and
    /// stop, and the new ones restore the state of what they now own. A
    /// statement stopped or deleted meanwhile is left alone.
    pub(crate) async fn rescale(
        &self,
        key: &Key,
        what: &str,
        counts: crate::parallel::StageCounts,
    ) -> Result<(), ApiError> {
        let (o, e, n) = key;
        tracing::info!(statement = %n, source = counts.source, keyed = counts.keyed, "autoscaler rescales");
        self.stop(o, e, n).await;
        let Some(rec) = self.inner.store.get_statement(o, e, n).await? else {
            return Ok(());
        };
        let spec: StatementSpec = serde_json::from_str(&rec.spec)
            .map_err(|e| ApiError::internal(format!("stored spec: {e}")))?;
        let phase = Phase::parse(&rec.phase).unwrap_or_default();
        if spec.stopped || phase.is_terminal() || phase == Phase::Deleting {
            return Ok(());
        }
        self.inner
            .store
            .update_statement_status(
                o,
                e,
                n,
                Phase::Pending.as_str(),
                &format!("rescaling: {what}"),
            )
            .await?;
        if let Err(err) = self.start(o, e, n).await {
            self.inner
                .store
                .update_statement_status(o, e, n, Phase::Failed.as_str(), &err.detail)
                .await?;
            return Err(err);
        }
        Ok(())
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The task slots a pool's statements hold now: its `current_cfu`.
    pub fn pool_cfu(&self, org: &str, env: &str, pool: &str) -> usize {
        self.allocations()
            .iter()
            .filter(|a| a.org == org && a.env == env && a.pool == pool)
            .map(|a| a.cfu)
            .sum()
    }

    /// A pool's `max_cfu` changed: workers lease up to the new figure.
    pub fn pool_changed(&self, pool: &str, max_cfu: usize) {
        if let Some(w) = &self.inner.workers {
            w.set_max_cfu(pool, max_cfu);
        }
    }

    /// Starts every statement that was running when the process stopped.
    pub async fn resume_all(&self) {
        let list = match self.inner.store.statements_to_resume().await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot list statements to resume");
                return;
            }
        };
        for (o, e, n) in list {
            if let Err(err) = self.start(&o, &e, &n).await {
                tracing::warn!(org = o, env = e, statement = n, error = ?err, "cannot resume statement");
                let _ = self
                    .inner
                    .store
                    .update_statement_status(&o, &e, &n, Phase::Failed.as_str(), &err.detail)
                    .await;
            }
        }
    }

    /// Stops every statement, leaving their phases as they are so that the
    /// next start resumes them.
    pub async fn shutdown(&self) {
        let entries: Vec<Entry> = self
            .inner
            .running
            .lock()
            .unwrap()
            .drain()
            .map(|(_, e)| e)
            .collect();
        for e in &entries {
            e.stop();
        }
        for e in entries {
            let _ = e.supervisor.await;
        }
    }
}

/// The counters of a statement: its tasks' summed.
fn sum(metrics: &[Arc<StatementMetrics>]) -> weir_api::StatementMetrics {
    let parts: Vec<_> = metrics.iter().map(|m| m.snapshot()).collect();
    weir_api::StatementMetrics::sum(&parts)
}

/// A statement's outcome from its tasks': the first failure, else stopped
/// if any task was, else completed.
fn combine(outcomes: Vec<Outcome>) -> Outcome {
    if let Some(f) = outcomes.iter().find(|o| matches!(o, Outcome::Failed(_))) {
        return f.clone();
    }
    for o in [Outcome::ResultsAbandoned, Outcome::Stopped] {
        if outcomes.contains(&o) {
            return o;
        }
    }
    Outcome::Completed
}

/// Awaits local tasks; the first to fail makes `stop_rest` stop the others.
async fn first_failure(
    handles: Vec<weir_compute_pool::worker::StatementHandle>,
    stop_rest: impl Fn(),
) -> Outcome {
    let mut pending: futures::stream::FuturesUnordered<_> = handles.into_iter().collect();
    let mut all = vec![];
    while let Some(o) = futures::StreamExt::next(&mut pending).await {
        if matches!(o, Outcome::Failed(_)) {
            stop_rest();
        }
        all.push(o);
    }
    combine(all)
}

/// The span a statement's supervisor runs in, from placement to its end:
/// its lifecycle in a trace.
fn statement_span(key: &Key, pool: &str) -> tracing::Span {
    let (org, env, name) = key;
    tracing::info_span!("statement", org = %org, env = %env, statement = %name, pool = %pool)
}
