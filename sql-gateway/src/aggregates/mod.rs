//! Aggregate functions whose Flink semantics differ from DataFusion's.
//!
//! `AVG` of an integer column is an integer in Flink (the sum divided by
//! the count, truncated like Java's `long` division); DataFusion's is a
//! `DOUBLE`. `AVG` of a `DECIMAL(p, s)` is a `DECIMAL(38, max(6, s))`
//! rounded half up in Flink; DataFusion's is a `DECIMAL(p + 4, s + 4)`,
//! truncated. [`avg`] is Flink's for both and DataFusion's for the
//! floating-point types, registered under the same name.
//!
//! `FIRST_VALUE`, `LAST_VALUE` and `LISTAGG` follow Flink: they skip
//! NULLs, take rows in arrival order, and over an update stream retract any
//! value (the earliest equal one), as Flink's `*WithRetractAggFunction`s
//! do. DataFusion's keep NULLs and cannot retract; `LISTAGG` is not in
//! DataFusion at all. `ARRAY_AGG` is one of them too (NULLs kept unless
//! `IGNORE NULLS`), and `AVG(DISTINCT i)` of integers is Flink's.
//!
//! The submodules hold the rest of Flink's library: `SUM` and the standard
//! deviations and variances with Flink's result types ([`sum`], [`stats`]),
//! `COLLECT`, `JSON_ARRAYAGG` and `JSON_OBJECTAGG`, `PERCENTILE`, and
//! `LAG` as the aggregate Flink runs it in an `OVER` window.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::common::{not_impl_err, plan_err, Result, ScalarValue};

mod collect;
mod json;
mod lag;
mod percentile;
mod stats;
mod sum;
pub use collect::udaf as collect;
use datafusion::functions_aggregate::average::avg_udaf;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, GroupsAccumulator, Signature, Volatility,
};
pub(crate) use json::{udafs as json_aggregates, ARRAYAGG_FN, OBJECTAGG_FN};
pub use lag::udaf as lag;
pub use percentile::udaf as percentile;
pub use stats::udafs as stats;
pub use sum::udaf as sum;

/// `AVG` with Flink's result type.
pub fn avg() -> Arc<AggregateUDF> {
    Arc::new(AggregateUDF::new_from_impl(FlinkAvg {
        inner: avg_udaf(),
        signature: Signature::user_defined(Volatility::Immutable),
    }))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct FlinkAvg {
    inner: Arc<AggregateUDF>,
    signature: Signature,
}

impl AggregateUDFImpl for FlinkAvg {
    fn name(&self) -> &str {
        "avg"
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [t] = arg_types else {
            return plan_err!("AVG takes one argument, not {}", arg_types.len());
        };
        Ok(vec![match t {
            t if t.is_integer() || t.is_decimal() => t.clone(),
            DataType::Duration(_) => t.clone(),
            t if t.is_floating() || t.is_null() => DataType::Float64,
            other => return plan_err!("AVG of {other}: the argument must be numeric"),
        }])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [t] if t.is_integer() => Ok(t.clone()),
            [DataType::Decimal128(_, s)] => Ok(decimal_avg_type(*s)),
            _ => self.inner.return_type(arg_types),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        match args.exprs[0].data_type(args.schema)? {
            t if t.is_integer() => int_avg(&args, t),
            DataType::Decimal128(_, s) => Ok(Box::new(DecimalAvg {
                count: 0,
                sum: 0,
                scale: s,
                distinct: args.is_distinct.then(std::collections::HashMap::new),
            })),
            _ => self.inner.accumulator(args),
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        if let DataType::Decimal128(_, s) = args.input_fields[0].data_type() {
            let sum = DataType::Decimal128(38, *s);
            return Ok(if args.is_distinct {
                let item = Arc::new(Field::new_list_field(sum, true));
                vec![Arc::new(Field::new(
                    format!("{}[distinct]", args.name),
                    DataType::List(item),
                    true,
                ))]
            } else {
                vec![
                    Arc::new(Field::new(
                        format!("{}[count]", args.name),
                        DataType::Int64,
                        true,
                    )),
                    Arc::new(Field::new(format!("{}[sum]", args.name), sum, true)),
                ]
            });
        }
        if args.input_fields[0].data_type().is_integer() && !args.is_distinct {
            Ok(vec![
                Arc::new(Field::new(
                    format!("{}[count]", args.name),
                    DataType::Int64,
                    true,
                )),
                Arc::new(Field::new(
                    format!("{}[sum]", args.name),
                    DataType::Int64,
                    true,
                )),
            ])
        } else if args.input_fields[0].data_type().is_integer() {
            let item = Arc::new(Field::new_list_field(DataType::Int64, true));
            Ok(vec![Arc::new(Field::new(
                format!("{}[distinct]", args.name),
                DataType::List(item),
                true,
            ))])
        } else {
            self.inner.inner().state_fields(args)
        }
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        match args.exprs[0].data_type(args.schema) {
            Ok(t) if t.is_integer() || t.is_decimal() => false,
            _ => self.inner.groups_accumulator_supported(args),
        }
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        self.inner.create_groups_accumulator(args)
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        match args.exprs[0].data_type(args.schema)? {
            t if t.is_integer() || t.is_decimal() => self.accumulator(args),
            _ => self.inner.create_sliding_accumulator(args),
        }
    }
}

fn int_avg(args: &AccumulatorArgs, result: DataType) -> Result<Box<dyn Accumulator>> {
    if args.is_distinct {
        return Ok(Box::new(IntAvgDistinct {
            counts: std::collections::HashMap::new(),
            result,
        }));
    }
    Ok(Box::new(IntAvg {
        count: 0,
        sum: 0,
        result,
    }))
}

/// Count and sum in Java `long` arithmetic, as Flink keeps them; retracts.
#[derive(Debug)]
struct IntAvg {
    count: i64,
    sum: i64,
    result: DataType,
}

impl IntAvg {
    fn values(values: &[ArrayRef]) -> Result<ArrayRef> {
        Ok(cast(&values[0], &DataType::Int64)?)
    }
}

impl Accumulator for IntAvg {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let v = Self::values(values)?;
        let v = v.as_primitive::<Int64Type>();
        self.count += (v.len() - v.null_count()) as i64;
        self.sum = v.iter().flatten().fold(self.sum, i64::wrapping_add);
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let v = Self::values(values)?;
        let v = v.as_primitive::<Int64Type>();
        self.count -= (v.len() - v.null_count()) as i64;
        self.sum = v.iter().flatten().fold(self.sum, i64::wrapping_sub);
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let avg = (self.count != 0).then(|| self.sum.wrapping_div(self.count));
        ScalarValue::Int64(avg).cast_to(&self.result)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::Int64(Some(self.count)),
            ScalarValue::Int64(Some(self.sum)),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let counts = states[0].as_primitive::<Int64Type>();
        let sums = states[1].as_primitive::<Int64Type>();
        self.count += counts.iter().flatten().sum::<i64>();
        self.sum = sums.iter().flatten().fold(self.sum, i64::wrapping_add);
        Ok(())
    }
}

/// Flink's `AVG` of a `DECIMAL(p, s)`: `DECIMAL(38, max(6, s))` (its
/// `LogicalTypeMerging.findAvgAggType`).
fn decimal_avg_type(scale: i8) -> DataType {
    DataType::Decimal128(38, scale.max(6))
}

/// `AVG` of decimals: the count and the exact sum (unscaled, at the input's
/// scale), divided at the end and rounded half up to the result's scale,
/// as Flink's `DecimalData` division does; retracts. With `distinct`, each
/// distinct value with how many rows hold it.
#[derive(Debug)]
struct DecimalAvg {
    count: i64,
    sum: i128,
    scale: i8,
    distinct: Option<std::collections::HashMap<i128, u64>>,
}

impl DecimalAvg {
    fn values(&self, values: &[ArrayRef]) -> Result<ArrayRef> {
        Ok(cast(&values[0], &DataType::Decimal128(38, self.scale))?)
    }

    fn add(&mut self, values: &[ArrayRef], sign: i64) -> Result<()> {
        let v = self.values(values)?;
        let v = v.as_primitive::<arrow::datatypes::Decimal128Type>();
        if let Some(counts) = &mut self.distinct {
            for x in v.iter().flatten() {
                if sign > 0 {
                    *counts.entry(x).or_default() += 1;
                } else if let std::collections::hash_map::Entry::Occupied(mut e) = counts.entry(x) {
                    *e.get_mut() -= 1;
                    if *e.get() == 0 {
                        e.remove();
                    }
                }
            }
            return Ok(());
        }
        self.count += sign * (v.len() - v.null_count()) as i64;
        for x in v.iter().flatten() {
            self.sum = if sign > 0 {
                self.sum.wrapping_add(x)
            } else {
                self.sum.wrapping_sub(x)
            };
        }
        Ok(())
    }
}

impl Accumulator for DecimalAvg {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(values, 1)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(values, -1)
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let (sum, count) = match &self.distinct {
            Some(counts) => (
                counts.keys().fold(0i128, |s, x| s.wrapping_add(*x)),
                counts.len() as i128,
            ),
            None => (self.sum, i128::from(self.count)),
        };
        let DataType::Decimal128(p, s) = decimal_avg_type(self.scale) else {
            unreachable!("a decimal type")
        };
        if count == 0 {
            return Ok(ScalarValue::Decimal128(None, p, s));
        }
        let up = 10i128.pow((s - self.scale) as u32);
        let Some(scaled) = sum.checked_mul(up) else {
            return Ok(ScalarValue::Decimal128(None, p, s));
        };
        let (q, r) = (scaled / count, scaled % count);
        let q = if r.unsigned_abs() * 2 >= count.unsigned_abs() {
            q + scaled.signum()
        } else {
            q
        };
        Ok(ScalarValue::Decimal128(Some(q), p, s))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self
                .distinct
                .as_ref()
                .map_or(0, |c| c.capacity() * (16 + 8))
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let sum = |x: i128| ScalarValue::Decimal128(Some(x), 38, self.scale);
        Ok(match &self.distinct {
            Some(counts) => {
                let items: Vec<ScalarValue> = counts
                    .iter()
                    .flat_map(|(x, n)| std::iter::repeat_n(sum(*x), *n as usize))
                    .collect();
                vec![ScalarValue::List(ScalarValue::new_list_nullable(
                    &items,
                    &DataType::Decimal128(38, self.scale),
                ))]
            }
            None => vec![ScalarValue::Int64(Some(self.count)), sum(self.sum)],
        })
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        if self.distinct.is_some() {
            for list in states[0].as_list::<i32>().iter().flatten() {
                self.add(&[list], 1)?;
            }
            return Ok(());
        }
        let counts = states[0].as_primitive::<Int64Type>();
        let sums = states[1].as_primitive::<arrow::datatypes::Decimal128Type>();
        self.count += counts.iter().flatten().sum::<i64>();
        self.sum = sums.iter().flatten().fold(self.sum, i128::wrapping_add);
        Ok(())
    }
}

/// `AVG(DISTINCT i)` of integers: each distinct value with how many rows
/// hold it, so that a retraction removes a value only with its last row.
#[derive(Debug)]
struct IntAvgDistinct {
    counts: std::collections::HashMap<i64, u64>,
    result: DataType,
}

impl Accumulator for IntAvgDistinct {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let v = IntAvg::values(values)?;
        for x in v.as_primitive::<Int64Type>().iter().flatten() {
            *self.counts.entry(x).or_default() += 1;
        }
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let v = IntAvg::values(values)?;
        for x in v.as_primitive::<Int64Type>().iter().flatten() {
            if let std::collections::hash_map::Entry::Occupied(mut e) = self.counts.entry(x) {
                *e.get_mut() -= 1;
                if *e.get() == 0 {
                    e.remove();
                }
            }
        }
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let n = self.counts.len() as i64;
        let sum = self.counts.keys().fold(0i64, |s, x| s.wrapping_add(*x));
        let avg = (n != 0).then(|| sum.wrapping_div(n));
        ScalarValue::Int64(avg).cast_to(&self.result)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.counts.capacity() * 2 * std::mem::size_of::<i64>()
    }

    /// Every row's value, repeated as many times as rows hold it.
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let values: Vec<ScalarValue> = self
            .counts
            .iter()
            .flat_map(|(x, n)| std::iter::repeat_n(ScalarValue::Int64(Some(*x)), *n as usize))
            .collect();
        Ok(vec![ScalarValue::List(ScalarValue::new_list_nullable(
            &values,
            &DataType::Int64,
        ))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = states[0].as_list::<i32>();
        for r in 0..lists.len() {
            if !lists.is_null(r) {
                self.update_batch(&[lists.value(r)])?;
            }
        }
        Ok(())
    }
}

/// Flink's `FIRST_VALUE(x)`: the first non-NULL value in arrival order.
pub fn first_value() -> Arc<AggregateUDF> {
    arrival(ArrivalKind::First)
}

/// Flink's `LAST_VALUE(x)`: the last non-NULL value in arrival order.
pub fn last_value() -> Arc<AggregateUDF> {
    arrival(ArrivalKind::Last)
}

/// Flink's `LISTAGG(s [, separator])`: the non-NULL strings in arrival
/// order, joined by the separator (`,` by default); NULL when there are
/// none.
pub fn listagg() -> Arc<AggregateUDF> {
    arrival(ArrivalKind::ListAgg)
}

/// Flink's `ARRAY_AGG([DISTINCT] x [IGNORE NULLS])`: the values in arrival
/// order, NULLs kept unless `IGNORE NULLS`; with `DISTINCT` each value's
/// first arrival. NULL when there are none; over an update stream a
/// retraction removes the earliest equal value, as Flink's does.
pub fn array_agg() -> Arc<AggregateUDF> {
    arrival(ArrivalKind::ArrayAgg)
}

fn arrival(kind: ArrivalKind) -> Arc<AggregateUDF> {
    Arc::new(AggregateUDF::new_from_impl(ArrivalAgg {
        kind,
        signature: Signature::user_defined(Volatility::Immutable),
    }))
}

/// The aggregates whose result depends on the order rows arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ArrivalKind {
    First,
    Last,
    ListAgg,
    ArrayAgg,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ArrivalAgg {
    kind: ArrivalKind,
    signature: Signature,
}

impl ArrivalAgg {
    fn sql_name(&self) -> &'static str {
        match self.kind {
            ArrivalKind::First => "FIRST_VALUE",
            ArrivalKind::Last => "LAST_VALUE",
            ArrivalKind::ListAgg => "LISTAGG",
            ArrivalKind::ArrayAgg => "ARRAY_AGG",
        }
    }

    fn make(&self, args: &AccumulatorArgs, retracting: bool) -> Result<Box<dyn Accumulator>> {
        if args.is_distinct && matches!(self.kind, ArrivalKind::First | ArrivalKind::Last) {
            return not_impl_err!(
                "{}(DISTINCT ...) is not supported; deduplicate in a subquery first",
                self.sql_name()
            );
        }
        let data_type = match (self.kind, args.return_field.data_type()) {
            (ArrivalKind::ArrayAgg, DataType::List(item)) => item.data_type().clone(),
            (_, t) => t.clone(),
        };
        Ok(Box::new(Arrival {
            kind: self.kind,
            data_type,
            keep_nulls: self.kind == ArrivalKind::ArrayAgg && !args.ignore_nulls,
            distinct: args.is_distinct,
            retracting,
            values: Vec::new(),
            separator: None,
        }))
    }
}

impl AggregateUDFImpl for ArrivalAgg {
    fn name(&self) -> &str {
        match self.kind {
            ArrivalKind::First => "first_value",
            ArrivalKind::Last => "last_value",
            ArrivalKind::ListAgg => "listagg",
            ArrivalKind::ArrayAgg => "array_agg",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let string = |t: &DataType| {
            matches!(
                t,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
            )
        };
        match (self.kind, arg_types) {
            (ArrivalKind::First | ArrivalKind::Last | ArrivalKind::ArrayAgg, [t]) => {
                Ok(vec![t.clone()])
            }
            (ArrivalKind::ListAgg, [t]) if string(t) => Ok(vec![DataType::Utf8]),
            (ArrivalKind::ListAgg, [t, s]) if string(t) && string(s) => {
                Ok(vec![DataType::Utf8, DataType::Utf8])
            }
            (ArrivalKind::ListAgg, [_] | [_, _]) => {
                plan_err!("LISTAGG joins strings: CAST the value (and the separator) to STRING")
            }
            (ArrivalKind::ListAgg, _) => plan_err!(
                "LISTAGG takes a value and an optional separator, not {} arguments",
                arg_types.len()
            ),
            _ => plan_err!(
                "{} takes one argument, not {}",
                self.sql_name(),
                arg_types.len()
            ),
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            ArrivalKind::ListAgg => DataType::Utf8,
            ArrivalKind::ArrayAgg => {
                DataType::List(Arc::new(Field::new_list_field(arg_types[0].clone(), true)))
            }
            _ => arg_types[0].clone(),
        })
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.make(&args, false)
    }

    /// Over an update stream: every value is held, so that any can be
    /// retracted.
    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.make(&args, true)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let value = match (self.kind, args.return_type()) {
            (ArrivalKind::ArrayAgg, DataType::List(item)) => item.data_type().clone(),
            (_, t) => t.clone(),
        };
        let item = Arc::new(Field::new_list_field(value, true));
        Ok(vec![
            Arc::new(Field::new(
                format!("{}[values]", args.name),
                DataType::List(item),
                true,
            )),
            Arc::new(Field::new(
                format!("{}[separator]", args.name),
                DataType::Utf8,
                true,
            )),
        ])
    }

    fn order_sensitivity(&self) -> datafusion::logical_expr::utils::AggregateOrderSensitivity {
        datafusion::logical_expr::utils::AggregateOrderSensitivity::Insensitive
    }

    /// `ARRAY_AGG(x IGNORE NULLS)`; the others skip NULLs anyway.
    fn supports_null_handling_clause(&self) -> bool {
        true
    }
}

/// The values of an [`ArrivalAgg`] in arrival order. Over an append-only
/// input `FIRST_VALUE` and `LAST_VALUE` keep one value; over an update
/// stream every value is kept, and a retraction removes the earliest equal
/// one, as Flink's `*WithRetractAggFunction`s do.
#[derive(Debug)]
struct Arrival {
    kind: ArrivalKind,
    /// The type of one value.
    data_type: DataType,
    /// `ARRAY_AGG` without `IGNORE NULLS` keeps NULLs; the others skip them.
    keep_nulls: bool,
    /// `ARRAY_AGG(DISTINCT ...)`, `LISTAGG(DISTINCT ...)`: every value is
    /// held (so that one can be retracted), each given once, where it
    /// first arrived.
    distinct: bool,
    retracting: bool,
    values: Vec<ScalarValue>,
    /// `LISTAGG`'s separator, the last one seen.
    separator: Option<String>,
}

impl Arrival {
    fn push(&mut self, v: ScalarValue) {
        match self.kind {
            ArrivalKind::First if !self.retracting => {
                if self.values.is_empty() {
                    self.values.push(v);
                }
            }
            ArrivalKind::Last if !self.retracting => {
                self.values.clear();
                self.values.push(v);
            }
            _ => self.values.push(v),
        }
    }

    /// The values the aggregate gives, in arrival order: with `DISTINCT`,
    /// each where it first arrived.
    fn given(&self) -> impl Iterator<Item = &ScalarValue> {
        let mut seen = std::collections::HashSet::new();
        self.values
            .iter()
            .filter(move |v| !self.distinct || seen.insert(*v))
    }

    fn note_separator(&mut self, values: &[ArrayRef]) {
        if let Some(sep) = values.get(1) {
            let sep = sep.as_string::<i32>();
            if let Some(s) = sep.iter().flatten().last() {
                self.separator = Some(s.to_string());
            }
        }
    }
}

impl Accumulator for Arrival {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let col = &values[0];
        for i in 0..col.len() {
            if self.keep_nulls || col.is_valid(i) {
                self.push(ScalarValue::try_from_array(col, i)?);
            }
        }
        self.note_separator(values);
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let col = &values[0];
        for i in 0..col.len() {
            if self.keep_nulls || col.is_valid(i) {
                let v = ScalarValue::try_from_array(col, i)?;
                if let Some(at) = self.values.iter().position(|x| *x == v) {
                    self.values.remove(at);
                }
            }
        }
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        self.retracting
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let v = match self.kind {
            ArrivalKind::First => self.values.first().cloned(),
            ArrivalKind::Last => self.values.last().cloned(),
            ArrivalKind::ListAgg | ArrivalKind::ArrayAgg if self.values.is_empty() => None,
            ArrivalKind::ArrayAgg => {
                let values: Vec<ScalarValue> = self.given().cloned().collect();
                Some(ScalarValue::List(ScalarValue::new_list_nullable(
                    &values,
                    &self.data_type,
                )))
            }
            ArrivalKind::ListAgg => {
                let sep = self.separator.as_deref().unwrap_or(",");
                let parts: Vec<String> = self
                    .given()
                    .map(|v| match v {
                        ScalarValue::Utf8(Some(s)) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                Some(ScalarValue::Utf8(Some(parts.join(sep))))
            }
        };
        match (v, self.kind) {
            (Some(v), _) => Ok(v),
            (None, ArrivalKind::ArrayAgg) => ScalarValue::try_from(DataType::List(Arc::new(
                Field::new_list_field(self.data_type.clone(), true),
            ))),
            (None, _) => ScalarValue::try_from(&self.data_type),
        }
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.values.iter().map(ScalarValue::size).sum::<usize>()
            + self.separator.as_ref().map_or(0, String::capacity)
    }

    /// The values in order as one list, and the separator.
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::List(ScalarValue::new_list_nullable(
                &self.values,
                &self.data_type,
            )),
            ScalarValue::Utf8(self.separator.clone()),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = states[0].as_list::<i32>();
        for r in 0..lists.len() {
            if lists.is_null(r) {
                continue;
            }
            let vs = lists.value(r);
            for i in 0..vs.len() {
                if self.keep_nulls || vs.is_valid(i) {
                    self.push(ScalarValue::try_from_array(&vs, i)?);
                }
            }
        }
        if let Some(sep) = states.get(1) {
            if let Some(s) = sep.as_string::<i32>().iter().flatten().last() {
                self.separator = Some(s.to_string());
            }
        }
        Ok(())
    }
}
