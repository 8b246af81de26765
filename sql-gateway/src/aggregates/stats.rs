//! `STDDEV_POP`, `STDDEV_SAMP`, `VAR_POP`, `VAR_SAMP` and `VARIANCE` with
//! Flink's result types: computed as DataFusion's (Welford's method in
//! `DOUBLE`, which is what Flink computes too), then cast to the argument's
//! type as Flink's are, so the standard deviation of an `INT` column is an
//! `INT` (truncated) and of a `DECIMAL` a `DECIMAL(38, 6)`.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, FieldRef};
use arrow::datatypes::{Float64Type, UInt64Type};
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
        Ok(Box::new(Cast {
            inner: Welford::of(self.sql_name),
            result: args.return_field.data_type().clone(),
        }))
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.accumulator(args)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.inner.inner().state_fields(args)
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        false
    }
}

/// [`Welford`] over the values as `DOUBLE`, its result cast.
#[derive(Debug)]
struct Cast {
    inner: Welford,
    result: DataType,
}

/// DataFusion's variance accumulator (Welford's method, the same state of
/// count, mean and sum of squared deviations, the same arithmetic), except
/// that a state merged into an empty one is taken as it is: DataFusion's
/// merge computes the mean again (`mean * n / n`), which can move its last
/// bit, so a group restored from a checkpoint gave a result that differed
/// from the uninterrupted run in the 16th digit.
#[derive(Debug, Default)]
struct Welford {
    count: u64,
    mean: f64,
    m2: f64,
    /// Divides by `count - 1` (`_SAMP`), not `count`.
    sample: bool,
    /// The square root of the variance (`STDDEV_*`).
    root: bool,
}

impl Welford {
    fn of(sql_name: &str) -> Welford {
        Welford {
            sample: sql_name.ends_with("SAMP"),
            root: sql_name.starts_with("STDDEV"),
            ..Welford::default()
        }
    }

    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for v in values[0].as_primitive::<Float64Type>().iter().flatten() {
            let count = self.count + 1;
            let delta1 = v - self.mean;
            let mean = delta1 / count as f64 + self.mean;
            self.m2 += delta1 * (v - mean);
            (self.count, self.mean) = (count, mean);
        }
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for v in values[0].as_primitive::<Float64Type>().iter().flatten() {
            if self.count <= 1 {
                (self.count, self.mean, self.m2) = (0, 0.0, 0.0);
                continue;
            }
            let count = self.count - 1;
            let delta1 = self.mean - v;
            let mean = delta1 / count as f64 + self.mean;
            self.m2 -= delta1 * (mean - v);
            (self.count, self.mean) = (count, mean);
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let counts = states[0].as_primitive::<UInt64Type>();
        let means = states[1].as_primitive::<Float64Type>();
        let m2s = states[2].as_primitive::<Float64Type>();
        for i in 0..counts.len() {
            let (c, mean, m2) = (counts.value(i), means.value(i), m2s.value(i));
            if c == 0 {
                continue;
            }
            if self.count == 0 {
                (self.count, self.mean, self.m2) = (c, mean, m2);
                continue;
            }
            let n = self.count + c;
            let delta = self.mean - mean;
            self.mean = self.mean * self.count as f64 / n as f64 + mean * c as f64 / n as f64;
            self.m2 += m2 + delta * delta * self.count as f64 * c as f64 / n as f64;
            self.count = n;
        }
        Ok(())
    }

    fn evaluate(&self) -> Option<f64> {
        let variance = match (self.count, self.sample) {
            (0, _) | (1, true) => return None,
            (1, false) => 0.0,
            (n, true) => self.m2 / (n - 1) as f64,
            (n, false) => self.m2 / n as f64,
        };
        Some(if self.root { variance.sqrt() } else { variance })
    }

    fn state(&self) -> Vec<ScalarValue> {
        vec![
            ScalarValue::from(self.count),
            ScalarValue::from(self.mean),
            ScalarValue::from(self.m2),
        ]
    }
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
        true
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let v = ScalarValue::Float64(self.inner.evaluate());
        // A cast that does not fit (NaN or an infinity into an integer)
        // is NULL rather than a failed statement.
        v.cast_to(&self.result)
            .or_else(|_| ScalarValue::try_from(&self.result))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(self.inner.state())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.inner.merge_batch(states)
    }
}
