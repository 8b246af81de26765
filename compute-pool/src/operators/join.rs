//! Regular joins (`INNER`, `LEFT`, `RIGHT`, `FULL`) over append and update
//! streams, emitting Flink's changelog.
//!
//! Each input keeps every row it holds, grouped by its equi-join key (both
//! in Arrow's row format), with a count for duplicates. An outer input also
//! keeps, per row, how many rows of the other input it matches, so that it
//! knows when to retract or emit its NULL-padded row. A change on one side
//! is joined with the rows the other side holds under the same key; the
//! non-equi part of the condition is evaluated over those candidate pairs
//! in one batch. Then each row is applied in order, as Flink's
//! `StreamingJoinOperator` does:
//!
//! - an inner join passes its input's row kind on (`+I`/`+U` add, `-U`/`-D`
//!   retract);
//! - an outer side emits `+I[row, NULL]` while it has no match, and `-D` it
//!   when the first match arrives (and the reverse when the last leaves);
//! - every other output of an outer join is `+I` or `-D`.
//!
//! A key with a NULL never matches (unless the keys compare with
//! `IS NOT DISTINCT FROM`) and is not kept in state.
//!
//! An interval join (the condition bounds `l.t - r.t` between two
//! constants, see `IntervalBounds`) runs on the same state with Flink's
//! `TimeIntervalJoin` rules: a row is held only while a row of the other
//! input could still match it, that is until the watermark passes its time
//! plus the bound (the `expires` of a held row is then that watermark); an
//! outer side's row that matched nothing emits `+I[row, NULL]` when it goes
//! (or at once, when it arrives too late to be held). Its output is
//! append-only; the inputs are. A window join (an interval join on equal
//! window ends) holds the rows it joins until the watermark reaches their
//! window's end, and emits them then, as Flink's window join does.
//!
//! With a state TTL (`'sql.state-ttl'`), a held row is forgotten once the
//! TTL has passed in processing time since it was last written, as Flink's
//! `OnCreateAndWrite` TTL does: it matches nothing after that, and nothing
//! is emitted when it goes.

use crate::hash::HashMap;
use std::sync::Arc;

use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BinaryArray, Int8Array, RecordBatch,
    RecordBatchOptions, UInt32Array,
};
use arrow::compute::take;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::row::{RowConverter, Rows};
use datafusion::common::DFSchema;
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::{create_physical_expr, PhysicalExpr};
use weir_sql_gateway::{IntervalBounds, JoinKind};

use crate::operators::changelog::{is_accumulate, Changes, DELETE, INSERT};
use crate::operators::group::{emitted_schema, row_converter, sort_fields};
use crate::runtime::checkpoint::StageState;
use crate::EngineError;

/// One row held, with its duplicates.
#[derive(Debug)]
struct Held {
    row: Box<[u8]>,
    count: u32,
    /// Rows of the other input this row matches (outer sides only).
    matches: u32,
    /// Processing time (ms) after which the row is forgotten, with a TTL.
    expires: i64,
}

/// One input of the join and the rows it holds.
struct Side {
    keys: Vec<Arc<dyn PhysicalExpr>>,
    /// `None` when the join has no equi-join key (every row shares one).
    key_rows: Option<RowConverter>,
    rows: RowConverter,
    types: Vec<DataType>,
    outer: bool,
    /// The input can retract rows; an append-only input's rows are never
    /// looked up again, so duplicates are held as separate entries.
    retracting: bool,
    state: HashMap<Box<[u8]>, Vec<Held>>,
    /// Rows held, duplicates included.
    held: usize,
}

impl Side {
    fn new(
        keys: &[Expr],
        schema: &DFSchema,
        outer: bool,
        retracting: bool,
    ) -> Result<Side, EngineError> {
        let props = ExecutionProps::new();
        let keys = keys
            .iter()
            .map(|k| create_physical_expr(k, schema, &props, &Default::default()))
            .collect::<Result<Vec<_>, _>>()?;
        let key_types = keys
            .iter()
            .map(|k| k.data_type(schema.as_arrow()))
            .collect::<Result<Vec<_>, _>>()?;
        let types: Vec<DataType> = schema
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let converter = |types: &[DataType]| row_converter(sort_fields(types), "a join input");
        Ok(Side {
            key_rows: if keys.is_empty() {
                None
            } else {
                Some(converter(&key_types)?)
            },
            rows: converter(&types)?,
            keys,
            types,
            outer,
            retracting,
            state: HashMap::default(),
            held: 0,
        })
    }

    fn add(&mut self, key: &[u8], row: &[u8], matches: u32, expires: i64) {
        self.held += 1;
        // Most keys hold one row: a new bucket starts with room for one
        // (a default `Vec` would reserve four).
        let bucket = match self.state.get_mut(key) {
            Some(b) => b,
            None => self
                .state
                .entry(key.into())
                .or_insert_with(|| Vec::with_capacity(1)),
        };
        if self.retracting {
            if let Some(h) = bucket.iter_mut().find(|h| &*h.row == row) {
                h.count += 1;
                h.matches = matches;
                h.expires = expires;
                return;
            }
        }
        bucket.push(Held {
            row: row.into(),
            count: 1,
            matches,
            expires,
        });
    }

    fn retract(&mut self, key: &[u8], row: &[u8], expires: i64) {
        let Some(bucket) = self.state.get_mut(key) else {
            return;
        };
        let Some(p) = bucket.iter().position(|h| &*h.row == row) else {
            return;
        };
        self.held -= 1;
        bucket[p].count -= 1;
        bucket[p].expires = expires;
        if bucket[p].count == 0 {
            bucket.remove(p);
            if bucket.is_empty() {
                self.state.remove(key);
            }
        }
    }

    /// Forgets the rows whose TTL passed.
    fn expire(&mut self, now: i64) {
        let mut gone = 0usize;
        self.state.retain(|_, bucket| {
            bucket.retain(|h| {
                let keep = h.expires > now;
                if !keep {
                    gone += h.count as usize;
                }
                keep
            });
            !bucket.is_empty()
        });
        self.held -= gone;
    }

    fn bytes(&self) -> usize {
        let slot = std::mem::size_of::<(Box<[u8]>, Vec<Held>)>() + 1;
        self.state.capacity() * slot
            + self
                .state
                .iter()
                .map(|(k, b)| {
                    k.len()
                        + b.capacity() * std::mem::size_of::<Held>()
                        + b.iter().map(|h| h.row.len()).sum::<usize>()
                })
                .sum::<usize>()
    }
}

/// The columns of a pair in output order, from the input's (`mine`, on the
/// right when `right`) and the other side's.
fn left_then_right(right: bool, mine: Vec<ArrayRef>, theirs: Vec<ArrayRef>) -> Vec<ArrayRef> {
    let (mut cols, rest) = if right {
        (theirs, mine)
    } else {
        (mine, theirs)
    };
    cols.extend(rest);
    cols
}

/// An interval join's bounds and clock.
struct Interval {
    /// Each input's time attribute, over its own schema.
    times: [Arc<dyn PhysicalExpr>; 2],
    /// `lower <= l.t - r.t <= upper`, in milliseconds.
    lower: i64,
    upper: i64,
    /// The watermark, `i64::MIN` before the first.
    watermark: i64,
    /// A window join: joined rows wait for their window's end.
    window: bool,
    /// A window join's joined rows, by window end, until the watermark
    /// reaches it.
    pending: std::collections::BTreeMap<i64, Vec<RecordBatch>>,
}

impl Interval {
    /// The watermark at which a row at `t` on `right` (or the left) can
    /// match nothing more: Flink's expiration time plus one.
    fn expires(&self, right: bool, t: i64) -> i64 {
        if right {
            t.saturating_add(self.upper).saturating_add(1)
        } else {
            t.saturating_sub(self.lower).saturating_add(1)
        }
    }
}

/// The regular join operator.
pub struct Join {
    sides: [Side; 2],
    null_equal: bool,
    /// The non-equi condition, over the left columns then the right.
    filter: Option<Arc<dyn PhysicalExpr>>,
    /// Both inputs' columns, nullable: the candidate pairs' schema.
    pairs: SchemaRef,
    output: SchemaRef,
    /// `'sql.state-ttl'` in milliseconds.
    ttl_ms: Option<i64>,
    /// When the next sweep of expired rows is due.
    next_sweep: i64,
    interval: Option<Interval>,
    /// A semi (`Some(false)`) or anti (`Some(true)`) join.
    semi: Option<bool>,
    /// The statement's memory limit: the most bytes of candidate pairs one
    /// batch may gather (`None`: no limit).
    memory_limit: Option<usize>,
}

/// Bytes a candidate pair costs beyond its rows: its place in the
/// candidate, input and position lists and in the emitted indices.
const PAIR_OVERHEAD: usize = 32;

impl std::fmt::Debug for Join {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Join({} left rows, {} right rows held)",
            self.sides[0].held, self.sides[1].held
        )
    }
}

/// The rows a batch emits, as indices into the input batch and into the
/// candidate rows of the other side (`None`: NULL padding).
#[derive(Default)]
struct Emitted {
    ops: Vec<i8>,
    input: Vec<Option<u32>>,
    other: Vec<Option<u32>>,
}

impl Emitted {
    fn push(&mut self, op: i8, input: Option<usize>, other: Option<usize>) {
        self.ops.push(op);
        self.input.push(input.map(|i| i as u32));
        self.other.push(other.map(|i| i as u32));
    }
}

impl Join {
    pub fn new(
        kind: JoinKind,
        on: &[(Expr, Expr)],
        filter: Option<&Expr>,
        null_equal: bool,
        (left_schema, left_retracting): (&DFSchema, bool),
        (right_schema, right_retracting): (&DFSchema, bool),
        output_schema: &DFSchema,
    ) -> Result<Join, EngineError> {
        let (lk, rk): (Vec<Expr>, Vec<Expr>) = on.iter().cloned().unzip();
        // A semi or anti join counts each left row's matches, as an outer
        // side does.
        let left = Side::new(
            &lk,
            left_schema,
            kind.left_outer() || kind.is_semi(),
            left_retracting,
        )?;
        let right = Side::new(&rk, right_schema, kind.right_outer(), right_retracting)?;
        let nullable = |s: &DFSchema| {
            s.fields()
                .iter()
                .map(|f| Field::new(f.name(), f.data_type().clone(), true))
                .collect::<Vec<_>>()
        };
        let mut fields = nullable(left_schema);
        fields.extend(nullable(right_schema));
        let filter = match filter {
            Some(f) => {
                let mut joined = left_schema.clone();
                joined.merge(right_schema);
                Some(create_physical_expr(
                    f,
                    &joined,
                    &ExecutionProps::new(),
                    &Default::default(),
                )?)
            }
            None => None,
        };
        Ok(Join {
            sides: [left, right],
            null_equal,
            filter,
            pairs: Arc::new(Schema::new(fields)),
            output: emitted_schema(output_schema),
            ttl_ms: None,
            next_sweep: i64::MIN,
            interval: None,
            memory_limit: None,
            semi: match kind {
                JoinKind::LeftSemi => Some(false),
                JoinKind::LeftAnti => Some(true),
                _ => None,
            },
        })
    }

    /// Makes the join an interval join with `bounds` (time attributes over
    /// the left and right input's schemas).
    pub fn with_interval(
        mut self,
        bounds: &IntervalBounds,
        left_schema: &DFSchema,
        right_schema: &DFSchema,
    ) -> Result<Join, EngineError> {
        let props = ExecutionProps::new();
        self.interval = Some(Interval {
            times: [
                create_physical_expr(&bounds.left_time, left_schema, &props, &Default::default())?,
                create_physical_expr(
                    &bounds.right_time,
                    right_schema,
                    &props,
                    &Default::default(),
                )?,
            ],
            lower: bounds.lower_ms,
            upper: bounds.upper_ms,
            watermark: i64::MIN,
            window: bounds.window,
            pending: Default::default(),
        });
        self.ttl_ms = None;
        Ok(self)
    }

    /// Forgets held rows `ttl_ms` after their last write (`None`: never).
    /// An interval join frees its rows by the watermark instead.
    /// See [`crate::runtime::pipeline::Stages::set_memory_limit`].
    pub fn set_memory_limit(&mut self, bytes: Option<usize>) {
        self.memory_limit = bytes;
    }

    pub fn set_state_ttl(&mut self, ttl_ms: Option<i64>) {
        if self.interval.is_none() {
            self.ttl_ms = ttl_ms.filter(|t| *t > 0);
        }
    }

    /// Moves an interval join's watermark to `wm`: frees the rows that can
    /// match nothing more, and emits the NULL-padded rows of an outer side
    /// that matched nothing. A regular join has nothing to do.
    pub fn advance(&mut self, wm: i64) -> Result<Vec<Changes>, EngineError> {
        let Some(iv) = &mut self.interval else {
            return Ok(vec![]);
        };
        if wm <= iv.watermark {
            return Ok(vec![]);
        }
        iv.watermark = wm;
        let mut out = vec![];
        let semi = self.semi;
        // A window's joined rows, once the watermark reaches its end (its
        // last millisecond, `end - 1`).
        let later = iv.pending.split_off(&wm.saturating_add(2));
        for (_, batches) in std::mem::replace(&mut iv.pending, later) {
            out.extend(batches.into_iter().map(Changes::inserts));
        }
        for right in [false, true] {
            let side = &mut self.sides[usize::from(right)];
            // With the watermark each expired at: emitted in that order
            // (then by their bytes), not the hash table's, which a restore
            // from a checkpoint changes.
            let mut padded: Vec<(i64, Box<[u8]>)> = vec![];
            let outer = side.outer;
            let mut gone = 0usize;
            side.state.retain(|_, bucket| {
                bucket.retain_mut(|h| {
                    if h.expires > wm {
                        return true;
                    }
                    gone += h.count as usize;
                    // A window semi (anti) join's left row, matched (not)
                    // within its window; an outer side's row that matched
                    // nothing, padded.
                    let emit = match semi {
                        Some(anti) => !right && (h.matches > 0) != anti,
                        None => outer && h.matches == 0,
                    };
                    if emit {
                        for _ in 0..h.count {
                            padded.push((h.expires, h.row.clone()));
                        }
                    }
                    false
                });
                !bucket.is_empty()
            });
            side.held -= gone;
            if padded.is_empty() {
                continue;
            }
            padded.sort_unstable();
            let parser = side.rows.parser();
            let mine = side
                .rows
                .convert_rows(padded.iter().map(|(_, r)| parser.parse(r)))?;
            let other = &self.sides[usize::from(!right)];
            let n = padded.len();
            let cols = if semi.is_some() {
                mine
            } else {
                let theirs = other.types.iter().map(|t| new_null_array(t, n)).collect();
                left_then_right(right, mine, theirs)
            };
            out.push(Changes::inserts(RecordBatch::try_new_with_options(
                self.output.clone(),
                cols,
                &RecordBatchOptions::new().with_row_count(Some(n)),
            )?));
        }
        Ok(out)
    }

    /// Rows held by both inputs, duplicates included.
    pub fn state_size(&self) -> usize {
        self.sides.iter().map(|s| s.held).sum()
    }

    /// Bytes of state held: keys, rows, counts and hash slots.
    pub fn state_bytes(&self) -> usize {
        let waiting: usize = self.interval.as_ref().map_or(0, |iv| {
            iv.pending
                .values()
                .flatten()
                .map(RecordBatch::get_array_memory_size)
                .sum()
        });
        self.sides.iter().map(Side::bytes).sum::<usize>() + waiting
    }

    /// Applies a batch of changes arriving on the left (`right == false`)
    /// or right input at processing time `now` (ms); returns the joined
    /// changes.
    pub fn process(
        &mut self,
        right: bool,
        c: &Changes,
        now: i64,
    ) -> Result<Vec<Changes>, EngineError> {
        let out = self.join(right, c, now)?;
        match &mut self.interval {
            Some(iv) if iv.window => {
                // Held by window end until the watermark reaches it.
                let width = self.sides[0].types.len();
                for changes in out {
                    let b = &changes.batch;
                    let left = RecordBatch::try_new_with_options(
                        Arc::new(Schema::new(b.schema().fields()[..width].to_vec())),
                        b.columns()[..width].to_vec(),
                        &RecordBatchOptions::new().with_row_count(Some(b.num_rows())),
                    )?;
                    let ends = crate::operators::times_ms(&iv.times[0], &left)?;
                    let mut by_end: std::collections::BTreeMap<i64, Vec<u32>> = Default::default();
                    for i in 0..b.num_rows() {
                        by_end.entry(ends.value(i)).or_default().push(i as u32);
                    }
                    for (end, rows) in by_end {
                        let idx = UInt32Array::from(rows);
                        let cols = b
                            .columns()
                            .iter()
                            .map(|c| take(c, &idx, None))
                            .collect::<Result<Vec<_>, _>>()?;
                        iv.pending
                            .entry(end)
                            .or_default()
                            .push(RecordBatch::try_new_with_options(
                                b.schema(),
                                cols,
                                &RecordBatchOptions::new().with_row_count(Some(idx.len())),
                            )?);
                    }
                }
                Ok(vec![])
            }
            _ => Ok(out),
        }
    }

    fn join(&mut self, right: bool, c: &Changes, now: i64) -> Result<Vec<Changes>, EngineError> {
        let n = c.num_rows();
        if n == 0 {
            return Ok(vec![]);
        }
        // An interval join's rows expire by the watermark, a TTL's by
        // processing time.
        let now = self.interval.as_ref().map_or(now, |iv| iv.watermark);
        let expires = match self.ttl_ms {
            Some(ttl) => {
                // Expired rows never match (checked below); sweeping them
                // out of memory every half TTL bounds what they cost.
                if now >= self.next_sweep {
                    for s in &mut self.sides {
                        s.expire(now);
                    }
                    self.next_sweep = now.saturating_add((ttl / 2).max(1));
                }
                now.saturating_add(ttl)
            }
            None => i64::MAX,
        };
        let [l, r] = &mut self.sides;
        let (input, other) = if right { (r, l) } else { (l, r) };
        let key_cols = input
            .keys
            .iter()
            .map(|k| k.evaluate(&c.batch).and_then(|v| v.into_array(n)))
            .collect::<Result<Vec<ArrayRef>, _>>()?;
        let key_rows = match &input.key_rows {
            Some(conv) => Some(conv.convert_columns(&key_cols)?),
            None => None,
        };
        let key = |i: usize| -> &[u8] { key_rows.as_ref().map_or(&[], |k: &Rows| k.row(i).data()) };
        // An interval join's row: the watermark it expires at, and whether
        // it arrives in time to be held (Flink: the watermark is before its
        // time plus the bound). A row without a time matches nothing.
        let times = match &self.interval {
            Some(iv) => {
                let t = crate::operators::times_ms(&iv.times[usize::from(right)], &c.batch)?;
                Some(
                    (0..n)
                        .map(|i| {
                            t.is_valid(i).then(|| {
                                let e = iv.expires(right, t.value(i));
                                (e, e - 1 > iv.watermark)
                            })
                        })
                        .collect::<Vec<_>>(),
                )
            }
            None => None,
        };
        let matchable: Vec<bool> = (0..n)
            .map(|i| {
                (self.null_equal || key_cols.iter().all(|k| k.is_valid(i)))
                    && times.as_ref().is_none_or(|t| t[i].is_some())
            })
            .collect();
        let interval = times.is_some();
        let input_rows = input.rows.convert_columns(c.batch.columns())?;
        // A side the query reads no column of has rows of no bytes (the
        // converter of no columns makes no rows at all).
        let no_columns = c.batch.num_columns() == 0;
        let row_of = |i: usize| -> &[u8] {
            if no_columns {
                &[]
            } else {
                input_rows.row(i).data()
            }
        };

        // The other side's rows under each input row's key.
        let mut cand_offsets = Vec::with_capacity(n + 1);
        cand_offsets.push(0usize);
        let mut cand_input: Vec<u32> = vec![];
        let mut cand_pos: Vec<u32> = vec![];
        let other_cols = {
            let parser = other.rows.parser();
            let mut found = vec![];
            // What the pairs will take: each candidate row, the input row
            // it is paired with, and the indices that track the pair.
            let mut pair_bytes = 0usize;
            for (i, ok) in matchable.iter().enumerate() {
                if *ok {
                    if let Some(bucket) = other.state.get(key(i)) {
                        for (p, h) in bucket.iter().enumerate() {
                            if h.expires <= now {
                                continue;
                            }
                            pair_bytes += 2 * h.row.len() + row_of(i).len() + PAIR_OVERHEAD;
                            if self.memory_limit.is_some_and(|l| pair_bytes > l) {
                                return Err(EngineError::MemoryLimit(format!(
                                    "the join matched one batch of {n} rows with so many held rows \
                                     ({} pairs after {} of its rows) that the pairs alone would pass the \
                                     statement's memory limit of {}; give the join a more selective \
                                     equality condition, or raise 'sql.memory.limit'",
                                    found.len(),
                                    i + 1,
                                    weir_sql_gateway::limits::human_bytes(self.memory_limit.unwrap_or(0) as u64),
                                )));
                            }
                            found.push(parser.parse(&h.row));
                            cand_input.push(i as u32);
                            cand_pos.push(p as u32);
                        }
                    }
                }
                cand_offsets.push(found.len());
            }
            if found.is_empty() {
                None
            } else {
                Some(other.rows.convert_rows(found)?)
            }
        };
        let mask = match (&self.filter, &other_cols) {
            (Some(f), Some(oc)) => {
                let idx = UInt32Array::from(cand_input);
                let mine = c
                    .batch
                    .columns()
                    .iter()
                    .map(|a| take(a, &idx, None))
                    .collect::<Result<Vec<_>, _>>()?;
                let cols = left_then_right(right, mine, oc.clone());
                let pairs = RecordBatch::try_new_with_options(
                    self.pairs.clone(),
                    cols,
                    &RecordBatchOptions::new().with_row_count(Some(idx.len())),
                )?;
                let m = f.evaluate(&pairs)?.into_array(idx.len())?;
                let m = m
                    .as_boolean_opt()
                    .ok_or_else(|| EngineError::Plan("a join condition is not boolean".into()))?
                    .clone();
                Some(m)
            }
            _ => None,
        };
        let passes = |k: usize| mask.as_ref().is_none_or(|m| m.is_valid(k) && m.value(k));

        let inner = !input.outer && !other.outer;
        let semi = self.semi;
        // A window semi or anti join emits a left row when its window ends
        // (see `advance`), with what matched it by then.
        let windowed = semi.is_some() && self.interval.as_ref().is_some_and(|iv| iv.window);
        let mut out = Emitted::default();
        let mut matched: Vec<usize> = vec![];
        for i in 0..n {
            let op = c.op(i);
            matched.clear();
            matched.extend((cand_offsets[i]..cand_offsets[i + 1]).filter(|k| passes(*k)));
            let mut bucket = if matched.is_empty() {
                None
            } else {
                other.state.get_mut(key(i))
            };
            if let Some(anti) = semi {
                // Only left rows come out: one whose match count leaves or
                // reaches zero appears or goes (the reverse for anti).
                let add = is_accumulate(op);
                // A window semi or anti join holds each row until its
                // window ends; a row too late for its window is dropped.
                let expires = match times.as_ref().map(|t| t[i]) {
                    Some(Some((e, true))) if windowed => e,
                    _ if windowed => continue,
                    _ => expires,
                };
                if !right {
                    let matches: u32 = matched
                        .iter()
                        .map(|&k| bucket.as_ref().expect("held")[cand_pos[k] as usize].count)
                        .sum();
                    if !windowed && (matches > 0) != anti {
                        out.push(if add { INSERT } else { DELETE }, Some(i), None);
                    }
                    if matchable[i] {
                        if add {
                            input.add(key(i), row_of(i), matches, expires);
                        } else {
                            input.retract(key(i), row_of(i), expires);
                        }
                    }
                } else {
                    for &k in &matched {
                        let h = &mut bucket.as_mut().expect("held")[cand_pos[k] as usize];
                        let before = h.matches > 0;
                        h.matches = if add {
                            h.matches + 1
                        } else {
                            h.matches.saturating_sub(1)
                        };
                        if before != (h.matches > 0) && !windowed {
                            let appears = (h.matches > 0) != anti;
                            for _ in 0..h.count {
                                out.push(if appears { INSERT } else { DELETE }, None, Some(k));
                            }
                        }
                    }
                    if matchable[i] {
                        if add {
                            input.add(key(i), row_of(i), 0, expires);
                        } else {
                            input.retract(key(i), row_of(i), expires);
                        }
                    }
                }
                continue;
            }
            if is_accumulate(op) {
                let mut matches = 0u32;
                for &k in &matched {
                    let h =
                        &mut bucket.as_mut().expect("matched rows are held")[cand_pos[k] as usize];
                    for _ in 0..h.count {
                        if other.outer && h.matches == 0 && !interval {
                            out.push(DELETE, None, Some(k));
                        }
                        out.push(if inner { op } else { INSERT }, Some(i), Some(k));
                    }
                    matches += h.count;
                    if other.outer {
                        h.matches += 1;
                    }
                }
                match times.as_ref().map(|t| t[i]) {
                    // Held until the watermark passes it; padded then.
                    Some(Some((expires, true))) if matchable[i] => {
                        input.add(key(i), row_of(i), matches, expires)
                    }
                    // Too late to be held: padded now.
                    Some(_) => {
                        if input.outer && matched.is_empty() {
                            out.push(INSERT, Some(i), None);
                        }
                    }
                    None => {
                        if input.outer && matched.is_empty() {
                            out.push(INSERT, Some(i), None);
                        }
                        if matchable[i] {
                            input.add(key(i), row_of(i), matches, expires);
                        }
                    }
                }
            } else {
                if matchable[i] {
                    input.retract(key(i), row_of(i), expires);
                }
                if input.outer && matched.is_empty() {
                    out.push(DELETE, Some(i), None);
                }
                for &k in &matched {
                    let h =
                        &mut bucket.as_mut().expect("matched rows are held")[cand_pos[k] as usize];
                    for _ in 0..h.count {
                        out.push(if input.outer { DELETE } else { op }, Some(i), Some(k));
                        if other.outer && h.matches == 1 {
                            out.push(INSERT, None, Some(k));
                        }
                    }
                    if other.outer {
                        h.matches = h.matches.saturating_sub(1);
                    }
                }
            }
        }
        if out.ops.is_empty() {
            return Ok(vec![]);
        }

        let rows = out.ops.len();
        let take_all = |cols: &[ArrayRef], idx: Vec<Option<u32>>| {
            let idx = UInt32Array::from(idx);
            cols.iter()
                .map(|a| take(a, &idx, None))
                .collect::<Result<Vec<_>, _>>()
        };
        let cols = if self.semi.is_some() {
            // The left rows: the input's, or the held left rows matched.
            if right {
                take_all(
                    &other_cols.expect("a change on the right emits matched rows"),
                    out.other,
                )?
            } else {
                take_all(c.batch.columns(), out.input)?
            }
        } else {
            let mine = take_all(c.batch.columns(), out.input)?;
            let theirs = match other_cols {
                Some(oc) => take_all(&oc, out.other)?,
                None => other
                    .types
                    .iter()
                    .map(|t| new_null_array(t, rows))
                    .collect(),
            };
            left_then_right(right, mine, theirs)
        };
        let batch = RecordBatch::try_new_with_options(
            self.output.clone(),
            cols,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?;
        let ops =
            (out.ops.iter().any(|o| *o != INSERT)).then(|| Arc::new(Int8Array::from(out.ops)));
        Ok(vec![Changes { batch, ops }])
    }

    /// Every held row: side (0 left, 1 right), key, row, count, matches,
    /// expiry.
    pub fn snapshot(&self) -> Result<StageState, EngineError> {
        let mut sides = vec![];
        let mut keys: Vec<&[u8]> = vec![];
        let mut rows: Vec<&[u8]> = vec![];
        let mut counts = vec![];
        let mut matches = vec![];
        let mut expires = vec![];
        for (s, side) in self.sides.iter().enumerate() {
            for (k, bucket) in &side.state {
                for h in bucket {
                    sides.push(s as i8);
                    keys.push(k);
                    rows.push(&h.row);
                    counts.push(h.count);
                    matches.push(h.matches);
                    expires.push(h.expires);
                }
            }
        }
        // A window join's rows waiting for their window's end: side 2, the
        // batch as Arrow IPC in `row`, the window end in `expires`.
        let mut waiting: Vec<(i64, Vec<u8>)> = vec![];
        if let Some(iv) = &self.interval {
            for (end, batches) in &iv.pending {
                waiting.push((*end, crate::runtime::checkpoint::encode_batches(batches)?));
            }
        }
        for (end, bytes) in &waiting {
            sides.push(2);
            keys.push(&[]);
            rows.push(bytes);
            counts.push(1);
            matches.push(0);
            expires.push(*end);
        }
        if sides.is_empty() {
            return Ok(StageState {
                batches: vec![],
                meta: self.snapshot_meta(),
            });
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("side", DataType::Int8, false),
            Field::new("key", DataType::Binary, false),
            Field::new("row", DataType::Binary, false),
            Field::new("count", DataType::UInt32, false),
            Field::new("matches", DataType::UInt32, false),
            Field::new("expires", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int8Array::from(sides)),
                Arc::new(BinaryArray::from(keys)),
                Arc::new(BinaryArray::from(rows)),
                Arc::new(UInt32Array::from(counts)),
                Arc::new(UInt32Array::from(matches)),
                Arc::new(arrow::array::Int64Array::from(expires)),
            ],
        )?;
        Ok(StageState {
            batches: vec![batch],
            meta: self.snapshot_meta(),
        })
    }

    /// An interval join's watermark, which decides what a row arriving
    /// after a restore may join.
    fn snapshot_meta(&self) -> serde_json::Value {
        match &self.interval {
            Some(iv) => serde_json::json!({ "watermark": iv.watermark }),
            None => serde_json::Value::Null,
        }
    }

    /// Restores what [`Join::snapshot`] took.
    pub fn restore(&mut self, state: &StageState) -> Result<(), EngineError> {
        for s in &mut self.sides {
            s.state.clear();
            s.held = 0;
        }
        if let Some(iv) = &mut self.interval {
            iv.watermark = state.meta["watermark"].as_i64().unwrap_or(i64::MIN);
            iv.pending.clear();
        }
        for b in &state.batches {
            if b.num_columns() != 6 {
                return Err(EngineError::Checkpoint(
                    "a join's checkpoint does not have the join's layout".into(),
                ));
            }
            let sides = b.column(0).as_primitive::<arrow::datatypes::Int8Type>();
            let keys = b.column(1).as_binary::<i32>();
            let rows = b.column(2).as_binary::<i32>();
            let counts = b.column(3).as_primitive::<arrow::datatypes::UInt32Type>();
            let matches = b.column(4).as_primitive::<arrow::datatypes::UInt32Type>();
            let expires = b.column(5).as_primitive::<arrow::datatypes::Int64Type>();
            for i in 0..b.num_rows() {
                if sides.value(i) == 2 {
                    let batches = crate::runtime::checkpoint::decode_batches(rows.value(i))?;
                    let Some(iv) = &mut self.interval else {
                        return Err(EngineError::Checkpoint(
                            "a window join's waiting rows in the checkpoint of another join".into(),
                        ));
                    };
                    iv.pending
                        .entry(expires.value(i))
                        .or_default()
                        .extend(batches);
                    continue;
                }
                let side = &mut self.sides[usize::from(sides.value(i) == 1)];
                side.held += counts.value(i) as usize;
                side.state
                    .entry(keys.value(i).into())
                    .or_default()
                    .push(Held {
                        row: rows.value(i).into(),
                        count: counts.value(i),
                        matches: matches.value(i),
                        expires: expires.value(i),
                    });
            }
        }
        Ok(())
    }
}
