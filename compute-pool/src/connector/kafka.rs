//! Kafka clients of the worker: a source consumer per table, the sink producer.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryResult, FutureProducer, ProducerContext, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use weir_catalog::KafkaConnection;
use weir_sql_gateway::StartupMode;

use crate::EngineError;

/// A consumer assigned to every partition of `topic`, from the stored
/// offsets where there are some and from `startup` elsewhere. It never
/// commits to Kafka: the control plane stores the offsets.
pub async fn source_consumer(
    kafka: &KafkaConnection,
    group: &str,
    topic: &str,
    startup: StartupMode,
    stored: &HashMap<i32, i64>,
    bounded: bool,
    reads: impl Fn(i32) -> bool,
) -> Result<(SourceConsumer, Vec<i32>), EngineError> {
    let consumer: SourceConsumer = kafka
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set(
            "auto.offset.reset",
            match startup {
                StartupMode::Latest => "latest",
                _ => "earliest",
            },
        )
        .set("broker.address.family", "v4")
        .set("fetch.wait.max.ms", "50")
        .set("max.partition.fetch.bytes", "8388608")
        .set("queued.max.messages.kbytes", "65536")
        .set("fetch.queue.backoff.ms", "5")
        // A partition the consumer's first metadata missed (a topic whose
        // partitions a broker creates a moment after it answers) is
        // fetched within seconds, not librdkafka's default 5 minutes.
        .set("topic.metadata.refresh.interval.ms", "10000")
        // A bounded source learns that it has read a partition to its end.
        .set(
            "enable.partition.eof",
            if bounded { "true" } else { "false" },
        )
        .create_with_context(SourceContext)?;
    let t = topic.to_string();
    let b = kafka.clone();
    let partitions = tokio::task::spawn_blocking(move || -> Result<Vec<i32>, EngineError> {
        let probe: rdkafka::consumer::BaseConsumer = b
            .client_config()
            .set("broker.address.family", "v4")
            .create()?;
        let md = probe.fetch_metadata(Some(&t), Duration::from_secs(10))?;
        Ok(md
            .topics()
            .first()
            .map(|t| t.partitions().iter().map(|p| p.id()).collect())
            .unwrap_or_default())
    })
    .await
    .map_err(|e| EngineError::Plan(e.to_string()))??;
    if partitions.is_empty() {
        return Err(EngineError::Plan(format!(
            "topic '{topic}' does not exist or has no partitions"
        )));
    }
    // A task of a parallel statement reads its share of the partitions.
    let partitions: Vec<i32> = partitions.into_iter().filter(|p| reads(*p)).collect();
    if partitions.is_empty() {
        return Ok((consumer, partitions));
    }
    let mut tpl = TopicPartitionList::new();
    for &p in &partitions {
        let offset = match (stored.get(&p), startup) {
            (Some(o), _) => Offset::Offset(*o),
            (None, StartupMode::Latest) => Offset::End,
            (None, _) => Offset::Beginning,
        };
        tpl.add_partition_offset(topic, p, offset)?;
    }
    if let StartupMode::Timestamp(ts) = startup {
        let mut by_time = TopicPartitionList::new();
        for e in tpl.elements() {
            if !stored.contains_key(&e.partition()) {
                by_time.add_partition_offset(topic, e.partition(), Offset::Offset(ts))?;
            }
        }
        if by_time.count() > 0 {
            let c = &consumer;
            let found = c.offsets_for_times(by_time, Duration::from_secs(10))?;
            for e in found.elements() {
                tpl.set_partition_offset(topic, e.partition(), e.offset())?;
            }
        }
    }
    consumer.assign(&tpl)?;
    Ok((consumer, partitions))
}

/// A source's consumer.
pub type SourceConsumer = StreamConsumer<SourceContext>;

/// librdkafka's client events of a source, logged as rdkafka's default
/// context does, except a partition's end: a bounded source asks for those
/// (`enable.partition.eof`) as the end of its input, not an error.
pub struct SourceContext;

impl ClientContext for SourceContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let eof = matches!(error, KafkaError::PartitionEOF(_))
            || error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF);
        if !eof {
            tracing::error!(error = %error, reason, "librdkafka error");
        }
    }
}

impl ConsumerContext for SourceContext {}

/// Where a bounded source stops: per partition, the end offset (the next
/// offset to be written) at the moment it starts, for the partitions that
/// hold something to read from where the source starts.
pub async fn end_offsets(
    kafka: &KafkaConnection,
    topic: &str,
    partitions: &[i32],
    startup: StartupMode,
    stored: &HashMap<i32, i64>,
) -> Result<HashMap<i32, i64>, EngineError> {
    let b = kafka.clone();
    let t = topic.to_string();
    let partitions = partitions.to_vec();
    let stored = stored.clone();
    tokio::task::spawn_blocking(move || -> Result<HashMap<i32, i64>, EngineError> {
        let probe: rdkafka::consumer::BaseConsumer = b
            .client_config()
            .set("broker.address.family", "v4")
            .create()?;
        let mut ends = HashMap::new();
        for p in partitions {
            let (low, high) = probe.fetch_watermarks(&t, p, Duration::from_secs(10))?;
            let from = match (stored.get(&p), startup) {
                (Some(o), _) => *o,
                (None, StartupMode::Latest) => high,
                (None, _) => low,
            };
            if from < high {
                ends.insert(p, high);
            }
        }
        Ok(ends)
    })
    .await
    .map_err(|e| EngineError::Plan(e.to_string()))?
}

/// The delivery reports of a sink producer, counted rather than awaited
/// one future per record: a batch of records is sent, then [`Acks::wait`]
/// waits until the broker has acknowledged all of them (or one failed).
#[derive(Default)]
pub struct Acks {
    pending: AtomicUsize,
    failed: Mutex<Option<KafkaError>>,
    done: tokio::sync::Notify,
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed
                .lock()
                .expect("acks lock")
                .get_or_insert_with(|| e.clone());
        }
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.notify_one();
        }
    }
}

impl Acks {
    /// Counts a record about to be sent; [`Acks::unsent`] if the send fails.
    pub fn sending(&self) {
        self.pending.fetch_add(1, Ordering::AcqRel);
    }

    pub fn unsent(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.notify_one();
        }
    }

    /// Waits until every record sent is acknowledged; the first failure.
    pub async fn wait(&self) -> Result<(), KafkaError> {
        loop {
            let done = self.done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if self.pending.load(Ordering::Acquire) == 0 {
                break;
            }
            done.await;
        }
        match self.failed.lock().expect("acks lock").take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The producer of a Kafka sink.
pub type SinkProducer = ThreadedProducer<Acks>;

/// A sink producer: idempotent, acks from all replicas; with
/// `transactional_id`, transactional (see `transaction.rs`).
pub fn sink_producer(
    kafka: &KafkaConnection,
    transactional_id: Option<(&str, u64)>,
) -> Result<SinkProducer, EngineError> {
    let mut c = kafka.client_config();
    c.set("broker.address.family", "v4")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000");
    match transactional_id {
        Some((id, timeout_ms)) => c
            .set("transactional.id", id)
            .set("transaction.timeout.ms", timeout_ms.to_string()),
        None => c.set("acks", "all").set("enable.idempotence", "true"),
    };
    Ok(c.create_with_context(Acks::default())?)
}

/// A producer of occasional records (dead letters), each awaited.
pub fn plain_producer(kafka: &KafkaConnection) -> Result<FutureProducer, EngineError> {
    Ok(kafka
        .client_config()
        .set("broker.address.family", "v4")
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .create()?)
}

/// The first and end offsets of a partition as `consumer` last heard them
/// in a fetch response (no broker call; under `read_committed` the end is
/// the last stable offset); `None` before it has fetched from it.
pub fn cached_offsets<C: ConsumerContext>(
    consumer: &StreamConsumer<C>,
    topic: &str,
    partition: i32,
) -> Option<(i64, i64)> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: a valid client handle and a NUL-terminated topic name; the
    // call writes the two offsets and keeps no pointer.
    let err = unsafe {
        rdkafka_sys::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka_sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some((low, high))
}

/// A consumer's queue, to take what librdkafka has already fetched in one
/// call rather than one message (and one clock read) at a time.
pub struct ConsumerQueue(*mut rdkafka_sys::rd_kafka_queue_t);

// SAFETY: librdkafka queues are thread-safe; the handle is only destroyed
// on drop.
unsafe impl Send for ConsumerQueue {}
unsafe impl Sync for ConsumerQueue {}

impl ConsumerQueue {
    /// The queue `consumer` delivers its messages to (the one
    /// `StreamConsumer::recv` reads).
    pub fn of<C: ConsumerContext>(consumer: &StreamConsumer<C>) -> ConsumerQueue {
        // SAFETY: a valid client handle; the queue reference it returns is
        // released in `drop`.
        ConsumerQueue(unsafe {
            rdkafka_sys::rd_kafka_queue_get_consumer(consumer.client().native_ptr())
        })
    }

    /// Up to `max` messages already fetched, without waiting.
    pub fn drain(&self, max: usize) -> Drained {
        let mut msgs: Vec<*mut rdkafka_sys::rd_kafka_message_t> = Vec::with_capacity(max);
        if max > 0 && !self.0.is_null() {
            // SAFETY: `msgs` has room for `max` pointers; librdkafka writes
            // at most that many and returns how many.
            let n = unsafe {
                rdkafka_sys::rd_kafka_consume_batch_queue(self.0, 0, msgs.as_mut_ptr(), max)
            };
            if n > 0 {
                // SAFETY: the first `n` were written.
                unsafe { msgs.set_len(n as usize) };
            }
        }
        Drained { msgs }
    }
}

impl Drop for ConsumerQueue {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the reference taken in `of`, released once.
            unsafe { rdkafka_sys::rd_kafka_queue_destroy(self.0) };
        }
    }
}

/// Messages taken from a queue; destroyed when dropped.
#[allow(clippy::len_without_is_empty)]
pub struct Drained {
    msgs: Vec<*mut rdkafka_sys::rd_kafka_message_t>,
}

// SAFETY: the messages are owned by this value alone.
unsafe impl Send for Drained {}

/// One drained message, borrowed from its [`Drained`].
pub struct DrainedMessage<'a> {
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: Option<i64>,
    pub headers: Vec<crate::connector::decode::Header<'a>>,
}

impl Drained {
    pub fn len(&self) -> usize {
        self.msgs.len()
    }

    /// Each message, or the error librdkafka delivered in its place.
    pub fn messages(&self) -> impl Iterator<Item = Result<DrainedMessage<'_>, KafkaError>> + '_ {
        self.msgs.iter().map(|&m| {
            // SAFETY: `m` is a live message owned by `self`; the slices
            // borrow from it for as long as `self` lives.
            unsafe {
                let msg = &*m;
                if msg.err == rdkafka_sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__PARTITION_EOF {
                    return Err(KafkaError::PartitionEOF(msg.partition));
                }
                if msg.err != rdkafka_sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                    return Err(KafkaError::MessageConsumption(msg.err.into()));
                }
                let slice = |p: *mut std::ffi::c_void, len: usize| {
                    (!p.is_null()).then(|| std::slice::from_raw_parts(p as *const u8, len))
                };
                let mut kind =
                    rdkafka_sys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
                let ts = rdkafka_sys::rd_kafka_message_timestamp(m, &mut kind);
                let mut headers = Vec::new();
                let mut hdrs: *mut rdkafka_sys::rd_kafka_headers_t = std::ptr::null_mut();
                if rdkafka_sys::rd_kafka_message_headers(m, &mut hdrs)
                    == rdkafka_sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
                {
                    for i in 0..rdkafka_sys::rd_kafka_header_cnt(hdrs) {
                        let mut name: *const std::ffi::c_char = std::ptr::null();
                        let mut value: *const std::ffi::c_void = std::ptr::null();
                        let mut size = 0usize;
                        if rdkafka_sys::rd_kafka_header_get_all(
                            hdrs, i, &mut name, &mut value, &mut size,
                        ) != rdkafka_sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
                        {
                            continue;
                        }
                        let Ok(name) = std::ffi::CStr::from_ptr(name).to_str() else {
                            continue;
                        };
                        let value = (!value.is_null())
                            .then(|| std::slice::from_raw_parts(value as *const u8, size));
                        headers.push((name, value));
                    }
                }
                Ok(DrainedMessage {
                    key: slice(msg.key, msg.key_len),
                    value: slice(msg.payload, msg.len),
                    partition: msg.partition,
                    offset: msg.offset,
                    timestamp_ms: (ts >= 0).then_some(ts),
                    headers,
                })
            }
        })
    }
}

impl Drop for Drained {
    fn drop(&mut self) {
        for &m in &self.msgs {
            // SAFETY: each message was handed to us by consume_batch and is
            // destroyed once.
            unsafe { rdkafka_sys::rd_kafka_message_destroy(m) };
        }
    }
}
