//! `PROCTIME()`: processing time, as Flink's processing-time attribute.
//!
//! `PROCTIME()` is rewritten to `weir_proctime()` cast to
//! `TIMESTAMP_LTZ(3)` in the session zone. Its value is the time at which
//! the operator evaluating it processes the row: the worker wraps its
//! evaluation in [`with_processing_time`] (the in-memory runner, with each
//! poll's simulated time); outside such a scope it is the wall clock. It is
//! volatile, so planning never folds it into a constant.
//!
//! A window over it ([`crate::WindowSpec::proctime`]) takes each row into
//! the window of the moment it is processed and fires when processing time
//! passes the window's end, not the watermark, as Flink's processing-time
//! windows do.

use std::cell::Cell;
use std::sync::Arc;

use arrow::array::TimestampMillisecondArray;
use arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// The function `PROCTIME()` is rewritten to.
pub const PROCTIME_FN: &str = "weir_proctime";

/// The function `CURRENT_TIMESTAMP`, `NOW()`, `LOCALTIMESTAMP`,
/// `CURRENT_DATE` and `LOCALTIME` read: the same processing time, evaluated
/// per row as in Flink's streaming mode (DataFusion's `now()` is folded
/// into the statement's start time), but not a time attribute.
pub const NOW_FN: &str = "weir_now";

thread_local! {
    static NOW: Cell<Option<i64>> = const { Cell::new(None) };
}

/// Runs `f` with `now_ms` as the processing time `PROCTIME()` returns on
/// this thread; the previous value is restored afterwards.
pub fn with_processing_time<R>(now_ms: i64, f: impl FnOnce() -> R) -> R {
    let previous = NOW.with(|c| c.replace(Some(now_ms)));
    let out = f();
    NOW.with(|c| c.set(previous));
    out
}

fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Whether `e` reads processing time.
pub fn reads_proctime(e: &Expr) -> bool {
    let mut found = false;
    let _ = e.apply(|x| {
        if matches!(x, Expr::ScalarFunction(f) if f.func.name() == PROCTIME_FN) {
            found = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

pub(crate) fn udf() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::from(ProcTime {
        name: PROCTIME_FN,
        signature: Signature::nullary(Volatility::Volatile),
    }))
}

/// [`NOW_FN`].
pub(crate) fn now_udf() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::from(ProcTime {
        name: NOW_FN,
        signature: Signature::nullary(Volatility::Volatile),
    }))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ProcTime {
    name: &'static str,
    signature: Signature,
}

impl ScalarUDFImpl for ProcTime {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Timestamp(
            TimeUnit::Millisecond,
            Some(Arc::from("UTC")),
        ))
    }

    /// Never NULL, as Flink's `TIMESTAMP_LTZ(3) NOT NULL`.
    fn return_field_from_args(
        &self,
        _args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> DfResult<arrow::datatypes::FieldRef> {
        Ok(Arc::new(arrow::datatypes::Field::new(
            self.name,
            self.return_type(&[])?,
            false,
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let now = NOW.with(Cell::get).unwrap_or_else(wall_clock_ms);
        Ok(ColumnarValue::Array(Arc::new(
            TimestampMillisecondArray::from_value(now, args.number_rows).with_timezone("UTC"),
        )))
    }
}
