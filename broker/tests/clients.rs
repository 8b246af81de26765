//! `weir broker` against a real Kafka client (librdkafka): topics, an
//! idempotent producer, consumer groups that share partitions, committed
//! offsets, and everything still there after a restart.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use weir_broker::{Broker, BrokerConfig};

async fn start(dir: &std::path::Path, listen: &str) -> Broker {
    Broker::start(BrokerConfig {
        listen: listen.into(),
        data_dir: Some(dir.to_path_buf()),
        ..BrokerConfig::default()
    })
    .await
    .expect("the broker starts")
}

async fn produce(bootstrap: &str, topic: &str, ids: std::ops::Range<u32>) {
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .create()
        .unwrap();
    let sends: Vec<_> = ids
        .map(|i| {
            let key = i.to_string();
            let p = p.clone();
            let topic = topic.to_string();
            async move {
                p.send(
                    FutureRecord::to(&topic).key(&key).payload(&key),
                    Duration::from_secs(10),
                )
                .await
                .map_err(|(e, _)| e)
                .unwrap()
            }
        })
        .collect();
    futures_join(sends).await;
}

async fn futures_join<F: std::future::Future>(fs: Vec<F>) {
    for f in fs {
        f.await;
    }
}

/// Reads with a group member until `n` records arrived in all (across
/// `consumers`), returning each consumer's ids.
fn read_group(consumers: &[BaseConsumer], n: usize) -> Vec<BTreeSet<u32>> {
    let mut got = vec![BTreeSet::new(); consumers.len()];
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.iter().map(|g| g.len()).sum::<usize>() < n {
        assert!(
            Instant::now() < deadline,
            "only {:?} of {n}",
            got.iter().map(|g| g.len()).collect::<Vec<_>>()
        );
        for (c, g) in consumers.iter().zip(got.iter_mut()) {
            if let Some(m) = c.poll(Duration::from_millis(50)) {
                let m = m.unwrap();
                g.insert(
                    std::str::from_utf8(m.payload().unwrap())
                        .unwrap()
                        .parse()
                        .unwrap(),
                );
            }
        }
    }
    got
}

fn member(bootstrap: &str, group: &str, topic: &str) -> BaseConsumer {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_group_shares_partitions_and_its_offsets_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), "127.0.0.1:0").await;
    let addr = broker.addr().to_string();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &addr)
        .create()
        .unwrap();
    let created = admin
        .create_topics(
            &[NewTopic::new("orders", 4, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    assert!(created[0].is_ok(), "{created:?}");
    let again = admin
        .create_topics(
            &[NewTopic::new("orders", 4, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    assert!(
        again[0].is_err(),
        "a second create of the same topic is refused"
    );
    produce(&addr, "orders", 0..2000).await;

    let (a2, b2) = (addr.clone(), addr.clone());
    let (first, second) = tokio::task::spawn_blocking(move || {
        let members = [
            member(&a2, "billing", "orders"),
            member(&b2, "billing", "orders"),
        ];
        let got = read_group(&members, 2000);
        for m in &members {
            m.commit_consumer_state(CommitMode::Sync).unwrap();
        }
        (got[0].clone(), got[1].clone())
    })
    .await
    .unwrap();
    assert_eq!(first.len() + second.len(), 2000, "no record twice");
    assert!(
        !first.is_empty() && !second.is_empty(),
        "both members got partitions"
    );
    assert_eq!(first.union(&second).count(), 2000);

    broker.stop().await;
    let broker = start(dir.path(), &addr).await;
    produce(&addr, "orders", 2000..2100).await;
    let later = tokio::task::spawn_blocking(move || {
        let m = [member(&addr, "billing", "orders")];
        read_group(&m, 100)[0].clone()
    })
    .await
    .unwrap();
    assert_eq!(
        later,
        (2000..2100).collect::<BTreeSet<_>>(),
        "the group resumes where it committed"
    );
    broker.stop().await;
}

fn sasl_client(bootstrap: &str, user: &str, password: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanism", "PLAIN")
        .set("sasl.username", user)
        .set("sasl.password", password);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_sasl_users_only_a_client_that_authenticates_is_served() {
    let broker = Broker::start(BrokerConfig {
        listen: "127.0.0.1:0".into(),
        sasl_plain_users: [("alice".to_string(), "s3cret-pw".to_string())].into(),
        ..BrokerConfig::default()
    })
    .await
    .unwrap();
    let addr = broker.addr().to_string();

    // The right password: a record goes in and comes back out.
    let p: FutureProducer = sasl_client(&addr, "alice", "s3cret-pw")
        .set("message.timeout.ms", "10000")
        .create()
        .unwrap();
    p.send(
        FutureRecord::to("secured").key("k").payload("hello"),
        Duration::from_secs(10),
    )
    .await
    .map_err(|(e, _)| e)
    .expect("an authenticated producer is served");
    let c: BaseConsumer = sasl_client(&addr, "alice", "s3cret-pw")
        .set("group.id", "g")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    c.subscribe(&["secured"]).unwrap();
    let got = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(m) = c.poll(Duration::from_millis(100)) {
                return Some(m.unwrap().payload().unwrap().to_vec());
            }
        }
        None
    })
    .await
    .unwrap();
    assert_eq!(got.as_deref(), Some(&b"hello"[..]));

    // A wrong password, an unknown user and no SASL at all are refused:
    // nothing is produced.
    for (what, config) in [
        ("a wrong password", sasl_client(&addr, "alice", "wrong")),
        (
            "an unknown user",
            sasl_client(&addr, "mallory", "s3cret-pw"),
        ),
        ("no SASL", {
            let mut c = ClientConfig::new();
            c.set("bootstrap.servers", &addr);
            c
        }),
    ] {
        let p: FutureProducer = config
            .clone()
            .set("message.timeout.ms", "3000")
            .create()
            .unwrap();
        let sent = p
            .send(
                FutureRecord::to("secured").key("k").payload("intruder"),
                Duration::from_secs(5),
            )
            .await;
        assert!(sent.is_err(), "{what} was served: {sent:?}");
    }
    let c: BaseConsumer = sasl_client(&addr, "alice", "s3cret-pw")
        .set("group.id", "g2")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    c.subscribe(&["secured"]).unwrap();
    let all = tokio::task::spawn_blocking(move || {
        let mut all = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Some(m) = c.poll(Duration::from_millis(100)) {
                all.push(m.unwrap().payload().unwrap().to_vec());
            }
        }
        all
    })
    .await
    .unwrap();
    assert_eq!(
        all,
        vec![b"hello".to_vec()],
        "only the authenticated record"
    );
    // Before authenticating, a large request is refused unread: the
    // connection closes.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(&(1i32 << 20).to_be_bytes()).await.unwrap();
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("the broker answers or closes within 5 s")
            .unwrap_or(0);
        assert_eq!(n, 0, "a stranger's 1 MiB request closes the connection");
    }
    broker.stop().await;
}
