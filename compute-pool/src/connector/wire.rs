//! The statement results API's value encoding, as the managed Flink SQL
//! service writes it and its clients (Confluent's DB-API driver, dbt, the
//! web console) read it: every scalar is the string Flink's
//! `CAST(x AS STRING)` gives, `NULL` is JSON `null` at any depth, a `ROW`
//! or an `ARRAY` is a JSON array, a `MAP` is an array of `[key, value]`
//! pairs.
//!
//! Encoded a column at a time; results are paged to people and clients, not
//! a hot path, but a column-wise pass keeps the per-value type dispatch out.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, IntervalDayTimeType, IntervalMonthDayNanoType,
    IntervalUnit, IntervalYearMonthType, TimeUnit,
};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::Value;

use crate::EngineError;

/// Each row's values, in column order.
pub fn rows(batch: &RecordBatch) -> Result<Vec<Vec<Value>>, EngineError> {
    let mut rows: Vec<Vec<Value>> = (0..batch.num_rows())
        .map(|_| Vec::with_capacity(batch.num_columns()))
        .collect();
    for col in batch.columns() {
        for (row, v) in rows.iter_mut().zip(column(col)?) {
            row.push(v);
        }
    }
    Ok(rows)
}

/// The values of one column, one per row.
pub fn column(array: &ArrayRef) -> Result<Vec<Value>, EngineError> {
    let n = array.len();
    let nulls = |f: &mut dyn FnMut(usize) -> Value| -> Vec<Value> {
        (0..n)
            .map(|i| if array.is_null(i) { Value::Null } else { f(i) })
            .collect()
    };
    Ok(match array.data_type() {
        DataType::Null => vec![Value::Null; n],
        DataType::Boolean => {
            let a = array.as_boolean();
            nulls(&mut |i| Value::String(if a.value(i) { "TRUE" } else { "FALSE" }.into()))
        }
        DataType::Float64 => {
            let a = array.as_primitive::<Float64Type>();
            nulls(&mut |i| Value::String(java_double(a.value(i))))
        }
        DataType::Float32 => {
            let a = array.as_primitive::<Float32Type>();
            nulls(&mut |i| Value::String(java_float(a.value(i))))
        }
        DataType::Float16 => {
            let a = arrow::compute::cast(array, &DataType::Float32)?;
            return column(&a);
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let a = arrow::compute::cast(array, &DataType::Utf8)?;
            let a = a.as_string::<i32>();
            nulls(&mut |i| Value::String(a.value(i).to_string()))
        }
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => {
            let a = arrow::compute::cast(array, &DataType::Binary)?;
            let a = a.as_binary::<i32>();
            nulls(&mut |i| Value::String(hex_literal(a.value(i))))
        }
        DataType::Interval(IntervalUnit::YearMonth) => {
            let a = array.as_primitive::<IntervalYearMonthType>();
            nulls(&mut |i| Value::String(year_month(a.value(i) as i64)))
        }
        DataType::Interval(IntervalUnit::DayTime) => {
            let a = array.as_primitive::<IntervalDayTimeType>();
            nulls(&mut |i| {
                let v = a.value(i);
                Value::String(day_time(
                    (v.days as i128 * 86_400_000 + v.milliseconds as i128) * 1_000_000,
                ))
            })
        }
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            let a = array.as_primitive::<IntervalMonthDayNanoType>();
            nulls(&mut |i| Value::String(weir_sql_gateway::flink_text::month_day_nano(a.value(i))))
        }
        DataType::Duration(unit) => {
            let per = match unit {
                TimeUnit::Second => 1_000_000_000i128,
                TimeUnit::Millisecond => 1_000_000,
                TimeUnit::Microsecond => 1_000,
                TimeUnit::Nanosecond => 1,
            };
            let a = arrow::compute::cast(array, &DataType::Int64)?;
            let a = a.as_primitive::<arrow::datatypes::Int64Type>();
            nulls(&mut |i| Value::String(day_time(a.value(i) as i128 * per)))
        }
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _) => {
            let a = arrow::compute::cast(
                array,
                &DataType::List(match array.data_type() {
                    DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                        f.clone()
                    }
                    _ => unreachable!("matched above"),
                }),
            )?;
            let a = a.as_list::<i32>();
            let values = column(a.values())?;
            let offsets = a.value_offsets();
            nulls(&mut |i| {
                let (s, e) = (offsets[i] as usize, offsets[i + 1] as usize);
                Value::Array(values[s..e].to_vec())
            })
        }
        DataType::Map(_, _) => {
            let a = array.as_map();
            let keys = column(a.keys())?;
            let values = column(a.values())?;
            let offsets = a.value_offsets();
            nulls(&mut |i| {
                let (s, e) = (offsets[i] as usize, offsets[i + 1] as usize);
                Value::Array(
                    (s..e)
                        .map(|j| Value::Array(vec![keys[j].clone(), values[j].clone()]))
                        .collect(),
                )
            })
        }
        DataType::Struct(_) => {
            let a = array.as_struct();
            let fields = a
                .columns()
                .iter()
                .map(column)
                .collect::<Result<Vec<_>, _>>()?;
            nulls(&mut |i| Value::Array(fields.iter().map(|f| f[i].clone()).collect()))
        }
        DataType::Dictionary(_, v) => {
            let a = arrow::compute::cast(array, v)?;
            return column(&a);
        }
        DataType::RunEndEncoded(_, v) => {
            let a = arrow::compute::cast(array, v.data_type())?;
            return column(&a);
        }
        other => {
            // Integers, decimals, dates, times and timestamps: Arrow's
            // formatter, with Flink's layouts.
            let (ts, time) = match other {
                DataType::Timestamp(u, _) => (timestamp_format(u), None),
                DataType::Time32(u) | DataType::Time64(u) => ("", Some(time_format(u))),
                _ => ("", None),
            };
            let options = FormatOptions::new()
                .with_display_error(true)
                .with_date_format(Some("%Y-%m-%d"))
                .with_timestamp_format(Some(ts))
                .with_timestamp_tz_format(Some(ts))
                .with_time_format(time);
            let f = ArrayFormatter::try_new(array.as_ref(), &options)?;
            nulls(&mut |i| Value::String(f.value(i).to_string()))
        }
    })
}

/// `x'0aff'`: how Flink writes bytes as a string.
fn hex_literal(b: &[u8]) -> String {
    let mut s = String::with_capacity(3 + 2 * b.len());
    s.push_str("x'");
    for byte in b {
        s.push_str(&format!("{byte:02x}"));
    }
    s.push('\'');
    s
}

use weir_sql_gateway::flink_text::{day_time, time_format, timestamp_format, year_month};
pub use weir_sql_gateway::flink_text::{java_double, java_float};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_are_written_as_java_writes_them() {
        for (v, want) in [
            (1.0, "1.0"),
            (1.5, "1.5"),
            (-2.25, "-2.25"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (100.0, "100.0"),
            (0.001, "0.001"),
            (0.0001, "1.0E-4"),
            (1234567.0, "1234567.0"),
            (12345678.0, "1.2345678E7"),
            (1e10, "1.0E10"),
            (0.1 + 0.2, "0.30000000000000004"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(java_double(v), want, "{v}");
        }
        assert_eq!(java_float(0.1), "0.1");
        assert_eq!(java_float(3.0e9), "3.0E9");
    }

    #[test]
    fn intervals_and_bytes_are_written_as_flink_writes_them() {
        assert_eq!(year_month(18), "+1-06");
        assert_eq!(year_month(-1), "-0-01");
        assert_eq!(day_time(4 * 3_600_000_000_000), "+0 04:00:00.000");
        assert_eq!(
            day_time(-(86_400_000 + 1500) * 1_000_000),
            "-1 00:00:01.500"
        );
        assert_eq!(hex_literal(&[0x7f, 2, 3]), "x'7f0203'");
    }

    /// Values as the managed service wrote them in results it served (a
    /// `SELECT when_reported, tempf ... ORDER BY tempf DESC LIMIT 10` over
    /// a `TIMESTAMP_LTZ(6)` and a `DOUBLE` column, captured in Confluent's
    /// VS Code extension's test fixtures): Weir writes the same text for
    /// the same values.
    #[test]
    fn values_read_as_the_managed_service_wrote_them() {
        use arrow::array::{Float64Array, TimestampMicrosecondArray};
        use std::sync::Arc;
        let served = [
            ("2025-04-25 06:53:43.584845", "61.2"),
            ("2025-04-30 07:57:47.691022", "78.1"),
            ("2025-04-30 08:23:31.028686", "79.0"),
            ("2025-04-30 11:26:45.837678", "81.0"),
        ];
        let micros: Vec<i64> = served
            .iter()
            .map(|(t, _)| {
                chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f")
                    .unwrap()
                    .and_utc()
                    .timestamp_micros()
            })
            .collect();
        let temps: Vec<f64> = served.iter().map(|(_, v)| v.parse().unwrap()).collect();
        let batch = RecordBatch::try_from_iter([
            (
                "when_reported",
                Arc::new(TimestampMicrosecondArray::from(micros).with_timezone("UTC")) as ArrayRef,
            ),
            ("tempf", Arc::new(Float64Array::from(temps)) as ArrayRef),
        ])
        .unwrap();
        let want: Vec<Vec<Value>> = served
            .iter()
            .map(|(t, v)| vec![Value::String(t.to_string()), Value::String(v.to_string())])
            .collect();
        assert_eq!(rows(&batch).unwrap(), want);
    }
}
