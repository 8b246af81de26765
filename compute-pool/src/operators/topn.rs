//! Top-N and deduplication: `ROW_NUMBER() OVER (PARTITION BY p ORDER BY o)`
//! kept to the first N rows of each partition, with Flink's changelog.
//!
//! Each partition holds its rows sorted by the `ORDER BY` key (Arrow's row
//! format, which compares as bytes in the requested order), rows with equal
//! keys in arrival order. Over an append-only input a row that falls out of
//! the top N can never come back, so only N rows are held per partition, as
//! Flink's `AppendOnlyTopNFunction` does; an input that retracts keeps
//! every row, as `RetractableTopNFunction` does. Each input row is applied
//! in order and the ranks it changes are emitted:
//!
//! - without the row number in the output: `+I` for a row that enters the
//!   top N and `-D` for one that leaves it (the pushed-out row before the
//!   new one, the promoted row after the retracted one); but a Top-1 of an
//!   input that never retracts emits `-U`/`+U` when a better row replaces
//!   the one held, as Flink's `FastTop1Function`;
//! - with the row number: per rank from the first changed one down, `-U`
//!   of the old row and `+U` of the new one, `+I` for a rank newly filled
//!   and `-D` for one emptied;
//! - deduplication (N = 1, ordered by a time attribute, no row number):
//!   `+I` for a key's first row, then `-U`/`+U` when a row replaces it, as
//!   Flink's `RowTimeDeduplicateFunction`. Keep-last (`DESC`) lets a later
//!   row with an equal time replace the kept one; keep-first does not.
//!
//! - keep-first on event time ([`RankOutput::FirstOnWatermark`]): each
//!   partition's earliest row (the first to arrive among equal times) is
//!   held until the watermark reaches its time, then inserted once; a
//!   partition that has emitted ignores its later rows, and a row behind
//!   the watermark is dropped as late, as Flink's
//!   `RowTimeDeduplicateKeepFirstRowFunction` does. Its output is
//!   insert-only.
//!
//! A retraction of a row not held is ignored, as in Flink.
//!
//! The update-fast strategy ([`TopN::with_update_key`]), as Flink's
//! `UpdatableTopNFunction`: over an update stream keyed by a unique key
//! whose sort values only move rows up (a `COUNT` descending), only the
//! top N rows are held, each with its key; an update replaces its key's
//! row (its `-U` is ignored) and emits `-U`/`+U` of that row, or with the
//! row number, of every rank from the row's new place down to its old one.
//!
//! A window Top-N (the partition holds a window's start and end, over an
//! append-only input) holds the same top N rows per partition but emits
//! nothing as rows arrive: when the watermark passes a window's end, each
//! of its partitions emits its rows once, in rank order, as `+I`, and is
//! dropped, as Flink's `WindowRankOperator` does. A row whose window has
//! already been emitted is late: dropped and counted.

use crate::hash::HashMap;
use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::AsArray;
use arrow::array::{new_null_array, ArrayRef, BinaryArray, Int8Array, RecordBatch, UInt64Array};
use arrow::compute::{cast, SortOptions};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::row::{RowConverter, SortField};
use datafusion::common::DFSchema;
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::{Expr, SortExpr};
use datafusion::physical_expr::{create_physical_expr, PhysicalExpr};
use weir_sql_gateway::RankOutput;

use crate::operators::changelog::{
    is_accumulate, Changes, DELETE, INSERT, UPDATE_AFTER, UPDATE_BEFORE,
};
use crate::operators::group::{emitted_schema, row_converter, sort_fields};
use crate::runtime::checkpoint::StageState;
use crate::EngineError;

/// A held row and its sort key. The row is shared with the changes that
/// emit it (a Top-N with row numbers emits each held row again whenever a
/// row enters above it), so emitting one copies no bytes.
#[derive(Debug)]
struct Entry {
    sort: Box<[u8]>,
    row: Arc<[u8]>,
    /// The row's unique key, with the update-fast strategy.
    key: Option<Box<[u8]>>,
}

impl Entry {
    /// Bytes it holds.
    fn size(&self) -> usize {
        self.sort.len() + self.row.len() + self.key.as_ref().map_or(0, |k| k.len())
    }
}

/// The Top-N operator; see the module documentation.
pub struct TopN {
    partition: Vec<Arc<dyn PhysicalExpr>>,
    order: Vec<Arc<dyn PhysicalExpr>>,
    /// `None` without `PARTITION BY` (one partition).
    partition_rows: Option<RowConverter>,
    sort_rows: RowConverter,
    rows: RowConverter,
    limit: usize,
    output_kind: RankOutput,
    /// The input retracts: every row is held.
    retracting: bool,
    output: SchemaRef,
    state: HashMap<Box<[u8]>, Vec<Entry>>,
    held: usize,
    bytes: usize,
    window: Option<Windows>,
    /// Keep-first on event time: the partitions that have emitted their
    /// row (`window` holds the rows waiting, by their time + 1).
    emitted: Option<crate::hash::HashSet<Box<[u8]>>>,
    /// `'sql.state-ttl'` (ms), with each partition's expiry in processing
    /// time and when the next sweep is due.
    ttl: Option<Ttl>,
    /// Flink's update-fast strategy (see
    /// [`weir_sql_gateway::PlanNode::update_fast_key`]): the input columns
    /// that key its rows, and their row converter.
    update_key: Option<(Vec<usize>, RowConverter)>,
}

/// The TTL (ms), each partition's expiry and the next sweep's time.
type Ttl = (i64, HashMap<Box<[u8]>, i64>, i64);

/// A window Top-N's windows: which partitions each window end holds.
struct Windows {
    end: Arc<dyn PhysicalExpr>,
    partitions: BTreeMap<i64, Vec<Box<[u8]>>>,
    watermark: i64,
    late: u64,
}

impl std::fmt::Debug for TopN {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TopN(limit={}, {:?}, {} partitions)",
            self.limit,
            self.output_kind,
            self.state.len()
        )
    }
}

/// One emitted row: its bytes, its rank (1-based) and kind.
type Emitted = (Arc<[u8]>, u64, i8);

impl TopN {
    pub fn new(
        partition_by: &[Expr],
        order_by: &[SortExpr],
        limit: usize,
        output_kind: RankOutput,
        input: &DFSchema,
        output: &DFSchema,
        retracting: bool,
    ) -> Result<TopN, EngineError> {
        let props = ExecutionProps::new();
        let phys = |e: &Expr| create_physical_expr(e, input, &props, &Default::default());
        let partition = partition_by
            .iter()
            .map(phys)
            .collect::<Result<Vec<_>, _>>()?;
        let order = order_by
            .iter()
            .map(|s| phys(&s.expr))
            .collect::<Result<Vec<_>, _>>()?;
        let partition_rows = if partition.is_empty() {
            None
        } else {
            let types = partition
                .iter()
                .map(|p| p.data_type(input.as_arrow()).map(SortField::new))
                .collect::<Result<Vec<_>, _>>()?;
            Some(row_converter(types, "a Top-N input")?)
        };
        let sort_keys = order
            .iter()
            .zip(order_by)
            .map(|(p, s)| {
                p.data_type(input.as_arrow()).map(|t| {
                    SortField::new_with_options(
                        t,
                        SortOptions {
                            descending: !s.asc,
                            nulls_first: s.nulls_first,
                        },
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let row_fields = sort_fields(input.fields().iter().map(|f| f.data_type()));
        Ok(TopN {
            partition,
            order,
            partition_rows,
            sort_rows: row_converter(sort_keys, "a Top-N input")?,
            rows: row_converter(row_fields, "a Top-N input")?,
            limit: limit.max(1),
            output_kind,
            retracting,
            output: emitted_schema(output),
            state: HashMap::default(),
            held: 0,
            bytes: 0,
            window: None,
            emitted: None,
            ttl: None,
            update_key: None,
        })
    }

    /// Runs it with Flink's update-fast strategy, as `UpdatableTopNFunction`
    /// does: the input's rows are keyed by its columns `key` (a unique key
    /// holding the partition columns) and each key's sort value only moves
    /// it up, so an update replaces its key's row in place (its `-U` is
    /// ignored), only the top N rows are held, and a row that moves up
    /// emits the ranks it passes.
    pub fn with_update_key(
        mut self,
        key: Vec<usize>,
        input: &DFSchema,
    ) -> Result<TopN, EngineError> {
        let fields = key
            .iter()
            .map(|&i| SortField::new(input.field(i).data_type().clone()))
            .collect();
        self.update_key = Some((key, row_converter(fields, "a Top-N's unique key")?));
        self.retracting = false;
        Ok(self)
    }

    /// The unique keys of the rows of `columns` (the input's columns;
    /// update-fast strategy only).
    fn unique_keys(&self, columns: &[ArrayRef]) -> Result<Option<arrow::row::Rows>, EngineError> {
        let Some((key, conv)) = &self.update_key else {
            return Ok(None);
        };
        let cols: Vec<ArrayRef> = key.iter().map(|&i| columns[i].clone()).collect();
        Ok(Some(conv.convert_columns(&cols)?))
    }

    /// Makes it a window Top-N over windows ending at `end` (a column of
    /// `input`, a timestamp).
    pub fn with_window_end(mut self, end: &Expr, input: &DFSchema) -> Result<TopN, EngineError> {
        self.window = Some(Windows {
            end: create_physical_expr(end, input, &ExecutionProps::new(), &Default::default())?,
            partitions: BTreeMap::new(),
            watermark: i64::MIN,
            late: 0,
        });
        Ok(self)
    }

    /// Makes it a keep-first deduplication on the event time `time` (a
    /// column of `input`): rows wait for the watermark.
    pub fn on_event_time(mut self, time: &Expr, input: &DFSchema) -> Result<TopN, EngineError> {
        self = self.with_window_end(time, input)?;
        self.emitted = Some(Default::default());
        Ok(self)
    }

    /// Forgets a partition `ttl_ms` after its last change, in processing
    /// time, as Flink's state TTL does: silently, and a later row starts it
    /// over (`None`: never). A window Top-N frees windows by the watermark.
    pub fn set_state_ttl(&mut self, ttl_ms: Option<i64>) {
        self.ttl = ttl_ms
            .filter(|t| *t > 0 && (self.window.is_none() || self.emitted.is_some()))
            .map(|t| (t, HashMap::default(), i64::MIN));
    }

    /// Drops partition `key`'s rows; keep-first on event time forgets only
    /// that the partition emitted (a row waiting for the watermark stays,
    /// as Flink keeps its timers out of the TTL).
    fn forget(&mut self, key: &[u8]) {
        if let Some(emitted) = &mut self.emitted {
            emitted.remove(key);
            return;
        }
        if let Some(part) = self.state.remove(key) {
            for e in part {
                self.held -= 1;
                self.bytes -= e.size();
            }
        }
    }

    /// Applies the TTL at processing time `now` before a batch touching
    /// `keys`: sweeps expired partitions every half TTL, forgets the
    /// touched ones that expired, and extends the touched ones. Partitions
    /// without an expiry (restored from a checkpoint, which does not keep
    /// expiries, e.g. taken without a TTL) get a full TTL at the next
    /// sweep.
    fn expire(&mut self, now: i64, keys: &[&[u8]]) {
        let Some((ttl, expiries, next_sweep)) = &mut self.ttl else {
            return;
        };
        let ttl = *ttl;
        let mut gone: Vec<Box<[u8]>> = vec![];
        if now >= *next_sweep {
            let emitted = self.emitted.iter().flatten();
            for k in self.state.keys().chain(emitted) {
                if !expiries.contains_key(k) {
                    expiries.insert(k.clone(), now.saturating_add(ttl));
                }
            }
            expiries.retain(|k, e| {
                if *e <= now {
                    gone.push(k.clone());
                }
                *e > now
            });
            *next_sweep = now.saturating_add((ttl / 2).max(1));
        }
        for k in keys {
            if expiries.get(*k).is_some_and(|e| *e <= now) {
                gone.push((*k).into());
            }
            expiries.insert((*k).into(), now.saturating_add(ttl));
        }
        for k in gone {
            self.forget(&k);
        }
    }

    /// Rows a window Top-N dropped because their window had been emitted.
    pub fn late(&self) -> u64 {
        self.window.as_ref().map_or(0, |w| w.late)
    }

    /// Emits every window whose end the watermark `wm` passed (a window
    /// Top-N; otherwise nothing).
    pub fn advance(&mut self, wm: i64) -> Result<Vec<Changes>, EngineError> {
        let Some(w) = &mut self.window else {
            return Ok(vec![]);
        };
        w.watermark = w.watermark.max(wm);
        // Windows end exclusively: the last row of one is at end - 1.
        let open = w.partitions.split_off(&wm.saturating_add(2));
        let done = std::mem::replace(&mut w.partitions, open);
        let mut out: Vec<Emitted> = vec![];
        for key in done.into_values().flatten() {
            let Some(part) = self.state.remove(&key) else {
                continue;
            };
            for (r, e) in part.into_iter().enumerate() {
                self.held -= 1;
                self.bytes -= e.size();
                out.push((e.row, r as u64 + 1, INSERT));
            }
            if let Some(emitted) = &mut self.emitted {
                emitted.insert(key);
            }
        }
        if out.is_empty() {
            return Ok(vec![]);
        }
        Ok(vec![self.changes(out)?])
    }

    /// The window end (ms) of each row of a window Top-N's batch.
    fn window_ends(&self, c: &Changes) -> Result<Option<Vec<Option<i64>>>, EngineError> {
        let Some(w) = &self.window else {
            return Ok(None);
        };
        let ends = crate::operators::times_ms(&w.end, &c.batch)?;
        // A row waits until the watermark reaches its time: as a window
        // ending just after it.
        let after = i64::from(self.emitted.is_some());
        Ok(Some(
            ends.iter()
                .map(|e| e.map(|e| e.saturating_add(after)))
                .collect(),
        ))
    }

    /// Applies a batch of changes arriving at processing time `now` (ms).
    pub fn process(&mut self, c: &Changes, now: i64) -> Result<Vec<Changes>, EngineError> {
        let n = c.num_rows();
        let eval = |exprs: &[Arc<dyn PhysicalExpr>]| {
            exprs
                .iter()
                .map(|e| e.evaluate(&c.batch).and_then(|v| v.into_array(n)))
                .collect::<Result<Vec<ArrayRef>, _>>()
        };
        let keys = match &self.partition_rows {
            Some(conv) => Some(conv.convert_columns(&eval(&self.partition)?)?),
            None => None,
        };
        let sorts = self.sort_rows.convert_columns(&eval(&self.order)?)?;
        let rows = self.rows.convert_columns(c.batch.columns())?;
        let ends = self.window_ends(c)?;
        let unique = self.unique_keys(c.batch.columns())?;
        if self.ttl.is_some() {
            let touched: Vec<&[u8]> = (0..n)
                .map(|i| keys.as_ref().map_or(&[][..], |k| k.row(i).data()))
                .collect();
            self.expire(now, &touched);
        }
        let mut out: Vec<Emitted> = vec![];
        for i in 0..n {
            let key: &[u8] = keys.as_ref().map_or(&[], |k| k.row(i).data());
            let (sort, row) = (sorts.row(i), rows.row(i));
            if let (Some(ends), Some(w)) = (&ends, &mut self.window) {
                // Held until its window is emitted; what it changes now
                // is not emitted.
                match (ends[i], &self.emitted) {
                    // Keep-first: a row at the watermark is not late, a
                    // partition that emitted takes nothing more, and an
                    // earlier row waits for its own time.
                    (Some(end), Some(emitted)) if end > w.watermark => {
                        if emitted.contains(key) {
                            continue;
                        }
                        let earlier = self
                            .state
                            .get(key)
                            .and_then(|p| p.first())
                            .is_none_or(|e| *sort.data() < *e.sort);
                        if earlier {
                            w.partitions.entry(end).or_default().push(key.into());
                        }
                        self.insert(key, sort.data(), row.data(), None, &mut vec![]);
                    }
                    (Some(end), None) if end - 1 > w.watermark => {
                        if !self.state.contains_key(key) {
                            w.partitions.entry(end).or_default().push(key.into());
                        }
                        self.insert(key, sort.data(), row.data(), None, &mut vec![]);
                    }
                    _ => w.late += 1,
                }
                continue;
            }
            if let Some(unique) = &unique {
                // Update-fast: an update is its key's new row; the row it
                // replaces is found by the key, so `-U` says nothing new.
                if is_accumulate(c.op(i)) {
                    self.upsert(key, sort.data(), row.data(), unique.row(i).data(), &mut out);
                }
            } else if is_accumulate(c.op(i)) {
                self.insert(key, sort.data(), row.data(), None, &mut out);
            } else {
                self.retract(key, sort.data(), row.data(), &mut out);
            }
        }
        if out.is_empty() {
            return Ok(vec![]);
        }
        Ok(vec![self.changes(out)?])
    }

    fn insert(
        &mut self,
        key: &[u8],
        sort: &[u8],
        row: &[u8],
        unique: Option<&[u8]>,
        out: &mut Vec<Emitted>,
    ) {
        let (limit, kind, retracting) = (self.limit, self.output_kind, self.retracting);
        let windowed = self.window.is_some();
        let part = match self.state.get_mut(key) {
            Some(p) => p,
            None => self.state.entry(key.into()).or_default(),
        };
        // After the rows it ties with, unless a later row replaces them.
        let pos = match kind {
            RankOutput::Deduplicate { keep_last: true } => {
                part.partition_point(|e| *e.sort < *sort)
            }
            _ => part.partition_point(|e| *e.sort <= *sort),
        };
        if pos >= limit && !retracting {
            // Below the top N of an input that never retracts: it can
            // never enter, so it is not held (nor copied).
            return;
        }
        self.held += 1;
        self.bytes += sort.len() + row.len() + unique.map_or(0, <[u8]>::len);
        part.insert(
            pos,
            Entry {
                sort: sort.into(),
                row: row.into(),
                key: unique.map(Into::into),
            },
        );
        if pos < limit {
            let len = part.len();
            match kind {
                // Top-1 of an input that never retracts, as Flink's
                // FastTop1Function: the partition key is the result's
                // unique key, so a better row updates the one held.
                RankOutput::Rows if limit == 1 && !retracting && !windowed => {
                    if len > 1 {
                        out.push((part[1].row.clone(), 0, UPDATE_BEFORE));
                        out.push((part[0].row.clone(), 0, UPDATE_AFTER));
                    } else {
                        out.push((part[0].row.clone(), 0, INSERT));
                    }
                }
                // As Flink's AppendOnlyTopNFunction: the pushed-out row
                // goes first.
                RankOutput::Rows => {
                    if len > limit {
                        out.push((part[limit].row.clone(), 0, DELETE));
                    }
                    out.push((part[pos].row.clone(), 0, INSERT));
                }
                RankOutput::Deduplicate { .. } | RankOutput::FirstOnWatermark => {
                    if len > 1 {
                        out.push((part[1].row.clone(), 1, UPDATE_BEFORE));
                        out.push((part[0].row.clone(), 1, UPDATE_AFTER));
                    } else {
                        out.push((part[0].row.clone(), 1, INSERT));
                    }
                }
                RankOutput::RowNumbers => {
                    // The old list is the new one without `pos`.
                    for r in pos..len.min(limit) {
                        let rank = r as u64 + 1;
                        if r + 1 < len {
                            out.push((part[r + 1].row.clone(), rank, UPDATE_BEFORE));
                            out.push((part[r].row.clone(), rank, UPDATE_AFTER));
                        } else {
                            out.push((part[r].row.clone(), rank, INSERT));
                        }
                    }
                }
            }
        }
        if !retracting && part.len() > limit {
            for e in part.drain(limit..) {
                self.held -= 1;
                self.bytes -= e.size();
            }
        }
    }

    /// Applies the update-fast strategy's row `row` of unique key `unique`
    /// in partition `key`, as Flink's `UpdatableTopNFunction` emits it.
    fn upsert(
        &mut self,
        key: &[u8],
        sort: &[u8],
        row: &[u8],
        unique: &[u8],
        out: &mut Vec<Emitted>,
    ) {
        let Some(old) = self
            .state
            .get(key)
            .and_then(|p| p.iter().position(|e| e.key.as_deref() == Some(unique)))
        else {
            // A key not in the top N: a new row (one that fell out
            // earlier comes back in as new, as in Flink).
            return self.insert(key, sort, row, Some(unique), out);
        };
        let kind = self.output_kind;
        let part = self.state.get_mut(key).expect("found above");
        let entry = Entry {
            sort: sort.into(),
            row: row.into(),
            key: Some(unique.into()),
        };
        self.bytes += entry.size();
        // Equal sort values keep the row's place; a new one goes after
        // the rows it ties with.
        let (was, pos) = if *part[old].sort == *sort {
            (std::mem::replace(&mut part[old], entry), old)
        } else {
            let was = part.remove(old);
            let pos = part.partition_point(|e| *e.sort <= *sort);
            part.insert(pos, entry);
            (was, pos)
        };
        self.bytes -= was.size();
        if kind != RankOutput::RowNumbers {
            out.push((was.row, 0, UPDATE_BEFORE));
            out.push((part[pos].row.clone(), 0, UPDATE_AFTER));
            return;
        }
        let old_rank = old as u64 + 1;
        if pos > old {
            // Moved down, which monotonic sort values rule out (Flink
            // logs a stale-state error and goes on like this): the rows
            // it passed move up a rank each.
            out.push((was.row, old_rank, UPDATE_BEFORE));
            for (r, e) in part.iter().enumerate().take(pos).skip(old) {
                let rank = r as u64 + 1;
                out.push((e.row.clone(), rank + 1, UPDATE_BEFORE));
                out.push((e.row.clone(), rank, UPDATE_AFTER));
            }
            out.push((part[pos].row.clone(), pos as u64 + 1, UPDATE_AFTER));
            return;
        }
        // Moved up from `old` to `pos` (or stayed): each rank from `pos`
        // down to `old` takes the row above it, the old row's `-U` after
        // the first rank's.
        let mut current = part[pos].row.clone();
        let mut retracted = false;
        for (r, e) in part.iter().enumerate().take(old + 1).skip(pos + 1) {
            let rank = r as u64;
            let prev = e.row.clone();
            out.push((prev.clone(), rank, UPDATE_BEFORE));
            if !retracted {
                out.push((was.row.clone(), old_rank, UPDATE_BEFORE));
                retracted = true;
            }
            out.push((current, rank, UPDATE_AFTER));
            current = prev;
        }
        if !retracted {
            out.push((was.row, old_rank, UPDATE_BEFORE));
        }
        out.push((current, old_rank, UPDATE_AFTER));
    }

    fn retract(&mut self, key: &[u8], sort: &[u8], row: &[u8], out: &mut Vec<Emitted>) {
        let limit = self.limit;
        let Some(part) = self.state.get_mut(key) else {
            return;
        };
        let from = part.partition_point(|e| *e.sort < *sort);
        let Some(pos) = part[from..]
            .iter()
            .take_while(|e| *e.sort == *sort)
            .position(|e| *e.row == *row)
            .map(|p| p + from)
        else {
            return;
        };
        let removed = part.remove(pos);
        self.held -= 1;
        self.bytes -= removed.size();
        if pos < limit {
            let len = part.len();
            match self.output_kind {
                RankOutput::Rows => {
                    out.push((removed.row.clone(), 0, DELETE));
                    if len >= limit {
                        out.push((part[limit - 1].row.clone(), 0, INSERT));
                    }
                }
                RankOutput::Deduplicate { .. } | RankOutput::FirstOnWatermark => {
                    if len > 0 {
                        out.push((removed.row.clone(), 1, UPDATE_BEFORE));
                        out.push((part[0].row.clone(), 1, UPDATE_AFTER));
                    } else {
                        out.push((removed.row.clone(), 1, DELETE));
                    }
                }
                RankOutput::RowNumbers => {
                    // The old list is the new one with `removed` at `pos`.
                    for r in pos..(len + 1).min(limit) {
                        let rank = r as u64 + 1;
                        let was = if r == pos {
                            removed.row.clone()
                        } else {
                            part[r - 1].row.clone()
                        };
                        out.push((was, rank, if r < len { UPDATE_BEFORE } else { DELETE }));
                        if r < len {
                            out.push((part[r].row.clone(), rank, UPDATE_AFTER));
                        }
                    }
                }
            }
        }
        if part.is_empty() {
            self.state.remove(key);
        }
    }

    /// Builds the output batch: the rows' columns, then the row number.
    fn changes(&self, out: Vec<Emitted>) -> Result<Changes, EngineError> {
        let parser = self.rows.parser();
        let mut cols = self
            .rows
            .convert_rows(out.iter().map(|(r, _, _)| parser.parse(r)))?;
        let rank_type = self
            .output
            .field(self.output.fields().len() - 1)
            .data_type();
        cols.push(match self.output_kind {
            RankOutput::RowNumbers => cast(
                &(Arc::new(UInt64Array::from_iter_values(
                    out.iter().map(|(_, r, _)| *r),
                )) as ArrayRef),
                rank_type,
            )?,
            // Nothing above reads the row number.
            _ => new_null_array(rank_type, out.len()),
        });
        let batch = RecordBatch::try_new(self.output.clone(), cols)?;
        let ops: Vec<i8> = out.iter().map(|(_, _, op)| *op).collect();
        let ops = ops
            .iter()
            .any(|o| *o != INSERT)
            .then(|| Arc::new(Int8Array::from(ops)));
        Ok(Changes { batch, ops })
    }

    /// Rows held, over all partitions.
    pub fn state_size(&self) -> usize {
        self.held
    }

    /// Bytes of state: partition keys, sort keys and rows, and the
    /// entries' and hash table's own slots.
    pub fn state_bytes(&self) -> usize {
        let keys: usize = self.state.keys().map(|k| k.len()).sum();
        let emitted = self.emitted.as_ref().map_or(0, |e| {
            e.iter().map(|k| k.len()).sum::<usize>()
                + e.capacity() * (std::mem::size_of::<Box<[u8]>>() + 1)
        });
        emitted
            + self.bytes
            + keys
            // An entry, and its row's two reference counts.
            + self.held * (std::mem::size_of::<Entry>() + 2 * std::mem::size_of::<usize>())
            + self.state.capacity() * (std::mem::size_of::<(Box<[u8]>, Vec<Entry>)>() + 1)
    }

    /// Every held row, partitions in any order and rows in rank order:
    /// partition key, sort key, row.
    pub fn snapshot(&self) -> Result<StageState, EngineError> {
        let meta = match &self.window {
            Some(w) => serde_json::json!({
                "watermark": w.watermark,
                "late": w.late,
                "windows": w.partitions.iter().map(|(end, keys)| {
                    (end.to_string(), keys.iter().map(|k| k.to_vec()).collect::<Vec<_>>())
                }).collect::<BTreeMap<_, _>>(),
            }),
            None => serde_json::Value::Null,
        };
        let emitted = self.emitted.iter().flatten();
        if self.held == 0 && emitted.clone().next().is_none() {
            return Ok(StageState {
                batches: vec![],
                meta,
            });
        }
        let mut keys: Vec<&[u8]> = Vec::with_capacity(self.held);
        let mut sorts: Vec<&[u8]> = Vec::with_capacity(self.held);
        let mut rows: Vec<&[u8]> = Vec::with_capacity(self.held);
        let mut expires: Vec<i64> = Vec::with_capacity(self.held);
        // Keep-first's emitted partitions: a key without a row, expiring
        // at i64::MIN.
        for k in emitted {
            keys.push(k);
            sorts.push(&[]);
            rows.push(&[]);
            expires.push(i64::MIN);
        }
        for (k, part) in &self.state {
            let e = self
                .ttl
                .as_ref()
                .and_then(|(_, ex, _)| ex.get(k).copied())
                .unwrap_or(i64::MAX);
            for entry in part {
                keys.push(k);
                sorts.push(&entry.sort);
                rows.push(&entry.row);
                expires.push(e);
            }
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("partition", DataType::Binary, false),
            Field::new("sort", DataType::Binary, false),
            Field::new("row", DataType::Binary, false),
            Field::new("expires", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(BinaryArray::from(keys)),
                Arc::new(BinaryArray::from(sorts)),
                Arc::new(BinaryArray::from(rows)),
                Arc::new(arrow::array::Int64Array::from(expires)),
            ],
        )?;
        Ok(StageState {
            batches: vec![batch],
            meta,
        })
    }

    pub fn restore(&mut self, state: &StageState) -> Result<(), EngineError> {
        self.state.clear();
        self.held = 0;
        self.bytes = 0;
        if let Some((_, ex, _)) = &mut self.ttl {
            ex.clear();
        }
        if let Some(w) = &mut self.window {
            w.watermark = state.meta["watermark"].as_i64().unwrap_or(i64::MIN);
            w.late = state.meta["late"].as_u64().unwrap_or(0);
            w.partitions = serde_json::from_value::<BTreeMap<String, Vec<Vec<u8>>>>(
                state.meta["windows"].clone(),
            )
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(end, keys)| {
                Some((
                    end.parse().ok()?,
                    keys.into_iter().map(Vec::into_boxed_slice).collect(),
                ))
            })
            .collect();
        }
        if let Some(e) = &mut self.emitted {
            e.clear();
        }
        for b in &state.batches {
            if !(3..=4).contains(&b.num_columns()) {
                return Err(EngineError::Checkpoint(
                    "a Top-N checkpoint does not have the Top-N layout".into(),
                ));
            }
            let (keys, sorts, rows) = (
                b.column(0).as_binary::<i32>(),
                b.column(1).as_binary::<i32>(),
                b.column(2).as_binary::<i32>(),
            );
            let expires = b
                .column_by_name("expires")
                .map(|c| c.as_primitive::<arrow::datatypes::Int64Type>().clone());
            // The update-fast strategy's unique keys, from the rows.
            let unique = match &self.update_key {
                Some(_) if b.num_rows() > 0 => {
                    let parser = self.rows.parser();
                    let cols = self
                        .rows
                        .convert_rows((0..b.num_rows()).map(|i| parser.parse(rows.value(i))))?;
                    self.unique_keys(&cols)?
                }
                _ => None,
            };
            for i in 0..b.num_rows() {
                if let (Some(emitted), Some(e)) = (&mut self.emitted, &expires) {
                    if e.value(i) == i64::MIN {
                        emitted.insert(keys.value(i).into());
                        continue;
                    }
                }
                if let (Some((_, ex, _)), Some(e)) = (&mut self.ttl, &expires) {
                    if e.value(i) < i64::MAX {
                        ex.insert(keys.value(i).into(), e.value(i));
                    }
                }
                let e = Entry {
                    sort: sorts.value(i).into(),
                    row: rows.value(i).into(),
                    key: unique.as_ref().map(|u| u.row(i).data().into()),
                };
                self.held += 1;
                self.bytes += e.size();
                self.state.entry(keys.value(i).into()).or_default().push(e);
            }
        }
        Ok(())
    }
}
