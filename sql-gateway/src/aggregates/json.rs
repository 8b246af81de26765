//! `JSON_ARRAYAGG` and `JSON_OBJECTAGG`, which DataFusion does not have.
//!
//! The parser's calls are rewritten (`crate::functions`) to
//! `weir_json_arrayagg(v, raw, keep)` and `weir_json_objectagg(k, v, raw,
//! keep)`: `raw` says the value is JSON already (a nested `JSON_OBJECT` or
//! `JSON_ARRAY`), `keep` whether a NULL value stays (`NULL ON NULL`; Flink's
//! default is `ABSENT ON NULL` for `JSON_ARRAYAGG` and `NULL ON NULL` for
//! `JSON_OBJECTAGG`). Both retract, as Flink's do: an array's earliest
//! equal item goes, an object's key goes.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::flink_udfs::{json_object_text, json_values_raw};
use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};

/// The name `JSON_ARRAYAGG(...)` is rewritten to.
pub(crate) const ARRAYAGG_FN: &str = "weir_json_arrayagg";
/// The name `JSON_OBJECTAGG(...)` is rewritten to.
pub(crate) const OBJECTAGG_FN: &str = "weir_json_objectagg";

pub fn udafs() -> Vec<Arc<AggregateUDF>> {
    [false, true]
        .into_iter()
        .map(|object| {
            Arc::new(AggregateUDF::new_from_impl(JsonAgg {
                object,
                signature: Signature::user_defined(Volatility::Immutable),
            }))
        })
        .collect()
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonAgg {
    object: bool,
    signature: Signature,
}

impl JsonAgg {
    fn sql_name(&self) -> &'static str {
        if self.object {
            "JSON_OBJECTAGG"
        } else {
            "JSON_ARRAYAGG"
        }
    }
}

impl AggregateUDFImpl for JsonAgg {
    fn name(&self) -> &str {
        if self.object {
            OBJECTAGG_FN
        } else {
            ARRAYAGG_FN
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match (self.object, arg_types) {
            (false, [v, _, _]) => Ok(vec![v.clone(), DataType::Boolean, DataType::Boolean]),
            (
                true,
                [DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null, v, _, _],
            ) => Ok(vec![
                DataType::Utf8,
                v.clone(),
                DataType::Boolean,
                DataType::Boolean,
            ]),
            (true, [_, _, _, _]) => {
                plan_err!("JSON_OBJECTAGG's key must be a string: CAST it to STRING")
            }
            _ => plan_err!(
                "{} takes {}",
                self.sql_name(),
                if self.object {
                    "[KEY] key VALUE value"
                } else {
                    "one value"
                }
            ),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if args.is_distinct {
            return plan_err!("{}(DISTINCT ...) is not supported", self.sql_name());
        }
        Ok(Box::new(JsonAccumulator {
            object: self.object,
            keep: None,
            items: vec![],
            entries: BTreeMap::new(),
            bytes: 0,
        }))
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.accumulator(args)
    }

    /// The text of each item (array) or key and text of each entry
    /// (object).
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let list = |n: &str| {
            Arc::new(Field::new(
                format!("{}[{n}]", args.name),
                DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
                true,
            ))
        };
        Ok(vec![list("keys"), list("values")])
    }
}

#[derive(Debug)]
struct JsonAccumulator {
    object: bool,
    /// `NULL ON NULL`, as the call said (known from its first batch).
    keep: Option<bool>,
    /// `JSON_ARRAYAGG`'s items in arrival order, as JSON text.
    items: Vec<String>,
    /// `JSON_OBJECTAGG`'s entries by key: more than one value for a key
    /// is an error when the result is read (a retraction of the key may
    /// come after the row that replaces it in one batch).
    entries: BTreeMap<String, Vec<String>>,
    /// About the bytes the items and entries take, kept as they come and
    /// go (so that reading the size costs nothing).
    bytes: usize,
}

/// About the bytes the JSON text `v` takes held.
fn weight(v: &str) -> usize {
    24 + v.len()
}

impl JsonAccumulator {
    /// Each row's key (objects) and value as JSON; a value left out by
    /// `ABSENT ON NULL` is `None`.
    fn rows(&mut self, values: &[ArrayRef]) -> Result<Vec<(Option<String>, Option<String>)>> {
        let (v, raw, keep) = if self.object {
            (&values[1], &values[2], &values[3])
        } else {
            (&values[0], &values[1], &values[2])
        };
        if self.keep.is_none() && !keep.is_empty() {
            self.keep = Some(keep.as_boolean().value(0));
        }
        let keep = self.keep.unwrap_or(self.object);
        let json = json_values_raw(v, raw)?;
        let keys = self.object.then(|| values[0].as_string::<i32>());
        Ok(json
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                let key = keys.map(|k| k.is_valid(i).then(|| k.value(i).to_string()));
                let v = (keep || v != "null").then_some(v);
                (key.flatten(), v)
            })
            .collect())
    }
}

impl Accumulator for JsonAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for (key, v) in self.rows(values)? {
            let Some(v) = v else { continue };
            if !self.object {
                self.bytes += weight(&v);
                self.items.push(v);
                continue;
            }
            let Some(key) = key else {
                return exec_err!("JSON_OBJECTAGG: a key is NULL (keys must not be NULL)");
            };
            self.bytes += weight(&v) + key.len();
            self.entries.entry(key).or_default().push(v);
        }
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for (key, v) in self.rows(values)? {
            if self.object {
                let Some(key) = key else { continue };
                if let Some(vs) = self.entries.get_mut(&key) {
                    let at = v.and_then(|v| vs.iter().position(|x| *x == v)).unwrap_or(0);
                    if at < vs.len() {
                        self.bytes = self
                            .bytes
                            .saturating_sub(weight(&vs.remove(at)) + key.len());
                    }
                    if vs.is_empty() {
                        self.entries.remove(&key);
                    }
                }
            } else if let Some(at) = v.and_then(|v| self.items.iter().position(|x| *x == v)) {
                self.bytes = self.bytes.saturating_sub(weight(&self.items.remove(at)));
            }
        }
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let doc = if self.object {
            let mut object = Vec::with_capacity(self.entries.len());
            for (k, vs) in &self.entries {
                match vs.as_slice() {
                    [v] => object.push((k.as_str(), v.as_str())),
                    _ => {
                        return exec_err!(
                        "JSON_OBJECTAGG: the key '{k}' occurs twice in a group (keys must be unique, as in Flink)"
                    )
                    }
                }
            }
            json_object_text(object)
        } else {
            format!("[{}]", self.items.join(","))
        };
        Ok(ScalarValue::Utf8(Some(doc)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.bytes
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let texts = |xs: Vec<Option<String>>| {
            let xs: Vec<ScalarValue> = xs.into_iter().map(ScalarValue::Utf8).collect();
            ScalarValue::List(ScalarValue::new_list_nullable(&xs, &DataType::Utf8))
        };
        let (keys, values): (Vec<_>, Vec<_>) = if self.object {
            self.entries
                .iter()
                .flat_map(|(k, vs)| vs.iter().map(|v| (Some(k.clone()), Some(v.clone()))))
                .unzip()
        } else {
            self.items.iter().map(|v| (None, Some(v.clone()))).unzip()
        };
        Ok(vec![texts(keys), texts(values)])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let (keys, values) = (states[0].as_list::<i32>(), states[1].as_list::<i32>());
        for r in 0..values.len() {
            if values.is_null(r) {
                continue;
            }
            let (ks, vs) = (keys.value(r), values.value(r));
            let (ks, vs) = (ks.as_string::<i32>(), vs.as_string::<i32>());
            for i in 0..vs.len() {
                let v = vs.value(i).to_string();
                if self.object {
                    self.entries
                        .entry(ks.value(i).to_string())
                        .or_default()
                        .push(v);
                } else {
                    self.items.push(v);
                }
            }
        }
        Ok(())
    }
}
