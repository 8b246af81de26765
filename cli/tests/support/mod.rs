//! What the CLI's process tests share: a `weir dev` child process on the
//! test broker (`WEIR_TEST_BOOTSTRAP`, started by `infra/test.sh`), the
//! client commands run as processes with its settings, and a producer and
//! a consumer of the test topics.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

pub mod cluster;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

pub const WEIR: &str = env!("CARGO_BIN_EXE_weir");

pub fn broker() -> String {
    std::env::var("WEIR_TEST_BOOTSTRAP").expect(
        "WEIR_TEST_BOOTSTRAP is not set: run the suite with infra/test.sh, which starts the test broker",
    )
}

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

/// A running `weir dev` and the settings it printed.
pub struct Dev {
    pub child: Child,
    pub data_dir: PathBuf,
    pub env: HashMap<String, String>,
}

impl Dev {
    /// `weir dev --bootstrap` on the test broker.
    pub fn start(data_dir: &Path) -> Dev {
        Dev::start_with(data_dir, &["--bootstrap", &broker()])
    }

    /// `weir dev` with its own broker (`weir broker`) on `broker_port`.
    pub fn start_own_broker(data_dir: &Path, broker_port: u16) -> Dev {
        Dev::start_with(data_dir, &["--broker-port", &broker_port.to_string()])
    }

    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Dev {
        Dev::start_with_env(data_dir, extra, &[])
    }

    /// `weir dev` with these arguments and environment variables.
    pub fn start_with_env(data_dir: &Path, extra: &[&str], vars: &[(&str, &str)]) -> Dev {
        let mut child = Command::new(WEIR)
            .args(["dev", "--port", "0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .envs(vars.iter().copied())
            .env("RUST_BACKTRACE", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("weir dev starts");
        let env = read_exports(&mut child, "weir dev");
        Dev {
            child,
            data_dir: data_dir.to_path_buf(),
            env,
        }
    }

    /// Runs `weir ARGS` with the settings of `dev.env`.
    pub fn weir(&self, args: &[&str]) -> Output {
        Command::new(WEIR)
            .args(args)
            .envs(&self.env)
            .env("WEIR_CONFIG_DIR", self.data_dir.join("config"))
            .env("RUST_BACKTRACE", "0")
            .output()
            .expect("weir runs")
    }

    /// Runs `weir ARGS` and returns stdout, failing the test on a non-zero exit.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.weir(args);
        assert!(
            out.status.success(),
            "weir {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["--output", "json"]);
        let out = self.ok(&a);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    pub fn phase(&self, name: &str) -> String {
        self.json(&["statement", "describe", name])["status"]["phase"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn wait_phase(&self, name: &str, phase: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let p = self.phase(name);
            if p == phase {
                return;
            }
            assert!(Instant::now() < deadline, "{name} is {p}, not {phase}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until statement `name` has taken `n` checkpoints.
    pub fn wait_checkpoints(&self, name: &str, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.json(&["statement", "describe", name]);
            let done = s["status"]["metrics"]["checkpoints"].as_u64().unwrap_or(0);
            if done >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: {done} checkpoints, not {n}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGINT, as Ctrl-C sends, and wait for a clean exit.
    pub fn interrupt(mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success());
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "weir dev exited with {status} after Ctrl-C"
        );
    }

    /// SIGKILL: a crash.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        let _ = self.child.wait();
    }
}

/// The settings a `weir dev` or `weir server` child prints on its
/// `export ...` line; stdout is drained after it so the child never blocks.
pub fn read_exports(child: &mut Child, what: &str) -> HashMap<String, String> {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut env = HashMap::new();
    for line in lines.by_ref() {
        let line = line.expect("child output");
        if let Some(rest) = line.strip_prefix("export ") {
            for kv in rest.split_whitespace() {
                let (k, v) = kv.split_once('=').unwrap();
                env.insert(k.to_string(), v.to_string());
            }
            break;
        }
    }
    assert!(
        env.contains_key("WEIR_URL"),
        "{what} printed no export line"
    );
    std::thread::spawn(move || for _ in lines {});
    env
}

/// A consumer of every partition of `topic`, from its start.
pub fn reader_from_start(bootstrap: &str, topic: &str) -> BaseConsumer {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique("reader"))
        .create()
        .unwrap();
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    c
}

/// An upsert table's current rows: its topic read from the start until
/// quiet for a second, each key's last value (a tombstone deletes).
pub fn upsert_table(bootstrap: &str, topic: &str) -> HashMap<Vec<u8>, Value> {
    let c = reader_from_start(bootstrap, topic);
    let mut rows = HashMap::new();
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(1) {
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            let key = m.key().unwrap_or_default().to_vec();
            match m.payload() {
                Some(v) => {
                    rows.insert(key, serde_json::from_slice(v).unwrap());
                }
                None => {
                    rows.remove(&key);
                }
            }
            quiet_since = Instant::now();
        }
    }
    rows
}

/// The guarantee the Kafka sink of statement `name` states, checked
/// against the test broker's: `infra/test.sh` sets `WEIR_TEST_EXACTLY_ONCE`
/// to 1 for noida-db (transactions work) and 0 for `weir broker` (it has
/// none). True for exactly-once.
pub fn exactly_once(dev: &Dev, name: &str) -> bool {
    let s = dev.json(&["statement", "describe", name]);
    let stated = s["status"]["metrics"]["delivery_guarantee"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    match std::env::var("WEIR_TEST_EXACTLY_ONCE").as_deref() {
        Ok("1") => assert_eq!(stated, "exactly-once", "{s}"),
        Ok("0") => assert_eq!(stated, "at-least-once", "{s}"),
        _ => {}
    }
    if stated == "exactly-once" {
        assert!(
            s["status"]["metrics"]["transactions"].as_u64() > Some(0),
            "an exactly-once sink that committed no transaction: {s}"
        );
    }
    stated == "exactly-once"
}

/// A test that fails leaves no `weir dev` behind (it would hold the test's
/// output open, and nextest would wait for it).
impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(unique("weir-cli"));
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn produce(topic: &str, ids: std::ops::Range<i64>) {
    produce_to(&broker(), topic, ids)
}

pub fn produce_to(bootstrap: &str, topic: &str, ids: std::ops::Range<i64>) {
    produce_records(bootstrap, topic, ids, None)
}

/// Keeps producing 300 records every `pause` (ids from `from` on; with
/// `partitions`, id `i` into partition `i % partitions`, so that every
/// partition's watermark keeps up) until three batches after the restart.
pub struct Feeder {
    restarted: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<i64>,
}

impl Feeder {
    pub fn start(topic: &str, from: i64, pause: Duration, partitions: Option<i32>) -> Feeder {
        let restarted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (topic, flag) = (topic.to_string(), restarted.clone());
        let thread = std::thread::spawn(move || {
            let (mut next, mut after) = (from, 0);
            while after < 3 {
                produce_records(&broker(), &topic, next..next + 300, partitions);
                next += 300;
                if flag.load(std::sync::atomic::Ordering::SeqCst) {
                    after += 1;
                }
                std::thread::sleep(pause);
            }
            next
        });
        Feeder { restarted, thread }
    }

    /// Says the server is back; returns the id after the last produced
    /// once the feeder has stopped.
    pub fn finish_after_restart(self) -> i64 {
        self.restarted
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

pub fn produce_records(
    bootstrap: &str,
    topic: &str,
    ids: std::ops::Range<i64>,
    partitions: Option<i32>,
) {
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let futures: Vec<_> = ids
        .map(|id| {
            let v = format!(r#"{{"id":{id},"amount":{}}}"#, id % 100);
            let mut r = FutureRecord::<(), _>::to(topic).payload(&v);
            if let Some(n) = partitions {
                r = r.partition((id % n as i64) as i32);
            }
            p.send_result(r).map_err(|(e, _)| e).unwrap()
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for f in futures {
            f.await.unwrap().map_err(|(e, _)| e).unwrap();
        }
    });
}

/// The `id`s of every record in `topic`, read until `want` arrived (and a
/// second more).
pub fn consume_ids(topic: &str, want: usize) -> Vec<i64> {
    consume_ids_from(&broker(), topic, want)
}

/// Reads `topic` from the start until it holds `want` distinct ids (and
/// one second more, for duplicates still arriving); every id read, in
/// order, duplicates included. Counting distinct ids matters: after a
/// replay the topic can hold `want` records while some of the wanted ids
/// are still to come.
pub fn consume_ids_from(bootstrap: &str, topic: &str, want: usize) -> Vec<i64> {
    let c = reader_from_start(bootstrap, topic);
    let mut ids = vec![];
    let mut distinct = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut settle: Option<Instant> = None;
    loop {
        if distinct.len() >= want && settle.is_none() {
            settle = Some(Instant::now() + Duration::from_secs(1));
        }
        if settle.is_some_and(|s| Instant::now() > s) {
            return ids;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: {} distinct ids of {want} ({} records)",
            distinct.len(),
            ids.len()
        );
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            let v: Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            let id = v["id"].as_i64().unwrap();
            distinct.insert(id);
            ids.push(id);
        }
    }
}

/// A stand-in OpenTelemetry collector: takes OTLP/HTTP requests on a
/// local port and keeps their paths and bodies (protobuf
/// `ExportTraceServiceRequest`s on `/v1/traces`, ...).
pub struct Collector {
    pub url: String,
    pub bodies: Received,
}

/// (path, body) of each request a [`Collector`] took.
pub type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

impl Collector {
    /// The bodies sent to `path`.
    pub fn bodies_of(&self, path: &str) -> Vec<Vec<u8>> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
            .collect()
    }
}

impl Collector {
    pub fn start() -> Collector {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = bodies.clone();
        // Each connection on its own thread, each request on it answered in
        // turn (an exporter may keep a connection open and send the next
        // batch on it; answering one and closing would lose that batch).
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let keep = keep.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn);
                    loop {
                        let mut length = 0usize;
                        let mut any = false;
                        let mut path = String::new();
                        loop {
                            let mut line = String::new();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if line == "\r\n" {
                                if any {
                                    break;
                                }
                                continue;
                            }
                            if !any {
                                // The request line: METHOD PATH VERSION.
                                path = line
                                    .split_whitespace()
                                    .nth(1)
                                    .unwrap_or_default()
                                    .to_string();
                            }
                            any = true;
                            let lower = line.to_ascii_lowercase();
                            if let Some(v) = lower.strip_prefix("content-length:") {
                                length = v.trim().parse().unwrap_or(0);
                            }
                        }
                        let mut body = vec![0u8; length];
                        if reader.read_exact(&mut body).is_err() {
                            return;
                        }
                        keep.lock().unwrap().push((path, body));
                        if reader
                            .get_mut()
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n")
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        Collector { url, bodies }
    }
}
