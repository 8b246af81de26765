//! Window aggregation over Flink's window TVFs, and the watermarks that
//! close windows.
//!
//! State is one set of DataFusion `GroupsAccumulator`s per open window,
//! with grouping keys in Arrow's row format mapped to group indexes: a batch
//! is split by window, each part updates its window's accumulators in one
//! vectorized call. When the watermark reaches a window's last millisecond
//! (`end - 1`, as in Flink) the window is emitted once, append-only, and its
//! state dropped. A record goes into those of its windows that have not
//! been emitted; one whose every window has been emitted is late: it is
//! dropped and counted, as Flink's window operators do.

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
use weir_sql_gateway::{GroupColumn, WindowSpec};

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
}

/// The window aggregation operator.
pub struct WindowAggregate {
    window: WindowSpec,
    time: Arc<dyn PhysicalExpr>,
    keys: GroupKeys,
    aggs: Vec<Aggregate>,
    layout: Vec<GroupColumn>,
    output: SchemaRef,
    /// Open windows by `(end, start)`: the next to close first.
    open: BTreeMap<(i64, i64), WindowState>,
    watermark: Option<i64>,
    /// Records dropped because their window had been emitted.
    pub late: u64,
}

impl std::fmt::Debug for WindowAggregate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "WindowAggregate({}, {} open)",
            self.window,
            self.open.len()
        )
    }
}

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
            open: BTreeMap::new(),
            watermark: None,
            late: 0,
        })
    }

    pub fn output_schema(&self) -> &SchemaRef {
        &self.output
    }

    /// Windows open and groups held, for metrics.
    pub fn state_size(&self) -> (usize, usize) {
        (
            self.open.len(),
            self.open.values().map(|w| w.groups.len()).sum(),
        )
    }

    /// Bytes of state held: per open window its accumulators, keys (Arrow
    /// row format) and key index (an estimate; allocator overhead is not
    /// counted).
    pub fn state_bytes(&self) -> usize {
        self.open
            .values()
            .map(|w| {
                w.accs.iter().map(|a| a.size()).sum::<usize>()
                    + w.keys.size()
                    + w.groups.capacity() * (std::mem::size_of::<(Box<[u8]>, usize)>() + 1)
                    + w.groups.keys().map(|k| k.len()).sum::<usize>()
            })
            .sum()
    }

    /// Adds a batch's rows to their windows.
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
        // Rows per window, in arrival order.
        let mut per_window: BTreeMap<(i64, i64), Vec<u32>> = BTreeMap::new();
        for (i, t) in times.iter().enumerate() {
            let Some(t) = t else {
                // Flink refuses a NULL time attribute; the row cannot be
                // placed in a window.
                self.late += 1;
                continue;
            };
            // Windows that have fired are gone; the row still counts in the
            // ones that have not (Flink's slicing operators merge a late
            // row into the first unfired window). It is late, dropped and
            // counted, only when its last window has fired.
            let mut windows = self.window.windows(t);
            if let Some(wm) = self.watermark {
                windows.retain(|(_, end)| end - 1 > wm);
                // A processing-time window takes a row by the time it
                // reaches it, as Flink assigns by the operator's clock: a
                // row whose PROCTIME() was read before its windows fired
                // (it waited in a queue meanwhile) goes to the windows
                // open now, never late.
                if windows.is_empty() && self.window.proctime {
                    windows = self.window.windows(wm.saturating_add(1));
                }
            }
            if windows.is_empty() {
                self.late += 1;
                continue;
            }
            for (s, e) in windows {
                per_window.entry((e, s)).or_default().push(i as u32);
            }
        }
        let whole =
            per_window.len() == 1 && per_window.values().next().is_some_and(|v| v.len() == n);
        for (w, idx) in per_window {
            let state = match self.open.entry(w) {
                std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(WindowState::new(&self.keys.converter, &self.aggs)?)
                }
            };
            let mut group_of = Vec::with_capacity(idx.len());
            if rows.is_none() && state.groups.is_empty() {
                state.groups.insert(Box::from(&[][..]), 0);
            }
            for &i in &idx {
                let Some(rows) = &rows else {
                    group_of.push(0);
                    continue;
                };
                let row = rows.row(i as usize);
                let g = match state.groups.get(row.as_ref()) {
                    Some(g) => *g,
                    None => {
                        let g = state.groups.len();
                        state.groups.insert(row.as_ref().into(), g);
                        state.keys.push(row);
                        g
                    }
                };
                group_of.push(g);
            }
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

    /// The state as one batch per open window: `start`, `end`, the key
    /// (Arrow row format) and each accumulator's state (`a<j>_<k>`), with
    /// the watermark and late count beside them.
    pub fn snapshot(&mut self) -> Result<StageState, EngineError> {
        let mut batches = vec![];
        let aggs = &self.aggs;
        for (&(end, start), w) in self.open.iter_mut() {
            let n = w.groups.len();
            if n == 0 {
                continue;
            }
            let mut keys: Vec<&[u8]> = vec![&[]; n];
            if self.keys.is_empty() {
                // One group of every row, with no key.
            } else {
                for (i, r) in w.keys.iter().enumerate() {
                    keys[i] = r.data();
                }
            }
            let mut fields = vec![
                Field::new("start", DataType::Int64, false),
                Field::new("end", DataType::Int64, false),
                Field::new("key", DataType::Binary, false),
            ];
            let mut columns: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from(vec![start; n])),
                Arc::new(Int64Array::from(vec![end; n])),
                Arc::new(BinaryArray::from(keys)),
            ];
            snapshot_states(aggs, &mut w.accs, n, &mut fields, &mut columns)?;
            batches.push(RecordBatch::try_new(
                Arc::new(arrow::datatypes::Schema::new(fields)),
                columns,
            )?);
        }
        Ok(StageState {
            batches,
            meta: serde_json::json!({"watermark": self.watermark, "late": self.late}),
        })
    }

    /// Restores the state [`WindowAggregate::snapshot`] took.
    pub fn restore(&mut self, state: &StageState) -> Result<(), EngineError> {
        self.open.clear();
        self.watermark = state.meta.get("watermark").and_then(|v| v.as_i64());
        self.late = state.meta.get("late").and_then(|v| v.as_u64()).unwrap_or(0);
        for b in &state.batches {
            let n = b.num_rows();
            if n == 0 {
                continue;
            }
            let start = b.column(0).as_primitive::<Int64Type>().value(0);
            let end = b.column(1).as_primitive::<Int64Type>().value(0);
            let keys = b.column(2).as_binary::<i32>();
            let mut w = WindowState::new(&self.keys.converter, &self.aggs)?;
            if self.keys.is_empty() {
                w.groups.insert(Box::from(&[][..]), 0);
            } else {
                let rows = self.keys.converter.from_binary(keys.clone());
                for (i, r) in rows.iter().enumerate() {
                    w.groups.insert(r.as_ref().into(), i);
                    w.keys.push(r);
                }
            }
            restore_states(&mut w.accs, b, 0)?;
            self.open.insert((end, start), w);
        }
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

    /// Emits every window whose last millisecond is at or before `t`.
    fn fire(&mut self, t: i64) -> Result<Vec<RecordBatch>, EngineError> {
        if self.watermark.is_some_and(|old| t <= old) {
            return Ok(vec![]);
        }
        let wm = t;
        self.watermark = Some(wm);
        let mut out = vec![];
        while let Some((&(end, start), _)) = self.open.first_key_value() {
            if end - 1 > wm {
                break;
            }
            let state = self.open.remove(&(end, start)).expect("present");
            out.push(self.emit(start, end, state)?);
        }
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
