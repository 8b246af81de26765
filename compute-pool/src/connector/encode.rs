//! Arrow batches to Kafka records and result rows.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use arrow::json::writer::{LineDelimited, WriterBuilder};
use bytes::Bytes;
use weir_catalog::registry::Part;
use weir_catalog::TableDef;

use crate::EngineError;

/// One JSON object per row, as bytes, in row order.
pub fn json_rows(batch: &RecordBatch) -> Result<Vec<Bytes>, EngineError> {
    let mut buf = Vec::with_capacity(batch.num_rows() * 64);
    {
        let mut w = WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, LineDelimited>(&mut buf);
        w.write(batch)?;
        w.finish()?;
    }
    // JSON strings escape newlines, so every '\n' ends a row. The rows
    // share the one buffer (no allocation and copy per row).
    let buf = Bytes::from(buf);
    let mut rows = Vec::with_capacity(batch.num_rows());
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', &buf) {
        if end > start {
            rows.push(buf.slice(start..end));
        }
        start = end + 1;
    }
    if start < buf.len() {
        rows.push(buf.slice(start..));
    }
    Ok(rows)
}

/// One encoded Kafka record: key and value (`None` is a null key or a
/// tombstone).
pub type EncodedRecord = (Option<Bytes>, Option<Bytes>);

/// The Kafka records for changes written to `table`. Into an upsert table
/// (the planner lets only those take updates) `+I` and `+U` write the row
/// under its key, `-D` writes a tombstone for the key, and `-U` writes
/// nothing: the `+U` that follows replaces the row. Into a `'retract'`
/// table every change is a record, its kind in the [`OP_HEADER`] header.
pub fn kafka_changes(
    table: &TableDef,
    changes: &crate::operators::changelog::Changes,
) -> Result<Vec<EncodedRecord>, EngineError> {
    use crate::operators::changelog::{DELETE, UPDATE_BEFORE};
    let records = kafka_records(table, &changes.batch)?;
    // A retract table takes every change, `-U` included, with its kind in
    // a header ([`op_header`]).
    if changes.ops.is_none() || table.changelog_mode() == "retract" {
        return Ok(records);
    }
    Ok(records
        .into_iter()
        .enumerate()
        .filter_map(|(i, (key, value))| match changes.op(i) {
            UPDATE_BEFORE => None,
            DELETE => Some((key, None)),
            _ => Some((key, value)),
        })
        .collect())
}

/// The Kafka header that carries a change's kind into a `'retract'` table.
pub const OP_HEADER: &str = "__op";

/// The `__op` header value of change `i`: `+I`, `-U`, `+U` or `-D`, as
/// Flink prints row kinds.
pub fn op_header(changes: &crate::operators::changelog::Changes, i: usize) -> &'static str {
    use crate::operators::changelog::{DELETE, UPDATE_AFTER, UPDATE_BEFORE};
    match changes.op(i) {
        UPDATE_BEFORE => "-U",
        UPDATE_AFTER => "+U",
        DELETE => "-D",
        _ => "+I",
    }
}

/// Keys and values of the Kafka records for a batch written to `table`.
pub fn kafka_records(
    table: &TableDef,
    batch: &RecordBatch,
) -> Result<Vec<EncodedRecord>, EngineError> {
    let n = batch.num_rows();
    let value_cols: Vec<usize> = table
        .value_columns()
        .iter()
        .filter_map(|c| batch.schema().index_of(&c.name).ok())
        .collect();
    let raw_value = table.value_format() == "raw";
    let values: Vec<Option<Bytes>> =
        if crate::connector::registry::is_schema_format(table.value_format()) {
            crate::connector::registry::encode_part(
                table,
                Part::Value,
                &batch.project(&value_cols)?,
            )?
            .into_iter()
            .map(Some)
            .collect()
        } else if raw_value {
            let col = value_cols
                .first()
                .ok_or_else(|| EngineError::Plan("a raw table needs one value column".into()))?;
            raw_bytes(batch.column(*col).as_ref())
        } else {
            json_rows(&batch.project(&value_cols)?)?
                .into_iter()
                .map(Some)
                .collect()
        };
    let key_cols: Vec<usize> = table
        .key_columns()
        .iter()
        .filter_map(|c| batch.schema().index_of(c).ok())
        .collect();
    let keys: Vec<Option<Bytes>> = if key_cols.is_empty() {
        vec![None; n]
    } else if crate::connector::registry::is_schema_format(Part::Key.format(table)) {
        crate::connector::registry::encode_part(table, Part::Key, &batch.project(&key_cols)?)?
            .into_iter()
            .map(Some)
            .collect()
    } else if table.option("key.format") == Some("raw")
        || key_cols.len() == 1 && matches!(batch.column(key_cols[0]).data_type(), DataType::Binary)
    {
        raw_bytes(batch.column(key_cols[0]).as_ref())
    } else {
        json_rows(&batch.project(&key_cols)?)?
            .into_iter()
            .map(Some)
            .collect()
    };
    Ok(keys.into_iter().zip(values).collect())
}

fn raw_bytes(col: &dyn Array) -> Vec<Option<Bytes>> {
    match col.data_type() {
        DataType::Binary => col
            .as_binary::<i32>()
            .iter()
            .map(|v| v.map(Bytes::copy_from_slice))
            .collect(),
        DataType::Utf8 => col
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(|s| Bytes::copy_from_slice(s.as_bytes())))
            .collect(),
        _ => {
            let s =
                arrow::compute::cast(col, &DataType::Utf8).expect("every type casts to a string");
            s.as_string::<i32>()
                .iter()
                .map(|v| v.map(|s| Bytes::copy_from_slice(s.as_bytes())))
                .collect()
        }
    }
}

/// Result rows in the statement results API's wire format: each row's
/// values in column order, every scalar a string as Flink casts it to
/// `STRING` (`"101"`, `"TRUE"`, `"2.5E10"`, `"2024-01-31 12:00:00.000"`,
/// `"x'0aff'"`), `NULL` as `null` at any depth, `ROW` and `ARRAY` as JSON
/// arrays, `MAP` as an array of `[key, value]` pairs. See [`crate::connector::wire`].
pub fn result_rows(batch: &RecordBatch) -> Result<Vec<Vec<serde_json::Value>>, EngineError> {
    crate::connector::wire::rows(batch)
}
