//! `SUM` with Flink's result type: a `TINYINT`, `SMALLINT` or `INT`
//! argument's own type (the sum wraps around, as Flink's Java arithmetic
//! does) and `DECIMAL(38, s)` for a `DECIMAL(p, s)`; DataFusion's are a
//! `BIGINT` and a `DECIMAL(p + 10, s)`, which also changed what a division
//! by the sum is typed (`SUM(price) / COUNT(*)` had 20 decimals where
//! Flink's has 6). DataFusion's sum does the adding (in a `BIGINT` for the
//! narrow integers, narrowed at the end) and everything else.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, BooleanArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::common::{plan_err, Result, ScalarValue};
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};

/// Flink's `SUM`, registered under DataFusion's name so that it replaces it.
pub fn udaf() -> Arc<AggregateUDF> {
    Arc::new(AggregateUDF::new_from_impl(FlinkSum {
        inner: sum_udaf(),
        signature: Signature::user_defined(Volatility::Immutable),
    }))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct FlinkSum {
    inner: Arc<AggregateUDF>,
    signature: Signature,
}

/// A narrow integer type, summed as a `BIGINT` and narrowed at the end.
fn narrow(t: &DataType) -> bool {
    matches!(t, DataType::Int8 | DataType::Int16 | DataType::Int32)
}

/// `args` for DataFusion's sum: a narrow integer's sum is a `BIGINT`.
fn inner_args<'a>(args: &AccumulatorArgs<'a>) -> AccumulatorArgs<'a> {
    let mut inner = args.clone();
    if narrow(args.return_field.data_type()) {
        inner.return_field = Arc::new(Field::new(args.return_field.name(), DataType::Int64, true));
    }
    inner
}

/// Java's narrowing of a `long` sum to the argument's type.
fn narrowed(v: ScalarValue, to: &DataType) -> ScalarValue {
    match (v, to) {
        (ScalarValue::Int64(v), DataType::Int8) => ScalarValue::Int8(v.map(|v| v as i8)),
        (ScalarValue::Int64(v), DataType::Int16) => ScalarValue::Int16(v.map(|v| v as i16)),
        (ScalarValue::Int64(v), DataType::Int32) => ScalarValue::Int32(v.map(|v| v as i32)),
        (v, _) => v,
    }
}

fn narrowed_array(a: ArrayRef, to: &DataType) -> Result<ArrayRef> {
    let Some(longs) = a.as_primitive_opt::<Int64Type>() else {
        return Ok(a);
    };
    Ok(match to {
        DataType::Int8 => Arc::new(longs.unary::<_, arrow::datatypes::Int8Type>(|v| v as i8)),
        DataType::Int16 => Arc::new(longs.unary::<_, arrow::datatypes::Int16Type>(|v| v as i16)),
        DataType::Int32 => Arc::new(longs.unary::<_, arrow::datatypes::Int32Type>(|v| v as i32)),
        _ => a,
    })
}

fn longs(values: &[ArrayRef]) -> Result<Vec<ArrayRef>> {
    values
        .iter()
        .map(|v| {
            if narrow(v.data_type()) {
                Ok(cast(v, &DataType::Int64)?)
            } else {
                Ok(v.clone())
            }
        })
        .collect()
}

impl AggregateUDFImpl for FlinkSum {
    fn name(&self) -> &str {
        "sum"
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [t] = arg_types else {
            return plan_err!("SUM takes one argument, not {}", arg_types.len());
        };
        Ok(vec![match t {
            t if narrow(t) || t.is_decimal() => t.clone(),
            DataType::Int64 | DataType::Null => DataType::Int64,
            DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
                DataType::UInt64
            }
            t if t.is_floating() => DataType::Float64,
            DataType::Duration(_) | DataType::Interval(_) => t.clone(),
            other => return plan_err!("SUM of {other}: the argument must be numeric"),
        }])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [t] if narrow(t) => Ok(t.clone()),
            [DataType::Decimal128(_, s)] => Ok(DataType::Decimal128(38, *s)),
            _ => self.inner.return_type(arg_types),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(Narrowed {
            inner: self.inner.accumulator(inner_args(&args))?,
            to: args.return_field.data_type().clone(),
        }))
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(Narrowed {
            inner: self.inner.create_sliding_accumulator(inner_args(&args))?,
            to: args.return_field.data_type().clone(),
        }))
    }

    fn state_fields(&self, mut args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        if narrow(args.return_field.data_type()) {
            args.return_field =
                Arc::new(Field::new(args.return_field.name(), DataType::Int64, true));
        }
        self.inner.inner().state_fields(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.inner.groups_accumulator_supported(inner_args(&args))
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(NarrowedGroups {
            inner: self.inner.create_groups_accumulator(inner_args(&args))?,
            to: args.return_field.data_type().clone(),
        }))
    }
}

/// DataFusion's accumulator over `BIGINT`s, its sum narrowed.
#[derive(Debug)]
struct Narrowed {
    inner: Box<dyn Accumulator>,
    to: DataType,
}

impl Accumulator for Narrowed {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.inner.update_batch(&longs(values)?)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.inner.retract_batch(&longs(values)?)
    }

    fn supports_retract_batch(&self) -> bool {
        self.inner.supports_retract_batch()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(narrowed(self.inner.evaluate()?, &self.to))
    }

    fn size(&self) -> usize {
        self.inner.size() + std::mem::size_of::<DataType>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.inner.state()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.inner.merge_batch(states)
    }
}

/// DataFusion's groups accumulator over `BIGINT`s, its sums narrowed.
struct NarrowedGroups {
    inner: Box<dyn GroupsAccumulator>,
    to: DataType,
}

impl GroupsAccumulator for NarrowedGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.inner
            .update_batch(&longs(values)?, group_indices, opt_filter, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        narrowed_array(self.inner.evaluate(emit_to)?, &self.to)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        self.inner.state(emit_to)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.inner
            .merge_batch(values, group_indices, total_num_groups)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        self.inner.convert_to_state(&longs(values)?, opt_filter)
    }

    fn size(&self) -> usize {
        self.inner.size()
    }
}
