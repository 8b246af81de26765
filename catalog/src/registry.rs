//! The schema registry's model: schema types, what makes a schema valid,
//! whether a new version is compatible with the ones before it, and what
//! columns a schema gives a table (Avro and JSON Schema to Flink SQL types,
//! and table columns back to an Avro schema).
//!
//! Avro schemas are parsed and compared by the Apache Avro project's own
//! crate (`apache-avro`: parsing with references, and its schema-resolution
//! checker for compatibility). JSON Schema has no kept Rust checker for
//! compatibility, so its rules are here, the subset Confluent documents for
//! the common shapes: types (integer may widen to number), properties added
//! or removed against the content model, `required`, `enum`, arrays.
//! The store side is in `registry_store.rs`; the REST API in the control
//! plane.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::table::{ColumnKind, ColumnSpec};
use crate::types::{RowField, SqlType};

/// `schemaType`: absent means AVRO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum SchemaType {
    #[default]
    Avro,
    Protobuf,
    Json,
}

impl SchemaType {
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Protobuf => "PROTOBUF",
            SchemaType::Json => "JSON",
        }
    }

    pub fn parse(s: &str) -> Option<SchemaType> {
        match s.to_ascii_uppercase().as_str() {
            "AVRO" => Some(SchemaType::Avro),
            "PROTOBUF" => Some(SchemaType::Protobuf),
            "JSON" => Some(SchemaType::Json),
            _ => None,
        }
    }

    /// The table format that reads and writes this type in Confluent's
    /// wire format.
    pub fn format(self) -> &'static str {
        match self {
            SchemaType::Avro => "avro-registry",
            SchemaType::Protobuf => "proto-registry",
            SchemaType::Json => "json-registry",
        }
    }
}

pub use crate::registry_client::{ExternalRegistry, RegistryConfig, SchemaRegistry};

/// The table formats that read and write the registry's wire format.
pub const FORMATS: [&str; 3] = ["avro-registry", "json-registry", "proto-registry"];

/// A schema that another one imports by `name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaReference {
    pub name: String,
    pub subject: String,
    pub version: i64,
}

/// A schema as the registry keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredSchema {
    pub id: i64,
    pub schema_type: SchemaType,
    pub schema: String,
    pub references: Vec<SchemaReference>,
    /// The texts of the schemas `references` names, transitively, as
    /// (import name, text): filled for a worker, which cannot look them up
    /// itself ([`SchemaRegistry::resolved`]); empty as stored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reference_texts: Vec<(String, String)>,
}

/// A subject's version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectVersion {
    pub subject: String,
    pub version: i64,
    pub deleted: bool,
    pub schema: RegisteredSchema,
}

/// Compatibility levels, per subject or global.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    None,
    #[default]
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Compatibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Compatibility::None => "NONE",
            Compatibility::Backward => "BACKWARD",
            Compatibility::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Compatibility::Forward => "FORWARD",
            Compatibility::ForwardTransitive => "FORWARD_TRANSITIVE",
            Compatibility::Full => "FULL",
            Compatibility::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    pub fn parse(s: &str) -> Option<Compatibility> {
        serde_json::from_value(Value::String(s.to_ascii_uppercase())).ok()
    }

    fn transitive(self) -> bool {
        matches!(
            self,
            Compatibility::BackwardTransitive
                | Compatibility::ForwardTransitive
                | Compatibility::FullTransitive
        )
    }

    fn backward(self) -> bool {
        matches!(
            self,
            Compatibility::Backward
                | Compatibility::BackwardTransitive
                | Compatibility::Full
                | Compatibility::FullTransitive
        )
    }

    fn forward(self) -> bool {
        matches!(
            self,
            Compatibility::Forward
                | Compatibility::ForwardTransitive
                | Compatibility::Full
                | Compatibility::FullTransitive
        )
    }
}

/// A schema checked for validity: what compatibility checks and the type
/// mapping work on.
#[derive(Debug, Clone)]
pub enum ParsedSchema {
    Avro {
        schema: apache_avro::Schema,
        /// The schema's JSON, and the referenced schemas' JSON.
        json: Value,
        refs: Vec<Value>,
    },
    Json(Value),
    Protobuf(crate::proto::ProtoSchema),
}

/// Parses `text` as a schema of `ty`, with the texts of the schemas it
/// references; the error says what is wrong (the registry's 42201).
/// `refs` are the referenced schemas as (name, text): Avro takes their named
/// types, Protobuf imports them by name.
pub fn parse(
    ty: SchemaType,
    text: &str,
    refs: &[(String, String)],
) -> Result<ParsedSchema, String> {
    match ty {
        SchemaType::Avro => {
            let json: Value =
                serde_json::from_str(text).map_err(|e| format!("Invalid schema: not JSON: {e}"))?;
            let texts: Vec<&str> = refs.iter().map(|(_, t)| t.as_str()).collect();
            let refs_json = texts
                .iter()
                .map(|r| {
                    serde_json::from_str(r).map_err(|e| format!("a reference is not JSON: {e}"))
                })
                .collect::<Result<Vec<Value>, String>>()?;
            let schema = if refs.is_empty() {
                apache_avro::Schema::parse_str(text)
            } else {
                apache_avro::Schema::parse_str_with_list(text, &texts).map(|(s, _)| s)
            }
            .map_err(|e| format!("Invalid schema: {e}"))?;
            Ok(ParsedSchema::Avro {
                schema,
                json,
                refs: refs_json,
            })
        }
        SchemaType::Json => {
            let json: Value =
                serde_json::from_str(text).map_err(|e| format!("Invalid schema: not JSON: {e}"))?;
            let refs = refs
                .iter()
                .map(|(name, t)| {
                    serde_json::from_str(t)
                        .map(|v| (name.clone(), v))
                        .map_err(|e| {
                            format!("Invalid schema: the reference '{name}' is not JSON: {e}")
                        })
                })
                .collect::<Result<Vec<(String, Value)>, String>>()?;
            let json = inline_json_refs(&json, &json, &refs, 0)?;
            check_json_schema(&json, "$")?;
            Ok(ParsedSchema::Json(json))
        }
        SchemaType::Protobuf => Ok(ParsedSchema::Protobuf(crate::proto::compile(text, refs)?)),
    }
}

/// The text two registrations of the same schema share: JSON re-serialized
/// (whitespace and key order do not make a new schema), other text as is.
pub fn normalized(ty: SchemaType, text: &str) -> String {
    match ty {
        SchemaType::Avro | SchemaType::Json => serde_json::from_str::<Value>(text)
            .map(|v| v.to_string())
            .unwrap_or_else(|_| text.to_string()),
        SchemaType::Protobuf => text.trim().to_string(),
    }
}

const JSON_TYPES: [&str; 7] = [
    "object", "array", "string", "number", "integer", "boolean", "null",
];

fn check_json_schema(v: &Value, at: &str) -> Result<(), String> {
    match v {
        Value::Bool(_) => Ok(()),
        Value::Object(o) => {
            if let Some(t) = o.get("type") {
                let names: Vec<&Value> = match t {
                    Value::Array(a) => a.iter().collect(),
                    t => vec![t],
                };
                for n in names {
                    match n.as_str() {
                        Some(s) if JSON_TYPES.contains(&s) => {}
                        _ => {
                            return Err(format!(
                                "Invalid schema: {at}: 'type' {n} is not one of {}",
                                JSON_TYPES.join(", ")
                            ))
                        }
                    }
                }
            }
            if let Some(p) = o.get("properties") {
                let Value::Object(props) = p else {
                    return Err(format!(
                        "Invalid schema: {at}: 'properties' is not an object"
                    ));
                };
                for (k, s) in props {
                    check_json_schema(s, &format!("{at}.{k}"))?;
                }
            }
            if let Some(r) = o.get("required") {
                if !r.as_array().is_some_and(|a| a.iter().all(Value::is_string)) {
                    return Err(format!(
                        "Invalid schema: {at}: 'required' is not an array of names"
                    ));
                }
            }
            if let Some(i) = o.get("items") {
                check_json_schema(i, &format!("{at}[]"))?;
            }
            for k in ["oneOf", "anyOf", "allOf"] {
                if let Some(list) = o.get(k) {
                    let Value::Array(list) = list else {
                        return Err(format!("Invalid schema: {at}: '{k}' is not an array"));
                    };
                    for s in list {
                        check_json_schema(s, at)?;
                    }
                }
            }
            Ok(())
        }
        _ => Err(format!(
            "Invalid schema: {at}: a JSON Schema is an object or a boolean"
        )),
    }
}

/// Why `new` cannot follow `previous` (oldest first) under `level`; empty
/// when it can.
pub fn incompatibilities(
    level: Compatibility,
    new: &ParsedSchema,
    previous: &[ParsedSchema],
) -> Vec<String> {
    if level == Compatibility::None || previous.is_empty() {
        return vec![];
    }
    let against: &[ParsedSchema] = if level.transitive() {
        previous
    } else {
        &previous[previous.len() - 1..]
    };
    let mut out = vec![];
    for old in against.iter().rev() {
        if level.backward() {
            // The new schema reads what the old one wrote.
            out.extend(
                can_read(old, new)
                    .into_iter()
                    .map(|m| format!("backward: {m}")),
            );
        }
        if level.forward() {
            out.extend(
                can_read(new, old)
                    .into_iter()
                    .map(|m| format!("forward: {m}")),
            );
        }
    }
    out
}

/// Why a reader with schema `reader` cannot read data written with `writer`.
fn can_read(writer: &ParsedSchema, reader: &ParsedSchema) -> Vec<String> {
    match (writer, reader) {
        (ParsedSchema::Avro { schema: w, .. }, ParsedSchema::Avro { schema: r, .. }) => {
            match apache_avro::schema_compatibility::SchemaCompatibility::can_read(w, r) {
                Ok(apache_avro::schema_compatibility::Compatibility::Full) => vec![],
                Ok(_) => vec![
                    "the reader cannot read every value of the writer (an enum symbol or union branch is missing and has no default)".into(),
                ],
                Err(e) => vec![e.to_string()],
            }
        }
        (ParsedSchema::Json(w), ParsedSchema::Json(r)) => {
            let mut out = vec![];
            json_can_read(w, r, "$", &mut out);
            out
        }
        (ParsedSchema::Protobuf(w), ParsedSchema::Protobuf(r)) => {
            crate::proto::incompatibilities(w, r)
        }
        _ => vec!["the schema type changed".into()],
    }
}

/// How deep `$ref`s may nest (a schema that refers to itself is refused,
/// as a Flink SQL type cannot contain itself).
const MAX_JSON_REF_DEPTH: usize = 32;

/// `v` with every `$ref` replaced by what it points at: `#/...` in the same
/// document, `<name>` or `<name>#/...` in a referenced schema (a registry
/// reference by its name). Sibling keywords of a `$ref` are kept beside
/// the target's.
fn inline_json_refs(
    v: &Value,
    root: &Value,
    refs: &[(String, Value)],
    depth: usize,
) -> Result<Value, String> {
    let mut budget = MAX_JSON_INLINED_NODES;
    inline_json_refs_in(v, root, refs, depth, &mut budget)
}

/// At most this many JSON values once the `$ref`s are inlined (definitions
/// that each use the next twice would otherwise double at every level).
const MAX_JSON_INLINED_NODES: usize = 200_000;

fn inline_json_refs_in(
    v: &Value,
    root: &Value,
    refs: &[(String, Value)],
    depth: usize,
    budget: &mut usize,
) -> Result<Value, String> {
    *budget = budget.checked_sub(1).ok_or_else(|| {
        format!(
            "Invalid schema: inlining its $refs makes more than {MAX_JSON_INLINED_NODES} values"
        )
    })?;
    if depth > MAX_JSON_REF_DEPTH {
        return Err(format!(
            "Invalid schema: $ref nests deeper than {MAX_JSON_REF_DEPTH} levels (a schema that contains itself has no Flink SQL type)"
        ));
    }
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get("$ref") {
                let (doc, pointer) = match r.split_once('#') {
                    Some(("", p)) => (root, p),
                    Some((name, p)) => (reference_doc(refs, name, r)?, p),
                    None => (reference_doc(refs, r, r)?, ""),
                };
                let target = doc
                    .pointer(pointer)
                    .ok_or_else(|| format!("Invalid schema: $ref '{r}' points at nothing"))?;
                let mut out = inline_json_refs_in(target, doc, refs, depth + 1, budget)?;
                if let Value::Object(t) = &mut out {
                    for (k, x) in o {
                        if k != "$ref" && !t.contains_key(k) {
                            t.insert(
                                k.clone(),
                                inline_json_refs_in(x, root, refs, depth, budget)?,
                            );
                        }
                    }
                }
                return Ok(out);
            }
            let mut out = serde_json::Map::with_capacity(o.len());
            for (k, x) in o {
                // Definitions are reached through the $refs that use them.
                if k == "definitions" || k == "$defs" {
                    out.insert(k.clone(), x.clone());
                    continue;
                }
                out.insert(
                    k.clone(),
                    inline_json_refs_in(x, root, refs, depth, budget)?,
                );
            }
            Ok(Value::Object(out))
        }
        Value::Array(a) => a
            .iter()
            .map(|x| inline_json_refs_in(x, root, refs, depth, budget))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        other => Ok(other.clone()),
    }
}

fn reference_doc<'a>(
    refs: &'a [(String, Value)],
    name: &str,
    r: &str,
) -> Result<&'a Value, String> {
    refs.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
        .ok_or_else(|| {
            format!("Invalid schema: $ref '{r}' names '{name}', which is not one of the schema's references")
        })
}

fn json_types(v: &Value) -> Vec<String> {
    match v.get("type") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|t| t.as_str().map(String::from))
            .collect(),
        _ => {
            // `oneOf: [{type: null}, {...}]`, as some generators write
            // nullable fields.
            let mut out = vec![];
            if let Some(Value::Array(list)) = v.get("oneOf").or_else(|| v.get("anyOf")) {
                for s in list {
                    out.extend(json_types(s));
                }
            }
            out
        }
    }
}

/// The non-null branch of a `oneOf`/`anyOf` nullable, or `v` itself.
fn json_inner(v: &Value) -> &Value {
    if let Some(Value::Array(list)) = v.get("oneOf").or_else(|| v.get("anyOf")) {
        let non_null: Vec<&Value> = list
            .iter()
            .filter(|s| s.get("type").and_then(Value::as_str) != Some("null"))
            .collect();
        if non_null.len() == 1 {
            return non_null[0];
        }
    }
    v
}

fn json_can_read(w: &Value, r: &Value, at: &str, out: &mut Vec<String>) {
    let (wt, rt) = (json_types(w), json_types(r));
    if !rt.is_empty() {
        for t in &wt {
            let ok = rt.contains(t) || (t == "integer" && rt.iter().any(|x| x == "number"));
            if !ok {
                out.push(format!(
                    "{at}: the type '{t}' the writer allows is not allowed by the reader ({})",
                    rt.join(", ")
                ));
            }
        }
        if wt.is_empty() {
            out.push(format!(
                "{at}: the writer allows any type, the reader only {}",
                rt.join(", ")
            ));
        }
    }
    let (w, r) = (json_inner(w), json_inner(r));
    if let (Some(Value::Array(we)), Some(Value::Array(re))) = (w.get("enum"), r.get("enum")) {
        for v in we {
            if !re.contains(v) {
                out.push(format!(
                    "{at}: the enum value {v} is missing from the reader"
                ));
            }
        }
    }
    let props = |v: &Value| v.get("properties").and_then(Value::as_object).cloned();
    let required = |v: &Value| -> Vec<String> {
        v.get("required")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let open = |v: &Value| v.get("additionalProperties") != Some(&Value::Bool(false));
    if let (Some(wp), Some(rp)) = (props(w), props(r)) {
        let rreq = required(r);
        for (k, rs) in &rp {
            match wp.get(k) {
                Some(ws) => json_can_read(ws, rs, &format!("{at}.{k}"), out),
                None if rreq.contains(k) => out.push(format!(
                    "{at}: the reader requires the property '{k}', which the writer does not have"
                )),
                None => {}
            }
        }
        if !open(r) {
            for k in wp.keys() {
                if !rp.contains_key(k) {
                    out.push(format!(
                        "{at}: the writer's property '{k}' is not allowed by the reader (additionalProperties is false)"
                    ));
                }
            }
        }
    }
    if let (Some(wi), Some(ri)) = (w.get("items"), r.get("items")) {
        json_can_read(wi, ri, &format!("{at}[]"), out);
    }
}

/// A field a schema declares that Flink SQL cannot type.
fn unsupported(field: &str, what: impl std::fmt::Display) -> String {
    format!("field '{field}': {what} has no Flink SQL type")
}

/// The value (or key) columns a schema gives a table: a record's (object's)
/// fields, or one column `name` for any other schema.
pub fn columns_of(schema: &ParsedSchema, name: &str) -> Result<Vec<ColumnSpec>, String> {
    let fields: Vec<(String, SqlType, bool)> = match schema {
        ParsedSchema::Avro { json, refs, .. } => {
            let mut names = HashMap::new();
            for r in refs {
                collect_avro_names(r, None, &mut names);
            }
            collect_avro_names(json, None, &mut names);
            let record = is_avro_record(json, &names);
            let path = if record { "" } else { name };
            let (t, nullable) = avro_type(json, path, None, &names)?;
            match (t, record) {
                (SqlType::Row { fields }, true) => fields
                    .into_iter()
                    .map(|f| (f.name, f.data_type, f.nullable))
                    .collect(),
                (t, _) => vec![(name.to_string(), t, nullable)],
            }
        }
        ParsedSchema::Json(v) => {
            let (t, nullable) = json_type(v, name)?;
            match t {
                SqlType::Row { fields } if json_inner(v).get("properties").is_some() => fields
                    .into_iter()
                    .map(|f| (f.name, f.data_type, f.nullable))
                    .collect(),
                t => vec![(name.to_string(), t, nullable)],
            }
        }
        ParsedSchema::Protobuf(p) => {
            let m = p.message(&[0]).expect("compile checks for a first message");
            match crate::proto::message_type(&m, "", 0)? {
                SqlType::Row { fields } => fields
                    .into_iter()
                    .map(|f| (f.name, f.data_type, f.nullable))
                    .collect(),
                t => vec![(name.to_string(), t, false)],
            }
        }
    };
    Ok(fields
        .into_iter()
        .map(|(name, data_type, nullable)| ColumnSpec {
            name,
            data_type,
            nullable,
            kind: ColumnKind::Physical,
            comment: None,
        })
        .collect())
}

fn full_name(name: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if !name.contains('.') && !ns.is_empty() => format!("{ns}.{name}"),
        _ => name.to_string(),
    }
}

/// Every named type (record, enum, fixed) a schema defines, by full name
/// and by short name.
fn collect_avro_names(v: &Value, ns: Option<&str>, out: &mut HashMap<String, Value>) {
    match v {
        Value::Array(branches) => branches.iter().for_each(|b| collect_avro_names(b, ns, out)),
        Value::Object(o) => {
            let ns = o.get("namespace").and_then(Value::as_str).or(ns);
            if let (Some(t), Some(n)) = (
                o.get("type").and_then(Value::as_str),
                o.get("name").and_then(Value::as_str),
            ) {
                if matches!(t, "record" | "enum" | "fixed" | "error") {
                    let mut def = v.clone();
                    if let (Some(ns), Value::Object(d)) = (ns, &mut def) {
                        d.entry("namespace")
                            .or_insert(Value::String(ns.to_string()));
                    }
                    out.insert(full_name(n, ns), def.clone());
                    out.entry(n.rsplit('.').next().unwrap_or(n).to_string())
                        .or_insert(def);
                }
            }
            if let Some(Value::Array(fields)) = o.get("fields") {
                for f in fields {
                    if let Some(t) = f.get("type") {
                        collect_avro_names(t, ns, out);
                    }
                }
            }
            for k in ["items", "values"] {
                if let Some(t) = o.get(k) {
                    collect_avro_names(t, ns, out);
                }
            }
            if let Some(t @ (Value::Object(_) | Value::Array(_))) = o.get("type") {
                collect_avro_names(t, ns, out);
            }
        }
        _ => {}
    }
}

/// An Avro schema that names types defined in the schemas it references
/// (`references`, as the registry resolves them), made self-contained: the
/// first use of each such name is replaced by its definition, so a decoder
/// that knows only one schema text can read it. A schema without references
/// comes back as it is.
pub fn inline_avro_references(
    text: &str,
    references: &[(String, String)],
) -> Result<String, String> {
    if references.is_empty() {
        return Ok(text.to_string());
    }
    let mut names = HashMap::new();
    for (name, r) in references {
        let v: Value = serde_json::from_str(r)
            .map_err(|e| format!("the referenced schema '{name}' is not JSON: {e}"))?;
        collect_avro_names(&v, None, &mut names);
    }
    let mut v: Value =
        serde_json::from_str(text).map_err(|e| format!("the schema is not JSON: {e}"))?;
    let mut defined = std::collections::HashSet::new();
    inline_names(&mut v, None, &names, &mut defined, 0)?;
    Ok(v.to_string())
}

fn named_full_name(def: &Value, ns: Option<&str>) -> Option<String> {
    let o = def.as_object()?;
    let t = o.get("type")?.as_str()?;
    if !matches!(t, "record" | "enum" | "fixed" | "error") {
        return None;
    }
    let n = o.get("name")?.as_str()?;
    Some(full_name(
        n,
        o.get("namespace").and_then(Value::as_str).or(ns),
    ))
}

fn inline_names(
    v: &mut Value,
    ns: Option<&str>,
    names: &HashMap<String, Value>,
    defined: &mut std::collections::HashSet<String>,
    depth: usize,
) -> Result<(), String> {
    // Each inlined definition is one level; a schema deeper than this is
    // refused later anyway.
    if depth > 4 * MAX_DEPTH {
        return Err(format!("types nest more than {} deep", 4 * MAX_DEPTH));
    }
    match v {
        Value::String(s) => {
            let primitive = matches!(
                s.as_str(),
                "null" | "boolean" | "int" | "long" | "float" | "double" | "bytes" | "string"
            );
            if primitive || defined.contains(&full_name(s, ns)) || defined.contains(s.as_str()) {
                return Ok(());
            }
            let Some(def) = names
                .get(&full_name(s, ns))
                .or_else(|| names.get(s.as_str()))
            else {
                // Unknown here: parsing the schema names it.
                return Ok(());
            };
            if named_full_name(def, None).is_some_and(|n| defined.contains(&n)) {
                return Ok(());
            }
            *v = def.clone();
            inline_names(v, ns, names, defined, depth + 1)
        }
        Value::Array(branches) => branches
            .iter_mut()
            .try_for_each(|b| inline_names(b, ns, names, defined, depth + 1)),
        Value::Object(o) => {
            let own_ns = o.get("namespace").and_then(Value::as_str).or(ns);
            let mut child_ns = own_ns.map(str::to_string);
            if let Some(full) = named_full_name(&Value::Object(o.clone()), ns) {
                if let Some((prefix, _)) = full.rsplit_once('.') {
                    child_ns = Some(prefix.to_string());
                }
                defined.insert(full);
            }
            let child_ns = child_ns.as_deref();
            if let Some(Value::Array(fields)) = o.get_mut("fields") {
                for f in fields {
                    if let Some(t) = f.get_mut("type") {
                        inline_names(t, child_ns, names, defined, depth + 1)?;
                    }
                }
            }
            for k in ["items", "values"] {
                if let Some(t) = o.get_mut(k) {
                    inline_names(t, child_ns, names, defined, depth + 1)?;
                }
            }
            match o.get_mut("type") {
                Some(t @ (Value::Object(_) | Value::Array(_))) => {
                    inline_names(t, child_ns, names, defined, depth + 1)?
                }
                Some(t @ Value::String(_))
                    if !matches!(
                        t.as_str(),
                        Some("record" | "enum" | "fixed" | "error" | "array" | "map")
                    ) =>
                {
                    inline_names(t, child_ns, names, defined, depth + 1)?
                }
                _ => {}
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn is_avro_record(v: &Value, names: &HashMap<String, Value>) -> bool {
    match v {
        Value::String(s) => names
            .get(s)
            .is_some_and(|d| d.get("type").and_then(Value::as_str) == Some("record")),
        Value::Object(o) => match o.get("type") {
            Some(Value::String(t)) if t == "record" || t == "error" => true,
            Some(t @ Value::String(_)) if o.get("logicalType").is_none() => {
                is_avro_record(t, names)
            }
            _ => false,
        },
        _ => false,
    }
}

/// An Avro schema's Flink SQL type, and whether it is nullable (a union
/// with `null`).
fn avro_type(
    v: &Value,
    field: &str,
    ns: Option<&str>,
    names: &HashMap<String, Value>,
) -> Result<(SqlType, bool), String> {
    avro_type_at(v, field, ns, names, 0)
}

/// How deep a type may nest (a record that contains itself never ends).
const MAX_DEPTH: usize = 32;

fn avro_type_at(
    v: &Value,
    field: &str,
    ns: Option<&str>,
    names: &HashMap<String, Value>,
    depth: usize,
) -> Result<(SqlType, bool), String> {
    if depth > MAX_DEPTH {
        return Err(unsupported(
            field,
            format!("a type nested more than {MAX_DEPTH} deep (a recursive record)"),
        ));
    }
    match v {
        Value::String(s) => Ok((
            match s.as_str() {
                "null" => return Err(unsupported(field, "the Avro type null on its own")),
                "boolean" => SqlType::Boolean,
                "int" => SqlType::Int,
                "long" => SqlType::BigInt,
                "float" => SqlType::Float,
                "double" => SqlType::Double,
                "bytes" => SqlType::Bytes,
                "string" => SqlType::String,
                other => {
                    let def = names
                        .get(&full_name(other, ns))
                        .or_else(|| names.get(other))
                        .ok_or_else(|| {
                            unsupported(field, format!("the unknown Avro type '{other}'"))
                        })?;
                    return avro_type_at(def, field, ns, names, depth + 1).map(|(t, _)| (t, false));
                }
            },
            false,
        )),
        Value::Array(branches) => {
            let non_null: Vec<&Value> = branches
                .iter()
                .filter(|b| b.as_str() != Some("null"))
                .collect();
            let nullable = non_null.len() < branches.len();
            match non_null.as_slice() {
                [one] => avro_type_at(one, field, ns, names, depth + 1).map(|(t, _)| (t, nullable)),
                _ => Err(unsupported(
                    field,
                    format!(
                        "a union of {} non-null types (only a union of one type with null maps to a nullable column)",
                        non_null.len()
                    ),
                )),
            }
        }
        Value::Object(o) => {
            let ns = o.get("namespace").and_then(Value::as_str).or(ns);
            let t = o
                .get("type")
                .ok_or_else(|| unsupported(field, "a schema without 'type'"))?;
            let logical = o.get("logicalType").and_then(Value::as_str);
            let int = |k: &str| o.get(k).and_then(Value::as_u64);
            match (logical, t.as_str()) {
                (Some("decimal"), Some("bytes" | "fixed")) => {
                    let precision = int("precision").unwrap_or(10);
                    if precision > 38 {
                        return Err(unsupported(
                            field,
                            format!("a decimal of precision {precision} (at most 38)"),
                        ));
                    }
                    return Ok((
                        SqlType::Decimal {
                            precision: precision as u8,
                            scale: int("scale").unwrap_or(0) as i8,
                        },
                        false,
                    ));
                }
                (Some("date"), Some("int")) => return Ok((SqlType::Date, false)),
                (Some("time-millis"), Some("int")) => {
                    return Ok((SqlType::Time { precision: 3 }, false))
                }
                (Some("time-micros"), Some("long")) => {
                    return Ok((SqlType::Time { precision: 6 }, false))
                }
                (Some("timestamp-millis"), Some("long")) => {
                    return Ok((SqlType::TimestampLtz { precision: 3 }, false))
                }
                (Some("timestamp-micros"), Some("long")) => {
                    return Ok((SqlType::TimestampLtz { precision: 6 }, false))
                }
                (Some("local-timestamp-millis"), Some("long")) => {
                    return Ok((SqlType::Timestamp { precision: 3 }, false))
                }
                (Some("local-timestamp-micros"), Some("long")) => {
                    return Ok((SqlType::Timestamp { precision: 6 }, false))
                }
                (Some("uuid"), Some("string")) => return Ok((SqlType::String, false)),
                _ => {}
            }
            match t {
                Value::String(s) => match s.as_str() {
                    "record" | "error" => {
                        let fields = o
                            .get("fields")
                            .and_then(Value::as_array)
                            .ok_or_else(|| unsupported(field, "a record without fields"))?;
                        let mut out = Vec::with_capacity(fields.len());
                        for f in fields {
                            let n = f.get("name").and_then(Value::as_str).unwrap_or_default();
                            let ft = f.get("type").ok_or_else(|| unsupported(n, "no type"))?;
                            let path = if field.is_empty() {
                                n.to_string()
                            } else {
                                format!("{field}.{n}")
                            };
                            let (data_type, nullable) =
                                avro_type_at(ft, &path, ns, names, depth + 1)?;
                            out.push(RowField {
                                name: n.to_string(),
                                data_type,
                                nullable,
                            });
                        }
                        Ok((SqlType::Row { fields: out }, false))
                    }
                    "enum" => Ok((SqlType::String, false)),
                    "fixed" => Ok((
                        SqlType::Binary {
                            length: int("size").unwrap_or(0) as u32,
                        },
                        false,
                    )),
                    "array" => {
                        let items = o
                            .get("items")
                            .ok_or_else(|| unsupported(field, "an array without items"))?;
                        let (element, element_nullable) =
                            avro_type_at(items, field, ns, names, depth + 1)?;
                        Ok((
                            SqlType::Array {
                                element: Box::new(element),
                                element_nullable,
                            },
                            false,
                        ))
                    }
                    "map" => {
                        let values = o
                            .get("values")
                            .ok_or_else(|| unsupported(field, "a map without values"))?;
                        let (value, value_nullable) =
                            avro_type_at(values, field, ns, names, depth + 1)?;
                        Ok((
                            SqlType::Map {
                                key: Box::new(SqlType::String),
                                value: Box::new(value),
                                value_nullable,
                            },
                            false,
                        ))
                    }
                    _ => avro_type_at(t, field, ns, names, depth + 1),
                },
                t => avro_type_at(t, field, ns, names, depth + 1),
            }
        }
        other => Err(unsupported(field, format!("the Avro schema {other}"))),
    }
}

/// A JSON Schema's Flink SQL type, and whether it is nullable.
fn json_type(v: &Value, field: &str) -> Result<(SqlType, bool), String> {
    let types = json_types(v);
    let nullable = types.iter().any(|t| t == "null") || types.is_empty();
    let inner = json_inner(v);
    let non_null: Vec<&String> = types.iter().filter(|t| *t != "null").collect();
    let t = match non_null.as_slice() {
        [] if inner.get("properties").is_some() => "object",
        [] => return Err(unsupported(field, "a JSON Schema without a type")),
        [t] => t.as_str(),
        // `integer` and `number` together: the wider one.
        [a, b]
            if [a.as_str(), b.as_str()]
                .iter()
                .all(|t| *t == "integer" || *t == "number") =>
        {
            "number"
        }
        many => {
            return Err(unsupported(
                field,
                format!(
                    "a value of several JSON types ({})",
                    many.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ))
        }
    };
    let sql = match t {
        "boolean" => SqlType::Boolean,
        "integer" => SqlType::BigInt,
        "number" => SqlType::Double,
        "string" => match inner.get("format").and_then(Value::as_str) {
            Some("date-time") => SqlType::TimestampLtz { precision: 3 },
            Some("date") => SqlType::Date,
            Some("time") => SqlType::Time { precision: 3 },
            _ => SqlType::String,
        },
        "array" => {
            let items = inner
                .get("items")
                .ok_or_else(|| unsupported(field, "an array without 'items'"))?;
            let (element, element_nullable) = json_type(items, field)?;
            SqlType::Array {
                element: Box::new(element),
                element_nullable,
            }
        }
        "object" => match inner.get("properties").and_then(Value::as_object) {
            Some(props) => {
                let required: Vec<&str> = inner
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let mut fields = Vec::with_capacity(props.len());
                for (k, s) in props {
                    let (data_type, nullable) = json_type(s, &format!("{field}.{k}"))?;
                    fields.push(RowField {
                        name: k.clone(),
                        data_type,
                        nullable: nullable || !required.contains(&k.as_str()),
                    });
                }
                SqlType::Row { fields }
            }
            None => match inner.get("additionalProperties") {
                Some(s @ Value::Object(_)) => {
                    let (value, value_nullable) = json_type(s, field)?;
                    SqlType::Map {
                        key: Box::new(SqlType::String),
                        value: Box::new(value),
                        value_nullable,
                    }
                }
                _ => return Err(unsupported(field, "an object without properties")),
            },
        },
        other => return Err(unsupported(field, format!("the JSON type '{other}'"))),
    };
    Ok((sql, nullable))
}

/// The Avro schema Weir registers for columns it writes: a record named
/// `record` in namespace `org.apache.flink.avro.generated` (the names
/// Flink's own `avro-confluent` format uses), nullable columns as unions
/// with `null` first and a `null` default.
pub fn avro_schema_of(columns: &[(String, SqlType, bool)]) -> Result<Value, String> {
    let mut counter = 0usize;
    let fields = columns
        .iter()
        .map(|(n, t, nullable)| {
            let mut f =
                serde_json::json!({"name": n, "type": avro_of(t, *nullable, n, &mut counter)?});
            if *nullable {
                f["default"] = Value::Null;
            }
            Ok(f)
        })
        .collect::<Result<Vec<Value>, String>>()?;
    Ok(serde_json::json!({
        "type": "record",
        "name": "record",
        "namespace": "org.apache.flink.avro.generated",
        "fields": fields,
    }))
}

fn avro_of(t: &SqlType, nullable: bool, field: &str, counter: &mut usize) -> Result<Value, String> {
    use serde_json::json;
    let v = match t {
        SqlType::Boolean => json!("boolean"),
        SqlType::TinyInt | SqlType::SmallInt | SqlType::Int => json!("int"),
        SqlType::BigInt => json!("long"),
        SqlType::Float => json!("float"),
        SqlType::Double => json!("double"),
        SqlType::Decimal { precision, scale } => {
            json!({"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale})
        }
        SqlType::Char { .. } | SqlType::Varchar { .. } | SqlType::String => json!("string"),
        SqlType::Binary { .. } | SqlType::Varbinary { .. } | SqlType::Bytes => json!("bytes"),
        SqlType::Date => json!({"type": "int", "logicalType": "date"}),
        SqlType::Time { precision } if *precision <= 3 => {
            json!({"type": "int", "logicalType": "time-millis"})
        }
        SqlType::Time { .. } => json!({"type": "long", "logicalType": "time-micros"}),
        SqlType::Timestamp { precision } if *precision <= 3 => {
            json!({"type": "long", "logicalType": "local-timestamp-millis"})
        }
        SqlType::Timestamp { .. } => {
            json!({"type": "long", "logicalType": "local-timestamp-micros"})
        }
        SqlType::TimestampLtz { precision } if *precision <= 3 => {
            json!({"type": "long", "logicalType": "timestamp-millis"})
        }
        SqlType::TimestampLtz { .. } => json!({"type": "long", "logicalType": "timestamp-micros"}),
        SqlType::Array {
            element,
            element_nullable,
        } => {
            json!({"type": "array", "items": avro_of(element, *element_nullable, field, counter)?})
        }
        SqlType::Map {
            key,
            value,
            value_nullable,
        } => {
            if !matches!(
                **key,
                SqlType::String | SqlType::Varchar { .. } | SqlType::Char { .. }
            ) {
                return Err(format!(
                    "column '{field}': an Avro map's keys are strings; {key:?} keys cannot be written"
                ));
            }
            json!({"type": "map", "values": avro_of(value, *value_nullable, field, counter)?})
        }
        SqlType::Row { fields } => {
            *counter += 1;
            let name = format!("record_{field}_{counter}")
                .replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_");
            let fs = fields
                .iter()
                .map(|f| {
                    let mut v = json!({"name": f.name, "type": avro_of(&f.data_type, f.nullable, &f.name, counter)?});
                    if f.nullable {
                        v["default"] = Value::Null;
                    }
                    Ok(v)
                })
                .collect::<Result<Vec<Value>, String>>()?;
            json!({"type": "record", "name": name, "fields": fs})
        }
        SqlType::IntervalDayTime | SqlType::IntervalYearMonth => {
            return Err(format!(
                "column '{field}': INTERVAL columns cannot be written as Avro"
            ))
        }
    };
    Ok(if nullable { json!(["null", v]) } else { v })
}

/// A discovered table as the registry describes it: its key columns from
/// the latest version of `<topic>-key` (or `'key.subject'`), else a raw
/// `key BYTES` column; its value columns from `<topic>-value` (or
/// `'value.subject'`), else a raw `val BYTES` column. The plain `key BYTES,
/// val BYTES` table when neither subject exists. A subject whose schema has
/// no Flink SQL mapping leaves its part raw; why is returned.
pub fn registry_table(
    table: &crate::TableDef,
    latest: &HashMap<&str, &SubjectVersion>,
    refs_of: &dyn Fn(&RegisteredSchema) -> Vec<(String, String)>,
) -> (crate::TableDef, Vec<String>) {
    let mut def = crate::TableDef::discovered(&table.topic);
    def.name = table.name.clone();
    let mut problems = vec![];
    let mut part =
        |which: &str, column: &str| -> Option<(Vec<ColumnSpec>, &SubjectVersion, String)> {
            let subject = table
                .option(&format!("{which}.subject"))
                .map(str::to_string)
                .unwrap_or_else(|| format!("{}-{which}", table.topic));
            let v = latest.get(subject.as_str())?;
            match parse(v.schema.schema_type, &v.schema.schema, &refs_of(&v.schema))
                .and_then(|p| columns_of(&p, column))
            {
                Ok(c) => Some((c, v, subject)),
                Err(e) => {
                    problems.push(format!("subject '{subject}': {e}"));
                    None
                }
            }
        };
    let value = part("value", "val");
    // Keys are typed alongside a typed value (a key subject alone leaves
    // the table raw).
    let mut key = if value.is_some() {
        part("key", "key")
    } else {
        None
    };
    // A JSON key that is not an object has no columns to decode it into.
    if let Some((_, v, subject)) = &key {
        let object = v.schema.schema_type != SchemaType::Json
            || serde_json::from_str::<Value>(&v.schema.schema)
                .ok()
                .is_some_and(|j| json_inner(&j).get("properties").is_some());
        if !object {
            problems.push(format!(
                "subject '{subject}': a JSON Schema key that is not an object stays raw bytes"
            ));
            key = None;
        }
    }
    for which in ["key", "value"] {
        if let Some(s) = table.option(&format!("{which}.subject")) {
            def.options
                .insert(format!("{which}.subject"), s.to_string());
        }
    }
    // Key and value columns share one namespace: a key whose fields a
    // value field shadows stays raw.
    if let (Some((k, _, subject)), Some((v, _, _))) = (&key, &value) {
        if let Some(c) = k.iter().find(|c| v.iter().any(|w| w.name == c.name)) {
            problems.push(format!(
                "subject '{subject}': the key field '{}' has the name of a value field; the key stays raw bytes",
                c.name
            ));
            key = None;
        }
    }
    if key.is_none() && value.is_none() {
        return (def, problems);
    }
    let (key_cols, value_cols) = (
        key.as_ref().map(|k| k.0.clone()),
        value.as_ref().map(|v| v.0.clone()),
    );
    let raw = |name: &str| ColumnSpec {
        name: name.to_string(),
        data_type: SqlType::Bytes,
        nullable: true,
        kind: ColumnKind::Physical,
        comment: None,
    };
    let key_cols = key_cols.unwrap_or_else(|| {
        // The raw key column keeps its name unless a value field has it.
        let taken = value_cols
            .as_ref()
            .is_some_and(|v| v.iter().any(|c| c.name == "key"));
        vec![raw(if taken { "__key" } else { "key" })]
    });
    let value_cols = value_cols.unwrap_or_else(|| vec![raw("val")]);
    def.options.insert(
        "key.fields".into(),
        key_cols
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(";"),
    );
    def.columns = key_cols.into_iter().chain(value_cols).collect();
    for (which, found) in [("key", &key), ("value", &value)] {
        if let Some((_, v, subject)) = found {
            def.options.insert(
                format!("{which}.format"),
                v.schema.schema_type.format().into(),
            );
            def.options
                .insert(format!("{which}.schema-id"), v.schema.id.to_string());
            def.options
                .insert(format!("{which}.subject"), subject.clone());
        }
    }
    (def, problems)
}

/// Brings the discovered tables of one cluster in line with the registry's
/// subjects; returns the names of the tables it changed, and the subjects
/// it could not map (with why).
pub async fn sync_schemas(
    store: &crate::Store,
    org: &str,
    env: &str,
    cluster: &str,
) -> Result<(Vec<String>, Vec<String>), crate::CatalogError> {
    let (latest, all) = SchemaRegistry::of(store, org, env).await?.latest().await?;
    let refs_of = |s: &RegisteredSchema| -> Vec<(String, String)> {
        s.references
            .iter()
            .filter_map(|r| {
                all.iter()
                    .rev()
                    .find(|v| v.subject == r.subject && (r.version == -1 || v.version == r.version))
                    .map(|v| (r.name.clone(), v.schema.schema.clone()))
            })
            .collect()
    };
    let by_subject: HashMap<&str, &SubjectVersion> =
        latest.iter().map(|v| (v.subject.as_str(), v)).collect();
    let mut changed = vec![];
    let mut problems = vec![];
    for t in store.list_tables(org, env, cluster).await? {
        if t.origin != crate::TableOrigin::Discovered || t.view.is_some() {
            continue;
        }
        let (want, problem) = registry_table(&t, &by_subject, &refs_of);
        problems.extend(problem);
        // Only while it is still the discovered table read above: a
        // `CREATE TABLE` of its topic may have replaced it meanwhile.
        if want != t
            && store
                .replace_discovered_table(org, env, cluster, &want)
                .await?
        {
            changed.push(t.name.clone());
        }
    }
    Ok((changed, problems))
}

/// The `.proto` schema Weir registers for columns it writes as
/// `proto-registry`: one message `Row` with a field per column, numbered
/// in column order; nullable scalars are `optional` (so a NULL is absent,
/// not a zero), `ROW` columns nested messages, `ARRAY` repeated fields,
/// `MAP` map fields, timestamps `google.protobuf.Timestamp`.
pub fn proto_schema_of(columns: &[(String, SqlType, bool)]) -> Result<String, String> {
    let mut nested = vec![];
    let mut uses_timestamp = false;
    let body = proto_message("Row", columns, &mut nested, &mut uses_timestamp, 1)?;
    let mut out = String::from("syntax = \"proto3\";\npackage weir.generated;\n");
    if uses_timestamp {
        out.push_str("import \"google/protobuf/timestamp.proto\";\n");
    }
    out.push('\n');
    out.push_str(&body);
    Ok(out)
}

fn proto_message(
    name: &str,
    columns: &[(String, SqlType, bool)],
    nested: &mut Vec<String>,
    ts: &mut bool,
    depth: usize,
) -> Result<String, String> {
    let indent = "  ".repeat(depth - 1);
    let mut fields = vec![];
    let mut inner = vec![];
    for (i, (col, t, nullable)) in columns.iter().enumerate() {
        let number = i + 1;
        let (decl, msg) = proto_field(col, t, *nullable, ts, depth)?;
        if let Some(m) = msg {
            inner.push(m);
        }
        fields.push(format!("{indent}  {decl} = {number};"));
    }
    let _ = nested;
    Ok(format!(
        "{indent}message {name} {{\n{}{}\n{indent}}}\n",
        inner.join(""),
        fields.join("\n")
    ))
}

/// A scalar's Protobuf type name.
fn proto_scalar(t: &SqlType, ts: &mut bool) -> Option<&'static str> {
    Some(match t {
        SqlType::Boolean => "bool",
        SqlType::TinyInt | SqlType::SmallInt | SqlType::Int => "int32",
        SqlType::BigInt => "int64",
        SqlType::Float => "float",
        SqlType::Double => "double",
        SqlType::Char { .. }
        | SqlType::Varchar { .. }
        | SqlType::String
        | SqlType::Decimal { .. } => "string",
        SqlType::Binary { .. } | SqlType::Varbinary { .. } | SqlType::Bytes => "bytes",
        SqlType::Date | SqlType::Time { .. } => "int32",
        SqlType::Timestamp { .. } | SqlType::TimestampLtz { .. } => {
            *ts = true;
            "google.protobuf.Timestamp"
        }
        _ => return None,
    })
}

fn proto_field(
    col: &str,
    t: &SqlType,
    nullable: bool,
    ts: &mut bool,
    depth: usize,
) -> Result<(String, Option<String>), String> {
    if let Some(s) = proto_scalar(t, ts) {
        let message = s.starts_with("google.");
        let opt = if nullable && !message {
            "optional "
        } else {
            ""
        };
        return Ok((format!("{opt}{s} {col}"), None));
    }
    match t {
        SqlType::Array { element, .. } => {
            if let Some(s) = proto_scalar(element, ts) {
                return Ok((format!("repeated {s} {col}"), None));
            }
            if let SqlType::Row { fields } = element.as_ref() {
                let name = format!("{}Item", message_name(col));
                let cols: Vec<_> = fields
                    .iter()
                    .map(|f| (f.name.clone(), f.data_type.clone(), f.nullable))
                    .collect();
                let m = proto_message(&name, &cols, &mut vec![], ts, depth + 1)?;
                return Ok((format!("repeated {name} {col}"), Some(m)));
            }
            Err(format!(
                "column '{col}': an array of {element} cannot be written as Protobuf"
            ))
        }
        SqlType::Map { key, value, .. } => {
            let k = match key.as_ref() {
                SqlType::Char { .. } | SqlType::Varchar { .. } | SqlType::String => "string",
                SqlType::Int | SqlType::SmallInt | SqlType::TinyInt => "int32",
                SqlType::BigInt => "int64",
                SqlType::Boolean => "bool",
                other => {
                    return Err(format!(
                        "column '{col}': a map with {other} keys cannot be written as Protobuf"
                    ))
                }
            };
            let v = proto_scalar(value, ts).ok_or_else(|| {
                format!("column '{col}': a map of {value} values cannot be written as Protobuf")
            })?;
            Ok((format!("map<{k}, {v}> {col}"), None))
        }
        SqlType::Row { fields } => {
            let name = message_name(col);
            let cols: Vec<_> = fields
                .iter()
                .map(|f| (f.name.clone(), f.data_type.clone(), f.nullable))
                .collect();
            let m = proto_message(&name, &cols, &mut vec![], ts, depth + 1)?;
            Ok((format!("{name} {col}"), Some(m)))
        }
        other => Err(format!(
            "column '{col}': {other} cannot be written as Protobuf"
        )),
    }
}

/// A message name for a column: `line_items` gives `LineItems`.
fn message_name(col: &str) -> String {
    let mut out = String::new();
    let mut up = true;
    for c in col.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(if up { c.to_ascii_uppercase() } else { c });
            up = false;
        } else {
            up = true;
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'M');
    }
    out
}

/// The JSON Schema Weir registers for columns it writes as
/// `json-registry`: an object with a property per column, nullable ones as
/// a union with `null`.
pub fn json_schema_of(columns: &[(String, SqlType, bool)]) -> Value {
    let props: serde_json::Map<String, Value> = columns
        .iter()
        .map(|(n, t, nullable)| (n.clone(), json_schema_type(t, *nullable)))
        .collect();
    let required: Vec<&String> = columns.iter().filter(|c| !c.2).map(|c| &c.0).collect();
    serde_json::json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "record",
        "type": "object",
        "properties": props,
        "required": required,
    })
}

fn json_schema_type(t: &SqlType, nullable: bool) -> Value {
    use serde_json::json;
    let (ty, extra): (&str, Value) = match t {
        SqlType::Boolean => ("boolean", json!({})),
        SqlType::TinyInt | SqlType::SmallInt | SqlType::Int | SqlType::BigInt => {
            ("integer", json!({}))
        }
        SqlType::Float | SqlType::Double | SqlType::Decimal { .. } => ("number", json!({})),
        SqlType::Date => ("string", json!({"format": "date"})),
        SqlType::TimestampLtz { .. } | SqlType::Timestamp { .. } => {
            ("string", json!({"format": "date-time"}))
        }
        SqlType::Array {
            element,
            element_nullable,
        } => (
            "array",
            json!({"items": json_schema_type(element, *element_nullable)}),
        ),
        SqlType::Map {
            value,
            value_nullable,
            ..
        } => (
            "object",
            json!({"additionalProperties": json_schema_type(value, *value_nullable)}),
        ),
        SqlType::Row { fields } => {
            let props: serde_json::Map<String, Value> = fields
                .iter()
                .map(|f| (f.name.clone(), json_schema_type(&f.data_type, f.nullable)))
                .collect();
            ("object", json!({"properties": props}))
        }
        _ => ("string", json!({})),
    };
    let mut v = extra;
    v["type"] = if nullable {
        json!([ty, "null"])
    } else {
        json!(ty)
    };
    v
}

/// The schema Weir registers for a table's value columns in its
/// `'value.format'` (`avro-registry`, `json-registry` or `proto-registry`),
/// and the subject it goes under (`'value.subject'`, else `<topic>-value`).
pub fn schema_for_table(table: &crate::TableDef) -> Result<(SchemaType, String, String), String> {
    schema_for_part(table, Part::Value)
}

/// A Kafka record's two halves, each with a format and a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Key,
    Value,
}

impl Part {
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Key => "key",
            Part::Value => "value",
        }
    }

    /// The table's `'key.format'` / `'value.format'`.
    pub fn format(self, table: &crate::TableDef) -> &str {
        match self {
            Part::Key => table.option("key.format").unwrap_or("raw"),
            Part::Value => table.value_format(),
        }
    }

    /// The subject the part's schema is under: `'key.subject'` /
    /// `'value.subject'`, else `<topic>-key` / `<topic>-value`.
    pub fn subject(self, table: &crate::TableDef) -> String {
        table
            .option(&format!("{}.subject", self.as_str()))
            .map(str::to_string)
            .unwrap_or_else(|| format!("{}-{}", table.topic, self.as_str()))
    }
}

/// The schema Weir registers for a table's key columns (`Part::Key`, in
/// `'key.format'`: a record of the `'key.fields'`) or value columns, and
/// the subject it goes under.
pub fn schema_for_part(
    table: &crate::TableDef,
    part: Part,
) -> Result<(SchemaType, String, String), String> {
    let cols: Vec<(String, SqlType, bool)> = match part {
        Part::Value => table
            .value_columns()
            .iter()
            .map(|c| (c.name.clone(), c.data_type.clone(), c.nullable))
            .collect(),
        Part::Key => table
            .key_columns()
            .iter()
            .map(|k| {
                table
                    .columns
                    .iter()
                    .find(|c| &c.name == k)
                    .map(|c| (c.name.clone(), c.data_type.clone(), c.nullable))
                    .ok_or_else(|| format!("the key field '{k}' is not a column"))
            })
            .collect::<Result<_, _>>()?,
    };
    if cols.is_empty() {
        return Err(format!(
            "a '{}.format' needs {} columns",
            part.as_str(),
            part.as_str()
        ));
    }
    let subject = part.subject(table);
    match part.format(table) {
        "avro-registry" | "avro" => Ok((
            SchemaType::Avro,
            avro_schema_of(&cols)?.to_string(),
            subject,
        )),
        "json-registry" => Ok((SchemaType::Json, json_schema_of(&cols).to_string(), subject)),
        "proto-registry" => Ok((SchemaType::Protobuf, proto_schema_of(&cols)?, subject)),
        other => Err(format!(
            "the '{other}' format has no schema Weir registers for a table's {}",
            part.as_str()
        )),
    }
}

/// Why a registration was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// Not a valid schema (the registry's 42201).
    #[error("{0}")]
    Invalid(String),
    /// Not compatible with the subject's earlier versions (409).
    #[error("{0}")]
    Incompatible(String),
    #[error(transparent)]
    Store(#[from] crate::CatalogError),
}

/// The texts of a schema's references, each resolved to its subject's
/// version (42201 when one is missing).
pub async fn reference_texts(
    store: &crate::Store,
    org: &str,
    env: &str,
    refs: &[SchemaReference],
) -> Result<Vec<(String, String)>, RegisterError> {
    let mut out = vec![];
    for r in refs {
        let versions = store.registry_versions(org, env, &r.subject, false).await?;
        let v = if r.version == -1 {
            versions.last()
        } else {
            versions.iter().find(|v| v.version == r.version)
        };
        let v = v.ok_or_else(|| {
            RegisterError::Invalid(format!(
                "Invalid schema: the reference '{}' names subject '{}' version {}, which does not exist",
                r.name, r.subject, r.version
            ))
        })?;
        out.push((r.name.clone(), v.schema.schema.clone()));
    }
    Ok(out)
}

pub async fn parsed(
    store: &crate::Store,
    org: &str,
    env: &str,
    s: &RegisteredSchema,
) -> Result<ParsedSchema, RegisterError> {
    let refs = reference_texts(store, org, env, &s.references).await?;
    parse(s.schema_type, &s.schema, &refs).map_err(RegisterError::Invalid)
}

pub async fn level_of(
    store: &crate::Store,
    org: &str,
    env: &str,
    subject: &str,
) -> Result<Compatibility, RegisterError> {
    if let Some(l) = store.registry_compatibility(org, env, subject).await? {
        return Ok(l);
    }
    Ok(store
        .registry_compatibility(org, env, "")
        .await?
        .unwrap_or_default())
}

/// Registers a schema under a subject after checking it against the
/// subject's compatibility level: its id (the existing one when the subject
/// has the schema already). The REST API, `CREATE TABLE` and statements'
/// sinks all register through here.
pub async fn register_schema(
    store: &crate::Store,
    org: &str,
    env: &str,
    subject: &str,
    ty: SchemaType,
    text: &str,
    references: &[SchemaReference],
) -> Result<i64, RegisterError> {
    let refs = reference_texts(store, org, env, references).await?;
    let new = parse(ty, text, &refs).map_err(RegisterError::Invalid)?;
    let norm = normalized(ty, text);
    let live = store.registry_versions(org, env, subject, false).await?;
    // The same schema again is its existing version, whatever the level.
    if let Some(v) = live.iter().find(|v| {
        v.schema.schema_type == ty
            && normalized(ty, &v.schema.schema) == norm
            && v.schema.references == references
    }) {
        return Ok(v.schema.id);
    }
    let level = level_of(store, org, env, subject).await?;
    let mut previous = Vec::with_capacity(live.len());
    for v in &live {
        previous.push(parsed(store, org, env, &v.schema).await?);
    }
    let why = incompatibilities(level, &new, &previous);
    if !why.is_empty() {
        return Err(RegisterError::Incompatible(format!(
                "Schema being registered is incompatible with an earlier schema for subject \"{subject}\" ({}): {}",
                level.as_str(),
                why.join("; ")
        )));
    }
    let r = store
        .registry_register(org, env, subject, ty, text, &norm, references)
        .await?;
    tracing::info!(
        org,
        env,
        subject,
        id = r.id,
        version = r.version,
        "schema registered"
    );
    Ok(r.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn avro(s: &str) -> ParsedSchema {
        parse(SchemaType::Avro, s, &[]).unwrap()
    }

    const V1: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"int"},{"name":"name","type":"string"}]}"#;

    #[test]
    fn adding_an_optional_field_and_widening_is_backward_compatible() {
        let v2 = avro(
            r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"},{"name":"name","type":"string"},{"name":"email","type":["null","string"],"default":null}]}"#,
        );
        assert!(incompatibilities(Compatibility::Backward, &v2, &[avro(V1)]).is_empty());
        // Forward fails: a v1 reader cannot read a long id.
        assert!(!incompatibilities(Compatibility::Forward, &v2, &[avro(V1)]).is_empty());
    }

    #[test]
    fn adding_a_required_field_is_not_backward_compatible() {
        let v2 = avro(
            r#"{"type":"record","name":"User","fields":[{"name":"id","type":"int"},{"name":"name","type":"string"},{"name":"age","type":"int"}]}"#,
        );
        let why = incompatibilities(Compatibility::Backward, &v2, &[avro(V1)]);
        assert!(!why.is_empty());
        assert!(why[0].contains("age"), "{why:?}");
        assert!(incompatibilities(Compatibility::None, &v2, &[avro(V1)]).is_empty());
    }

    #[test]
    fn transitive_checks_every_version() {
        let v1 = avro(V1);
        let v2 = avro(r#"{"type":"record","name":"User","fields":[{"name":"id","type":"int"}]}"#);
        // v3 adds `name` back as an int: fine against v2, not against v1.
        let v3 = avro(
            r#"{"type":"record","name":"User","fields":[{"name":"id","type":"int"},{"name":"name","type":"int","default":0}]}"#,
        );
        let prev = [v1, v2];
        assert!(incompatibilities(Compatibility::Backward, &v3, &prev).is_empty());
        assert!(!incompatibilities(Compatibility::BackwardTransitive, &v3, &prev).is_empty());
    }

    #[test]
    fn avro_references_are_inlined_at_their_first_use() {
        let address = r#"{"type":"record","name":"Address","namespace":"com.acme",
            "fields":[{"name":"city","type":"string"},
                      {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["HOME","WORK"]}}]}"#;
        let user = r#"{"type":"record","name":"User","namespace":"com.acme","fields":[
            {"name":"id","type":"long"},
            {"name":"home","type":"Address"},
            {"name":"work","type":["null","com.acme.Address"],"default":null},
            {"name":"kinds","type":{"type":"array","items":"com.acme.Kind"}}]}"#;
        let refs = vec![("com.acme.Address".to_string(), address.to_string())];
        // Without its reference the schema does not stand alone...
        assert!(parse(SchemaType::Avro, user, &[]).is_err());
        let inlined = inline_avro_references(user, &refs).unwrap();
        // ...with the definitions inlined it does, and types the same columns.
        let alone = parse(SchemaType::Avro, &inlined, &[]).unwrap();
        let with_refs = parse(SchemaType::Avro, user, &refs).unwrap();
        assert_eq!(
            columns_of(&alone, "value").unwrap(),
            columns_of(&with_refs, "value").unwrap()
        );
        // The definition appears once; later uses stay names.
        assert_eq!(inlined.matches("\"city\"").count(), 1, "{inlined}");
        assert_eq!(inlined.matches("\"symbols\"").count(), 1, "{inlined}");
        // No references: the text as it was.
        assert_eq!(inline_avro_references(address, &[]).unwrap(), address);
    }

    #[test]
    fn invalid_avro_is_refused_with_the_reason() {
        let e = parse(SchemaType::Avro, r#"{"type":"record","name":"x"}"#, &[]).unwrap_err();
        assert!(e.starts_with("Invalid schema"), "{e}");
        assert!(parse(SchemaType::Avro, "{", &[]).is_err());
        assert!(parse(SchemaType::Json, r#"{"type":"strng"}"#, &[]).is_err());
    }

    #[test]
    fn avro_types_map_to_flink_sql_types() {
        let s = avro(
            r#"{"type":"record","name":"R","namespace":"n","fields":[
              {"name":"b","type":"boolean"},{"name":"i","type":"int"},{"name":"l","type":["null","long"]},
              {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}},
              {"name":"e2","type":"E"},
              {"name":"a","type":{"type":"array","items":"string"}},
              {"name":"m","type":{"type":"map","values":["null","double"]}},
              {"name":"f","type":{"type":"fixed","name":"F","size":4}},
              {"name":"d","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
              {"name":"dt","type":{"type":"int","logicalType":"date"}},
              {"name":"tm","type":{"type":"int","logicalType":"time-millis"}},
              {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
              {"name":"lts","type":{"type":"long","logicalType":"local-timestamp-micros"}},
              {"name":"u","type":{"type":"string","logicalType":"uuid"}},
              {"name":"r","type":{"type":"record","name":"In","fields":[{"name":"x","type":"float"}]}}]}"#,
        );
        let cols = columns_of(&s, "val").unwrap();
        let t: Vec<(String, String, bool)> = cols
            .iter()
            .map(|c| (c.name.clone(), c.data_type.to_string(), c.nullable))
            .collect();
        let want = [
            ("b", "BOOLEAN", false),
            ("i", "INT", false),
            ("l", "BIGINT", true),
            ("e", "STRING", false),
            ("e2", "STRING", false),
            ("a", "ARRAY<STRING NOT NULL>", false),
            ("m", "MAP<STRING, DOUBLE>", false),
            ("f", "BINARY(4)", false),
            ("d", "DECIMAL(9, 2)", false),
            ("dt", "DATE", false),
            ("tm", "TIME(3)", false),
            ("ts", "TIMESTAMP_LTZ(3)", false),
            ("lts", "TIMESTAMP(6)", false),
            ("u", "STRING", false),
            ("r", "ROW<`x` FLOAT NOT NULL>", false),
        ];
        for (got, want) in t.iter().zip(want) {
            assert_eq!((got.0.as_str(), got.1.as_str(), got.2), want);
        }
        let bad =
            avro(r#"{"type":"record","name":"R","fields":[{"name":"u","type":["int","string"]}]}"#);
        let e = columns_of(&bad, "val").unwrap_err();
        assert!(e.contains("'u'") && e.contains("union"), "{e}");
    }

    #[test]
    fn a_record_that_contains_itself_is_refused_not_followed_forever() {
        let s = avro(
            r#"{"type":"record","name":"Node","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","Node"],"default":null}]}"#,
        );
        let e = columns_of(&s, "val").unwrap_err();
        assert!(e.contains("recursive"), "{e}");
        let p = parse(
            SchemaType::Protobuf,
            "syntax = \"proto3\"; message Node { int32 v = 1; repeated Node children = 2; map<string, Node> named = 3; }",
            &[],
        )
        .unwrap();
        let e = columns_of(&p, "val").unwrap_err();
        assert!(e.contains("nests itself"), "{e}");
    }

    #[test]
    fn json_schema_refs_are_followed_and_a_self_reference_is_refused() {
        let s = r##"{"type":"object","definitions":{"Money":{"type":"object","properties":{"cents":{"type":"integer"},"currency":{"type":"string"}},"required":["cents"]}},
            "properties":{"id":{"type":"integer"},"total":{"$ref":"#/definitions/Money"},"tax":{"oneOf":[{"type":"null"},{"$ref":"#/definitions/Money"}]},"paid":{"$ref":"addr.json#/definitions/When"}},"required":["id","total"]}"##;
        let refs = vec![(
            "addr.json".to_string(),
            r#"{"definitions":{"When":{"type":"string","format":"date-time"}}}"#.to_string(),
        )];
        let p = parse(SchemaType::Json, s, &refs).unwrap();
        let cols = columns_of(&p, "val").unwrap();
        let ty = |n: &str| {
            let c = cols.iter().find(|c| c.name == n).unwrap();
            (c.data_type.to_string(), c.nullable)
        };
        assert_eq!(
            ty("total").0,
            "ROW<`cents` BIGINT NOT NULL, `currency` STRING>"
        );
        assert!(!ty("total").1);
        assert!(ty("tax").1);
        assert_eq!(ty("paid").0, "TIMESTAMP_LTZ(3)");
        // A reference that is not given, and a schema that contains itself.
        assert!(parse(SchemaType::Json, s, &[])
            .unwrap_err()
            .contains("addr.json"));
        // Definitions that each use the next twice stop at a size limit.
        let mut defs = serde_json::Map::new();
        for i in 0..30 {
            defs.insert(
                format!("D{i}"),
                serde_json::json!({"type": "object", "properties": {
                    "a": {"$ref": format!("#/definitions/D{}", i + 1)},
                    "b": {"$ref": format!("#/definitions/D{}", i + 1)}}}),
            );
        }
        defs.insert("D30".into(), serde_json::json!({"type": "integer"}));
        let wide = serde_json::json!({"definitions": defs, "$ref": "#/definitions/D0"}).to_string();
        assert!(parse(SchemaType::Json, &wide, &[])
            .unwrap_err()
            .contains("more than"));
        let own = r##"{"type":"object","properties":{"next":{"$ref":"#"}}}"##;
        assert!(parse(SchemaType::Json, own, &[])
            .unwrap_err()
            .contains("contains itself"));
    }

    #[test]
    fn json_schema_maps_and_checks() {
        let v1 = parse(
            SchemaType::Json,
            r#"{"type":"object","properties":{"id":{"type":"integer"},"at":{"type":"string","format":"date-time"},"n":{"oneOf":[{"type":"null"},{"type":"number"}]}},"required":["id"]}"#,
            &[],
        )
        .unwrap();
        let cols = columns_of(&v1, "val").unwrap();
        let t: Vec<(String, String, bool)> = cols
            .iter()
            .map(|c| (c.name.clone(), c.data_type.to_string(), c.nullable))
            .collect();
        assert_eq!(
            t,
            vec![
                ("at".into(), "TIMESTAMP_LTZ(3)".into(), true),
                ("id".into(), "BIGINT".into(), false),
                ("n".into(), "DOUBLE".into(), true),
            ]
        );
        let v2 = parse(
            SchemaType::Json,
            r#"{"type":"object","properties":{"id":{"type":"integer"},"x":{"type":"string"}},"required":["id","x"]}"#,
            &[],
        )
        .unwrap();
        let why = incompatibilities(Compatibility::Backward, &v2, &[v1]);
        assert!(why.iter().any(|m| m.contains("'x'")), "{why:?}");
    }

    #[test]
    fn written_columns_give_a_proto_schema_that_compiles_and_maps_back() {
        let cols = vec![
            ("id".to_string(), SqlType::BigInt, false),
            ("name".to_string(), SqlType::String, true),
            (
                "at".to_string(),
                SqlType::TimestampLtz { precision: 9 },
                true,
            ),
            (
                "tags".to_string(),
                SqlType::Array {
                    element: Box::new(SqlType::String),
                    element_nullable: false,
                },
                false,
            ),
            (
                "line_item".to_string(),
                SqlType::Row {
                    fields: vec![RowField {
                        name: "qty".into(),
                        data_type: SqlType::Int,
                        nullable: true,
                    }],
                },
                true,
            ),
        ];
        let text = proto_schema_of(&cols).unwrap();
        let parsed = parse(SchemaType::Protobuf, &text, &[]).unwrap();
        let back: Vec<(String, SqlType, bool)> = columns_of(&parsed, "val")
            .unwrap()
            .into_iter()
            .map(|c| (c.name, c.data_type, c.nullable))
            .collect();
        assert_eq!(back, cols, "{text}");
        let e = proto_schema_of(&[("i".into(), SqlType::IntervalDayTime, false)]).unwrap_err();
        assert!(e.contains("'i'"), "{e}");
    }

    #[test]
    fn written_columns_give_a_valid_avro_schema_that_maps_back() {
        let cols = vec![
            ("id".to_string(), SqlType::BigInt, false),
            ("name".to_string(), SqlType::String, true),
            (
                "at".to_string(),
                SqlType::TimestampLtz { precision: 3 },
                true,
            ),
            (
                "tags".to_string(),
                SqlType::Array {
                    element: Box::new(SqlType::String),
                    element_nullable: true,
                },
                true,
            ),
        ];
        let schema = avro_schema_of(&cols).unwrap();
        let parsed = avro(&schema.to_string());
        let back = columns_of(&parsed, "val").unwrap();
        let back: Vec<(String, SqlType, bool)> = back
            .into_iter()
            .map(|c| (c.name, c.data_type, c.nullable))
            .collect();
        assert_eq!(back, cols);
    }
}
