//! The two halves of a parallel statement (see
//! [`crate::runtime::exchange`]): the writer a source task sends its rows
//! and watermarks into the repartition topic with, and the loop of a keyed
//! task, which reads its partitions of that topic and runs the keyed
//! operator with one state per partition.
//!
//! Delivery across the exchange is exactly-once where the broker has Kafka
//! transactions: each task commits its output and the offsets of what it
//! read in one transaction per checkpoint interval, a keyed task's offset
//! of each partition naming that partition's checkpoint (see
//! [`crate::connector::transaction`]). Elsewhere it is at-least-once: a
//! source task stores its source offsets once the broker has acknowledged
//! the repartition records they led to, and a keyed task checkpoints each
//! partition's state with the repartition offset it covers; a worker lost
//! in between makes the records after the last stored position be read,
//! and counted, again.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;

use arrow::array::RecordBatch;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use weir_sql_gateway::stages::Shape;

use super::{now_ms, send_all, MemoryWatch, Outcome, StatementMetrics, StatementTask};
use crate::connector::kafka::{sink_producer, SinkProducer};
use crate::connector::transaction::{Position, Transactions};
use crate::operators::changelog::Changes;
use crate::runtime::checkpoint::{Checkpointer, Snapshot};
use crate::runtime::exchange::{
    decode_changes, encode_changes, header, read_header, ExchangeSpec, Partitioner, RecordKind,
    TaskRole, HEADER,
};
use crate::runtime::pipeline::{compile, Stages, Target};
use crate::EngineError;

/// How often a source task repeats its watermark into every partition even
/// when it has not moved (a keyed task that restarted hears it again).
const WATERMARK_REPEAT: Duration = Duration::from_secs(1);
/// The least time between two watermarks a source task sends.
const WATERMARK_EVERY: Duration = Duration::from_millis(100);

/// Sends a source task's rows and watermarks into the repartition topic.
pub(super) struct ExchangeWriter {
    spec: ExchangeSpec,
    writer: u32,
    producer: Arc<SinkProducer>,
    /// Whether the producer is transactional: its records reach readers
    /// when the task commits, so nothing waits for each batch's acks.
    transactional: bool,
    /// Whether anything was sent since [`ExchangeWriter::take_sent`].
    sent_any: bool,
    /// The left (or only) input's partitioner, and a join's right one.
    left: Partitioner,
    right: Option<Partitioner>,
    /// The watermark last sent, when, and one waiting to be sent.
    sent: Option<i64>,
    sent_at: Instant,
    pending: Option<i64>,
    idle_sent: bool,
    /// The task's counters: time waiting for the broker is backpressure.
    metrics: Arc<StatementMetrics>,
}

impl ExchangeWriter {
    /// The writer of a source task, `None` for one that writes its sink;
    /// `transactional`: the task's transactional producer, when it writes
    /// exactly-once.
    pub(super) fn of(
        task: &StatementTask,
        transactional: Option<Arc<SinkProducer>>,
        metrics: Arc<StatementMetrics>,
    ) -> Result<Option<ExchangeWriter>, EngineError> {
        let TaskRole::Source {
            index,
            exchange: Some(spec),
            ..
        } = &task.role
        else {
            return Ok(None);
        };
        let Shape::Keyed { left, right, .. } = Shape::of(&task.plan) else {
            return Err(EngineError::Plan(
                "this statement was started with a repartition topic, but its plan has no keyed operator now"
                    .into(),
            ));
        };
        Ok(Some(ExchangeWriter {
            spec: spec.clone(),
            writer: *index,
            transactional: transactional.is_some(),
            producer: match transactional {
                Some(p) => p,
                None => Arc::new(sink_producer(&task.kafka, None)?),
            },
            sent_any: false,
            left: Partitioner::new(&left, spec.partitions)?,
            right: right
                .as_ref()
                .map(|r| Partitioner::new(r, spec.partitions))
                .transpose()?,
            sent: None,
            sent_at: Instant::now() - WATERMARK_REPEAT,
            pending: None,
            idle_sent: false,
            metrics,
        }))
    }

    /// Whether anything was sent since the last call (a transactional
    /// task has something to commit).
    pub(super) fn take_sent(&mut self) -> bool {
        std::mem::take(&mut self.sent_any)
    }

    /// Waits until the broker has every record sent, unless the task's
    /// commit does that.
    async fn acknowledged(&self) -> Result<(), EngineError> {
        if !self.transactional {
            self.metrics.acknowledged(self.producer.context()).await?;
        }
        Ok(())
    }

    fn send(&self, partition: u32, kind: RecordKind, right: bool, value: &[u8]) -> SendResult {
        let h = header(kind, right, self.writer);
        let rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&self.spec.topic)
            .partition(partition as i32)
            .payload(value)
            .headers(OwnedHeaders::new().insert(Header {
                key: HEADER,
                value: Some(&h[..]),
            }));
        let acks = self.producer.context();
        acks.sending();
        match self.producer.send(rec) {
            Ok(()) => SendResult::Sent,
            Err((e, _)) => {
                acks.unsent();
                match e {
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ) => SendResult::Full,
                    e => SendResult::Failed(e),
                }
            }
        }
    }

    /// Sends one record, waiting for room in the producer's queue.
    async fn send_one(
        &mut self,
        partition: u32,
        kind: RecordKind,
        right: bool,
        value: &[u8],
    ) -> Result<(), EngineError> {
        self.sent_any = true;
        loop {
            match self.send(partition, kind, right, value) {
                SendResult::Sent => return Ok(()),
                SendResult::Full => self.metrics.acknowledged(self.producer.context()).await?,
                SendResult::Failed(e) => {
                    let _ = self.producer.context().wait().await;
                    return Err(e.into());
                }
            }
        }
    }

    /// Writes a batch of the operator's input (`right`: a join's right
    /// input), each row into the partition of its key, and waits until the
    /// broker has them.
    pub(super) async fn rows(
        &mut self,
        right: bool,
        batch: RecordBatch,
    ) -> Result<(), EngineError> {
        let c = Changes::inserts(batch);
        let parts = match (&mut self.right, right) {
            (Some(r), true) => r.split(&c)?,
            _ => self.left.split(&c)?,
        };
        for (k, part) in parts {
            let value = encode_changes(&part)?;
            self.send_one(k, RecordKind::Rows, right, &value).await?;
        }
        // Rows the task read again after a move would be sent twice if the
        // task acknowledged its offsets before the broker had them.
        self.acknowledged().await?;
        self.idle_sent = false;
        Ok(())
    }

    /// The task's watermark moved to `wm`: sent to every partition, at
    /// most every [`WATERMARK_EVERY`].
    pub(super) async fn watermark(&mut self, wm: i64) -> Result<(), EngineError> {
        self.pending = Some(self.pending.map_or(wm, |p| p.max(wm)));
        self.flush(false).await
    }

    /// Sends a waiting watermark when it is due, or the last one again
    /// after [`WATERMARK_REPEAT`] (`tick`: called by the task's timer).
    pub(super) async fn flush(&mut self, tick: bool) -> Result<(), EngineError> {
        let due = self.sent_at.elapsed() >= WATERMARK_EVERY;
        let wm = match self.pending {
            Some(w) if due && Some(w) > self.sent => w,
            _ if tick && self.sent_at.elapsed() >= WATERMARK_REPEAT => match self.sent {
                Some(w) => w,
                None => return Ok(()),
            },
            _ => return Ok(()),
        };
        self.pending = None;
        self.sent = Some(wm);
        self.sent_at = Instant::now();
        self.everywhere(RecordKind::Watermark, &wm.to_le_bytes())
            .await
    }

    /// Every source of the task is idle: it holds no partition's watermark
    /// back until it sends rows again.
    pub(super) async fn idle(&mut self) -> Result<(), EngineError> {
        if self.idle_sent {
            return Ok(());
        }
        self.idle_sent = true;
        self.everywhere(RecordKind::Idle, &[]).await
    }

    /// The task's input ended: the end of time as its watermark, then an
    /// end marker, in every partition.
    pub(super) async fn end(&mut self) -> Result<(), EngineError> {
        self.everywhere(RecordKind::Watermark, &i64::MAX.to_le_bytes())
            .await?;
        self.everywhere(RecordKind::End, &[]).await
    }

    async fn everywhere(&mut self, kind: RecordKind, value: &[u8]) -> Result<(), EngineError> {
        for k in 0..self.spec.partitions {
            // Both sides of a join hear it; the side is only read for rows.
            self.send_one(k, kind, false, value).await?;
        }
        self.acknowledged().await?;
        Ok(())
    }
}

enum SendResult {
    Sent,
    Full,
    Failed(rdkafka::error::KafkaError),
}

/// What a keyed task knows of one source task, in one partition.
#[derive(Debug, Clone, Copy, Default)]
struct Upstream {
    watermark: Option<i64>,
    idle: bool,
    ended: bool,
}

/// One repartition partition a keyed task owns: its operator state, and
/// where it is in the topic.
struct Part {
    stages: Stages,
    upstream: Vec<Upstream>,
    /// The watermark last passed to the operator.
    advanced: Option<i64>,
    /// The next offset to read.
    next: i64,
    /// Anything processed since its last checkpoint.
    dirty: bool,
    checkpoints: Option<Checkpointer>,
    checkpoint_id: u64,
}

impl Part {
    /// The partition's watermark: the minimum over the source tasks that
    /// are not idle, once every one of them has sent one.
    fn watermark(&self) -> Option<i64> {
        let mut active = self.upstream.iter().filter(|u| !u.idle).peekable();
        active.peek()?;
        active.try_fold(i64::MAX, |acc, u| u.watermark.map(|w| acc.min(w)))
    }

    fn ended(&self) -> bool {
        self.upstream.iter().all(|u| u.ended)
    }
}

/// Runs a keyed task until it is stopped, its input ends or it fails.
pub(super) async fn run_keyed(
    task: &StatementTask,
    cancel: &CancellationToken,
    metrics: &Arc<StatementMetrics>,
) -> Result<Outcome, EngineError> {
    let TaskRole::Keyed {
        exchange, upstream, ..
    } = &task.role
    else {
        unreachable!("only called for keyed tasks")
    };
    let owned = task.role.owned();
    let weir_sql_gateway::SinkSpec::Table { .. } = &task.plan.sink else {
        return Err(EngineError::Plan(
            "a keyed stage writes into a table, not a SELECT's results".into(),
        ));
    };
    // Exactly-once: where the group names a partition's checkpoint, the
    // partition resumes from it (a checkpoint written after it was never
    // committed); elsewhere from the latest one.
    let (txn, committed) =
        match super::open_transactions(task, std::slice::from_ref(&exchange.topic), metrics).await?
        {
            Some((t, c)) => (Some(t), c),
            None => (None, vec![]),
        };
    let mut parts: BTreeMap<u32, Part> = BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for &k in &owned {
        let compiled = compile(&task.plan)?;
        // The keyed operator is stage 0, fed from the repartition topic;
        // stateful operators stacked on it on a common key run above it.
        let mut stages = compiled.stages;
        if stages.stages.is_empty() {
            return Err(EngineError::Plan(
                "a keyed stage needs a stateful operator, this plan has none".into(),
            ));
        }
        stages.set_state_ttl(task.state_ttl.map(|d| d.as_millis() as i64));
        stages.set_memory_limit(Some(task.memory_limit.hard as usize));
        let checkpoints = task
            .checkpoints
            .as_ref()
            .map(|c| c.child(&format!("partition-{k}")));
        let mut next = 0;
        let mut checkpoint_id = 0;
        if let Some(cp) = &checkpoints {
            let named = committed.iter().find(|p| p.partition == k as i32);
            let restored = match named {
                Some(p) if p.checkpoint == 0 => {
                    next = p.offset;
                    None
                }
                Some(p) => Some((p.checkpoint, cp.load(p.checkpoint).await?)),
                None => cp.latest().await?,
            };
            if let Some((id, snapshot)) = restored {
                stages.restore(&snapshot.stages)?;
                next = snapshot
                    .offsets
                    .get(&exchange.topic)
                    .and_then(|o| o.get(&(k as i32)))
                    .copied()
                    .unwrap_or(0);
                checkpoint_id = id;
            }
        }
        assignment.add_partition_offset(&exchange.topic, k as i32, Offset::Offset(next))?;
        parts.insert(
            k,
            Part {
                stages,
                upstream: vec![Upstream::default(); *upstream as usize],
                advanced: None,
                next,
                dirty: false,
                checkpoints,
                checkpoint_id,
            },
        );
    }
    tracing::info!(statement = %task.key, partitions = ?owned, "keyed task starts");
    let consumer: StreamConsumer = task
        .kafka
        .client_config()
        .set("group.id", super::keyed_consumer_group(&task.key))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("broker.address.family", "v4")
        .set("fetch.wait.max.ms", "50")
        .set("isolation.level", "read_committed")
        .create()?;
    if assignment.count() > 0 {
        consumer.assign(&assignment)?;
    }
    let plain = match &txn {
        None => Some(sink_producer(&task.kafka, None)?),
        Some(_) => None,
    };
    let producer = txn
        .as_ref()
        .map(Transactions::producer)
        .or(plain.as_ref())
        .expect("one of the two");
    let result = keyed_loop(
        task,
        cancel,
        metrics,
        &mut parts,
        &consumer,
        producer,
        txn.as_ref(),
    )
    .await;
    if let (Err(_), Some(t)) = (&result, &txn) {
        t.abort().await;
    }
    result
}

/// The loop of [`run_keyed`], writing with `producer` (`txn`'s, when the
/// task is exactly-once).
#[allow(clippy::too_many_arguments)]
async fn keyed_loop(
    task: &StatementTask,
    cancel: &CancellationToken,
    metrics: &Arc<StatementMetrics>,
    parts: &mut BTreeMap<u32, Part>,
    consumer: &StreamConsumer,
    producer: &SinkProducer,
    txn: Option<&Transactions>,
) -> Result<Outcome, EngineError> {
    let TaskRole::Keyed { exchange, .. } = &task.role else {
        unreachable!("only called for keyed tasks")
    };
    let mut written = 0usize;
    let interval = task
        .checkpoints
        .as_ref()
        .map_or(Duration::from_secs(3600), |c| c.interval);
    let mut checkpoint_tick = tokio::time::interval(interval);
    checkpoint_tick.tick().await;
    let timers = parts.values().any(|p| p.stages.has_processing_timers());
    let mut proctime_tick = tokio::time::interval(super::PROCESSING_TIME_TICK);
    proctime_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut memory = MemoryWatch {
        limit: task.memory_limit,
        degraded: false,
    };
    let mut watched_at = Instant::now();
    let mut lag = super::InputLag::default();
    let sink = &task.plan.sink;
    let outcome = loop {
        if !parts.is_empty() && parts.values().all(Part::ended) {
            break Outcome::Completed;
        }
        tokio::select! {
            _ = cancel.cancelled() => break Outcome::Stopped,
            m = consumer.recv(), if !parts.is_empty() => {
                let work = metrics.busy_start();
                let mut out = vec![];
                let mut next = Some(m);
                // What has arrived already is taken in the same turn.
                let mut taken = 0;
                while let Some(m) = next.take() {
                    match m {
                        Ok(m) => on_record(parts, &m, &mut out)?,
                        Err(e) if super::transient(&e) => {}
                        Err(e) => return Err(e.into()),
                    }
                    taken += 1;
                    if taken < DRAIN_RECORDS {
                        next = consumer.recv().now_or_never();
                    }
                }
                send_all(out, None, &mut written, (sink, Some(producer), None), metrics).await?;
                metrics.input_consumed.fetch_add(taken as u64, Ordering::Relaxed);
                metrics.busy_since(work);
                lag.observe(
                    consumer,
                    &exchange.topic,
                    parts.iter().map(|(k, p)| (*k as i32, Some(p.next))),
                    metrics,
                );
                if watched_at.elapsed() >= Duration::from_secs(1) {
                    watched_at = Instant::now();
                    observe(parts, metrics);
                    let by_stage: Vec<(&'static str, usize)> = parts
                        .values()
                        .flat_map(|p| p.stages.state_bytes_by_stage())
                        .collect();
                    memory.check(by_stage, None, metrics, task.events.as_ref()).await?;
                }
            }
            _ = checkpoint_tick.tick() => {
                // A checkpoint covers only output the broker has.
                producer.context().wait().await?;
                checkpoint_parts(parts, &exchange.topic, metrics, txn).await?;
            }
            _ = proctime_tick.tick(), if timers => {
                let now = now_ms();
                let mut out = vec![];
                for p in parts.values_mut() {
                    let fired = p.stages.on_processing_time(now)?;
                    p.dirty |= !fired.is_empty();
                    out.extend(fired);
                }
                send_all(out, None, &mut written, (sink, Some(producer), None), metrics).await?;
            }
        }
    };
    producer.context().wait().await?;
    // Everything processed is written and acknowledged: checkpoint it, so
    // that whichever task owns a partition next resumes where this one
    // stopped.
    checkpoint_parts(parts, &exchange.topic, metrics, txn).await?;
    observe(parts, metrics);
    Ok(outcome)
}

/// The most records a keyed task takes in one turn.
const DRAIN_RECORDS: usize = 256;

/// Applies one record of the repartition topic to its partition; what the
/// operator emits goes into `out`.
fn on_record(
    parts: &mut BTreeMap<u32, Part>,
    m: &rdkafka::message::BorrowedMessage<'_>,
    out: &mut Vec<Changes>,
) -> Result<(), EngineError> {
    let k = m.partition() as u32;
    let Some(part) = parts.get_mut(&k) else {
        return Ok(());
    };
    part.next = m.offset() + 1;
    part.dirty = true;
    let h = m
        .headers()
        .and_then(|hs| hs.iter().find(|h| h.key == HEADER).and_then(|h| h.value))
        .ok_or_else(|| {
            EngineError::Plan(format!(
                "record {} of repartition partition {k} has no '{HEADER}' header",
                m.offset()
            ))
        })?;
    let (kind, right, writer) = read_header(h)?;
    let slot = part.upstream.get_mut(writer as usize);
    match kind {
        RecordKind::Rows => {
            let c = decode_changes(m.payload().unwrap_or_default())?;
            if let Some(u) = slot {
                u.idle = false;
            }
            part.stages.set_processing_time(now_ms());
            out.extend(
                part.stages
                    .process_changes(Target::Stage { index: 0, right }, c)?,
            );
        }
        RecordKind::Watermark => {
            let bytes: [u8; 8] = m.payload().and_then(|p| p.try_into().ok()).ok_or_else(|| {
                EngineError::Plan("a malformed watermark record in a repartition topic".into())
            })?;
            if let Some(u) = slot {
                let w = i64::from_le_bytes(bytes);
                u.watermark = Some(u.watermark.map_or(w, |o| o.max(w)));
                u.idle = false;
            }
        }
        RecordKind::Idle => {
            if let Some(u) = slot {
                u.idle = true;
            }
        }
        RecordKind::End => {
            if let Some(u) = slot {
                u.ended = true;
            }
        }
    }
    if let Some(wm) = part.watermark().filter(|w| Some(*w) > part.advanced) {
        part.advanced = Some(wm);
        out.extend(part.stages.advance(wm)?);
    }
    Ok(())
}

/// Records the partitions' state sizes and late rows in `metrics`.
fn observe(parts: &BTreeMap<u32, Part>, metrics: &StatementMetrics) {
    let (mut w, mut g, mut late, mut bytes) = (0, 0, 0, 0);
    for p in parts.values() {
        let (pw, pg) = p.stages.state_size();
        w += pw;
        g += pg;
        late += p.stages.late();
        bytes += p.stages.state_bytes();
    }
    metrics.state_windows.store(w as u64, Ordering::Relaxed);
    metrics.state_groups.store(g as u64, Ordering::Relaxed);
    metrics.records_late.store(late, Ordering::Relaxed);
    metrics.state_bytes.store(bytes as u64, Ordering::Relaxed);
}

/// Checkpoints every partition that processed something since its last.
/// An exactly-once task (`txn`) then commits its output with every owned
/// partition's offset naming that partition's checkpoint, before the new
/// checkpoints become the latest.
async fn checkpoint_parts(
    parts: &mut BTreeMap<u32, Part>,
    topic: &str,
    metrics: &StatementMetrics,
    txn: Option<&Transactions>,
) -> Result<(), EngineError> {
    let mut written = vec![];
    for (k, p) in parts.iter_mut() {
        let Some(cp) = &p.checkpoints else { continue };
        if !p.dirty {
            continue;
        }
        let snapshot = Snapshot {
            offsets: BTreeMap::from([(topic.to_string(), BTreeMap::from([(*k as i32, p.next)]))]),
            stages: p.stages.snapshot()?,
        };
        cp.write(p.checkpoint_id + 1, &snapshot).await?;
        written.push((*k, snapshot.stages.len()));
    }
    if written.is_empty() {
        return Ok(());
    }
    if let Some(t) = txn {
        let positions: Vec<Position> = parts
            .iter()
            .map(|(k, p)| Position {
                topic: topic.to_string(),
                partition: *k as i32,
                offset: p.next,
                checkpoint: p.checkpoint_id + u64::from(written.iter().any(|(w, _)| w == k)),
            })
            .collect();
        t.commit_positions(&positions).await?;
        metrics.transactions.fetch_add(1, Ordering::Relaxed);
    }
    for (k, stages) in written {
        let p = parts.get_mut(&k).expect("written above");
        p.checkpoint_id += 1;
        p.dirty = false;
        if let Some(cp) = &p.checkpoints {
            cp.publish(p.checkpoint_id, stages).await?;
        }
        metrics.checkpoints.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}
