//! Event-time temporal joins (`JOIN versioned FOR SYSTEM_TIME AS OF l.ts`),
//! as Flink's `TemporalRowTimeJoinOperator` runs them.
//!
//! The right input is a versioned table's update stream: each `+I`/`+U`
//! is the key's version from its row's time on. Left rows wait until the
//! watermark passes their time; then, in time order, each is joined with
//! the version of its key valid at its time (the latest at or before it),
//! and emitted once (append-only). Without one, an inner join drops the
//! row and a left join pads it with NULLs. A `-D` ends the key's versions
//! from the watermark at which it arrives (a tombstone carries no time of
//! its own); `-U` is ignored. Versions older than the last one the
//! watermark passed are dropped: no later left row can need them.
//!
//! On processing time (`AS OF` a `PROCTIME()` attribute), Flink's lookup
//! join: each key holds only its latest row (`-D` removes it), and each
//! left row is joined with it, or padded or dropped, as it arrives. What
//! it is joined with depends on how far the right input has been read.

use crate::hash::{HashMap, HashSet};
use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::DFSchema;
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::{create_physical_expr, PhysicalExpr};
use weir_sql_gateway::JoinKind;

use crate::operators::changelog::{Changes, DELETE, UPDATE_BEFORE};
use crate::operators::group::{emitted_schema, row_converter, sort_fields};
use crate::runtime::checkpoint::{StageState, TaggedRows};
use crate::EngineError;

type Bytes = Box<[u8]>;

/// Snapshot tags: a left row waiting for the watermark, a version.
const LEFT_ROW: i8 = 0;
const VERSION: i8 = 1;

/// One input's key and time expressions and row format.
struct Side {
    keys: Vec<Arc<dyn PhysicalExpr>>,
    key_rows: RowConverter,
    time: Arc<dyn PhysicalExpr>,
    rows: RowConverter,
    types: Vec<DataType>,
}

impl Side {
    fn new(keys: &[Expr], time: &Expr, schema: &DFSchema) -> Result<Side, EngineError> {
        let props = ExecutionProps::new();
        let phys = |e: &Expr| create_physical_expr(e, schema, &props, &Default::default());
        let keys = keys.iter().map(phys).collect::<Result<Vec<_>, _>>()?;
        let key_types = keys
            .iter()
            .map(|k| k.data_type(schema.as_arrow()).map(SortField::new))
            .collect::<Result<Vec<_>, _>>()?;
        let types: Vec<DataType> = schema
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        Ok(Side {
            key_rows: row_converter(key_types, "a temporal join input")?,
            rows: row_converter(sort_fields(&types), "a temporal join input")?,
            time: phys(time)?,
            keys,
            types,
        })
    }

    /// Each row's key (`None` when a key column is NULL), time and row.
    #[allow(clippy::type_complexity)]
    fn split(
        &self,
        batch: &RecordBatch,
    ) -> Result<(Rows, Vec<bool>, Vec<Option<i64>>, Rows), EngineError> {
        let n = batch.num_rows();
        let cols = self
            .keys
            .iter()
            .map(|k| k.evaluate(batch).and_then(|v| v.into_array(n)))
            .collect::<Result<Vec<ArrayRef>, _>>()?;
        let valid = (0..n).map(|i| cols.iter().all(|c| c.is_valid(i))).collect();
        let times = crate::operators::times_ms(&self.time, batch)?
            .iter()
            .collect();
        Ok((
            self.key_rows.convert_columns(&cols)?,
            valid,
            times,
            self.rows.convert_columns(batch.columns())?,
        ))
    }
}

pub struct TemporalJoin {
    left: Side,
    right: Side,
    outer: bool,
    output: SchemaRef,
    /// Left rows waiting for the watermark: time -> (key or None, row).
    pending: BTreeMap<i64, Vec<(Option<Bytes>, Bytes)>>,
    /// Per key, its versions by time (`None`: deleted from then on).
    versions: HashMap<Bytes, BTreeMap<i64, Option<Bytes>>>,
    /// Keys that may hold versions to prune: more than one, or a deletion.
    /// Pruning visits only these, not every key, at each watermark.
    prunable: HashSet<Bytes>,
    watermark: i64,
    /// A processing-time join: left rows are joined as they arrive with
    /// their key's latest row (held as its only version, at `i64::MIN`).
    proctime: bool,
}

impl std::fmt::Debug for TemporalJoin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TemporalJoin({} keys)", self.versions.len())
    }
}

impl TemporalJoin {
    pub fn new(
        kind: JoinKind,
        on: &[(Expr, Expr)],
        (left_schema, left_time): (&DFSchema, &Expr),
        (right_schema, right_time): (&DFSchema, &Expr),
        proctime: bool,
        output_schema: &DFSchema,
    ) -> Result<TemporalJoin, EngineError> {
        let (lk, rk): (Vec<Expr>, Vec<Expr>) = on.iter().cloned().unzip();
        Ok(TemporalJoin {
            left: Side::new(&lk, left_time, left_schema)?,
            right: Side::new(&rk, right_time, right_schema)?,
            outer: kind == JoinKind::Left,
            output: emitted_schema(output_schema),
            pending: BTreeMap::new(),
            versions: HashMap::default(),
            prunable: HashSet::default(),
            watermark: i64::MIN,
            proctime,
        })
    }

    /// Holds left rows and records right versions, emitting nothing: rows
    /// go out when the watermark passes them. On processing time, joins
    /// left rows at once and keeps each key's latest right row.
    pub fn process(
        &mut self,
        right: bool,
        c: &Changes,
    ) -> Result<Option<RecordBatch>, EngineError> {
        if self.proctime {
            return self.process_now(right, c);
        }
        if !right {
            let (keys, valid, times, rows) = self.left.split(&c.batch)?;
            for (i, t) in times.iter().enumerate() {
                // A row without a time can match no version.
                let t = t.unwrap_or(i64::MIN);
                let key = valid[i].then(|| keys.row(i).data().into());
                self.pending
                    .entry(t)
                    .or_default()
                    .push((key, rows.row(i).data().into()));
            }
            return Ok(None);
        }
        let (keys, valid, times, rows) = self.right.split(&c.batch)?;
        for i in 0..c.num_rows() {
            if !valid[i] {
                continue;
            }
            let key = keys.row(i).data();
            let versions = self.versions.entry(key.into()).or_default();
            match c.op(i) {
                UPDATE_BEFORE => {}
                DELETE => {
                    versions.insert(self.watermark.saturating_add(1), None);
                }
                _ => {
                    if let Some(t) = times[i] {
                        versions.insert(t, Some(rows.row(i).data().into()));
                    }
                }
            }
            let deleted = versions.values().any(Option::is_none);
            if (versions.len() > 1 || deleted) && !self.prunable.contains(key) {
                self.prunable.insert(key.into());
            }
        }
        Ok(None)
    }

    /// A processing-time join's batch: a right row replaces its key's row
    /// (`-D` removes it, `-U` changes nothing); left rows are joined now.
    fn process_now(
        &mut self,
        right: bool,
        c: &Changes,
    ) -> Result<Option<RecordBatch>, EngineError> {
        if right {
            let (keys, valid, _, rows) = self.right.split(&c.batch)?;
            for i in (0..c.num_rows()).filter(|i| valid[*i]) {
                let key = keys.row(i).data();
                match c.op(i) {
                    UPDATE_BEFORE => {}
                    DELETE => {
                        self.versions.remove(key);
                    }
                    _ => {
                        let row = Some(rows.row(i).data().into());
                        match self.versions.get_mut(key) {
                            Some(v) => *v = BTreeMap::from([(i64::MIN, row)]),
                            None => {
                                self.versions
                                    .insert(key.into(), BTreeMap::from([(i64::MIN, row)]));
                            }
                        }
                    }
                }
            }
            return Ok(None);
        }
        let (keys, valid, _, rows) = self.left.split(&c.batch)?;
        let mut lefts: Vec<Bytes> = vec![];
        let mut rights: Vec<Option<Bytes>> = vec![];
        for (i, ok) in valid.iter().enumerate() {
            let version = ok
                .then(|| self.versions.get(keys.row(i).data()))
                .flatten()
                .and_then(|v| v.values().next_back().cloned().flatten());
            if version.is_some() || self.outer {
                lefts.push(rows.row(i).data().into());
                rights.push(version);
            }
        }
        self.joined(lefts, rights)
    }

    /// Emits, in time order, the left rows whose time the watermark `wm`
    /// passed, each with its key's version at that time.
    pub fn advance(&mut self, wm: i64) -> Result<Option<RecordBatch>, EngineError> {
        self.watermark = self.watermark.max(wm);
        let rest = self.pending.split_off(&self.watermark.saturating_add(1));
        let due = std::mem::replace(&mut self.pending, rest);
        let mut lefts: Vec<Bytes> = vec![];
        let mut rights: Vec<Option<Bytes>> = vec![];
        for (t, rows) in due {
            for (key, row) in rows {
                let version = key
                    .as_ref()
                    .and_then(|k| self.versions.get(k))
                    .and_then(|v| v.range(..=t).next_back())
                    .and_then(|(_, r)| r.clone());
                if version.is_some() || self.outer {
                    lefts.push(row);
                    rights.push(version);
                }
            }
        }
        self.prune();
        self.joined(lefts, rights)
    }

    /// The output batch of left rows, each with its right row or NULLs.
    fn joined(
        &self,
        lefts: Vec<Bytes>,
        rights: Vec<Option<Bytes>>,
    ) -> Result<Option<RecordBatch>, EngineError> {
        if lefts.is_empty() {
            return Ok(None);
        }
        let n = lefts.len();
        let parser = self.left.rows.parser();
        let mut cols = self
            .left
            .rows
            .convert_rows(lefts.iter().map(|r| parser.parse(r)))?;
        // The right columns: matched rows, then NULLs moved into place.
        let matched: Vec<&Bytes> = rights.iter().flatten().collect();
        let parser = self.right.rows.parser();
        let found = self
            .right
            .rows
            .convert_rows(matched.iter().map(|r| parser.parse(r)))?;
        let mut k = 0u32;
        let idx: arrow::array::UInt32Array = rights
            .iter()
            .map(|r| {
                r.as_ref().map(|_| {
                    k += 1;
                    k - 1
                })
            })
            .collect();
        for (col, t) in found.iter().zip(&self.right.types) {
            cols.push(if matched.is_empty() {
                new_null_array(t, n)
            } else {
                arrow::compute::take(col.as_ref(), &idx, None)?
            });
        }
        Ok(Some(RecordBatch::try_new_with_options(
            self.output.clone(),
            cols,
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )?))
    }

    /// Drops the versions no left row can need any more: those before the
    /// last version at or before the watermark, and a key whose only
    /// version is a deletion the watermark passed. Only keys that may hold
    /// such versions are visited.
    fn prune(&mut self) {
        let wm = self.watermark;
        let versions = &mut self.versions;
        self.prunable.retain(|k| {
            let Some(v) = versions.get_mut(k) else {
                return false;
            };
            if let Some((&t, _)) = v.range(..=wm).next_back() {
                *v = v.split_off(&t);
            }
            if v.len() == 1
                && v.iter()
                    .next()
                    .is_some_and(|(t, r)| r.is_none() && *t <= wm)
            {
                versions.remove(k);
                return false;
            }
            v.len() > 1 || v.values().any(Option::is_none)
        });
    }

    /// Left rows waiting and versions held.
    pub fn state_size(&self) -> usize {
        self.pending.values().map(Vec::len).sum::<usize>()
            + self.versions.values().map(BTreeMap::len).sum::<usize>()
    }

    pub fn state_bytes(&self) -> usize {
        let pending: usize = self
            .pending
            .values()
            .flatten()
            .map(|(k, r)| k.as_ref().map_or(0, |k| k.len()) + r.len() + 48)
            .sum();
        let versions: usize = self
            .versions
            .iter()
            .map(|(k, v)| {
                k.len()
                    + v.values()
                        .map(|r| r.as_ref().map_or(0, |r| r.len()) + 40)
                        .sum::<usize>()
            })
            .sum();
        pending + versions
    }

    /// Waiting left rows and versions (a NULL row is a deletion), tagged,
    /// with times and keys, in one batch.
    pub fn snapshot(&self) -> Result<StageState, EngineError> {
        let mut held = TaggedRows::default();
        for (t, entries) in &self.pending {
            for (k, r) in entries {
                held.push(LEFT_ROW, *t, k.as_deref(), Some(r));
            }
        }
        for (k, v) in &self.versions {
            for (t, r) in v {
                held.push(VERSION, *t, Some(k), r.as_deref());
            }
        }
        let batch = held.into_batch()?;
        Ok(StageState {
            batches: vec![batch],
            meta: serde_json::json!({ "watermark": self.watermark }),
        })
    }

    pub fn restore(&mut self, state: &StageState) -> Result<(), EngineError> {
        self.pending.clear();
        self.versions.clear();
        self.prunable.clear();
        self.watermark = state.meta["watermark"].as_i64().unwrap_or(i64::MIN);
        for b in &state.batches {
            for (tag, t, key, row) in TaggedRows::read(b, "a temporal join")? {
                if tag == LEFT_ROW {
                    self.pending
                        .entry(t)
                        .or_default()
                        .push((key.map(Into::into), row.unwrap_or_default().into()));
                } else if let Some(k) = key {
                    self.versions
                        .entry(k.into())
                        .or_default()
                        .insert(t, row.map(Into::into));
                }
            }
        }
        self.prunable = self
            .versions
            .iter()
            .filter(|(_, v)| v.len() > 1 || v.values().any(Option::is_none))
            .map(|(k, _)| k.clone())
            .collect();
        Ok(())
    }
}
