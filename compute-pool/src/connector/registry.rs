//! Confluent's wire format: a magic byte 0, a 4-byte big-endian schema id,
//! then the body. `avro-registry` bodies are decoded by the Arrow project's
//! `arrow-avro` straight into batches, each writer schema resolved to the
//! table's reader schema (so records written with an older or newer
//! compatible version read correctly); `json-registry` bodies are JSON and
//! go through the JSON decoder. Writer schemas are fetched by id from the
//! statement's schema registry once and cached.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;
use arrow_avro::reader::{Decoder, ReaderBuilder};
use arrow_avro::schema::{AvroSchema, Fingerprint, FingerprintAlgorithm, SchemaStore};
use bytes::Bytes;
use prost_reflect::ReflectMessage;
use serde_json::Value;
use weir_catalog::registry::{Part, RegisteredSchema};
use weir_catalog::TableDef;

use crate::EngineError;

pub const AVRO: &str = "avro-registry";
pub const JSON: &str = "json-registry";
pub const PROTO: &str = "proto-registry";

/// Plain Avro: a record's bytes are the Avro binary body alone (no magic
/// byte, no schema id), written and read with the schema of the table's
/// columns, as Flink's `'avro'` format does.
pub const PLAIN_AVRO: &str = "avro";

/// Whether a `'value.format'` is one of the registry formats.
pub fn is_registry_format(f: &str) -> bool {
    matches!(f, AVRO | JSON | PROTO)
}

/// Whether a format is decoded and encoded through a schema: the registry
/// formats and plain Avro.
pub fn is_schema_format(f: &str) -> bool {
    is_registry_format(f) || f == PLAIN_AVRO
}

/// The id plain Avro's one schema (the table's) is known by.
pub const PLAIN_AVRO_ID: u32 = 0;

/// The schema id of a framed record and its body.
pub fn frame(value: &[u8]) -> Result<(u32, &[u8]), String> {
    match value {
        [0, a, b, c, d, body @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), body)),
        [m, ..] if value.len() >= 5 => Err(format!(
            "wrong magic byte {m} (the schema registry wire format starts with 0)"
        )),
        _ => Err(format!(
            "a record of {} bytes is too short for the schema registry wire format (magic byte and schema id)",
            value.len()
        )),
    }
}

/// The schemas a decoder has learnt, by id: `None` for an id the registry
/// does not have.
#[derive(Debug, Default)]
pub struct KnownSchemas {
    by_id: HashMap<u32, Option<RegisteredSchema>>,
}

impl KnownSchemas {
    pub fn knows(&self, id: u32) -> bool {
        self.by_id.contains_key(&id)
    }

    pub fn get(&self, id: u32) -> Option<&RegisteredSchema> {
        self.by_id.get(&id).and_then(Option::as_ref)
    }

    pub fn learn(&mut self, id: u32, schema: Option<RegisteredSchema>) {
        self.by_id.insert(id, schema);
    }
}

/// A schema that is not a record (a key that is a plain `string`, say) as
/// a record of one field named `field`: its binary encoding is the same,
/// and the decoder produces a batch with that one column.
fn wrap_primitive(v: Value, field: Option<&str>) -> Value {
    let record = v
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| t == "record" || t == "error");
    match field {
        Some(f) if !record => serde_json::json!({
            "type": "record",
            "name": "__weir_wrapped",
            "fields": [{"name": f, "type": v}],
        }),
        _ => v,
    }
}

/// The reader schema of a table: the registered schema the table was typed
/// from, with only the fields a statement reads (the others are skipped,
/// not built), and `uuid` read as the string it is. A schema that is not a
/// record reads into the column `wrap`.
pub fn reader_schema(schema: &str, read: &SchemaRef, wrap: Option<&str>) -> Result<String, String> {
    let v: Value =
        serde_json::from_str(schema).map_err(|e| format!("the table's schema is not JSON: {e}"))?;
    let mut v = wrap_primitive(v, wrap);
    if let Some(Value::Array(fields)) = v.get_mut("fields") {
        fields.retain(|f| {
            f.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| read.field_with_name(n).is_ok())
        });
    }
    strip_uuid(&mut v);
    Ok(v.to_string())
}

fn strip_uuid(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if o.get("logicalType").and_then(Value::as_str) == Some("uuid") {
                o.remove("logicalType");
            }
            o.values_mut().for_each(strip_uuid);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_uuid),
        _ => {}
    }
}

/// Avro decoders of framed records, one per writer schema: each resolves
/// its writer schema to the table's reader schema (Avro's schema
/// resolution: defaults for fields the writer lacks, promotions), or, for a
/// writer the reader cannot resolve (a newer version that widened a field
/// the running statement reads narrower), decodes in the writer's own types
/// for the caller to cast by column name.
pub struct AvroDecoder {
    reader: String,
    /// The column a writer schema that is not a record reads into.
    wrap: Option<String>,
    writers: HashMap<u32, String>,
    decoders: HashMap<u32, Decoder>,
}

impl std::fmt::Debug for AvroDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvroDecoder")
            .field("writers", &self.writers.len())
            .finish()
    }
}

/// The indexes of the records that did not decode, with why.
pub type Failed = Vec<(usize, String)>;

/// At most this many rows per decoded batch.
const BATCH_ROWS: usize = 1 << 16;

impl AvroDecoder {
    pub fn new(reader: String, wrap: Option<String>) -> AvroDecoder {
        AvroDecoder {
            reader,
            wrap,
            writers: HashMap::new(),
            decoders: HashMap::new(),
        }
    }

    pub fn add_writer(&mut self, id: u32, schema: &str) {
        let mut v: Value = match serde_json::from_str(schema) {
            Ok(v) => v,
            Err(_) => return,
        };
        strip_uuid(&mut v);
        let v = wrap_primitive(v, self.wrap.as_deref());
        self.writers.insert(id, v.to_string());
        self.decoders.remove(&id);
    }

    pub fn has_writer(&self, id: u32) -> bool {
        self.writers.contains_key(&id)
    }

    fn decoder(&mut self, id: u32) -> Result<&mut Decoder, String> {
        if !self.decoders.contains_key(&id) {
            let writer = self
                .writers
                .get(&id)
                .ok_or_else(|| format!("no writer schema for id {id}"))?;
            let store = || -> Result<SchemaStore, String> {
                let mut store = SchemaStore::new_with_type(FingerprintAlgorithm::Id);
                store
                    .set(Fingerprint::Id(id), AvroSchema::new(writer.clone()))
                    .map_err(|e| e.to_string())?;
                Ok(store)
            };
            let resolved = ReaderBuilder::new()
                .with_reader_schema(AvroSchema::new(self.reader.clone()))
                .with_writer_schema_store(store()?)
                .with_batch_size(BATCH_ROWS)
                .build_decoder();
            let d = match resolved {
                Ok(d) => d,
                Err(_) => ReaderBuilder::new()
                    .with_writer_schema_store(store()?)
                    .with_batch_size(BATCH_ROWS)
                    .build_decoder()
                    .map_err(|e| format!("schema id {id} cannot be read: {e}"))?,
            };
            self.decoders.insert(id, d);
        }
        Ok(self.decoders.get_mut(&id).expect("built above"))
    }

    /// Feeds one framed record; on error the decoder is dropped (its
    /// partial row cannot be taken back) and the caller feeds the good
    /// records again.
    fn feed(&mut self, id: u32, frame: &[u8], out: &mut Vec<RecordBatch>) -> Result<(), String> {
        let d = self.decoder(id)?;
        let mut buf = frame;
        let mut stalls = 0;
        while !buf.is_empty() {
            if d.batch_is_full() {
                if let Some(b) = d.flush().map_err(|e| e.to_string())? {
                    out.push(b);
                }
            }
            let n = d.decode(buf).map_err(|e| e.to_string())?;
            if n == 0 {
                stalls += 1;
                if stalls > 2 {
                    return Err("the Avro body is truncated".into());
                }
            }
            buf = &buf[n..];
        }
        Ok(())
    }

    /// Decodes framed records, each with a known writer schema, in order:
    /// a batch per run of records of one writer schema (in the reader
    /// schema, or the writer's own types where it cannot be resolved), and
    /// the indexes of the records that failed, with why.
    pub fn decode(
        &mut self,
        frames: &[(u32, &[u8])],
    ) -> Result<(Vec<RecordBatch>, Failed), EngineError> {
        let mut bad = vec![];
        let mut out = vec![];
        let mut start = 0;
        while start < frames.len() {
            let id = frames[start].0;
            let end = frames[start..]
                .iter()
                .position(|f| f.0 != id)
                .map_or(frames.len(), |n| start + n);
            let mut run = vec![];
            let mut good: Vec<usize> = vec![];
            for i in start..end {
                match self.feed(id, frames[i].1, &mut run) {
                    Ok(()) => good.push(i),
                    Err(reason) => {
                        bad.push((
                            i,
                            format!("the Avro body does not match its schema (id {id}): {reason}"),
                        ));
                        self.decoders.remove(&id);
                        run.clear();
                        for &g in &good {
                            self.feed(id, frames[g].1, &mut run).map_err(|e| {
                                EngineError::Plan(format!(
                                    "a record decoded once failed again: {e}"
                                ))
                            })?;
                        }
                    }
                }
            }
            if let Some(d) = self.decoders.get_mut(&id) {
                if let Some(b) = d.flush().map_err(|e| EngineError::Plan(e.to_string()))? {
                    run.push(b);
                }
            }
            let rows: usize = run.iter().map(RecordBatch::num_rows).sum();
            if rows != good.len() {
                self.decoders.remove(&id);
                return Err(EngineError::Plan(format!(
                    "the Avro decoder produced {rows} rows for {} records",
                    good.len()
                )));
            }
            out.extend(run);
            start = end;
        }
        Ok((out, bad))
    }
}

/// The options a sink table gets once its value schema is registered: the
/// schema's id and text, which [`encode_part`] writes with (`key.` ones for
/// a key in a registry format).
pub const SCHEMA_ID_OPTION: &str = "value.schema-id";

/// The options of a part's registered schema: its id and text.
pub fn schema_options(part: Part) -> (String, String) {
    (
        format!("{}.schema-id", part.as_str()),
        format!("{}.writer-schema", part.as_str()),
    )
}

thread_local! {
    /// arrow-avro encoders by writer schema and id: a sink builds one once.
    static ENCODERS: std::cell::RefCell<HashMap<(Option<u32>, String), arrow_avro::writer::Encoder>> =
        std::cell::RefCell::new(HashMap::new());
}

/// Arrow types the Avro encoder takes for each of Flink SQL's: the batch's
/// columns are cast to these first.
fn avro_arrow_type(t: &arrow::datatypes::DataType) -> arrow::datatypes::DataType {
    use arrow::datatypes::DataType as D;
    match t {
        D::Int8 | D::Int16 => D::Int32,
        D::FixedSizeBinary(_) | D::LargeBinary | D::BinaryView => D::Binary,
        D::LargeUtf8 | D::Utf8View => D::Utf8,
        D::Timestamp(u, Some(_)) => D::Timestamp(*u, Some("+00:00".into())),
        D::Time32(arrow::datatypes::TimeUnit::Second) => {
            D::Time32(arrow::datatypes::TimeUnit::Millisecond)
        }
        other => other.clone(),
    }
}

/// The keys or values of a batch (the part's columns, in the table's
/// order) in the registry wire format of the sink's registered schema.
pub fn encode_part(
    table: &TableDef,
    part: Part,
    value: &RecordBatch,
) -> Result<Vec<Bytes>, EngineError> {
    if part.format(table) == PLAIN_AVRO {
        let (_, schema, _) = weir_catalog::registry::schema_for_part(table, part)
            .map_err(|e| EngineError::Plan(format!("table '{}': {e}", table.name)))?;
        return encode_avro(table, value, None, schema);
    }
    let (id_option, schema_option) = schema_options(part);
    let id: u32 = table
        .option(&id_option)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            EngineError::Plan(format!(
                "table '{}' has no registered {} schema",
                table.name,
                part.as_str()
            ))
        })?;
    let writer_schema = || {
        table.option(&schema_option).ok_or_else(|| {
            EngineError::Plan(format!(
                "table '{}' has no {} writer schema",
                table.name,
                part.as_str()
            ))
        })
    };
    match part.format(table) {
        PROTO => {
            let schema = writer_schema()?;
            encode_proto(table, value, id, schema)
        }
        JSON => {
            let rows = crate::connector::encode::json_rows(value)?;
            Ok(rows
                .into_iter()
                .map(|r| {
                    let mut b = Vec::with_capacity(r.len() + 5);
                    b.push(0);
                    b.extend_from_slice(&id.to_be_bytes());
                    b.extend_from_slice(&r);
                    Bytes::from(b)
                })
                .collect())
        }
        _ => encode_avro(table, value, Some(id), writer_schema()?.to_string()),
    }
}

/// Avro bodies of a batch's rows with `schema`: framed with schema id `id`
/// (Confluent's wire format), or bare when `None` (plain Avro).
fn encode_avro(
    table: &TableDef,
    value: &RecordBatch,
    id: Option<u32>,
    schema: String,
) -> Result<Vec<Bytes>, EngineError> {
    let fields: Vec<arrow::datatypes::Field> = value
        .schema()
        .fields()
        .iter()
        .map(|f| {
            f.as_ref()
                .clone()
                .with_data_type(avro_arrow_type(f.data_type()))
        })
        .collect();
    let cols = value
        .columns()
        .iter()
        .zip(&fields)
        .map(|(c, f)| arrow::compute::cast(c, f.data_type()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut md = std::collections::HashMap::new();
    md.insert(
        arrow_avro::schema::SCHEMA_METADATA_KEY.to_string(),
        schema.clone(),
    );
    let arrow_schema = Arc::new(arrow::datatypes::Schema::new_with_metadata(fields, md));
    let batch = RecordBatch::try_new_with_options(
        arrow_schema.clone(),
        cols,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(value.num_rows())),
    )?;
    ENCODERS.with(|e| {
        let mut e = e.borrow_mut();
        let key = (id, schema);
        if !e.contains_key(&key) {
            let builder = arrow_avro::writer::WriterBuilder::new(arrow_schema.as_ref().clone());
            let enc = match id {
                Some(id) => builder
                    .with_fingerprint_strategy(arrow_avro::schema::FingerprintStrategy::Id(id))
                    .build_encoder::<arrow_avro::writer::format::AvroSoeFormat>(),
                None => builder.build_encoder::<arrow_avro::writer::format::AvroBinaryFormat>(),
            }
            .map_err(|e| {
                EngineError::Plan(format!("table '{}': the Avro writer: {e}", table.name))
            })?;
            e.insert(key.clone(), enc);
        }
        let enc = e.get_mut(&key).expect("inserted above");
        enc.encode(&batch).map_err(|e| {
            EngineError::Plan(format!("table '{}': Avro encoding: {e}", table.name))
        })?;
        Ok(enc.flush().iter().collect())
    })
}

/// A Protobuf body's message indexes (which message of the schema the
/// record is) and the message bytes after them. The indexes are a
/// zigzag-varint count then that many zigzag varints; a count of 0 is the
/// common shorthand for `[0]`, the schema's first message.
pub fn proto_indexes(body: &[u8]) -> Result<(Vec<i32>, &[u8]), String> {
    fn varint(buf: &mut &[u8]) -> Result<i64, String> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = buf
                .split_first()
                .ok_or("the Protobuf message indexes are truncated")?;
            *buf = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(((v >> 1) as i64) ^ -((v & 1) as i64));
            }
        }
        Err("a Protobuf message index is not a varint".into())
    }
    let mut buf = body;
    let n = varint(&mut buf)?;
    if n == 0 {
        return Ok((vec![0], buf));
    }
    if !(0..=64).contains(&n) {
        return Err(format!("{n} Protobuf message indexes is not a valid count"));
    }
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        out.push(i32::try_from(varint(&mut buf)?).map_err(|e| e.to_string())?);
    }
    Ok((out, buf))
}

/// A decoded Protobuf message as the JSON the table's arrow-json decoder
/// reads: field names as declared, 64-bit integers as numbers, `bytes` as
/// hex, enums by name, `Timestamp` as RFC 3339, wrappers as their value,
/// fields with presence that are unset as `null`.
pub fn proto_json(m: &prost_reflect::DynamicMessage) -> Value {
    let mut out = serde_json::Map::new();
    for f in m.descriptor().fields() {
        let v = if f.supports_presence() && !m.has_field(&f) {
            Value::Null
        } else {
            proto_value(&m.get_field(&f), &f.kind())
        };
        out.insert(f.name().to_string(), v);
    }
    Value::Object(out)
}

fn proto_value(v: &prost_reflect::Value, kind: &prost_reflect::Kind) -> Value {
    use prost_reflect::{Kind, MapKey, Value as P};
    let float = |f: f64| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number);
    match v {
        P::Bool(b) => Value::Bool(*b),
        P::I32(n) => Value::from(*n),
        P::I64(n) => Value::from(*n),
        P::U32(n) => Value::from(*n),
        P::U64(n) => Value::from(*n),
        P::F32(n) => float(f64::from(*n)),
        P::F64(n) => float(*n),
        P::String(s) => Value::String(s.clone()),
        P::Bytes(b) => Value::String(hex::encode(b)),
        P::EnumNumber(n) => match kind {
            Kind::Enum(e) => e.get_value(*n).map_or_else(
                || Value::String(n.to_string()),
                |ev| Value::String(ev.name().to_string()),
            ),
            _ => Value::from(*n),
        },
        P::Message(m) => {
            let d = m.descriptor();
            match d.full_name() {
                "google.protobuf.Timestamp" => {
                    let get = |name: &str| m.get_field_by_name(name).map(|v| v.into_owned());
                    let secs = match get("seconds") {
                        Some(P::I64(s)) => s,
                        _ => 0,
                    };
                    let nanos = match get("nanos") {
                        Some(P::I32(n)) => n,
                        _ => 0,
                    };
                    chrono::DateTime::from_timestamp(secs, nanos.max(0) as u32)
                        .map_or(Value::Null, |t| {
                            Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
                        })
                }
                name if name.starts_with("google.protobuf.") && name.ends_with("Value") => {
                    match d.get_field_by_name("value") {
                        Some(f) => proto_value(&m.get_field(&f), &f.kind()),
                        None => proto_json(m),
                    }
                }
                _ => proto_json(m),
            }
        }
        P::List(items) => Value::Array(items.iter().map(|i| proto_value(i, kind)).collect()),
        P::Map(entries) => {
            let value_kind = match kind {
                Kind::Message(entry) => entry.map_entry_value_field().kind(),
                k => k.clone(),
            };
            let mut obj = serde_json::Map::new();
            for (k, v) in entries {
                let key = match k {
                    MapKey::Bool(b) => b.to_string(),
                    MapKey::I32(n) => n.to_string(),
                    MapKey::I64(n) => n.to_string(),
                    MapKey::U32(n) => n.to_string(),
                    MapKey::U64(n) => n.to_string(),
                    MapKey::String(s) => s.clone(),
                };
                obj.insert(key, proto_value(v, &value_kind));
            }
            Value::Object(obj)
        }
    }
}

/// Decoded Protobuf messages straight into Arrow columns, when every
/// column is a top-level scalar field (or a `Timestamp`, a wrapper, an
/// enum) of one message type: the common shape, without the JSON detour.
/// `None` when some column needs the general path.
pub fn proto_columns(
    schema: &arrow::datatypes::SchemaRef,
    msgs: &[prost_reflect::DynamicMessage],
    not_in_value: &[String],
) -> Option<RecordBatch> {
    use arrow::array::{
        BinaryBuilder, BooleanBuilder, Float32Builder, Float64Builder, Int32Builder, Int64Builder,
        StringBuilder, TimestampNanosecondBuilder,
    };
    use arrow::datatypes::{DataType as D, TimeUnit};
    use prost_reflect::{Kind, Value as P};
    let desc = msgs.first()?.descriptor();
    if msgs.iter().any(|m| m.descriptor() != desc) {
        return None;
    }
    /// A field's scalar value, through `Timestamp` and wrappers.
    fn scalar<'a>(
        m: &'a prost_reflect::DynamicMessage,
        f: &prost_reflect::FieldDescriptor,
    ) -> Option<std::borrow::Cow<'a, P>> {
        if f.supports_presence() && !m.has_field(f) {
            return None;
        }
        Some(m.get_field(f))
    }
    let n = msgs.len();
    let mut cols: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        if not_in_value.contains(field.name()) {
            cols.push(arrow::array::new_null_array(field.data_type(), n));
            continue;
        }
        let f = desc.get_field_by_name(field.name())?;
        if f.is_list() || f.is_map() {
            return None;
        }
        let col: ArrayRef = match (field.data_type(), f.kind()) {
            (
                D::Int64,
                Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint32 | Kind::Fixed32,
            ) => {
                let mut b = Int64Builder::with_capacity(n);
                for m in msgs {
                    b.append_option(scalar(m, &f).and_then(|v| match v.as_ref() {
                        P::I64(x) => Some(*x),
                        P::U32(x) => Some(i64::from(*x)),
                        _ => None,
                    }));
                }
                Arc::new(b.finish())
            }
            (D::Int32, Kind::Int32 | Kind::Sint32 | Kind::Sfixed32) => {
                let mut b = Int32Builder::with_capacity(n);
                for m in msgs {
                    b.append_option(scalar(m, &f).and_then(|v| v.as_i32()));
                }
                Arc::new(b.finish())
            }
            (D::Float64, Kind::Double) => {
                let mut b = Float64Builder::with_capacity(n);
                for m in msgs {
                    b.append_option(scalar(m, &f).and_then(|v| v.as_f64()));
                }
                Arc::new(b.finish())
            }
            (D::Float32, Kind::Float) => {
                let mut b = Float32Builder::with_capacity(n);
                for m in msgs {
                    b.append_option(scalar(m, &f).and_then(|v| v.as_f32()));
                }
                Arc::new(b.finish())
            }
            (D::Boolean, Kind::Bool) => {
                let mut b = BooleanBuilder::with_capacity(n);
                for m in msgs {
                    b.append_option(scalar(m, &f).and_then(|v| v.as_bool()));
                }
                Arc::new(b.finish())
            }
            (D::Utf8, Kind::String) => {
                let mut b = StringBuilder::with_capacity(n, n * 16);
                for m in msgs {
                    b.append_option(scalar(m, &f).as_deref().and_then(P::as_str));
                }
                Arc::new(b.finish())
            }
            (D::Utf8, Kind::Enum(e)) => {
                let mut b = StringBuilder::with_capacity(n, n * 8);
                for m in msgs {
                    let name = scalar(m, &f).and_then(|v| v.as_enum_number()).map(|x| {
                        e.get_value(x)
                            .map_or_else(|| x.to_string(), |v| v.name().to_string())
                    });
                    b.append_option(name);
                }
                Arc::new(b.finish())
            }
            (D::Binary, Kind::Bytes) => {
                let mut b = BinaryBuilder::with_capacity(n, n * 16);
                for m in msgs {
                    b.append_option(scalar(m, &f).as_deref().and_then(P::as_bytes));
                }
                Arc::new(b.finish())
            }
            (D::Timestamp(TimeUnit::Nanosecond, Some(_)), Kind::Message(t))
                if t.full_name() == "google.protobuf.Timestamp" =>
            {
                let (secs, nanos) = (t.get_field(1)?, t.get_field(2)?);
                let mut b = TimestampNanosecondBuilder::with_capacity(n);
                for m in msgs {
                    b.append_option(scalar(m, &f).and_then(|v| {
                        let ts = v.as_message()?;
                        let s = ts.get_field(&secs).as_i64()?;
                        let ns = ts.get_field(&nanos).as_i32()?;
                        s.checked_mul(1_000_000_000)?.checked_add(i64::from(ns))
                    }));
                }
                Arc::new(b.finish().with_timezone("UTC"))
            }
            _ => return None,
        };
        cols.push(col);
    }
    RecordBatch::try_new_with_options(
        schema.clone(),
        cols,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(n)),
    )
    .ok()
}

thread_local! {
    /// Compiled sink schemas by id.
    static PROTO_SINKS: std::cell::RefCell<HashMap<u32, weir_catalog::proto::ProtoSchema>> =
        std::cell::RefCell::new(HashMap::new());
}

/// The values of a batch as Protobuf messages of the sink's registered
/// schema (its first message), in the wire format (message index `[0]`).
/// NULL columns are left absent.
fn encode_proto(
    table: &TableDef,
    value: &RecordBatch,
    id: u32,
    schema: &str,
) -> Result<Vec<Bytes>, EngineError> {
    let plan = |e: String| EngineError::Plan(format!("table '{}': {e}", table.name));
    let desc = PROTO_SINKS.with(|c| {
        let mut c = c.borrow_mut();
        let compiled = match c.entry(id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(weir_catalog::proto::compile(schema, &[]).map_err(plan)?)
            }
        };
        compiled
            .message(&[0])
            .ok_or_else(|| plan("the registered schema has no message".into()))
    })?;
    let fields: Vec<Option<prost_reflect::FieldDescriptor>> = value
        .schema()
        .fields()
        .iter()
        .map(|f| desc.get_field_by_name(f.name()))
        .collect();
    let mut out = Vec::with_capacity(value.num_rows());
    for row in 0..value.num_rows() {
        let mut m = prost_reflect::DynamicMessage::new(desc.clone());
        for (i, fd) in fields.iter().enumerate() {
            let (Some(fd), col) = (fd, value.column(i)) else {
                continue;
            };
            if col.is_null(row) {
                continue;
            }
            let sv = datafusion::common::ScalarValue::try_from_array(col, row)?;
            if let Some(v) = proto_of(&sv, fd).map_err(plan)? {
                m.set_field(fd, v);
            }
        }
        let mut buf = Vec::with_capacity(64);
        buf.push(0);
        buf.extend_from_slice(&id.to_be_bytes());
        buf.push(0);
        prost_reflect::prost::Message::encode(&m, &mut buf)
            .map_err(|e| plan(format!("Protobuf encoding: {e}")))?;
        out.push(Bytes::from(buf));
    }
    Ok(out)
}

/// One cell as the value of field `fd` (`None`: NULL, left absent).
fn proto_of(
    sv: &datafusion::common::ScalarValue,
    fd: &prost_reflect::FieldDescriptor,
) -> Result<Option<prost_reflect::Value>, String> {
    use datafusion::common::ScalarValue as S;
    use prost_reflect::{MapKey, Value as P};
    if sv.is_null() {
        return Ok(None);
    }
    if fd.is_map() {
        let S::Map(arr) = sv else {
            return Err(format!("field '{}': a map, not {sv:?}", fd.name()));
        };
        let prost_reflect::Kind::Message(entry) = fd.kind() else {
            unreachable!("a map field's kind is its entry message")
        };
        let (kf, vf) = (entry.map_entry_key_field(), entry.map_entry_value_field());
        let entries = arr.value(0);
        let mut map = std::collections::HashMap::new();
        for i in 0..arrow::array::Array::len(&entries) {
            let k = S::try_from_array(entries.column(0), i).map_err(|e| e.to_string())?;
            let v = S::try_from_array(entries.column(1), i).map_err(|e| e.to_string())?;
            let key = match proto_scalar_of(&k, &kf)? {
                Some(P::String(s)) => MapKey::String(s),
                Some(P::I32(n)) => MapKey::I32(n),
                Some(P::I64(n)) => MapKey::I64(n),
                Some(P::Bool(b)) => MapKey::Bool(b),
                _ => continue,
            };
            if let Some(v) = proto_scalar_of(&v, &vf)? {
                map.insert(key, v);
            }
        }
        return Ok(Some(P::Map(map)));
    }
    if fd.is_list() {
        let list = match sv {
            S::List(a) => a.value(0),
            S::LargeList(a) => a.value(0),
            S::FixedSizeList(a) => a.value(0),
            _ => return Err(format!("field '{}': a list, not {sv:?}", fd.name())),
        };
        let mut items = Vec::with_capacity(list.len());
        for i in 0..list.len() {
            let item = S::try_from_array(&list, i).map_err(|e| e.to_string())?;
            if let Some(v) = proto_scalar_of(&item, fd)? {
                items.push(v);
            }
        }
        return Ok(Some(P::List(items)));
    }
    proto_scalar_of(sv, fd)
}

/// One non-repeated value of field `fd`'s kind.
fn proto_scalar_of(
    sv: &datafusion::common::ScalarValue,
    fd: &prost_reflect::FieldDescriptor,
) -> Result<Option<prost_reflect::Value>, String> {
    use datafusion::common::ScalarValue as S;
    use prost_reflect::{Kind, Value as P};
    if sv.is_null() {
        return Ok(None);
    }
    let int = |s: &S| -> Option<i64> {
        Some(match s {
            S::Int8(Some(v)) => i64::from(*v),
            S::Int16(Some(v)) => i64::from(*v),
            S::Int32(Some(v)) => i64::from(*v),
            S::Int64(Some(v)) => *v,
            S::Date32(Some(v)) => i64::from(*v),
            S::Time32Millisecond(Some(v)) => i64::from(*v),
            S::Time64Microsecond(Some(v)) => *v / 1000,
            S::Time64Nanosecond(Some(v)) => *v / 1_000_000,
            _ => return None,
        })
    };
    let bad = || {
        format!(
            "field '{}': {sv:?} cannot be written as {:?}",
            fd.name(),
            fd.kind()
        )
    };
    Ok(Some(match fd.kind() {
        Kind::Bool => match sv {
            S::Boolean(Some(b)) => P::Bool(*b),
            _ => return Err(bad()),
        },
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => P::I32(
            int(sv)
                .and_then(|v| i32::try_from(v).ok())
                .ok_or_else(bad)?,
        ),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => P::I64(int(sv).ok_or_else(bad)?),
        Kind::Float => match sv {
            S::Float32(Some(v)) => P::F32(*v),
            S::Float64(Some(v)) => P::F32(*v as f32),
            _ => return Err(bad()),
        },
        Kind::Double => match sv {
            S::Float64(Some(v)) => P::F64(*v),
            S::Float32(Some(v)) => P::F64(f64::from(*v)),
            _ => return Err(bad()),
        },
        Kind::String => match sv {
            S::Utf8(Some(s)) | S::LargeUtf8(Some(s)) | S::Utf8View(Some(s)) => P::String(s.clone()),
            other => P::String(other.to_string()),
        },
        Kind::Bytes => match sv {
            S::Binary(Some(b)) | S::LargeBinary(Some(b)) | S::BinaryView(Some(b)) => {
                P::Bytes(Bytes::from(b.clone()))
            }
            S::FixedSizeBinary(_, Some(b)) => P::Bytes(Bytes::from(b.clone())),
            _ => return Err(bad()),
        },
        Kind::Message(m) if m.full_name() == "google.protobuf.Timestamp" => {
            let nanos = match sv {
                S::TimestampSecond(Some(v), _) => i128::from(*v) * 1_000_000_000,
                S::TimestampMillisecond(Some(v), _) => i128::from(*v) * 1_000_000,
                S::TimestampMicrosecond(Some(v), _) => i128::from(*v) * 1_000,
                S::TimestampNanosecond(Some(v), _) => i128::from(*v),
                _ => return Err(bad()),
            };
            let mut t = prost_reflect::DynamicMessage::new(m);
            t.set_field_by_name("seconds", P::I64(nanos.div_euclid(1_000_000_000) as i64));
            t.set_field_by_name("nanos", P::I32(nanos.rem_euclid(1_000_000_000) as i32));
            P::Message(t)
        }
        Kind::Message(m) => {
            let S::Struct(arr) = sv else {
                return Err(bad());
            };
            let mut msg = prost_reflect::DynamicMessage::new(m.clone());
            for (i, f) in arr.fields().iter().enumerate() {
                let Some(inner) = m.get_field_by_name(f.name()) else {
                    continue;
                };
                let cell = S::try_from_array(arr.column(i), 0).map_err(|e| e.to_string())?;
                if let Some(v) = proto_of(&cell, &inner)? {
                    msg.set_field(&inner, v);
                }
            }
            P::Message(msg)
        }
        Kind::Enum(_) | Kind::Uint32 | Kind::Uint64 | Kind::Fixed32 | Kind::Fixed64 => {
            return Err(bad())
        }
    }))
}
