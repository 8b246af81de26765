//! Flink's `COLLECT(x)`: the multiset of a group's non-NULL values. Weir
//! has no `MULTISET` type; it gives the same value as a `MAP<T, INT>` of
//! each value to how many times it occurs (written `{a=2, b=1}`, as Flink
//! writes a multiset), entries in the order values first arrived. It
//! retracts: a value goes with its last row.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int32Array, MapArray, StructArray};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::common::{plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};

pub fn udaf() -> Arc<AggregateUDF> {
    Arc::new(AggregateUDF::new_from_impl(Collect {
        signature: Signature::user_defined(Volatility::Immutable),
    }))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Collect {
    signature: Signature,
}

fn entries(value: &DataType) -> Fields {
    Fields::from(vec![
        Field::new("key", value.clone(), false),
        Field::new("value", DataType::Int32, false),
    ])
}

fn map_type(value: &DataType) -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(entries(value)),
            false,
        )),
        false,
    )
}

impl AggregateUDFImpl for Collect {
    fn name(&self) -> &str {
        "collect"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [DataType::Null] => Ok(vec![DataType::Utf8]),
            [t] => Ok(vec![t.clone()]),
            _ => plan_err!("COLLECT takes one argument, not {}", arg_types.len()),
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(map_type(&arg_types[0]))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let value = match args.return_field.data_type() {
            DataType::Map(f, _) => match f.data_type() {
                DataType::Struct(fs) => fs[0].data_type().clone(),
                t => t.clone(),
            },
            t => t.clone(),
        };
        Ok(Box::new(CollectAcc {
            value,
            distinct: args.is_distinct,
            counts: HashMap::new(),
            next: 0,
        }))
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.accumulator(args)
    }

    /// Every row's value (repeated as often as it occurs), in arrival order.
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let value = args.input_fields[0].data_type().clone();
        Ok(vec![Arc::new(Field::new(
            format!("{}[values]", args.name),
            DataType::List(Arc::new(Field::new_list_field(value, true))),
            true,
        ))])
    }
}

#[derive(Debug)]
struct CollectAcc {
    value: DataType,
    /// `COLLECT(DISTINCT x)`: each value once.
    distinct: bool,
    /// Each value: when it first arrived, and how many rows hold it.
    counts: HashMap<ScalarValue, (u64, i64)>,
    next: u64,
}

impl CollectAcc {
    fn apply(&mut self, col: &ArrayRef, sign: i64) -> Result<()> {
        for i in 0..col.len() {
            if col.is_null(i) {
                continue;
            }
            let v = ScalarValue::try_from_array(col, i)?;
            let next = &mut self.next;
            let e = self.counts.entry(v.clone()).or_insert_with(|| {
                *next += 1;
                (*next, 0)
            });
            e.1 += sign;
            if e.1 <= 0 {
                self.counts.remove(&v);
            }
        }
        Ok(())
    }

    fn ordered(&self) -> Vec<(&ScalarValue, i64)> {
        let mut xs: Vec<_> = self
            .counts
            .iter()
            .map(|(v, (seq, n))| (*seq, v, *n))
            .collect();
        xs.sort_by_key(|(seq, _, _)| *seq);
        xs.into_iter().map(|(_, v, n)| (v, n)).collect()
    }
}

impl Accumulator for CollectAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.apply(&values[0], 1)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.apply(&values[0], -1)
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let xs = self.ordered();
        let keys: Vec<ScalarValue> = xs.iter().map(|(v, _)| (*v).clone()).collect();
        let keys = if keys.is_empty() {
            arrow::array::new_empty_array(&self.value)
        } else {
            ScalarValue::iter_to_array(keys)?
        };
        let counts: Int32Array = xs
            .iter()
            .map(|(_, n)| {
                Some(match self.distinct {
                    true => 1,
                    false => i32::try_from(*n).unwrap_or(i32::MAX),
                })
            })
            .collect();
        let fields = entries(&self.value);
        let entries = StructArray::try_new(fields.clone(), vec![keys, Arc::new(counts)], None)?;
        let map = MapArray::try_new(
            Arc::new(Field::new("entries", DataType::Struct(fields), false)),
            OffsetBuffer::from_lengths([xs.len()]),
            entries,
            None,
            false,
        )?;
        Ok(ScalarValue::Map(Arc::new(map)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.counts.keys().map(|v| v.size() + 16).sum::<usize>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let values: Vec<ScalarValue> = self
            .ordered()
            .into_iter()
            .flat_map(|(v, n)| std::iter::repeat_n(v.clone(), n.max(0) as usize))
            .collect();
        Ok(vec![ScalarValue::List(ScalarValue::new_list_nullable(
            &values,
            &self.value,
        ))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = states[0].as_list::<i32>();
        for r in 0..lists.len() {
            if !lists.is_null(r) {
                self.apply(&lists.value(r), 1)?;
            }
        }
        Ok(())
    }
}
