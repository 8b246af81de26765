//! String functions whose output size an argument sets (`REPEAT`, `LPAD`,
//! `RPAD`) with that size bounded.
//!
//! `REPEAT('x', 2000000000)` makes a 2 GB string: while planning (the
//! optimizer folds constants) or per row while running, in either case
//! faster than any memory check can notice. The functions here are
//! DataFusion's own, wrapped so that a call that would make a value larger
//! than [`MAX_VALUE_BYTES`] fails with a message instead.

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::{exec_err, Result as DfResult, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature,
};

/// The largest value one call may make: 16 MiB.
pub const MAX_VALUE_BYTES: i64 = 16 << 20;

/// A size-setting function: its argument `count` times `unit` bytes is
/// the most the call makes.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Bounded {
    inner: Arc<ScalarUDF>,
    /// The argument that sets the size.
    count: usize,
    /// The size is the count times the first argument's length
    /// (`REPEAT`); otherwise it is the count in characters (`LPAD`).
    times_first_length: bool,
}

/// `repeat`, `lpad` and `rpad` of `functions`, bounded.
pub(crate) fn wrap(
    functions: &std::collections::HashMap<String, Arc<ScalarUDF>>,
) -> Vec<Arc<ScalarUDF>> {
    [("repeat", 1, true), ("lpad", 1, false), ("rpad", 1, false)]
        .into_iter()
        .filter_map(|(name, count, times_first_length)| {
            let inner = functions.get(name)?.clone();
            Some(Arc::new(ScalarUDF::from(Bounded {
                inner,
                count,
                times_first_length,
            })))
        })
        .collect()
}

/// The largest integer of `v` (0 for none or negative ones).
fn max_int(v: &ColumnarValue) -> DfResult<i64> {
    Ok(match v {
        ColumnarValue::Scalar(s) => match s.cast_to(&DataType::Int64)? {
            ScalarValue::Int64(Some(n)) => n.max(0),
            _ => 0,
        },
        ColumnarValue::Array(a) => {
            let a = arrow::compute::cast(a, &DataType::Int64)?;
            arrow::compute::max(a.as_primitive::<Int64Type>())
                .unwrap_or(0)
                .max(0)
        }
    })
}

/// The longest string of `v`, in bytes.
fn max_len(v: &ColumnarValue) -> DfResult<i64> {
    Ok(match v {
        ColumnarValue::Scalar(s) => match s {
            ScalarValue::Utf8(Some(t))
            | ScalarValue::LargeUtf8(Some(t))
            | ScalarValue::Utf8View(Some(t)) => t.len() as i64,
            _ => 0,
        },
        ColumnarValue::Array(a) if a.is_empty() => 0,
        ColumnarValue::Array(a) => {
            let lengths = arrow::compute::kernels::length::length(a)?;
            let lengths = arrow::compute::cast(&lengths, &DataType::Int64)?;
            arrow::compute::max(lengths.as_primitive::<Int64Type>()).unwrap_or(0)
        }
    })
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        if let Some(count) = args.args.get(self.count) {
            let n = max_int(count)?;
            // A character is at most four bytes.
            let unit = if self.times_first_length {
                args.args.first().map(max_len).transpose()?.unwrap_or(0)
            } else {
                4
            };
            let bytes = n.saturating_mul(unit);
            if bytes > MAX_VALUE_BYTES {
                return exec_err!(
                    "{}({n}) would make a value of {bytes} bytes; Weir makes values of at most \
                     {MAX_VALUE_BYTES} bytes (16 MiB)",
                    self.name().to_uppercase()
                );
            }
        }
        self.inner.invoke_with_args(args)
    }
}
