//! Nexmark events as files and Kafka records, for benchmarks that feed the
//! same input to Weir and to another engine (`infra/bench/vs_flink.py`).
//!
//!     nexmark-data files --events 1000000 --dir DIR
//!         writes DIR/person.json, DIR/auction.json, DIR/bid.json
//!         (one JSON object per line) and prints their record counts
//!     nexmark-data produce --bootstrap HOST:PORT --dir DIR
//!         writes each file's lines as records into the topic of its name
//!     nexmark-data sql
//!         prints the tables' DDL and the queries' SQL as JSON

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use weir_nexmark::{Generator, GeneratorConfig};

const TABLES: [&str; 3] = ["person", "auction", "bid"];

fn usage() -> ! {
    eprintln!(
        "usage: nexmark-data files --events N --dir DIR | produce --bootstrap HOST:PORT --dir DIR"
    );
    std::process::exit(2)
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("sql") {
        let queries: serde_json::Map<String, serde_json::Value> = weir_nexmark::queries::QUERIES
            .iter()
            .map(|q| (q.name.to_string(), q.sql.into()))
            .collect();
        println!(
            "{}",
            serde_json::json!({"tables": weir_nexmark::queries::TABLES, "queries": queries})
        );
        return;
    }
    let dir = PathBuf::from(arg(&args, "--dir").unwrap_or_else(|| usage()));
    match args.first().map(String::as_str) {
        Some("files") => {
            let events: u64 = arg(&args, "--events")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| usage());
            std::fs::create_dir_all(&dir).expect("creating the folder");
            let mut files: Vec<_> = TABLES
                .iter()
                .map(|t| {
                    BufWriter::new(
                        std::fs::File::create(dir.join(format!("{t}.json")))
                            .expect("creating a file"),
                    )
                })
                .collect();
            let mut counts = [0u64; 3];
            let generator = Generator::new(GeneratorConfig {
                events,
                ..GeneratorConfig::default()
            });
            for n in 0..events {
                let e = generator.event(n);
                let i = TABLES
                    .iter()
                    .position(|t| *t == e.table())
                    .expect("a known table");
                files[i].write_all(&e.to_json()).expect("writing");
                files[i].write_all(b"\n").expect("writing");
                counts[i] += 1;
            }
            for f in &mut files {
                f.flush().expect("writing");
            }
            println!(
                "{{\"person\": {}, \"auction\": {}, \"bid\": {}}}",
                counts[0], counts[1], counts[2]
            );
        }
        Some("produce") => {
            let bootstrap = arg(&args, "--bootstrap").unwrap_or_else(|| usage());
            let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("enable.idempotence", "true")
                .set("linger.ms", "10")
                .set("batch.size", "1000000")
                .create()
                .expect("a producer");
            let start = Instant::now();
            let mut total = 0u64;
            for t in TABLES {
                let f = std::fs::File::open(dir.join(format!("{t}.json"))).expect("opening a file");
                for line in std::io::BufReader::with_capacity(1 << 20, f).lines() {
                    let line = line.expect("reading");
                    let mut r = BaseRecord::<(), _>::to(t).payload(line.as_bytes());
                    loop {
                        match producer.send(r) {
                            Ok(()) => break,
                            Err((e, back)) => {
                                if !matches!(
                                    e.rdkafka_error_code(),
                                    Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                                ) {
                                    panic!("producing to {t}: {e}");
                                }
                                r = back;
                                std::thread::sleep(Duration::from_millis(1));
                            }
                        }
                    }
                    total += 1;
                }
            }
            producer
                .flush(Duration::from_secs(300))
                .expect("every record acknowledged");
            eprintln!(
                "produced {total} records in {:.1} s",
                start.elapsed().as_secs_f64()
            );
        }
        _ => usage(),
    }
}
