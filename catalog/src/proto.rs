//! Protobuf schemas of the registry: `.proto` text compiled by `protox` (a
//! Rust protobuf compiler) into `prost-reflect` descriptors, with the
//! schema's references as imports by name and Google's well-known types
//! built in; the rules that keep a new version readable; and message fields
//! as Flink SQL types.

use std::collections::HashMap;

use prost_reflect::{Cardinality, DescriptorPool, FieldDescriptor, Kind, MessageDescriptor};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};

use crate::types::{RowField, SqlType};

/// The name the registered schema's own file has among its imports.
const MAIN: &str = "__weir_schema.proto";

struct Sources(HashMap<String, String>);

impl FileResolver for Sources {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match self.0.get(name) {
            Some(src) => File::from_source(name, src),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

/// A compiled schema: its descriptors and the file the schema is.
#[derive(Debug, Clone)]
pub struct ProtoSchema {
    pub pool: DescriptorPool,
    pub file: String,
}

impl ProtoSchema {
    /// The message the wire format's message indexes name: `[0]` is the
    /// file's first message, `[1, 0]` the first nested message of its
    /// second, and so on.
    pub fn message(&self, indexes: &[i32]) -> Option<MessageDescriptor> {
        let file = self.pool.get_file_by_name(&self.file)?;
        let (first, rest) = indexes.split_first().unwrap_or((&0, &[]));
        let mut m = file.messages().nth(usize::try_from(*first).ok()?)?;
        for i in rest {
            let next = m.child_messages().nth(usize::try_from(*i).ok()?)?;
            m = next;
        }
        Some(m)
    }
}

/// A schema given as a base64-encoded `FileDescriptorProto` (how
/// Confluent's Protobuf serializers register), rather than `.proto` text.
fn as_descriptor(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let t = text.trim();
    if t.is_empty() || t.contains(char::is_whitespace) || t.contains(';') {
        return None;
    }
    base64::engine::general_purpose::STANDARD.decode(t).ok()
}

/// Google's well-known types, compiled once per call.
fn well_known_pool() -> Result<DescriptorPool, String> {
    let mut compiler = protox::Compiler::with_file_resolver(GoogleFileResolver::new());
    compiler.include_imports(true);
    compiler
        .open_files([
            "google/protobuf/timestamp.proto",
            "google/protobuf/wrappers.proto",
            "google/protobuf/duration.proto",
            "google/protobuf/struct.proto",
            "google/protobuf/empty.proto",
            "google/protobuf/any.proto",
            "google/protobuf/field_mask.proto",
        ])
        .map_err(|e| e.to_string())?;
    Ok(compiler.descriptor_pool())
}

/// A schema registered as serialized descriptors: the well-known types,
/// then the references, then the file itself, into one pool.
fn from_descriptor(bytes: &[u8], refs: &[(String, String)]) -> Result<ProtoSchema, String> {
    let mut pool = well_known_pool()?;
    for (name, text) in refs {
        match as_descriptor(text) {
            Some(b) => pool
                .decode_file_descriptor_proto(b.as_slice())
                .map_err(|e| format!("Invalid schema: the reference '{name}': {e}"))?,
            None => {
                let r = compile(text, &[])
                    .map_err(|e| format!("Invalid schema: the reference '{name}': {e}"))?;
                pool.add_file_descriptor_protos(r.pool.file_descriptor_protos().cloned())
                    .map_err(|e| format!("Invalid schema: the reference '{name}': {e}"))?;
            }
        }
    }
    let before = pool.files().len();
    pool.decode_file_descriptor_proto(bytes)
        .map_err(|e| format!("Invalid schema: {e}"))?;
    let file = pool
        .files()
        .nth(before)
        .or_else(|| pool.files().last())
        .map(|f| f.name().to_string())
        .ok_or("Invalid schema: an empty descriptor")?;
    Ok(ProtoSchema { pool, file })
}

/// Compiles `text` (`.proto` source, or a base64 `FileDescriptorProto`),
/// with `refs` (import name, text) to import.
pub fn compile(text: &str, refs: &[(String, String)]) -> Result<ProtoSchema, String> {
    if let Some(bytes) = as_descriptor(text) {
        let schema = from_descriptor(&bytes, refs)?;
        if schema.message(&[0]).is_none() {
            return Err("Invalid schema: a Protobuf schema declares at least one message".into());
        }
        return Ok(schema);
    }
    let mut files: HashMap<String, String> = refs.iter().cloned().collect();
    files.insert(MAIN.to_string(), text.to_string());
    let mut chain = ChainFileResolver::new();
    chain.add(Sources(files));
    chain.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(chain);
    compiler.include_imports(true);
    compiler
        .open_file(MAIN)
        .map_err(|e| format!("Invalid schema: {e}"))?;
    let pool = compiler.descriptor_pool();
    let schema = ProtoSchema {
        pool,
        file: MAIN.to_string(),
    };
    if schema.message(&[0]).is_none() {
        return Err("Invalid schema: a Protobuf schema declares at least one message".into());
    }
    Ok(schema)
}

/// Which wire types a field kind shares: fields may change kind within a
/// group and stay readable (Protobuf's own rules: the varint types, the
/// zigzag ones, the fixed ones, and `string`/`bytes`).
fn wire_group(k: &Kind) -> String {
    match k {
        Kind::Int32 | Kind::Int64 | Kind::Uint32 | Kind::Uint64 | Kind::Bool => "varint".into(),
        Kind::Sint32 | Kind::Sint64 => "zigzag".into(),
        Kind::Fixed32 | Kind::Sfixed32 => "fixed32".into(),
        Kind::Fixed64 | Kind::Sfixed64 => "fixed64".into(),
        Kind::Float => "float".into(),
        Kind::Double => "double".into(),
        Kind::String | Kind::Bytes => "length".into(),
        Kind::Enum(_) => "varint".into(),
        Kind::Message(m) => format!("message {}", m.full_name()),
    }
}

/// Why data written with `writer` cannot be read with `reader`: a message
/// the writer has that the reader lost, or a field number whose wire type
/// or repetition changed. Fields may be added and removed.
pub fn incompatibilities(writer: &ProtoSchema, reader: &ProtoSchema) -> Vec<String> {
    let mut out = vec![];
    let Some(wf) = writer.pool.get_file_by_name(&writer.file) else {
        return out;
    };
    let mut stack: Vec<MessageDescriptor> = wf.messages().collect();
    while let Some(m) = stack.pop() {
        stack.extend(m.child_messages().filter(|c| !c.is_map_entry()));
        let Some(rm) = reader.pool.get_message_by_name(m.full_name()) else {
            out.push(format!("message {} was removed", m.full_name()));
            continue;
        };
        for f in m.fields() {
            let Some(rf) = rm.get_field(f.number()) else {
                continue;
            };
            let (wg, rg) = (wire_group(&f.kind()), wire_group(&rf.kind()));
            if wg != rg {
                out.push(format!(
                    "message {}: field {} ('{}') changed type from {:?} to {:?}",
                    m.full_name(),
                    f.number(),
                    f.name(),
                    f.kind(),
                    rf.kind()
                ));
            } else if f.is_list() != rf.is_list() || f.is_map() != rf.is_map() {
                out.push(format!(
                    "message {}: field {} ('{}') changed between repeated and singular",
                    m.full_name(),
                    f.number(),
                    f.name()
                ));
            }
        }
    }
    out
}

/// Wrapper messages of `google/protobuf/wrappers.proto`: a nullable scalar.
fn wrapped(m: &MessageDescriptor) -> Option<SqlType> {
    Some(match m.full_name() {
        "google.protobuf.DoubleValue" => SqlType::Double,
        "google.protobuf.FloatValue" => SqlType::Float,
        "google.protobuf.Int64Value" => SqlType::BigInt,
        "google.protobuf.UInt64Value" => SqlType::Decimal {
            precision: 20,
            scale: 0,
        },
        "google.protobuf.Int32Value" => SqlType::Int,
        "google.protobuf.UInt32Value" => SqlType::BigInt,
        "google.protobuf.BoolValue" => SqlType::Boolean,
        "google.protobuf.StringValue" => SqlType::String,
        "google.protobuf.BytesValue" => SqlType::Bytes,
        _ => return None,
    })
}

/// The Flink SQL type of one field, and whether it is nullable: proto3
/// scalars without `optional` always have a value (NOT NULL); messages,
/// `optional` fields and the fields of a `oneof` may be absent.
pub fn field_type(f: &FieldDescriptor, path: &str) -> Result<(SqlType, bool), String> {
    field_type_at(f, path, 0)
}

fn field_type_at(f: &FieldDescriptor, path: &str, depth: usize) -> Result<(SqlType, bool), String> {
    if f.is_map() {
        let Kind::Message(entry) = f.kind() else {
            unreachable!("a map field's kind is its entry message")
        };
        let (k, _) = field_type_at(&entry.map_entry_key_field(), path, depth)?;
        let (v, v_null) = field_type_at(&entry.map_entry_value_field(), path, depth)?;
        return Ok((
            SqlType::Map {
                key: Box::new(k),
                value: Box::new(v),
                value_nullable: v_null,
            },
            false,
        ));
    }
    let (t, nullable) = scalar_type(f, path, depth)?;
    if f.is_list() || f.cardinality() == Cardinality::Repeated {
        return Ok((
            SqlType::Array {
                element: Box::new(t),
                element_nullable: false,
            },
            false,
        ));
    }
    Ok((t, nullable || f.supports_presence()))
}

fn scalar_type(f: &FieldDescriptor, path: &str, depth: usize) -> Result<(SqlType, bool), String> {
    Ok((
        match f.kind() {
            Kind::Double => SqlType::Double,
            Kind::Float => SqlType::Float,
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => SqlType::Int,
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint32 | Kind::Fixed32 => {
                SqlType::BigInt
            }
            Kind::Uint64 | Kind::Fixed64 => SqlType::Decimal {
                precision: 20,
                scale: 0,
            },
            Kind::Bool => SqlType::Boolean,
            Kind::String => SqlType::String,
            Kind::Bytes => SqlType::Bytes,
            Kind::Enum(_) => SqlType::String,
            Kind::Message(m) => {
                if m.full_name() == "google.protobuf.Timestamp" {
                    return Ok((SqlType::TimestampLtz { precision: 9 }, true));
                }
                if let Some(t) = wrapped(&m) {
                    return Ok((t, true));
                }
                message_type(&m, path, depth + 1)?
            }
        },
        false,
    ))
}

/// A message as a `ROW` of its fields.
pub fn message_type(m: &MessageDescriptor, path: &str, depth: usize) -> Result<SqlType, String> {
    if depth > 32 {
        return Err(format!(
            "field '{path}': message {} nests itself; a recursive message has no Flink SQL type",
            m.full_name()
        ));
    }
    let mut fields = vec![];
    for f in m.fields() {
        let p = if path.is_empty() {
            f.name().to_string()
        } else {
            format!("{path}.{}", f.name())
        };
        let (data_type, nullable) = match f.kind() {
            Kind::Message(inner)
                if !f.is_map()
                    && inner.full_name() != "google.protobuf.Timestamp"
                    && wrapped(&inner).is_none() =>
            {
                let t = message_type(&inner, &p, depth + 1)?;
                if f.is_list() {
                    (
                        SqlType::Array {
                            element: Box::new(t),
                            element_nullable: false,
                        },
                        false,
                    )
                } else {
                    (t, true)
                }
            }
            _ => field_type_at(&f, &p, depth + 1)?,
        };
        fields.push(RowField {
            name: f.name().to_string(),
            data_type,
            nullable,
        });
    }
    Ok(SqlType::Row { fields })
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";
message Order {
  int64 id = 1;
  string item = 2;
  repeated string tags = 3;
  map<string, double> prices = 4;
  google.protobuf.Timestamp at = 5;
  optional int32 maybe = 6;
  message Line { int32 qty = 1; }
  Line line = 7;
  oneof pay { string card = 8; string cash = 9; }
}
"#;

    #[test]
    fn proto_text_compiles_with_well_known_imports_and_maps_to_columns() {
        let s = compile(V1, &[]).unwrap();
        let m = s.message(&[0]).unwrap();
        assert_eq!(m.full_name(), "shop.Order");
        // Indexes count nested types as the descriptor lists them, map
        // entries included (as Confluent's serializers do).
        assert_eq!(
            s.message(&[0, 0]).unwrap().full_name(),
            "shop.Order.PricesEntry"
        );
        assert_eq!(s.message(&[0, 1]).unwrap().full_name(), "shop.Order.Line");
        assert!(s.message(&[1]).is_none());
        let SqlType::Row { fields } = message_type(&m, "", 0).unwrap() else {
            panic!("a message is a ROW")
        };
        let got: Vec<(String, String, bool)> = fields
            .iter()
            .map(|f| (f.name.clone(), f.data_type.to_string(), f.nullable))
            .collect();
        let want = [
            ("id", "BIGINT", false),
            ("item", "STRING", false),
            ("tags", "ARRAY<STRING NOT NULL>", false),
            ("prices", "MAP<STRING, DOUBLE NOT NULL>", false),
            ("at", "TIMESTAMP_LTZ(9)", true),
            ("maybe", "INT", true),
            ("line", "ROW<`qty` INT NOT NULL>", true),
            ("card", "STRING", true),
            ("cash", "STRING", true),
        ];
        for (g, w) in got.iter().zip(want) {
            assert_eq!((g.0.as_str(), g.1.as_str(), g.2), w);
        }
    }

    #[test]
    fn bad_proto_is_refused_with_the_reason() {
        let e = compile("syntax = \"proto3\"; message X { int32 a = ; }", &[]).unwrap_err();
        assert!(e.starts_with("Invalid schema"), "{e}");
        let e = compile(
            "syntax = \"proto3\"; import \"missing.proto\"; message X {}",
            &[],
        )
        .unwrap_err();
        assert!(e.contains("missing.proto"), "{e}");
    }

    #[test]
    fn changing_a_field_numbers_type_is_incompatible_adding_one_is_not() {
        let v1 = compile(V1, &[]).unwrap();
        let added = compile(
            &V1.replace("  int64 id = 1;", "  int64 id = 1;\n  string note = 10;"),
            &[],
        )
        .unwrap();
        assert!(incompatibilities(&v1, &added).is_empty());
        assert!(incompatibilities(&added, &v1).is_empty());
        // int64 -> int32 shares the varint wire type: readable.
        let narrowed = compile(&V1.replace("int64 id = 1", "int32 id = 1"), &[]).unwrap();
        assert!(incompatibilities(&v1, &narrowed).is_empty());
        let retyped = compile(&V1.replace("string item = 2", "double item = 2"), &[]).unwrap();
        let why = incompatibilities(&v1, &retyped);
        assert_eq!(why.len(), 1, "{why:?}");
        assert!(why[0].contains("item"), "{why:?}");
        let repeated = compile(
            &V1.replace("string item = 2", "repeated string item = 2"),
            &[],
        )
        .unwrap();
        assert!(!incompatibilities(&v1, &repeated).is_empty());
    }

    #[test]
    fn a_serialized_descriptor_is_a_schema_too() {
        use base64::Engine;
        let s = compile(V1, &[]).unwrap();
        let file = s.pool.get_file_by_name(&s.file).unwrap();
        let mut fdp = file.file_descriptor_proto().clone();
        fdp.name = Some("shop/order.proto".into());
        let bytes = prost_reflect::prost::Message::encode_to_vec(&fdp);
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        let again = compile(&b64, &[]).unwrap();
        assert_eq!(again.message(&[0]).unwrap().full_name(), "shop.Order");
        assert!(incompatibilities(&s, &again).is_empty());
    }
}
