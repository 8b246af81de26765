//! Values as Flink writes them as text (`CAST(x AS STRING)`): Java's
//! layout of floating point numbers, and the SQL function that casts any
//! value to Flink's text, which `CAST(x AS STRING)` is planned as. The
//! results API (`weir_compute_pool::connector::wire`) writes scalars with
//! the same functions.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringArray};
use arrow::datatypes::{DataType, Float32Type, Float64Type, TimeUnit};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// The function `CAST(x AS STRING)` is planned as.
pub const TO_STRING_FN: &str = "weir_to_string";

/// `%Y-%m-%d %H:%M:%S` with a timestamp unit's digits of fraction.
pub fn timestamp_format(u: &TimeUnit) -> &'static str {
    match u {
        TimeUnit::Second => "%Y-%m-%d %H:%M:%S",
        TimeUnit::Millisecond => "%Y-%m-%d %H:%M:%S%.3f",
        TimeUnit::Microsecond => "%Y-%m-%d %H:%M:%S%.6f",
        TimeUnit::Nanosecond => "%Y-%m-%d %H:%M:%S%.9f",
    }
}

/// `%H:%M:%S` with a time unit's digits of fraction.
pub fn time_format(u: &TimeUnit) -> &'static str {
    match u {
        TimeUnit::Second => "%H:%M:%S",
        TimeUnit::Millisecond => "%H:%M:%S%.3f",
        TimeUnit::Microsecond => "%H:%M:%S%.6f",
        TimeUnit::Nanosecond => "%H:%M:%S%.9f",
    }
}

/// Each value of `a` as Flink casts it to `STRING`; NULL stays NULL.
pub fn flink_strings(a: &ArrayRef) -> DfResult<StringArray> {
    let n = a.len();
    let each = |f: &mut dyn FnMut(usize) -> String| -> StringArray {
        (0..n).map(|i| (!a.is_null(i)).then(|| f(i))).collect()
    };
    Ok(match a.data_type() {
        DataType::Boolean => {
            let b = a.as_boolean();
            each(&mut |i| if b.value(i) { "TRUE" } else { "FALSE" }.to_string())
        }
        DataType::Float64 => {
            let f = a.as_primitive::<Float64Type>();
            each(&mut |i| java_double(f.value(i)))
        }
        DataType::Float32 => {
            let f = a.as_primitive::<Float32Type>();
            each(&mut |i| java_float(f.value(i)))
        }
        // Bytes are read as UTF-8, as Flink casts `BYTES` to `STRING`.
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            let b = arrow::compute::cast(a, &DataType::Binary)?;
            let b = b.as_binary::<i32>();
            each(&mut |i| String::from_utf8_lossy(b.value(i)).into_owned())
        }
        DataType::Timestamp(u, _) | DataType::Time32(u) | DataType::Time64(u) => {
            let fmt = timestamp_format(u);
            let options = FormatOptions::default()
                .with_timestamp_format(Some(fmt))
                .with_timestamp_tz_format(Some(fmt))
                .with_time_format(Some(time_format(u)));
            let f = ArrayFormatter::try_new(a.as_ref(), &options)?;
            each(&mut |i| f.value(i).to_string())
        }
        DataType::Interval(arrow::datatypes::IntervalUnit::MonthDayNano) => {
            let v = a.as_primitive::<arrow::datatypes::IntervalMonthDayNanoType>();
            each(&mut |i| month_day_nano(v.value(i)))
        }
        // `{k1=v1, k2=v2}`, keys and values as Flink casts them, a NULL
        // written `null`.
        DataType::Map(_, _) => {
            let m = a.as_map();
            let keys = flink_strings(m.keys())?;
            let values = flink_strings(m.values())?;
            fn text(s: &StringArray, j: usize) -> &str {
                if s.is_null(j) {
                    "null"
                } else {
                    s.value(j)
                }
            }
            let offsets = m.value_offsets();
            each(&mut |i| {
                let (from, to) = (offsets[i] as usize, offsets[i + 1] as usize);
                let entries: Vec<String> = (from..to)
                    .map(|j| format!("{}={}", text(&keys, j), text(&values, j)))
                    .collect();
                format!("{{{}}}", entries.join(", "))
            })
        }
        _ => {
            let s = arrow::compute::cast(a, &DataType::Utf8)?;
            s.as_string::<i32>().clone()
        }
    })
}

/// `+1-06`: an `INTERVAL YEAR TO MONTH` of `months`.
pub fn year_month(months: i64) -> String {
    let sign = if months < 0 { '-' } else { '+' };
    let m = months.unsigned_abs();
    format!("{sign}{}-{:02}", m / 12, m % 12)
}

/// `+0 04:00:00.000`: an `INTERVAL DAY TO SECOND(3)` of `nanos`.
pub fn day_time(nanos: i128) -> String {
    let sign = if nanos < 0 { '-' } else { '+' };
    let ms = nanos.unsigned_abs() / 1_000_000;
    let (days, rest) = (ms / 86_400_000, ms % 86_400_000);
    format!(
        "{sign}{days} {:02}:{:02}:{:02}.{:03}",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000
    )
}

/// An Arrow month-day-nano interval as Flink writes its interval: a
/// year-month one when it has months only, else a day-time one (a month
/// counted as 30 days: Flink's day-time intervals have no months).
pub fn month_day_nano(v: arrow::datatypes::IntervalMonthDayNano) -> String {
    if v.days == 0 && v.nanoseconds == 0 && v.months != 0 {
        year_month(v.months as i64)
    } else {
        day_time(
            (v.months as i128 * 30 + v.days as i128) * 86_400_000_000_000 + v.nanoseconds as i128,
        )
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ToString {
    signature: Signature,
}

impl ScalarUDFImpl for ToString {
    fn name(&self) -> &str {
        TO_STRING_FN
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let out: ArrayRef = Arc::new(flink_strings(&arrays[0])?);
        if scalar {
            return Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::try_from_array(&out, 0)?,
            ));
        }
        Ok(ColumnarValue::Array(out))
    }
}

pub(crate) fn udf() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::from(ToString {
        signature: Signature::any(1, Volatility::Immutable),
    }))
}

/// A `DOUBLE` as Java's `Double.toString` writes it, which is what Flink
/// casts to `STRING`: `1.0`, `0.001`, `1.0E7`, `1.0E-4`, `NaN`, `Infinity`.
pub fn java_double(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    java_layout(&format!("{v:e}"))
}

/// A `FLOAT` as Java's `Float.toString` writes it.
pub fn java_float(v: f32) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    java_layout(&format!("{v:e}"))
}

/// Java's layout of the shortest digits Rust's `{:e}` found: plain between
/// 10^-3 and 10^7, computerized scientific notation outside.
fn java_layout(sci: &str) -> String {
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` writes an exponent");
    let exp: i32 = exp.parse().expect("`{:e}` writes an integer exponent");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if digits == "0" {
        return format!("{sign}0.0");
    }
    if (-3..7).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            let mut int = digits.chars().take(int_len).collect::<String>();
            while int.len() < int_len {
                int.push('0');
            }
            let frac: String = digits.chars().skip(int_len).collect();
            let frac = if frac.is_empty() {
                "0".to_string()
            } else {
                frac
            };
            format!("{sign}{int}.{frac}")
        } else {
            format!("{sign}0.{}{digits}", "0".repeat((-exp - 1) as usize))
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() { "0" } else { rest };
        format!("{sign}{first}.{rest}E{exp}")
    }
}
