//! The worker: runs statements and reports what they did.
//!
//! A statement runs as one task per branch (each reads one source and applies
//! its operators) feeding one sink task. The sink writes a batch, waits for
//! Kafka to acknowledge every record of it, and only then reports the source
//! offsets after it through [`StatementEvents::commit`]. A restart resumes
//! from the last reported offsets, so no acknowledged input is lost; records
//! written after the last report may be written again (at-least-once). A
//! graceful stop drains what was read before it reports and exits, so a
//! stop/resume cycle writes nothing twice.
//!
//! Where the broker supports transactions, a Kafka sink is exactly-once
//! instead: the statement checkpoints (even a stateless one, whose
//! checkpoint is just its offsets), and what it wrote between two
//! checkpoints is one Kafka transaction, committed with the checkpoint
//! (see [`crate::connector::transaction`]).

pub mod protocol;
pub mod remote;
mod stages;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{AsArray, RecordBatch};
use futures::future::BoxFuture;
use futures::FutureExt;
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, FutureProducer, FutureRecord, Producer};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use weir_api::ResultRow;
use weir_sql_gateway::limits::{human_bytes, MemoryLimit};
use weir_sql_gateway::{SinkSpec, StreamingPlan};

use crate::connector::decode::row_partitions;
use crate::connector::decode::{BadRecord, ErrorMode, RawRecord, SourceDecoder};
use crate::connector::encode::{kafka_changes, op_header, result_rows, OP_HEADER};
use crate::connector::kafka::{plain_producer, sink_producer, source_consumer, Acks, SinkProducer};
use crate::connector::transaction::{Position, Transactions};
use crate::operators::changelog::Changes;
use crate::operators::window::{admit_batch, PartitionWatermarks};
use crate::runtime::checkpoint::{Checkpointer, Snapshot};
use crate::runtime::exchange::TaskRole;
use crate::runtime::pipeline::{compile, Branch, BranchSource, Target};
use crate::{EngineError, ResultsBuffer};

/// What the worker tells the control plane while a statement runs.
pub trait StatementEvents: Send + Sync + 'static {
    /// The sink has durably written everything read before these offsets
    /// (next offset to read, per partition of `topic`).
    fn commit<'a>(
        &'a self,
        topic: &'a str,
        offsets: &'a [(i32, i64)],
    ) -> BoxFuture<'a, Result<(), String>>;
    /// Something went wrong that the user should see (a skipped record, ...).
    fn exception<'a>(&'a self, message: &'a str) -> BoxFuture<'a, ()>;
    /// The statement passed its soft memory limit (`Some`, saying what
    /// holds the memory) or fell back under it (`None`).
    fn degraded<'a>(&'a self, detail: Option<&'a str>) -> BoxFuture<'a, ()> {
        let _ = detail;
        Box::pin(async {})
    }
    /// Schema `id` of the statement's schema registry; `Ok(None)` when the
    /// registry has no such schema.
    fn schema<'a>(&'a self, id: u32) -> BoxFuture<'a, Result<Option<RegisteredSchema>, String>> {
        let _ = id;
        Box::pin(async { Ok(None) })
    }
    /// Registers `schema` under `subject` (or finds it there): its id.
    fn register_schema<'a>(
        &'a self,
        subject: &'a str,
        schema_type: SchemaType,
        schema: &'a str,
    ) -> BoxFuture<'a, Result<u32, String>> {
        let _ = (subject, schema_type, schema);
        Box::pin(async { Err("this statement has no schema registry".to_string()) })
    }
}

use weir_catalog::registry::{RegisteredSchema, SchemaType};

/// A statement's events, carried out on the runtime that started it: the
/// statement runs on its own thread and runtime, and the store's
/// connections belong to the control plane's.
struct OnRuntime {
    inner: Arc<dyn StatementEvents>,
    home: tokio::runtime::Handle,
}

impl StatementEvents for OnRuntime {
    fn schema<'a>(&'a self, id: u32) -> BoxFuture<'a, Result<Option<RegisteredSchema>, String>> {
        let inner = self.inner.clone();
        let done = self.home.spawn(async move { inner.schema(id).await });
        Box::pin(async move { done.await.unwrap_or_else(|e| Err(e.to_string())) })
    }

    fn register_schema<'a>(
        &'a self,
        subject: &'a str,
        schema_type: SchemaType,
        schema: &'a str,
    ) -> BoxFuture<'a, Result<u32, String>> {
        let (inner, subject, schema) =
            (self.inner.clone(), subject.to_string(), schema.to_string());
        let done = self
            .home
            .spawn(async move { inner.register_schema(&subject, schema_type, &schema).await });
        Box::pin(async move { done.await.unwrap_or_else(|e| Err(e.to_string())) })
    }

    fn commit<'a>(
        &'a self,
        topic: &'a str,
        offsets: &'a [(i32, i64)],
    ) -> BoxFuture<'a, Result<(), String>> {
        let (inner, topic, offsets) = (self.inner.clone(), topic.to_string(), offsets.to_vec());
        let done = self
            .home
            .spawn(async move { inner.commit(&topic, &offsets).await });
        Box::pin(async move {
            done.await
                .unwrap_or_else(|e| Err(format!("storing the offsets failed: {e}")))
        })
    }

    fn exception<'a>(&'a self, message: &'a str) -> BoxFuture<'a, ()> {
        let (inner, message) = (self.inner.clone(), message.to_string());
        let done = self
            .home
            .spawn(async move { inner.exception(&message).await });
        Box::pin(async move {
            let _ = done.await;
        })
    }

    fn degraded<'a>(&'a self, detail: Option<&'a str>) -> BoxFuture<'a, ()> {
        let (inner, detail) = (self.inner.clone(), detail.map(str::to_string));
        let done = self
            .home
            .spawn(async move { inner.degraded(detail.as_deref()).await });
        Box::pin(async move {
            let _ = done.await;
        })
    }
}

/// Counters of one statement.
#[derive(Debug, Default)]
pub struct StatementMetrics {
    pub records_in: AtomicU64,
    /// Source records fully processed, their output written (and, into a
    /// Kafka table, acknowledged); `records_in` less this is the work
    /// queued inside the worker.
    pub records_done: AtomicU64,
    pub records_out: AtomicU64,
    pub records_skipped: AtomicU64,
    pub records_late: AtomicU64,
    pub state_windows: AtomicU64,
    pub state_groups: AtomicU64,
    pub state_bytes: AtomicU64,
    /// Checkpoints written by this run.
    pub checkpoints: AtomicU64,
    /// Rows `'late-handling.mode' = 'filter'` dropped at a source; part of
    /// `records_late`.
    pub records_late_at_source: AtomicU64,
    /// Offsets the sources skipped over (see the API type).
    pub source_offset_gaps: AtomicU64,
    /// The Kafka sink's guarantee: 0 none (no Kafka sink, or not started
    /// yet), [`AT_LEAST_ONCE`] or [`EXACTLY_ONCE`].
    pub delivery_guarantee: AtomicU8,
    /// Kafka transactions committed.
    pub transactions: AtomicU64,
    /// Time spent working on input, not waiting for it (ns): by the task's
    /// main loop, and by its source readers (which run beside it, so the
    /// busier of the two bounds the task). Time the main loop is blocked
    /// on the broker (acknowledgements, a full producer queue) is
    /// backpressure, not work, and is not in it: the autoscaler reads
    /// records per busy second as what a task could do with a fast
    /// broker.
    pub busy_ns: AtomicU64,
    pub read_busy_ns: AtomicU64,
    /// Time the main loop waited for the broker (ns).
    pub backpressured_ns: AtomicU64,
    /// Records taken from the input topics.
    pub input_consumed: AtomicU64,
    /// What [`InputLag`] last saw of the input partitions, summed over the
    /// task's readers.
    pub pending_records: AtomicU64,
    pub input_end_offsets: AtomicU64,
    pub input_unknown_partitions: AtomicU64,
}

pub const AT_LEAST_ONCE: u8 = 1;
pub const EXACTLY_ONCE: u8 = 2;

impl StatementMetrics {
    /// Sets the counters to `s` (a statement running elsewhere, as its
    /// worker reported it).
    pub fn set_from(&self, s: &weir_api::StatementMetrics) {
        let set = |a: &AtomicU64, v: u64| a.store(v, Ordering::Relaxed);
        set(&self.records_in, s.records_in);
        set(&self.records_done, s.records_processed);
        set(&self.records_out, s.records_out);
        set(&self.records_skipped, s.records_skipped);
        set(&self.records_late, s.records_late);
        set(&self.records_late_at_source, 0);
        set(&self.state_windows, s.state_windows);
        set(&self.state_groups, s.state_groups);
        set(&self.state_bytes, s.state_bytes);
        set(&self.checkpoints, s.checkpoints);
        set(&self.source_offset_gaps, s.source_offset_gaps);
        set(&self.transactions, s.transactions);
        set(&self.busy_ns, s.busy_ms.saturating_mul(1_000_000));
        set(&self.read_busy_ns, 0);
        set(&self.input_consumed, s.input_consumed);
        set(&self.pending_records, s.pending_records);
        set(&self.input_end_offsets, s.input_end_offsets);
        set(&self.input_unknown_partitions, s.input_unknown_partitions);
        self.delivery_guarantee.store(
            match s.delivery_guarantee.as_str() {
                "at-least-once" => AT_LEAST_ONCE,
                "exactly-once" => EXACTLY_ONCE,
                _ => 0,
            },
            Ordering::Relaxed,
        );
    }

    pub fn snapshot(&self) -> weir_api::StatementMetrics {
        weir_api::StatementMetrics {
            records_in: self.records_in.load(Ordering::Relaxed),
            records_processed: self.records_done.load(Ordering::Relaxed),
            records_out: self.records_out.load(Ordering::Relaxed),
            records_skipped: self.records_skipped.load(Ordering::Relaxed),
            records_late: self.records_late.load(Ordering::Relaxed)
                + self.records_late_at_source.load(Ordering::Relaxed),
            state_windows: self.state_windows.load(Ordering::Relaxed),
            state_groups: self.state_groups.load(Ordering::Relaxed),
            state_bytes: self.state_bytes.load(Ordering::Relaxed),
            checkpoints: self.checkpoints.load(Ordering::Relaxed),
            source_offset_gaps: self.source_offset_gaps.load(Ordering::Relaxed),
            delivery_guarantee: match self.delivery_guarantee.load(Ordering::Relaxed) {
                AT_LEAST_ONCE => "at-least-once",
                EXACTLY_ONCE => "exactly-once",
                _ => "",
            }
            .to_string(),
            transactions: self.transactions.load(Ordering::Relaxed),
            busy_ms: self
                .busy_ns
                .load(Ordering::Relaxed)
                .max(self.read_busy_ns.load(Ordering::Relaxed))
                / 1_000_000,
            input_consumed: self.input_consumed.load(Ordering::Relaxed),
            pending_records: self.pending_records.load(Ordering::Relaxed),
            input_end_offsets: self.input_end_offsets.load(Ordering::Relaxed),
            input_unknown_partitions: self.input_unknown_partitions.load(Ordering::Relaxed),
        }
    }

    /// The start of a span of the main loop's work.
    pub fn busy_start(&self) -> BusySpan {
        BusySpan {
            at: std::time::Instant::now(),
            backpressured_ns: self.backpressured_ns.load(Ordering::Relaxed),
        }
    }

    /// Counts the span since `since` as the main loop's busy time, less
    /// what it spent waiting for the broker meanwhile.
    pub fn busy_since(&self, since: BusySpan) {
        let waited = self
            .backpressured_ns
            .load(Ordering::Relaxed)
            .saturating_sub(since.backpressured_ns);
        let spent = since.at.elapsed().as_nanos() as u64;
        self.busy_ns
            .fetch_add(spent.saturating_sub(waited), Ordering::Relaxed);
    }

    /// Waits until the broker has acknowledged everything `acks` sent (or
    /// a full producer queue has room), counting the wait as
    /// backpressure.
    pub async fn acknowledged(&self, acks: &Acks) -> Result<(), rdkafka::error::KafkaError> {
        let at = std::time::Instant::now();
        let r = acks.wait().await;
        self.backpressured_ns
            .fetch_add(at.elapsed().as_nanos() as u64, Ordering::Relaxed);
        r
    }

    /// Counts `since.elapsed()` as a source reader's busy time.
    pub fn read_busy_since(&self, since: std::time::Instant) {
        self.read_busy_ns
            .fetch_add(since.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
}

/// Where a span of a task's main loop began ([`StatementMetrics::busy_start`]).
#[derive(Debug, Clone, Copy)]
pub struct BusySpan {
    at: std::time::Instant,
    backpressured_ns: u64,
}

/// One reader's view of its input partitions' lag, folded into the task's
/// metrics (readers add their figures; each replaces what it added last).
#[derive(Default)]
pub(crate) struct InputLag {
    added: (u64, u64, u64),
    at: Option<std::time::Instant>,
}

impl InputLag {
    /// At most once a second: for each partition, its end offset (as
    /// librdkafka last heard it from a fetch; no broker call) less the
    /// next offset to read. A partition without either is unknown, unless
    /// it is empty.
    pub(crate) fn observe<X: rdkafka::consumer::ConsumerContext>(
        &mut self,
        consumer: &rdkafka::consumer::StreamConsumer<X>,
        topic: &str,
        next: impl Iterator<Item = (i32, Option<i64>)>,
        metrics: &StatementMetrics,
    ) {
        if self
            .at
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.at = Some(std::time::Instant::now());
        let (mut pending, mut ends, mut unknown) = (0u64, 0u64, 0u64);
        for (p, next) in next {
            match (
                crate::connector::kafka::cached_offsets(consumer, topic, p),
                next,
            ) {
                (Some((_, high)), Some(next)) if next >= 0 => {
                    pending += (high - next).max(0) as u64;
                    ends += high as u64;
                }
                // Nothing read from it yet: an empty partition has no lag;
                // otherwise where it starts is not known yet.
                (Some((low, high)), _) => {
                    ends += high as u64;
                    if low.max(0) < high {
                        unknown += 1;
                    }
                }
                (None, _) => unknown += 1,
            }
        }
        self.set((pending, ends, unknown), metrics);
    }

    fn set(&mut self, now: (u64, u64, u64), m: &StatementMetrics) {
        let swap = |a: &AtomicU64, old: u64, new: u64| {
            a.fetch_add(new.wrapping_sub(old), Ordering::Relaxed);
        };
        swap(&m.pending_records, self.added.0, now.0);
        swap(&m.input_end_offsets, self.added.1, now.1);
        swap(&m.input_unknown_partitions, self.added.2, now.2);
        self.added = now;
    }
}

/// How a statement ended (also as a worker reports it to the server).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "outcome", content = "detail", rename_all = "snake_case")]
pub enum Outcome {
    /// Every source ended (a bounded statement) or the LIMIT was reached.
    Completed,
    /// Stopped on request.
    Stopped,
    /// Nobody read the results of a `SELECT` for the idle timeout.
    ResultsAbandoned,
    Failed(String),
}

/// Everything needed to run one statement.
pub struct StatementTask {
    /// `org/env/name`, for logs and the consumer group.
    pub key: String,
    pub plan: StreamingPlan,
    /// The cluster the statement reads and writes.
    pub kafka: weir_catalog::KafkaConnection,
    /// Stored offsets: topic -> partition -> next offset.
    pub start_offsets: HashMap<String, HashMap<i32, i64>>,
    pub events: Arc<dyn StatementEvents>,
    pub results_idle_timeout: Duration,
    pub results_capacity: usize,
    /// `'sql.tables.scan.idle-timeout'`: a source partition silent this long
    /// stops holding the watermark back; `None`: never.
    pub idle_timeout: Option<Duration>,
    /// `'sql.state-ttl'`: joins forget a row this long after its last
    /// write; `None`: never.
    pub state_ttl: Option<Duration>,
    /// Where a stateful statement checkpoints its state and offsets, and
    /// restores them from on start; `None`: it keeps no checkpoints and
    /// reads its sources again from their startup position.
    pub checkpoints: Option<Checkpointer>,
    /// `'sql.memory.limit'` and its soft limit: the most the statement's
    /// state and buffers may hold.
    pub memory_limit: MemoryLimit,
    /// The whole statement, or which task of which of its stages.
    pub role: crate::runtime::exchange::TaskRole,
}

/// A statement the worker is running.
pub struct RunningStatement {
    cancel: CancellationToken,
    handle: StatementHandle,
    pub results: Option<Arc<ResultsBuffer>>,
    pub metrics: Arc<StatementMetrics>,
}

impl RunningStatement {
    /// Asks the statement to stop after draining what it has read.
    pub fn stop(&self) {
        self.cancel.cancel();
        if let Some(r) = &self.results {
            r.close();
        }
    }

    pub fn is_finished(&self) -> bool {
        self.handle.finished.load(Ordering::Acquire)
    }

    pub async fn join(self) -> Outcome {
        self.handle.await
    }

    /// Splits into the parts a supervisor keeps.
    pub fn into_parts(
        self,
    ) -> (
        CancellationToken,
        StatementHandle,
        Option<Arc<ResultsBuffer>>,
        Arc<StatementMetrics>,
    ) {
        (self.cancel, self.handle, self.results, self.metrics)
    }
}

/// The outcome of a statement running on its own thread; a future that
/// resolves when the thread ends.
pub struct StatementHandle {
    outcome: tokio::sync::oneshot::Receiver<Outcome>,
    finished: Arc<std::sync::atomic::AtomicBool>,
}

impl std::future::Future for StatementHandle {
    type Output = Outcome;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Outcome> {
        std::pin::Pin::new(&mut self.outcome).poll(cx).map(|r| {
            r.unwrap_or_else(|_| {
                Outcome::Failed("the statement's thread ended without an outcome".into())
            })
        })
    }
}

/// Runs statements, each on a thread of its own.
///
/// A statement's operators run for as long as a batch takes, without
/// yielding; on a thread of its own (with its own current-thread runtime)
/// the operating system shares the cores between statements and the API,
/// so one tenant's heavy batch delays the others by a time slice, not by
/// the batch. The thread runs at a lower priority than the API's, its stack
/// fits the deepest expression the planner accepts, and a panic in it fails
/// that statement only.
#[derive(Debug, Clone, Default)]
pub struct Worker;

/// The stack of a statement's thread: room for the deepest expression the
/// planner accepts (only the pages used are committed).
const STATEMENT_STACK_BYTES: usize = 64 << 20;

/// How much lower than the API's a statement thread's priority is (a
/// `nice` increment): under load the API answers first.
const STATEMENT_NICENESS: i32 = 5;

/// A batch and the source positions after it.
#[derive(Clone)]
struct Progress {
    batch: Option<RecordBatch>,
    offsets: Vec<(i32, i64)>,
    /// The index of the branch that sent it, and that branch's watermark.
    branch: usize,
    watermark: Option<i64>,
    /// Every partition of the branch's source is idle: it holds no
    /// watermark back until it sends again.
    idle: bool,
    /// Source records this covers.
    records: u64,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

const POLL_MAX_RECORDS: usize = 8192;
const POLL_WINDOW: Duration = Duration::from_millis(20);

impl Worker {
    /// Starts `task` on a thread of its own. Called on a tokio runtime,
    /// the statement's events are carried out on that runtime.
    pub fn start(&self, task: StatementTask) -> RunningStatement {
        self.start_into(task, None)
    }

    /// [`Worker::start`], a `SELECT`'s rows going into `shared` (the
    /// buffer of all the statement's tasks) when given.
    pub fn start_into(
        &self,
        mut task: StatementTask,
        shared: Option<Arc<ResultsBuffer>>,
    ) -> RunningStatement {
        let cancel = CancellationToken::new();
        let metrics = Arc::new(StatementMetrics::default());
        let results = match (&task.plan.sink, shared) {
            (SinkSpec::Results, Some(shared)) => Some(shared),
            (SinkSpec::Results, None) => {
                let (rows, bytes) = (task.results_capacity, results_bytes(task.memory_limit));
                Some(Arc::new(
                    if task.plan.is_bounded() && !task.plan.root.is_append_only() {
                        ResultsBuffer::final_result(rows, bytes)
                    } else {
                        ResultsBuffer::new(rows, bytes)
                    },
                ))
            }
            _ => None,
        };
        if let Ok(home) = tokio::runtime::Handle::try_current() {
            task.events = Arc::new(OnRuntime {
                inner: task.events.clone(),
                home,
            });
        }
        let (tx, outcome) = tokio::sync::oneshot::channel();
        let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (c, m, r, f) = (
            cancel.clone(),
            metrics.clone(),
            results.clone(),
            finished.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name("weir-statement".into())
            .stack_size(STATEMENT_STACK_BYTES)
            .spawn(move || {
                lower_priority();
                let outcome = run_isolated(task, c, m, r);
                f.store(true, Ordering::Release);
                let _ = tx.send(outcome);
                release_freed_memory();
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start a statement thread");
            finished.store(true, Ordering::Release);
        }
        RunningStatement {
            cancel,
            handle: StatementHandle { outcome, finished },
            results,
            metrics,
        }
    }
}

/// Runs a statement to its end on the current thread, on a runtime of its
/// own; a panic fails the statement, with the panic in its exceptions.
fn run_isolated(
    task: StatementTask,
    cancel: CancellationToken,
    metrics: Arc<StatementMetrics>,
    results: Option<Arc<ResultsBuffer>>,
) -> Outcome {
    let events = task.events.clone();
    let key = task.key.clone();
    let part = task.role.suffix();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return Outcome::Failed(format!("cannot start the statement's runtime: {e}")),
    };
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(run(task, cancel, metrics, results.clone()))
    }));
    drop(rt);
    match ran {
        Ok(outcome) => outcome,
        Err(panic) => {
            let e = EngineError::Crashed(weir_sql_gateway::limits::panic_message(panic.as_ref()));
            tracing::error!(statement = %key, error = %e, "statement crashed");
            if let Some(r) = &results {
                r.complete_part(&part);
            }
            futures::executor::block_on(events.exception(&e.to_string()));
            Outcome::Failed(e.to_string())
        }
    }
}

/// Lowers the calling thread's scheduling priority by
/// [`STATEMENT_NICENESS`] (on Linux a thread has its own nice value).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority reads no memory of ours; `who` 0 is this thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, STATEMENT_NICENESS);
    }
}

/// Gives memory a finished statement freed back to the operating system,
/// so that a statement that grew and ended leaves the process as small as
/// it found it (glibc keeps freed small blocks otherwise).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

async fn run(
    task: StatementTask,
    cancel: CancellationToken,
    metrics: Arc<StatementMetrics>,
    results: Option<Arc<ResultsBuffer>>,
) -> Outcome {
    let mut task = task;
    let ran = match register_sink_schema(&mut task).await {
        Err(e) => Err(e),
        Ok(()) => match &task.role {
            crate::runtime::exchange::TaskRole::Keyed { .. } => {
                stages::run_keyed(&task, &cancel, &metrics).await
            }
            _ => run_inner(&task, &cancel, &metrics, results.as_ref()).await,
        },
    };
    match ran {
        Ok(o) => {
            if let Some(r) = &results {
                r.complete_part(&task.role.suffix());
            }
            o
        }
        Err(e) => {
            tracing::warn!(statement = %task.key, error = %e, "statement failed");
            task.events.exception(&e.to_string()).await;
            if let Some(r) = &results {
                r.complete_part(&task.role.suffix());
            }
            Outcome::Failed(e.to_string())
        }
    }
}

/// A sink in a schema registry format registers its value schema (or finds
/// it registered) under `<topic>-value` before the first record, and its key
/// schema under `<topic>-key` when `'key.format'` is one too, and writes
/// with those schemas' ids.
async fn register_sink_schema(task: &mut StatementTask) -> Result<(), EngineError> {
    let events = task.events.clone();
    for table in task.plan.sink.tables_mut() {
        register_table_schemas(table, events.as_ref()).await?;
    }
    Ok(())
}

async fn register_table_schemas(
    table: &mut weir_catalog::TableDef,
    events: &dyn StatementEvents,
) -> Result<(), EngineError> {
    use weir_catalog::registry::Part;
    for part in [Part::Key, Part::Value] {
        if !crate::connector::registry::is_registry_format(part.format(table)) {
            continue;
        }
        let (ty, schema, subject) = weir_catalog::registry::schema_for_part(table, part)
            .map_err(|e| EngineError::Plan(format!("table '{}': {e}", table.name)))?;
        let id = events
            .register_schema(&subject, ty, &schema)
            .await
            .map_err(|e| {
                EngineError::Plan(format!(
                    "table '{}': its {} schema cannot be registered under subject '{subject}': {e}",
                    table.name,
                    part.as_str()
                ))
            })?;
        let (id_option, schema_option) = crate::connector::registry::schema_options(part);
        table.options.insert(id_option, id.to_string());
        table.options.insert(schema_option, schema);
    }
    Ok(())
}

async fn run_inner(
    task: &StatementTask,
    cancel: &CancellationToken,
    metrics: &Arc<StatementMetrics>,
    results: Option<&Arc<ResultsBuffer>>,
) -> Result<Outcome, EngineError> {
    let compiled = compile(&task.plan)?;
    let positions = compiled.position_keys();
    let (txn, resume) = match open_transactions(task, &positions, metrics).await? {
        Some((t, resume)) => (Some(t), resume),
        None => (None, vec![]),
    };
    // A source task of a parallel statement commits its output with its
    // offsets, and keeps no checkpoint: it holds no state, and its
    // partitions' positions live in the consumer group, where whichever
    // task owns a partition next finds them.
    let source_txn = txn.is_some() && matches!(task.role, TaskRole::Source { .. });
    // A source task of a parallel statement writes what reaches its keyed
    // operator into the repartition topic instead of running it.
    let mut exchange = stages::ExchangeWriter::of(
        task,
        txn.as_ref().map(Transactions::shared_producer),
        metrics.clone(),
    )?;
    let mut stages = match exchange {
        Some(_) => Default::default(),
        None => compiled.stages,
    };
    stages.set_state_ttl(task.state_ttl.map(|d| d.as_millis() as i64));
    stages.set_snapshot(task.plan.snapshot);
    stages.set_memory_limit(Some(task.memory_limit.hard as usize));
    let checkpoints = task
        .checkpoints
        .as_ref()
        .filter(|_| !source_txn && (!stages.is_empty() || txn.is_some()));
    // Next offset per topic and partition of everything processed so far:
    // where the sources start, and what a checkpoint covers.
    let mut processed: BTreeMap<String, BTreeMap<i32, i64>> = task
        .start_offsets
        .iter()
        .map(|(t, o)| (t.clone(), o.iter().map(|(p, o)| (*p, *o)).collect()))
        .collect();
    let mut checkpoint_id = 0u64;
    if let Some(cp) = checkpoints {
        // An exactly-once sink resumes from the checkpoint its last
        // committed transaction names.
        let id = match &txn {
            Some(t) => t.restore,
            None => cp.latest_id().await?,
        };
        if id > 0 {
            let snapshot = cp.load(id).await?;
            stages.restore(&snapshot.stages)?;
            processed = snapshot.offsets;
            checkpoint_id = id;
            tracing::info!(statement = %task.key, checkpoint = id, "restored from checkpoint");
        }
    }
    // The positions the consumer group holds are at least as far on as
    // the store's (they are stored after the commit).
    for p in &resume {
        processed
            .entry(p.topic.clone())
            .or_default()
            .insert(p.partition, p.offset);
    }
    let (tx, mut rx) = mpsc::channel::<Result<Progress, EngineError>>(4);
    // Branch readers stop on `stop_reading`; the sink drains what they sent.
    let stop_reading = cancel.child_token();
    let mut readers = vec![];
    // Each branch's watermark; constant rows never hold it back.
    let mut watermarks: Vec<Option<i64>> = compiled
        .branches
        .iter()
        .map(|b| match b.source {
            BranchSource::Values(_) => Some(i64::MAX),
            BranchSource::Kafka(_) => None,
        })
        .collect();
    let idle_ms = task.idle_timeout.map(|d| d.as_millis() as i64);
    // Which branches are idle, and the statement watermark last passed on.
    let mut idle = vec![false; watermarks.len()];
    let mut advanced: Option<i64> = None;
    let targets: Vec<_> = compiled.branches.iter().map(|b| b.target).collect();
    // One reader per source, feeding every branch that shares it.
    let mut groups: BTreeMap<usize, Vec<(usize, Branch)>> = BTreeMap::new();
    for (index, branch) in compiled.branches.into_iter().enumerate() {
        groups
            .entry(compiled.readers[index])
            .or_default()
            .push((index, branch));
    }
    for (index, members) in groups {
        // Constant rows come from the first task of a stage only.
        let first = match task.role {
            crate::runtime::exchange::TaskRole::Source { index, .. } => index == 0,
            _ => true,
        };
        if matches!(members[0].1.source, BranchSource::Values(_)) && !first {
            continue;
        }
        let tx = tx.clone();
        let role = task.role.clone();
        let stop = stop_reading.clone();
        let metrics = metrics.clone();
        let kafka = task.kafka.clone();
        let key = task.key.clone();
        let offsets = processed
            .get(&positions[index])
            .map(|o| o.iter().map(|(p, o)| (*p, *o)).collect())
            .unwrap_or_default();
        let events = task.events.clone();
        readers.push(tokio::spawn(async move {
            let read = read_branch(
                members, &role, &kafka, &key, offsets, idle_ms, &tx, &stop, &metrics, events,
            );
            // A panic in a source ends the statement like an error, not
            // like the source's end.
            let r = std::panic::AssertUnwindSafe(read)
                .catch_unwind()
                .await
                .unwrap_or_else(|p| {
                    Err(EngineError::Crashed(
                        weir_sql_gateway::limits::panic_message(p.as_ref()),
                    ))
                });
            if let Err(e) = r {
                let _ = tx.send(Err(e)).await;
            }
        }));
    }
    drop(tx);

    let plain_producer = match (&task.plan.sink, &txn) {
        (SinkSpec::Table { .. } | SinkSpec::Tables(_), None) if exchange.is_none() => {
            Some(sink_producer(&task.kafka, None)?)
        }
        _ => None,
    };
    let producer = txn
        .as_ref()
        .map(Transactions::producer)
        .or(plain_producer.as_ref());
    let mut written = 0usize;
    let mut idle_check = tokio::time::interval(Duration::from_secs(1));
    // A stateless statement's offsets not stored yet, and when they last were.
    let mut uncommitted: BTreeMap<String, BTreeMap<i32, i64>> = BTreeMap::new();
    let mut offsets_at = std::time::Instant::now();
    let mut offsets_tick = tokio::time::interval(OFFSETS_INTERVAL);
    offsets_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let commits = checkpoints.is_some() || source_txn;
    let mut checkpoint_tick = tokio::time::interval(
        task.checkpoints
            .as_ref()
            .filter(|_| commits)
            .map_or(Duration::from_secs(3600), |c| c.interval),
    );
    checkpoint_tick.tick().await;
    // Whether anything was processed since the last checkpoint.
    let mut unsaved = false;
    let mut state_bytes_at = std::time::Instant::now() - Duration::from_secs(1);
    let mut memory = MemoryWatch {
        limit: task.memory_limit,
        degraded: false,
    };
    // Processing-time windows fire as time passes, input or not.
    let timers = stages.has_processing_timers();
    let mut proctime_tick = tokio::time::interval(PROCESSING_TIME_TICK);
    proctime_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut exchange_tick = tokio::time::interval(Duration::from_millis(200));
    exchange_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let result = async {
        let outcome = loop {
            tokio::select! {
                msg = rx.recv() => {
                    let Some(msg) = msg else {
                        break if cancel.is_cancelled() { Outcome::Stopped } else { Outcome::Completed };
                    };
                    let p = msg?;
                    let work = metrics.busy_start();
                    let mut out = vec![];
                    if timers {
                        out.extend(stages.on_processing_time(now_ms())?);
                    }
                    if let Some(batch) = p.batch {
                        match (&mut exchange, targets[p.branch]) {
                            (Some(x), Target::Stage { right, .. }) => x.rows(right, batch).await?,
                            _ => {
                                stages.set_processing_time(now_ms());
                                out.extend(stages.process(targets[p.branch], batch)?);
                            }
                        }
                    }
                    if let Some(w) = p.watermark {
                        let slot = &mut watermarks[p.branch];
                        *slot = Some(slot.map_or(w, |old| old.max(w)));
                    }
                    idle[p.branch] = p.idle;
                    if !stages.is_empty() || exchange.is_some() {
                        // The minimum over the branches that are not idle; it
                        // never goes back.
                        // With every branch idle there is none; with every
                        // branch ended (bounded) it is the end of time, and
                        // every window fires.
                        let mut active = watermarks
                            .iter()
                            .zip(&idle)
                            .filter(|(_, idle)| !**idle)
                            .peekable();
                        let all = active.peek().is_some().then(|| {
                            active.try_fold(i64::MAX, |acc, (w, _)| w.map(|w| acc.min(w)))
                        }).flatten();
                        if let Some(x) = &mut exchange {
                            match all {
                                Some(wm) => x.watermark(wm).await?,
                                None if idle.iter().all(|i| *i) => x.idle().await?,
                                None => {}
                            }
                        } else {
                            // Each stage by the branches that feed it (a
                            // stage passes over what does not move it).
                            advanced = advanced.max(all);
                            out.extend(stages.advance_branches(&watermarks, &idle, advanced)?);
                        }
                        metrics.records_late.store(stages.late(), Ordering::Relaxed);
                        let (w, g) = stages.state_size();
                        metrics.state_windows.store(w as u64, Ordering::Relaxed);
                        metrics.state_groups.store(g as u64, Ordering::Relaxed);
                    }
                    // Walking every key costs; once a second is enough.
                    if state_bytes_at.elapsed() >= Duration::from_secs(1) {
                        state_bytes_at = std::time::Instant::now();
                        memory.check(stages.state_bytes_by_stage(), results, metrics, task.events.as_ref()).await?;
                    }
                    // An exactly-once sink's output waits for a commit.
                    unsaved |= txn.is_some() && !out.is_empty();
                    let sink = (&task.plan.sink, producer, results);
                    write_all(out, compiled.limit, &mut written, sink, metrics).await?;
                    metrics.records_done.fetch_add(p.records, Ordering::Relaxed);
                    metrics.busy_since(work);
                    // A stateless statement's offsets are stored once what they
                    // cover is written. A stateful one's go into its
                    // checkpoints with its state (without checkpoints it reads
                    // its sources again from their startup position after a
                    // restart). An exactly-once sink stores them once its
                    // transaction commits.
                    let position = &positions[p.branch];
                    if !p.offsets.is_empty() && stages.is_empty() && txn.is_none() {
                        // Stored at most every OFFSETS_INTERVAL: a store
                        // write per poll would bound the statement by the
                        // store's commit latency. What is stored is always
                        // written and acknowledged already.
                        uncommitted.entry(position.clone()).or_default().extend(p.offsets.iter().copied());
                        if offsets_at.elapsed() >= OFFSETS_INTERVAL {
                            offsets_at = std::time::Instant::now();
                            store_offsets(&mut uncommitted, task).await?;
                        }
                    }
                    if !p.offsets.is_empty() && commits {
                        processed.entry(position.clone()).or_default().extend(p.offsets.iter().copied());
                        unsaved = true;
                    }
                    unsaved |= source_txn && exchange.as_mut().is_some_and(|x| x.take_sent());
                    if compiled.limit.is_some_and(|l| written >= l) {
                        stop_reading.cancel();
                        break Outcome::Completed;
                    }
                }
                _ = checkpoint_tick.tick(), if commits && unsaved => {
                    // Everything written so far is acknowledged: the state and
                    // `processed` agree.
                    unsaved = false;
                    match (checkpoints, &txn) {
                        (Some(cp), _) => {
                            checkpoint_id += 1;
                            checkpoint(cp, txn.as_ref(), checkpoint_id, &processed, &mut stages, metrics, task).await?;
                        }
                        (None, Some(t)) => commit_source(t, &processed, metrics, task).await?,
                        (None, None) => unreachable!("commits needs one"),
                    }
                }
                _ = exchange_tick.tick(), if exchange.is_some() => {
                    if let Some(x) = &mut exchange {
                        x.flush(true).await?;
                        unsaved |= source_txn && x.take_sent();
                    }
                }
                _ = proctime_tick.tick(), if timers => {
                    let out = stages.on_processing_time(now_ms())?;
                    unsaved |= txn.is_some() && !out.is_empty();
                    let sink = (&task.plan.sink, producer, results);
                    write_all(out, compiled.limit, &mut written, sink, metrics).await?;
                    if compiled.limit.is_some_and(|l| written >= l) {
                        stop_reading.cancel();
                        break Outcome::Completed;
                    }
                }
                _ = offsets_tick.tick(), if !uncommitted.is_empty() => {
                    offsets_at = std::time::Instant::now();
                    store_offsets(&mut uncommitted, task).await?;
                }
                _ = idle_check.tick(), if results.is_some() => {
                    if results.is_some_and(|r| r.idle_for() > task.results_idle_timeout) {
                        stop_reading.cancel();
                        break Outcome::ResultsAbandoned;
                    }
                }
            }
        };
        stop_reading.cancel();
        for r in readers {
            let _ = r.await;
        }
        // Everything written is acknowledged: its offsets are stored.
        store_offsets(&mut uncommitted, task).await?;
        // The keyed stage learns that this task's input ended.
        if let (Some(x), Outcome::Completed) = (&mut exchange, &outcome) {
            x.end().await?;
            unsaved |= source_txn;
        }
        // A stop drained every batch read: checkpoint, so that a resume
        // carries on exactly where this run ended. An exactly-once sink also
        // commits the output of a statement that completed.
        let last = matches!(outcome, Outcome::Stopped)
            || (txn.is_some() && matches!(outcome, Outcome::Completed));
        match (checkpoints, &txn) {
            (Some(cp), _) if last && unsaved => {
                checkpoint(cp, txn.as_ref(), checkpoint_id + 1, &processed, &mut stages, metrics, task)
                    .await?
            }
            (None, Some(t)) if source_txn && last && unsaved => {
                commit_source(t, &processed, metrics, task).await?
            }
            _ => {}
        }
        Ok(outcome)
    }
    .await;
    if let (Err(_), Some(t)) = (&result, &txn) {
        stop_reading.cancel();
        t.abort().await;
    }
    result
}

/// The Kafka sink's transactions when it writes exactly-once, `None` when
/// it writes at-least-once; records which in `metrics`. A source task of a
/// parallel statement also gets the positions its consumer group holds for
/// its partitions (a whole statement's are in the checkpoint the group
/// names).
pub(super) async fn open_transactions(
    task: &StatementTask,
    positions: &[String],
    metrics: &StatementMetrics,
) -> Result<Option<(Transactions, Vec<Position>)>, EngineError> {
    let tables = task.plan.sink.tables();
    if tables.is_empty() {
        return Ok(None);
    }
    // Said once known: a statement reports its weakest task's guarantee.
    let at_least_once = || {
        metrics
            .delivery_guarantee
            .store(AT_LEAST_ONCE, Ordering::Relaxed)
    };
    // A statement set writes its tables in one transaction: exactly-once
    // unless every table asks for at-least-once, and a table that demands
    // exactly-once names the statement's failure when it cannot be met.
    let wants = |g: &str| {
        tables
            .iter()
            .find(|(t, _)| t.option(DELIVERY_GUARANTEE) == Some(g))
            .map(|(t, _)| *t)
    };
    if tables
        .iter()
        .all(|(t, _)| t.option(DELIVERY_GUARANTEE) == Some("at-least-once"))
    {
        at_least_once();
        return Ok(None);
    }
    let demanding = wants("exactly-once");
    let topics: Vec<String> = positions
        .iter()
        .filter(|p| !p.is_empty() && !p.contains('#'))
        .cloned()
        .collect();
    let why = match &task.checkpoints {
        _ if topics.is_empty() => {
            "it reads no Kafka topic, so it has no position to resume from".to_string()
        }
        None => "this worker keeps no checkpoints".to_string(),
        Some(_)
            if matches!(task.role, TaskRole::Source { .. })
                && positions.iter().any(|p| p.contains('#')) =>
        {
            "a parallel statement that reads one topic at two positions writes at-least-once"
                .to_string()
        }
        Some(cp) => {
            let opened = if task.role != TaskRole::Whole {
                open_task_transactions(task, &topics, cp.interval).await?
            } else {
                let group = consumer_group(&task.key);
                Transactions::open(
                    &task.kafka,
                    &group,
                    &group,
                    &topics,
                    cp.interval,
                    cp.latest_id(),
                )
                .await?
            };
            match opened {
                Ok(opened) => {
                    metrics
                        .delivery_guarantee
                        .store(EXACTLY_ONCE, Ordering::Relaxed);
                    return Ok(Some(opened));
                }
                Err(why) => format!("the broker does not support Kafka transactions ({why})"),
            }
        }
    };
    if let Some(table) = demanding {
        return Err(EngineError::Plan(format!(
            "'{DELIVERY_GUARANTEE}' = 'exactly-once' on table '{}' cannot be met: {why}; \
             remove the option to write at-least-once",
            table.name
        )));
    }
    tracing::info!(statement = %task.key, reason = %why, "the Kafka sink writes at-least-once");
    at_least_once();
    Ok(None)
}

/// Opens the transactions of one task of a parallel statement (Kafka
/// Streams' exactly-once-v2: the task's output, into the repartition topic
/// or the sink, commits with the offsets of what it read), and the
/// positions its stage's consumer group holds for the partitions it owns:
/// a source task's of its source topics, a keyed task's of the repartition
/// topic. The first commit names where the task resumes: the group's
/// positions, else (a source task) the store's for those partitions, else
/// a placeholder that names none.
async fn open_task_transactions(
    task: &StatementTask,
    source_topics: &[String],
    interval: Duration,
) -> Result<Result<(Transactions, Vec<Position>), String>, EngineError> {
    let role = task.role.clone();
    type Owns = Box<dyn Fn(i32) -> bool + Send>;
    let (group, topics, owns): (String, Vec<String>, Owns) = match &task.role {
        TaskRole::Keyed { exchange, .. } => {
            let owned = task.role.owned();
            (
                keyed_consumer_group(&task.key),
                vec![exchange.topic.clone()],
                Box::new(move |p| owned.contains(&(p as u32))),
            )
        }
        _ => (
            consumer_group(&task.key),
            source_topics.to_vec(),
            Box::new(move |p| role.reads(p)),
        ),
    };
    let opened = Transactions::open_task(
        &task.kafka,
        &group,
        &format!("{group}-{}", task.role.suffix()),
        topics,
        owns,
        interval,
    )
    .await?;
    let (t, owned, committed) = match opened {
        Ok(o) => o,
        Err(why) => return Ok(Err(why)),
    };
    let mut resume = committed;
    if resume.is_empty() && !matches!(task.role, TaskRole::Keyed { .. }) {
        resume = owned
            .iter()
            .filter_map(|(topic, p)| {
                let offset = *task.start_offsets.get(topic)?.get(p)?;
                Some(Position {
                    topic: topic.clone(),
                    partition: *p,
                    offset,
                    checkpoint: 0,
                })
            })
            .collect();
    }
    let placeholder = owned.first().map(|(t, p)| (t.as_str(), *p));
    if let Err(why) = t.probe(&resume, placeholder).await? {
        return Ok(Err(why));
    }
    Ok(Ok((t, resume)))
}

/// Commits a source task's open transaction with the positions of the
/// partitions it reads, then stores them (for the statement's status, and
/// for a start at-least-once).
async fn commit_source(
    t: &Transactions,
    processed: &BTreeMap<String, BTreeMap<i32, i64>>,
    metrics: &StatementMetrics,
    task: &StatementTask,
) -> Result<(), EngineError> {
    let positions: Vec<Position> = processed
        .iter()
        .filter(|(topic, _)| !topic.contains('#'))
        .flat_map(|(topic, parts)| {
            parts
                .iter()
                .filter(|(p, _)| task.role.reads(**p))
                .map(|(p, o)| Position {
                    topic: topic.clone(),
                    partition: *p,
                    offset: *o,
                    checkpoint: 0,
                })
        })
        .collect();
    t.commit_positions(&positions).await?;
    metrics.transactions.fetch_add(1, Ordering::Relaxed);
    let mut by_topic: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
    for p in &positions {
        by_topic
            .entry(&p.topic)
            .or_default()
            .push((p.partition, p.offset));
    }
    for (topic, parts) in by_topic {
        task.events
            .commit(topic, &parts)
            .await
            .map_err(EngineError::Progress)?;
    }
    Ok(())
}

/// The table option choosing a Kafka sink's guarantee.
const DELIVERY_GUARANTEE: &str = "sink.delivery-guarantee";

/// The consumer group of a statement (`org/env/name/uid`): its sources'
/// group, and its exactly-once sink's transactional id.
fn consumer_group(key: &str) -> String {
    format!("weir-{}", key.replace('/', "-"))
}

/// The consumer group of a parallel statement's keyed stage, which reads
/// the repartition topic.
pub(super) fn keyed_consumer_group(key: &str) -> String {
    format!("{}-keyed", consumer_group(key))
}

/// Writes checkpoint `id` of the stages' state and the offsets it covers;
/// with an exactly-once sink, commits the transaction naming it (and then
/// stores the offsets it committed) before making it the latest.
async fn checkpoint(
    cp: &Checkpointer,
    txn: Option<&Transactions>,
    id: u64,
    offsets: &BTreeMap<String, BTreeMap<i32, i64>>,
    stages: &mut crate::runtime::pipeline::Stages,
    metrics: &StatementMetrics,
    task: &StatementTask,
) -> Result<(), EngineError> {
    let snapshot = Snapshot {
        offsets: offsets.clone(),
        stages: stages.snapshot()?,
    };
    cp.write(id, &snapshot).await?;
    if let Some(t) = txn {
        t.commit(offsets, id).await?;
        metrics.transactions.fetch_add(1, Ordering::Relaxed);
        for (topic, parts) in offsets.iter().filter(|(t, _)| !t.contains('#')) {
            let parts: Vec<(i32, i64)> = parts.iter().map(|(p, o)| (*p, *o)).collect();
            task.events
                .commit(topic, &parts)
                .await
                .map_err(EngineError::Progress)?;
        }
    }
    cp.publish(id, snapshot.stages.len()).await?;
    metrics.checkpoints.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// The most a `SELECT`'s unread results may hold before the statement
/// waits for a reader: 64 MiB, or half the memory limit when that is less.
fn results_bytes(limit: MemoryLimit) -> usize {
    (64usize << 20).min((limit.hard / 2) as usize)
}

/// Compares what a statement holds with its memory limits.
struct MemoryWatch {
    limit: MemoryLimit,
    /// Whether the statement was last reported over its soft limit.
    degraded: bool,
}

impl MemoryWatch {
    /// Records the state size; fails past the hard limit, and reports
    /// crossing the soft limit (either way).
    async fn check(
        &mut self,
        by_stage: Vec<(&'static str, usize)>,
        results: Option<&Arc<ResultsBuffer>>,
        metrics: &StatementMetrics,
        events: &dyn StatementEvents,
    ) -> Result<(), EngineError> {
        let state: usize = by_stage.iter().map(|(_, b)| b).sum();
        let buffered = results.map_or(0, |r| r.bytes());
        metrics.state_bytes.store(state as u64, Ordering::Relaxed);
        let used = (state + buffered) as u64;
        let held = || {
            let mut parts: Vec<String> = by_stage
                .iter()
                .enumerate()
                .map(|(i, (name, b))| {
                    format!("stage {} {name} holds {}", i + 1, human_bytes(*b as u64))
                })
                .collect();
            if results.is_some() {
                parts.push(format!(
                    "unread results hold {}",
                    human_bytes(buffered as u64)
                ));
            }
            parts.join(", ")
        };
        if used > self.limit.hard {
            return Err(EngineError::MemoryLimit(format!(
                "the statement holds {}, more than its memory limit of {} ('{}'): {}. Raise \
                 '{}', set 'sql.state-ttl' so that keys not seen for a while are dropped, or \
                 narrow the query (fewer keys, shorter windows)",
                human_bytes(used),
                human_bytes(self.limit.hard),
                weir_sql_gateway::properties::MEMORY_LIMIT,
                held(),
                weir_sql_gateway::properties::MEMORY_LIMIT,
            )));
        }
        let over = used > self.limit.soft;
        if over != self.degraded {
            self.degraded = over;
            let detail = over.then(|| {
                format!(
                    "the statement holds {}, past its soft memory limit of {} (the limit is {}): {}",
                    human_bytes(used),
                    human_bytes(self.limit.soft),
                    human_bytes(self.limit.hard),
                    held()
                )
            });
            events.degraded(detail.as_deref()).await;
        }
        Ok(())
    }
}

/// How often a stateless statement stores the offsets it has written.
const OFFSETS_INTERVAL: Duration = Duration::from_millis(200);

/// Stores (and forgets) the offsets in `uncommitted`.
async fn store_offsets(
    uncommitted: &mut BTreeMap<String, BTreeMap<i32, i64>>,
    task: &StatementTask,
) -> Result<(), EngineError> {
    for (topic, parts) in std::mem::take(uncommitted) {
        let parts: Vec<(i32, i64)> = parts.into_iter().collect();
        task.events
            .commit(&topic, &parts)
            .await
            .map_err(EngineError::Progress)?;
    }
    Ok(())
}

/// How often processing-time windows are checked for firing.
const PROCESSING_TIME_TICK: Duration = Duration::from_millis(100);

/// Where a task's output goes: the sink, its Kafka producer (a table) or
/// its results buffer (a `SELECT`).
type Sink<'a> = (
    &'a SinkSpec,
    Option<&'a SinkProducer>,
    Option<&'a Arc<ResultsBuffer>>,
);

/// Writes `out` to the sink, up to `limit` rows in all (`written` so far).
async fn write_all(
    out: Vec<Changes>,
    limit: Option<usize>,
    written: &mut usize,
    sink: Sink<'_>,
    metrics: &StatementMetrics,
) -> Result<(), EngineError> {
    send_all(out, limit, written, sink, metrics).await?;
    if let Some(p) = sink.1 {
        metrics.acknowledged(p.context()).await?;
    }
    Ok(())
}

/// [`write_all`] without waiting for the broker to acknowledge what was
/// sent (a keyed task waits once, before it checkpoints).
async fn send_all(
    out: Vec<Changes>,
    limit: Option<usize>,
    written: &mut usize,
    (sink, producer, results): Sink<'_>,
    metrics: &StatementMetrics,
) -> Result<(), EngineError> {
    for batch in out {
        let batch = match limit {
            Some(l) if *written + batch.num_rows() > l => batch.slice(0, l - *written),
            _ => batch,
        };
        *written += batch.num_rows();
        write_batch(sink, producer, results, &batch, metrics).await?;
        metrics
            .records_out
            .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
    }
    Ok(())
}

async fn write_batch(
    sink: &SinkSpec,
    producer: Option<&SinkProducer>,
    results: Option<&Arc<ResultsBuffer>>,
    changes: &Changes,
    metrics: &StatementMetrics,
) -> Result<(), EngineError> {
    let batch = &changes.batch;
    match sink {
        SinkSpec::Results => {
            let rows = result_rows(batch)?
                .into_iter()
                .enumerate()
                .map(|(i, row)| ResultRow {
                    op: changes.op(i) as u8,
                    row,
                })
                .collect();
            results
                .expect("a SELECT has a results buffer")
                .push(rows)
                .await;
        }
        SinkSpec::Table { table, .. } => {
            let producer = producer.expect("an INSERT has a producer");
            send_changes(table, producer, changes, metrics).await?;
        }
        SinkSpec::Tables(sinks) => {
            let producer = producer.expect("a statement set has a producer");
            // The tag column says which INSERT each row is for.
            let tags = batch
                .column(0)
                .as_primitive_opt::<arrow::datatypes::Int32Type>()
                .ok_or_else(|| {
                    EngineError::Plan("a statement set's rows have no INSERT tag".into())
                })?;
            for (i, sink) in sinks.iter().enumerate() {
                let mine = arrow::compute::kernels::cmp::eq(
                    tags,
                    &arrow::array::Int32Array::new_scalar(i as i32),
                )?;
                if mine.true_count() == 0 {
                    continue;
                }
                let rows = changes.filter(&mine)?;
                let n = sink.schema.fields().len();
                let columns =
                    rows.batch.columns()[sink.first_column..sink.first_column + n].to_vec();
                let own = Changes {
                    batch: RecordBatch::try_new(sink.schema.clone(), columns)?,
                    ops: rows.ops,
                };
                send_changes(&sink.table, producer, &own, metrics).await?;
            }
        }
    }
    Ok(())
}

/// Sends `changes` to `table`'s topic, waiting for room when the
/// producer's queue is full (not for the broker's acknowledgements).
async fn send_changes(
    table: &weir_catalog::TableDef,
    producer: &SinkProducer,
    changes: &Changes,
    metrics: &StatementMetrics,
) -> Result<(), EngineError> {
    let records = kafka_changes(table, changes)?;
    let retract = table.changelog_mode() == "retract";
    let acks = producer.context();
    // The records' time, read once per batch rather than by librdkafka
    // once per record.
    let now = now_ms();
    for (i, (key, value)) in records.iter().enumerate() {
        let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&table.topic).timestamp(now);
        if let Some(k) = key {
            rec = rec.key(&k[..]);
        }
        if let Some(v) = value {
            rec = rec.payload(&v[..]);
        }
        if retract {
            rec = rec.headers(rdkafka::message::OwnedHeaders::new().insert(
                rdkafka::message::Header {
                    key: OP_HEADER,
                    value: Some(op_header(changes, i)),
                },
            ));
        }
        loop {
            acks.sending();
            match producer.send(rec) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    r,
                )) => {
                    acks.unsent();
                    rec = r;
                    // The queue drains as the broker acknowledges:
                    // wait for that rather than spin.
                    metrics.acknowledged(acks).await?;
                }
                Err((e, _)) => {
                    acks.unsent();
                    // What was sent before must not be left pending.
                    let _ = acks.wait().await;
                    return Err(e.into());
                }
            }
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn read_branch(
    members: Vec<(usize, Branch)>,
    role: &crate::runtime::exchange::TaskRole,
    kafka: &weir_catalog::KafkaConnection,
    key: &str,
    offsets: HashMap<i32, i64>,
    idle_ms: Option<i64>,
    tx: &mpsc::Sender<Result<Progress, EngineError>>,
    stop: &CancellationToken,
    metrics: &StatementMetrics,
    events: Arc<dyn StatementEvents>,
) -> Result<(), EngineError> {
    let (index, branch) = &members[0];
    let spec = match &branch.source {
        BranchSource::Values(batch) => {
            metrics
                .records_in
                .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
            let out = branch.process(batch.clone(), None)?;
            let _ = tx
                .send(Ok(Progress {
                    batch: out,
                    offsets: vec![],
                    branch: *index,
                    watermark: Some(i64::MAX),
                    idle: false,
                    records: batch.num_rows() as u64,
                }))
                .await;
            return Ok(());
        }
        BranchSource::Kafka(spec) => spec.clone(),
    };
    // What the reader learns (a watermark, idleness, the end) every branch
    // it feeds learns; false once the statement no longer listens.
    let tell_all = |p: Progress| {
        let members = &members;
        async move {
            for (i, _) in members {
                let p = Progress {
                    branch: *i,
                    ..p.clone()
                };
                if tx.send(Ok(p)).await.is_err() {
                    return false;
                }
            }
            true
        }
    };
    let topic = spec.table.topic.clone();
    let decoder = SourceDecoder::new(&spec)?;
    let group = consumer_group(key);
    let (consumer, partitions): (crate::connector::kafka::SourceConsumer, Vec<i32>) =
        source_consumer(
            kafka,
            &group,
            &topic,
            spec.startup,
            &offsets,
            spec.bounded,
            |p| role.reads(p),
        )
        .await?;
    if partitions.is_empty() && !spec.bounded {
        // More tasks than partitions: this one has none, and holds no
        // watermark back.
        let p = Progress {
            batch: None,
            offsets: vec![],
            branch: 0,
            watermark: None,
            idle: true,
            records: 0,
        };
        if tell_all(p).await {
            stop.cancelled().await;
        }
        return Ok(());
    }
    // A bounded source: the partitions still to read, and where each ends.
    let mut bound: Option<HashMap<i32, i64>> = if spec.bounded {
        Some(
            crate::connector::kafka::end_offsets(
                kafka,
                &topic,
                &partitions,
                spec.startup,
                &offsets,
            )
            .await?,
        )
    } else {
        None
    };
    // The next offset expected per partition, to notice records the broker
    // skipped over.
    let mut expected: HashMap<i32, i64> = offsets.clone();
    let mut gap_logged = false;
    let watermark_expr = {
        let df = datafusion::common::DFSchema::try_from(spec.schema.as_ref().clone())?;
        datafusion::physical_expr::create_physical_expr(
            &spec.watermark,
            &df,
            &datafusion::execution::context::ExecutionProps::new(),
            &Default::default(),
        )?
    };
    let owned = partitions.clone();
    let mut lag = InputLag::default();
    let mut tracker = PartitionWatermarks::new(partitions, idle_ms, now_ms());
    let mut sent_watermark: Option<i64> = None;
    let mut sent_idle = false;
    let dlq = match decoder.mode {
        ErrorMode::Log => Some((
            plain_producer(kafka)?,
            spec.table
                .option("error-handling.log.target")
                .unwrap_or("error_log")
                .to_string(),
        )),
        _ => None,
    };
    if let Some((_, target)) = &dlq {
        let admin =
            weir_catalog::KafkaAdmin::new(kafka).map_err(|e| EngineError::Plan(e.to_string()))?;
        admin
            .create_topic(target, 1, &[])
            .await
            .map_err(|e| EngineError::Plan(e.to_string()))?;
    }
    let mut broker_down_logged = false;
    let queue = crate::connector::kafka::ConsumerQueue::of(&consumer);
    let started = std::time::Instant::now();
    loop {
        if bound.as_ref().is_some_and(HashMap::is_empty) {
            // Read to where it ended when the statement started: the
            // source is done, and its end passes every window.
            tell_all(Progress {
                batch: None,
                offsets: vec![],
                branch: 0,
                watermark: Some(i64::MAX),
                idle: false,
                records: 0,
            })
            .await;
            return Ok(());
        }
        if bound.is_none() {
            lag.observe(
                &consumer,
                &topic,
                owned.iter().map(|p| (*p, expected.get(p).copied())),
                metrics,
            );
        }
        // The first record is awaited; whatever else librdkafka has
        // fetched by then is taken in one call.
        let mut first = None;
        let deadline = tokio::time::Instant::now() + POLL_WINDOW;
        tokio::select! {
            _ = stop.cancelled() => {}
            m = tokio::time::timeout_at(deadline, consumer.recv()) => match m {
                Ok(Ok(m)) => first = Some(m),
                Ok(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                    if let Some(b) = bound.as_mut() {
                        b.remove(&p);
                    }
                }
                Ok(Err(e)) if transient(&e) || settling(&e, started) => {
                    // librdkafka reconnects by itself; the statement waits
                    // for the broker rather than failing.
                    if !broker_down_logged {
                        broker_down_logged = true;
                        tracing::warn!(topic = %topic, error = %e, "the broker is unreachable, or does not know the topic yet; waiting for it");
                    }
                }
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => {}
            },
        }
        let more = match first {
            Some(_) => queue.drain(POLL_MAX_RECORDS - 1),
            None => queue.drain(0),
        };
        if first.is_none() {
            if stop.is_cancelled() {
                return Ok(());
            }
            // Time passing can make a partition idle and move the
            // watermark, or make the whole source idle.
            let now = now_ms();
            let wm = tracker.current(now);
            let idle = tracker.all_idle(now);
            if (wm.is_some() && wm > sent_watermark) || idle != sent_idle {
                sent_watermark = sent_watermark.max(wm);
                sent_idle = idle;
                let p = Progress {
                    batch: None,
                    offsets: vec![],
                    branch: 0,
                    watermark: wm,
                    idle,
                    records: 0,
                };
                if !tell_all(p).await {
                    return Ok(());
                }
            }
            continue;
        }
        let work = std::time::Instant::now();
        let mut drained = Vec::with_capacity(more.len());
        let mut ended: Vec<i32> = vec![];
        for m in more.messages() {
            match m {
                Ok(m) => drained.push(m),
                // Read to its end: after the records before it in this
                // batch, which count.
                Err(rdkafka::error::KafkaError::PartitionEOF(p)) => ended.push(p),
                Err(e) if transient(&e) || settling(&e, started) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let first_headers: Vec<crate::connector::decode::Header<'_>> = first
            .iter()
            .flat_map(|m| {
                m.headers()
                    .map(|h| h.iter().map(|h| (h.key, h.value)).collect::<Vec<_>>())
            })
            .flatten()
            .collect();
        let raw: Vec<RawRecord<'_>> = first
            .iter()
            .map(|m| RawRecord {
                headers: &first_headers,
                key: m.key(),
                value: m.payload(),
                partition: m.partition(),
                offset: m.offset(),
                timestamp_ms: m.timestamp().to_millis().unwrap_or(0),
            })
            .chain(drained.iter().map(|m| RawRecord {
                headers: &m.headers,
                key: m.key,
                value: m.value,
                partition: m.partition,
                offset: m.offset,
                timestamp_ms: m.timestamp_ms.unwrap_or(0),
            }))
            .collect();
        let raw = match bound.as_mut() {
            // A bounded source reads up to where each partition ended at
            // start, and no further.
            Some(b) => {
                let ends = b.clone();
                for r in &raw {
                    if ends
                        .get(&r.partition)
                        .is_some_and(|end| r.offset + 1 >= *end)
                    {
                        b.remove(&r.partition);
                    }
                }
                for p in &ended {
                    b.remove(p);
                }
                raw.into_iter()
                    .filter(|r| ends.get(&r.partition).is_some_and(|end| r.offset < *end))
                    .collect()
            }
            None => raw,
        };
        metrics
            .records_in
            .fetch_add(raw.len() as u64, Ordering::Relaxed);
        metrics
            .input_consumed
            .fetch_add(raw.len() as u64, Ordering::Relaxed);
        let mut next: HashMap<i32, i64> = HashMap::new();
        for r in &raw {
            let e = next.entry(r.partition).or_insert(r.offset + 1);
            *e = (*e).max(r.offset + 1);
            let want = expected.entry(r.partition).or_insert(r.offset);
            if r.offset > *want {
                // Every transaction leaves such a gap (its commit marker):
                // say it once per source, count them all.
                if !gap_logged {
                    gap_logged = true;
                    tracing::warn!(
                    topic = %topic,
                    partition = r.partition,
                    expected = *want,
                    got = r.offset,
                    "the broker served a later offset than the next one expected; \
                     unless the topic is transactional or compacted, it lost records"
                    );
                }
                metrics
                    .source_offset_gaps
                    .fetch_add((r.offset - *want) as u64, Ordering::Relaxed);
            }
            *want = (*want).max(r.offset + 1);
        }
        for id in decoder.missing_schemas(&raw) {
            let schema = events.schema(id).await.map_err(|e| {
                EngineError::Plan(format!("the schema registry cannot be read: {e}"))
            })?;
            decoder.learn_schema(id, schema);
        }
        let (batch, bad) = decoder.decode(&raw)?;
        if !bad.is_empty() {
            handle_bad(
                &topic,
                &bad,
                decoder.mode,
                dlq.as_ref(),
                metrics,
                events.as_ref(),
            )
            .await?;
        }
        let admitted = match batch {
            Some(b) if b.num_rows() > 0 => {
                let (b, dropped) = admit_batch(
                    &mut tracker,
                    &watermark_expr,
                    &spec.table,
                    b,
                    &row_partitions(&raw, &bad),
                    now_ms(),
                )?;
                metrics
                    .records_late_at_source
                    .fetch_add(dropped as u64, Ordering::Relaxed);
                Some(b)
            }
            _ => None,
        };
        // Each branch the reader feeds runs its own operators on the rows.
        let mut outs = Vec::with_capacity(members.len());
        for (_, branch) in &members {
            outs.push(match &admitted {
                Some(b) => branch.process(b.clone(), sent_watermark)?,
                None => None,
            });
        }
        let watermark = tracker.current(now_ms());
        if watermark > sent_watermark {
            sent_watermark = watermark;
        }
        // Records arrived: the source is active again.
        sent_idle = false;
        let mut offsets: Vec<(i32, i64)> = next.into_iter().collect();
        offsets.sort();
        metrics.read_busy_since(work);
        for (k, ((index, _), out)) in members.iter().zip(outs).enumerate() {
            let p = Progress {
                batch: out,
                offsets: offsets.clone(),
                branch: *index,
                watermark,
                idle: false,
                // The records are counted once, with the first branch.
                records: if k == 0 { raw.len() as u64 } else { 0 },
            };
            if tx.send(Ok(p)).await.is_err() {
                return Ok(());
            }
        }
        if stop.is_cancelled() {
            return Ok(());
        }
    }
}

/// How long after a source starts a broker may still call its topic or a
/// partition unknown: a topic created a moment ago reaches every broker's
/// metadata a little later. Past this, the error fails the statement.
const TOPIC_SETTLE: Duration = Duration::from_secs(30);

/// Whether `e` is a new topic not yet known everywhere, early enough in
/// the source's life to wait for it.
fn settling(e: &rdkafka::error::KafkaError, started: std::time::Instant) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    started.elapsed() < TOPIC_SETTLE
        && matches!(
            e.rdkafka_error_code(),
            Some(C::UnknownTopicOrPartition | C::UnknownPartition | C::UnknownTopic)
        )
}

/// Whether a consumer error is the broker being away for a while (it
/// reconnects by itself), not something wrong with what is read.
fn transient(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::AllBrokersDown
                | C::BrokerTransportFailure
                | C::Resolve
                | C::OperationTimedOut
                | C::RequestTimedOut
                | C::NetworkException
                | C::LeaderNotAvailable
                | C::NotLeaderForPartition
                | C::BrokerNotAvailable
                | C::KafkaStorageError
                | C::CoordinatorNotAvailable
                | C::NotCoordinator
        )
    )
}

/// The error that fails a statement on a record that does not decode.
pub(crate) fn bad_record_error(topic: &str, b: &BadRecord) -> EngineError {
    EngineError::BadRecord {
        topic: topic.to_string(),
        partition: b.partition,
        offset: b.offset,
        reason: format!(
            "{}; set 'error-handling.mode' = 'ignore' or 'log' on the table to skip such records",
            b.reason
        ),
    }
}

async fn handle_bad(
    topic: &str,
    bad: &[BadRecord],
    mode: ErrorMode,
    dlq: Option<&(FutureProducer, String)>,
    metrics: &StatementMetrics,
    events: &dyn StatementEvents,
) -> Result<(), EngineError> {
    if mode == ErrorMode::Fail {
        return Err(bad_record_error(topic, &bad[0]));
    }
    metrics
        .records_skipped
        .fetch_add(bad.len() as u64, Ordering::Relaxed);
    if let Some((producer, target)) = dlq {
        for b in bad {
            let value = serde_json::json!({
                "topic": topic,
                "partition": b.partition,
                "offset": b.offset,
                "error_message": b.reason,
                "raw_key": b.key.as_ref().map(|k| String::from_utf8_lossy(k).into_owned()),
                "raw_value": b.value.as_ref().map(|v| String::from_utf8_lossy(v).into_owned()),
            })
            .to_string();
            producer
                .send(
                    FutureRecord::<(), String>::to(target).payload(&value),
                    Duration::from_secs(30),
                )
                .await
                .map_err(|(e, _)| EngineError::Kafka(e))?;
        }
        let first = &bad[0];
        events
            .exception(&format!(
                "skipped {} record(s) of topic '{topic}' that did not decode (first: partition {} offset {}: {}); written to '{target}'",
                bad.len(),
                first.partition,
                first.offset,
                first.reason
            ))
            .await;
    }
    Ok(())
}
