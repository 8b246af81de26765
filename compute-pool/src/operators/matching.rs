//! `MATCH_RECOGNIZE`: a row pattern matched per partition, as Flink's CEP
//! operator runs it.
//!
//! Rows wait until the watermark passes their time, then each partition's
//! rows are taken in time order (arrival order among equal times). Every
//! row may start a match and is offered to every partial match in
//! progress, which takes it (when its pattern variable's condition holds),
//! moves on to the next variable, or dies (rows of a match are
//! consecutive). A greedy quantifier takes a row whenever its condition
//! holds; a reluctant one moves on as soon as it may, keeping the longer
//! match as a second candidate. A match that completes emits one row (the
//! partition columns and the measures); `AFTER MATCH SKIP` then drops the
//! partial matches that started too early. `WITHIN` drops a partial match
//! once a row arrives that long after its first.
//!
//! Conditions and measures are DataFusion expressions over the values a
//! match supplies (`LAST(A.price)`, `PREV(price)`, `AVG(A.price)`): for
//! each row, those values are gathered per partial match and each
//! variable's condition is evaluated once, over a batch with a row per
//! partial match. Matching is row by row by nature; the rows themselves
//! are held in Arrow's row format.

use crate::hash::HashMap;
use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::filter;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::row::RowConverter;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::{Accumulator, Expr};
use datafusion::physical_expr::{create_physical_expr, PhysicalExpr};
use weir_sql_gateway::{MatchNav, MatchSkip, MatchSpec, PatternTerm};

use crate::operators::group::{
    conform, emitted_schema, lower_aggregates, row_converter, sort_fields, Aggregate, GroupKeys,
};
use crate::runtime::checkpoint::{StageState, TaggedRows};
use crate::EngineError;

type Bytes = Box<[u8]>;

/// A pattern variable's condition, and the nav values it reads.
type Condition = (Arc<dyn PhysicalExpr>, Vec<usize>);

/// Whether a row may be a pattern variable, by candidate and variable.
type Holds = Vec<Vec<bool>>;

/// The rows of a match, and the row being classified (as its last).
struct MatchRows<'a> {
    rows: &'a [(usize, Arc<MatchRow>)],
    current: Option<(usize, &'a MatchRow)>,
}

impl<'a> MatchRows<'a> {
    fn iter(&self) -> impl DoubleEndedIterator<Item = (usize, &'a MatchRow)> + 'a {
        let rows = self.rows;
        rows.iter().map(|(s, r)| (*s, &**r)).chain(self.current)
    }

    fn last(&self) -> Option<&'a MatchRow> {
        self.current
            .map(|(_, r)| r)
            .or_else(|| self.rows.last().map(|(_, r)| &**r))
    }
}

/// A row taken by a match: its place in its partition, time, the row in
/// Arrow's row format and its values.
#[derive(Debug)]
struct MatchRow {
    seq: u64,
    time: i64,
    bytes: Bytes,
    values: Vec<ScalarValue>,
}

/// A match in progress.
#[derive(Debug, Clone)]
struct Partial {
    /// The `seq` of the row it started at.
    start: u64,
    start_time: i64,
    /// The pattern term it is in, and how many rows that term has taken.
    term: usize,
    count: u32,
    /// Its rows, each with its pattern variable.
    rows: Vec<(usize, Arc<MatchRow>)>,
}

#[derive(Default)]
struct Partition {
    partials: Vec<Partial>,
    next_seq: u64,
}

pub struct MatchRecognize {
    partition: GroupKeys,
    /// The input columns the output starts with.
    partition_columns: Vec<usize>,
    time: Arc<dyn PhysicalExpr>,
    pattern: Vec<PatternTerm>,
    navs: Vec<MatchNav>,
    /// The lowered aggregate of each [`MatchNav::Aggregate`].
    aggs: Vec<Option<Aggregate>>,
    nav_schema: SchemaRef,
    /// Per pattern variable: its condition and the navs it reads.
    defines: Vec<Option<Condition>>,
    measures: Vec<Arc<dyn PhysicalExpr>>,
    measure_navs: Vec<usize>,
    skip: MatchSkip,
    within_ms: Option<i64>,
    rows: RowConverter,
    input: SchemaRef,
    output: SchemaRef,
    /// Rows waiting for the watermark, by time: partition key and row.
    pending: BTreeMap<i64, Vec<(Bytes, Bytes)>>,
    partitions: HashMap<Bytes, Partition>,
    watermark: i64,
    pub late: u64,
}

impl std::fmt::Debug for MatchRecognize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MatchRecognize({} partitions)", self.partitions.len())
    }
}

/// The most partial matches one partition may hold: each may hold as
/// many rows as the pattern takes, and each row is offered to each.
const MAX_PARTIALS: usize = 5_000;

/// Snapshot tags: a row waiting for the watermark; a row of a partial
/// match.
const PENDING: i8 = 0;
const MATCHED: i8 = 1;

/// The nav columns (`__nav<i>`) an expression reads.
fn navs_read(e: &Expr) -> Vec<usize> {
    let mut out: Vec<usize> = e
        .column_refs()
        .iter()
        .filter_map(|c| c.name.strip_prefix("__nav").and_then(|i| i.parse().ok()))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

impl MatchRecognize {
    pub fn new(
        spec: &MatchSpec,
        input: &DFSchema,
        output: &DFSchema,
    ) -> Result<MatchRecognize, EngineError> {
        let props = ExecutionProps::new();
        let rows = row_converter(
            sort_fields(input.fields().iter().map(|f| f.data_type())),
            "a MATCH_RECOGNIZE input",
        )?;
        let partition_columns = spec
            .partition_by
            .iter()
            .map(|e| match e {
                Expr::Column(c) => input
                    .index_of_column(c)
                    .map_err(|e| EngineError::Plan(e.to_string())),
                other => Err(EngineError::Plan(format!(
                    "MATCH_RECOGNIZE partitions by columns, not {other}"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let aggs = spec
            .navs
            .iter()
            .map(|n| match n {
                MatchNav::Aggregate { call, .. } => Ok(Some(
                    lower_aggregates(std::slice::from_ref(call), input)?.remove(0),
                )),
                _ => Ok(None),
            })
            .collect::<Result<Vec<_>, EngineError>>()?;
        let nav = &spec.nav_schema;
        let defines = spec
            .defines
            .iter()
            .map(|d| {
                d.as_ref()
                    .map(|e| {
                        Ok::<_, EngineError>((
                            create_physical_expr(e, nav, &props, &Default::default())?,
                            navs_read(e),
                        ))
                    })
                    .transpose()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let measures = spec
            .measures
            .iter()
            .map(|e| Ok(create_physical_expr(e, nav, &props, &Default::default())?))
            .collect::<Result<Vec<_>, EngineError>>()?;
        let mut measure_navs: Vec<usize> = spec.measures.iter().flat_map(navs_read).collect();
        measure_navs.sort_unstable();
        measure_navs.dedup();
        Ok(MatchRecognize {
            partition: GroupKeys::new(&spec.partition_by, input)?,
            partition_columns,
            time: create_physical_expr(&spec.time, input, &props, &Default::default())?,
            pattern: spec.pattern.clone(),
            navs: spec.navs.clone(),
            aggs,
            nav_schema: Arc::new(nav.as_arrow().clone()),
            defines,
            measures,
            measure_navs,
            skip: spec.skip.clone(),
            within_ms: spec.within_ms,
            rows,
            input: emitted_schema(input),
            output: emitted_schema(output),
            pending: BTreeMap::new(),
            partitions: HashMap::default(),
            watermark: i64::MIN,
            late: 0,
        })
    }

    /// Holds a batch's rows until the watermark passes their time.
    pub fn process(&mut self, batch: &RecordBatch) -> Result<(), EngineError> {
        self.late += crate::operators::over::hold_until_watermark(
            batch,
            &self.time,
            &self.partition,
            &self.rows,
            // Flink's CEP operator: a row not after the watermark is late.
            self.watermark,
            &mut self.pending,
        )?;
        Ok(())
    }

    /// Matches every held row whose time the watermark `wm` passed; the
    /// rows of the matches that completed.
    pub fn advance(&mut self, wm: i64) -> Result<Option<RecordBatch>, EngineError> {
        if wm <= self.watermark {
            return Ok(None);
        }
        self.watermark = wm;
        let rest = self.pending.split_off(&wm.saturating_add(1));
        let due = std::mem::replace(&mut self.pending, rest);
        let mut out: Vec<Vec<ScalarValue>> = vec![];
        for (t, entries) in due {
            let values = self.decode(entries.iter().map(|(_, r)| &**r))?;
            for ((key, bytes), values) in entries.into_iter().zip(values) {
                let mut part = self.partitions.remove(&key).unwrap_or_default();
                let row = Arc::new(MatchRow {
                    seq: part.next_seq,
                    time: t,
                    bytes,
                    values,
                });
                part.next_seq += 1;
                self.step(&mut part, row, &mut out)?;
                if !part.partials.is_empty() {
                    self.partitions.insert(key, part);
                }
            }
        }
        if out.is_empty() {
            return Ok(None);
        }
        let width = self.output.fields().len();
        let cols = (0..width)
            .map(|j| ScalarValue::iter_to_array(out.iter().map(|r| r[j].clone())))
            .collect::<Result<Vec<ArrayRef>, _>>()?;
        Ok(Some(conform(&self.output, cols, out.len())?))
    }

    /// Rows in Arrow's row format as values, one `Vec` per row.
    fn decode<'r>(
        &self,
        rows: impl IntoIterator<Item = &'r [u8]>,
    ) -> Result<Vec<Vec<ScalarValue>>, EngineError> {
        let parser = self.rows.parser();
        let cols = self
            .rows
            .convert_rows(rows.into_iter().map(|r| parser.parse(r)))?;
        let n = cols.first().map_or(0, |c| c.len());
        (0..n)
            .map(|i| {
                cols.iter()
                    .map(|c| Ok(ScalarValue::try_from_array(c, i)?))
                    .collect()
            })
            .collect()
    }

    /// Offers `row` to the partition's partial matches and to a new one;
    /// emits the matches that complete.
    fn step(
        &self,
        part: &mut Partition,
        row: Arc<MatchRow>,
        out: &mut Vec<Vec<ScalarValue>>,
    ) -> Result<(), EngineError> {
        if let Some(w) = self.within_ms {
            part.partials.retain(|p| row.time - p.start_time < w);
        }
        let mut candidates = std::mem::take(&mut part.partials);
        candidates.push(Partial {
            start: row.seq,
            start_time: row.time,
            term: 0,
            count: 0,
            rows: vec![],
        });
        let holds = self.conditions(&candidates, &row)?;
        let mut next = vec![];
        let mut done = vec![];
        for (i, p) in candidates.into_iter().enumerate() {
            self.offer(i, p, &row, &holds, &mut next, &mut done)?;
        }
        // The earliest-starting match first, in preference order.
        done.sort_by_key(|p| p.start);
        let mut first_allowed = 0u64;
        for m in done {
            if m.start < first_allowed {
                continue;
            }
            out.push(self.emit(&m)?);
            let last = m.rows.last().map_or(m.start, |(_, r)| r.seq);
            let of = |s: usize, last_one: bool| {
                let mut seqs = m.rows.iter().filter(|(x, _)| *x == s).map(|(_, r)| r.seq);
                if last_one {
                    seqs.next_back()
                } else {
                    seqs.next()
                }
            };
            let allowed = match self.skip {
                MatchSkip::PastLastRow => last + 1,
                MatchSkip::ToNextRow => m.start + 1,
                MatchSkip::ToFirst(s) => of(s, false).unwrap_or(last + 1),
                MatchSkip::ToLast(s) => of(s, true).unwrap_or(last + 1),
            };
            first_allowed = allowed.max(m.start + 1);
            next.retain(|p| p.start >= first_allowed);
        }
        if next.len() > MAX_PARTIALS {
            return Err(EngineError::MemoryLimit(format!(
                "MATCH_RECOGNIZE holds more than {MAX_PARTIALS} partial matches in one partition \
                 (every row starts one, and the pattern's conditions let them all go on): add \
                 WITHIN INTERVAL ... to the pattern, or make its conditions stricter"
            )));
        }
        part.partials = next;
        Ok(())
    }

    /// What becomes of partial match `p` offered `row`: the matches it
    /// continues as (into `next`) or completes as (into `done`), in
    /// preference order.
    fn offer(
        &self,
        candidate: usize,
        p: Partial,
        row: &Arc<MatchRow>,
        holds: &Holds,
        next: &mut Vec<Partial>,
        done: &mut Vec<Partial>,
    ) -> Result<(), EngineError> {
        let t = &self.pattern[p.term];
        let condition = self.defines[t.symbol].is_none() || holds[candidate][t.symbol];
        let can_take = t.max.is_none_or(|m| p.count < m) && condition;
        let can_leave = p.count >= t.min && p.term + 1 < self.pattern.len();
        let symbol = t.symbol;
        let take = |mut q: Partial| {
            q.rows.push((symbol, row.clone()));
            q.count += 1;
            q
        };
        let leave = |s: &Self, mut q: Partial, next: &mut Vec<Partial>, done: &mut Vec<Partial>| {
            q.term += 1;
            q.count = 0;
            s.offer(candidate, q, row, holds, next, done)
        };
        // The partial match moves into the branch it takes; only a
        // reluctant variable that may do both copies it.
        let mut taken = None;
        match (t.greedy, can_take, can_leave) {
            (true, true, _) | (false, true, false) => taken = Some(take(p)),
            (_, false, true) => leave(self, p, next, done)?,
            (false, true, true) => {
                leave(self, p.clone(), next, done)?;
                taken = Some(take(p));
            }
            (_, false, false) => {}
        }
        if let Some(q) = taken {
            let last = self.pattern.len() - 1;
            let lt = &self.pattern[last];
            let complete =
                q.term == last && q.count >= lt.min && (lt.max == Some(q.count) || !lt.greedy);
            if complete {
                done.push(q);
            } else {
                next.push(q);
            }
        }
        Ok(())
    }

    /// Whether `row` may be each pattern variable the candidates may try
    /// it as, by (candidate, variable): each variable's condition is
    /// evaluated once, over one batch with a row per candidate.
    fn conditions(
        &self,
        candidates: &[Partial],
        row: &Arc<MatchRow>,
    ) -> Result<Holds, EngineError> {
        let mut by_symbol: HashMap<usize, Vec<usize>> = HashMap::default();
        for (i, p) in candidates.iter().enumerate() {
            // The variable it is in, and those it may move on to.
            let (mut term, mut count) = (p.term, p.count);
            loop {
                let t = &self.pattern[term];
                if self.defines[t.symbol].is_some() {
                    let list = by_symbol.entry(t.symbol).or_default();
                    if list.last() != Some(&i) {
                        list.push(i);
                    }
                }
                if count >= t.min && term + 1 < self.pattern.len() {
                    term += 1;
                    count = 0;
                } else {
                    break;
                }
            }
        }
        let mut out: Holds = vec![vec![false; self.defines.len()]; candidates.len()];
        for (symbol, which) in by_symbol {
            let (cond, reads) = self.defines[symbol].as_ref().expect("collected above");
            let mut cols: Vec<ArrayRef> = Vec::with_capacity(self.navs.len());
            for (n, f) in self.nav_schema.fields().iter().enumerate() {
                if reads.binary_search(&n).is_err() {
                    cols.push(arrow::array::new_null_array(f.data_type(), which.len()));
                    continue;
                }
                let mut values = Vec::with_capacity(which.len());
                for &i in &which {
                    let rows = MatchRows {
                        rows: &candidates[i].rows,
                        current: Some((symbol, row)),
                    };
                    values.push(self.nav_value(n, &rows, f.data_type())?);
                }
                cols.push(ScalarValue::iter_to_array(values)?);
            }
            let batch = RecordBatch::try_new_with_options(
                self.nav_schema.clone(),
                cols,
                &arrow::array::RecordBatchOptions::new().with_row_count(Some(which.len())),
            )?;
            let v = cond.evaluate(&batch)?.into_array(which.len())?;
            let v = v.as_boolean();
            for (k, &i) in which.iter().enumerate() {
                out[i][symbol] = v.is_valid(k) && v.value(k);
            }
        }
        Ok(out)
    }

    /// The output row of a completed match.
    fn emit(&self, m: &Partial) -> Result<Vec<ScalarValue>, EngineError> {
        let rows = MatchRows {
            rows: &m.rows,
            current: None,
        };
        let first = m
            .rows
            .first()
            .map(|(_, r)| &**r)
            .ok_or_else(|| EngineError::Plan("a MATCH_RECOGNIZE match without rows".into()))?;
        let mut out: Vec<ScalarValue> = self
            .partition_columns
            .iter()
            .map(|&c| first.values[c].clone())
            .collect();
        let batch = self.nav_batch(&rows, &self.measure_navs)?;
        for m in &self.measures {
            let v = m.evaluate(&batch)?.into_array(1)?;
            out.push(ScalarValue::try_from_array(&v, 0)?);
        }
        Ok(out)
    }

    /// One row of the nav values `reads` over the match's `rows` (the
    /// others NULL).
    fn nav_batch(&self, rows: &MatchRows<'_>, reads: &[usize]) -> Result<RecordBatch, EngineError> {
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(self.navs.len());
        for (i, f) in self.nav_schema.fields().iter().enumerate() {
            let v = if reads.binary_search(&i).is_ok() {
                self.nav_value(i, rows, f.data_type())?
            } else {
                ScalarValue::try_from(f.data_type())?
            };
            cols.push(v.to_array_of_size(1)?);
        }
        Ok(RecordBatch::try_new(self.nav_schema.clone(), cols)?)
    }

    fn nav_value(
        &self,
        i: usize,
        rows: &MatchRows<'_>,
        t: &DataType,
    ) -> Result<ScalarValue, EngineError> {
        let null = || ScalarValue::try_from(t);
        let of = |symbol: Option<usize>| {
            rows.iter()
                .filter(move |(s, _)| symbol.is_none_or(|x| x == *s))
                .map(|(_, r)| r)
        };
        Ok(match &self.navs[i] {
            MatchNav::Row {
                symbol,
                column,
                first,
                offset,
            } => {
                let picked = if *first {
                    of(*symbol).nth(*offset as usize)
                } else {
                    of(*symbol).rev().nth(*offset as usize)
                };
                match picked {
                    Some(r) => r.values[*column].clone(),
                    None => null()?,
                }
            }
            MatchNav::Prev { column, offset } => match rows.iter().rev().nth(*offset as usize) {
                Some((_, r)) => r.values[*column].clone(),
                None => null()?,
            },
            MatchNav::MatchRowtime => {
                ScalarValue::TimestampMillisecond(rows.last().map(|r| r.time), None)
            }
            MatchNav::Aggregate { symbol, .. } => {
                let agg = self.aggs[i].as_ref().expect("lowered with the navs");
                let mut acc: Box<dyn Accumulator> = agg.expr.create_accumulator()?;
                let picked: Vec<&[u8]> = of(*symbol).map(|r| &*r.bytes).collect();
                if !picked.is_empty() {
                    let parser = self.rows.parser();
                    let cols = self
                        .rows
                        .convert_rows(picked.iter().map(|r| parser.parse(r)))?;
                    let batch = RecordBatch::try_new(self.input.clone(), cols)?;
                    let n = batch.num_rows();
                    let mut args = agg
                        .args
                        .iter()
                        .map(|e| e.evaluate(&batch).and_then(|v| v.into_array(n)))
                        .collect::<Result<Vec<ArrayRef>, _>>()?;
                    if let Some(f) = &agg.filter {
                        let mask = f.evaluate(&batch)?.into_array(n)?;
                        args = args
                            .iter()
                            .map(|c| filter(c, mask.as_boolean()))
                            .collect::<Result<_, _>>()?;
                    }
                    acc.update_batch(&args)?;
                }
                let v = acc.evaluate()?;
                if v.data_type() == *t {
                    v
                } else {
                    v.cast_to(t)?
                }
            }
        })
    }

    /// Rows held: waiting, and in partial matches.
    pub fn state_size(&self) -> usize {
        self.pending.values().map(Vec::len).sum::<usize>()
            + self
                .partitions
                .values()
                .flat_map(|p| &p.partials)
                .map(|m| m.rows.len())
                .sum::<usize>()
    }

    pub fn state_bytes(&self) -> usize {
        let pending: usize = self
            .pending
            .values()
            .flatten()
            .map(|(k, r)| k.len() + r.len() + 32)
            .sum();
        let partials: usize = self
            .partitions
            .iter()
            .map(|(k, p)| {
                k.len()
                    + p.partials
                        .iter()
                        .flat_map(|m| &m.rows)
                        .map(|(_, r)| r.bytes.len() * 2 + 64)
                        .sum::<usize>()
            })
            .sum();
        pending + partials
    }

    /// Waiting rows and the rows of partial matches, tagged, in one batch;
    /// the partial matches' shapes in the metadata.
    pub fn snapshot(&mut self) -> Result<StageState, EngineError> {
        let mut held = TaggedRows::default();
        for (t, entries) in &self.pending {
            for (k, r) in entries {
                held.push(PENDING, *t, Some(k), Some(r));
            }
        }
        let mut shapes = vec![];
        for (k, part) in &self.partitions {
            for m in &part.partials {
                for (_, r) in &m.rows {
                    held.push(MATCHED, r.time, Some(k), Some(&r.bytes));
                }
                shapes.push(serde_json::json!({
                    "start": m.start,
                    "start_time": m.start_time,
                    "term": m.term,
                    "count": m.count,
                    "symbols": m.rows.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
                    "seqs": m.rows.iter().map(|(_, r)| r.seq).collect::<Vec<_>>(),
                    "next_seq": part.next_seq,
                }));
            }
        }
        Ok(StageState {
            batches: vec![held.into_batch()?],
            meta: serde_json::json!({
                "watermark": self.watermark,
                "late": self.late,
                "partials": shapes,
            }),
        })
    }

    pub fn restore(&mut self, state: &StageState) -> Result<(), EngineError> {
        self.pending.clear();
        self.partitions.clear();
        self.watermark = state.meta["watermark"].as_i64().unwrap_or(i64::MIN);
        self.late = state.meta["late"].as_u64().unwrap_or(0);
        let bad = |what: &str| EngineError::Checkpoint(format!("a MATCH_RECOGNIZE state {what}"));
        let empty = vec![];
        let shapes = state.meta["partials"].as_array().unwrap_or(&empty);
        let mut matched: Vec<(i64, Bytes, Bytes)> = vec![];
        for b in &state.batches {
            for (tag, t, k, r) in TaggedRows::read(b, "a MATCH_RECOGNIZE")? {
                let (k, r) = (k.unwrap_or_default(), r.unwrap_or_default());
                match tag {
                    PENDING => self
                        .pending
                        .entry(t)
                        .or_default()
                        .push((k.into(), r.into())),
                    _ => matched.push((t, k.into(), r.into())),
                }
            }
        }
        let values = self.decode(matched.iter().map(|(_, _, r)| &**r))?;
        let mut rows = matched.into_iter().zip(values);
        // Rows shared by several partial matches become one again.
        let mut shared: HashMap<(Bytes, u64), Arc<MatchRow>> = HashMap::default();
        for s in shapes {
            let field = |n: &str| s[n].as_u64().ok_or_else(|| bad(&format!("lacks {n}")));
            let symbols = s["symbols"]
                .as_array()
                .ok_or_else(|| bad("lacks symbols"))?;
            let seqs = s["seqs"].as_array().ok_or_else(|| bad("lacks seqs"))?;
            let mut m = Partial {
                start: field("start")?,
                start_time: s["start_time"]
                    .as_i64()
                    .ok_or_else(|| bad("lacks start_time"))?,
                term: field("term")? as usize,
                count: field("count")? as u32,
                rows: vec![],
            };
            let mut key: Bytes = Box::default();
            for (sym, seq) in symbols.iter().zip(seqs) {
                let ((time, k, bytes), values) = rows.next().ok_or_else(|| bad("lacks rows"))?;
                let seq = seq.as_u64().ok_or_else(|| bad("has a bad seq"))?;
                let row = shared
                    .entry((k.clone(), seq))
                    .or_insert_with(|| {
                        Arc::new(MatchRow {
                            seq,
                            time,
                            bytes,
                            values,
                        })
                    })
                    .clone();
                m.rows.push((sym.as_u64().unwrap_or(0) as usize, row));
                key = k;
            }
            let part = self.partitions.entry(key).or_default();
            part.next_seq = field("next_seq")?;
            part.partials.push(m);
        }
        Ok(())
    }
}
