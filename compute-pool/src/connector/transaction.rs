//! Exactly-once Kafka sinks: a statement's output between two checkpoints
//! is one Kafka transaction, committed together with the checkpoint it
//! leads to.
//!
//! The checkpoint (operator state and every source position) is written
//! first; then one transaction commits the records written since the last
//! one together with an offset commit into the statement's consumer group,
//! whose metadata names the checkpoint (`weir-checkpoint:<n>`). Kafka makes
//! the two atomic: read_committed consumers see the records exactly when
//! the group names checkpoint `n`. On start, the group's metadata says which
//! checkpoint to resume from, so a crash at any point between the two loses
//! nothing and writes nothing twice: a checkpoint written but not committed
//! is ignored, and its records are aborted.
//!
//! `init_transactions` fences an older instance of the statement (a zombie
//! worker) and aborts its open transaction. Whether the broker supports
//! transactions is learnt at start by committing one transaction holding
//! only the group's offsets: some brokers (tansu) accept the producer but
//! refuses `EndTxn`.

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
    /// The checkpoint the consumer group names (0: none yet).
    pub restore: u64,
}

/// Why a sink writes at-least-once.
pub(crate) type Unsupported = String;

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
) -> Result<TopicPartitionList, EngineError> {
    let mut tpl = TopicPartitionList::new();
    for (topic, parts) in offsets.iter().filter(|(t, _)| !t.contains('#')) {
        for (p, o) in parts {
            let mut e = tpl.add_partition(topic, *p);
            e.set_offset(Offset::Offset(*o))?;
            e.set_metadata(format!("{CHECKPOINT_METADATA}{id}"));
        }
    }
    Ok(tpl)
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
    ) -> Result<Result<Transactions, Unsupported>, EngineError> {
        let consumer: BaseConsumer = kafka
            .client_config()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("broker.address.family", "v4")
            .create()?;
        // Kafka refuses a timeout above its `transaction.max.timeout.ms`
        // (15 min by default).
        let timeout_ms = (interval.as_millis() as u64 * 2 + 30_000).clamp(60_000, 900_000);
        let producer = sink_producer(kafka, Some((transactional_id, timeout_ms)))?;
        let topics = topics.to_vec();
        let (consumer, committed, init) = tokio::task::spawn_blocking(move || {
            let committed = committed_checkpoint(&consumer, &topics);
            let init = producer.init_transactions(CALL_TIMEOUT).map(|_| producer);
            (consumer, committed, init)
        })
        .await
        .map_err(|e| EngineError::Transaction(format!("to start: {e}")))?;
        let (committed, probe) = committed?;
        let producer = match init {
            Ok(p) => p,
            Err(e) if unsupported(&e) => return Ok(Err(format!("the broker refused: {e}"))),
            Err(e) => return Err(txn_error("starting the transactional sink", e)),
        };
        let restore = match committed {
            Some(id) => id,
            None => latest.await?,
        };
        let group = consumer.group_metadata().ok_or_else(|| {
            EngineError::Transaction("to read its consumer group's metadata".into())
        })?;
        let t = Transactions {
            producer: Arc::new(producer),
            group: Arc::new(group),
            restore,
        };
        // The probe: the group's offsets as they are (or one placeholder),
        // naming the checkpoint to resume from, so that a crash before the
        // first checkpoint resumes from this one too.
        let mut offsets: BTreeMap<String, BTreeMap<i32, i64>> = BTreeMap::new();
        for (topic, p, o) in probe {
            offsets.entry(topic).or_default().insert(p, o);
        }
        t.begin()?;
        match t.commit_blocking(group_offsets(&offsets, restore)?).await {
            Ok(()) => Ok(Ok(t)),
            Err((_, e)) if unsupported(&e) => Ok(Err(format!("the broker refused: {e}"))),
            Err((what, e)) => Err(txn_error(what, e)),
        }
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
        self.commit_blocking(group_offsets(offsets, id)?)
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
            this.producer
                .send_offsets_to_transaction(&tpl, &this.group, CALL_TIMEOUT)
                .map_err(|e| ("adding the source offsets to the transaction", e))?;
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
}

/// The checkpoint consumer group names for `topics` (`None`: it names
/// none), and the entries to commit again to name it anew: the committed
/// ones, or one placeholder at offset 0 when there are none.
#[allow(clippy::type_complexity)]
fn committed_checkpoint(
    consumer: &BaseConsumer,
    topics: &[String],
) -> Result<(Option<u64>, Vec<(String, i32, i64)>), EngineError> {
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
    for e in committed.elements() {
        let (Some(n), Offset::Offset(o)) = (
            e.metadata()
                .strip_prefix(CHECKPOINT_METADATA)
                .and_then(|n| n.parse::<u64>().ok()),
            e.offset(),
        ) else {
            continue;
        };
        id = id.max(Some(n));
        entries.push((e.topic().to_string(), e.partition(), o));
    }
    if entries.is_empty() {
        entries.extend(first.map(|(t, p)| (t, p, 0)));
    }
    Ok((id, entries))
}
