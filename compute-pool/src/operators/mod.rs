//! The stateful and update-stream operators of a stage: each takes a batch
//! of changes ([`changelog`]) and returns the changes it emits, and keeps
//! its state in a form [`crate::runtime::checkpoint`] can snapshot.
//!
//! Watermarks and window aggregation are in [`window`], session windows in
//! [`session`], group aggregation in [`group`], regular joins in [`join`],
//! Top-N and deduplication in [`topn`], upsert tables read as update
//! streams in [`normalize`], OVER aggregation in [`over`], temporal joins
//! in [`temporal`], `MATCH_RECOGNIZE` in [`matching`].

pub mod changelog;
pub mod group;
pub mod join;
pub mod matching;
pub mod normalize;
pub mod over;
pub mod session;
pub mod temporal;
pub mod topn;
pub mod window;

use std::sync::Arc;

use arrow::array::{AsArray, Int64Array, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type, TimeUnit};
use datafusion::physical_expr::PhysicalExpr;

use crate::EngineError;

/// A time expression over `batch` as epoch milliseconds, one per row (NULL
/// stays NULL): how operators read a row's time attribute or window bound.
pub(crate) fn times_ms(
    expr: &Arc<dyn PhysicalExpr>,
    batch: &RecordBatch,
) -> Result<Int64Array, EngineError> {
    let t = expr.evaluate(batch)?.into_array(batch.num_rows())?;
    let t = cast(
        &cast(&t, &DataType::Timestamp(TimeUnit::Millisecond, None))?,
        &DataType::Int64,
    )?;
    Ok(t.as_primitive::<Int64Type>().clone())
}
