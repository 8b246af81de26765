//! A panic inside one statement fails that statement, with the panic in
//! its exceptions, while a statement beside it reading the same topic goes
//! on: each statement runs on a thread of its own. Against the test broker
//! (`WEIR_TEST_BOOTSTRAP`, started by `infra/test.sh`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use weir_compute_pool::{Outcome, StatementEvents, StatementTask, Worker};
use weir_sql_gateway::limits::MemoryLimit;
use weir_sql_gateway::{analyze, Analysis, CatalogContext, Planner, StreamingPlan};

fn broker() -> String {
    std::env::var("WEIR_TEST_BOOTSTRAP").expect(
        "WEIR_TEST_BOOTSTRAP is not set: run the suite with infra/test.sh, which starts the test broker",
    )
}

/// Records exceptions; `commit` panics when `panics` is set, as a bug in
/// the code a statement runs would.
struct Events {
    panics: bool,
    exceptions: Mutex<Vec<String>>,
}

impl StatementEvents for Events {
    fn commit<'a>(
        &'a self,
        _topic: &'a str,
        _offsets: &'a [(i32, i64)],
    ) -> BoxFuture<'a, Result<(), String>> {
        assert!(!self.panics, "boom: a bug inside the statement");
        Box::pin(async { Ok(()) })
    }

    fn exception<'a>(&'a self, message: &'a str) -> BoxFuture<'a, ()> {
        self.exceptions.lock().unwrap().push(message.to_string());
        Box::pin(async {})
    }
}

fn plan(topic: &str) -> StreamingPlan {
    let planner = Planner::new();
    let ctx = CatalogContext::from_ddl(&planner, &[&format!("CREATE TABLE {topic} (id BIGINT)")])
        .unwrap();
    match analyze(&planner, &format!("SELECT id FROM {topic}"), &ctx).unwrap() {
        Analysis::Streaming { plan, .. } => *plan,
        other => panic!("{other:?}"),
    }
}

fn task(topic: &str, events: Arc<Events>) -> StatementTask {
    StatementTask {
        key: format!("test/isolation/{topic}/{}", events.panics),
        plan: plan(topic),
        kafka: weir_catalog::KafkaConnection::plain(broker()),
        start_offsets: HashMap::new(),
        events,
        results_idle_timeout: Duration::from_secs(60),
        results_capacity: 1000,
        idle_timeout: None,
        state_ttl: None,
        checkpoints: None,
        memory_limit: MemoryLimit {
            soft: 1 << 30,
            hard: 1 << 30,
        },
        role: Default::default(),
    }
}

#[test]
fn a_panic_in_one_statement_fails_it_alone() {
    let topic = format!(
        "isolation_{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        weir_catalog::KafkaAdmin::new(&weir_catalog::KafkaConnection::plain(broker()))
            .unwrap()
            .create_topic(&topic, 1, &[])
            .await
            .unwrap()
    });
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .create()
        .unwrap();
    for id in 0..3 {
        let v = format!(r#"{{"id":{id}}}"#);
        producer
            .send(BaseRecord::<(), _>::to(&topic).payload(&v))
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();

    // Started from a plain thread: the statements' events run on their
    // own threads, so the panic is raised inside the statement.
    let bad = Arc::new(Events {
        panics: true,
        exceptions: Mutex::default(),
    });
    let good = Arc::new(Events {
        panics: false,
        exceptions: Mutex::default(),
    });
    let failing = Worker.start(task(&topic, bad.clone()));
    let steady = Worker.start(task(&topic, good.clone()));
    let outcome = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), failing.join())
            .await
            .expect("the statement ends")
    });
    let Outcome::Failed(message) = outcome else {
        panic!("wanted a failure, got {outcome:?}")
    };
    assert!(
        message.contains("the statement crashed (boom: a bug inside the statement)")
            && message.contains("only this statement was stopped"),
        "{message}"
    );
    assert!(
        bad.exceptions.lock().unwrap().iter().any(|e| e == &message),
        "{:?}",
        bad.exceptions.lock().unwrap()
    );
    // The statement beside it reads all three rows and keeps running.
    let results = steady.results.clone().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while results.page(0, 10).rows.len() < 3 {
        assert!(Instant::now() < deadline, "the other statement stalled");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!steady.is_finished());
    steady.stop();
    assert_eq!(rt.block_on(steady.join()), Outcome::Stopped);
    assert!(good.exceptions.lock().unwrap().is_empty());
}
