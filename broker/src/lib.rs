//! Weir's local Kafka-protocol broker: what `weir dev` starts so that a
//! laptop needs nothing else, and what the test suite runs against.
//!
//! It owns topics, their partition logs on local disk (one append-only
//! file per partition, batches stored as the producer sent them), consumer
//! group offsets and a small group coordinator, and speaks enough of the
//! Kafka protocol for librdkafka, the Java client and Confluent's clients:
//! metadata, produce (idempotent producers included), fetch with long
//! polling, list offsets, topic creation and deletion, offset commit and
//! fetch, and consumer groups.
//!
//! It does not own replication, retention, compaction, transactions, ACLs
//! or SASL: it is one node for development and tests, not a production
//! cluster. Acknowledged records survive the broker process being killed
//! (they are written to the file before the answer); the file is flushed
//! to the disk every `sync_interval`, so an operating-system crash can lose
//! the last interval, as with Kafka's default of leaving that to the page
//! cache.

mod groups;
mod log;
mod server;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use log::{BatchHeader, PartitionLog};

/// What can stop the broker from starting or from keeping its data.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}; pass another port or stop what uses it")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

impl BrokerError {
    fn io(path: &Path, source: std::io::Error) -> BrokerError {
        BrokerError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// How to run a broker.
#[derive(Clone)]
pub struct BrokerConfig {
    /// `host:port` to listen on; port 0 picks a free one.
    pub listen: String,
    /// Where topics live; `None` keeps them in memory only.
    pub data_dir: Option<PathBuf>,
    /// How often appended data is flushed to the disk.
    pub sync_interval: Duration,
    /// Partitions of a topic created because a client asked for a topic
    /// that does not exist (Kafka's `num.partitions`).
    pub default_partitions: i32,
    /// Answer every produce this much later (after writing it): a slow
    /// broker, to see how clients behave against one.
    pub produce_delay: Duration,
    /// SASL/PLAIN users (name → password). Empty: no authentication, as
    /// a development broker on localhost; otherwise a connection must
    /// authenticate (SaslHandshake v1 + SaslAuthenticate) before anything
    /// but `ApiVersions`.
    pub sasl_plain_users: HashMap<String, String>,
}

impl std::fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Passwords stay out of logs: only the user names are shown.
        let mut users: Vec<_> = self.sasl_plain_users.keys().collect();
        users.sort();
        f.debug_struct("BrokerConfig")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("sync_interval", &self.sync_interval)
            .field("default_partitions", &self.default_partitions)
            .field("produce_delay", &self.produce_delay)
            .field("sasl_plain_users", &users)
            .finish()
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listen: "127.0.0.1:9092".into(),
            data_dir: None,
            sync_interval: Duration::from_secs(1),
            default_partitions: 1,
            produce_delay: Duration::ZERO,
            sasl_plain_users: HashMap::new(),
        }
    }
}

/// One topic: its partitions' logs.
pub(crate) struct Topic {
    pub id: uuid::Uuid,
    pub partitions: Vec<Arc<Mutex<PartitionLog>>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct TopicFile {
    id: uuid::Uuid,
    partitions: i32,
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

/// A committed offset of a group.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Committed {
    pub offset: i64,
    pub metadata: Option<String>,
}

/// Everything the broker holds.
pub(crate) struct State {
    pub config: BrokerConfig,
    pub host: String,
    pub port: i32,
    pub topics: RwLock<HashMap<String, Arc<Topic>>>,
    /// Woken on every append, for fetches waiting for data.
    pub appended: tokio::sync::Notify,
    pub next_producer_id: AtomicI64,
    /// group -> "topic/partition" -> offset.
    pub offsets: Mutex<BTreeMap<String, BTreeMap<String, Committed>>>,
    pub groups: groups::Coordinator,
}

/// Whether `name` is a topic name Kafka accepts (and so a safe folder name).
pub(crate) fn legal_topic(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

impl State {
    fn topics_dir(&self) -> Option<PathBuf> {
        self.config.data_dir.as_ref().map(|d| d.join("topics"))
    }

    fn offsets_file(&self) -> Option<PathBuf> {
        self.config
            .data_dir
            .as_ref()
            .map(|d| d.join("offsets.json"))
    }

    /// Creates `name` with `partitions` partitions; `Err` with a Kafka
    /// error code and message.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, (i16, String)> {
        if !legal_topic(name) {
            return Err((
                log::code::INVALID_TOPIC_EXCEPTION,
                format!("'{name}' is not a legal topic name: use 1 to 249 of a-z A-Z 0-9 . _ -"),
            ));
        }
        if !(1..=10_000).contains(&partitions) {
            return Err((
                log::code::INVALID_PARTITIONS,
                format!("a topic has 1 to 10000 partitions, not {partitions}"),
            ));
        }
        let mut topics = self.topics.write().expect("topics lock");
        if topics.contains_key(name) {
            return Err((
                log::code::TOPIC_ALREADY_EXISTS,
                format!("topic '{name}' already exists"),
            ));
        }
        let id = uuid::Uuid::new_v4();
        let storage = |e: BrokerError| (log::code::KAFKA_STORAGE_ERROR, e.to_string());
        let logs = match self.topics_dir() {
            Some(root) => {
                let dir = root.join(name);
                std::fs::create_dir_all(&dir).map_err(|e| storage(BrokerError::io(&dir, e)))?;
                let mut logs = Vec::new();
                for p in 0..partitions {
                    logs.push(PartitionLog::open(&dir.join(format!("{p}.log"))).map_err(storage)?);
                }
                let meta = TopicFile {
                    id,
                    partitions,
                    configs,
                };
                write_atomically(
                    &dir.join("topic.json"),
                    &serde_json::to_vec_pretty(&meta).expect("serialisable"),
                )
                .map_err(storage)?;
                logs
            }
            None => (0..partitions).map(|_| PartitionLog::memory()).collect(),
        };
        let topic = Arc::new(Topic {
            id,
            partitions: logs.into_iter().map(|l| Arc::new(Mutex::new(l))).collect(),
        });
        topics.insert(name.to_string(), topic.clone());
        Ok(topic)
    }

    pub fn delete_topic(&self, name: &str) -> Result<(), (i16, String)> {
        let removed = self.topics.write().expect("topics lock").remove(name);
        if removed.is_none() {
            return Err((
                log::code::UNKNOWN_TOPIC_OR_PARTITION,
                format!("topic '{name}' does not exist"),
            ));
        }
        if let Some(root) = self.topics_dir() {
            let dir = root.join(name);
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "could not remove a deleted topic's files");
            }
        }
        Ok(())
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().expect("topics lock").get(name).cloned()
    }

    /// Saves the committed offsets (small: rewritten whole on each commit).
    pub fn save_offsets(&self) {
        let Some(path) = self.offsets_file() else {
            return;
        };
        let body = {
            let offsets = self.offsets.lock().expect("offsets lock");
            serde_json::to_vec(&*offsets).expect("serialisable")
        };
        if let Err(e) = write_atomically(&path, &body) {
            tracing::error!(error = %e, "could not save committed offsets");
        }
    }

    fn sync_all(&self) {
        let topics: Vec<Arc<Topic>> = self
            .topics
            .read()
            .expect("topics lock")
            .values()
            .cloned()
            .collect();
        for t in topics {
            for p in &t.partitions {
                if let Err(e) = p.lock().expect("partition lock").sync() {
                    tracing::error!(error = %e, "could not flush a partition log to the disk");
                }
            }
        }
    }
}

fn write_atomically(path: &Path, body: &[u8]) -> Result<(), BrokerError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body).map_err(|e| BrokerError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| BrokerError::io(path, e))
}

/// A JSON file the broker wrote.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, BrokerError> {
    let raw = std::fs::read(path).map_err(|e| BrokerError::io(path, e))?;
    serde_json::from_slice(&raw).map_err(|e| BrokerError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Loads every topic under `root`.
fn load_topics(root: &Path) -> Result<HashMap<String, Arc<Topic>>, BrokerError> {
    let mut topics = HashMap::new();
    std::fs::create_dir_all(root).map_err(|e| BrokerError::io(root, e))?;
    for entry in std::fs::read_dir(root).map_err(|e| BrokerError::io(root, e))? {
        let entry = entry.map_err(|e| BrokerError::io(root, e))?;
        let dir = entry.path();
        let meta_path = dir.join("topic.json");
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !legal_topic(&name) || !meta_path.is_file() {
            continue;
        }
        let meta: TopicFile = read_json(&meta_path)?;
        let mut partitions = Vec::new();
        for p in 0..meta.partitions {
            partitions.push(Arc::new(Mutex::new(PartitionLog::open(
                &dir.join(format!("{p}.log")),
            )?)));
        }
        topics.insert(
            name,
            Arc::new(Topic {
                id: meta.id,
                partitions,
            }),
        );
    }
    Ok(topics)
}

/// A running broker.
pub struct Broker {
    addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    syncer: Option<tokio::task::JoinHandle<()>>,
}

impl Broker {
    /// Loads the data directory, binds the port and serves until `stop`.
    pub async fn start(config: BrokerConfig) -> Result<Broker, BrokerError> {
        let topics = match &config.data_dir {
            Some(d) => {
                let root = d.join("topics");
                tokio::task::spawn_blocking(move || load_topics(&root))
                    .await
                    .expect("loading topics does not panic")?
            }
            None => HashMap::new(),
        };
        let offsets = match config.data_dir.as_ref().map(|d| d.join("offsets.json")) {
            Some(p) if p.is_file() => read_json(&p)?,
            _ => BTreeMap::new(),
        };
        let listener =
            TcpListener::bind(&config.listen)
                .await
                .map_err(|source| BrokerError::Listen {
                    addr: config.listen.clone(),
                    source,
                })?;
        let addr = listener
            .local_addr()
            .map_err(|source| BrokerError::Listen {
                addr: config.listen.clone(),
                source,
            })?;
        let max_pid = topics
            .values()
            .flat_map(|t| t.partitions.iter())
            .map(|p| p.lock().expect("partition lock").max_producer_id())
            .max()
            .unwrap_or(-1);
        // Producer ids are unique across restarts: past every id in the logs,
        // and past the clock's milliseconds, in case a log was deleted.
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let state = Arc::new(State {
            host: addr.ip().to_string(),
            port: addr.port() as i32,
            config,
            topics: RwLock::new(topics),
            appended: tokio::sync::Notify::new(),
            next_producer_id: AtomicI64::new((max_pid + 1).max(clock)),
            offsets: Mutex::new(offsets),
            groups: groups::Coordinator::default(),
        });
        let stop = CancellationToken::new();
        let task = tokio::spawn(server::serve(listener, state.clone(), stop.clone()));
        let syncer = state.config.data_dir.is_some().then(|| {
            let (s, stop) = (state.clone(), stop.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(s.config.sync_interval);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stop.cancelled() => break,
                    }
                    let s = s.clone();
                    let _ = tokio::task::spawn_blocking(move || s.sync_all()).await;
                }
                let _ = tokio::task::spawn_blocking(move || s.sync_all()).await;
            })
        });
        tracing::info!(%addr, "broker listening");
        Ok(Broker {
            addr,
            stop,
            task,
            syncer,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and serving, and flushes the logs.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
        if let Some(s) = self.syncer {
            let _ = s.await;
        }
    }
}

pub(crate) fn next_producer_id(state: &State) -> i64 {
    state.next_producer_id.fetch_add(1, Ordering::Relaxed)
}
