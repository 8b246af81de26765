//! `CURRENT_WATERMARK(ts)`: the watermark the operator evaluating it has
//! seen, as Flink defines it, or `NULL` before there is one.
//!
//! The value is not a property of the row but of where the worker is in
//! the stream, so the function reads it from the evaluating thread: the
//! worker wraps each synchronous evaluation in [`with_current_watermark`]
//! (a branch's filters and projections see their source's watermark as it
//! stood before the batch; stateful operators and what is above them, the
//! statement's). Outside such a scope it returns `NULL`. It is volatile, so
//! planning never folds it into a constant.

use std::cell::Cell;
use std::sync::Arc;

use arrow::array::{new_null_array, Array, TimestampMillisecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{plan_err, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

thread_local! {
    static CURRENT: Cell<Option<i64>> = const { Cell::new(None) };
}

/// Runs `f` with `watermark` (milliseconds) as what `CURRENT_WATERMARK`
/// returns on this thread; the previous value is restored afterwards.
pub fn with_current_watermark<R>(watermark: Option<i64>, f: impl FnOnce() -> R) -> R {
    let previous = CURRENT.with(|c| c.replace(watermark));
    let out = f();
    CURRENT.with(|c| c.set(previous));
    out
}

pub(crate) fn udf() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::from(CurrentWatermark {
        signature: Signature::any(1, Volatility::Volatile),
    }))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CurrentWatermark {
    signature: Signature,
}

impl ScalarUDFImpl for CurrentWatermark {
    fn name(&self) -> &str {
        "current_watermark"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The time attribute's type, at millisecond precision.
    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        match args {
            [DataType::Timestamp(_, tz)] => {
                Ok(DataType::Timestamp(TimeUnit::Millisecond, tz.clone()))
            }
            [other] => plan_err!(
                "CURRENT_WATERMARK takes a time attribute (a TIMESTAMP(3) or TIMESTAMP_LTZ(3) column with a watermark), not a {other}"
            ),
            _ => plan_err!("CURRENT_WATERMARK takes one time attribute"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let out_type = args.return_field.data_type().clone();
        let n = args.number_rows;
        let array = match CURRENT.with(Cell::get) {
            Some(w) if w > i64::MIN => {
                let tz = match &out_type {
                    DataType::Timestamp(_, tz) => tz.clone(),
                    _ => None,
                };
                let ms: Arc<dyn Array> =
                    Arc::new(TimestampMillisecondArray::from_value(w, n).with_timezone_opt(tz));
                cast(&ms, &out_type)?
            }
            _ => new_null_array(&out_type, n),
        };
        Ok(ColumnarValue::Array(array))
    }
}
