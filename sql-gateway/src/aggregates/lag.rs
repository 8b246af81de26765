//! `LAG(x [, offset [, default]]) OVER (...)` as Flink runs it in a
//! stream: an aggregate over the window's rows, in the time attribute's
//! order, that gives the value `offset` rows (1 by default) before the
//! current one, or `default` (NULL by default) when there is none. It
//! holds the last `offset + 1` values of each partition. (`LEAD` needs
//! rows that have not arrived yet; Flink refuses it in a stream, and so
//! does Weir.)

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};

/// The name `LAG` is planned as in an `OVER` aggregation.
pub(crate) const LAG_FN: &str = "weir_lag";

/// The largest offset: the rows a partition holds for it.
const MAX_OFFSET: i64 = 10_000;

pub fn udaf() -> Arc<AggregateUDF> {
    Arc::new(AggregateUDF::new_from_impl(Lag {
        signature: Signature::user_defined(Volatility::Immutable),
    }))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Lag {
    signature: Signature,
}

impl AggregateUDFImpl for Lag {
    fn name(&self) -> &str {
        LAG_FN
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [t] => Ok(vec![t.clone()]),
            [t, o] if o.is_integer() || o.is_null() => Ok(vec![t.clone(), DataType::Int64]),
            [t, o, _] if o.is_integer() || o.is_null() => {
                Ok(vec![t.clone(), DataType::Int64, t.clone()])
            }
            [_, o, ..] if arg_types.len() <= 3 => plan_err!("LAG's offset is an integer, not {o}"),
            _ => plan_err!("LAG takes a value, an optional offset and an optional default"),
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(LagAcc {
            data_type: args.return_field.data_type().clone(),
            offset: None,
            default: None,
            last: VecDeque::new(),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let t = args.return_type().clone();
        Ok(vec![
            Arc::new(Field::new(
                format!("{}[last]", args.name),
                DataType::List(Arc::new(Field::new_list_field(t.clone(), true))),
                true,
            )),
            Arc::new(Field::new(
                format!("{}[offset]", args.name),
                DataType::Int64,
                true,
            )),
            Arc::new(Field::new(format!("{}[default]", args.name), t, true)),
        ])
    }
}

#[derive(Debug)]
struct LagAcc {
    data_type: DataType,
    /// From the call's arguments, known with its first row.
    offset: Option<usize>,
    default: Option<ScalarValue>,
    /// The last `offset + 1` values, the current row's last.
    last: VecDeque<ScalarValue>,
}

impl Accumulator for LagAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let col = &values[0];
        for i in 0..col.len() {
            if self.offset.is_none() {
                let offset = match values.get(1) {
                    Some(o) if o.is_valid(i) => cast(o, &DataType::Int64)?
                        .as_primitive::<Int64Type>()
                        .value(i),
                    _ => 1,
                };
                if !(0..=MAX_OFFSET).contains(&offset) {
                    return exec_err!("LAG's offset {offset} is not between 0 and {MAX_OFFSET}");
                }
                self.offset = Some(offset as usize);
                self.default = values
                    .get(2)
                    .map(|d| ScalarValue::try_from_array(d, i))
                    .transpose()?;
            }
            let offset = self.offset.unwrap_or(1);
            self.last.push_back(ScalarValue::try_from_array(col, i)?);
            while self.last.len() > offset + 1 {
                self.last.pop_front();
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let offset = self.offset.unwrap_or(1);
        let v = match self.last.len().checked_sub(offset + 1) {
            Some(at) => self.last[at].clone(),
            None => match &self.default {
                Some(d) => d.clone(),
                None => ScalarValue::try_from(&self.data_type)?,
            },
        };
        v.cast_to(&self.data_type)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.last.iter().map(ScalarValue::size).sum::<usize>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let last: Vec<ScalarValue> = self.last.iter().cloned().collect();
        Ok(vec![
            ScalarValue::List(ScalarValue::new_list_nullable(&last, &self.data_type)),
            ScalarValue::Int64(self.offset.map(|o| o as i64)),
            match &self.default {
                Some(d) => d.cast_to(&self.data_type)?,
                None => ScalarValue::try_from(&self.data_type)?,
            },
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = states[0].as_list::<i32>();
        let offsets = states[1].as_primitive::<Int64Type>();
        for r in 0..lists.len() {
            if lists.is_null(r) {
                continue;
            }
            if offsets.is_valid(r) {
                self.offset = Some(offsets.value(r).clamp(0, MAX_OFFSET) as usize);
                self.default = Some(ScalarValue::try_from_array(&states[2], r)?);
            }
            let vs = lists.value(r);
            for i in 0..vs.len() {
                self.last.push_back(ScalarValue::try_from_array(&vs, i)?);
            }
        }
        Ok(())
    }
}
