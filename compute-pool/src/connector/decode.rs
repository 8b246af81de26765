//! Kafka records to Arrow: the value decoded by arrow-json straight into
//! columns, plus metadata columns, `$rowtime` and computed columns.
//!
//! The fastest path, for tables whose read columns are all scalar, reads
//! each value once straight into its columns and skips the values nobody
//! reads ([`crate::connector::fastjson`]). Where it cannot take a poll, every value of
//! the poll goes into one arrow-json decoder, flushed as one batch. Only
//! when that fails does it fall back to one record at a time, to find the
//! bad ones and apply the table's error policy; a bad record never costs the
//! good ones around it.

use std::sync::Arc;

use arrow::array::{
    new_null_array, Array, ArrayRef, BinaryArray, BooleanArray, Int32Array, Int64Array,
    RecordBatch, RecordBatchOptions, StringArray, TimestampMillisecondArray,
};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::json::reader::{Decoder, ReaderBuilder};
use datafusion::common::DFSchema;
use datafusion::execution::context::ExecutionProps;
use datafusion::physical_expr::{create_physical_expr, PhysicalExpr};
use weir_catalog::registry::Part;
use weir_catalog::{ColumnKind, TableDef, TableOrigin, ROWTIME_COLUMN};
use weir_sql_gateway::SourceSpec;

use crate::EngineError;

/// A record header: its key and value, borrowed.
pub type Header<'a> = (&'a str, Option<&'a [u8]>);

/// One Kafka record, borrowed from the consumer.
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
    /// The record's headers, in order.
    pub headers: &'a [Header<'a>],
}

/// `'error-handling.mode'`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorMode {
    Fail,
    Ignore,
    Log,
}

impl ErrorMode {
    pub fn of(options: &std::collections::BTreeMap<String, String>) -> ErrorMode {
        match options.get("error-handling.mode").map(String::as_str) {
            Some("ignore") => ErrorMode::Ignore,
            Some("log") => ErrorMode::Log,
            _ => ErrorMode::Fail,
        }
    }
}

/// A record that did not decode, with why.
#[derive(Debug, Clone)]
pub struct BadRecord {
    pub partition: i32,
    pub offset: i64,
    pub reason: String,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

/// A record that did not decode, with why.
fn bad_record(r: &RawRecord<'_>, reason: String) -> BadRecord {
    BadRecord {
        partition: r.partition,
        offset: r.offset,
        reason,
        key: r.key.map(<[u8]>::to_vec),
        value: r.value.map(<[u8]>::to_vec),
    }
}

/// The partition of each decoded row: `records` less the `bad` ones.
pub fn row_partitions(records: &[RawRecord<'_>], bad: &[BadRecord]) -> Vec<i32> {
    if bad.is_empty() {
        return records.iter().map(|r| r.partition).collect();
    }
    let skip: std::collections::HashSet<(i32, i64)> =
        bad.iter().map(|b| (b.partition, b.offset)).collect();
    records
        .iter()
        .filter(|r| !skip.contains(&(r.partition, r.offset)))
        .map(|r| r.partition)
        .collect()
}

/// Decodes the records of one source table.
pub struct SourceDecoder {
    topic: String,
    raw: bool,
    physical: SchemaRef,
    /// Columns before computed ones: physical, metadata, `$rowtime`.
    base: SchemaRef,
    output: SchemaRef,
    computed: Vec<(String, Arc<dyn PhysicalExpr>)>,
    /// Metadata column name -> metadata key (`'timestamp'`, `'partition'`, ...).
    meta_keys: Vec<(String, String)>,
    pub mode: ErrorMode,
    /// An upsert table: a record without a value (a tombstone) deletes its
    /// key. Its row is decoded from the record key (the JSON of the
    /// primary key), and every batch ends with a [`TOMBSTONE_COLUMN`].
    upsert: bool,
    /// A retract table: every batch ends with an [`OP_COLUMN`].
    retract: bool,
    /// The fast path for `physical`, when its columns are all scalar.
    fast: Option<crate::connector::fastjson::FastJson>,
    /// Polls in a row the fast path gave back to arrow-json: a topic whose
    /// records it never takes (numbers written as strings, say) is not
    /// scanned twice for long.
    fast_misses: std::sync::atomic::AtomicU32,
    /// A table in the schema registry's wire format.
    registry: Option<Registry>,
    /// Columns filled with the record key as is (`'key.format' = 'raw'`).
    raw_key: Vec<String>,
    /// Key columns in a registry format: decoded from the record keys by
    /// this decoder of the key columns alone.
    key_part: Option<Box<SourceDecoder>>,
}

/// What a decoder of the schema registry's wire format knows.
struct Registry {
    format: String,
    /// Plain Avro: bodies without the wire format's magic byte and id.
    plain: bool,
    /// The schema the table was typed from: the reader schema.
    reader_id: Option<u32>,
    /// A table made in SQL: its columns' own schema reads.
    reader_text: Option<String>,
    known: std::sync::Mutex<crate::connector::registry::KnownSchemas>,
    avro: std::sync::Mutex<Option<crate::connector::registry::AvroDecoder>>,
    /// JSON Schemas compiled for validation, by id (`None`: one that does
    /// not compile, whose records are decoded unvalidated).
    json_validators:
        std::sync::Mutex<std::collections::HashMap<u32, Option<jsonschema::Validator>>>,
    /// Protobuf schemas compiled, by id (or why one does not compile).
    protos: std::sync::Mutex<
        std::collections::HashMap<u32, Result<weir_catalog::proto::ProtoSchema, String>>,
    >,
    /// The column an Avro schema that is not a record (a plain `string`
    /// key, say) reads into: the part's one column.
    wrap: Option<String>,
}

impl Registry {
    /// How a table's key or value part in a schema format is read.
    fn new(table: &TableDef, part: Part, reader_id: Option<u32>, wrap: Option<String>) -> Registry {
        use crate::connector::registry::{PLAIN_AVRO, PLAIN_AVRO_ID};
        let format = part.format(table).to_string();
        let reader_text = weir_catalog::registry::schema_for_part(table, part)
            .ok()
            .map(|(_, s, _)| s);
        let plain = format == PLAIN_AVRO;
        let mut known = crate::connector::registry::KnownSchemas::default();
        if plain {
            // Plain Avro's one writer schema is the table's own.
            known.learn(
                PLAIN_AVRO_ID,
                reader_text
                    .clone()
                    .map(|schema| weir_catalog::registry::RegisteredSchema {
                        id: PLAIN_AVRO_ID as i64,
                        schema_type: weir_catalog::registry::SchemaType::Avro,
                        schema,
                        references: vec![],
                        reference_texts: vec![],
                    }),
            );
        }
        Registry {
            format,
            plain,
            reader_id: if plain { None } else { reader_id },
            reader_text,
            known: std::sync::Mutex::new(known),
            avro: Default::default(),
            json_validators: Default::default(),
            protos: Default::default(),
            wrap,
        }
    }
}

/// A JSON Schema compiled for validating records. Structure and values
/// are checked, not `format`s (as Python's `jsonschema`, which Confluent's
/// Python deserializer uses, does by default: Flink SQL writes timestamps
/// as `2024-01-31 12:00:00.000`, which is not RFC 3339). A schema that
/// makes the validator panic is one that does not compile.
fn json_validator(schema: &serde_json::Value) -> Result<jsonschema::Validator, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        jsonschema::options()
            .should_validate_formats(false)
            .build(schema)
            .map_err(|e| e.to_string())
    }))
    .unwrap_or_else(|_| Err("the JSON Schema validator failed on it".into()))
}

/// After this many polls in a row that the fast path could not take, it
/// is tried only on one poll in [`FAST_RETRY_EVERY`].
const FAST_MISSES_BEFORE_BACKOFF: u32 = 8;
const FAST_RETRY_EVERY: u32 = 64;

/// The last column of an upsert table's batches: whether the row is a
/// tombstone (read by the changelog normalizer right above the source).
pub const TOMBSTONE_COLUMN: &str = "__weir_tombstone";

/// The last column of a retract table's batches: each row's kind, read
/// from the record header [`crate::connector::encode::OP_HEADER`].
pub const OP_COLUMN: &str = "__weir_op";

/// A row kind from its header value: `+I`, `-U`, `+U` or `-D`.
fn op_of(r: &RawRecord<'_>) -> Result<i8, String> {
    let value = r
        .headers
        .iter()
        .rev()
        .find(|(k, _)| *k == crate::connector::encode::OP_HEADER)
        .map(|(_, v)| *v);
    match value {
        None | Some(Some(b"+I")) => Ok(crate::operators::changelog::INSERT),
        Some(Some(b"-U")) => Ok(crate::operators::changelog::UPDATE_BEFORE),
        Some(Some(b"+U")) => Ok(crate::operators::changelog::UPDATE_AFTER),
        Some(Some(b"-D")) => Ok(crate::operators::changelog::DELETE),
        Some(v) => Err(format!(
            "the {} header is {}, not one of +I, -U, +U, -D",
            crate::connector::encode::OP_HEADER,
            v.map_or("empty".to_string(), |v| String::from_utf8_lossy(v)
                .into_owned())
        )),
    }
}

impl std::fmt::Debug for SourceDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceDecoder")
            .field("topic", &self.topic)
            .finish()
    }
}

impl SourceDecoder {
    pub fn new(spec: &SourceSpec) -> Result<SourceDecoder, EngineError> {
        let table = &spec.table;
        // Typed as the statement reads them (TIMESTAMP_LTZ in the session
        // zone), which the computed columns were planned over; a decoded
        // column may be NULL whatever its declaration, `$rowtime` never.
        let read_type = |f: &arrow::datatypes::FieldRef| {
            let nullable = f.is_nullable() || f.name() != ROWTIME_COLUMN;
            let f = f.as_ref().clone().with_nullable(nullable);
            match spec.schema.field_with_name(f.name()) {
                Ok(s) => f.with_data_type(s.data_type().clone()),
                Err(_) => f,
            }
        };
        let base = Arc::new(arrow::datatypes::Schema::new(
            table
                .computed_input_schema()
                .fields()
                .iter()
                .map(read_type)
                .collect::<Vec<_>>(),
        ));
        let df = DFSchema::try_from(base.as_ref().clone())?;
        let props = ExecutionProps::new();
        let computed = spec
            .computed
            .iter()
            .map(|(n, e)| {
                Ok((
                    n.clone(),
                    create_physical_expr(e, &df, &props, &Default::default())?,
                ))
            })
            .collect::<Result<Vec<_>, EngineError>>()?;
        let physical = table.physical_schema();
        let mut read: Vec<arrow::datatypes::Field> = physical
            .fields()
            .iter()
            .filter(|f| {
                spec.read_columns
                    .as_ref()
                    .is_none_or(|cols| cols.iter().any(|c| c == f.name()))
            })
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        if read.is_empty() {
            // Decode one column so that batches still count rows.
            read.extend(
                physical
                    .fields()
                    .iter()
                    .take(1)
                    .map(|f| f.as_ref().clone().with_nullable(true)),
            );
        }
        let physical = Arc::new(arrow::datatypes::Schema::new(read));
        let raw = table.value_format() == "raw"
            || (table.origin == TableOrigin::Discovered && table.option("value.format").is_none());
        let registry =
            crate::connector::registry::is_schema_format(table.value_format()).then(|| {
                Registry::new(
                    table,
                    Part::Value,
                    table
                        .option(crate::connector::registry::SCHEMA_ID_OPTION)
                        .and_then(|s| s.parse().ok()),
                    (physical.fields().len() == 1).then(|| physical.field(0).name().clone()),
                )
            });
        // A discovered table's key columns are not in its value: the raw
        // ones come from the record key as is. (A table made in SQL keeps
        // every column in the value.)
        let raw_key: Vec<String> = if table.origin == TableOrigin::Discovered
            && table.option("key.format").is_none_or(|f| f == "raw")
            && !raw
        {
            table
                .key_columns()
                .into_iter()
                .filter(|k| physical.field_with_name(k).is_ok())
                .take(1)
                .collect()
        } else {
            vec![]
        };
        let key_part = Self::key_part(table, &physical);
        Ok(SourceDecoder {
            // The fast path reads plain JSON values, not framed ones.
            fast: if registry.is_none() {
                crate::connector::fastjson::FastJson::new(&physical)
            } else {
                None
            },
            fast_misses: Default::default(),
            upsert: !raw && table.changelog_mode() == "upsert" && !table.primary_key.is_empty(),
            retract: !raw && table.changelog_mode() == "retract",
            topic: table.topic.clone(),
            raw,
            physical,
            base,
            output: spec.schema.clone(),
            computed,
            meta_keys: table
                .columns
                .iter()
                .filter_map(|c| match &c.kind {
                    ColumnKind::Metadata { key, .. } => Some((c.name.clone(), key.clone())),
                    _ => None,
                })
                .collect(),
            mode: ErrorMode::of(&table.options),
            registry,
            raw_key,
            key_part,
        })
    }

    /// The decoder of a table's key columns in a registry format, for the
    /// ones the statement reads (`None`: it reads none, or they are raw).
    fn key_part(
        table: &weir_catalog::TableDef,
        physical: &SchemaRef,
    ) -> Option<Box<SourceDecoder>> {
        let format = table.option("key.format")?;
        if !crate::connector::registry::is_schema_format(format) {
            return None;
        }
        let keys = table.key_columns();
        let fields: Vec<arrow::datatypes::Field> = physical
            .fields()
            .iter()
            .filter(|f| keys.contains(f.name()))
            .map(|f| f.as_ref().clone())
            .collect();
        if fields.is_empty() {
            return None;
        }
        let schema = Arc::new(arrow::datatypes::Schema::new(fields));
        let wrap = (schema.fields().len() == 1).then(|| schema.field(0).name().clone());
        Some(Box::new(SourceDecoder {
            topic: table.topic.clone(),
            raw: false,
            physical: schema.clone(),
            base: schema.clone(),
            output: schema,
            computed: vec![],
            meta_keys: vec![],
            mode: ErrorMode::of(&table.options),
            upsert: false,
            retract: false,
            fast: None,
            fast_misses: Default::default(),
            registry: Some(Registry::new(
                table,
                Part::Key,
                table.option("key.schema-id").and_then(|s| s.parse().ok()),
                wrap,
            )),
            raw_key: vec![],
            key_part: None,
        }))
    }

    /// Decodes the registry-format keys of the good records into the key
    /// columns of `physical`; a record whose key does not decode is bad.
    fn with_registry_keys(
        &self,
        kp: &SourceDecoder,
        physical: RecordBatch,
        good: Vec<usize>,
        records: &[RawRecord<'_>],
        bad: &mut Vec<BadRecord>,
    ) -> Result<(RecordBatch, Vec<usize>), EngineError> {
        let reg = kp
            .registry
            .as_ref()
            .expect("a key part reads a registry format");
        let keyed: Vec<RawRecord<'_>> = good
            .iter()
            .map(|&g| RawRecord {
                value: records[g].key,
                ..records[g]
            })
            .collect();
        let before = bad.len();
        let (keys, kept) = kp.registry_columns(reg, &keyed, bad)?;
        for b in &mut bad[before..] {
            b.reason = format!("the key: {}", b.reason)
                .replace("has no value (a tombstone)", "has no key");
            let original = records
                .iter()
                .find(|r| r.partition == b.partition && r.offset == b.offset);
            b.value = original.and_then(|r| r.value.map(<[u8]>::to_vec));
        }
        let physical = if kept.len() == good.len() {
            physical
        } else {
            let idx = arrow::array::UInt32Array::from_iter_values(kept.iter().map(|&j| j as u32));
            arrow::compute::take_record_batch(&physical, &idx)?
        };
        let good = kept.iter().map(|&j| good[j]).collect();
        let mut cols = physical.columns().to_vec();
        for (i, f) in self.physical.fields().iter().enumerate() {
            if let Some(c) = keys.column_by_name(f.name()) {
                cols[i] = if c.data_type() == f.data_type() {
                    c.clone()
                } else {
                    cast(c, f.data_type())?
                };
            }
        }
        let n = physical.num_rows();
        Ok((
            RecordBatch::try_new_with_options(
                physical.schema(),
                cols,
                &RecordBatchOptions::new().with_row_count(Some(n)),
            )?,
            good,
        ))
    }

    /// The schema ids these records (and the table's reader schema) name
    /// that the decoder has not learnt yet: the caller fetches them from the
    /// registry and hands them to [`SourceDecoder::learn_schema`].
    pub fn missing_schemas(&self, records: &[RawRecord<'_>]) -> Vec<u32> {
        let Some(reg) = &self.registry else {
            return vec![];
        };
        let mut from_keys = match &self.key_part {
            Some(kp) => {
                let keyed: Vec<RawRecord<'_>> = records
                    .iter()
                    .map(|r| RawRecord { value: r.key, ..*r })
                    .collect();
                kp.missing_schemas(&keyed)
            }
            None => vec![],
        };
        if reg.plain {
            return from_keys;
        }
        let known = reg.known.lock().expect("not poisoned");
        let mut out: Vec<u32> = reg
            .reader_id
            .filter(|id| !known.knows(*id))
            .into_iter()
            .collect();
        for r in records {
            if let Some(Ok((id, _))) = r.value.map(crate::connector::registry::frame) {
                if !known.knows(id) && !out.contains(&id) {
                    out.push(id);
                }
            }
        }
        from_keys.retain(|id| !out.contains(id));
        out.append(&mut from_keys);
        out
    }

    /// A schema fetched from the registry (`None`: it has no such id).
    pub fn learn_schema(&self, id: u32, schema: Option<weir_catalog::registry::RegisteredSchema>) {
        if let Some(kp) = &self.key_part {
            kp.learn_schema(id, schema.clone());
        }
        if let Some(reg) = &self.registry {
            reg.known.lock().expect("not poisoned").learn(id, schema);
        }
    }

    /// Records in a schema format: the good ones decoded into the physical
    /// columns, the bad ones with why. Into an upsert table a tombstone is
    /// a row whose value columns are NULL and whose key columns come from
    /// the record key (its key part, or the JSON of the primary key); the
    /// normalizer turns it into a delete.
    fn registry_columns(
        &self,
        reg: &Registry,
        records: &[RawRecord<'_>],
        bad: &mut Vec<BadRecord>,
    ) -> Result<(RecordBatch, Vec<usize>), EngineError> {
        if !self.upsert || records.iter().all(|r| r.value.is_some()) {
            return self.registry_values(reg, records, bad);
        }
        let (live, tombs): (Vec<usize>, Vec<usize>) =
            (0..records.len()).partition(|&i| records[i].value.is_some());
        let pick = |idx: &[usize]| idx.iter().map(|&i| records[i]).collect::<Vec<_>>();
        let (values, good_values) = self.registry_values(reg, &pick(&live), bad)?;
        let (keys, good_tombs) = if self.key_part.is_some() {
            let cols = self
                .physical
                .fields()
                .iter()
                .map(|f| arrow::array::new_null_array(f.data_type(), tombs.len()))
                .collect();
            let b = RecordBatch::try_new_with_options(
                self.physical.clone(),
                cols,
                &RecordBatchOptions::new().with_row_count(Some(tombs.len())),
            )?;
            (b, (0..tombs.len()).collect::<Vec<_>>())
        } else {
            self.json_columns(&pick(&tombs), &[], bad)?
        };
        let mut rows: Vec<(usize, (usize, usize))> = good_values
            .iter()
            .enumerate()
            .map(|(j, &g)| (live[g], (0, j)))
            .chain(
                good_tombs
                    .iter()
                    .enumerate()
                    .map(|(j, &g)| (tombs[g], (1, j))),
            )
            .collect();
        rows.sort_by_key(|r| r.0);
        let at: Vec<(usize, usize)> = rows.iter().map(|r| r.1).collect();
        let batch = arrow::compute::interleave_record_batch(&[&values, &keys], &at)?;
        Ok((batch, rows.into_iter().map(|r| r.0).collect()))
    }

    fn registry_values(
        &self,
        reg: &Registry,
        records: &[RawRecord<'_>],
        bad: &mut Vec<BadRecord>,
    ) -> Result<(RecordBatch, Vec<usize>), EngineError> {
        use crate::connector::registry::{frame, AvroDecoder, AVRO};
        use weir_catalog::registry::SchemaType;
        let want = match reg.format.as_str() {
            AVRO | crate::connector::registry::PLAIN_AVRO => SchemaType::Avro,
            crate::connector::registry::JSON => SchemaType::Json,
            _ => SchemaType::Protobuf,
        };
        let known = reg.known.lock().expect("not poisoned");
        // Plain Avro bodies get the frame of the table's schema (id 0), so
        // that one decoder path reads both.
        // (one buffer for the poll, each body's range in it).
        let mut plain_buf: Vec<u8> = vec![];
        let mut plain_at: Vec<(usize, usize)> = vec![];
        if reg.plain {
            let prefix = crate::connector::registry::PLAIN_AVRO_ID.to_be_bytes();
            plain_buf.reserve(
                records
                    .iter()
                    .map(|r| r.value.map_or(0, |v| v.len() + 5))
                    .sum(),
            );
            plain_at.reserve(records.len());
            for r in records {
                let start = plain_buf.len();
                if let Some(v) = r.value {
                    plain_buf.push(0);
                    plain_buf.extend_from_slice(&prefix);
                    plain_buf.extend_from_slice(v);
                }
                plain_at.push((start, plain_buf.len()));
            }
        }
        let mut framed: Vec<(usize, u32, &[u8])> = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            let Some(v) = r.value else {
                bad.push(bad_record(
                    r,
                    "the record has no value (a tombstone)".into(),
                ));
                continue;
            };
            let v = if reg.plain {
                &plain_buf[plain_at[i].0..plain_at[i].1]
            } else {
                v
            };
            let (id, body) = match frame(v) {
                Ok(x) => x,
                Err(reason) => {
                    bad.push(bad_record(r, reason));
                    continue;
                }
            };
            match known.get(id) {
                None => bad.push(bad_record(
                    r,
                    format!("unknown schema id {id}: the schema registry has no such schema"),
                )),
                Some(s) if s.schema_type != want => bad.push(bad_record(
                    r,
                    format!(
                        "schema id {id} is a {} schema; the table reads '{}'",
                        s.schema_type.as_str(),
                        reg.format
                    ),
                )),
                Some(_) if want == SchemaType::Avro => framed.push((i, id, v)),
                Some(_) => framed.push((i, id, body)),
            }
        }
        if want == SchemaType::Protobuf {
            let mut protos = reg.protos.lock().expect("not poisoned");
            let mut messages = Vec::with_capacity(framed.len());
            let mut decoded = Vec::with_capacity(framed.len());
            for &(i, id, body) in &framed {
                let schema = protos.entry(id).or_insert_with(|| {
                    let s = known.get(id).expect("checked above");
                    weir_catalog::proto::compile(&s.schema, &s.reference_texts)
                });
                let one = match schema {
                    Err(e) => Err(format!("schema id {id} does not compile: {e}")),
                    Ok(schema) => crate::connector::registry::proto_indexes(body).and_then(
                        |(indexes, msg)| {
                            let desc = schema.message(&indexes).ok_or_else(|| {
                                format!("schema id {id} has no message at indexes {indexes:?}")
                            })?;
                            prost_reflect::DynamicMessage::decode(desc, msg).map_err(|e| {
                                format!("the Protobuf body does not match its schema: {e}")
                            })
                        },
                    ),
                };
                match one {
                    Ok(m) => {
                        messages.push(m);
                        decoded.push(i);
                    }
                    Err(reason) => bad.push(bad_record(&records[i], reason)),
                }
            }
            drop(protos);
            drop(known);
            if let Some(batch) = crate::connector::registry::proto_columns(
                &self.physical,
                &messages,
                &self.not_in_value(),
            ) {
                return Ok((batch, decoded));
            }
            let values: Vec<serde_json::Value> = messages
                .iter()
                .map(crate::connector::registry::proto_json)
                .collect();
            return self.serialized_columns(&values, decoded, records, bad);
        }
        if want == SchemaType::Json {
            // Each body is checked against its writer's JSON Schema (as
            // Confluent's deserializer does) before it is decoded.
            let mut validators = reg.json_validators.lock().expect("not poisoned");
            let framed: Vec<(usize, u32, &[u8])> = framed
                .into_iter()
                .filter(|&(i, id, body)| {
                    let v = validators.entry(id).or_insert_with(|| {
                        let text = &known.get(id).expect("checked above").schema;
                        let compiled = serde_json::from_str(text)
                            .map_err(|e| e.to_string())
                            .and_then(|s| json_validator(&s));
                        match compiled {
                            Ok(v) => Some(v),
                            Err(e) => {
                                tracing::warn!(topic = self.topic, id, error = e, "a JSON Schema does not compile for validation; its records are decoded unvalidated");
                                None
                            }
                        }
                    });
                    let Some(v) = v else { return true };
                    let why = match serde_json::from_slice::<serde_json::Value>(body) {
                        Err(e) => Some(format!("malformed JSON: {e}")),
                        Ok(doc) if v.is_valid(&doc) => None,
                        Ok(doc) => Some(match v.validate(&doc) {
                            Err(e) if e.instance_path().as_str().is_empty() => {
                                format!("the record does not match its JSON Schema (id {id}): {e}")
                            }
                            Err(e) => format!(
                                "the record does not match its JSON Schema (id {id}) at {}: {e}",
                                e.instance_path()
                            ),
                            Ok(()) => "the record does not match its JSON Schema".into(),
                        }),
                    };
                    match why {
                        None => true,
                        Some(reason) => {
                            bad.push(bad_record(&records[i], reason));
                            false
                        }
                    }
                })
                .collect();
            drop(validators);
            drop(known);
            let stripped: Vec<RawRecord<'_>> = framed
                .iter()
                .map(|&(i, _, body)| RawRecord {
                    value: Some(body),
                    ..records[i]
                })
                .collect();
            let (batch, good) = self.json_columns(&stripped, &[], bad)?;
            let good = good.into_iter().map(|g| framed[g].0).collect();
            return Ok((batch, good));
        }
        // Schemas that use types of other subjects are made self-contained
        // for the decoder.
        let standalone = |s: &weir_catalog::registry::RegisteredSchema| {
            weir_catalog::registry::inline_avro_references(&s.schema, &s.reference_texts)
        };
        let reader_text = match reg.reader_id {
            Some(id) => known
                .get(id)
                .map(|s| standalone(s).map_err(EngineError::Plan))
                .transpose()?,
            None => reg.reader_text.clone(),
        };
        let reader = match reader_text {
            Some(s) => {
                crate::connector::registry::reader_schema(&s, &self.physical, reg.wrap.as_deref())
                    .map_err(EngineError::Plan)?
            }
            None => {
                return Err(EngineError::Plan(format!(
                "the schema the table '{}' was typed from (id {:?}) is not in the schema registry",
                self.topic, reg.reader_id
            )))
            }
        };
        let mut avro = reg.avro.lock().expect("not poisoned");
        let dec = avro.get_or_insert_with(|| AvroDecoder::new(reader, reg.wrap.clone()));
        // A writer schema Flink SQL cannot type (a record that contains
        // itself, say) is never handed to the decoder: its records are bad.
        let mut unreadable: std::collections::HashMap<u32, String> = Default::default();
        for &(_, id, _) in &framed {
            if !dec.has_writer(id) && !unreadable.contains_key(&id) {
                let text = standalone(known.get(id).expect("checked above"));
                match text.as_deref().map_err(Clone::clone).and_then(|text| {
                    weir_catalog::registry::parse(SchemaType::Avro, text, &[])
                        .and_then(|p| weir_catalog::registry::columns_of(&p, "value"))
                        .map(|_| text)
                }) {
                    Ok(text) => dec.add_writer(id, text),
                    Err(e) => {
                        unreadable.insert(id, format!("schema id {id} cannot be read: {e}"));
                    }
                }
            }
        }
        let framed: Vec<(usize, u32, &[u8])> = framed
            .into_iter()
            .filter(|&(i, id, _)| match unreadable.get(&id) {
                Some(why) => {
                    bad.push(bad_record(&records[i], why.clone()));
                    false
                }
                None => true,
            })
            .collect();
        let frames: Vec<(u32, &[u8])> = framed.iter().map(|f| (f.1, f.2)).collect();
        let (batches, failed) = dec.decode(&frames)?;
        let mut good = Vec::with_capacity(framed.len());
        let mut failed = failed.into_iter().peekable();
        for (j, &(i, _, _)) in framed.iter().enumerate() {
            if failed.peek().is_some_and(|(f, _)| *f == j) {
                let (_, reason) = failed.next().expect("peeked");
                bad.push(bad_record(&records[i], reason));
            } else {
                good.push(i);
            }
        }
        // Each batch's columns cast by name to the physical ones (a column
        // the writer lacks and the reader has no default for is NULL). A
        // value that does not fit its column (a long beyond an INT read by a
        // statement started before the field widened) makes its record bad
        // rather than NULL.
        let mut parts = Vec::with_capacity(batches.len());
        let mut kept = Vec::with_capacity(good.len());
        let mut at = 0usize;
        for b in &batches {
            let rows = b.num_rows();
            let mut unfit: Vec<Option<String>> = vec![None; rows];
            let mut cols = Vec::with_capacity(self.physical.fields().len());
            for f in self.physical.fields() {
                let col = match b.column_by_name(f.name()) {
                    Some(c) if c.data_type() == f.data_type() => c.clone(),
                    Some(c) => {
                        let out = cast(c, f.data_type())?;
                        if out.null_count() > c.null_count() {
                            for (r, why) in unfit.iter_mut().enumerate() {
                                if c.is_valid(r) && out.is_null(r) && why.is_none() {
                                    *why = Some(format!(
                                        "the value of '{}' does not fit the column's type {}",
                                        f.name(),
                                        f.data_type()
                                    ));
                                }
                            }
                        }
                        out
                    }
                    None => new_null_array(f.data_type(), rows),
                };
                cols.push(col);
            }
            let part = RecordBatch::try_new_with_options(
                self.physical.clone(),
                cols,
                &RecordBatchOptions::new().with_row_count(Some(rows)),
            )?;
            if unfit.iter().all(Option::is_none) {
                kept.extend_from_slice(&good[at..at + rows]);
                parts.push(part);
            } else {
                let keep: BooleanArray = unfit.iter().map(|w| Some(w.is_none())).collect();
                for (r, why) in unfit.into_iter().enumerate() {
                    match why {
                        Some(why) => bad.push(bad_record(&records[good[at + r]], why)),
                        None => kept.push(good[at + r]),
                    }
                }
                parts.push(arrow::compute::filter_record_batch(&part, &keep)?);
            }
            at += rows;
        }
        let good = kept;
        let n = good.len();
        let physical = if parts.is_empty() {
            RecordBatch::try_new_with_options(
                self.physical.clone(),
                self.physical
                    .fields()
                    .iter()
                    .map(|f| new_null_array(f.data_type(), 0))
                    .collect(),
                &RecordBatchOptions::new().with_row_count(Some(0)),
            )?
        } else {
            concat_batches(&self.physical, &parts)?
        };
        debug_assert_eq!(physical.num_rows(), n);
        Ok((physical, good))
    }

    /// Rows already decoded into JSON values, through one arrow-json
    /// decoder; when that fails, one at a time to find the bad ones.
    fn serialized_columns(
        &self,
        values: &[serde_json::Value],
        rows: Vec<usize>,
        records: &[RawRecord<'_>],
        bad: &mut Vec<BadRecord>,
    ) -> Result<(RecordBatch, Vec<usize>), EngineError> {
        let mut dec = self.json_decoder(values.len())?;
        if dec.serialize(values).is_ok() {
            if let Ok(b) = dec.flush() {
                let b = b.unwrap_or_else(|| RecordBatch::new_empty(self.physical.clone()));
                return Ok((b, rows));
            }
        }
        let mut batches = vec![];
        let mut good = vec![];
        for (v, i) in values.iter().zip(rows) {
            let mut d = self.json_decoder(1)?;
            match d.serialize(std::slice::from_ref(v)).and_then(|_| d.flush()) {
                Ok(Some(b)) => {
                    batches.push(b);
                    good.push(i);
                }
                Ok(None) => bad.push(bad_record(&records[i], "an empty message".into())),
                Err(e) => bad.push(bad_record(
                    &records[i],
                    format!("the message does not match the table's columns: {e}"),
                )),
            }
        }
        Ok((concat_batches(&self.physical, &batches)?, good))
    }

    /// The columns that come from the record key, not its value.
    fn not_in_value(&self) -> Vec<String> {
        let mut out = self.raw_key.clone();
        if let Some(kp) = &self.key_part {
            out.extend(kp.physical.fields().iter().map(|f| f.name().clone()));
        }
        out
    }

    /// The raw key columns filled from the records' keys.
    fn with_raw_keys(
        &self,
        physical: RecordBatch,
        good: &[usize],
        records: &[RawRecord<'_>],
    ) -> Result<RecordBatch, EngineError> {
        if self.raw_key.is_empty() {
            return Ok(physical);
        }
        let mut cols = physical.columns().to_vec();
        for k in &self.raw_key {
            let i = self.physical.index_of(k)?;
            let bin: ArrayRef = Arc::new(
                good.iter()
                    .map(|&g| records[g].key)
                    .collect::<BinaryArray>(),
            );
            let ty = self.physical.field(i).data_type();
            cols[i] = if ty == &DataType::Binary {
                bin
            } else {
                cast(&bin, ty)?
            };
        }
        Ok(RecordBatch::try_new_with_options(
            physical.schema(),
            cols,
            &RecordBatchOptions::new().with_row_count(Some(physical.num_rows())),
        )?)
    }

    pub fn output_schema(&self) -> &SchemaRef {
        &self.output
    }

    fn json_decoder(&self, rows: usize) -> Result<Decoder, EngineError> {
        Ok(ReaderBuilder::new(self.physical.clone())
            .with_batch_size(rows.max(1))
            .with_strict_mode(false)
            // Flink's JSON format reads a number or boolean into a STRING
            // column as its text.
            .with_coerce_primitive(true)
            .build_decoder()?)
    }

    /// Feeds one value; an error or anything but exactly one complete JSON
    /// value is a bad record.
    fn feed(dec: &mut Decoder, value: &[u8]) -> Result<(), String> {
        let before = dec.len();
        let mut buf = value;
        while !buf.is_empty() {
            let n = dec.decode(buf).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("more than one JSON value in the record".into());
            }
            buf = &buf[n..];
        }
        if dec.has_partial_record() {
            return Err("truncated JSON value".into());
        }
        match dec.len() - before {
            1 => Ok(()),
            0 => Err("empty record value".into()),
            _ => Err("more than one JSON value in the record".into()),
        }
    }

    /// Decodes a poll's records. Bad records are returned, not failed on:
    /// the caller applies the error policy.
    pub fn decode(
        &self,
        records: &[RawRecord<'_>],
    ) -> Result<(Option<RecordBatch>, Vec<BadRecord>), EngineError> {
        let mut bad = Vec::new();
        if records.is_empty() {
            return Ok((None, bad));
        }
        // A retract table's row kinds, read once per record.
        let ops: Vec<Result<i8, String>> = if self.retract {
            records.iter().map(op_of).collect()
        } else {
            vec![]
        };
        let (physical, good): (RecordBatch, Vec<usize>) = if self.raw {
            self.raw_columns(records)?
        } else if let Some(batch) = self.fast_decode(records, &ops) {
            (batch, (0..records.len()).collect())
        } else if let Some(reg) = &self.registry {
            self.registry_columns(reg, records, &mut bad)?
        } else {
            self.json_columns(records, &ops, &mut bad)?
        };
        let physical = self.with_raw_keys(physical, &good, records)?;
        let (physical, good) = match &self.key_part {
            Some(kp) => self.with_registry_keys(kp, physical, good, records, &mut bad)?,
            None => (physical, good),
        };
        bad.sort_by_key(|b| (b.partition, b.offset));
        let mut batch = self.assemble(physical, &good, records)?;
        if self.retract {
            let ops: arrow::array::Int8Array = good
                .iter()
                .map(|&i| ops[i].as_ref().ok().copied())
                .collect();
            batch = with_column(batch, OP_COLUMN, Arc::new(ops))?;
        }
        if self.upsert {
            let flags: BooleanArray = good
                .iter()
                .map(|&i| Some(records[i].value.is_none()))
                .collect();
            batch = with_column(batch, TOMBSTONE_COLUMN, Arc::new(flags))?;
        }
        Ok((Some(batch), bad))
    }

    /// Records whose values are JSON, through one arrow-json decoder; the
    /// bad ones found one at a time.
    fn json_columns(
        &self,
        records: &[RawRecord<'_>],
        ops: &[Result<i8, String>],
        bad: &mut Vec<BadRecord>,
    ) -> Result<(RecordBatch, Vec<usize>), EngineError> {
        let mut good = Vec::with_capacity(records.len());
        let mut dec = self.json_decoder(records.len())?;
        for (i, r) in records.iter().enumerate() {
            let Some(v) = self.input(r) else {
                bad.push(bad_record(
                    r,
                    if self.upsert {
                        "a tombstone without a key".into()
                    } else {
                        "the record has no value (a tombstone)".into()
                    },
                ));
                continue;
            };
            if let Some(Err(reason)) = ops.get(i) {
                bad.push(bad_record(r, reason.clone()));
                continue;
            }
            if let Err(reason) = Self::feed(&mut dec, v) {
                let what = if r.value.is_some() {
                    "malformed JSON"
                } else {
                    "a tombstone whose key is not the JSON of the primary key"
                };
                bad.push(bad_record(r, format!("{what}: {reason}")));
                dec = self.json_decoder(records.len())?;
                for &g in &good {
                    Self::feed(&mut dec, self.input(&records[g]).expect("fed before"))
                        .map_err(EngineError::Plan)?;
                }
                continue;
            }
            good.push(i);
        }
        Ok(match dec.flush() {
            Ok(b) => (
                b.unwrap_or_else(|| RecordBatch::new_empty(self.physical.clone())),
                good,
            ),
            Err(_) => {
                // A value of the wrong type somewhere: find it one record at a time.
                let mut batches = vec![];
                let mut still_good = vec![];
                for g in good {
                    let mut d = self.json_decoder(1)?;
                    let r = &records[g];
                    let one = Self::feed(&mut d, self.input(r).expect("fed before"))
                        .and_then(|_| d.flush().map_err(|e| e.to_string()));
                    match one {
                        Ok(Some(b)) => {
                            batches.push(b);
                            still_good.push(g);
                        }
                        Ok(None) => bad.push(bad_record(r, "empty record value".into())),
                        Err(reason) => bad.push(bad_record(
                            r,
                            format!("value does not match the table's columns: {reason}"),
                        )),
                    }
                }
                (concat_batches(&self.physical, &batches)?, still_good)
            }
        })
    }

    /// Every record through the fast path, when each has an input and a
    /// valid row kind and the fast path takes them all; `None` otherwise.
    fn fast_decode(
        &self,
        records: &[RawRecord<'_>],
        ops: &[Result<i8, String>],
    ) -> Option<RecordBatch> {
        use std::sync::atomic::Ordering::Relaxed;
        let fast = self.fast.as_ref()?;
        let misses = self.fast_misses.load(Relaxed);
        if misses >= FAST_MISSES_BEFORE_BACKOFF && !misses.is_multiple_of(FAST_RETRY_EVERY) {
            self.fast_misses.store(misses + 1, Relaxed);
            return None;
        }
        if ops.iter().any(Result::is_err) {
            return None;
        }
        let inputs = records
            .iter()
            .map(|r| self.input(r))
            .collect::<Option<Vec<_>>>()?;
        let batch = fast.decode(&inputs);
        match batch {
            Some(_) => self.fast_misses.store(0, Relaxed),
            None => self.fast_misses.store(misses.saturating_add(1), Relaxed),
        }
        batch
    }

    /// The bytes a record's row is decoded from: its value, or for a
    /// tombstone of an upsert table its key.
    fn input<'r>(&self, r: &RawRecord<'r>) -> Option<&'r [u8]> {
        match r.value {
            Some(v) => Some(v),
            None if self.upsert => r.key,
            None => None,
        }
    }

    /// `key BYTES, val BYTES` (or a raw value column) straight from the record.
    fn raw_columns(
        &self,
        records: &[RawRecord<'_>],
    ) -> Result<(RecordBatch, Vec<usize>), EngineError> {
        let mut cols: Vec<ArrayRef> = vec![];
        for f in self.physical.fields() {
            let from_key = f.name() == "key" && self.physical.fields().len() > 1;
            let bin: BinaryArray = records
                .iter()
                .map(|r| if from_key { r.key } else { r.value })
                .collect();
            let arr: ArrayRef = Arc::new(bin);
            cols.push(if f.data_type() == &DataType::Binary {
                arr
            } else {
                cast(&arr, f.data_type())?
            });
        }
        let batch = RecordBatch::try_new_with_options(
            self.physical.clone(),
            cols,
            &RecordBatchOptions::new().with_row_count(Some(records.len())),
        )?;
        Ok((batch, (0..records.len()).collect()))
    }

    /// Adds metadata columns and `$rowtime`, then computed columns, in the
    /// table's declared order.
    fn assemble(
        &self,
        physical: RecordBatch,
        good: &[usize],
        records: &[RawRecord<'_>],
    ) -> Result<RecordBatch, EngineError> {
        let n = physical.num_rows();
        let timestamps = || -> ArrayRef {
            Arc::new(
                TimestampMillisecondArray::from_iter_values(
                    good.iter().map(|&i| records[i].timestamp_ms),
                )
                .with_timezone("UTC"),
            )
        };
        let mut base_cols: Vec<ArrayRef> = Vec::with_capacity(self.base.fields().len());
        for f in self.base.fields() {
            let col = if f.name() == ROWTIME_COLUMN {
                timestamps()
            } else if let Some(c) = physical.column_by_name(f.name()) {
                c.clone()
            } else {
                let key = self
                    .meta_keys
                    .iter()
                    .find(|(c, _)| c == f.name())
                    .map(|(_, k)| k.as_str());
                key.and_then(|k| metadata_column(&self.topic, k, good, records, f.data_type()))
                    .unwrap_or_else(|| new_null_array(f.data_type(), n))
            };
            let col = if col.data_type() == f.data_type() {
                col
            } else {
                cast(&col, f.data_type())?
            };
            base_cols.push(col);
        }
        let base = RecordBatch::try_new_with_options(
            self.base.clone(),
            base_cols,
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )?;
        let mut out = Vec::with_capacity(self.output.fields().len());
        for f in self.output.fields() {
            let col = if let Some((_, e)) = self.computed.iter().find(|(name, _)| name == f.name())
            {
                e.evaluate(&base)?.into_array(n)?
            } else {
                base.column_by_name(f.name())
                    .expect("base has every non-computed column")
                    .clone()
            };
            let col = if col.data_type() == f.data_type() {
                col
            } else {
                cast(&col, f.data_type())?
            };
            out.push(col);
        }
        Ok(RecordBatch::try_new_with_options(
            Arc::new(arrow::datatypes::Schema::new(
                self.output
                    .fields()
                    .iter()
                    .map(|f| f.as_ref().clone().with_nullable(true))
                    .collect::<Vec<_>>(),
            )),
            out,
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )?)
    }
}

/// `batch` with one more column at the end.
fn with_column(batch: RecordBatch, name: &str, col: ArrayRef) -> Result<RecordBatch, EngineError> {
    let n = batch.num_rows();
    let mut fields = batch.schema().fields().to_vec();
    fields.push(Arc::new(arrow::datatypes::Field::new(
        name,
        col.data_type().clone(),
        false,
    )));
    let mut cols = batch.columns().to_vec();
    cols.push(col);
    Ok(RecordBatch::try_new_with_options(
        Arc::new(arrow::datatypes::Schema::new(fields)),
        cols,
        &RecordBatchOptions::new().with_row_count(Some(n)),
    )?)
}

/// `METADATA FROM 'headers'`: a `MAP<STRING, BYTES>` of each record's
/// headers (the last value of a repeated key wins, as in Flink's map),
/// built in the column's declared map type; `None` for another type.
fn headers_column(
    good: &[usize],
    records: &[RawRecord<'_>],
    data_type: &DataType,
) -> Option<ArrayRef> {
    let DataType::Map(entries, ordered) = data_type else {
        return None;
    };
    let DataType::Struct(kv) = entries.data_type() else {
        return None;
    };
    let mut offsets = vec![0i32];
    let mut keys: Vec<&str> = vec![];
    let mut values: Vec<Option<&[u8]>> = vec![];
    for &i in good {
        let mut seen: Vec<(&str, Option<&[u8]>)> = vec![];
        for (k, v) in records[i].headers {
            match seen.iter_mut().find(|(s, _)| s == k) {
                Some(e) => e.1 = *v,
                None => seen.push((k, *v)),
            }
        }
        for (k, v) in seen {
            keys.push(k);
            values.push(v);
        }
        offsets.push(keys.len() as i32);
    }
    let k: ArrayRef = Arc::new(StringArray::from(keys));
    let v: ArrayRef = Arc::new(BinaryArray::from(values));
    let entries_array = arrow::array::StructArray::try_new(
        kv.clone(),
        vec![
            cast(&k, kv[0].data_type()).ok()?,
            cast(&v, kv[1].data_type()).ok()?,
        ],
        None,
    )
    .ok()?;
    Some(Arc::new(
        arrow::array::MapArray::try_new(
            entries.clone(),
            arrow::buffer::OffsetBuffer::new(offsets.into()),
            entries_array,
            None,
            *ordered,
        )
        .ok()?,
    ))
}

/// The values of a metadata column, found by the column's declared key.
fn metadata_column(
    topic: &str,
    key: &str,
    good: &[usize],
    records: &[RawRecord<'_>],
    data_type: &DataType,
) -> Option<ArrayRef> {
    Some(match key {
        "headers" => headers_column(good, records, data_type)?,
        "partition" => Arc::new(Int32Array::from_iter_values(
            good.iter().map(|&i| records[i].partition),
        )),
        "offset" => Arc::new(Int64Array::from_iter_values(
            good.iter().map(|&i| records[i].offset),
        )),
        "timestamp" => Arc::new(
            TimestampMillisecondArray::from_iter_values(
                good.iter().map(|&i| records[i].timestamp_ms),
            )
            .with_timezone("UTC"),
        ),
        "topic" => Arc::new(StringArray::from_iter_values(good.iter().map(|_| topic))),
        _ => return None,
    })
}
