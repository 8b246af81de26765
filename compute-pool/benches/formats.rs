//! Records per second per core of the source decoder, Kafka values to an
//! Arrow batch of every column, for the same Nexmark bids in each value
//! format: plain JSON (about 200 bytes), `avro-registry` and
//! `proto-registry` (Confluent's wire format). One thread, polls of 8192
//! records, as a source task decodes them; writer schemas are learnt
//! before timing, as they are after a source's first poll.
//!
//! `cargo bench -p weir-compute-pool --bench formats`
//! (`WEIR_BENCH_RECORDS` sets the record count; default 1,000,000).

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use prost_reflect::{DynamicMessage, Value};
use weir_catalog::registry::{RegisteredSchema, SchemaType};
use weir_compute_pool::connector::decode::{RawRecord, SourceDecoder};
use weir_compute_pool::{compile, BranchSource};
use weir_sql_gateway::{analyze, Analysis, CatalogContext, Planner};

const POLL: usize = 8192;
const BASE_MS: i64 = 1_700_000_000_000;

struct Bid {
    auction: i64,
    bidder: i64,
    price: i64,
    channel: &'static str,
    url: String,
    ms: i64,
    extra: String,
}

fn bid(i: i64) -> Bid {
    let channel = ["Google", "Facebook", "Baidu", "Apple"][(i % 4) as usize];
    Bid {
        auction: 1000 + i % 997,
        bidder: 2000 + i * 7 % 10007,
        price: 100 + i * 31 % 100_000,
        channel,
        url: format!(
            "https://www.nexmark.com/{channel}/item.htm?query=1&channel_id={}",
            i % 1013
        ),
        ms: BASE_MS + i * 10,
        extra: "x".repeat(16 + (i % 16) as usize),
    }
}

fn source(ddl: &str) -> SourceDecoder {
    let planner = Planner::new();
    let ctx = CatalogContext::from_ddl(
        &planner,
        &[
            ddl,
            "CREATE TABLE sink (auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING, extra STRING)",
        ],
    )
    .expect("DDL plans");
    let plan = match analyze(
        &planner,
        "INSERT INTO sink SELECT auction, bidder, price, channel, url, extra FROM bids WHERE dateTime IS NOT NULL",
        &ctx,
    )
    .expect("plans")
    {
        Analysis::Streaming { plan, .. } => *plan,
        _ => unreachable!(),
    };
    let compiled = compile(&plan).unwrap();
    let BranchSource::Kafka(spec) = &compiled.branches[0].source else {
        unreachable!()
    };
    SourceDecoder::new(spec).unwrap()
}

const COLUMNS: &str = "auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING";

fn json_values(n: usize) -> Vec<Vec<u8>> {
    (0..n as i64)
        .map(|i| {
            let b = bid(i);
            let t = chrono::DateTime::from_timestamp_millis(b.ms).unwrap();
            format!(
                r#"{{"auction":{},"bidder":{},"price":{},"channel":"{}","url":"{}","dateTime":"{}","extra":"{}"}}"#,
                b.auction, b.bidder, b.price, b.channel, b.url, t.format("%Y-%m-%d %H:%M:%S%.3f"), b.extra
            )
            .into_bytes()
        })
        .collect()
}

fn avro_values(n: usize, schema: &str) -> Vec<Vec<u8>> {
    let bids: Vec<Bid> = (0..n as i64).map(bid).collect();
    let mut md = std::collections::HashMap::new();
    md.insert(
        arrow_avro::schema::SCHEMA_METADATA_KEY.to_string(),
        schema.to_string(),
    );
    let fields = vec![
        arrow::datatypes::Field::new("auction", arrow::datatypes::DataType::Int64, true),
        arrow::datatypes::Field::new("bidder", arrow::datatypes::DataType::Int64, true),
        arrow::datatypes::Field::new("price", arrow::datatypes::DataType::Int64, true),
        arrow::datatypes::Field::new("channel", arrow::datatypes::DataType::Utf8, true),
        arrow::datatypes::Field::new("url", arrow::datatypes::DataType::Utf8, true),
        arrow::datatypes::Field::new(
            "dateTime",
            arrow::datatypes::DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
            true,
        ),
        arrow::datatypes::Field::new("extra", arrow::datatypes::DataType::Utf8, true),
    ];
    let s = Arc::new(arrow::datatypes::Schema::new_with_metadata(fields, md));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(bids.iter().map(|b| b.auction))),
        Arc::new(Int64Array::from_iter_values(bids.iter().map(|b| b.bidder))),
        Arc::new(Int64Array::from_iter_values(bids.iter().map(|b| b.price))),
        Arc::new(StringArray::from_iter_values(
            bids.iter().map(|b| b.channel),
        )),
        Arc::new(StringArray::from_iter_values(
            bids.iter().map(|b| b.url.as_str()),
        )),
        Arc::new(TimestampMillisecondArray::from_iter_values(
            bids.iter().map(|b| b.ms),
        )),
        Arc::new(StringArray::from_iter_values(
            bids.iter().map(|b| b.extra.as_str()),
        )),
    ];
    let batch = RecordBatch::try_new(s.clone(), cols).unwrap();
    let mut enc = arrow_avro::writer::WriterBuilder::new(s.as_ref().clone())
        .with_fingerprint_strategy(arrow_avro::schema::FingerprintStrategy::Id(1))
        .build_encoder::<arrow_avro::writer::format::AvroSoeFormat>()
        .unwrap();
    enc.encode(&batch).unwrap();
    enc.flush().iter().map(|b| b.to_vec()).collect()
}

const PROTO: &str = r#"syntax = "proto3";
import "google/protobuf/timestamp.proto";
message Bid {
  int64 auction = 1;
  int64 bidder = 2;
  int64 price = 3;
  string channel = 4;
  string url = 5;
  google.protobuf.Timestamp dateTime = 6;
  string extra = 7;
}
"#;

fn proto_values(n: usize) -> Vec<Vec<u8>> {
    let schema = weir_catalog::proto::compile(PROTO, &[]).unwrap();
    let desc = schema.message(&[0]).unwrap();
    let ts_desc = schema
        .pool
        .get_message_by_name("google.protobuf.Timestamp")
        .unwrap();
    (0..n as i64)
        .map(|i| {
            let b = bid(i);
            let mut m = DynamicMessage::new(desc.clone());
            m.set_field_by_name("auction", Value::I64(b.auction));
            m.set_field_by_name("bidder", Value::I64(b.bidder));
            m.set_field_by_name("price", Value::I64(b.price));
            m.set_field_by_name("channel", Value::String(b.channel.into()));
            m.set_field_by_name("url", Value::String(b.url));
            let mut ts = DynamicMessage::new(ts_desc.clone());
            ts.set_field_by_name("seconds", Value::I64(b.ms / 1000));
            ts.set_field_by_name("nanos", Value::I32((b.ms % 1000) as i32 * 1_000_000));
            m.set_field_by_name("dateTime", Value::Message(ts));
            m.set_field_by_name("extra", Value::String(b.extra));
            let mut out = vec![0, 0, 0, 0, 1, 0];
            out.extend(prost_reflect::prost::Message::encode_to_vec(&m));
            out
        })
        .collect()
}

fn measure(name: &str, decoder: &SourceDecoder, values: &[Vec<u8>]) {
    let records: Vec<RawRecord<'_>> = values
        .iter()
        .enumerate()
        .map(|(i, v)| RawRecord {
            key: None,
            value: Some(v),
            partition: 0,
            offset: i as i64,
            timestamp_ms: BASE_MS,
            headers: &[],
        })
        .collect();
    // Learn the writer schemas (and warm up) on the first poll.
    let first = &records[..POLL.min(records.len())];
    assert!(decoder.missing_schemas(first).is_empty(), "schemas learnt");
    let (b, bad) = decoder.decode(first).unwrap();
    assert!(bad.is_empty(), "{name}: {:?}", bad.first());
    assert_eq!(b.unwrap().num_rows(), first.len());
    let start = Instant::now();
    let mut rows = 0;
    for poll in records.chunks(POLL) {
        let (b, bad) = decoder.decode(poll).unwrap();
        assert!(bad.is_empty());
        rows += b.map_or(0, |b| b.num_rows());
    }
    let secs = start.elapsed().as_secs_f64();
    let bytes: usize = values.iter().map(Vec::len).sum();
    println!(
        "{name:<16} {:>9.0} records/s per core  {:>6.0} ns/record  {:>5.1} bytes/record",
        rows as f64 / secs,
        secs * 1e9 / rows as f64,
        bytes as f64 / values.len() as f64
    );
}

fn main() {
    let n: usize = std::env::var("WEIR_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    println!("decoding {n} Nexmark bids into Arrow (every column read), one thread:");

    let json = source(&format!(
        "CREATE TABLE bids ({COLUMNS}, dateTime TIMESTAMP(3), extra STRING)"
    ));
    measure("json", &json, &json_values(n));

    let avro = source(&format!(
        "CREATE TABLE bids ({COLUMNS}, dateTime TIMESTAMP(3), extra STRING) WITH ('value.format' = 'avro-registry')"
    ));
    let schema = avro_writer_schema();
    avro.learn_schema(
        1,
        Some(RegisteredSchema {
            id: 1,
            schema_type: SchemaType::Avro,
            schema: schema.clone(),
            references: vec![],
            reference_texts: vec![],
        }),
    );
    measure("avro-registry", &avro, &avro_values(n, &schema));

    let jr = source(&format!(
        "CREATE TABLE bids ({COLUMNS}, dateTime TIMESTAMP(3), extra STRING) WITH ('value.format' = 'json-registry')"
    ));
    jr.learn_schema(
        2,
        Some(RegisteredSchema {
            id: 2,
            schema_type: SchemaType::Json,
            schema: weir_catalog::registry::json_schema_of(&bid_columns()).to_string(),
            references: vec![],
            reference_texts: vec![],
        }),
    );
    let framed: Vec<Vec<u8>> = json_values(n)
        .into_iter()
        .map(|v| [&[0u8, 0, 0, 0, 2][..], &v].concat())
        .collect();
    measure("json-registry", &jr, &framed);

    let plain = source(&format!(
        "CREATE TABLE bids ({COLUMNS}, dateTime TIMESTAMP(3), extra STRING) WITH ('value.format' = 'avro')"
    ));
    let bare: Vec<Vec<u8>> = avro_values(n, &schema)
        .into_iter()
        .map(|v| v[5..].to_vec())
        .collect();
    measure("avro (plain)", &plain, &bare);

    let proto = source(&format!(
        "CREATE TABLE bids ({COLUMNS}, dateTime TIMESTAMP_LTZ(9), extra STRING) WITH ('value.format' = 'proto-registry')"
    ));
    proto.learn_schema(
        1,
        Some(RegisteredSchema {
            id: 1,
            schema_type: SchemaType::Protobuf,
            schema: PROTO.into(),
            references: vec![],
            reference_texts: vec![],
        }),
    );
    measure("proto-registry", &proto, &proto_values(n));
}

/// The schema Weir registers for the bids table, as a producer would
/// have registered it.
fn avro_writer_schema() -> String {
    weir_catalog::registry::avro_schema_of(&bid_columns())
        .unwrap()
        .to_string()
}

/// The bids table's columns.
fn bid_columns() -> Vec<(String, weir_catalog::SqlType, bool)> {
    vec![
        ("auction".to_string(), weir_catalog::SqlType::BigInt, true),
        ("bidder".to_string(), weir_catalog::SqlType::BigInt, true),
        ("price".to_string(), weir_catalog::SqlType::BigInt, true),
        ("channel".to_string(), weir_catalog::SqlType::String, true),
        ("url".to_string(), weir_catalog::SqlType::String, true),
        (
            "dateTime".to_string(),
            weir_catalog::SqlType::Timestamp { precision: 3 },
            true,
        ),
        ("extra".to_string(), weir_catalog::SqlType::String, true),
    ]
}
