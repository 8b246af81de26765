//! Exactly-once Kafka sinks: a statement's output between two checkpoints
//! is one Kafka transaction, committed together with the checkpoint it
//! leads to.
//!
//! The checkpoint (operator state and every source position) is written
//! first; then one transaction commits the records written since the last
//! one together with an offset commit into the statement's consumer group,
//! whose metadata names the checkpoint and the writer
//! (`weir-checkpoint:<n>@<transactional id>`). Kafka makes the two atomic:
//! read_committed consumers see the records exactly when the group names
//! checkpoint `n`. On start, the group's metadata says which checkpoint to
//! resume from, so a crash at any point between the two loses nothing and
//! writes nothing twice: a checkpoint written but not committed is ignored,
//! and its records are aborted.
//!
//! Each start writes under a transactional id of its own (the task's base
//! id and a random suffix), after fencing every writer the group's metadata
//! names (and the base id itself, which older Weirs wrote under):
//! `init_transactions` on a writer's id aborts the open transaction of an
//! older instance (a zombie worker). Writing on under the fenced id would
//! reuse its producer id, and a read_committed reader that was waiting at
//! the zombie's open transaction then skips the new records too (seen with
//! librdkafka on noida-db); a fresh id has a producer id of its own.
//! Whether the broker supports transactions is learnt at start by
//! committing one transaction holding only the group's offsets: some
//! brokers (tansu) accept the producer but refuse `EndTxn`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerGroupMetadata};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};

use crate::connector::kafka::{sink_producer, SinkProducer};
use crate::EngineError;

/// The prefix of the offset metadata naming a committed checkpoint.
const CHECKPOINT_METADATA: &str = "weir-checkpoint:";

/// How long one transactional call may block.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The transactional sink producer of one statement.
#[derive(Clone)]
pub(crate) struct Transactions {
    producer: Arc<SinkProducer>,
    group: Arc<ConsumerGroupMetadata>,
    /// This start's transactional id, named in every commit's metadata.
    writer: Arc<str>,
    /// The checkpoint the consumer group names (0: none yet).
    pub restore: u64,
}

/// Why a sink writes at-least-once.
pub(crate) type Unsupported = String;

/// Where one partition's reader resumes, as a consumer group holds it: the
/// next offset to read, and the checkpoint (of the partition's state, or 0
/// for a stateless reader) that offset goes with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Position {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub checkpoint: u64,
}

/// The prefix of a placeholder commit's metadata, which names no
/// position: it learns whether the broker supports transactions, and names
/// its writer and the checkpoint to resume from (`weir-probe:<n>@<id>`).
const PROBE_METADATA: &str = "weir-probe";

/// The metadata naming checkpoint `id`, written by `writer`.
fn checkpoint_metadata(id: u64, writer: &str) -> String {
    format!("{CHECKPOINT_METADATA}{id}@{writer}")
}

/// What a commit's metadata names: the checkpoint (`None`: none, as for
/// another client's commit), the writer, and whether its offset is a
/// position (not a placeholder's).
fn parse_metadata(meta: &str) -> (Option<u64>, Option<&str>, bool) {
    let (rest, position) = if let Some(rest) = meta.strip_prefix(CHECKPOINT_METADATA) {
        (rest, true)
    } else if let Some(rest) = meta.strip_prefix(PROBE_METADATA) {
        (rest.strip_prefix(':').unwrap_or(rest), false)
    } else {
        return (None, None, false);
    };
    let (n, writer) = match rest.split_once('@') {
        Some((n, w)) => (n, Some(w)),
        None => (rest, None),
    };
    let n = n.parse().ok();
    (n, writer, position && n.is_some())
}

/// Fences every transactional id in `writers`: `init_transactions` under
/// each aborts the transaction an older instance left open.
fn fence(
    kafka: &weir_catalog::KafkaConnection,
    writers: &std::collections::BTreeSet<String>,
    timeout_ms: u64,
) -> Result<(), KafkaError> {
    for w in writers {
        let p = sink_producer(kafka, Some((w, timeout_ms))).map_err(|e| match e {
            EngineError::Kafka(k) => k,
            e => KafkaError::ClientCreation(e.to_string()),
        })?;
        p.init_transactions(CALL_TIMEOUT)?;
    }
    Ok(())
}

/// A transactional id of this start of writer `base`.
fn fresh_writer(base: &str) -> String {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{base}.{}", &suffix[..12])
}

fn txn_error(what: &str, e: KafkaError) -> EngineError {
    EngineError::Transaction(format!("while {what}: {e}"))
}

/// Whether an error means the broker (or its permissions) does not allow
/// transactions at all, rather than a failure of this attempt.
fn unsupported(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::UnsupportedFeature
                | RDKafkaErrorCode::UnsupportedVersion
                | RDKafkaErrorCode::TransactionalIdAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed
                | RDKafkaErrorCode::InvalidTransactionTimeout
        )
    )
}

/// Offsets of the positions that are topics (not `topic#n`, a further
/// reader of the same topic, whose position only the checkpoint keeps),
/// with metadata naming checkpoint `id`.
fn group_offsets(
    offsets: &BTreeMap<String, BTreeMap<i32, i64>>,
    id: u64,
    writer: &str,
) -> Result<TopicPartitionList, EngineError> {
    let mut tpl = TopicPartitionList::new();
    for (topic, parts) in offsets.iter().filter(|(t, _)| !t.contains('#')) {
        for (p, o) in parts {
            let mut e = tpl.add_partition(topic, *p);
            e.set_offset(Offset::Offset(*o))?;
            e.set_metadata(checkpoint_metadata(id, writer));
        }
    }
    Ok(tpl)
}

/// Opens a transactional producer under a fresh id of writer `base`
/// (after fencing `base` and every writer `read` finds in consumer group
/// `group`), with what `read` reads of the group; `Ok(Err(why))` when the
/// broker refuses transactions.
#[allow(clippy::type_complexity)]
async fn start<T: Send + 'static>(
    kafka: &weir_catalog::KafkaConnection,
    group: &str,
    base: &str,
    interval: Duration,
    read: impl FnOnce(&BaseConsumer) -> Result<(T, Writers), EngineError> + Send + 'static,
) -> Result<Result<(Transactions, T), Unsupported>, EngineError> {
    let consumer: BaseConsumer = kafka
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("broker.address.family", "v4")
        .create()?;
    // Kafka refuses a timeout above its `transaction.max.timeout.ms`
    // (15 min by default).
    let timeout_ms = (interval.as_millis() as u64 * 2 + 30_000).clamp(60_000, 900_000);
    let writer = fresh_writer(base);
    let producer = sink_producer(kafka, Some((&writer, timeout_ms)))?;
    let (kafka, base) = (kafka.clone(), base.to_string());
    let (consumer, read, init) = tokio::task::spawn_blocking(move || {
        let read = read(&consumer);
        let init = match &read {
            Ok((_, writers)) => {
                let mut writers = writers.clone();
                writers.insert(base);
                fence(&kafka, &writers, timeout_ms)
                    .and_then(|()| producer.init_transactions(CALL_TIMEOUT))
                    .map(|_| producer)
            }
            Err(_) => Err(KafkaError::Canceled),
        };
        (consumer, read, init)
    })
    .await
    .map_err(|e| EngineError::Transaction(format!("to start: {e}")))?;
    let (read, _) = read?;
    let producer = match init {
        Ok(p) => p,
        Err(e) if unsupported(&e) => return Ok(Err(format!("the broker refused: {e}"))),
        Err(e) => return Err(txn_error("starting the transactional producer", e)),
    };
    let group = consumer
        .group_metadata()
        .ok_or_else(|| EngineError::Transaction("to read its consumer group's metadata".into()))?;
    Ok(Ok((
        Transactions {
            producer: Arc::new(producer),
            group: Arc::new(group),
            writer: writer.into(),
            restore: 0,
        },
        read,
    )))
}

impl Transactions {
    /// Opens the transactional producer `transactional_id` (fencing older
    /// instances) and reads which checkpoint consumer group `group` names
    /// for `topics`; `latest` gives the checkpoint to resume from when the
    /// group names none (the statement ran at-least-once before). Commits
    /// one transaction naming that checkpoint to learn that the broker
    /// supports transactions: `Ok(Err(why))` when it does not.
    pub async fn open(
        kafka: &weir_catalog::KafkaConnection,
        group: &str,
        transactional_id: &str,
        topics: &[String],
        interval: Duration,
        latest: impl std::future::Future<Output = Result<u64, EngineError>>,
    ) -> Result<Result<(Transactions, Vec<Position>), Unsupported>, EngineError> {
        let topics = topics.to_vec();
        let started = start(kafka, group, transactional_id, interval, move |consumer| {
            let c = committed_checkpoint(consumer, &topics)?;
            let writers = c.3.clone();
            Ok((c, writers))
        })
        .await?;
        let (started, (committed, probe, placeholder, _)) = match started {
            Ok(s) => s,
            Err(why) => return Ok(Err(why)),
        };
        let restore = match committed {
            Some(id) => id,
            None => latest.await?,
        };
        let t = Transactions { restore, ..started };
        // The probe: the group's positions as they are (or one placeholder,
        // which names no position), naming the checkpoint to resume from,
        // so that a crash before the first checkpoint resumes from this
        // one too.
        let mut offsets: BTreeMap<String, BTreeMap<i32, i64>> = BTreeMap::new();
        for (topic, p, o) in &probe {
            offsets.entry(topic.clone()).or_default().insert(*p, *o);
        }
        let mut tpl = group_offsets(&offsets, restore, &t.writer)?;
        if tpl.count() == 0 {
            if let Some((topic, p)) = &placeholder {
                let mut e = tpl.add_partition(topic, *p);
                e.set_offset(Offset::Offset(0))?;
                e.set_metadata(format!("{PROBE_METADATA}:{restore}@{}", t.writer));
            }
        }
        // Positions a parallel statement's tasks left (checkpoint 0: they
        // keep no state) are where this one resumes.
        let resume = match committed {
            Some(0) => probe
                .into_iter()
                .map(|(topic, partition, offset)| Position {
                    topic,
                    partition,
                    offset,
                    checkpoint: 0,
                })
                .collect(),
            _ => vec![],
        };
        t.begin()?;
        match t.commit_blocking(tpl).await {
            Ok(()) => Ok(Ok((t, resume))),
            Err((_, e)) if unsupported(&e) => Ok(Err(format!("the broker refused: {e}"))),
            Err((what, e)) => Err(txn_error(what, e)),
        }
    }

    /// Opens the transactional producer of one task of a parallel
    /// statement (fencing an older instance of that task) and reads the
    /// positions consumer group `group` holds for the `partitions` the task
    /// owns: only those whose metadata names a checkpoint, so a partition
    /// never committed this way is absent. Tasks of one stage share the
    /// group, each committing only its own partitions, so that a rescale
    /// finds every partition's position whichever task wrote it. Nothing
    /// is committed here: [`Transactions::probe`] does, once the task knows
    /// where it resumes.
    /// Also gives the partitions of `topics` the task owns (`owns`).
    #[allow(clippy::type_complexity)]
    pub async fn open_task(
        kafka: &weir_catalog::KafkaConnection,
        group: &str,
        transactional_id: &str,
        topics: Vec<String>,
        owns: impl Fn(i32) -> bool + Send + 'static,
        interval: Duration,
    ) -> Result<Result<(Transactions, Vec<(String, i32)>, Vec<Position>), Unsupported>, EngineError>
    {
        let started = start(kafka, group, transactional_id, interval, move |consumer| {
            let owned = owned_partitions(consumer, &topics, owns)?;
            let (committed, writers) = committed_positions(consumer, &owned)?;
            Ok(((owned, committed), writers))
        })
        .await?;
        let (t, (owned, committed)) = match started {
            Ok(s) => s,
            Err(why) => return Ok(Err(why)),
        };
        t.begin()?;
        Ok(Ok((t, owned, committed)))
    }

    /// Commits a first transaction naming `positions` (where the task
    /// resumes), or, when it knows none, a placeholder in partition
    /// `placeholder` that names no position, to learn whether the broker
    /// supports transactions (`Ok(Err(why))` when it does not). A task that
    /// owns no partition commits nothing and learns nothing.
    pub async fn probe(
        &self,
        positions: &[Position],
        placeholder: Option<(&str, i32)>,
    ) -> Result<Result<(), Unsupported>, EngineError> {
        let mut tpl = position_offsets(positions, &self.writer)?;
        if tpl.count() == 0 {
            let Some((topic, p)) = placeholder else {
                return Ok(Ok(()));
            };
            let mut e = tpl.add_partition(topic, p);
            e.set_offset(Offset::Offset(0))?;
            e.set_metadata(format!("{PROBE_METADATA}:0@{}", self.writer));
        }
        match self.commit_blocking(tpl).await {
            Ok(()) => Ok(Ok(())),
            Err((_, e)) if unsupported(&e) => Ok(Err(format!("the broker refused: {e}"))),
            Err((what, e)) => Err(txn_error(what, e)),
        }
    }

    /// Commits what was written since the last commit together with
    /// `positions`, each naming its own checkpoint, then begins the next
    /// transaction. With no position (a task owning no partition) only the
    /// records are committed.
    pub async fn commit_positions(&self, positions: &[Position]) -> Result<(), EngineError> {
        self.commit_blocking(position_offsets(positions, &self.writer)?)
            .await
            .map_err(|(what, e)| txn_error(what, e))
    }

    /// Begins a transaction (a local step: the broker learns of it with its
    /// first record).
    pub fn begin(&self) -> Result<(), EngineError> {
        self.producer
            .begin_transaction()
            .map_err(|e| txn_error("beginning a transaction", e))
    }

    /// Commits what was written since [`Transactions::begin`] together with
    /// `offsets`, naming checkpoint `id` in the consumer group, then begins
    /// the next transaction.
    pub async fn commit(
        &self,
        offsets: &BTreeMap<String, BTreeMap<i32, i64>>,
        id: u64,
    ) -> Result<(), EngineError> {
        self.commit_blocking(group_offsets(offsets, id, &self.writer)?)
            .await
            .map_err(|(what, e)| txn_error(what, e))
    }

    /// Adds `tpl` to the open transaction, commits it and begins the next;
    /// on failure, what failed.
    async fn commit_blocking(
        &self,
        tpl: TopicPartitionList,
    ) -> Result<(), (&'static str, KafkaError)> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            if tpl.count() > 0 {
                this.producer
                    .send_offsets_to_transaction(&tpl, &this.group, CALL_TIMEOUT)
                    .map_err(|e| ("adding the source offsets to the transaction", e))?;
            }
            this.producer
                .commit_transaction(CALL_TIMEOUT)
                .map_err(|e| ("committing the transaction", e))?;
            this.producer
                .begin_transaction()
                .map_err(|e| ("beginning a transaction", e))
        })
        .await
        .unwrap_or_else(|_| Err(("committing the transaction", KafkaError::Canceled)))
    }

    /// Aborts the open transaction (best effort: a later start fences it).
    pub async fn abort(&self) {
        let this = self.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = this.producer.abort_transaction(CALL_TIMEOUT) {
                tracing::warn!(error = %e, "aborting the sink's transaction failed");
            }
        })
        .await;
    }

    /// The producer to write the sink's records with.
    pub fn producer(&self) -> &SinkProducer {
        &self.producer
    }

    /// The producer, for a writer that keeps it.
    pub fn shared_producer(&self) -> Arc<SinkProducer> {
        self.producer.clone()
    }
}

/// The checkpoint consumer group names for `topics` (`None`: it names
/// none), the positions to commit again to name it anew, the partition for
/// a placeholder when there are none, and the writers the group names.
#[allow(clippy::type_complexity)]
fn committed_checkpoint(
    consumer: &BaseConsumer,
    topics: &[String],
) -> Result<
    (
        Option<u64>,
        Vec<(String, i32, i64)>,
        Option<(String, i32)>,
        Writers,
    ),
    EngineError,
> {
    let mut tpl = TopicPartitionList::new();
    for topic in topics {
        let md = consumer.fetch_metadata(Some(topic), CALL_TIMEOUT)?;
        for t in md.topics() {
            for p in t.partitions() {
                tpl.add_partition(topic, p.id());
            }
        }
    }
    let first = tpl
        .elements()
        .first()
        .map(|e| (e.topic().to_string(), e.partition()));
    let committed = consumer.committed_offsets(tpl, CALL_TIMEOUT)?;
    let mut id = None;
    let mut entries = vec![];
    let mut writers = Writers::new();
    for e in committed.elements() {
        let (n, writer, position) = parse_metadata(e.metadata());
        writers.extend(writer.map(str::to_string));
        id = id.max(n);
        if let (true, Offset::Offset(o)) = (position, e.offset()) {
            entries.push((e.topic().to_string(), e.partition(), o));
        }
    }
    Ok((id, entries, first, writers))
}

/// Transactional ids the group's metadata names.
type Writers = std::collections::BTreeSet<String>;

/// `positions` as offsets to commit, each with metadata naming its
/// checkpoint.
fn position_offsets(
    positions: &[Position],
    writer: &str,
) -> Result<TopicPartitionList, EngineError> {
    let mut tpl = TopicPartitionList::new();
    for p in positions {
        let mut e = tpl.add_partition(&p.topic, p.partition);
        e.set_offset(Offset::Offset(p.offset))?;
        e.set_metadata(checkpoint_metadata(p.checkpoint, writer));
    }
    Ok(tpl)
}

/// The partitions of `topics` that `owns` picks.
fn owned_partitions(
    consumer: &BaseConsumer,
    topics: &[String],
    owns: impl Fn(i32) -> bool,
) -> Result<Vec<(String, i32)>, EngineError> {
    let mut owned = vec![];
    for topic in topics {
        let md = consumer.fetch_metadata(Some(topic), CALL_TIMEOUT)?;
        for t in md.topics() {
            owned.extend(
                t.partitions()
                    .iter()
                    .filter(|p| owns(p.id()))
                    .map(|p| (topic.clone(), p.id())),
            );
        }
    }
    Ok(owned)
}

/// The positions the consumer group holds for `partitions`: those whose
/// metadata names a checkpoint.
fn committed_positions(
    consumer: &BaseConsumer,
    partitions: &[(String, i32)],
) -> Result<(Vec<Position>, Writers), EngineError> {
    if partitions.is_empty() {
        return Ok((vec![], Writers::new()));
    }
    let mut tpl = TopicPartitionList::new();
    for (topic, p) in partitions {
        tpl.add_partition(topic, *p);
    }
    let committed = consumer.committed_offsets(tpl, CALL_TIMEOUT)?;
    let mut writers = Writers::new();
    let positions = committed
        .elements()
        .iter()
        .filter_map(|e| {
            let (checkpoint, writer, position) = parse_metadata(e.metadata());
            writers.extend(writer.map(str::to_string));
            let (true, Offset::Offset(offset)) = (position, e.offset()) else {
                return None;
            };
            Some(Position {
                topic: e.topic().to_string(),
                partition: e.partition(),
                offset,
                checkpoint: checkpoint?,
            })
        })
        .collect();
    Ok((positions, writers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_metadata_names_the_checkpoint_and_its_writer() {
        let m = checkpoint_metadata(7, "weir-o-e-n-u-s1-t0.0123456789ab");
        assert_eq!(
            parse_metadata(&m),
            (Some(7), Some("weir-o-e-n-u-s1-t0.0123456789ab"), true)
        );
        // Written by an older Weir: a checkpoint, no writer.
        assert_eq!(parse_metadata("weir-checkpoint:3"), (Some(3), None, true));
        // A placeholder names its checkpoint and writer, and no position.
        assert_eq!(
            parse_metadata("weir-probe:4@w.1"),
            (Some(4), Some("w.1"), false)
        );
        assert_eq!(
            parse_metadata("weir-probe:0@w.1"),
            (Some(0), Some("w.1"), false)
        );
        // Another client's commit, or garbage, names nothing.
        assert_eq!(parse_metadata("checkpoint 5"), (None, None, false));
        assert_eq!(parse_metadata(""), (None, None, false));
        assert_eq!(
            parse_metadata("weir-checkpoint:x@w"),
            (None, Some("w"), false)
        );
        assert_ne!(fresh_writer("w"), fresh_writer("w"));
    }
}
