//! The conformance corpus's cases (`tests/sql/*.yaml`) as data: read by
//! the conformance harness, and by the fuzzer as seeds to mutate.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use libtest_mimic::Failed;
use serde::{Deserialize, Serialize};
use weir_compute_pool::{MemoryPoll, MemoryRecord};
use weir_sql_gateway::{CatalogContext, Planner};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    #[serde(default)]
    pub tables: Vec<String>,
    #[serde(default)]
    pub input: Vec<Input>,
    pub sql: String,
    #[serde(default)]
    pub expect: Option<Vec<String>>,
    #[serde(default)]
    pub order: Order,
    #[serde(default)]
    pub skipped: u64,
    /// Records window operators dropped as late.
    #[serde(default)]
    pub late: u64,
    /// Rows or groups stateful operators hold at the end, when given.
    #[serde(default)]
    pub held: Option<usize>,
    #[serde(default)]
    pub error: Option<String>,
    /// Statement properties (`sql.tables.scan.idle-timeout`).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Why Weir's changelog differs from the one Apache Flink emitted for
    /// this case (`<file>.flink.json`); checked to still differ.
    #[serde(default)]
    pub flink: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    #[default]
    Strict,
    Any,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The table; may be left out when the case has one table.
    #[serde(default)]
    pub t: Option<String>,
    #[serde(default)]
    pub p: i32,
    #[serde(default)]
    pub ts: i64,
    #[serde(default)]
    pub key: Option<String>,
    /// Record headers, in order.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// A JSON value, written as YAML.
    #[serde(default)]
    pub v: Option<serde_json::Value>,
    /// The value's bytes, as given.
    #[serde(default)]
    pub raw: Option<String>,
    /// Processing time of the poll, in milliseconds (default: the previous
    /// record's).
    #[serde(default)]
    pub at: Option<i64>,
}

/// The cases of `tests/sql/<stem>.yaml` alone, or of every corpus file,
/// as `(file stem, case)`, files in name order.
pub fn load_cases_of(stem: Option<&str>) -> Vec<(String, Case)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sql");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/sql exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| stem.is_none_or(|s| p.file_stem().is_some_and(|f| f == s)))
        .collect();
    files.sort();
    let mut out = vec![];
    for file in files {
        let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&file).unwrap();
        let cases: Vec<Case> =
            serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        out.extend(cases.into_iter().map(|c| (stem.clone(), c)));
    }
    out
}

pub fn catalog(tables: &[String]) -> Result<CatalogContext, Failed> {
    let ddl: Vec<&str> = tables.iter().map(String::as_str).collect();
    CatalogContext::from_ddl(&Planner::new(), &ddl).map_err(|e| format!("DDL {ddl:?}: {e}").into())
}

pub fn polls(input: &[Input], ctx: &CatalogContext) -> Result<Vec<MemoryPoll>, Failed> {
    let mut next_offset: BTreeMap<(String, i32), i64> = BTreeMap::new();
    let mut polls: Vec<MemoryPoll> = vec![];
    let mut at = 0;
    for input in input {
        at = input.at.unwrap_or(at);
        let table = match (&input.t, ctx.tables.as_slice()) {
            (Some(t), _) => t.clone(),
            (None, [(_, only)]) => only.name.clone(),
            (None, _) => {
                return Err("an input record without `t` in a case of several tables".into())
            }
        };
        let def = ctx
            .tables
            .iter()
            .find(|(_, d)| d.name == table)
            .ok_or_else(|| format!("input for unknown table {table}"))?;
        let offset = next_offset.entry((table.clone(), input.p)).or_insert(0);
        let value = match (&input.v, &input.raw) {
            (Some(v), None) => Some(v.to_string().into_bytes()),
            (None, Some(r)) => Some(r.clone().into_bytes()),
            (None, None) => None,
            _ => return Err("an input record with both `v` and `raw`".into()),
        };
        let record = MemoryRecord {
            partition: input.p,
            offset: *offset,
            timestamp_ms: input.ts,
            key: input.key.clone().map(String::into_bytes),
            value,
            headers: input
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone().into_bytes())))
                .collect(),
        };
        *offset += 1;
        polls.push(MemoryPoll {
            topic: def.1.topic.clone(),
            records: vec![record],
            at_ms: at,
        });
    }
    Ok(polls)
}
