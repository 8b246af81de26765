//! Nexmark through a real broker, shared by the broker test and the
//! benchmark: the generator's events produced as JSON into three topics,
//! a query run on the worker as `CREATE TABLE ... AS SELECT` into a topic,
//! and that topic read back by an independent consumer.

// The test and the benchmark each use part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use weir_catalog::{KafkaAdmin, TableDef};
use weir_compute_pool::{StatementEvents, StatementTask, Worker};
use weir_nexmark::queries::{side_input, SIDE_INPUT_TABLE, TABLES};
use weir_nexmark::Event;
use weir_sql_gateway::{analyze, Analysis, CatalogContext, Planner, StreamingPlan};

/// A Kafka record's key, value and `__op` header (a retract table's).
pub type Record = (Option<Vec<u8>>, Option<Vec<u8>>, Option<String>);

/// The three tables' topics on the broker, and how many records each holds.
pub struct Loaded {
    pub bootstrap: String,
    pub suffix: String,
    /// Table name -> topic.
    pub topics: HashMap<String, String>,
    /// Topic -> records.
    pub counts: HashMap<String, u64>,
}

/// A name no earlier run used.
pub fn unique_suffix() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_nanos()
    )
}

/// Creates `nexmark_person_<suffix>`, `nexmark_auction_<suffix>` and
/// `nexmark_bid_<suffix>` (one partition each, as the DDL says) and
/// produces every event into its table's topic as JSON, with the event
/// time as the record timestamp; and `nexmark_side_input_<suffix>`, with
/// q13's side input, produced first.
pub async fn load(bootstrap: &str, suffix: &str, events: &[Event]) -> Loaded {
    let admin =
        KafkaAdmin::new(&weir_catalog::KafkaConnection::plain(bootstrap)).expect("an admin client");
    let mut topics = HashMap::new();
    for table in ["person", "auction", "bid"] {
        let topic = format!("nexmark_{table}_{suffix}");
        // Event times are in the past: without this a broker that
        // enforces retention by record time may drop them at once.
        admin
            .create_topic(&topic, 1, &[("retention.ms", "-1")])
            .await
            .expect("creates a topic");
        topics.insert(table.to_string(), topic);
    }
    let side_topic = format!("nexmark_side_input_{suffix}");
    admin
        .create_topic(&side_topic, 1, &[("retention.ms", "-1")])
        .await
        .expect("creates a topic");
    topics.insert("side_input".to_string(), side_topic.clone());
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("a producer");
    let mut counts: HashMap<String, u64> = HashMap::new();
    // q13's side input first, keyed as an upsert table.
    let side: Vec<_> = side_input().collect();
    let records = side
        .iter()
        .map(|(key, value)| FutureRecord::to(&side_topic).key(key).payload(value));
    send_all(&producer, records).await;
    *counts.entry(side_topic.clone()).or_default() += side.len() as u64;
    for chunk in events.chunks(20_000) {
        for e in chunk {
            *counts.entry(topics[e.table()].clone()).or_default() += 1;
        }
        let values: Vec<Vec<u8>> = chunk.iter().map(|e| e.to_json()).collect();
        let records = chunk.iter().zip(&values).map(|(e, value)| {
            FutureRecord::<(), _>::to(&topics[e.table()])
                .payload(value)
                .timestamp(e.timestamp_ms())
        });
        send_all(&producer, records).await;
    }
    Loaded {
        bootstrap: bootstrap.to_string(),
        suffix: suffix.to_string(),
        topics,
        counts,
    }
}

/// Queues every record, then waits until the broker acknowledges each.
async fn send_all<'a, K, V>(
    producer: &FutureProducer,
    records: impl Iterator<Item = FutureRecord<'a, K, V>>,
) where
    K: rdkafka::message::ToBytes + ?Sized + 'a,
    V: rdkafka::message::ToBytes + ?Sized + 'a,
{
    let pending: Vec<_> = records
        .map(|r| {
            producer
                .send_result(r)
                .map_err(|(e, _)| e)
                .expect("queues a record")
        })
        .collect();
    for f in pending {
        f.await
            .expect("a delivery report")
            .map_err(|(e, _)| e)
            .expect("the broker acknowledges the record");
    }
}

/// The tables' DDL with their topics pointed at the loaded ones.
fn catalog(planner: &Planner, loaded: &Loaded) -> CatalogContext {
    let ddl: Vec<&str> = TABLES.iter().copied().chain([SIDE_INPUT_TABLE]).collect();
    let mut ctx = CatalogContext::from_ddl(planner, &ddl).expect("the DDL plans");
    for (_, t) in ctx.tables.iter_mut() {
        t.topic = loaded.topics[&t.name].clone();
    }
    ctx
}

/// Plans `CREATE TABLE <name> AS <query>` over the loaded topics, writing
/// to a fresh topic, and creates that topic. Returns the plan and the sink
/// table, or why the query cannot go into a topic.
pub async fn try_plan_into_topic(
    loaded: &Loaded,
    name: &str,
    query_sql: &str,
) -> Result<(StreamingPlan, TableDef), String> {
    let planner = Planner::new();
    let ctx = catalog(&planner, loaded);
    let sql = format!("CREATE TABLE {name} AS {query_sql}");
    let Analysis::Streaming {
        mut plan,
        create: Some(mut table),
        ..
    } = analyze(&planner, &sql, &ctx).map_err(|e| e.to_string())?
    else {
        return Err("CREATE TABLE AS did not plan to a streaming statement".into());
    };
    table.topic = format!("{name}_{}", loaded.suffix);
    if let weir_sql_gateway::SinkSpec::Table { table: t, .. } = &mut plan.sink {
        t.topic = table.topic.clone();
    }
    let admin = KafkaAdmin::new(&weir_catalog::KafkaConnection::plain(&loaded.bootstrap))
        .map_err(|e| e.to_string())?;
    admin
        .create_topic(&table.topic, table.partitions(), &[])
        .await
        .map_err(|e| e.to_string())?;
    Ok((*plan, table))
}

/// [`try_plan_into_topic`], which must succeed.
pub async fn plan_into_topic(
    loaded: &Loaded,
    name: &str,
    query_sql: &str,
) -> (StreamingPlan, TableDef) {
    try_plan_into_topic(loaded, name, query_sql)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Plans the query as a `SELECT` over the loaded topics, its rows going to
/// the statement's results.
pub fn plan_select(loaded: &Loaded, query_sql: &str) -> StreamingPlan {
    let planner = Planner::new();
    match analyze(&planner, query_sql, &catalog(&planner, loaded)).expect("the query plans") {
        Analysis::Streaming { plan, .. } => *plan,
        _ => panic!("a query plans to a streaming statement"),
    }
}

struct Quiet;

impl StatementEvents for Quiet {
    fn commit<'a>(
        &'a self,
        _topic: &'a str,
        _offsets: &'a [(i32, i64)],
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
    fn exception<'a>(&'a self, message: &'a str) -> BoxFuture<'a, ()> {
        eprintln!("exception: {message}");
        Box::pin(async {})
    }
}

/// What a run on the worker did.
pub struct Run {
    /// From the start until every source record was processed and its
    /// output acknowledged by the broker.
    pub wall: Duration,
    pub records_in: u64,
    pub records_out: u64,
    pub state_groups: u64,
    pub state_bytes: u64,
}

/// Runs `plan` on the worker until it has processed every record of the
/// topics it reads, then stops it.
pub async fn run(loaded: &Loaded, key: &str, plan: StreamingPlan) -> Run {
    // Every topic is read whole, once: the sources that read one topic
    // (a self-join's two, q7's window and its join) share a reader.
    let topics: std::collections::BTreeSet<&str> = plan
        .root
        .sources()
        .iter()
        .map(|s| s.table.topic.as_str())
        .collect();
    let expected: u64 = topics.iter().map(|t| loaded.counts[*t]).sum();
    let start = Instant::now();
    let running = Worker.start(StatementTask {
        key: key.to_string(),
        plan,
        kafka: weir_catalog::KafkaConnection::plain(&loaded.bootstrap),
        start_offsets: HashMap::new(),
        events: Arc::new(Quiet),
        results_idle_timeout: Duration::from_secs(3600),
        // A SELECT's rows pile up unread: room for all of them.
        results_capacity: 100_000_000,
        idle_timeout: None,
        state_ttl: None,
        checkpoints: None,
        memory_limit: weir_sql_gateway::limits::MemoryLimit {
            soft: u64::MAX,
            hard: u64::MAX,
        },
        role: Default::default(),
    });
    let m = running.metrics.clone();
    let deadline = Instant::now() + Duration::from_secs(900);
    let mut last_report = Instant::now();
    while m.records_done.load(Ordering::SeqCst) < expected {
        assert!(
            Instant::now() < deadline,
            "{key}: {} of {expected} records done after 15 minutes",
            m.records_done.load(Ordering::SeqCst)
        );
        assert!(!running.is_finished(), "{key}: the statement ended early");
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            eprintln!(
                "{key}: {} records read, {} of {expected} done",
                m.records_in.load(Ordering::SeqCst),
                m.records_done.load(Ordering::SeqCst)
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let wall = start.elapsed();
    assert_eq!(
        m.records_in.load(Ordering::SeqCst),
        expected,
        "{key}: read more records than its sources hold"
    );
    let run = Run {
        wall,
        records_in: m.records_in.load(Ordering::SeqCst),
        records_out: m.records_out.load(Ordering::SeqCst),
        state_groups: m.state_groups.load(Ordering::SeqCst),
        state_bytes: m.state_bytes.load(Ordering::SeqCst),
    };
    running.stop();
    running.join().await;
    run
}

/// Reads `topic` from the start with a consumer of its own until `done`
/// says what it has read is complete (or a minute has passed), and for
/// half a second more: `(key, value)` in each partition's order.
pub fn read_topic(bootstrap: &str, topic: &str, done: impl Fn(&[Record]) -> bool) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("group.id", format!("nexmark-reader-{}", unique_suffix()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("a consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("topic metadata");
    let mut assignment = TopicPartitionList::new();
    for p in metadata.topics()[0].partitions() {
        assignment
            .add_partition_offset(topic, p.id(), Offset::Beginning)
            .expect("an assignment");
    }
    consumer.assign(&assignment).expect("assigns");
    let mut out = vec![];
    let deadline = Instant::now() + Duration::from_secs(60);
    // `done` is asked when the topic pauses and every 10,000 records, not
    // after each one: it may fold everything read.
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(m) => {
                let m = m.expect("a record");
                out.push(record(&m));
                if out.len() % 10_000 == 0 && done(&out) {
                    break;
                }
            }
            None if done(&out) => break,
            None => {}
        }
    }
    // Anything more would be a duplicate: give it a moment to show.
    let settle = Instant::now() + Duration::from_millis(500);
    while Instant::now() < settle {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("a record");
            out.push(record(&m));
        }
    }
    out
}

fn record(m: &rdkafka::message::BorrowedMessage<'_>) -> Record {
    use rdkafka::message::Headers;
    let op = m.headers().and_then(|h| {
        h.iter()
            .find(|h| h.key == weir_compute_pool::connector::encode::OP_HEADER)
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    });
    (
        m.key().map(<[u8]>::to_vec),
        m.payload().map(<[u8]>::to_vec),
        op,
    )
}
