//! Window aggregation over Flink's window TVFs, and the watermarks that
//! close windows.
//!
//! State is one set of DataFusion `GroupsAccumulator`s per open *slice*
//! (the span between two window bounds, whose rows share their windows: a
//! tumbling window is one slice, a hopping window of size `k × slide` is
//! `k`), with grouping keys in Arrow's row format mapped to group indexes:
//! a batch is split by slice, each part updates its slice's accumulators in
//! one vectorized call, so a row is aggregated once however many windows
//! hold it. When the watermark reaches a window's last millisecond
//! (`end - 1`, as in Flink) the window merges its slices' states and is
//! emitted once, append-only; a slice is dropped after its last window.
//! A record counts in those of its windows that have not been emitted; one
//! whose every window has been emitted is late: it is dropped and counted,
//! as Flink's window operators do.

use crate::hash::HashMap;
use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, BinaryArray, BooleanArray, Int64Array, RecordBatch,
    TimestampMillisecondArray, UInt32Array,
};
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, Field, Int64Type, SchemaRef, TimeUnit, TimestampMillisecondType};
use arrow::row::{RowConverter, Rows};
use datafusion::common::DFSchema;
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::{create_physical_expr, GroupsAccumulatorAdapter, PhysicalExpr};
use weir_sql_gateway::{GroupColumn, WindowKind, WindowSpec};

use crate::operators::group::{conform, emitted_schema, lower_aggregates, Aggregate, GroupKeys};
use crate::runtime::checkpoint::StageState;
use crate::EngineError;

/// Tracks a source's watermark: the maximum watermark-expression value seen
/// per partition, combined as the minimum over the partitions. With an idle
/// timeout, a partition that has sent nothing for that long (on the caller's
/// clock) stops holding the watermark back until it sends again.
#[derive(Debug, Clone)]
pub struct PartitionWatermarks {
    partitions: Vec<i32>,
    max: HashMap<i32, i64>,
    last_active: HashMap<i32, i64>,
    started_ms: i64,
    idle_ms: Option<i64>,
}

impl PartitionWatermarks {
    /// `partitions`: every partition the source reads; one that has sent
    /// nothing yet holds the watermark back (until it counts as idle).
    pub fn new(partitions: Vec<i32>, idle_ms: Option<i64>, now_ms: i64) -> PartitionWatermarks {
        PartitionWatermarks {
            partitions,
            max: HashMap::default(),
            last_active: HashMap::default(),
            started_ms: now_ms,
            idle_ms: idle_ms.filter(|t| *t > 0),
        }
    }

    /// Notes watermark values (milliseconds) of rows of the given
    /// partitions, read at `now_ms`; NULLs are skipped.
    pub fn observe(&mut self, partitions: &[i32], values: &TimestampMillisecondArray, now_ms: i64) {
        for (p, v) in partitions.iter().zip(values.iter()) {
            self.last_active.insert(*p, now_ms);
            if let Some(v) = v {
                let e = self.max.entry(*p).or_insert(i64::MIN);
                *e = (*e).max(v);
            }
        }
    }

    /// The source's watermark at `now_ms`, once every partition that is not
    /// idle has one; `None` while one has none, or when all are idle.
    /// Whether every partition counts as idle at `now_ms`: the source then
    /// holds no watermark back, as an idle Flink source does not.
    pub fn all_idle(&self, now_ms: i64) -> bool {
        let Some(t) = self.idle_ms else {
            return false;
        };
        self.partitions
            .iter()
            .all(|p| now_ms - self.last_active.get(p).copied().unwrap_or(self.started_ms) >= t)
    }

    pub fn current(&self, now_ms: i64) -> Option<i64> {
        let active = |p: &&i32| match self.idle_ms {
            None => true,
            Some(t) => now_ms - self.last_active.get(*p).copied().unwrap_or(self.started_ms) < t,
        };
        let mut any = false;
        let mut wm = i64::MAX;
        for p in self.partitions.iter().filter(active) {
            any = true;
            wm = wm.min(*self.max.get(p)?);
        }
        any.then_some(wm)
    }
}

/// Takes a source's decoded batch: notes its watermark values per
/// partition (`partitions`: each row's) and, under the table option
/// `'late-handling.mode' = 'filter'`, drops the rows behind the watermark
/// as it stood before the batch (`'pass-through'`, the default, keeps
/// them). Returns the rows kept and how many were dropped.
pub fn admit_batch(
    tracker: &mut PartitionWatermarks,
    watermark_expr: &Arc<dyn PhysicalExpr>,
    table: &weir_catalog::TableDef,
    batch: RecordBatch,
    partitions: &[i32],
    now_ms: i64,
) -> Result<(RecordBatch, usize), EngineError> {
    let values = watermark_values(watermark_expr, &batch)?;
    let before = tracker.current(now_ms);
    tracker.observe(partitions, &values, now_ms);
    if table.option("late-handling.mode") == Some("filter") {
        drop_late_rows(table, batch, before)
    } else {
        Ok((batch, 0))
    }
}

/// Keeps the rows whose time attribute (the `WATERMARK FOR` column, else
/// `$rowtime`) is not behind `watermark`; rows without one are kept.
/// Returns them and how many were dropped.
fn drop_late_rows(
    table: &weir_catalog::TableDef,
    batch: RecordBatch,
    watermark: Option<i64>,
) -> Result<(RecordBatch, usize), EngineError> {
    let Some(wm) = watermark else {
        return Ok((batch, 0));
    };
    let column = table
        .watermark
        .as_ref()
        .map_or("$rowtime", |w| w.column.as_str());
    let Ok(i) = batch.schema().index_of(column) else {
        return Ok((batch, 0));
    };
    let ms = cast(
        batch.column(i),
        &DataType::Timestamp(TimeUnit::Millisecond, None),
    )?;
    let keep: BooleanArray = ms
        .as_primitive::<TimestampMillisecondType>()
        .iter()
        .map(|v| Some(v.is_none_or(|v| v >= wm)))
        .collect();
    let dropped = keep.false_count();
    if dropped == 0 {
        return Ok((batch, 0));
    }
    Ok((arrow::compute::filter_record_batch(&batch, &keep)?, dropped))
}

/// Evaluates a source's watermark expression over a decoded batch, in
/// milliseconds.
pub fn watermark_values(
    expr: &Arc<dyn PhysicalExpr>,
    batch: &RecordBatch,
) -> Result<TimestampMillisecondArray, EngineError> {
    if let Some((time, shift_ms)) = fixed_shift(expr) {
        let v = time.evaluate(batch)?.into_array(batch.num_rows())?;
        if let DataType::Timestamp(TimeUnit::Millisecond, _) = v.data_type() {
            let ms = cast(&v, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
            return Ok(arrow::compute::kernels::arity::unary(
                ms.as_primitive::<TimestampMillisecondType>(),
                |t| t.wrapping_add(shift_ms),
            ));
        }
    }
    let v = expr.evaluate(batch)?.into_array(batch.num_rows())?;
    let ms = cast(&v, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
    Ok(ms.as_primitive::<TimestampMillisecondType>().clone())
}

/// `t - INTERVAL '4' SECOND` (or `+`), an interval of whole milliseconds
/// without months or days, as `t` and the shift: one addition per row,
/// where Arrow's interval arithmetic goes through the calendar per row (a
/// watermark's usual expression, about 8% of Nexmark q5's time).
fn fixed_shift(expr: &Arc<dyn PhysicalExpr>) -> Option<(&Arc<dyn PhysicalExpr>, i64)> {
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::expressions::{BinaryExpr, Literal};
    let b = expr.downcast_ref::<BinaryExpr>()?;
    let sign = match b.op() {
        Operator::Minus => -1,
        Operator::Plus => 1,
        _ => return None,
    };
    let lit = b.right().downcast_ref::<Literal>()?;
    let ScalarValue::IntervalMonthDayNano(Some(v)) = lit.value() else {
        return None;
    };
    if v.months != 0 || v.days != 0 || v.nanoseconds % 1_000_000 != 0 {
        return None;
    }
    Some((b.left(), sign * (v.nanoseconds / 1_000_000)))
}

pub(crate) fn groups_accumulator(a: &Aggregate) -> Result<Box<dyn GroupsAccumulator>, EngineError> {
    if a.expr.groups_accumulator_supported() {
        Ok(a.expr.create_groups_accumulator()?)
    } else {
        let e = a.expr.clone();
        Ok(Box::new(GroupsAccumulatorAdapter::new(move || {
            e.create_accumulator()
        })))
    }
}

/// Appends each accumulator's state, `groups` groups long, to a snapshot
/// as columns `a<j>_<k>`, and puts it back (`state` hands it out).
pub(crate) fn snapshot_states(
    aggs: &[Aggregate],
    accs: &mut [Box<dyn GroupsAccumulator>],
    groups: usize,
    fields: &mut Vec<Field>,
    columns: &mut Vec<ArrayRef>,
) -> Result<(), EngineError> {
    let identity: Vec<usize> = (0..groups).collect();
    for (j, (a, acc)) in aggs.iter().zip(accs.iter_mut()).enumerate() {
        let st = acc.state(EmitTo::All)?;
        let mut fresh = groups_accumulator(a)?;
        fresh.merge_batch(&st, &identity, groups)?;
        *acc = fresh;
        for (k, s) in st.into_iter().enumerate() {
            fields.push(Field::new(format!("a{j}_{k}"), s.data_type().clone(), true));
            columns.push(s);
        }
    }
    Ok(())
}

/// Merges the `a<j>_<k>` columns [`snapshot_states`] wrote into `accs`,
/// the batch's row `i` into group `first + i`.
pub(crate) fn restore_states(
    accs: &mut [Box<dyn GroupsAccumulator>],
    batch: &RecordBatch,
    first: usize,
) -> Result<(), EngineError> {
    let n = batch.num_rows();
    let groups: Vec<usize> = (first..first + n).collect();
    let schema = batch.schema();
    for (j, acc) in accs.iter_mut().enumerate() {
        let prefix = format!("a{j}_");
        let st: Vec<ArrayRef> = (0..batch.num_columns())
            .filter(|c| schema.field(*c).name().starts_with(&prefix))
            .map(|c| batch.column(c).clone())
            .collect();
        acc.merge_batch(&st, &groups, first + n)?;
    }
    Ok(())
}

struct WindowState {
    groups: HashMap<Box<[u8]>, usize>,
    keys: Rows,
    accs: Vec<Box<dyn GroupsAccumulator>>,
}

impl WindowState {
    /// A window with no group yet.
    fn new(converter: &RowConverter, aggs: &[Aggregate]) -> Result<WindowState, EngineError> {
        Ok(WindowState {
            groups: HashMap::default(),
            keys: converter.empty_rows(0, 0),
            accs: aggs
                .iter()
                .map(groups_accumulator)
                .collect::<Result<_, _>>()?,
        })
    }

    /// The group of `key` (`None`: the one group of a window without keys),
    /// added if new.
    fn group(&mut self, key: Option<arrow::row::Row<'_>>) -> usize {
        let Some(row) = key else {
            if self.groups.is_empty() {
                self.groups.insert(Box::from(&[][..]), 0);
            }
            return 0;
        };
        match self.groups.get(row.as_ref()) {
            Some(g) => *g,
            None => {
                let g = self.groups.len();
                self.groups.insert(row.as_ref().into(), g);
                self.keys.push(row);
                g
            }
        }
    }

    /// Merges chunks of accumulator states into this window's groups, in
    /// their order: one merge per aggregate over the chunks' states put
    /// end to end, so that a window of many small slices costs one call,
    /// not one per slice.
    fn merge(&mut self, chunks: &[&Chunk], keyed: bool) -> Result<(), EngineError> {
        let mut groups: Vec<usize> = Vec::with_capacity(chunks.iter().map(|c| c.groups).sum());
        for c in chunks {
            if keyed {
                groups.extend(c.keys.iter().map(|r| self.group(Some(r))));
            } else {
                groups.extend((0..c.groups).map(|_| self.group(None)));
            }
        }
        let total = self.groups.len();
        for (j, acc) in self.accs.iter_mut().enumerate() {
            let states: Vec<ArrayRef> = match chunks {
                [one] => one.states[j].clone(),
                _ => (0..chunks.first().map_or(0, |c| c.states[j].len()))
                    .map(|k| {
                        let parts: Vec<&dyn arrow::array::Array> =
                            chunks.iter().map(|c| c.states[j][k].as_ref()).collect();
                        arrow::compute::concat(&parts)
                    })
                    .collect::<Result<_, _>>()?,
            };
            acc.merge_batch(&states, &groups, total)?;
        }
        Ok(())
    }

    /// A copy of this window's groups and states (`state` hands them out,
    /// so they are put back).
    fn copy(
        &mut self,
        converter: &RowConverter,
        aggs: &[Aggregate],
    ) -> Result<WindowState, EngineError> {
        let n = self.groups.len();
        let identity: Vec<usize> = (0..n).collect();
        let mut copy = WindowState {
            groups: self.groups.clone(),
            keys: converter.empty_rows(0, 0),
            accs: Vec::with_capacity(aggs.len()),
        };
        for r in self.keys.iter() {
            copy.keys.push(r);
        }
        for (a, acc) in aggs.iter().zip(self.accs.iter_mut()) {
            let st = acc.state(EmitTo::All)?;
            let mut kept = groups_accumulator(a)?;
            kept.merge_batch(&st, &identity, n)?;
            *acc = kept;
            let mut other = groups_accumulator(a)?;
            other.merge_batch(&st, &identity, n)?;
            copy.accs.push(other);
        }
        Ok(copy)
    }

    fn bytes(&self) -> usize {
        self.accs.iter().map(|a| a.size()).sum::<usize>()
            + self.keys.size()
            + self.groups.capacity() * (std::mem::size_of::<(Box<[u8]>, usize)>() + 1)
            + self.groups.keys().map(|k| k.len()).sum::<usize>()
    }
}

/// Accumulator states handed out by a slice, read by each of its windows
/// as they fire: the groups' keys (Arrow row format; empty without keys)
/// and, per aggregate, its state arrays.
struct Chunk {
    keys: Rows,
    groups: usize,
    states: Vec<Vec<ArrayRef>>,
}

impl Chunk {
    fn bytes(&self) -> usize {
        self.keys.size()
            + self
                .states
                .iter()
                .flatten()
                .map(|a| a.get_array_memory_size())
                .sum::<usize>()
    }
}

/// The rows of one slice of time: the span between two window bounds,
/// whose rows all fall in the same windows (a tumbling window is one
/// slice; a hopping window of size `k × slide` is `k`). A row updates its
/// slice once, not each of its windows; a window, when it fires, merges
/// its slices (Flink's slice-shared window aggregation).
struct Slice {
    /// The windows the slice is in, sorted by `(end, start)`.
    windows: Vec<(i64, i64)>,
    /// Rows since the slice was last read.
    live: WindowState,
    /// What earlier reads took out of `live`, in arrival order.
    frozen: Vec<Chunk>,
}

impl Slice {
    /// Moves `live`'s groups into a chunk of `frozen`, for windows to read.
    fn freeze(&mut self, converter: &RowConverter, aggs: &[Aggregate]) -> Result<(), EngineError> {
        if self.live.groups.is_empty() {
            return Ok(());
        }
        let live = std::mem::replace(&mut self.live, WindowState::new(converter, aggs)?);
        let groups = live.groups.len();
        let states = live
            .accs
            .into_iter()
            .map(|mut a| a.state(EmitTo::All))
            .collect::<Result<Vec<_>, _>>()?;
        self.frozen.push(Chunk {
            keys: live.keys,
            groups,
            states,
        });
        Ok(())
    }

    /// The end of the slice's last window (`windows` is sorted by end).
    fn last_end(&self) -> i64 {
        self.windows.last().map_or(i64::MIN, |w| w.1)
    }
}

/// The first columns of a snapshot batch of `n` groups: `start`, `end`
/// and each group's key (Arrow row format; empty without keys).
fn snapshot_header(
    start: i64,
    end: i64,
    keyed: bool,
    keys: &Rows,
    n: usize,
) -> (Vec<Field>, Vec<ArrayRef>) {
    let keys: Vec<&[u8]> = if keyed {
        keys.iter().map(|r| r.data()).collect()
    } else {
        vec![&[]; n]
    };
    (
        vec![
            Field::new("start", DataType::Int64, false),
            Field::new("end", DataType::Int64, false),
            Field::new("key", DataType::Binary, false),
        ],
        vec![
            Arc::new(Int64Array::from(vec![start; n])),
            Arc::new(Int64Array::from(vec![end; n])),
            Arc::new(BinaryArray::from(keys)),
        ],
    )
}

/// A cumulating period's windows so far: the merge of the chunks its
/// slices handed out (how many of each slice's), which each of its windows
/// extends by the slices it adds, as Flink's cumulating windows share their
/// first slice's accumulator.
struct Running {
    state: WindowState,
    merged: HashMap<i64, usize>,
}

/// The window aggregation operator.
pub struct WindowAggregate {
    window: WindowSpec,
    time: Arc<dyn PhysicalExpr>,
    keys: GroupKeys,
    aggs: Vec<Aggregate>,
    layout: Vec<GroupColumn>,
    output: SchemaRef,
    /// Open slices by the first end of their windows.
    slices: BTreeMap<i64, Slice>,
    /// Whole windows by `(end, start)`, restored from a checkpoint taken
    /// before windows were sliced; merged with their slices when they fire.
    restored: BTreeMap<(i64, i64), WindowState>,
    /// Cumulating periods by their start (not checkpointed: rebuilt from
    /// the slices, which live until the period's last window).
    running: HashMap<i64, Running>,
    /// The earliest end of a window not yet fired: until the watermark
    /// reaches it, advancing it fires nothing.
    next_end: Option<i64>,
    watermark: Option<i64>,
    /// Records dropped because their window had been emitted.
    pub late: u64,
}

impl std::fmt::Debug for WindowAggregate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "WindowAggregate({}, {} slices open)",
            self.window,
            self.slices.len()
        )
    }
}

/// `(start, end)` of each window a slice is in.
type Windows = Vec<(i64, i64)>;

/// The `start` of a snapshot batch that holds a slice's chunk (its `end`
/// is the slice's key), not a whole window.
const SLICE_MARK: i64 = i64::MIN;

impl WindowAggregate {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        window: WindowSpec,
        time: &datafusion::logical_expr::Expr,
        keys: &[datafusion::logical_expr::Expr],
        layout: &[GroupColumn],
        aggs: &[datafusion::logical_expr::Expr],
        input_schema: &DFSchema,
        output_schema: &DFSchema,
    ) -> Result<WindowAggregate, EngineError> {
        let time = create_physical_expr(
            time,
            input_schema,
            &ExecutionProps::new(),
            &Default::default(),
        )?;
        Ok(WindowAggregate {
            window,
            time,
            keys: GroupKeys::new(keys, input_schema)?,
            aggs: lower_aggregates(aggs, input_schema)?,
            layout: layout.to_vec(),
            output: emitted_schema(output_schema),
            slices: BTreeMap::new(),
            restored: BTreeMap::new(),
            running: HashMap::default(),
            next_end: None,
            watermark: None,
            late: 0,
        })
    }

    pub fn output_schema(&self) -> &SchemaRef {
        &self.output
    }

    /// Slices open (a tumbling window is one; a hopping window of size
    /// `k × slide` spans `k`) and groups held (per slice and key), for
    /// metrics.
    pub fn state_size(&self) -> (usize, usize) {
        let groups = self
            .slices
            .values()
            .map(|s| s.live.groups.len() + s.frozen.iter().map(|c| c.groups).sum::<usize>())
            .chain(self.restored.values().map(|w| w.groups.len()))
            .sum();
        (self.slices.len() + self.restored.len(), groups)
    }

    /// The earliest end of a window that has not fired, of every slice's
    /// windows (sorted by end) and the restored ones.
    fn earliest_unfired_end(&self) -> Option<i64> {
        let wm = self.watermark;
        let unfired = move |end: i64| wm.is_none_or(|wm| end - 1 > wm);
        self.slices
            .values()
            .filter_map(|s| {
                let i = s.windows.partition_point(|w| !unfired(w.1));
                s.windows.get(i).map(|w| w.1)
            })
            .chain(self.restored.keys().map(|w| w.0).filter(|e| unfired(*e)))
            .min()
    }

    /// Bytes of state held: per slice its accumulators and the states it
    /// handed out, per cumulating period its merge so far, keys (Arrow row
    /// format) and key index (an estimate; allocator overhead is not
    /// counted).
    pub fn state_bytes(&self) -> usize {
        self.slices
            .values()
            .map(|s| s.live.bytes() + s.frozen.iter().map(Chunk::bytes).sum::<usize>())
            .chain(self.restored.values().map(WindowState::bytes))
            .chain(self.running.values().map(|r| r.state.bytes()))
            .sum()
    }

    /// Adds a batch's rows to their slices.
    pub fn process(&mut self, batch: &RecordBatch) -> Result<(), EngineError> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let times = watermark_values(&self.time, batch)?;
        // Without keys every row of a window is in its one group.
        let rows = self.keys.rows(batch)?;
        let mut args = Vec::with_capacity(self.aggs.len());
        let mut filters = Vec::with_capacity(self.aggs.len());
        for a in &self.aggs {
            args.push(
                a.args
                    .iter()
                    .map(|e| e.evaluate(batch).and_then(|v| v.into_array(n)))
                    .collect::<Result<Vec<_>, _>>()?,
            );
            filters.push(match &a.filter {
                Some(f) => Some(f.evaluate(batch)?.into_array(n)?),
                None => None,
            });
        }
        // Rows per slice, in arrival order. Consecutive rows are mostly in
        // one slice: its bounds are kept to skip working out the windows.
        let mut per_slice: BTreeMap<i64, (Windows, Vec<u32>)> = BTreeMap::new();
        // The last slice's `[from, key)`.
        let mut last: Option<(i64, i64)> = None;
        for (i, t) in times.iter().enumerate() {
            let Some(t) = t else {
                // Flink refuses a NULL time attribute; the row cannot be
                // placed in a window.
                self.late += 1;
                continue;
            };
            if let Some((from, key)) = last {
                if t >= from && t < key {
                    per_slice.get_mut(&key).expect("noted").1.push(i as u32);
                    continue;
                }
            }
            // Windows that have fired are not emitted again; a row whose
            // slice is still in unfired windows counts in those (as in
            // Flink's slicing operators). It is late, dropped and counted,
            // only when its last window has fired.
            let mut windows = self.window.windows(t);
            if let Some(wm) = self.watermark {
                if !windows.iter().any(|(_, end)| end - 1 > wm) {
                    // A processing-time window takes a row by the time it
                    // reaches it, as Flink assigns by the operator's clock:
                    // a row whose PROCTIME() was read before its windows
                    // fired (it waited in a queue meanwhile) goes to the
                    // windows open now, never late.
                    windows = if self.window.proctime {
                        self.window.windows(wm.saturating_add(1))
                    } else {
                        vec![]
                    };
                }
            }
            let Some(key) = windows.iter().map(|w| w.1).min() else {
                self.late += 1;
                continue;
            };
            last = self
                .slice_start(&windows, key)
                .filter(|from| *from <= t && t < key)
                .map(|from| (from, key));
            per_slice
                .entry(key)
                .or_insert_with(|| (windows, vec![]))
                .1
                .push(i as u32);
        }
        let whole =
            per_slice.len() == 1 && per_slice.values().next().is_some_and(|v| v.1.len() == n);
        for (key, (mut windows, idx)) in per_slice {
            let slice = match self.slices.entry(key) {
                std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => {
                    windows.sort_unstable_by_key(|w| (w.1, w.0));
                    let wm = self.watermark;
                    if let Some(first) = windows
                        .iter()
                        .map(|w| w.1)
                        .find(|e| wm.is_none_or(|wm| e - 1 > wm))
                    {
                        self.next_end = Some(self.next_end.map_or(first, |n| n.min(first)));
                    }
                    v.insert(Slice {
                        windows,
                        live: WindowState::new(&self.keys.converter, &self.aggs)?,
                        frozen: vec![],
                    })
                }
            };
            let state = &mut slice.live;
            let group_of: Vec<usize> = idx
                .iter()
                .map(|&i| state.group(rows.as_ref().map(|r| r.row(i as usize))))
                .collect();
            let total = state.groups.len();
            let indices = UInt32Array::from(idx);
            for (j, acc) in state.accs.iter_mut().enumerate() {
                let pick = |a: &ArrayRef| -> Result<ArrayRef, EngineError> {
                    if whole {
                        Ok(a.clone())
                    } else {
                        Ok(take(a.as_ref(), &indices, None)?)
                    }
                };
                let values = args[j].iter().map(pick).collect::<Result<Vec<_>, _>>()?;
                let filter = match &filters[j] {
                    Some(f) => Some(pick(f)?),
                    None => None,
                };
                let filter: Option<&BooleanArray> = filter.as_ref().map(|f| f.as_boolean());
                acc.update_batch(&values, &group_of, filter, total)?;
            }
        }
        Ok(())
    }

    /// Where the slice ending at `key` that holds `windows` starts, when
    /// that is known from them (a tumbling or hopping window's latest
    /// start; a cumulating window's step before its first end on one clock).
    fn slice_start(&self, windows: &[(i64, i64)], key: i64) -> Option<i64> {
        let latest = windows.iter().map(|w| w.0).max()?;
        match self.window.kind {
            WindowKind::Tumble | WindowKind::Hop { .. } => Some(latest),
            WindowKind::Cumulate { step_ms } if self.window.zone.is_none() => {
                Some(latest.max(key - step_ms))
            }
            _ => None,
        }
    }

    /// The state as batches: one per chunk of each slice (`start` is
    /// [`SLICE_MARK`], `end` the slice's key) and one per restored whole
    /// window (`start`, `end`), each with the key (Arrow row format) and
    /// each accumulator's state (`a<j>_<k>`); the watermark, the late
    /// count and each slice's windows beside them.
    pub fn snapshot(&mut self) -> Result<StageState, EngineError> {
        let mut batches = vec![];
        let mut slices = serde_json::Map::new();
        let keyed = !self.keys.is_empty();
        for (&key, slice) in self.slices.iter_mut() {
            slice.freeze(&self.keys.converter, &self.aggs)?;
            slices.insert(key.to_string(), serde_json::json!(slice.windows));
            for c in &slice.frozen {
                let (mut fields, mut columns) =
                    snapshot_header(SLICE_MARK, key, keyed, &c.keys, c.groups);
                for (j, st) in c.states.iter().enumerate() {
                    for (k, s) in st.iter().enumerate() {
                        fields.push(Field::new(format!("a{j}_{k}"), s.data_type().clone(), true));
                        columns.push(s.clone());
                    }
                }
                batches.push(RecordBatch::try_new(
                    Arc::new(arrow::datatypes::Schema::new(fields)),
                    columns,
                )?);
            }
        }
        let aggs = &self.aggs;
        for (&(end, start), w) in self.restored.iter_mut() {
            let n = w.groups.len();
            if n == 0 {
                continue;
            }
            let (mut fields, mut columns) = snapshot_header(start, end, keyed, &w.keys, n);
            snapshot_states(aggs, &mut w.accs, n, &mut fields, &mut columns)?;
            batches.push(RecordBatch::try_new(
                Arc::new(arrow::datatypes::Schema::new(fields)),
                columns,
            )?);
        }
        Ok(StageState {
            batches,
            meta: serde_json::json!({
                "watermark": self.watermark,
                "late": self.late,
                "slices": slices,
            }),
        })
    }

    /// Restores the state [`WindowAggregate::snapshot`] took, or one taken
    /// before windows were sliced (whole windows, kept whole until they
    /// fire).
    pub fn restore(&mut self, state: &StageState) -> Result<(), EngineError> {
        self.slices.clear();
        self.restored.clear();
        self.running.clear();
        self.watermark = state.meta.get("watermark").and_then(|v| v.as_i64());
        self.late = state.meta.get("late").and_then(|v| v.as_u64()).unwrap_or(0);
        let windows_of = state.meta.get("slices");
        let keyed = !self.keys.is_empty();
        for b in &state.batches {
            let n = b.num_rows();
            if n == 0 {
                continue;
            }
            let start = b.column(0).as_primitive::<Int64Type>().value(0);
            let end = b.column(1).as_primitive::<Int64Type>().value(0);
            let keys = b.column(2).as_binary::<i32>();
            if start == SLICE_MARK && windows_of.is_some() {
                let mut windows: Windows = windows_of
                    .and_then(|m| m.get(end.to_string()))
                    .and_then(|w| serde_json::from_value(w.clone()).ok())
                    .unwrap_or_else(|| self.window.windows(end - 1));
                windows.sort_unstable_by_key(|w| (w.1, w.0));
                let schema = b.schema();
                let states = (0..self.aggs.len())
                    .map(|j| {
                        let prefix = format!("a{j}_");
                        (0..b.num_columns())
                            .filter(|c| schema.field(*c).name().starts_with(&prefix))
                            .map(|c| b.column(c).clone())
                            .collect()
                    })
                    .collect();
                let chunk = Chunk {
                    keys: if keyed {
                        self.keys.converter.from_binary(keys.clone())
                    } else {
                        self.keys.converter.empty_rows(0, 0)
                    },
                    groups: n,
                    states,
                };
                let slice = match self.slices.entry(end) {
                    std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::btree_map::Entry::Vacant(v) => v.insert(Slice {
                        windows,
                        live: WindowState::new(&self.keys.converter, &self.aggs)?,
                        frozen: vec![],
                    }),
                };
                slice.frozen.push(chunk);
                continue;
            }
            let mut w = WindowState::new(&self.keys.converter, &self.aggs)?;
            if keyed {
                let rows = self.keys.converter.from_binary(keys.clone());
                for r in rows.iter() {
                    w.group(Some(r));
                }
            } else {
                w.group(None);
            }
            restore_states(&mut w.accs, b, 0)?;
            self.restored.insert((end, start), w);
        }
        self.next_end = self.earliest_unfired_end();
        Ok(())
    }

    /// Moves the watermark to `wm` and emits every window it closes, in
    /// order of their end. Processing-time windows ignore it.
    pub fn advance(&mut self, wm: i64) -> Result<Vec<RecordBatch>, EngineError> {
        if self.window.proctime {
            return Ok(vec![]);
        }
        self.fire(wm)
    }

    /// Whether windows fire by processing time ([`Self::on_processing_time`]).
    pub fn fires_on_processing_time(&self) -> bool {
        self.window.proctime
    }

    /// Processing time is `now`: a processing-time window emits every
    /// window whose end it has passed, as Flink's processing-time timers
    /// fire at the window's last millisecond.
    pub fn on_processing_time(&mut self, now: i64) -> Result<Vec<RecordBatch>, EngineError> {
        if !self.window.proctime {
            return Ok(vec![]);
        }
        self.fire(now)
    }

    /// Emits every window whose last millisecond is at or before `t` (and
    /// after the watermark before), then drops the slices no window still
    /// open needs.
    fn fire(&mut self, t: i64) -> Result<Vec<RecordBatch>, EngineError> {
        if self.watermark.is_some_and(|old| t <= old) {
            return Ok(vec![]);
        }
        let old = self.watermark;
        self.watermark = Some(t);
        if self.next_end.is_none_or(|e| e - 1 > t) {
            return Ok(vec![]);
        }
        let mut closing: std::collections::BTreeSet<(i64, i64)> = self
            .restored
            .keys()
            .copied()
            .filter(|w| w.0 - 1 <= t)
            .collect();
        // A slice's windows end at or after its key.
        for s in self.slices.range(..=t.saturating_add(1)).map(|(_, s)| s) {
            let from = s
                .windows
                .partition_point(|w| old.is_some_and(|o| w.1 - 1 <= o));
            let to = s.windows.partition_point(|w| w.1 - 1 <= t);
            closing.extend(s.windows[from..to.max(from)].iter().map(|&(s, e)| (e, s)));
        }
        let keyed = !self.keys.is_empty();
        let mut out = vec![];
        for (end, start) in closing {
            let parts: Vec<i64> = self
                .slices
                .range(start.saturating_add(1)..=end)
                .filter(|(_, s)| {
                    s.windows
                        .binary_search_by_key(&(end, start), |w| (w.1, w.0))
                        .is_ok()
                })
                .map(|(k, _)| *k)
                .collect();
            let restored = self.restored.remove(&(end, start));
            // A window that is one slice read for the last time (every
            // tumbling window): its state is the window's.
            if let (None, [only]) = (&restored, parts.as_slice()) {
                let slice = &self.slices[only];
                if slice.frozen.is_empty() && slice.last_end() <= end {
                    let slice = self.slices.remove(only).expect("present");
                    if !slice.live.groups.is_empty() {
                        out.push(self.emit(start, end, slice.live)?);
                    }
                    continue;
                }
            }
            for k in &parts {
                let slice = self.slices.get_mut(k).expect("present");
                slice.freeze(&self.keys.converter, &self.aggs)?;
            }
            // A cumulating window extends its period's merge by what its
            // slices added since the last window, rather than merging every
            // slice again: a day of 1-minute steps merges each slice once.
            if restored.is_none()
                && !parts.is_empty()
                && matches!(self.window.kind, WindowKind::Cumulate { .. })
            {
                let run = match self.running.entry(start) {
                    std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => v.insert(Running {
                        state: WindowState::new(&self.keys.converter, &self.aggs)?,
                        merged: HashMap::default(),
                    }),
                };
                let mut chunks: Vec<&Chunk> = vec![];
                for k in &parts {
                    let frozen = &self.slices[k].frozen;
                    let done = run.merged.entry(*k).or_insert(0);
                    chunks.extend(frozen[*done..].iter());
                    *done = frozen.len();
                }
                if !chunks.is_empty() {
                    run.state.merge(&chunks, keyed)?;
                }
                let last = self.slices[&parts[0]].last_end() <= end;
                let state = if last {
                    self.running.remove(&start).expect("present").state
                } else {
                    run.state.copy(&self.keys.converter, &self.aggs)?
                };
                if !state.groups.is_empty() {
                    out.push(self.emit(start, end, state)?);
                }
                continue;
            }
            let mut state = match restored {
                Some(w) => w,
                None => WindowState::new(&self.keys.converter, &self.aggs)?,
            };
            let chunks: Vec<&Chunk> = parts
                .iter()
                .flat_map(|k| self.slices[k].frozen.iter())
                .collect();
            if !chunks.is_empty() {
                state.merge(&chunks, keyed)?;
            }
            if !state.groups.is_empty() {
                out.push(self.emit(start, end, state)?);
            }
        }
        self.slices.retain(|_, s| s.last_end() - 1 > t);
        self.next_end = self.earliest_unfired_end();
        Ok(out)
    }

    fn emit(
        &self,
        start: i64,
        end: i64,
        mut state: WindowState,
    ) -> Result<RecordBatch, EngineError> {
        let n = state.groups.len();
        let keys = if self.keys.is_empty() {
            vec![]
        } else {
            self.keys.converter.convert_rows(state.keys.iter())?
        };
        let stamp = |v: i64| -> ArrayRef { Arc::new(TimestampMillisecondArray::from(vec![v; n])) };
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.output.fields().len());
        for g in &self.layout {
            columns.push(match g {
                GroupColumn::WindowStart => stamp(start),
                GroupColumn::WindowEnd => stamp(end),
                GroupColumn::WindowTime => stamp(end - 1),
                GroupColumn::Key(i) => keys[*i].clone(),
            });
        }
        for acc in &mut state.accs {
            columns.push(acc.evaluate(EmitTo::All)?);
        }
        conform(&self.output, columns, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;
    use arrow::datatypes::Schema;
    use datafusion::functions_aggregate::count::count;
    use datafusion::logical_expr::{col, lit};
    use weir_sql_gateway::WindowKind;

    /// `COUNT(*)` per `k` over `HOP(t, slide 2 ms, size 6 ms)`, as
    /// `(k, window_start, window_end, n)`.
    fn hop_count() -> WindowAggregate {
        let input = Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("t", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        ]);
        let input = DFSchema::try_from(input).unwrap();
        let stamp = DataType::Timestamp(TimeUnit::Millisecond, None);
        let output = DFSchema::try_from(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("window_start", stamp.clone(), true),
            Field::new("window_end", stamp, true),
            Field::new("n", DataType::Int64, true),
        ]))
        .unwrap();
        let window = WindowSpec {
            kind: WindowKind::Hop { slide_ms: 2 },
            size_ms: 6,
            offset_ms: 0,
            zone: None,
            proctime: false,
        };
        WindowAggregate::new(
            window,
            &col("t"),
            &[col("k")],
            &[
                GroupColumn::Key(0),
                GroupColumn::WindowStart,
                GroupColumn::WindowEnd,
            ],
            &[count(lit(1))],
            &input,
            &output,
        )
        .unwrap()
    }

    fn rows(rows: &[(&str, i64)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("t", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(TimestampMillisecondArray::from_iter_values(
                    rows.iter().map(|r| r.1),
                )),
            ],
        )
        .unwrap()
    }

    /// `(k, start, end, n)` of emitted batches.
    fn emitted(batches: &[RecordBatch]) -> Vec<(String, i64, i64, i64)> {
        let mut out = vec![];
        for b in batches {
            let k = b.column(0).as_string::<i32>();
            let s = b.column(1).as_primitive::<TimestampMillisecondType>();
            let e = b.column(2).as_primitive::<TimestampMillisecondType>();
            let n = b.column(3).as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                out.push((k.value(i).to_string(), s.value(i), e.value(i), n.value(i)));
            }
        }
        out
    }

    #[test]
    fn a_row_is_aggregated_once_and_counted_in_each_of_its_windows() {
        let mut op = hop_count();
        op.process(&rows(&[("a", 0), ("a", 1), ("b", 3), ("a", 5)]))
            .unwrap();
        // One slice per 2 ms, not one state per window.
        assert_eq!(op.slices.len(), 3);
        let out = emitted(&op.advance(100).unwrap());
        let a: Vec<_> = out.iter().filter(|r| r.0 == "a").collect();
        assert_eq!(
            a.iter().map(|r| (r.1, r.2, r.3)).collect::<Vec<_>>(),
            [(-4, 2, 2), (-2, 4, 2), (0, 6, 3), (2, 8, 1), (4, 10, 1)]
        );
        assert_eq!(out.iter().filter(|r| r.0 == "b").count(), 3);
        assert!(
            op.slices.is_empty(),
            "every slice dropped after its last window"
        );
    }

    #[test]
    fn whole_windows_from_a_checkpoint_taken_before_slicing_are_restored() {
        // The layout of a checkpoint of the operator before windows were
        // sliced: one batch per window, `start` and `end` its bounds, no
        // `slices` in the meta.
        let op = hop_count();
        let key = op
            .keys
            .converter
            .convert_columns(&[Arc::new(StringArray::from(vec!["a"])) as ArrayRef])
            .unwrap();
        let legacy = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("start", DataType::Int64, false),
                Field::new("end", DataType::Int64, false),
                Field::new("key", DataType::Binary, false),
                Field::new("a0_0", DataType::Int64, true),
            ])),
            vec![
                Arc::new(Int64Array::from(vec![0])),
                Arc::new(Int64Array::from(vec![6])),
                Arc::new(BinaryArray::from(vec![key.row(0).data()])),
                Arc::new(Int64Array::from(vec![5])),
            ],
        )
        .unwrap();
        let mut op = hop_count();
        op.restore(&StageState {
            batches: vec![legacy],
            meta: serde_json::json!({"watermark": 3, "late": 0}),
        })
        .unwrap();
        op.process(&rows(&[("a", 4)])).unwrap();
        // Through a checkpoint of the new layout, holding both.
        let state = op.snapshot().unwrap();
        let mut op = hop_count();
        op.restore(&state).unwrap();
        let out = emitted(&op.advance(100).unwrap());
        assert_eq!(
            out.iter().map(|r| (r.1, r.2, r.3)).collect::<Vec<_>>(),
            [(0, 6, 6), (2, 8, 1), (4, 10, 1)],
            "the restored window's 5 rows and the new one"
        );
    }

    #[test]
    fn a_cumulating_window_counts_a_late_row_through_a_checkpoint_per_step_and_drops_its_merge() {
        let cumulate = || {
            let mut op = hop_count();
            op.window = WindowSpec {
                kind: WindowKind::Cumulate { step_ms: 2 },
                size_ms: 6,
                offset_ms: 0,
                zone: None,
                proctime: false,
            };
            op
        };
        let run = |checkpoint: bool| {
            let mut op = cumulate();
            let mut out = vec![];
            let steps: [(&[(&str, i64)], i64); 4] = [
                (&[("a", 0), ("a", 1)], 1),
                // A late row of the first slice, after its first window.
                (&[("a", 3), ("a", 0)], 3),
                (&[("a", 4), ("a", 5)], 5),
                (&[("a", 7)], 100),
            ];
            for (rows_in, wm) in steps {
                op.process(&rows(rows_in)).unwrap();
                if checkpoint {
                    let state = op.snapshot().unwrap();
                    op = cumulate();
                    op.restore(&state).unwrap();
                }
                out.extend(emitted(&op.advance(wm).unwrap()));
            }
            assert!(op.running.is_empty(), "a period's merge is dropped with it");
            out.into_iter().map(|r| (r.1, r.2, r.3)).collect::<Vec<_>>()
        };
        let want = [
            (0, 2, 2),
            (0, 4, 4),
            (0, 6, 6),
            (6, 8, 1),
            (6, 10, 1),
            (6, 12, 1),
        ];
        assert_eq!(run(false), want);
        assert_eq!(run(true), want, "the same through a checkpoint per step");
    }
}
