//! `STDDEV_POP`, `STDDEV_SAMP`, `VAR_POP`, `VAR_SAMP` and `VARIANCE` with
//! Flink's result types: computed as DataFusion's (Welford's method in
//! `DOUBLE`, which is what Flink computes too), then cast to the argument's
//! type as Flink's are, so the standard deviation of an `INT` column is an
//! `INT` (truncated) and of a `DECIMAL` a `DECIMAL(38, 6)`.

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::compute::cast;
use arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{plan_err, Result, ScalarValue};
use datafusion::functions_aggregate::stddev::{stddev_pop_udaf, stddev_udaf};
use datafusion::functions_aggregate::variance::{var_pop_udaf, var_samp_udaf};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};

/// The four functions (and `VARIANCE`, `VAR_SAMP`'s other name), each
/// registered under DataFusion's name so that it replaces DataFusion's.
pub fn udafs() -> Vec<Arc<AggregateUDF>> {
    [
        (stddev_pop_udaf(), "STDDEV_POP", vec![]),
        (stddev_udaf(), "STDDEV_SAMP", vec![]),
        (var_pop_udaf(), "VAR_POP", vec![]),
        (var_samp_udaf(), "VAR_SAMP", vec!["variance".to_string()]),
    ]
    .into_iter()
    .map(|(inner, sql_name, extra)| {
        let mut aliases = inner.aliases().to_vec();
        aliases.extend(extra);
        Arc::new(AggregateUDF::new_from_impl(FlinkStat {
            inner,
            sql_name,
            aliases,
            signature: Signature::user_defined(Volatility::Immutable),
        }))
    })
    .collect()
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct FlinkStat {
    inner: Arc<AggregateUDF>,
    sql_name: &'static str,
    aliases: Vec<String>,
    signature: Signature,
}

/// Flink's result type for an argument of type `t`.
fn result_type(t: &DataType) -> DataType {
    match t {
        t if t.is_integer() || *t == DataType::Float32 => t.clone(),
        DataType::Decimal128(..) | DataType::Decimal256(..) => DataType::Decimal128(38, 6),
        _ => DataType::Float64,
    }
}

impl AggregateUDFImpl for FlinkStat {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [t] if t.is_numeric() => Ok(vec![t.clone()]),
            [DataType::Null] => Ok(vec![DataType::Float64]),
            [t] => plan_err!("{} of {t}: the argument must be numeric", self.sql_name),
            _ => plan_err!(
                "{} takes one argument, not {}",
                self.sql_name,
                arg_types.len()
            ),
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(result_type(&arg_types[0]))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let inner = self.inner.accumulator(args.clone())?;
        Ok(Box::new(Cast {
            inner,
            result: args.return_field.data_type().clone(),
        }))
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let inner = self.inner.create_sliding_accumulator(args.clone())?;
        Ok(Box::new(Cast {
            inner,
            result: args.return_field.data_type().clone(),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.inner.inner().state_fields(args)
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        false
    }
}

/// DataFusion's accumulator over the values as `DOUBLE`, its result cast.
#[derive(Debug)]
struct Cast {
    inner: Box<dyn Accumulator>,
    result: DataType,
}

fn doubles(values: &[ArrayRef]) -> Result<Vec<ArrayRef>> {
    Ok(vec![cast(&values[0], &DataType::Float64)?])
}

impl Accumulator for Cast {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.inner.update_batch(&doubles(values)?)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.inner.retract_batch(&doubles(values)?)
    }

    fn supports_retract_batch(&self) -> bool {
        self.inner.supports_retract_batch()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let v = self.inner.evaluate()?;
        // A cast that does not fit (NaN or an infinity into an integer)
        // is NULL rather than a failed statement.
        v.cast_to(&self.result)
            .or_else(|_| ScalarValue::try_from(&self.result))
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
