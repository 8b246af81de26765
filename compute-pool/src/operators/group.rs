//! Group aggregation without windows: `GROUP BY keys` over an append or
//! update stream, emitting an update stream.
//!
//! State is one set of DataFusion `Accumulator`s per key (grouping keys in
//! Arrow's row format), a row count, and the row last emitted. A batch is
//! split by key; each key's rows update (`+I`, `+U`) or retract (`-U`, `-D`)
//! its accumulators in one call per aggregate. Then each key touched emits,
//! as Flink's group aggregation does: `+I` for a new key, `-U` old / `+U` new
//! when the result changed, nothing when it did not, and `-D` of the last
//! result when the key's row count drops to zero. A batch is one
//! mini-batch: several rows for one key in a batch emit one update.
//!
//! Over an update stream the accumulators must retract: DataFusion's
//! sliding accumulators do for `COUNT`, `SUM` and `AVG`; `MIN` and `MAX`
//! keep a count per value here (DataFusion's sliding ones assume the oldest
//! value leaves first).
//!
//! With a state TTL (`'sql.state-ttl'`), a key is forgotten once the TTL
//! has passed in processing time since its last change, as Flink's TTL
//! does: nothing is emitted when it goes, and a later row starts it over.

use crate::hash::HashMap;
use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, Int8Array, RecordBatch, RecordBatchOptions,
    UInt32Array,
};
use arrow::compute::{cast, filter, take};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::aggregate::{AggregateFunctionExpr, LoweredAggregateBuilder};
use datafusion::physical_expr::{create_physical_expr, PhysicalExpr};

use crate::operators::changelog::{
    is_accumulate, Changes, DELETE, INSERT, UPDATE_AFTER, UPDATE_BEFORE,
};
use crate::runtime::checkpoint::StageState;
use crate::EngineError;

/// Grouping keys lowered to physical expressions, with the converter that
/// turns their values into Arrow's row format.
pub(crate) struct GroupKeys {
    exprs: Vec<Arc<dyn PhysicalExpr>>,
    pub converter: RowConverter,
}

impl GroupKeys {
    pub fn new(
        keys: &[datafusion::logical_expr::Expr],
        input_schema: &DFSchema,
    ) -> Result<GroupKeys, EngineError> {
        let keys: Vec<_> = keys.iter().map(|k| (k, None)).collect();
        GroupKeys::ordered(&keys, input_schema)
    }

    /// Keys whose row format orders rows as `keys` say: each key with its
    /// sort options (`None`: ascending, NULLs first).
    pub fn ordered(
        keys: &[(
            &datafusion::logical_expr::Expr,
            Option<arrow::compute::SortOptions>,
        )],
        input_schema: &DFSchema,
    ) -> Result<GroupKeys, EngineError> {
        let props = ExecutionProps::new();
        let mut exprs = Vec::with_capacity(keys.len());
        let mut fields = Vec::with_capacity(keys.len());
        for &(k, options) in keys {
            let t = datafusion::logical_expr::ExprSchemable::get_type(k, input_schema)?;
            fields.push(match options {
                Some(o) => SortField::new_with_options(t, o),
                None => SortField::new(t),
            });
            exprs.push(create_physical_expr(
                k,
                input_schema,
                &props,
                &Default::default(),
            )?);
        }
        Ok(GroupKeys {
            exprs,
            converter: row_converter(fields, "a grouping key")?,
        })
    }

    pub fn len(&self) -> usize {
        self.exprs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.exprs.is_empty()
    }

    /// The keys of a batch's rows in row format; `None` when there are no
    /// keys (every row is in the one group).
    pub fn rows(&self, batch: &RecordBatch) -> Result<Option<Rows>, EngineError> {
        Ok(self.evaluate(batch)?.1)
    }

    /// The key columns of a batch, and its rows' keys as [`GroupKeys::rows`]
    /// gives them.
    pub fn evaluate(
        &self,
        batch: &RecordBatch,
    ) -> Result<(Vec<ArrayRef>, Option<Rows>), EngineError> {
        let n = batch.num_rows();
        let columns = self
            .exprs
            .iter()
            .map(|k| k.evaluate(batch).and_then(|v| v.into_array(n)))
            .collect::<Result<Vec<_>, _>>()?;
        let rows = if columns.is_empty() {
            None
        } else {
            Some(self.converter.convert_columns(&columns)?)
        };
        Ok((columns, rows))
    }
}

/// One aggregate call, lowered to physical expressions.
pub(crate) struct Aggregate {
    pub expr: Arc<AggregateFunctionExpr>,
    pub args: Vec<Arc<dyn PhysicalExpr>>,
    /// The type of the first argument, when there is one.
    pub arg_type: Option<DataType>,
    pub filter: Option<Arc<dyn PhysicalExpr>>,
}

/// Lowers aggregate calls over `input_schema` to physical aggregates.
pub(crate) fn lower_aggregates(
    aggs: &[datafusion::logical_expr::Expr],
    input_schema: &DFSchema,
) -> Result<Vec<Aggregate>, EngineError> {
    let props = ExecutionProps::new();
    let ctx =
        datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext::default();
    aggs.iter()
        .map(|a| {
            let lowered = LoweredAggregateBuilder::new(
                a,
                input_schema,
                input_schema.as_arrow(),
                &props,
                &ctx,
            )
            .build()?;
            if !lowered.order_bys.is_empty() {
                return Err(EngineError::Plan(
                    "ORDER BY inside an aggregate function is not supported yet".into(),
                ));
            }
            let args = lowered.aggregate.expressions();
            let arg_type = args
                .first()
                .map(|e| e.data_type(input_schema.as_arrow()))
                .transpose()?;
            Ok(Aggregate {
                arg_type,
                args,
                expr: lowered.aggregate,
                filter: lowered.filter,
            })
        })
        .collect()
}

/// Casts `columns` to the types of `schema`'s fields (an aggregate may
/// compute in a wider type than the plan declares).
pub(crate) fn conform(
    schema: &SchemaRef,
    columns: Vec<ArrayRef>,
    rows: usize,
) -> Result<RecordBatch, EngineError> {
    let columns = columns
        .into_iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            match (c.data_type(), f.data_type()) {
                (a, b) if a == b => Ok(c),
                _ if c.is_empty() => Ok(new_null_array(f.data_type(), 0)),
                // Operators compute times as UTC milliseconds; a plain cast
                // would read them as wall-clock time in the zone.
                (DataType::Timestamp(_, None), DataType::Timestamp(u, Some(tz))) => {
                    let utc = cast(&c, &DataType::Timestamp(*u, None))?;
                    Ok(arrow::array::make_array(
                        utc.into_data()
                            .into_builder()
                            .data_type(DataType::Timestamp(*u, Some(tz.clone())))
                            .build()?,
                    ))
                }
                _ => cast(&c, f.data_type()),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )?)
}

/// A converter into Arrow's row format, in which operators hold state;
/// `what` names the operator's input in the error a user gets when a
/// column type cannot be held.
pub(crate) fn row_converter(
    fields: Vec<SortField>,
    what: &str,
) -> Result<RowConverter, EngineError> {
    RowConverter::new(fields).map_err(|e| {
        EngineError::Plan(format!(
            "{what} has a column type Weir cannot hold as state yet ({e}); cast it or leave it out"
        ))
    })
}

/// One plain sort field per type, in order: a whole row's layout.
pub(crate) fn sort_fields<'a>(types: impl IntoIterator<Item = &'a DataType>) -> Vec<SortField> {
    types.into_iter().cloned().map(SortField::new).collect()
}

/// A nullable-field schema for the rows an operator emits.
pub(crate) fn emitted_schema(plan_schema: &DFSchema) -> SchemaRef {
    Arc::new(Schema::new(
        plan_schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), f.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ))
}

/// A key's rows in a batch: the first, those that accumulate, those that
/// retract.
type KeyRows = (u32, Vec<u32>, Vec<u32>);

struct GroupState {
    /// Rows accumulated less rows retracted.
    count: i64,
    accs: Vec<Box<dyn Accumulator>>,
    /// The aggregate values last emitted, if any.
    last: Option<Vec<ScalarValue>>,
    /// Processing time (ms) from which the key is forgotten (a TTL).
    expires: i64,
}

/// The group aggregation operator.
pub struct GroupAggregate {
    keys: GroupKeys,
    aggs: Vec<Aggregate>,
    output: SchemaRef,
    /// The input is an update stream: accumulators must retract.
    retracting: bool,
    groups: HashMap<Box<[u8]>, GroupState>,
    /// `'sql.state-ttl'` in milliseconds.
    ttl_ms: Option<i64>,
    /// When the next sweep of expired keys is due.
    next_sweep: i64,
    /// Batch semantics at the end of the input (a snapshot query): a
    /// global aggregate (no GROUP BY) over no rows is one row, `COUNT(*)`
    /// 0, as in a batch query.
    pub one_row_for_no_input: bool,
}

impl std::fmt::Debug for GroupAggregate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GroupAggregate({} keys held)", self.groups.len())
    }
}

impl GroupAggregate {
    pub fn new(
        keys: &[datafusion::logical_expr::Expr],
        aggs: &[datafusion::logical_expr::Expr],
        input_schema: &DFSchema,
        output_schema: &DFSchema,
        retracting: bool,
    ) -> Result<GroupAggregate, EngineError> {
        let op = GroupAggregate {
            keys: GroupKeys::new(keys, input_schema)?,
            aggs: lower_aggregates(aggs, input_schema)?,
            output: emitted_schema(output_schema),
            retracting,
            groups: HashMap::default(),
            ttl_ms: None,
            next_sweep: i64::MIN,
            one_row_for_no_input: false,
        };
        // Fail at start, not at the first row, when an aggregate cannot
        // retract.
        op.accumulators()?;
        Ok(op)
    }

    pub fn output_schema(&self) -> &SchemaRef {
        &self.output
    }

    /// Forgets a key `ttl_ms` after its last change, in processing time,
    /// as Flink's state TTL does: silently, and a later row for it starts
    /// over with `+I` (`None`: never).
    pub fn set_state_ttl(&mut self, ttl_ms: Option<i64>) {
        self.ttl_ms = ttl_ms.filter(|t| *t > 0);
    }

    /// Keys held in state.
    pub fn state_size(&self) -> usize {
        self.groups.len()
    }

    /// Bytes of state held: keys, accumulators, last emitted values and the
    /// hash table's slots (an estimate from the accumulators' own
    /// accounting; allocator overhead is not counted).
    pub fn state_bytes(&self) -> usize {
        let slot = std::mem::size_of::<(Box<[u8]>, GroupState)>() + 1;
        self.groups.capacity() * slot
            + self
                .groups
                .iter()
                .map(|(k, g)| {
                    k.len()
                        + g.accs.iter().map(|a| a.size()).sum::<usize>()
                        + g.accs.capacity() * std::mem::size_of::<Box<dyn Accumulator>>()
                        + g.last
                            .as_ref()
                            .map_or(0, |l| l.iter().map(ScalarValue::size).sum::<usize>())
                })
                .sum::<usize>()
    }

    fn accumulators(&self) -> Result<Vec<Box<dyn Accumulator>>, EngineError> {
        self.aggs
            .iter()
            .map(|a| {
                if !self.retracting {
                    return Ok(a.expr.create_accumulator()?);
                }
                let name = a.expr.fun().name().to_ascii_lowercase();
                if (name == "min" || name == "max") && !a.expr.is_distinct() {
                    let t = a.expr.field().data_type().clone();
                    let kind = if name == "max" { Kind::Max } else { Kind::Min };
                    return Ok(Box::new(RetractingValues::new(kind, t)) as _);
                }
                // DataFusion's sliding COUNT(DISTINCT) keeps its values as
                // the result's type (BIGINT) and cannot checkpoint text;
                // it also forgets how many rows hold each value. So a
                // DISTINCT aggregate of one column keeps the distinct
                // values with their counts, and computes the aggregate of
                // those values when asked; its other arguments must be
                // constants (LISTAGG's separator, a percentile), or it
                // goes to DataFusion's sliding accumulator, or is refused.
                // (`None` too for an aggregate without arguments.)
                let constants: Option<Vec<ScalarValue>> = a.args.get(1..).and_then(|rest| {
                    rest.iter()
                        .map(|e| {
                            e.downcast_ref::<datafusion::physical_expr::expressions::Literal>()
                                .map(|l| l.value().clone())
                        })
                        .collect()
                });
                // Weir's own LISTAGG and ARRAY_AGG keep every value in the
                // order it arrived, and retract them, DISTINCT or not.
                let arrival = name == "listagg" || name == "array_agg";
                if let (true, false, Some(constants)) = (a.expr.is_distinct(), arrival, constants) {
                    let t = a.arg_type.clone().unwrap_or(DataType::Null);
                    let kind = if name == "count" && constants.is_empty() {
                        Kind::CountDistinct
                    } else {
                        Kind::Distinct(a.expr.clone(), constants)
                    };
                    return Ok(Box::new(RetractingValues::new(kind, t)) as _);
                }
                a.expr.create_sliding_accumulator().map_err(|_| {
                    EngineError::Plan(format!(
                        "{} over an update stream (the output of another GROUP BY) is not supported yet: it cannot retract rows",
                        a.expr.fun().name().to_uppercase()
                    ))
                })
            })
            .collect()
    }

    /// Applies a batch of changes and returns the changes it causes.
    /// Applies a batch of changes arriving at processing time `now` (ms)
    /// and returns the changes it causes.
    pub fn process(&mut self, input: &Changes, now: i64) -> Result<Option<Changes>, EngineError> {
        let batch = &input.batch;
        let n = batch.num_rows();
        if n == 0 {
            return Ok(None);
        }
        let expires = match self.ttl_ms {
            Some(ttl) => {
                // Sweeping every half TTL bounds what expired keys cost.
                if now >= self.next_sweep {
                    self.groups.retain(|_, g| g.expires > now);
                    self.next_sweep = now.saturating_add((ttl / 2).max(1));
                }
                now.saturating_add(ttl)
            }
            None => i64::MAX,
        };
        let (key_cols, rows) = self.keys.evaluate(batch)?;
        // Rows per key in first-seen order: (first row, accumulate, retract).
        let mut order: Vec<Box<[u8]>> = vec![];
        let mut per_key: HashMap<Box<[u8]>, KeyRows> = HashMap::default();
        for i in 0..n {
            let key: Box<[u8]> = match &rows {
                Some(r) => r.row(i).as_ref().into(),
                None => Box::from(&[][..]),
            };
            let e = per_key.entry(key).or_insert_with_key(|k| {
                order.push(k.clone());
                (i as u32, vec![], vec![])
            });
            if is_accumulate(input.op(i)) {
                e.1.push(i as u32);
            } else {
                e.2.push(i as u32);
            }
        }
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
        // The rows to emit: kind, the input row holding the key, values.
        let mut ops: Vec<i8> = vec![];
        let mut key_rows: Vec<u32> = vec![];
        let mut values: Vec<Vec<ScalarValue>> = vec![vec![]; self.aggs.len()];
        let mut emit = |op: i8, row: u32, vals: &[ScalarValue]| {
            ops.push(op);
            key_rows.push(row);
            for (col, v) in values.iter_mut().zip(vals) {
                col.push(v.clone());
            }
        };
        for key in order {
            let (first, plus, minus) = per_key.remove(&key).expect("collected");
            if self.groups.get(&key).is_some_and(|g| g.expires <= now) {
                self.groups.remove(&key);
            }
            if !self.groups.contains_key(&key) {
                if plus.is_empty() {
                    // A retraction of a key never seen (its state expired or
                    // it was never accumulated): nothing to retract.
                    continue;
                }
                let accs = self.accumulators()?;
                self.groups.insert(
                    key.clone(),
                    GroupState {
                        count: 0,
                        accs,
                        last: None,
                        expires,
                    },
                );
            }
            let state = self.groups.get_mut(&key).expect("present");
            state.expires = expires;
            for (j, acc) in state.accs.iter_mut().enumerate() {
                for (idx, accumulate) in [(&plus, true), (&minus, false)] {
                    if idx.is_empty() {
                        continue;
                    }
                    let vals = pick(&args[j], filters[j].as_ref(), idx)?;
                    if accumulate {
                        acc.update_batch(&vals)?;
                    } else {
                        acc.retract_batch(&vals)?;
                    }
                }
            }
            state.count += plus.len() as i64 - minus.len() as i64;
            if state.count <= 0 {
                if let Some(last) = &state.last {
                    emit(DELETE, first, last);
                }
                self.groups.remove(&key);
                continue;
            }
            let now = state
                .accs
                .iter_mut()
                .map(|a| a.evaluate())
                .collect::<Result<Vec<_>, _>>()?;
            match &state.last {
                None => emit(INSERT, first, &now),
                Some(last) if *last != now => {
                    emit(UPDATE_BEFORE, first, last);
                    emit(UPDATE_AFTER, first, &now);
                }
                Some(_) => continue,
            }
            state.last = Some(now);
        }
        if ops.is_empty() {
            return Ok(None);
        }
        let rows_out = ops.len();
        let indices = UInt32Array::from(key_rows);
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.output.fields().len());
        for k in &key_cols {
            columns.push(take(k.as_ref(), &indices, None)?);
        }
        for (j, col) in values.into_iter().enumerate() {
            let t = self.output.field(self.keys.len() + j).data_type().clone();
            columns.push(if col.is_empty() {
                new_null_array(&t, 0)
            } else {
                ScalarValue::iter_to_array(col)?
            });
        }
        Ok(Some(Changes {
            batch: conform(&self.output, columns, rows_out)?,
            ops: Some(Arc::new(Int8Array::from(ops))),
        }))
    }
}

impl GroupAggregate {
    /// The end of a bounded input: with [`GroupAggregate::one_row_for_no_input`],
    /// a global aggregate that saw no rows emits its value over none.
    pub fn end_of_input(&mut self) -> Result<Option<Changes>, EngineError> {
        if !self.one_row_for_no_input || !self.keys.is_empty() || !self.groups.is_empty() {
            return Ok(None);
        }
        self.one_row_for_no_input = false;
        let columns = self
            .accumulators()?
            .iter_mut()
            .map(|a| a.evaluate().and_then(|v| v.to_array()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Changes {
            batch: conform(&self.output, columns, 1)?,
            ops: Some(Arc::new(Int8Array::from(vec![INSERT]))),
        }))
    }

    /// The state as rows: the key (Arrow row format), the row count and
    /// each accumulator's state (`a<j>_<k>`). The last result is not kept:
    /// it is always the accumulators' current value.
    pub fn snapshot(&mut self) -> Result<StageState, EngineError> {
        if self.groups.is_empty() {
            return Ok(StageState::default());
        }
        let mut keys: Vec<&[u8]> = Vec::with_capacity(self.groups.len());
        let mut counts = Vec::with_capacity(self.groups.len());
        let mut expiries = Vec::with_capacity(self.groups.len());
        let mut states: Vec<Vec<Vec<ScalarValue>>> = vec![vec![]; self.aggs.len()];
        for (k, g) in self.groups.iter_mut() {
            keys.push(k);
            counts.push(g.count);
            expiries.push(g.expires);
            for (j, acc) in g.accs.iter_mut().enumerate() {
                let st = acc.state()?;
                if states[j].is_empty() {
                    states[j] = vec![Vec::with_capacity(counts.capacity()); st.len()];
                }
                for (col, v) in states[j].iter_mut().zip(st) {
                    col.push(v);
                }
            }
        }
        let mut fields = vec![
            Field::new("key", DataType::Binary, false),
            Field::new("count", DataType::Int64, false),
            Field::new("expires", DataType::Int64, false),
        ];
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(arrow::array::BinaryArray::from(keys)),
            Arc::new(arrow::array::Int64Array::from(counts)),
            Arc::new(arrow::array::Int64Array::from(expiries)),
        ];
        for (j, agg) in states.into_iter().enumerate() {
            for (k, col) in agg.into_iter().enumerate() {
                let a = ScalarValue::iter_to_array(col)?;
                fields.push(Field::new(format!("a{j}_{k}"), a.data_type().clone(), true));
                columns.push(a);
            }
        }
        Ok(StageState {
            batches: vec![RecordBatch::try_new(
                Arc::new(Schema::new(fields)),
                columns,
            )?],
            meta: serde_json::Value::Null,
        })
    }

    /// Restores the state [`GroupAggregate::snapshot`] took.
    pub fn restore(&mut self, state: &StageState) -> Result<(), EngineError> {
        self.groups.clear();
        for b in &state.batches {
            let keys = b.column(0).as_binary::<i32>();
            let counts = b.column(1).as_primitive::<arrow::datatypes::Int64Type>();
            let expiries = b
                .column_by_name("expires")
                .map(|c| c.as_primitive::<arrow::datatypes::Int64Type>().clone());
            let schema = b.schema();
            let per_agg: Vec<Vec<usize>> = (0..self.aggs.len())
                .map(|j| {
                    let prefix = format!("a{j}_");
                    (0..b.num_columns())
                        .filter(|c| schema.field(*c).name().starts_with(&prefix))
                        .collect()
                })
                .collect();
            for r in 0..b.num_rows() {
                let mut accs = self.accumulators()?;
                for (acc, cols) in accs.iter_mut().zip(&per_agg) {
                    let st: Vec<ArrayRef> = cols.iter().map(|c| b.column(*c).slice(r, 1)).collect();
                    acc.merge_batch(&st)?;
                }
                let last = accs
                    .iter_mut()
                    .map(|a| a.evaluate())
                    .collect::<Result<Vec<_>, _>>()?;
                self.groups.insert(
                    keys.value(r).into(),
                    GroupState {
                        count: counts.value(r),
                        accs,
                        last: Some(last),
                        expires: expiries.as_ref().map_or(i64::MAX, |e| e.value(r)),
                    },
                );
            }
        }
        Ok(())
    }
}

/// An aggregate's argument columns at `idx`, less the rows its `FILTER`
/// drops.
fn pick(
    args: &[ArrayRef],
    filter_col: Option<&ArrayRef>,
    idx: &[u32],
) -> Result<Vec<ArrayRef>, EngineError> {
    let indices = UInt32Array::from(idx.to_vec());
    let mask = match filter_col {
        Some(f) => {
            let m = take(f.as_ref(), &indices, None)?;
            // A NULL filter value drops the row, as a false one does.
            let m = m.as_boolean();
            Some(if m.null_count() > 0 {
                arrow::compute::prep_null_mask_filter(m)
            } else {
                m.clone()
            })
        }
        None => None,
    };
    args.iter()
        .map(|a| {
            let t = take(a.as_ref(), &indices, None)?;
            Ok(match &mask {
                Some(m) => filter(&t, m)?,
                None => t,
            })
        })
        .collect()
}

/// What a [`RetractingValues`] computes from its values.
#[derive(Debug, Clone)]
enum Kind {
    Min,
    Max,
    CountDistinct,
    /// A `DISTINCT` aggregate of one column, run over the distinct values
    /// (in their order: for aggregates where the order they arrived in does
    /// not matter), with its other, constant, arguments.
    Distinct(Arc<AggregateFunctionExpr>, Vec<ScalarValue>),
}

/// `MIN`, `MAX` and `DISTINCT` aggregates that can retract any value: a
/// count per distinct value, the result computed from the values.
#[derive(Debug)]
struct RetractingValues {
    kind: Kind,
    data_type: DataType,
    values: BTreeMap<Ordered, u64>,
}

/// A `ScalarValue` ordered by its own partial order (values of one column
/// share a type, so they always compare).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ordered(ScalarValue);

impl PartialOrd for Ordered {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ordered {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0
            .partial_cmp(&other.0)
            .unwrap_or(std::cmp::Ordering::Equal)
    }
}

impl RetractingValues {
    fn new(kind: Kind, data_type: DataType) -> RetractingValues {
        RetractingValues {
            kind,
            data_type,
            values: BTreeMap::new(),
        }
    }
}

impl Accumulator for RetractingValues {
    fn update_batch(&mut self, values: &[ArrayRef]) -> datafusion::common::Result<()> {
        let col = &values[0];
        for i in 0..col.len() {
            if col.is_valid(i) {
                let v = ScalarValue::try_from_array(col, i)?;
                *self.values.entry(Ordered(v)).or_default() += 1;
            }
        }
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> datafusion::common::Result<()> {
        let col = &values[0];
        for i in 0..col.len() {
            if col.is_valid(i) {
                let v = Ordered(ScalarValue::try_from_array(col, i)?);
                if let Some(c) = self.values.get_mut(&v) {
                    *c -= 1;
                    if *c == 0 {
                        self.values.remove(&v);
                    }
                }
            }
        }
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> datafusion::common::Result<ScalarValue> {
        let v = match &self.kind {
            Kind::Max => self.values.last_key_value(),
            Kind::Min => self.values.first_key_value(),
            Kind::CountDistinct => return Ok(ScalarValue::Int64(Some(self.values.len() as i64))),
            Kind::Distinct(expr, constants) => {
                let mut acc = expr.create_accumulator()?;
                if !self.values.is_empty() {
                    let mut args = vec![ScalarValue::iter_to_array(
                        self.values.keys().map(|v| v.0.clone()),
                    )?];
                    for c in constants {
                        args.push(c.to_array_of_size(self.values.len())?);
                    }
                    acc.update_batch(&args)?;
                }
                return acc.evaluate();
            }
        };
        match v {
            Some((v, _)) => Ok(v.0.clone()),
            None => ScalarValue::try_from(&self.data_type),
        }
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.values.len() * 64
    }

    /// Every value with its count, as two lists.
    fn state(&mut self) -> datafusion::common::Result<Vec<ScalarValue>> {
        let values: Vec<ScalarValue> = self.values.keys().map(|v| v.0.clone()).collect();
        let counts: Vec<ScalarValue> = self
            .values
            .values()
            .map(|c| ScalarValue::UInt64(Some(*c)))
            .collect();
        Ok(vec![
            ScalarValue::List(ScalarValue::new_list_nullable(&values, &self.data_type)),
            ScalarValue::List(ScalarValue::new_list_nullable(&counts, &DataType::UInt64)),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> datafusion::common::Result<()> {
        let values = states[0].as_list::<i32>();
        let counts = states[1].as_list::<i32>();
        for r in 0..values.len() {
            let vs = values.value(r);
            let cs = counts.value(r);
            let cs = cs.as_primitive::<arrow::datatypes::UInt64Type>();
            for i in 0..vs.len() {
                let v = ScalarValue::try_from_array(&vs, i)?;
                *self.values.entry(Ordered(v)).or_default() += cs.value(i);
            }
        }
        Ok(())
    }
}
