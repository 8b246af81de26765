//! Flink's `PERCENTILE(x, p [, frequency])`: the exact percentile of a
//! group's values, interpolated linearly between the two nearest values
//! (position `p * (n - 1) + 1` in the sorted values), as a `DOUBLE`, or an
//! `ARRAY<DOUBLE>` when `p` is an array. A row whose value or frequency is
//! NULL, or whose frequency is not positive, is left out. It retracts.
//! The values are held sorted with their counts: state grows with the
//! number of distinct values, as Flink's does.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Int64Type};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};

pub fn udaf() -> Arc<AggregateUDF> {
    Arc::new(AggregateUDF::new_from_impl(Percentile {
        signature: Signature::user_defined(Volatility::Immutable),
    }))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Percentile {
    signature: Signature,
}

fn doubles() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)))
}

impl AggregateUDFImpl for Percentile {
    fn name(&self) -> &str {
        "percentile"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let (value, p, freq) = match arg_types {
            [v, p] => (v, p, None),
            [v, p, f] => (v, p, Some(f)),
            _ => {
                return plan_err!(
                    "PERCENTILE takes a value, a percentage and an optional frequency"
                )
            }
        };
        if !(value.is_numeric() || value.is_null()) {
            return plan_err!("PERCENTILE of {value}: the value must be numeric");
        }
        let p = match p {
            DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => doubles(),
            t if t.is_numeric() => DataType::Float64,
            t => {
                return plan_err!(
                    "PERCENTILE's percentage is a number or an ARRAY of numbers, not {t}"
                )
            }
        };
        let mut out = vec![DataType::Float64, p];
        match freq {
            Some(f) if f.is_integer() || f.is_null() => out.push(DataType::Int64),
            Some(f) => return plan_err!("PERCENTILE's frequency is an integer, not {f}"),
            None => {}
        }
        Ok(out)
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(match arg_types.get(1) {
            Some(DataType::List(_)) => doubles(),
            _ => DataType::Float64,
        })
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if args.is_distinct {
            return plan_err!("PERCENTILE(DISTINCT ...) is not supported");
        }
        Ok(Box::new(PercentileAcc {
            counts: BTreeMap::new(),
            percentages: None,
            array: matches!(args.return_field.data_type(), DataType::List(_)),
        }))
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.accumulator(args)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let list = |n: &str, t: DataType| {
            Arc::new(Field::new(
                format!("{}[{n}]", args.name),
                DataType::List(Arc::new(Field::new_list_field(t, true))),
                true,
            ))
        };
        Ok(vec![
            list("values", DataType::Float64),
            list("counts", DataType::Int64),
            list("percentages", DataType::Float64),
        ])
    }
}

/// A value as a sortable key (`f64`'s total order).
#[derive(Debug, Clone, Copy)]
struct Key(f64);
impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}
impl Eq for Key {}
impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Key {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

#[derive(Debug)]
struct PercentileAcc {
    counts: BTreeMap<Key, i64>,
    /// The percentages, from the first row that gives them.
    percentages: Option<Vec<f64>>,
    array: bool,
}

impl PercentileAcc {
    fn apply(&mut self, values: &[ArrayRef], sign: i64) -> Result<()> {
        let v = cast(&values[0], &DataType::Float64)?;
        let v = v.as_primitive::<Float64Type>();
        if self.percentages.is_none() {
            self.percentages = percentages(&values[1])?;
        }
        let freq = values
            .get(2)
            .map(|f| cast(f, &DataType::Int64))
            .transpose()?;
        let freq = freq.as_ref().map(|f| f.as_primitive::<Int64Type>());
        for i in 0..v.len() {
            let n = match freq {
                Some(f) if f.is_null(i) => continue,
                Some(f) => f.value(i),
                None => 1,
            };
            if v.is_null(i) || n <= 0 {
                continue;
            }
            let c = self.counts.entry(Key(v.value(i))).or_default();
            *c = c.saturating_add(sign.saturating_mul(n));
            if *c <= 0 {
                self.counts.remove(&Key(v.value(i)));
            }
        }
        Ok(())
    }

    /// The value at `position` (0-based) of the sorted values.
    fn at(&self, position: i64) -> f64 {
        let mut seen = 0i64;
        for (k, n) in &self.counts {
            seen = seen.saturating_add(*n);
            if position < seen {
                return k.0;
            }
        }
        self.counts.keys().next_back().map_or(f64::NAN, |k| k.0)
    }

    /// Flink's arithmetic, to the last bit: a 1-based position, and the
    /// two values around it weighed by their distances.
    fn percentile(&self, p: f64, total: i64) -> f64 {
        let position = p * (total - 1) as f64 + 1.0;
        let (lower, higher) = (position.floor(), position.ceil());
        let low = self.at(lower as i64 - 1);
        let high = self.at(higher as i64 - 1);
        if low.to_bits() == high.to_bits() {
            return low;
        }
        (higher - position) * low + (position - lower) * high
    }
}

/// The percentages of the first row, each checked to be within [0, 1].
fn percentages(p: &ArrayRef) -> Result<Option<Vec<f64>>> {
    if p.is_empty() || p.is_null(0) {
        return Ok(None);
    }
    let ps: Vec<f64> = match p.data_type() {
        DataType::List(_) => {
            let item = p.as_list::<i32>().value(0);
            let item = cast(&item, &DataType::Float64)?;
            let item = item.as_primitive::<Float64Type>();
            if item.null_count() > 0 {
                return exec_err!("PERCENTILE: a percentage is NULL");
            }
            item.values().to_vec()
        }
        _ => vec![p.as_primitive::<Float64Type>().value(0)],
    };
    if let Some(bad) = ps.iter().find(|p| !(0.0..=1.0).contains(*p)) {
        return exec_err!("PERCENTILE: the percentage {bad} is not between 0.0 and 1.0");
    }
    Ok(Some(ps))
}

impl Accumulator for PercentileAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.apply(values, 1)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.apply(values, -1)
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let total: i64 = self.counts.values().fold(0, |a, n| a.saturating_add(*n));
        let Some(ps) = self.percentages.as_ref().filter(|_| total > 0) else {
            return ScalarValue::try_from(if self.array {
                doubles()
            } else {
                DataType::Float64
            });
        };
        let out: Vec<ScalarValue> = ps
            .iter()
            .map(|p| ScalarValue::Float64(Some(self.percentile(*p, total))))
            .collect();
        Ok(match self.array {
            true if out.is_empty() => ScalarValue::try_from(doubles())?,
            true => ScalarValue::List(ScalarValue::new_list_nullable(&out, &DataType::Float64)),
            false => out[0].clone(),
        })
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.counts.len() * 48
            + self.percentages.as_ref().map_or(0, |p| p.len() * 8)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let list = |xs: Vec<ScalarValue>, t: &DataType| {
            ScalarValue::List(ScalarValue::new_list_nullable(&xs, t))
        };
        let values = self.counts.keys().map(|k| ScalarValue::Float64(Some(k.0)));
        let counts = self.counts.values().map(|n| ScalarValue::Int64(Some(*n)));
        let ps = self.percentages.iter().flatten();
        Ok(vec![
            list(values.collect(), &DataType::Float64),
            list(counts.collect(), &DataType::Int64),
            list(
                ps.map(|p| ScalarValue::Float64(Some(*p))).collect(),
                &DataType::Float64,
            ),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let (vs, ns, ps) = (
            states[0].as_list::<i32>(),
            states[1].as_list::<i32>(),
            states[2].as_list::<i32>(),
        );
        for r in 0..vs.len() {
            if vs.is_null(r) {
                continue;
            }
            let (v, n) = (vs.value(r), ns.value(r));
            let (v, n) = (
                v.as_primitive::<Float64Type>(),
                n.as_primitive::<Int64Type>(),
            );
            for i in 0..v.len() {
                let c = self.counts.entry(Key(v.value(i))).or_default();
                *c = c.saturating_add(n.value(i));
            }
            let p = ps.value(r);
            if self.percentages.is_none() && !p.is_empty() {
                self.percentages = Some(p.as_primitive::<Float64Type>().values().to_vec());
            }
        }
        Ok(())
    }
}
