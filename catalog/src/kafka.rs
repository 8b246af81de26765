//! The Kafka side of the catalog: topic administration and discovery.

use std::collections::HashSet;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use crate::{CatalogError, Store, TableDef};

/// How to reach one Kafka cluster: its bootstrap servers and, when it
/// asks for them, SASL credentials. Every Kafka client Weir makes for a
/// cluster starts from [`KafkaConnection::client_config`].
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KafkaConnection {
    pub bootstrap: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<SaslCredentials>,
}

impl std::fmt::Debug for KafkaConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConnection")
            .field("bootstrap", &self.bootstrap)
            .field("sasl", &self.sasl)
            .finish()
    }
}

/// SASL/PLAIN credentials of a Kafka cluster (over a plaintext
/// connection: this build's librdkafka has no TLS).
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SaslCredentials {
    /// `PLAIN`, the one mechanism served.
    pub mechanism: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for SaslCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password never reaches a log line.
        f.debug_struct("SaslCredentials")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The SASL mechanisms a cluster registration may name.
pub const SASL_MECHANISMS: &[&str] = &["PLAIN"];

impl KafkaConnection {
    /// A cluster that needs no credentials.
    pub fn plain(bootstrap: impl Into<String>) -> KafkaConnection {
        KafkaConnection {
            bootstrap: bootstrap.into(),
            sasl: None,
        }
    }

    /// A client configuration with the servers and credentials set; the
    /// caller adds what its client needs.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        if let Some(s) = &self.sasl {
            c.set("security.protocol", "SASL_PLAINTEXT")
                .set("sasl.mechanism", &s.mechanism)
                .set("sasl.username", &s.username)
                .set("sasl.password", &s.password);
        }
        c
    }
}

/// Creates, deletes and lists topics of one Kafka cluster.
pub struct KafkaAdmin {
    kafka: KafkaConnection,
    admin: AdminClient<DefaultClientContext>,
}

impl std::fmt::Debug for KafkaAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaAdmin")
            .field("bootstrap", &self.kafka.bootstrap)
            .finish()
    }
}

const ADMIN_TIMEOUT: Duration = Duration::from_secs(15);

impl KafkaAdmin {
    pub fn new(kafka: &KafkaConnection) -> Result<KafkaAdmin, CatalogError> {
        let admin = kafka
            .client_config()
            .set("broker.address.family", "v4")
            .create()?;
        Ok(KafkaAdmin {
            kafka: kafka.clone(),
            admin,
        })
    }

    pub fn bootstrap(&self) -> &str {
        &self.kafka.bootstrap
    }

    /// Creates a topic; an existing topic is not an error.
    pub async fn create_topic(
        &self,
        topic: &str,
        partitions: u32,
        configs: &[(&str, &str)],
    ) -> Result<(), CatalogError> {
        let mut new = NewTopic::new(topic, partitions as i32, TopicReplication::Fixed(1));
        for (k, v) in configs {
            new = new.set(k, v);
        }
        let opts = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT));
        let results = self.admin.create_topics([&new], &opts).await?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, code)) => {
                    return Err(CatalogError::Topic {
                        action: "create",
                        topic: t,
                        reason: code.to_string(),
                    })
                }
            }
        }
        Ok(())
    }

    /// Deletes a topic; a missing topic is not an error.
    pub async fn delete_topic(&self, topic: &str) -> Result<(), CatalogError> {
        let opts = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT));
        let results = self.admin.delete_topics(&[topic], &opts).await?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                Err((t, code)) => {
                    return Err(CatalogError::Topic {
                        action: "delete",
                        topic: t,
                        reason: code.to_string(),
                    })
                }
            }
        }
        Ok(())
    }

    /// The names of the cluster's topics (internal ones, `__...`, included)
    /// and their partition counts.
    pub async fn list_topics(&self) -> Result<Vec<(String, usize)>, CatalogError> {
        self.topics_within(ADMIN_TIMEOUT).await
    }

    /// The cluster's topics with their partition counts, if it answers
    /// within `timeout`.
    pub async fn topics_within(
        &self,
        timeout: Duration,
    ) -> Result<Vec<(String, usize)>, CatalogError> {
        let kafka = self.kafka.clone();
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = kafka
                .client_config()
                .set("broker.address.family", "v4")
                .create()?;
            let md = consumer.fetch_metadata(None, timeout)?;
            Ok(md
                .topics()
                .iter()
                .filter(|t| t.error().is_none())
                .map(|t| (t.name().to_string(), t.partitions().len()))
                .collect())
        })
        .await
        .expect("metadata task does not panic")
    }
}

/// What one pass of [`sync_topics`] changed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SyncReport {
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

/// Makes the tables of one (org, env, cluster) follow the cluster's topics:
/// a topic with no table appears as `key BYTES, val BYTES`; a table whose
/// topic is gone disappears.
pub async fn sync_topics(
    store: &Store,
    admin: &KafkaAdmin,
    org: &str,
    env: &str,
    cluster: &str,
) -> Result<SyncReport, CatalogError> {
    // Read the tables before the topics: a table created after this read has
    // its topic created before it, so it is never mistaken for a stale one.
    let tables = store.list_tables(org, env, cluster).await?;
    let topics: HashSet<String> = admin
        .list_topics()
        .await?
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    let known_topics: HashSet<&str> = tables.iter().map(|t| t.topic.as_str()).collect();
    let mut report = SyncReport::default();
    for topic in &topics {
        // Internal topics (`__consumer_offsets`, ...) are not discovered as
        // tables; a table made in SQL may still use such a name.
        if !known_topics.contains(topic.as_str()) && !topic.starts_with("__") {
            match store
                .create_table(org, env, cluster, &TableDef::discovered(topic))
                .await
            {
                Ok(()) => report.added.push(topic.clone()),
                Err(CatalogError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    for t in &tables {
        // A view has no topic of its own.
        if t.view.is_none()
            && !topics.contains(&t.topic)
            && store.delete_table(org, env, cluster, &t.name).await?
        {
            report.removed.push(t.name.clone());
        }
    }
    report.added.sort();
    report.removed.sort();
    Ok(report)
}
