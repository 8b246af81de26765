//! How many ~200-byte records per second `weir broker` takes in and serves
//! out at the same time, on disk, with librdkafka clients.
//!
//!     cargo bench --workspace --bench throughput
//!
//! One process holds the broker (its own runtime, threads named
//! `broker`), an idempotent producer and a consumer reading what is
//! produced as it arrives. Printed: records/s in and out (wall), and the
//! CPU seconds of the broker's threads and of the whole process. Set
//! `WEIR_BENCH_RECORDS` (default 2,000,000) and `WEIR_BENCH_PARTITIONS`
//! (default 1). `WEIR_BENCH_BOOTSTRAP=host:port` measures another broker
//! instead (its CPU is then not counted), to compare.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

fn ticks_per_second() -> f64 {
    100.0
}

/// CPU seconds of this process's threads named `name` (all when `None`).
fn cpu_seconds(name: Option<&str>) -> f64 {
    let mut total = 0u64;
    for t in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = t.path();
        if let Some(n) = name {
            let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            if comm.trim() != n {
                continue;
            }
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        // Fields after the command name (which is in parentheses).
        let rest = stat.rsplit_once(") ").map(|x| x.1).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() > 12 {
            total += f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
        }
    }
    total as f64 / ticks_per_second()
}

fn main() {
    let n: usize = std::env::var("WEIR_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let partitions: i32 = std::env::var("WEIR_BENCH_PARTITIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("broker")
        .enable_all()
        .build()
        .unwrap();
    let other = std::env::var("WEIR_BENCH_BOOTSTRAP").ok();
    let broker = match &other {
        Some(_) => None,
        None => Some(
            rt.block_on(weir_broker::Broker::start(weir_broker::BrokerConfig {
                listen: "127.0.0.1:0".into(),
                data_dir: Some(dir.path().to_path_buf()),
                ..Default::default()
            }))
            .unwrap(),
        ),
    };
    let addr = other
        .clone()
        .unwrap_or_else(|| broker.as_ref().unwrap().addr().to_string());
    let topic = format!("bench-{}", std::process::id());
    let topic = topic.as_str();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &addr)
        .create()
        .unwrap();
    rt.block_on(admin.create_topics(
        &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
        &AdminOptions::new(),
    ))
    .unwrap();

    let record: Vec<u8> = {
        let mut r = br#"{"auction":1001,"bidder":2001,"price":12345,"channel":"Google","url":"https://www.nexmark.com/abc/def/item.htm?query=1","dateTime":"2026-12-04 18:00:00.000","extra":""#.to_vec();
        r.resize(199, b'x');
        r.push(b'}');
        r
    };
    let cpu0 = (cpu_seconds(Some("broker")), cpu_seconds(None));
    let start = Instant::now();
    let consumer = {
        let addr = addr.clone();
        let topic = topic.to_string();
        std::thread::spawn(move || {
            let topic = topic.as_str();
            let c: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &addr)
                .set("group.id", "bench")
                .set("enable.auto.commit", "false")
                .create()
                .unwrap();
            let mut tpl = TopicPartitionList::new();
            for p in 0..partitions {
                tpl.add_partition_offset(topic, p, Offset::Beginning)
                    .unwrap();
            }
            c.assign(&tpl).unwrap();
            let mut got = 0usize;
            let deadline = Instant::now() + Duration::from_secs(600);
            while got < n && Instant::now() < deadline {
                if let Some(m) = c.poll(Duration::from_millis(100)) {
                    m.unwrap();
                    got += 1;
                }
            }
            (got, start.elapsed())
        })
    };
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &addr)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .create()
        .unwrap();
    for i in 0..n {
        let key = (i as u64).to_be_bytes();
        let mut r = BaseRecord::to(topic).key(&key[..]).payload(&record[..]);
        loop {
            match producer.send(r) {
                Ok(()) => break,
                Err((_, back)) => {
                    r = back;
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(120)).unwrap();
    let produced = start.elapsed();
    let (got, consumed) = consumer.join().unwrap();
    let cpu1 = (cpu_seconds(Some("broker")), cpu_seconds(None));
    println!(
        "{}, {partitions} partition(s), {n} records of {} bytes, producing and consuming at once:",
        other
            .as_deref()
            .map_or("weir broker, disk".to_string(), |b| format!(
                "the broker at {b}"
            )),
        record.len()
    );
    println!(
        "  in:  {:>9.0} records/s ({:.2} s)",
        n as f64 / produced.as_secs_f64(),
        produced.as_secs_f64()
    );
    println!(
        "  out: {:>9.0} records/s ({:.2} s, {got} read)",
        got as f64 / consumed.as_secs_f64(),
        consumed.as_secs_f64()
    );
    if other.is_none() {
        println!(
            "  CPU: broker threads {:.2} s ({:.0} records in+out per broker CPU-second)",
            cpu1.0 - cpu0.0,
            (n + got) as f64 / (cpu1.0 - cpu0.0).max(0.01),
        );
    }
    println!(
        "  CPU of the process (clients, and the broker when it is weir broker): {:.2} s",
        cpu1.1 - cpu0.1
    );
    if let Some(b) = broker {
        rt.block_on(b.stop());
    }
}
