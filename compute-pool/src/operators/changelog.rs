//! Changelog batches: rows with Flink's row kinds.
//!
//! An append-only stream is a plain `RecordBatch`; an update stream carries
//! one kind per row beside it. The kinds are the results API's `op` codes.

use std::sync::Arc;

use arrow::array::{Array, BooleanArray, Int8Array, RecordBatch};
use arrow::compute::{filter, filter_record_batch};

use crate::EngineError;

/// `+I`: a new row.
pub const INSERT: i8 = 0;
/// `-U`: the row an update replaces.
pub const UPDATE_BEFORE: i8 = 1;
/// `+U`: the row after an update.
pub const UPDATE_AFTER: i8 = 2;
/// `-D`: a removed row.
pub const DELETE: i8 = 3;

/// Flink's short form of a row kind, as `+I[...]` prints it.
pub fn kind_name(op: i8) -> &'static str {
    match op {
        INSERT => "+I",
        UPDATE_BEFORE => "-U",
        UPDATE_AFTER => "+U",
        DELETE => "-D",
        _ => "?",
    }
}

/// Whether a row of this kind adds to an aggregate (`+I`, `+U`) rather than
/// retracting from it (`-U`, `-D`).
pub fn is_accumulate(op: i8) -> bool {
    op == INSERT || op == UPDATE_AFTER
}

/// A batch of changes: `ops` is `None` when every row is an insert.
#[derive(Debug, Clone)]
pub struct Changes {
    pub batch: RecordBatch,
    pub ops: Option<Arc<Int8Array>>,
}

impl Changes {
    pub fn inserts(batch: RecordBatch) -> Changes {
        Changes { batch, ops: None }
    }

    pub fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }

    /// The kind of row `i`.
    pub fn op(&self, i: usize) -> i8 {
        self.ops.as_ref().map_or(INSERT, |o| o.value(i))
    }

    /// Keeps the rows where `mask` is true.
    pub fn filter(&self, mask: &BooleanArray) -> Result<Changes, EngineError> {
        let batch = filter_record_batch(&self.batch, mask)?;
        let ops = match &self.ops {
            Some(o) => Some(Arc::new(
                filter(o.as_ref(), mask)?
                    .as_any()
                    .downcast_ref::<Int8Array>()
                    .expect("filter keeps the type")
                    .clone(),
            )),
            None => None,
        };
        Ok(Changes { batch, ops })
    }

    /// Rows `offset..offset + len`.
    pub fn slice(&self, offset: usize, len: usize) -> Changes {
        Changes {
            batch: self.batch.slice(offset, len),
            ops: self.ops.as_ref().map(|o| Arc::new(o.slice(offset, len))),
        }
    }
}
