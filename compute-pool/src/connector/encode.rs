//! Arrow batches to Kafka records and result rows.

use std::io::Write;
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::buffer::ScalarBuffer;
use arrow::datatypes::{DataType, FieldRef, TimeUnit};
use arrow::error::ArrowError;
use arrow::json::writer::{
    Encoder, EncoderFactory, EncoderOptions, LineDelimited, NullableEncoder, WriterBuilder,
};
use bytes::Bytes;
use weir_catalog::registry::Part;
use weir_catalog::TableDef;

use crate::EngineError;

/// One JSON object per row, as bytes, in row order, as arrow-json writes
/// them (the `json-registry` format's values).
pub fn json_rows(batch: &RecordBatch) -> Result<Vec<Bytes>, EngineError> {
    rows_of(batch, WriterBuilder::new().with_explicit_nulls(true))
}

/// One JSON object per row in Flink's `json` format: times and timestamps
/// as its `'json.timestamp-format.standard'` writes them.
pub fn flink_json_rows(
    batch: &RecordBatch,
    standard: TimestampStandard,
) -> Result<Vec<Bytes>, EngineError> {
    rows_of(
        batch,
        WriterBuilder::new()
            .with_explicit_nulls(true)
            .with_encoder_factory(Arc::new(standard)),
    )
}

fn rows_of(batch: &RecordBatch, builder: WriterBuilder) -> Result<Vec<Bytes>, EngineError> {
    let mut buf = Vec::with_capacity(batch.num_rows() * 64);
    {
        let mut w = builder.build::<_, LineDelimited>(&mut buf);
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

/// How the `json` format writes timestamps, Flink's
/// `'json.timestamp-format.standard'` (`'value.json....'`, `'key.json....'`
/// for one part): `SQL` (the default) `2024-01-31 12:00:00.5`, `ISO-8601`
/// `2024-01-31T12:00:00.5`; a `TIMESTAMP_LTZ` in UTC with a `Z` after
/// either; the fraction without trailing zeros, none when it is zero. A
/// `TIME` is `12:00:00.5` in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampStandard {
    Sql,
    Iso8601,
}

impl TimestampStandard {
    /// The standard of `table`'s `part` (`"key"` or `"value"`).
    pub fn of(table: &TableDef, part: &str) -> TimestampStandard {
        let option = table
            .option(&format!("{part}.json.timestamp-format.standard"))
            .or_else(|| table.option("json.timestamp-format.standard"));
        match option {
            Some(s) if s.eq_ignore_ascii_case("ISO-8601") => TimestampStandard::Iso8601,
            _ => TimestampStandard::Sql,
        }
    }
}

impl EncoderFactory for TimestampStandard {
    fn make_default_encoder<'a>(
        &self,
        _field: &'a FieldRef,
        array: &'a dyn Array,
        _options: &'a EncoderOptions,
    ) -> Result<Option<NullableEncoder<'a>>, ArrowError> {
        use arrow::datatypes::*;
        let sep = match self {
            TimestampStandard::Sql => b' ',
            TimestampStandard::Iso8601 => b'T',
        };
        let (values, unit, kind) = match array.data_type() {
            DataType::Timestamp(unit, tz) => {
                let values = match unit {
                    TimeUnit::Second => array.as_primitive::<TimestampSecondType>().values(),
                    TimeUnit::Millisecond => {
                        array.as_primitive::<TimestampMillisecondType>().values()
                    }
                    TimeUnit::Microsecond => {
                        array.as_primitive::<TimestampMicrosecondType>().values()
                    }
                    TimeUnit::Nanosecond => {
                        array.as_primitive::<TimestampNanosecondType>().values()
                    }
                };
                let kind = TimeKind::Timestamp {
                    sep,
                    zone: tz.is_some(),
                };
                (Values::I64(values.clone()), *unit, kind)
            }
            DataType::Time32(unit) => {
                let values = match unit {
                    TimeUnit::Second => array.as_primitive::<Time32SecondType>().values(),
                    _ => array.as_primitive::<Time32MillisecondType>().values(),
                };
                (Values::I32(values.clone()), *unit, TimeKind::Time)
            }
            DataType::Time64(unit) => {
                let values = match unit {
                    TimeUnit::Nanosecond => array.as_primitive::<Time64NanosecondType>().values(),
                    _ => array.as_primitive::<Time64MicrosecondType>().values(),
                };
                (Values::I64(values.clone()), *unit, TimeKind::Time)
            }
            _ => return Ok(None),
        };
        let nulls = array.nulls().cloned();
        Ok(Some(NullableEncoder::new(
            Box::new(TimeEncoder { values, unit, kind }),
            nulls,
        )))
    }
}

enum Values {
    I64(ScalarBuffer<i64>),
    I32(ScalarBuffer<i32>),
}

#[derive(Clone, Copy)]
enum TimeKind {
    /// Date, `sep`, time of day, and a `Z` for an instant (`zone`).
    Timestamp { sep: u8, zone: bool },
    /// The time of day alone.
    Time,
}

/// Writes times and timestamps directly (arrow-json goes through chrono's
/// formatting machinery, a tenth of a pass-through statement's CPU).
struct TimeEncoder {
    values: Values,
    unit: TimeUnit,
    kind: TimeKind,
}

impl Encoder for TimeEncoder {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        let v = match &self.values {
            Values::I64(v) => v[idx],
            Values::I32(v) => i64::from(v[idx]),
        };
        out.push(b'"');
        write_time(out, v, self.unit, self.kind);
        out.push(b'"');
    }
}

/// Appends `v` (in `unit`s since the epoch, or since midnight for a time).
fn write_time(out: &mut Vec<u8>, v: i64, unit: TimeUnit, kind: TimeKind) {
    let per_second: i64 = match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    };
    let (secs, sub) = (v.div_euclid(per_second), v.rem_euclid(per_second));
    let nanos = sub * (1_000_000_000 / per_second);
    let (days, of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    if let TimeKind::Timestamp { sep, .. } = kind {
        let (y, m, d) = civil_from_days(days);
        if (0..=9999).contains(&y) {
            digits(out, y, 4);
            out.push(b'-');
            digits(out, m, 2);
            out.push(b'-');
            digits(out, d, 2);
        } else {
            // As java.time writes a year past four digits: `+10000`.
            let _ = write!(
                out,
                "{}{y:04}-{m:02}-{d:02}",
                if y > 9999 { "+" } else { "" }
            );
        }
        out.push(sep);
    }
    digits(out, of_day / 3600, 2);
    out.push(b':');
    digits(out, of_day / 60 % 60, 2);
    out.push(b':');
    digits(out, of_day % 60, 2);
    if nanos > 0 {
        let mut frac = [0u8; 9];
        let mut n = nanos;
        for f in frac.iter_mut().rev() {
            *f = b'0' + (n % 10) as u8;
            n /= 10;
        }
        let len = 9 - frac.iter().rev().take_while(|c| **c == b'0').count();
        out.push(b'.');
        out.extend_from_slice(&frac[..len]);
    }
    if let TimeKind::Timestamp { zone: true, .. } = kind {
        out.push(b'Z');
    }
}

/// `n` (non-negative) in `width` digits, zero-padded.
fn digits(out: &mut Vec<u8>, n: i64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    let mut n = n.unsigned_abs();
    while n > 0 {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    let start = (buf.len() - width).min(i);
    out.extend_from_slice(&buf[start..]);
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
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
            flink_json_rows(
                &batch.project(&value_cols)?,
                TimestampStandard::of(table, "value"),
            )?
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
        flink_json_rows(
            &batch.project(&key_cols)?,
            TimestampStandard::of(table, "key"),
        )?
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

    use arrow::array::{ArrayRef, Int64Array, Int8Array};
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

    fn flink_text(col: ArrayRef, standard: TimestampStandard) -> String {
        let batch = RecordBatch::try_from_iter([("c", col)]).unwrap();
        let rows = flink_json_rows(&batch, standard).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&rows[0]).unwrap();
        v["c"].as_str().unwrap().to_string()
    }

    /// The texts Apache Flink 2.3's `json` format wrote for the same values
    /// (a filesystem sink of `TIMESTAMP '2024-01-01 10:20:30.5'` etc.).
    #[test]
    fn times_and_timestamps_are_written_as_flinks_json_format_writes_them() {
        use arrow::array::{
            Time32MillisecondArray, Time64MicrosecondArray, TimestampMicrosecondArray,
            TimestampMillisecondArray, TimestampSecondArray,
        };
        use TimestampStandard::{Iso8601, Sql};
        let ms = |v: i64| Arc::new(TimestampMillisecondArray::from(vec![v])) as ArrayRef;
        let ltz = |v: i64| {
            Arc::new(TimestampMillisecondArray::from(vec![v]).with_timezone("UTC")) as ArrayRef
        };
        let cases: Vec<(ArrayRef, &str, &str)> = vec![
            (
                ms(1_704_067_200_000),
                "2024-01-01 00:00:00",
                "2024-01-01T00:00:00",
            ),
            (
                ms(1_704_104_430_500),
                "2024-01-01 10:20:30.5",
                "2024-01-01T10:20:30.5",
            ),
            (
                ltz(1_704_104_430_120),
                "2024-01-01 10:20:30.12Z",
                "2024-01-01T10:20:30.12Z",
            ),
            (
                Arc::new(TimestampMicrosecondArray::from(vec![1_704_104_430_123_456])),
                "2024-01-01 10:20:30.123456",
                "2024-01-01T10:20:30.123456",
            ),
            (
                Arc::new(TimestampSecondArray::from(vec![1_704_104_430])),
                "2024-01-01 10:20:30",
                "2024-01-01T10:20:30",
            ),
            (
                Arc::new(Time32MillisecondArray::from(vec![37_230_250])),
                "10:20:30.25",
                "10:20:30.25",
            ),
            (
                Arc::new(Time64MicrosecondArray::from(vec![37_230_000_001])),
                "10:20:30.000001",
                "10:20:30.000001",
            ),
            // Before the epoch, a leap day, the last millisecond of a year.
            (ms(-1), "1969-12-31 23:59:59.999", "1969-12-31T23:59:59.999"),
            (
                ms(951_782_400_000),
                "2000-02-29 00:00:00",
                "2000-02-29T00:00:00",
            ),
            (
                ms(-2_208_988_800_001),
                "1899-12-31 23:59:59.999",
                "1899-12-31T23:59:59.999",
            ),
            (
                ms(253_402_300_799_999),
                "9999-12-31 23:59:59.999",
                "9999-12-31T23:59:59.999",
            ),
        ];
        for (col, sql, iso) in cases {
            assert_eq!(flink_text(col.clone(), Sql), sql);
            assert_eq!(flink_text(col, Iso8601), iso);
        }
    }

    #[test]
    fn every_millisecond_timestamp_reads_back_as_the_same_instant() {
        use arrow::array::TimestampMillisecondArray;
        // Spread over 1600..2400, stepping by a prime so that every field varies.
        let mut v = -11_676_096_000_000i64;
        while v < 13_569_465_600_000 {
            let col = Arc::new(TimestampMillisecondArray::from(vec![v])) as ArrayRef;
            let text = flink_text(col, TimestampStandard::Sql);
            let back = chrono::NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S%.f")
                .unwrap()
                .and_utc()
                .timestamp_millis();
            assert_eq!(back, v, "{text}");
            v += 9_999_999_937;
        }
    }

    #[test]
    fn the_extreme_instants_are_written_without_a_panic() {
        use arrow::array::{TimestampMillisecondArray, TimestampNanosecondArray};
        let ms = Arc::new(TimestampMillisecondArray::from(vec![i64::MIN, i64::MAX])) as ArrayRef;
        let ns = Arc::new(TimestampNanosecondArray::from(vec![i64::MIN, i64::MAX])) as ArrayRef;
        for col in [ms, ns] {
            let batch = RecordBatch::try_from_iter([("c", col)]).unwrap();
            let rows = flink_json_rows(&batch, TimestampStandard::Sql).unwrap();
            assert_eq!(rows.len(), 2);
        }
        let ns = Arc::new(TimestampNanosecondArray::from(vec![i64::MAX])) as ArrayRef;
        assert_eq!(
            flink_text(ns, TimestampStandard::Sql),
            "2262-04-11 23:47:16.854775807"
        );
        let ms = Arc::new(TimestampMillisecondArray::from(vec![253_402_300_800_000])) as ArrayRef;
        assert_eq!(
            flink_text(ms, TimestampStandard::Sql),
            "+10000-01-01 00:00:00"
        );
    }

    #[test]
    fn nulls_stay_null_and_the_standard_comes_from_the_tables_options() {
        use arrow::array::TimestampMillisecondArray;
        let col = Arc::new(TimestampMillisecondArray::from(vec![None, Some(0)])) as ArrayRef;
        let batch = RecordBatch::try_from_iter([("c", col)]).unwrap();
        let rows = flink_json_rows(&batch, TimestampStandard::Sql).unwrap();
        assert_eq!(&rows[0][..], br#"{"c":null}"#);
        assert_eq!(&rows[1][..], br#"{"c":"1970-01-01 00:00:00"}"#);
        let mut t = table(None);
        assert_eq!(TimestampStandard::of(&t, "value"), TimestampStandard::Sql);
        t.options.insert(
            "value.json.timestamp-format.standard".into(),
            "ISO-8601".into(),
        );
        assert_eq!(
            TimestampStandard::of(&t, "value"),
            TimestampStandard::Iso8601
        );
        assert_eq!(TimestampStandard::of(&t, "key"), TimestampStandard::Sql);
    }
}
