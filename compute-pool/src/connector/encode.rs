//! Arrow batches to Kafka records and result rows.

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
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
    // A retract table takes every change, `-U` included, with its kind in
    // a header ([`op_header`]).
    let ops = match &changes.ops {
        Some(ops) if table.changelog_mode() != "retract" => ops,
        _ => return kafka_records(table, &changes.batch),
    };
    // `-U` rows write nothing: they are dropped before encoding, not after
    // (a Top-N with row numbers emits as many `-U` as `+U`).
    let keep: BooleanArray = ops.iter().map(|o| Some(o != Some(UPDATE_BEFORE))).collect();
    let filtered;
    let kept = if keep.false_count() == 0 {
        changes
    } else {
        filtered = changes.filter(&keep)?;
        &filtered
    };
    let records = kafka_records(table, &kept.batch)?;
    Ok(records
        .into_iter()
        .enumerate()
        .map(|(i, (key, value))| match kept.op(i) {
            DELETE => (key, None),
            _ => (key, value),
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use arrow::array::{Int64Array, Int8Array};
    use arrow::datatypes::{Field, Schema};
    use weir_catalog::{ColumnKind, ColumnSpec, SqlType, TableOrigin};

    use super::*;
    use crate::operators::changelog::{Changes, DELETE, INSERT, UPDATE_AFTER, UPDATE_BEFORE};

    fn table(mode: Option<&str>) -> TableDef {
        let col = |name: &str| ColumnSpec {
            name: name.into(),
            data_type: SqlType::BigInt,
            nullable: true,
            kind: ColumnKind::Physical,
            comment: None,
        };
        TableDef {
            name: "t".into(),
            topic: "t".into(),
            columns: vec![col("k"), col("v")],
            watermark: None,
            primary_key: vec!["k".into()],
            distribution: None,
            options: mode
                .map(|m| BTreeMap::from([("changelog.mode".to_string(), m.to_string())]))
                .unwrap_or_default(),
            origin: TableOrigin::Managed,
            view: None,
        }
    }

    fn changes() -> Changes {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("v", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 1, 1, 2, 1])),
                Arc::new(Int64Array::from(vec![10, 10, 11, 20, 11])),
            ],
        )
        .unwrap();
        let ops = [INSERT, UPDATE_BEFORE, UPDATE_AFTER, INSERT, DELETE];
        Changes {
            batch,
            ops: Some(Arc::new(Int8Array::from(ops.to_vec()))),
        }
    }

    fn text(b: &Option<Bytes>) -> Option<&str> {
        b.as_deref().map(|b| std::str::from_utf8(b).unwrap())
    }

    #[test]
    fn an_upsert_table_gets_no_record_for_an_update_before_and_a_tombstone_for_a_delete() {
        let records = kafka_changes(&table(None), &changes()).unwrap();
        let got: Vec<_> = records.iter().map(|(k, v)| (text(k), text(v))).collect();
        assert_eq!(
            got,
            vec![
                (Some(r#"{"k":1}"#), Some(r#"{"k":1,"v":10}"#)),
                (Some(r#"{"k":1}"#), Some(r#"{"k":1,"v":11}"#)),
                (Some(r#"{"k":2}"#), Some(r#"{"k":2,"v":20}"#)),
                (Some(r#"{"k":1}"#), None),
            ]
        );
    }

    #[test]
    fn a_retract_table_gets_every_change_with_its_kind() {
        let c = changes();
        let records = kafka_changes(&table(Some("retract")), &c).unwrap();
        assert_eq!(records.len(), 5);
        assert_eq!(text(&records[1].1), Some(r#"{"k":1,"v":10}"#));
        let kinds: Vec<_> = (0..5).map(|i| op_header(&c, i)).collect();
        assert_eq!(kinds, ["+I", "-U", "+U", "+I", "-D"]);
    }
}
