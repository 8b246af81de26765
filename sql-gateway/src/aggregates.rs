//! Aggregate functions whose Flink semantics differ from DataFusion's.
//!
//! `AVG` of an integer column is an integer in Flink (the sum divided by
//! the count, truncated like Java's `long` division); DataFusion's is a
//! `DOUBLE`. [`avg`] is Flink's for integers and DataFusion's for every
//! other type, registered under the same name.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::common::{not_impl_err, plan_err, Result, ScalarValue};
use datafusion::functions_aggregate::average::avg_udaf;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, GroupsAccumulator, Signature, Volatility,
};

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
            _ => self.inner.return_type(arg_types),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        match args.exprs[0].data_type(args.schema)? {
            t if t.is_integer() => int_avg(&args, t),
            _ => self.inner.accumulator(args),
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
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
        } else {
            self.inner.inner().state_fields(args)
        }
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        match args.exprs[0].data_type(args.schema) {
            Ok(t) if t.is_integer() => false,
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
            t if t.is_integer() => int_avg(&args, t),
            _ => self.inner.create_sliding_accumulator(args),
        }
    }
}

fn int_avg(args: &AccumulatorArgs, result: DataType) -> Result<Box<dyn Accumulator>> {
    if args.is_distinct {
        return not_impl_err!(
            "AVG(DISTINCT ...) of an integer column; cast the column to DOUBLE or DECIMAL"
        );
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
