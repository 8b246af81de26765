//! Kafka clients of the worker: a source consumer per table, the sink producer.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use weir_sql_gateway::StartupMode;

use crate::EngineError;

/// A consumer assigned to every partition of `topic`, from the stored
/// offsets where there are some and from `startup` elsewhere. It never
/// commits to Kafka: the control plane stores the offsets.
pub async fn source_consumer(
    bootstrap: &str,
    group: &str,
    topic: &str,
    startup: StartupMode,
    stored: &HashMap<i32, i64>,
) -> Result<(StreamConsumer, Vec<i32>), EngineError> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
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
        .create()?;
    let t = topic.to_string();
    let b = bootstrap.to_string();
    let partitions = tokio::task::spawn_blocking(move || -> Result<Vec<i32>, EngineError> {
        let probe: rdkafka::consumer::BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &b)
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

pub fn sink_producer(bootstrap: &str) -> Result<FutureProducer, EngineError> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .create()?)
}
