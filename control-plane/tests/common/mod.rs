//! What the control-plane integration tests share: a real server on
//! 127.0.0.1 with a real SQLite store, the test broker started by
//! `infra/test.sh` (`WEIR_TEST_BOOTSTRAP`), and an independent rdkafka
//! producer and consumer to feed and read topics.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use weir_api::{
    Client, ClientError, CreateStatementRequest, Credentials, Phase, Statement, StatementSpec,
};
use weir_control_plane::auth::{hash_secret, new_key};
use weir_control_plane::dev::{self, DevEnv};
use weir_control_plane::{Server, ServerConfig};

/// The broker `infra/test.sh` started.
pub fn broker() -> String {
    std::env::var("WEIR_TEST_BOOTSTRAP").expect(
        "WEIR_TEST_BOOTSTRAP is not set: run the suite with infra/test.sh, which starts the test broker",
    )
}

/// A fresh, empty database on the PostgreSQL server `infra/test.sh`
/// started (`WEIR_TEST_POSTGRES`), as a URL for `ServerConfig`.
pub async fn fresh_postgres() -> String {
    let admin = std::env::var("WEIR_TEST_POSTGRES").expect(
        "WEIR_TEST_POSTGRES is not set: run the suite with infra/test.sh, which starts PostgreSQL",
    );
    let db = unique("weir");
    let pool = sqlx::PgPool::connect(&admin)
        .await
        .expect("PostgreSQL reachable");
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&pool)
        .await
        .expect("create database");
    pool.close().await;
    let base = admin.rsplit_once('/').expect("URL with a database").0;
    format!("{base}/{db}")
}

/// A name no other test (or earlier run against the same broker) uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

/// A control plane with its worker, the `weir dev` defaults and a client.
pub struct Weir {
    pub server: Option<Server>,
    pub dev: DevEnv,
    pub dir: PathBuf,
    /// `sqlite://...` in `dir`, or a PostgreSQL database.
    pub database_url: String,
    pub client: Client,
}

impl Weir {
    /// Starts on a new SQLite store.
    pub async fn start() -> Weir {
        let dir = std::env::temp_dir().join(unique("weir-cp"));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("weir.db").display());
        Weir::start_on(dir, url).await
    }

    /// Starts on a new PostgreSQL database.
    pub async fn start_postgres() -> Weir {
        let dir = std::env::temp_dir().join(unique("weir-cp"));
        std::fs::create_dir_all(&dir).unwrap();
        Weir::start_on(dir, fresh_postgres().await).await
    }

    /// Starts `sqlite` or `postgres`.
    pub async fn start_backend(backend: &str) -> Weir {
        match backend {
            "sqlite" => Weir::start().await,
            "postgres" => Weir::start_postgres().await,
            other => panic!("no backend {other}"),
        }
    }

    /// Starts (or starts again) on `database_url`; `dir` keeps `dev.env`.
    pub async fn start_on(dir: PathBuf, database_url: String) -> Weir {
        Weir::start_configured(dir, database_url, |_| {}).await
    }

    /// Starts on a new SQLite store with settings of the test's own.
    pub async fn start_with(configure: impl FnOnce(&mut ServerConfig)) -> Weir {
        let dir = std::env::temp_dir().join(unique("weir-cp"));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("weir.db").display());
        Weir::start_configured(dir, url, configure).await
    }

    async fn start_configured(
        dir: PathBuf,
        database_url: String,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> Weir {
        let mut config = ServerConfig {
            database_url: database_url.clone(),
            listen: "127.0.0.1:0".into(),
            results_idle_timeout: Duration::from_secs(60),
            topic_sync_interval: Duration::from_millis(500),
            checkpoint_dir: Some(dir.join("checkpoints")),
            secret_key_file: Some(dir.join("secret.key")),
            ..ServerConfig::default()
        };
        configure(&mut config);
        let server = Server::start(config).await.expect("server starts");
        let dev = dev::bootstrap(&server.state.store, &dir, &server.url, &broker())
            .await
            .expect("dev defaults");
        let client = Client::new(
            &server.url,
            &dev.org,
            &dev.env,
            Some(Credentials {
                key: dev.key.clone(),
                secret: dev.secret.clone(),
            }),
        );
        Weir {
            server: Some(server),
            dev,
            dir,
            database_url,
            client,
        }
    }

    pub fn url(&self) -> &str {
        &self.server.as_ref().unwrap().url
    }

    /// A graceful stop followed by a start on the same store.
    pub async fn restart(self) -> Weir {
        let (dir, url) = (self.dir.clone(), self.database_url.clone());
        self.server.expect("running").shutdown().await;
        Weir::start_on(dir, url).await
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }

    /// Submits a statement and waits until it leaves PENDING.
    pub async fn submit(&self, name: &str, sql: &str) -> Result<Statement, ClientError> {
        self.submit_with(name, sql, BTreeMap::new()).await
    }

    pub async fn submit_with(
        &self,
        name: &str,
        sql: &str,
        properties: BTreeMap<String, String>,
    ) -> Result<Statement, ClientError> {
        self.client
            .create_statement(&CreateStatementRequest {
                metadata: None,
                name: Some(name.to_string()),
                spec: StatementSpec {
                    statement: sql.to_string(),
                    compute_pool_id: Some(self.dev.pool.clone()),
                    properties,
                    ..StatementSpec::default()
                },
            })
            .await?;
        self.client
            .wait_started(name, Duration::from_secs(30))
            .await
    }

    /// Runs a statement that must complete at once (DDL), and panics with
    /// its detail otherwise.
    pub async fn ddl(&self, sql: &str) {
        let name = unique("ddl").replace('_', "-");
        let s = self
            .submit(&name, sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(
            s.status.phase,
            Phase::Completed,
            "{sql}: {}",
            s.status.detail
        );
    }

    /// A second tenant, `org-b` with environment `env-b`, and its API key
    /// and secret.
    pub async fn second_tenant(&self) -> (String, String) {
        let store = &self.server.as_ref().unwrap().state.store;
        store.ensure_organization("org-b", "b").await.unwrap();
        store
            .ensure_environment("org-b", "env-b", "default")
            .await
            .unwrap();
        let (key, secret) = new_key();
        store
            .create_api_key("org-b", &key, &hash_secret(&secret), "tenant b")
            .await
            .unwrap();
        (key, secret)
    }

    /// Polls until the statement reaches `phase` and returns it.
    pub async fn wait_phase(&self, name: &str, phase: Phase, timeout: Duration) -> Statement {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.client.get_statement(name).await.unwrap();
            if s.status.phase == phase {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "statement {name} is {:?} ({}), not {phase:?}, after {timeout:?}",
                s.status.phase,
                s.status.detail
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// An idempotent producer that is not Weir's.
pub fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

/// Produces `(partition, key, value)` records and waits for every ack.
pub async fn produce(topic: &str, records: &[(i32, Option<String>, String)]) {
    let p = producer();
    for chunk in records.chunks(1000) {
        let futures: Vec<_> = chunk
            .iter()
            .map(|(partition, key, value)| {
                let mut r = FutureRecord::to(topic).partition(*partition).payload(value);
                if let Some(k) = key {
                    r = r.key(k);
                }
                // `send_result` enqueues now; `send` would wait for each ack
                // before the next record is even queued.
                p.send_result(r).map_err(|(e, _)| e).expect("record queued")
            })
            .collect();
        for f in futures {
            f.await
                .expect("producer alive")
                .map_err(|(e, _)| e)
                .expect("record acknowledged");
        }
    }
}

/// Produces `value`s to partition 0 of `topic`, each with its headers, in
/// order, waiting for each ack.
pub async fn produce_with_headers(topic: &str, records: &[(&[(&str, &str)], &str)]) {
    let p = producer();
    for (headers, value) in records {
        let mut h = rdkafka::message::OwnedHeaders::new();
        for (k, v) in *headers {
            h = h.insert(rdkafka::message::Header {
                key: k,
                value: Some(*v),
            });
        }
        p.send(
            FutureRecord::<(), str>::to(topic)
                .partition(0)
                .payload(value)
                .headers(h),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("record acknowledged");
    }
}

/// Writes a tombstone (a record with `key` and no value) to `topic`.
pub async fn produce_tombstone(topic: &str, partition: i32, key: &str) {
    let p = producer();
    p.send(
        FutureRecord::<str, [u8]>::to(topic)
            .partition(partition)
            .key(key),
        Duration::from_secs(10),
    )
    .await
    .map_err(|(e, _)| e)
    .expect("tombstone acknowledged");
}

/// One record read back from a topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Read {
    pub partition: i32,
    pub key: Option<String>,
    pub value: Option<String>,
}

/// Reads every partition of `topic` from the beginning with an independent
/// consumer until `want` records arrived, then `settle` longer to catch
/// extras; panics if fewer than `want` arrive within `timeout`.
pub async fn consume(topic: &str, want: usize, timeout: Duration, settle: Duration) -> Vec<Read> {
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || consume_blocking(&topic, want, timeout, settle, true))
        .await
        .expect("consumer thread")
}

/// Like [`consume`], but returns what arrived when `want` records do not
/// arrive within `timeout`, for a test that explains what is missing.
pub async fn consume_at_most(
    topic: &str,
    want: usize,
    timeout: Duration,
    settle: Duration,
) -> Vec<Read> {
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || consume_blocking(&topic, want, timeout, settle, false))
        .await
        .expect("consumer thread")
}

fn consume_blocking(
    topic: &str,
    want: usize,
    timeout: Duration,
    settle: Duration,
    must: bool,
) -> Vec<Read> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).expect("assign");
    let mut out = vec![];
    let deadline = Instant::now() + timeout;
    let mut settle_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if let Some(t) = settle_until {
            if now > t {
                break;
            }
        } else if out.len() >= want {
            settle_until = Some(now + settle);
        } else if now > deadline && !must {
            break;
        } else if now > deadline {
            panic!(
                "topic {topic}: {} of {want} records after {timeout:?}",
                out.len()
            );
        }
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.expect("consume");
            out.push(Read {
                partition: m.partition(),
                key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                value: m.payload().map(|v| String::from_utf8_lossy(v).into_owned()),
            });
        }
    }
    out
}

/// Holes in the offsets of each partition of `topic`, read from the
/// beginning for `timeout`: `(partition, first missing, next present)`. A
/// topic written without transactions or compaction has none; a hole is
/// a batch the broker acknowledged and no longer serves.
pub async fn offset_holes(topic: &str, timeout: Duration) -> Vec<(i32, i64, i64)> {
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", broker())
            .set("group.id", unique("holes"))
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let md = c
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .expect("metadata");
        let mut tpl = TopicPartitionList::new();
        for p in md.topics()[0].partitions() {
            tpl.add_partition_offset(&topic, p.id(), Offset::Beginning)
                .unwrap();
        }
        c.assign(&tpl).expect("assign");
        let mut next: std::collections::HashMap<i32, i64> = Default::default();
        let mut holes = vec![];
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                let e = next.entry(m.partition()).or_insert(0);
                if m.offset() > *e {
                    holes.push((m.partition(), *e, m.offset()));
                }
                *e = m.offset() + 1;
            }
        }
        holes
    })
    .await
    .expect("consumer thread")
}

/// About 200 bytes of JSON, like a typical event.
pub fn order_json(id: i64) -> String {
    let who = ["alice", "bob", "carol", "dave", "erin"][(id % 5) as usize];
    let amount = (id * 37 % 1000) as f64 / 10.0;
    format!(
        r#"{{"id":{id},"who":"{who}","amount":{amount:.1},"country":"{}","note":"order {id} placed through the web shop with standard shipping, gift wrapped, left at the door","tags":["a","b","gift"]}}"#,
        ["NL", "DE", "FR"][(id % 3) as usize]
    )
}

/// The `orders` value `order_json` writes for `id`.
pub fn order_amount(id: i64) -> f64 {
    (id * 37 % 1000) as f64 / 10.0
}

pub fn order_who(id: i64) -> &'static str {
    ["alice", "bob", "carol", "dave", "erin"][(id % 5) as usize]
}

/// `CREATE TABLE` text for the orders table the tests use.
pub fn orders_ddl(table: &str, extra_with: &str) -> String {
    format!(
        "CREATE TABLE `{table}` (id BIGINT, who STRING, amount DOUBLE, country STRING, note STRING, tags ARRAY<STRING>) \
         DISTRIBUTED BY HASH(id) INTO 3 BUCKETS WITH ('value.format' = 'json'{extra_with})"
    )
}

/// Any route of a server, as JSON, with the given key: the status and the
/// answer (a string when it is not JSON).
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(weir: &Weir) -> Api {
        Api {
            base: weir.url().to_string(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn call(
        &self,
        (key, secret): (&str, &str),
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let url = format!("{}{path}", self.base);
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut r = self
            .http
            .request(method, &url)
            .basic_auth(key, Some(secret));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.expect("the server answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }
}

/// Every log line of this test process (debug and up), to look for
/// secrets in. Install once per process (nextest runs each test in its
/// own).
#[derive(Clone, Default)]
pub struct LogLines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogLines {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogLines {
    pub fn install() -> LogLines {
        let lines = LogLines::default();
        let sink = lines.clone();
        tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .init();
        lines
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}
