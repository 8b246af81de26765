//! Flink's scalar functions that DataFusion has no counterpart of, as
//! scalar functions over Arrow arrays: hashing (`SHA1`), number and text
//! encodings (`HEX`, `BIN`, `TO_BASE64`, `FROM_BASE64`), character-class
//! tests (`IS_ALPHA`, `IS_DIGIT`, `IS_DECIMAL`) and the JSON functions
//! (`JSON_VALUE`, `JSON_QUERY`, `JSON_EXISTS`, `IS JSON`, `JSON_STRING`)
//! and URLs (`URL_ENCODE`, `URL_DECODE`, `PARSE_URL`), `CONVERT_TZ`,
//! `PRINTF`, `STR_TO_MAP`, `JSON_QUOTE`, `JSON_UNQUOTE`, `UNHEX`,
//! `REGEXP_EXTRACT_ALL` and `MAP_UNION`,
//! each with Flink's NULL handling: a NULL argument gives NULL, and a value
//! a function cannot read gives NULL (Flink's `NULL ON ERROR`) rather than
//! failing the statement (`JSON_VALUE`'s and `JSON_QUERY`'s `ON ERROR`
//! clauses, parsed in [`crate::dialect`], choose otherwise). Functions
//! whose only difference from DataFusion's is their shape are rewritten in
//! [`crate::functions`] instead.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, StringArray};
use arrow::datatypes::DataType;
use base64::Engine;
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

type Body = fn(&[ArrayRef]) -> DfResult<ArrayRef>;

/// One function: its name, argument count, result type and body.
#[derive(Debug)]
struct Simple {
    name: &'static str,
    signature: Signature,
    /// `None`: the first argument's type.
    returns: Option<DataType>,
    body: Body,
}

impl PartialEq for Simple {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for Simple {}
impl std::hash::Hash for Simple {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}

impl ScalarUDFImpl for Simple {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        match (&self.returns, args.first()) {
            (Some(t), _) => Ok(t.clone()),
            (None, Some(_)) => {
                let first = same_type(args);
                if let Some(other) = args
                    .iter()
                    .find(|t| !arrow::compute::can_cast_types(t, &first))
                {
                    return datafusion::common::plan_err!(
                        "{} takes arguments of one type, not {first} and {other}: cast them to one",
                        self.name.to_uppercase()
                    );
                }
                Ok(first)
            }
            (None, None) => datafusion::common::plan_err!(
                "{} takes at least one argument",
                self.name.to_uppercase()
            ),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        over_arrays(args, self.body)
    }
}

/// `body` over the arguments as arrays; a scalar when every argument is.
fn over_arrays(
    args: ScalarFunctionArgs,
    body: impl Fn(&[ArrayRef]) -> DfResult<ArrayRef>,
) -> DfResult<ColumnarValue> {
    let scalar = args
        .args
        .iter()
        .all(|a| matches!(a, ColumnarValue::Scalar(_)));
    let arrays = ColumnarValue::values_to_arrays(&args.args)?;
    let out = body(&arrays)?;
    if scalar {
        let v = datafusion::common::ScalarValue::try_from_array(&out, 0)?;
        return Ok(ColumnarValue::Scalar(v));
    }
    Ok(ColumnarValue::Array(out))
}

/// The name of [`tagged_cast`].
/// `TYPEOF(e [, forceSerialize])`: `e`'s type as Flink writes it, with
/// `NOT NULL` when it cannot be NULL (the second argument, about Flink's
/// serialized types, changes nothing here).
#[derive(Debug, PartialEq, Eq, Hash)]
struct TypeOf {
    signature: Signature,
}

impl ScalarUDFImpl for TypeOf {
    fn name(&self) -> &str {
        "typeof"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(
        &self,
        _args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> DfResult<arrow::datatypes::FieldRef> {
        Ok(Arc::new(arrow::datatypes::Field::new(
            self.name(),
            DataType::Utf8,
            false,
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let field = &args.arg_fields[0];
        let name = weir_catalog::SqlType::from_arrow(field.data_type())
            .map(|t| t.to_string())
            .unwrap_or_else(|_| field.data_type().to_string());
        let text = if field.is_nullable() {
            name
        } else {
            format!("{name} NOT NULL")
        };
        Ok(ColumnarValue::Scalar(
            datafusion::common::ScalarValue::Utf8(Some(text)),
        ))
    }
}

/// `weir_like_type(value, like)`: `value` cast to `like`'s type, so that
/// `FLOOR(d TO MONTH)` of a `DATE` stays a `DATE` (DataFusion's
/// `date_trunc` answers a timestamp).
pub(crate) const LIKE_TYPE_FN: &str = "weir_like_type";

#[derive(Debug, PartialEq, Eq, Hash)]
struct LikeType {
    signature: Signature,
}

impl ScalarUDFImpl for LikeType {
    fn name(&self) -> &str {
        LIKE_TYPE_FN
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        Ok(args[1].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let to = args.return_field.data_type().clone();
        args.args[0].cast_to(&to, None)
    }
}

/// `weir_java_cast(x, CAST(NULL AS T))` is `CAST(x AS T)` for an integer
/// `T` as Flink's generated Java code casts: a narrower integer wraps
/// around (`CAST(300 AS TINYINT)` is 44), a floating-point value
/// saturates to `INT` or `BIGINT` first (`CAST(1e20 AS BIGINT)` is the
/// largest `BIGINT`, NaN is 0), a `DECIMAL` drops its fraction, then
/// wraps. A number too large for a `DECIMAL` target is NULL, as Flink's
/// cast makes it (`CAST(123.45 AS DECIMAL(3, 1))`). DataFusion's cast
/// fails the statement on such values. Text cast to an integer drops a
/// decimal fraction, as Flink's does (`CAST('1.5' AS INT)` is 1); other
/// inputs (strings, booleans) are cast as before.
pub(crate) const JAVA_CAST_FN: &str = "weir_java_cast";

/// [`JAVA_CAST_FN`] for `TRY_CAST`: numbers cast the same (they never
/// fail), other inputs that cannot be cast are NULL.
pub(crate) const JAVA_TRY_CAST_FN: &str = "weir_java_try_cast";

#[derive(Debug, PartialEq, Eq, Hash)]
struct JavaCast {
    signature: Signature,
    /// `TRY_CAST`: what DataFusion's cast cannot cast is NULL.
    try_: bool,
}

impl ScalarUDFImpl for JavaCast {
    fn name(&self) -> &str {
        if self.try_ {
            JAVA_TRY_CAST_FN
        } else {
            JAVA_CAST_FN
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        Ok(args[1].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let to = args.return_field.data_type().clone();
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let mut input = args.args[0].to_array(args.number_rows)?;
        if to.is_integer()
            && matches!(
                input.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            )
        {
            input = integer_text(&input)?;
        }
        let out = match java_integer_cast(&input, &to)? {
            Some(out) => out,
            None => arrow::compute::cast_with_options(
                &input,
                &to,
                &arrow::compute::CastOptions {
                    safe: self.try_
                        || matches!(to, DataType::Decimal128(..) | DataType::Decimal256(..))
                            && input.data_type().is_numeric(),
                    ..Default::default()
                },
            )?,
        };
        if scalar {
            let v = datafusion::common::ScalarValue::try_from_array(&out, 0)?;
            return Ok(ColumnarValue::Scalar(v));
        }
        Ok(ColumnarValue::Array(out))
    }
}

/// Text cast to an integer as Flink reads it: a decimal fraction is
/// dropped (`'1.5'` is 1, `'-1.9'` is -1), the rest is left to the cast.
fn integer_text(a: &ArrayRef) -> DfResult<ArrayRef> {
    let text = arrow::compute::cast(a, &DataType::Utf8)?;
    let out: StringArray = text
        .as_string::<i32>()
        .iter()
        .map(|v| {
            v.map(|v| {
                let t = v.trim();
                let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
                match digits.split_once('.') {
                    Some((whole, fraction))
                        if !whole.is_empty()
                            && whole.bytes().all(|b| b.is_ascii_digit())
                            && fraction.bytes().all(|b| b.is_ascii_digit()) =>
                    {
                        &t[..t.len() - fraction.len() - 1]
                    }
                    _ => v,
                }
            })
        })
        .collect();
    Ok(Arc::new(out))
}

/// [`JAVA_CAST_FN`]'s cast of a number to the integer type `to`; `None`
/// for anything else.
fn java_integer_cast(a: &ArrayRef, to: &DataType) -> DfResult<Option<ArrayRef>> {
    use arrow::array::Int64Array;
    use arrow::datatypes::{
        Decimal128Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt64Type,
    };
    if !matches!(
        to,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64
    ) {
        return Ok(None);
    }
    if a.data_type() == to {
        return Ok(Some(a.clone()));
    }
    let longs: Int64Array = match a.data_type() {
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            // Java's (long) and (int) of a double saturate (Rust's `as`
            // too), and (short) and (byte) go through (int).
            let d = arrow::compute::cast(a, &DataType::Float64)?;
            let d = d.as_primitive::<Float64Type>();
            let out: ArrayRef = match to {
                DataType::Int64 => Arc::new(d.unary::<_, Int64Type>(|v| v as i64)),
                DataType::Int32 => Arc::new(d.unary::<_, Int32Type>(|v| v as i32)),
                DataType::Int16 => Arc::new(d.unary::<_, Int16Type>(|v| v as i32 as i16)),
                _ => Arc::new(d.unary::<_, Int8Type>(|v| v as i32 as i8)),
            };
            return Ok(Some(out));
        }
        DataType::UInt64 => a.as_primitive::<UInt64Type>().unary(|v| v as i64),
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32 => arrow::compute::cast(a, &DataType::Int64)?
            .as_primitive::<Int64Type>()
            .clone(),
        // BigDecimal.longValue(): the fraction dropped, then the low 64 bits.
        DataType::Decimal128(_, scale) => {
            let d = a.as_primitive::<Decimal128Type>();
            if *scale >= 0 {
                let f = 10i128.pow(u32::from(scale.unsigned_abs()));
                d.unary(|v| (v / f) as i64)
            } else {
                let f = 10i128.pow(u32::from(scale.unsigned_abs()));
                d.unary(|v| v.wrapping_mul(f) as i64)
            }
        }
        _ => return Ok(None),
    };
    // Java's narrowing of a long keeps the low bits, as Rust's `as`.
    Ok(Some(match to {
        DataType::Int64 => Arc::new(longs),
        DataType::Int32 => Arc::new(longs.unary::<_, Int32Type>(|v| v as i32)),
        DataType::Int16 => Arc::new(longs.unary::<_, Int16Type>(|v| v as i16)),
        _ => Arc::new(longs.unary::<_, Int8Type>(|v| v as i8)),
    }))
}

pub(crate) const TAGGED_CAST_FN: &str = "weir_cast";

/// `weir_cast(CAST(x AS T), 'T')` is `CAST(x AS T)`: its second argument
/// only makes its name differ from `x`'s. DataFusion names a cast after
/// the value cast, so `AVG(a)` and `AVG(CAST(a AS DOUBLE))` in one
/// aggregate would have one name and be refused (apache/datafusion#18975).
#[derive(Debug, PartialEq, Eq, Hash)]
struct TaggedCast {
    signature: Signature,
}

impl ScalarUDFImpl for TaggedCast {
    fn name(&self) -> &str {
        TAGGED_CAST_FN
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        Ok(args[0].clone())
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Ok(args.args.swap_remove(0))
    }
}

pub(crate) const TEXT_TIMESTAMP_FN: &str = "weir_text_timestamp";

/// `weir_text_timestamp(x)`: text read as a `TIMESTAMP`, NULL where it is
/// not one (Flink's `DATE_FORMAT` of text that is not a time is NULL;
/// DataFusion's cast failed the statement); any other value as it is.
#[derive(Debug, PartialEq, Eq, Hash)]
struct TextTimestamp {
    signature: Signature,
}

impl ScalarUDFImpl for TextTimestamp {
    fn name(&self) -> &str {
        TEXT_TIMESTAMP_FN
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        Ok(match &args[0] {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                DataType::Timestamp(arrow::datatypes::TimeUnit::Nanosecond, None)
            }
            other => other.clone(),
        })
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let to = args.return_field.data_type().clone();
        let x = args.args.swap_remove(0);
        if x.data_type() == to {
            return Ok(x);
        }
        x.cast_to(
            &to,
            Some(&arrow::compute::CastOptions {
                safe: true,
                ..Default::default()
            }),
        )
    }
}

pub(crate) fn text_timestamp() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::from(TextTimestamp {
        signature: Signature::any(1, Volatility::Immutable),
    }))
}

pub(crate) fn tagged_cast() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::from(TaggedCast {
        signature: Signature::any(2, Volatility::Immutable),
    }))
}

fn udf(name: &'static str, arity: usize, returns: DataType, body: Body) -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::from(Simple {
        name,
        signature: if arity == 0 {
            Signature::nullary(Volatility::Immutable)
        } else {
            Signature::any(arity, Volatility::Immutable)
        },
        returns: Some(returns),
        body,
    }))
}

fn variadic(name: &'static str, returns: DataType, body: Body) -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::from(Simple {
        name,
        signature: Signature::one_of(
            vec![
                datafusion::logical_expr::TypeSignature::Nullary,
                datafusion::logical_expr::TypeSignature::VariadicAny,
            ],
            Volatility::Immutable,
        ),
        returns: Some(returns),
        body,
    }))
}

/// The function `CAST(x AS MAP<...>)` and `CAST(x AS ROW<...>)` are
/// parsed into ([`crate::dialect`]): `weir_cast_composite(x, 'type', try)`.
pub const CAST_FN: &str = "weir_cast_composite";

/// `text [NOT] SIMILAR TO pattern [ESCAPE c]` is planned as this function
/// of its text, pattern and escape ([`similar_to`]).
pub const SIMILAR_TO_FN: &str = "weir_similar_to";

/// `POWER(x, y)` is planned as this function ([`power`]).
pub const POWER_FN: &str = "weir_power";

/// `REGEXP_REPLACE(text, pattern, replacement)` is planned as this
/// function ([`regexp_replace`]).
pub const REGEXP_REPLACE_FN: &str = "weir_regexp_replace";

/// `interval * n` and `n * interval` are planned as this function of the
/// interval and the integer ([`IntervalTimes`]); Arrow has no such kernel.
pub const INTERVAL_TIMES_FN: &str = "weir_interval_times";

/// [`INTERVAL_TIMES_FN`]: an interval scaled by an integer, as Flink's
/// `INTERVAL '1' SECOND * 3` (Flink takes an exact integer only, and so
/// does this: a DECIMAL or DOUBLE factor is refused at planning). Each
/// part (months, days, nanoseconds) is scaled; a product past the range of
/// its part is NULL rather than failing the statement.
#[derive(Debug, PartialEq, Eq, Hash)]
struct IntervalTimes {
    signature: Signature,
}

impl ScalarUDFImpl for IntervalTimes {
    fn name(&self) -> &str {
        INTERVAL_TIMES_FN
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        match args {
            [DataType::Interval(_) | DataType::Null, n] if n.is_integer() || n.is_null() => Ok(
                DataType::Interval(arrow::datatypes::IntervalUnit::MonthDayNano),
            ),
            [DataType::Interval(_) | DataType::Null, n] => {
                let n = weir_catalog::SqlType::from_arrow(n)
                    .map_or_else(|_| n.to_string(), |t| t.to_string());
                datafusion::common::plan_err!(
                    "an interval is multiplied by an integer (as in Flink), not by {n}: cast the factor to INT or BIGINT"
                )
            }
            _ => datafusion::common::plan_err!(
                "an interval is multiplied by an integer: INTERVAL '1' SECOND * 3"
            ),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        over_arrays(args, interval_times)
    }
}

/// [`IntervalTimes`]'s body.
fn interval_times(arrays: &[ArrayRef]) -> DfResult<ArrayRef> {
    let unit = DataType::Interval(arrow::datatypes::IntervalUnit::MonthDayNano);
    let interval = arrow::compute::cast(&arrays[0], &unit)?;
    let factor = arrow::compute::cast(&arrays[1], &DataType::Int64)?;
    let intervals = interval.as_primitive::<arrow::datatypes::IntervalMonthDayNanoType>();
    let factors = factor.as_primitive::<arrow::datatypes::Int64Type>();
    let out: arrow::array::IntervalMonthDayNanoArray = intervals
        .iter()
        .zip(factors.iter())
        .map(|(iv, n)| {
            let (iv, n) = (iv?, n?);
            let n32 = i32::try_from(n).ok();
            Some(arrow::datatypes::IntervalMonthDayNano::new(
                if iv.months == 0 {
                    0
                } else {
                    iv.months.checked_mul(n32?)?
                },
                if iv.days == 0 {
                    0
                } else {
                    iv.days.checked_mul(n32?)?
                },
                iv.nanoseconds.checked_mul(n)?,
            ))
        })
        .collect();
    Ok(Arc::new(out))
}

/// [`CAST_FN`]: a cast to a type named by its Flink text, which
/// DataFusion's SQL cannot name (a `MAP` or a `ROW`). A value that does not
/// cast is NULL, as a record never fails its statement for a cast.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CompositeCast {
    signature: Signature,
}

impl CompositeCast {
    fn target(args: &datafusion::logical_expr::ReturnFieldArgs) -> DfResult<DataType> {
        let text = match args.scalar_arguments.get(1) {
            Some(Some(
                datafusion::common::ScalarValue::Utf8(Some(t))
                | datafusion::common::ScalarValue::Utf8View(Some(t))
                | datafusion::common::ScalarValue::LargeUtf8(Some(t)),
            )) => t.clone(),
            _ => return datafusion::common::plan_err!("{CAST_FN} takes its type as text"),
        };
        crate::parser::parse_type(&text)
            .map(|t| t.to_arrow())
            .map_err(|e| datafusion::error::DataFusionError::Plan(format!("CAST to {text}: {e}")))
    }
}

impl ScalarUDFImpl for CompositeCast {
    fn name(&self) -> &str {
        CAST_FN
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        datafusion::common::internal_err!("{CAST_FN}'s type is read from its arguments")
    }

    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> DfResult<arrow::datatypes::FieldRef> {
        let to = Self::target(&args)?;
        let from = args.arg_fields[0].data_type();
        if !arrow::compute::can_cast_types(from, &to) {
            return datafusion::common::plan_err!(
                "cannot cast {} to {}",
                weir_catalog::SqlType::from_arrow(from)
                    .map(|t| t.to_string())
                    .unwrap_or_else(|_| from.to_string()),
                weir_catalog::SqlType::from_arrow(&to)
                    .map(|t| t.to_string())
                    .unwrap_or_else(|_| to.to_string())
            );
        }
        Ok(Arc::new(arrow::datatypes::Field::new(
            self.name(),
            to,
            true,
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let to = args.return_field.data_type().clone();
        match &args.args[0] {
            ColumnarValue::Array(a) => Ok(ColumnarValue::Array(arrow::compute::cast(a, &to)?)),
            ColumnarValue::Scalar(v) => {
                let a = arrow::compute::cast(&v.to_array()?, &to)?;
                Ok(ColumnarValue::Scalar(
                    datafusion::common::ScalarValue::try_from_array(&a, 0)?,
                ))
            }
        }
    }
}

/// Every function of this module, to register with the planner.
pub(crate) fn udfs() -> Vec<Arc<ScalarUDF>> {
    vec![
        udf("sha1", 1, DataType::Utf8, sha1),
        udf("hex", 1, DataType::Utf8, hex),
        udf("bin", 1, DataType::Utf8, bin),
        udf("to_base64", 1, DataType::Utf8, to_base64),
        udf("from_base64", 1, DataType::Utf8, from_base64),
        udf("is_alpha", 1, DataType::Boolean, is_alpha),
        udf("is_digit", 1, DataType::Boolean, is_digit),
        udf("is_decimal", 1, DataType::Boolean, is_decimal),
        udf("json_value", 2, DataType::Utf8, json_value),
        udf(JSON_VALUE_STATUS_FN, 2, DataType::Int8, json_value_status),
        udf(JSON_QUERY_FN, 3, DataType::Utf8, json_query_wrapped),
        udf(JSON_QUERY_STATUS_FN, 3, DataType::Int8, json_query_status),
        udf("json_query", 2, DataType::Utf8, json_query),
        udf("json_exists", 2, DataType::Boolean, json_exists),
        udf("json_string", 1, DataType::Utf8, json_string),
        udf(IS_JSON_FN, 2, DataType::Boolean, is_json),
        variadic(JSON_ARRAY_FN, DataType::Utf8, json_array),
        round_udf(CEIL_FN, true),
        round_udf(FLOOR_FN, false),
        variadic(JSON_OBJECT_FN, DataType::Utf8, json_object),
        udf(POWER_FN, 2, DataType::Float64, power),
        udf(REGEXP_REPLACE_FN, 3, DataType::Utf8, regexp_replace),
        udf("url_encode", 1, DataType::Utf8, url_encode),
        udf("url_decode", 1, DataType::Utf8, url_decode),
        udf("convert_tz", 3, DataType::Utf8, convert_tz),
        variadic("printf", DataType::Utf8, printf),
        Arc::new(ScalarUDF::from(Simple {
            name: "parse_url",
            signature: Signature::one_of(
                vec![
                    datafusion::logical_expr::TypeSignature::Any(2),
                    datafusion::logical_expr::TypeSignature::Any(3),
                ],
                Volatility::Immutable,
            ),
            returns: Some(DataType::Utf8),
            body: parse_url,
        })),
        Arc::new(ScalarUDF::from(Simple {
            name: SIMILAR_TO_FN,
            signature: Signature::one_of(
                vec![
                    datafusion::logical_expr::TypeSignature::Any(2),
                    datafusion::logical_expr::TypeSignature::Any(3),
                ],
                Volatility::Immutable,
            ),
            returns: Some(DataType::Boolean),
            body: similar_to,
        })),
        Arc::new(ScalarUDF::from(Fail {
            signature: Signature::any(1, Volatility::Volatile),
        })),
        Arc::new(ScalarUDF::from(LikeType {
            signature: Signature::any(2, Volatility::Immutable),
        })),
        Arc::new(ScalarUDF::from(JavaCast {
            signature: Signature::any(2, Volatility::Immutable),
            try_: false,
        })),
        Arc::new(ScalarUDF::from(JavaCast {
            signature: Signature::any(2, Volatility::Immutable),
            try_: true,
        })),
        Arc::new(ScalarUDF::from(TypeOf {
            signature: Signature::one_of(
                vec![
                    datafusion::logical_expr::TypeSignature::Any(1),
                    datafusion::logical_expr::TypeSignature::Any(2),
                ],
                Volatility::Immutable,
            ),
        })),
        Arc::new(ScalarUDF::from(Simple {
            name: "str_to_map",
            signature: Signature::one_of(
                vec![
                    datafusion::logical_expr::TypeSignature::Any(1),
                    datafusion::logical_expr::TypeSignature::Any(3),
                ],
                Volatility::Immutable,
            ),
            returns: Some(string_map_type()),
            body: str_to_map,
        })),
        Arc::new(ScalarUDF::from(CompositeCast {
            signature: Signature::any(3, Volatility::Immutable),
        })),
        Arc::new(ScalarUDF::from(IntervalTimes {
            signature: Signature::any(2, Volatility::Immutable),
        })),
        udf("json_quote", 1, DataType::Utf8, json_quote),
        udf("json_unquote", 1, DataType::Utf8, json_unquote),
        udf("unhex", 1, DataType::Binary, unhex),
        udf(INET_ATON_FN, 1, DataType::Int64, inet_aton),
        udf(CHR_FN, 1, DataType::Utf8, chr),
        udf(ASCII_FN, 1, DataType::Int32, ascii),
        Arc::new(ScalarUDF::from(Simple {
            name: ABS_FN,
            signature: Signature::any(1, Volatility::Immutable),
            returns: None,
            body: abs,
        })),
        udf(INET_NTOA_FN, 1, DataType::Utf8, inet_ntoa),
        udf(ENCODE_FN, 2, DataType::Binary, encode_charset),
        udf(DECODE_FN, 2, DataType::Utf8, decode_charset),
        Arc::new(ScalarUDF::from(Simple {
            name: "regexp_extract_all",
            signature: Signature::one_of(
                vec![
                    datafusion::logical_expr::TypeSignature::Any(2),
                    datafusion::logical_expr::TypeSignature::Any(3),
                ],
                Volatility::Immutable,
            ),
            returns: Some(DataType::List(Arc::new(
                arrow::datatypes::Field::new_list_field(DataType::Utf8, true),
            ))),
            body: regexp_extract_all,
        })),
        Arc::new(ScalarUDF::from(Simple {
            name: "map_union",
            signature: Signature::variadic_any(Volatility::Immutable),
            returns: None,
            body: map_union,
        })),
    ]
}

/// [`TRY_TO_TIMESTAMP_FN`], [`TRY_TO_DATE_FN`], [`TRY_REGEXP_MATCH_FN`]
/// and [`TRY_REGEXP_LIKE_FN`] over the session's own functions (in
/// `functions`), configured as its are.
pub(crate) fn null_on_error_udfs(
    functions: &std::collections::HashMap<String, Arc<ScalarUDF>>,
) -> Vec<Arc<ScalarUDF>> {
    [
        (TRY_TO_TIMESTAMP_FN, "to_timestamp"),
        (TRY_TO_DATE_FN, "to_date"),
        (TRY_REGEXP_MATCH_FN, "regexp_match"),
        (TRY_REGEXP_LIKE_FN, "regexp_like"),
    ]
    .into_iter()
    .filter_map(|(name, inner)| Some(null_on_error(name, functions.get(inner)?.clone())))
    .collect()
}

/// DataFusion's `to_timestamp(text, format)` and `to_date(text, format)`
/// with a NULL for text that does not match, as Flink's `TO_TIMESTAMP`,
/// `TO_TIMESTAMP_LTZ` and `TO_DATE` give (DataFusion's fail the statement).
pub(crate) const TRY_TO_TIMESTAMP_FN: &str = "weir_try_to_timestamp";
pub(crate) const TRY_TO_DATE_FN: &str = "weir_try_to_date";
/// DataFusion's `regexp_match` and `regexp_like` with a NULL for a pattern
/// that does not compile (Flink's `REGEXP_EXTRACT` gives NULL, `REGEXP`
/// FALSE), which failed the statement.
pub(crate) const TRY_REGEXP_MATCH_FN: &str = "weir_try_regexp_match";
pub(crate) const TRY_REGEXP_LIKE_FN: &str = "weir_try_regexp_like";

fn null_on_error(name: &'static str, inner: Arc<ScalarUDF>) -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::from(NullOnError { name, inner }))
}

/// `inner`, with a NULL for each row it cannot compute rather than an
/// error for the batch. A batch it computes costs one call; one with a
/// row it cannot is computed again row by row.
#[derive(Debug, PartialEq, Eq, Hash)]
struct NullOnError {
    name: &'static str,
    inner: Arc<ScalarUDF>,
}

impl ScalarUDFImpl for NullOnError {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        self.inner.return_type(args)
    }

    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> DfResult<arrow::datatypes::FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, args: &[DataType]) -> DfResult<Vec<DataType>> {
        self.inner.coerce_types(args)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        if let Ok(v) = self.inner.invoke_with_args(args.clone()) {
            return Ok(v);
        }
        let n = args.number_rows;
        let arrays = args
            .args
            .iter()
            .map(|a| a.to_array(n))
            .collect::<DfResult<Vec<_>>>()?;
        let mut rows = Vec::with_capacity(n);
        for i in 0..n {
            let row = ScalarFunctionArgs {
                args: arrays
                    .iter()
                    .map(|a| ColumnarValue::Array(a.slice(i, 1)))
                    .collect(),
                number_rows: 1,
                ..args.clone()
            };
            rows.push(match self.inner.invoke_with_args(row) {
                Ok(v) => v.to_array(1)?,
                Err(_) => arrow::array::new_null_array(args.return_field.data_type(), 1),
            });
        }
        let refs: Vec<&dyn Array> = rows.iter().map(|a| a.as_ref()).collect();
        let out = if refs.is_empty() {
            arrow::array::new_null_array(args.return_field.data_type(), 0)
        } else {
            arrow::compute::concat(&refs)?
        };
        if args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)))
            && n == 1
        {
            return Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::try_from_array(&out, 0)?,
            ));
        }
        Ok(ColumnarValue::Array(out))
    }
}

/// Flink's `JSON_QUOTE`: the text as a JSON string, with `"`, `\`, `/`
/// and the control characters that have a short escape escaped, and every
/// UTF-16 unit past ASCII written `\uXXXX`.
fn json_quote(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    let s = strings(&a[0])?;
    let out: StringArray = s
        .iter()
        .map(|v| {
            v.map(|v| {
                let mut out = String::with_capacity(v.len() + 2);
                out.push('"');
                for c in v.chars() {
                    match c {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        '/' => out.push_str("\\/"),
                        '\u{8}' => out.push_str("\\b"),
                        '\u{c}' => out.push_str("\\f"),
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        '\t' => out.push_str("\\t"),
                        c if c.is_ascii() => out.push(c),
                        c => {
                            let mut units = [0u16; 2];
                            for u in c.encode_utf16(&mut units) {
                                out.push_str(&format!("\\u{u:04x}"));
                            }
                        }
                    }
                }
                out.push('"');
                out
            })
        })
        .collect();
    Ok(Arc::new(out))
}

/// Flink's `JSON_UNQUOTE`: a JSON string literal loses its quotes and has
/// its escapes read; other text is kept as it is.
fn json_unquote(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    fn unquote(text: &str) -> Option<String> {
        if !(text.len() >= 2 && text.starts_with('"') && text.ends_with('"')) {
            return None;
        }
        serde_json::from_str::<serde_json::Value>(text).ok()?;
        let u: Vec<u16> = text.encode_utf16().collect();
        let mut out = Vec::with_capacity(u.len());
        let mut i = 1;
        while i + 1 < u.len() {
            if u[i] != u16::from(b'\\') {
                out.push(u[i]);
                i += 1;
                continue;
            }
            let c = *u.get(i + 1)?;
            i += 2;
            out.push(match char::from_u32(u32::from(c))? {
                '"' | '\\' | '/' => c,
                'b' => 8,
                'f' => 12,
                'n' => u16::from(b'\n'),
                'r' => u16::from(b'\r'),
                't' => u16::from(b'\t'),
                'u' => {
                    let hex = String::from_utf16(u.get(i..i + 4)?).ok()?;
                    i += 4;
                    u16::from_str_radix(&hex, 16).ok()?
                }
                _ => return None,
            });
        }
        Some(String::from_utf16_lossy(&out))
    }
    let s = strings(&a[0])?;
    let out: StringArray = s
        .iter()
        .map(|v| v.map(|v| unquote(v).unwrap_or_else(|| v.to_string())))
        .collect();
    Ok(Arc::new(out))
}

/// Flink's `UNHEX`: pairs of hex digits as bytes, from the end; an odd
/// first digit is checked and read as a zero byte; NULL when a character
/// is not a hex digit.
fn unhex(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    fn read(b: &[u8]) -> Option<Vec<u8>> {
        let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        let mut out = vec![0u8; b.len().div_ceil(2)];
        let odd = b.len() % 2;
        if odd == 1 {
            digit(b[0])?;
        }
        for (j, pair) in b[odd..].chunks(2).enumerate() {
            out[j + odd] = (digit(pair[0])? << 4) | digit(pair[1])?;
        }
        Some(out)
    }
    let out: arrow::array::BinaryArray = bytes_of(&a[0])?
        .into_iter()
        .map(|v| v.and_then(|b| read(&b)))
        .collect();
    Ok(Arc::new(out))
}

/// The names `CHR`, `ASCII` and `ABS` are rewritten to.
pub(crate) const CHR_FN: &str = "weir_chr";
pub(crate) const ASCII_FN: &str = "weir_ascii";
pub(crate) const ABS_FN: &str = "weir_abs";

/// Flink's `CHR(n)`: the character of `n`'s low byte (`CHR(353)` is `a`);
/// the empty string for a negative `n`.
fn chr(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    let n = arrow::compute::cast(&a[0], &DataType::Int64)?;
    let out: StringArray = n
        .as_primitive::<arrow::datatypes::Int64Type>()
        .iter()
        .map(|v| {
            v.map(|v| match v {
                v if v < 0 => String::new(),
                v => char::from((v & 0xFF) as u8).to_string(),
            })
        })
        .collect();
    Ok(Arc::new(out))
}

/// Flink's `ASCII(s)`: the first byte of the text's UTF-8, as a Java
/// `byte` (signed: `ASCII('é')` is -61); 0 for the empty string.
fn ascii(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    let s = strings(&a[0])?;
    let out: arrow::array::Int32Array = s
        .iter()
        .map(|v| v.map(|v| v.as_bytes().first().map_or(0, |b| i32::from(*b as i8))))
        .collect();
    Ok(Arc::new(out))
}

/// `ABS(x)`: an integer's wraps around as Java's does (`ABS` of the
/// smallest `INT` is itself) instead of failing the statement.
fn abs(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    use arrow::compute::kernels::arity::unary;
    use arrow::datatypes::*;
    let x = &a[0];
    Ok(match x.data_type() {
        DataType::Int8 => Arc::new(unary::<Int8Type, _, Int8Type>(
            x.as_primitive(),
            i8::wrapping_abs,
        )),
        DataType::Int16 => Arc::new(unary::<Int16Type, _, Int16Type>(
            x.as_primitive(),
            i16::wrapping_abs,
        )),
        DataType::Int32 => Arc::new(unary::<Int32Type, _, Int32Type>(
            x.as_primitive(),
            i32::wrapping_abs,
        )),
        DataType::Int64 => Arc::new(unary::<Int64Type, _, Int64Type>(
            x.as_primitive(),
            i64::wrapping_abs,
        )),
        DataType::Float32 => Arc::new(unary::<Float32Type, _, Float32Type>(
            x.as_primitive(),
            f32::abs,
        )),
        DataType::Float64 => Arc::new(unary::<Float64Type, _, Float64Type>(
            x.as_primitive(),
            f64::abs,
        )),
        DataType::Decimal128(p, s) => Arc::new(
            unary::<Decimal128Type, _, Decimal128Type>(x.as_primitive(), i128::wrapping_abs)
                .with_precision_and_scale(*p, *s)?,
        ),
        DataType::Null => x.clone(),
        other => {
            return datafusion::common::plan_err!("ABS of {other}: the argument must be numeric")
        }
    })
}

/// `ROUND(x, r)` of a `DOUBLE`, as Flink computes it:
/// `BigDecimal.valueOf(x).setScale(r, HALF_UP)`, that is on the shortest
/// decimal text of `x` (which Rust's `{:e}` writes, as Java's
/// `Double.toString` does), so `ROUND(1.005, 2)` is 1.01.
pub(crate) fn round_double_udf() -> Arc<ScalarUDF> {
    udf("weir_round_double", 2, DataType::Float64, round_double)
}

fn round_double(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    let x = arrow::compute::cast(&a[0], &DataType::Float64)?;
    let r = arrow::compute::cast(&a[1], &DataType::Int64)?;
    let (x, r) = (
        x.as_primitive::<arrow::datatypes::Float64Type>(),
        r.as_primitive::<arrow::datatypes::Int64Type>(),
    );
    let out: arrow::array::Float64Array = x
        .iter()
        .zip(r.iter())
        .map(|(x, r)| Some(round_half_up(x?, r?.clamp(-400, 400) as i32)))
        .collect();
    Ok(Arc::new(out))
}

/// `x` rounded half up to `r` decimal places of its shortest text.
fn round_half_up(x: f64, r: i32) -> f64 {
    if !x.is_finite() || x == 0.0 {
        return x;
    }
    let text = format!("{:e}", x.abs());
    let Some((mantissa, exp)) = text.split_once('e') else {
        return x;
    };
    let Ok(exp) = exp.parse::<i32>() else {
        return x;
    };
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    // Digit i has the place 10^(exp - i): those down to 10^-r stay.
    let keep = exp + r + 1;
    if keep >= digits.len() as i32 {
        return x;
    }
    let (kept, next) = if keep < 0 {
        (&digits[..0], b'0')
    } else {
        (&digits[..keep as usize], digits[keep as usize])
    };
    let mut kept: Vec<u8> = kept.to_vec();
    if next >= b'5' {
        let mut i = kept.len();
        loop {
            if i == 0 {
                kept.insert(0, b'1');
                break;
            }
            i -= 1;
            if kept[i] == b'9' {
                kept[i] = b'0';
            } else {
                kept[i] += 1;
                break;
            }
        }
    }
    if kept.is_empty() {
        return 0.0;
    }
    let text = format!("{}e{}", String::from_utf8_lossy(&kept), -r);
    let v: f64 = text.parse().unwrap_or(x.abs());
    if x < 0.0 {
        -v
    } else {
        v
    }
}

/// The names `INET_ATON`, `INET_NTOA`, and `ENCODE` and `DECODE` with a
/// character set, are rewritten to.
pub(crate) const INET_ATON_FN: &str = "weir_inet_aton";
pub(crate) const INET_NTOA_FN: &str = "weir_inet_ntoa";
pub(crate) const ENCODE_FN: &str = "weir_encode";
pub(crate) const DECODE_FN: &str = "weir_decode";

/// `INET_ATON('a.b.c.d')`: an IPv4 address as a number; as in MySQL and
/// Flink, fewer parts give the last one the remaining bytes (`'1.2.3'` is
/// 1.2.0.3). NULL for anything else.
fn inet_aton(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    fn parse(s: &str) -> Option<i64> {
        let parts: Vec<&str> = s.split('.').collect();
        if parts.len() > 4 {
            return None;
        }
        let mut n: i64 = 0;
        for (i, p) in parts.iter().enumerate() {
            if p.is_empty() || p.len() > 10 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let v: i64 = p.parse().ok()?;
            let last = i + 1 == parts.len();
            let bits = if last { 8 * (4 - i as u32) } else { 8 };
            if v >= 1i64 << bits {
                return None;
            }
            n = if last { (n << bits) | v } else { (n << 8) | v };
        }
        Some(n)
    }
    let s = strings(&a[0])?;
    let out: arrow::array::Int64Array = s.iter().map(|v| v.and_then(parse)).collect();
    Ok(Arc::new(out))
}

/// `INET_NTOA(n)`: a number in [0, 2^32) as a dotted IPv4 address; NULL
/// outside.
fn inet_ntoa(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    let n = arrow::compute::cast(&a[0], &DataType::Int64)?;
    let n = n.as_primitive::<arrow::datatypes::Int64Type>();
    let out: StringArray = n
        .iter()
        .map(|v| {
            let v = u32::try_from(v?).ok()?;
            Some(std::net::Ipv4Addr::from(v).to_string())
        })
        .collect();
    Ok(Arc::new(out))
}

/// A Java character set Flink's `ENCODE` and `DECODE` take.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Charset {
    Ascii,
    Latin1,
    Utf8,
    Utf16Be,
    Utf16Le,
    /// `UTF-16`: big-endian with a byte-order mark when encoding; the mark
    /// read (big-endian without one) when decoding.
    Utf16,
}

/// The character set `name` names, or a message that says which
/// `ENCODE` and `DECODE` take.
pub(crate) fn check_charset(name: &str) -> Result<Charset, String> {
    Ok(match name.to_ascii_uppercase().as_str() {
        "US-ASCII" | "ASCII" => Charset::Ascii,
        "ISO-8859-1" | "LATIN1" => Charset::Latin1,
        "UTF-8" | "UTF8" => Charset::Utf8,
        "UTF-16BE" => Charset::Utf16Be,
        "UTF-16LE" => Charset::Utf16Le,
        "UTF-16" => Charset::Utf16,
        other => {
            return Err(format!(
                "the character set '{other}' is not one of US-ASCII, ISO-8859-1, UTF-8, UTF-16BE, UTF-16LE, UTF-16"
            ))
        }
    })
}

/// The one character set a call names (a literal).
fn charset_of(a: &ArrayRef) -> DfResult<Option<Charset>> {
    let names = strings(a)?;
    match names.iter().flatten().next() {
        Some(n) => check_charset(n)
            .map(Some)
            .map_err(datafusion::common::DataFusionError::Plan),
        None => Ok(None),
    }
}

/// `ENCODE(text, charset)`: the text's bytes in the character set (a
/// character it cannot hold is `?`, as in Java).
fn encode_charset(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    let text = strings(&a[0])?;
    let cs = charset_of(&a[1])?;
    let out: arrow::array::BinaryArray = text
        .iter()
        .map(|t| {
            let (t, cs) = (t?, cs?);
            Some(match cs {
                Charset::Ascii => t
                    .chars()
                    .map(|c| if c.is_ascii() { c as u8 } else { b'?' })
                    .collect(),
                Charset::Latin1 => t
                    .chars()
                    .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
                    .collect(),
                Charset::Utf8 => t.as_bytes().to_vec(),
                Charset::Utf16Be => t.encode_utf16().flat_map(u16::to_be_bytes).collect(),
                Charset::Utf16Le => t.encode_utf16().flat_map(u16::to_le_bytes).collect(),
                Charset::Utf16 => [0xFE, 0xFF]
                    .into_iter()
                    .chain(t.encode_utf16().flat_map(u16::to_be_bytes))
                    .collect::<Vec<u8>>(),
            })
        })
        .collect();
    Ok(Arc::new(out))
}

/// `DECODE(bytes, charset)`: the text the bytes are in the character set
/// (bytes that are not are U+FFFD, as in Java).
fn decode_charset(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    let bytes = bytes_of(&a[0])?;
    let cs = charset_of(&a[1])?;
    let utf16 = |b: &[u8], big: bool| {
        let units: Vec<u16> = b
            .chunks(2)
            .map(|c| match (c, big) {
                ([x, y], true) => u16::from_be_bytes([*x, *y]),
                ([x, y], false) => u16::from_le_bytes([*x, *y]),
                _ => 0xFFFD,
            })
            .collect();
        String::from_utf16_lossy(&units)
    };
    let out: StringArray = bytes
        .into_iter()
        .map(|b| {
            let (b, cs) = (b?, cs?);
            Some(match cs {
                Charset::Ascii => b
                    .iter()
                    .map(|x| if x.is_ascii() { *x as char } else { '\u{FFFD}' })
                    .collect(),
                Charset::Latin1 => b.iter().map(|x| *x as char).collect(),
                Charset::Utf8 => String::from_utf8_lossy(&b).into_owned(),
                Charset::Utf16Be => utf16(&b, true),
                Charset::Utf16Le => utf16(&b, false),
                Charset::Utf16 => match b.as_slice() {
                    [0xFE, 0xFF, rest @ ..] => utf16(rest, true),
                    [0xFF, 0xFE, rest @ ..] => utf16(rest, false),
                    rest => utf16(rest, true),
                },
            })
        })
        .collect();
    Ok(Arc::new(out))
}

/// Flink's `REGEXP_EXTRACT_ALL(text, regex [, group])`: the `group`th
/// group (1 unless given; 0 is the whole match) of every match, in order;
/// NULL when the pattern does not compile or has no such group.
fn regexp_extract_all(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    use arrow::array::{ListBuilder, StringBuilder};
    let text = strings(&a[0])?;
    let pattern = strings(&a[1])?;
    let group = match a.get(2) {
        Some(g) => Some(arrow::compute::cast(g, &DataType::Int64)?),
        None => None,
    };
    let mut out = ListBuilder::new(StringBuilder::new());
    let mut compiled: Option<(String, Option<regex::Regex>)> = None;
    for i in 0..text.len() {
        let g = match &group {
            Some(g) => {
                let g = g.as_primitive::<arrow::datatypes::Int64Type>();
                (!g.is_null(i)).then(|| g.value(i))
            }
            None => Some(1),
        };
        let (Some(g), false, false) = (g, text.is_null(i), pattern.is_null(i)) else {
            out.append_null();
            continue;
        };
        let p = pattern.value(i);
        if compiled.as_ref().map(|(q, _)| q.as_str()) != Some(p) {
            compiled = Some((p.to_string(), regex::Regex::new(p).ok()));
        }
        let re = compiled.as_ref().and_then(|(_, r)| r.as_ref());
        let Some((re, g)) = re.zip(usize::try_from(g).ok()) else {
            out.append_null();
            continue;
        };
        if g >= re.captures_len() {
            out.append_null();
            continue;
        }
        for c in re.captures_iter(text.value(i)) {
            out.values().append_option(c.get(g).map(|m| m.as_str()));
        }
        out.append(true);
    }
    Ok(Arc::new(out.finish()))
}

/// The type of a function whose arguments and result have one type: the
/// first argument's that is not an untyped NULL.
fn same_type(args: &[DataType]) -> DataType {
    args.iter()
        .find(|t| **t != DataType::Null)
        .or(args.first())
        .cloned()
        .unwrap_or(DataType::Null)
}

/// Flink's `MAP_UNION(m1, m2, ...)`: the entries of all maps, a later
/// map's value winning for a key; NULL when any map is NULL.
fn map_union(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    use arrow::array::{MapArray, StructArray};
    use arrow::buffer::{NullBuffer, OffsetBuffer};
    use arrow::row::{RowConverter, SortField};
    let target = same_type(&a.iter().map(|x| x.data_type().clone()).collect::<Vec<_>>());
    if a.iter().any(|x| x.data_type() == &DataType::Null) {
        return Ok(arrow::array::new_null_array(&target, a[0].len()));
    }
    let a = a
        .iter()
        .map(|x| arrow::compute::cast(x, &target))
        .collect::<Result<Vec<_>, _>>()?;
    let DataType::Map(field, sorted) = a[0].data_type() else {
        return datafusion::common::exec_err!("MAP_UNION takes maps, not {}", a[0].data_type());
    };
    let DataType::Struct(kv) = field.data_type() else {
        return datafusion::common::exec_err!("a map's entries are not key-value pairs");
    };
    let maps: Vec<&MapArray> = a.iter().map(|m| m.as_map()).collect();
    let keys = RowConverter::new(vec![SortField::new(kv[0].data_type().clone())])?;
    let key_rows = maps
        .iter()
        .map(|m| keys.convert_columns(&[m.keys().clone()]))
        .collect::<Result<Vec<_>, _>>()?;
    let mut take: Vec<(usize, usize)> = vec![];
    let mut offsets = vec![0i32];
    let mut valid = vec![];
    for i in 0..a[0].len() {
        let null = maps.iter().any(|m| m.is_null(i));
        if !null {
            let mut at = std::collections::HashMap::new();
            for (m, map) in maps.iter().enumerate() {
                let o = map.value_offsets();
                for j in o[i] as usize..o[i + 1] as usize {
                    match at.entry(key_rows[m].row(j)) {
                        std::collections::hash_map::Entry::Occupied(e) => take[*e.get()] = (m, j),
                        std::collections::hash_map::Entry::Vacant(e) => {
                            e.insert(take.len());
                            take.push((m, j));
                        }
                    }
                }
            }
        }
        valid.push(!null);
        offsets.push(i32::try_from(take.len()).map_err(|_| {
            datafusion::error::DataFusionError::Execution(
                "MAP_UNION's result holds more than 2^31 entries".into(),
            )
        })?);
    }
    let column = |f: fn(&MapArray) -> &ArrayRef| -> DfResult<ArrayRef> {
        let parts: Vec<&dyn Array> = maps.iter().map(|m| f(m).as_ref()).collect();
        Ok(arrow::compute::interleave(&parts, &take)?)
    };
    let entries = StructArray::try_new(
        kv.clone(),
        vec![column(MapArray::keys)?, column(MapArray::values)?],
        None,
    )?;
    Ok(Arc::new(MapArray::try_new(
        field.clone(),
        OffsetBuffer::new(offsets.into()),
        entries,
        Some(NullBuffer::from(valid)),
        *sorted,
    )?))
}

/// `MAP<STRING, STRING>` as Arrow's `MapBuilder` makes it.
fn string_map_type() -> DataType {
    let entries = arrow::datatypes::Field::new(
        "entries",
        DataType::Struct(
            vec![
                arrow::datatypes::Field::new("keys", DataType::Utf8, false),
                arrow::datatypes::Field::new("values", DataType::Utf8, true),
            ]
            .into(),
        ),
        false,
    );
    DataType::Map(Arc::new(entries), false)
}

/// Java's `String.split(regex)`: trailing empty pieces are dropped.
fn java_split<'a>(text: &'a str, re: &regex::Regex, limit: Option<usize>) -> Vec<&'a str> {
    let mut parts: Vec<&str> = match limit {
        Some(n) => re.splitn(text, n).collect(),
        None => re.split(text).collect(),
    };
    // A zero-width match at the start gives no leading empty piece.
    if parts.len() > 1 && parts[0].is_empty() && re.find(text).is_some_and(|m| m.end() == 0) {
        parts.remove(0);
    }
    if limit.is_none() {
        while parts.last().is_some_and(|p| p.is_empty()) {
            parts.pop();
        }
    }
    parts
}

/// `STR_TO_MAP(text [, listDelimiter, keyValueDelimiter])`: `text` split
/// into pairs at `listDelimiter` (default `,`) and each pair into key and
/// value at the first `keyValueDelimiter` (default `=`), both regular
/// expressions as in Java's `String.split`. A pair without the delimiter
/// maps its whole text to NULL; a repeated key keeps its last value (as
/// Flink's `HashMap`); empty text is an empty map; a NULL argument or a
/// delimiter that is not a valid regular expression gives NULL.
fn str_to_map(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    use arrow::array::{MapBuilder, StringBuilder};
    let text = strings(&a[0])?;
    let (lists, kvs) = match a.len() {
        3 => (Some(strings(&a[1])?), Some(strings(&a[2])?)),
        _ => (None, None),
    };
    let mut b = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    // The regular expressions of the last row's delimiters, kept while
    // they repeat (`None`: not valid).
    type Delimiters = ((String, String), Option<(regex::Regex, regex::Regex)>);
    let mut cached: Option<Delimiters> = None;
    for i in 0..text.len() {
        let list = lists
            .as_ref()
            .map_or(Some(","), |l| l.is_valid(i).then(|| l.value(i)));
        let kv = kvs
            .as_ref()
            .map_or(Some("="), |k| k.is_valid(i).then(|| k.value(i)));
        let (Some(list), Some(kv), true) = (list, kv, text.is_valid(i)) else {
            b.append(false)?;
            continue;
        };
        let key = (list.to_string(), kv.to_string());
        if cached.as_ref().is_none_or(|(k, _)| *k != key) {
            let res = regex::Regex::new(list).ok().zip(regex::Regex::new(kv).ok());
            cached = Some((key, res));
        }
        let Some((_, Some((list_re, kv_re)))) = &cached else {
            b.append(false)?;
            continue;
        };
        let t = text.value(i);
        let mut pairs: Vec<(&str, Option<&str>)> = vec![];
        if !t.is_empty() {
            for pair in java_split(t, list_re, None) {
                let kv = java_split(pair, kv_re, Some(2));
                let entry = match kv.as_slice() {
                    [k, v] => (*k, Some(*v)),
                    _ => (pair, None),
                };
                match pairs.iter_mut().find(|(k, _)| *k == entry.0) {
                    Some(p) => p.1 = entry.1,
                    None => pairs.push(entry),
                }
            }
        }
        for (k, v) in pairs {
            b.keys().append_value(k);
            b.values().append_option(v);
        }
        b.append(true)?;
    }
    Ok(Arc::new(b.finish()))
}

/// `a` as text (numbers, booleans and dates by Arrow's cast).
fn strings(a: &ArrayRef) -> DfResult<StringArray> {
    let s = arrow::compute::cast(a, &DataType::Utf8)?;
    Ok(s.as_string::<i32>().clone())
}

/// Each value's bytes: a string's UTF-8, a binary's own.
fn bytes_of(a: &ArrayRef) -> DfResult<Vec<Option<Vec<u8>>>> {
    Ok(match a.data_type() {
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            let b = arrow::compute::cast(a, &DataType::Binary)?;
            let b = b.as_binary::<i32>();
            (0..b.len())
                .map(|i| (!b.is_null(i)).then(|| b.value(i).to_vec()))
                .collect()
        }
        _ => {
            let s = strings(a)?;
            (0..s.len())
                .map(|i| (!s.is_null(i)).then(|| s.value(i).as_bytes().to_vec()))
                .collect()
        }
    })
}

fn map_bytes(a: &ArrayRef, f: impl Fn(&[u8]) -> Option<String>) -> DfResult<ArrayRef> {
    let out: StringArray = bytes_of(a)?
        .into_iter()
        .map(|v| v.and_then(|b| f(&b)))
        .collect();
    Ok(Arc::new(out))
}

/// A test of text that is FALSE, not NULL, for NULL (as Flink's
/// `IS_ALPHA`, `IS_DIGIT` and `IS_DECIMAL`).
fn test_str(a: &ArrayRef, f: impl Fn(&str) -> bool) -> DfResult<ArrayRef> {
    let s = strings(a)?;
    let out: BooleanArray = (0..s.len())
        .map(|i| Some(!s.is_null(i) && f(s.value(i))))
        .collect();
    Ok(Arc::new(out))
}

fn hex_upper(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

fn sha1(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    map_bytes(&a[0], |b| {
        let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, b);
        Some(d.as_ref().iter().map(|x| format!("{x:02x}")).collect())
    })
}

fn is_integer(t: &DataType) -> bool {
    t.is_integer()
}

/// Flink's `HEX`: a number's two's-complement digits, a string's bytes.
fn hex(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    if is_integer(a[0].data_type()) {
        let n = arrow::compute::cast(&a[0], &DataType::Int64)?;
        let n = n.as_primitive::<arrow::datatypes::Int64Type>();
        let out: StringArray = n.iter().map(|v| v.map(|v| format!("{v:X}"))).collect();
        return Ok(Arc::new(out));
    }
    map_bytes(&a[0], |b| Some(hex_upper(b)))
}

/// Flink's `BIN`: a BIGINT's two's-complement binary digits.
fn bin(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    let n = arrow::compute::cast(&a[0], &DataType::Int64)?;
    let n = n.as_primitive::<arrow::datatypes::Int64Type>();
    let out: StringArray = n.iter().map(|v| v.map(|v| format!("{v:b}"))).collect();
    Ok(Arc::new(out))
}

fn to_base64(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    map_bytes(&a[0], |b| {
        Some(base64::engine::general_purpose::STANDARD.encode(b))
    })
}

/// Flink's `FROM_BASE64` (its text; NULL when it is not base64 or not
/// UTF-8).
fn from_base64(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    map_bytes(&a[0], |b| {
        let raw = base64::engine::general_purpose::STANDARD.decode(b).ok()?;
        String::from_utf8(raw).ok()
    })
}

/// Java's `Character.isLetter`, as Flink's IS_ALPHA: a letter of any script
/// (general categories Lu, Ll, Lt, Lm and Lo).
fn is_alpha(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    use unicode_general_category::{get_general_category, GeneralCategory as G};
    test_str(&a[0], |s| {
        !s.is_empty()
            && s.chars().all(|c| {
                matches!(
                    get_general_category(c),
                    G::UppercaseLetter
                        | G::LowercaseLetter
                        | G::TitlecaseLetter
                        | G::ModifierLetter
                        | G::OtherLetter
                )
            })
    })
}

/// Java's `Character.isDigit`, as Flink's IS_DIGIT: a decimal digit of any
/// script (general category Nd), not other numerals such as '½'.
fn is_digit(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    use unicode_general_category::{get_general_category, GeneralCategory};
    test_str(&a[0], |s| {
        !s.is_empty()
            && s.chars()
                .all(|c| get_general_category(c) == GeneralCategory::DecimalNumber)
    })
}

fn is_decimal(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    test_str(&a[0], |s| {
        let t = s.trim();
        !t.is_empty() && t.parse::<f64>().is_ok_and(f64::is_finite)
    })
}

// ---- CEIL and FLOOR -------------------------------------------------------

/// The functions `CEIL(x)` and `FLOOR(x)` are planned as.
pub(crate) const CEIL_FN: &str = "weir_ceil";
pub(crate) const FLOOR_FN: &str = "weir_floor";

/// `CEIL`/`FLOOR` as Flink types them: a `DECIMAL(p, s)` gives a
/// `DECIMAL(p - s + 1, 0)` (at least 1 digit), an integer itself, anything
/// else a `DOUBLE`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Round {
    name: &'static str,
    up: bool,
    signature: Signature,
}

fn rounded_type(t: &DataType) -> DataType {
    match t {
        DataType::Decimal128(p, s) if *s > 0 => {
            DataType::Decimal128(((*p as i16 - *s as i16 + 1).clamp(1, 38)) as u8, 0)
        }
        DataType::Decimal128(p, s) => DataType::Decimal128(*p, *s),
        t if t.is_integer() => t.clone(),
        _ => DataType::Float64,
    }
}

impl ScalarUDFImpl for Round {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        Ok(rounded_type(&args[0]))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let a = ColumnarValue::values_to_arrays(&args.args)?.remove(0);
        let out: ArrayRef = match a.data_type() {
            DataType::Decimal128(p, s) if *s > 0 => {
                let d = a.as_primitive::<arrow::datatypes::Decimal128Type>();
                let unit = 10i128.pow(*s as u32);
                let up = self.up;
                let r: arrow::array::Decimal128Array = d.unary(|v| {
                    let (q, r) = (v / unit, v % unit);
                    if up && r > 0 {
                        q + 1
                    } else if !up && r < 0 {
                        q - 1
                    } else {
                        q
                    }
                });
                let DataType::Decimal128(p2, s2) = rounded_type(&DataType::Decimal128(*p, *s))
                else {
                    unreachable!("a decimal rounds to a decimal")
                };
                Arc::new(r.with_precision_and_scale(p2, s2)?)
            }
            t if t.is_integer() || matches!(t, DataType::Decimal128(..)) => a,
            _ => {
                let f = arrow::compute::cast(&a, &DataType::Float64)?;
                let f = f.as_primitive::<arrow::datatypes::Float64Type>();
                let up = self.up;
                Arc::new(f.unary::<_, arrow::datatypes::Float64Type>(|v| {
                    if up {
                        v.ceil()
                    } else {
                        v.floor()
                    }
                }))
            }
        };
        if scalar {
            return Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::try_from_array(&out, 0)?,
            ));
        }
        Ok(ColumnarValue::Array(out))
    }
}

fn round_udf(name: &'static str, up: bool) -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::from(Round {
        name,
        up,
        signature: Signature::any(1, Volatility::Immutable),
    }))
}

// ---- URLs -----------------------------------------------------------------

/// Java's `URLEncoder` (as Flink's `URL_ENCODE`): letters, digits and
/// `.-*_` stay, a space is `+`, every other byte of the UTF-8 is `%XX`.
/// Flink's `POWER(x, y)`: Java's `Math.pow` of two `DOUBLE`s, which is
/// IEEE 754's (`POWER(0, -1)` is Infinity; DataFusion's `power` fails the
/// statement on it, as PostgreSQL's does).
fn power(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    use arrow::datatypes::Float64Type;
    let x = arrow::compute::cast(&a[0], &DataType::Float64)?;
    let y = arrow::compute::cast(&a[1], &DataType::Float64)?;
    let out: arrow::array::Float64Array = arrow::compute::binary(
        x.as_primitive::<Float64Type>(),
        y.as_primitive::<Float64Type>(),
        f64::powf,
    )?;
    Ok(Arc::new(out))
}

fn url_encode(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    map_bytes(&a[0], |b| {
        let mut out = String::with_capacity(b.len());
        for &c in b {
            match c {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => {
                    out.push(c as char)
                }
                b' ' => out.push('+'),
                c => out.push_str(&format!("%{c:02X}")),
            }
        }
        Some(out)
    })
}

/// Java's `URLDecoder`: `+` is a space, `%XX` a byte; NULL when malformed.
fn url_decode(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    map_bytes(&a[0], |b| {
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                    out.push(u8::from_str_radix(hex, 16).ok()?);
                    i += 2;
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8(out).ok()
    })
}

/// `CONVERT_TZ(text, from, to)`: a `yyyy-MM-dd HH:mm:ss` wall-clock time
/// in zone `from` as the wall-clock time in zone `to`, in the same form;
/// NULL when a zone or the time cannot be read.
fn convert_tz(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    let (ts, from, to) = (strings(&a[0])?, strings(&a[1])?, strings(&a[2])?);
    // A region (`America/New_York`) or an offset, as Java's zone ids
    // write one (`GMT+08:00`, `UTC-5`, `+05:30`).
    let zone = |z: &str| -> Option<arrow::array::timezone::Tz> {
        weir_catalog::parse_time_zone(z).ok()?.parse().ok()
    };
    let out: StringArray = (0..ts.len())
        .map(|i| {
            if ts.is_null(i) || from.is_null(i) || to.is_null(i) {
                return None;
            }
            let t = chrono::NaiveDateTime::parse_from_str(ts.value(i).trim(), "%Y-%m-%d %H:%M:%S")
                .ok()?;
            let (from, to) = (zone(from.value(i))?, zone(to.value(i))?);
            // A time in a gap (a clock moved forward) is read with the
            // offset before the gap, as Java's `atZone` does; a time that
            // comes twice (a clock moved back) as the second, standard
            // one, as Flink's CONVERT_TZ (`java.util.TimeZone`) does.
            let local = t.and_local_timezone(from).latest().or_else(|| {
                let before = t - chrono::Duration::hours(1);
                before
                    .and_local_timezone(from)
                    .earliest()
                    .map(|b| b + chrono::Duration::hours(1))
            })?;
            Some(
                local
                    .with_timezone(&to)
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string(),
            )
        })
        .collect();
    Ok(Arc::new(out))
}

/// `PRINTF(format, args...)`, Java's `String.format`: `%s`, `%d`, `%f`,
/// `%e`, `%x`, `%o`, `%c`, `%b`, `%%`, `%n`, with flags (`-`, `0`, `+`,
/// space, `,`), width and precision. A value goes in as Flink's text of it
/// (`%d` and `%f` read numbers); a format it cannot apply gives NULL.
fn printf(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    let Some((fmt, args)) = a.split_first() else {
        return Ok(Arc::new(StringArray::from(vec![None::<&str>])));
    };
    let fmt = strings(fmt)?;
    let texts = args
        .iter()
        .map(crate::flink_text::flink_strings)
        .collect::<DfResult<Vec<_>>>()?;
    let out = (0..fmt.len())
        .map(|i| {
            if fmt.is_null(i) {
                return Ok(None);
            }
            let values: Vec<Option<&str>> = texts
                .iter()
                .map(|t| (!t.is_null(i)).then(|| t.value(i)))
                .collect();
            java_format(fmt.value(i), &values)
        })
        .collect::<DfResult<StringArray>>()?;
    Ok(Arc::new(out))
}

/// Java's `String.format` of `values` (each as text, or NULL); `None`
/// when the format cannot apply. A width or precision past
/// [`crate::bounded::MAX_VALUE_BYTES`] fails, as other functions that size
/// their output from an argument do.
fn java_format(fmt: &str, values: &[Option<&str>]) -> DfResult<Option<String>> {
    let too_big = |what: &str, n: &str| {
        datafusion::common::exec_datafusion_err!(
            "PRINTF: a {what} of {n} would make a value of more than {} bytes; Weir makes values of at most {} bytes (16 MiB)",
            crate::bounded::MAX_VALUE_BYTES,
            crate::bounded::MAX_VALUE_BYTES
        )
    };
    let limit = crate::bounded::MAX_VALUE_BYTES as usize;
    java_format_within(fmt, values, limit).map_err(|(what, n)| too_big(what, &n))
}

/// [`java_format`], with `Err((what, n))` for a width or precision past
/// `limit`.
fn java_format_within(
    fmt: &str,
    values: &[Option<&str>],
    limit: usize,
) -> Result<Option<String>, (&'static str, String)> {
    macro_rules! bail {
        () => {
            return Ok(None)
        };
    }
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    let mut next = 0;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut flags = String::new();
        while let Some(&f) = chars.peek() {
            if "-0+ ,#".contains(f) {
                flags.push(f);
                chars.next();
            } else {
                break;
            }
        }
        let mut width = String::new();
        while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            width.push(d);
            chars.next();
        }
        let mut precision: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                p.push(d);
                chars.next();
            }
            let Ok(p) = p.parse::<usize>() else {
                return Err(("precision", p));
            };
            if p > limit {
                return Err(("precision", p.to_string()));
            }
            precision = Some(p);
        }
        let Some(conv) = chars.next() else { bail!() };
        let body = match conv {
            '%' => "%".to_string(),
            'n' => "\n".to_string(),
            _ => {
                let Some(v) = values.get(next).copied() else {
                    bail!()
                };
                next += 1;
                match conv {
                    's' | 'S' => {
                        let mut t = v.unwrap_or("null").to_string();
                        if let Some(p) = precision {
                            t = t.chars().take(p).collect();
                        }
                        if conv == 'S' {
                            t = t.to_uppercase();
                        }
                        t
                    }
                    'b' | 'B' => v.map_or("false".to_string(), |t| {
                        (!t.eq_ignore_ascii_case("false")).to_string()
                    }),
                    'c' => match v.and_then(|t| t.chars().next()) {
                        Some(c) => c.to_string(),
                        None => bail!(),
                    },
                    'd' | 'x' | 'X' | 'o' => {
                        let Some(t) = v else {
                            out.push_str("null");
                            continue;
                        };
                        let Ok(n) = t.trim().parse::<i128>() else {
                            bail!()
                        };
                        let digits = match conv {
                            'd' => {
                                let mut d = n.unsigned_abs().to_string();
                                if flags.contains(',') {
                                    d = group_thousands(&d);
                                }
                                d
                            }
                            'x' => format!("{:x}", n),
                            'X' => format!("{:X}", n),
                            _ => format!("{:o}", n),
                        };
                        signed(n < 0 && conv == 'd', &flags, digits)
                    }
                    'f' | 'e' | 'E' => {
                        let Some(t) = v else {
                            out.push_str("null");
                            continue;
                        };
                        let Ok(x) = t.trim().parse::<f64>() else {
                            bail!()
                        };
                        let p = precision.unwrap_or(6);
                        let digits = match conv {
                            'f' => {
                                let d = format!("{:.*}", p, x.abs());
                                if flags.contains(',') {
                                    let (int, frac) = d.split_once('.').unwrap_or((&d, ""));
                                    let int = group_thousands(int);
                                    if frac.is_empty() {
                                        int
                                    } else {
                                        format!("{int}.{frac}")
                                    }
                                } else {
                                    d
                                }
                            }
                            _ => {
                                // Java: 1.500000e+00.
                                let d = format!("{:.*e}", p, x.abs());
                                let Some((m, e)) = d.split_once('e') else {
                                    bail!()
                                };
                                let Ok(e) = e.parse::<i32>() else { bail!() };
                                let d =
                                    format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
                                if conv == 'E' {
                                    d.to_uppercase()
                                } else {
                                    d
                                }
                            }
                        };
                        signed(x.is_sign_negative() && x != 0.0, &flags, digits)
                    }
                    _ => bail!(),
                }
            }
        };
        let width: usize = if width.is_empty() {
            0
        } else {
            match width.parse::<usize>() {
                Ok(w) if w <= limit => w,
                _ => return Err(("width", width)),
            }
        };
        let len = body.chars().count();
        if len >= width {
            out.push_str(&body);
        } else if flags.contains('-') {
            out.push_str(&body);
            out.push_str(&" ".repeat(width - len));
        } else if flags.contains('0') && "dxXofeE".contains(conv) {
            let (sign, rest) = match body.chars().next() {
                Some(s @ ('-' | '+' | ' ')) => (s.to_string(), body[1..].to_string()),
                _ => (String::new(), body.clone()),
            };
            out.push_str(&sign);
            out.push_str(&"0".repeat(width - len));
            out.push_str(&rest);
        } else {
            out.push_str(&" ".repeat(width - len));
            out.push_str(&body);
        }
    }
    Ok(Some(out))
}

fn group_thousands(digits: &str) -> String {
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn signed(negative: bool, flags: &str, digits: String) -> String {
    if negative {
        format!("-{digits}")
    } else if flags.contains('+') {
        format!("+{digits}")
    } else if flags.contains(' ') {
        format!(" {digits}")
    } else {
        digits
    }
}

/// `PARSE_URL(url, part[, key])`: `HOST`, `PATH`, `QUERY` (or one query
/// parameter's value), `REF`, `PROTOCOL`, `FILE`, `AUTHORITY`, `USERINFO`,
/// of the text as written (Flink reads it with `java.net.URL`, which keeps
/// case and escapes: `HTTPS://A.COM/%41` has host `A.COM` and path `/%41`).
fn parse_url(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    let urls = strings(&a[0])?;
    let parts = strings(&a[1])?;
    let keys = a.get(2).map(strings).transpose()?;
    let mut key_regex: Option<(String, Option<regex::Regex>)> = None;
    let out: StringArray = (0..urls.len())
        .map(|i| {
            if urls.is_null(i) || parts.is_null(i) {
                return None;
            }
            let u = JavaUrl::parse(urls.value(i))?;
            let part = parts.value(i).to_ascii_uppercase();
            match (part.as_str(), &keys) {
                ("QUERY", Some(k)) => {
                    if k.is_null(i) {
                        return None;
                    }
                    // Flink finds `(&|^)key=([^&]*)` with the key as a
                    // regular expression, and does not decode the value.
                    let k = k.value(i);
                    if key_regex.as_ref().map(|(q, _)| q.as_str()) != Some(k) {
                        let re = regex::Regex::new(&format!("(?:&|^)(?:{k})=([^&]*)")).ok();
                        key_regex = Some((k.to_string(), re));
                    }
                    let re = key_regex.as_ref()?.1.as_ref()?;
                    let c = re.captures(u.query?)?;
                    Some(c.get(1)?.as_str().to_string())
                }
                ("QUERY", None) => u.query.map(str::to_string),
                ("HOST", _) => Some(u.host.to_string()),
                ("PATH", _) => Some(u.path.to_string()),
                ("REF", _) => u.fragment.map(str::to_string),
                ("PROTOCOL", _) => Some(u.protocol),
                ("FILE", _) => Some(match u.query {
                    Some(q) => format!("{}?{q}", u.path),
                    None => u.path.to_string(),
                }),
                ("AUTHORITY", _) => u.authority.map(str::to_string),
                ("USERINFO", _) => u.user_info.map(str::to_string),
                _ => None,
            }
        })
        .collect();
    Ok(Arc::new(out))
}

/// A URL's parts as `java.net.URL` splits them: no normalisation, no
/// decoding; `None` where it throws (no or unknown protocol, a port that
/// is not a number).
struct JavaUrl<'a> {
    protocol: String,
    authority: Option<&'a str>,
    user_info: Option<&'a str>,
    host: &'a str,
    path: std::borrow::Cow<'a, str>,
    query: Option<&'a str>,
    fragment: Option<&'a str>,
}

impl<'a> JavaUrl<'a> {
    fn parse(text: &'a str) -> Option<Self> {
        let spec = text.trim_matches(|c: char| c <= ' ');
        let spec = match spec.get(..4) {
            Some(p) if p.eq_ignore_ascii_case("url:") => &spec[4..],
            _ => spec,
        };
        let colon = spec.find([':', '/', '?', '#'])?;
        let (scheme, rest) = (&spec[..colon], spec[colon..].strip_prefix(':')?);
        let valid = scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-'));
        let protocol = scheme.to_ascii_lowercase();
        if !valid
            || !matches!(
                protocol.as_str(),
                "http" | "https" | "ftp" | "file" | "jar" | "mailto" | "jrt"
            )
        {
            return None;
        }
        let (rest, fragment) = match rest.split_once('#') {
            Some((r, f)) => (r, Some(f)),
            None => (rest, None),
        };
        if protocol == "mailto" {
            return Some(JavaUrl {
                protocol,
                authority: None,
                user_info: None,
                host: "",
                path: rest.into(),
                query: None,
                fragment,
            });
        }
        let (mut authority, mut user_info, mut host) = (None, None, "");
        let mut after = rest;
        if let Some(r) = rest.strip_prefix("//") {
            // The authority ends at the first '/', else the first '?'.
            let end = r.find('/').or_else(|| r.find('?')).unwrap_or(r.len());
            let auth = &r[..end];
            after = &r[end..];
            authority = Some(auth);
            let hostport = match auth.split_once('@') {
                Some((_, h)) if h.contains('@') => None,
                Some((u, h)) => {
                    user_info = Some(u);
                    Some(h)
                }
                None => Some(auth),
            };
            if let Some(hp) = hostport {
                let (h, port) = if hp.starts_with('[') {
                    let close = hp.find(']')?;
                    (&hp[..=close], hp[close + 1..].strip_prefix(':'))
                } else {
                    match hp.split_once(':') {
                        Some((h, p)) => (h, Some(p)),
                        None => (hp, None),
                    }
                };
                if let Some(p) = port.filter(|p| !p.is_empty()) {
                    p.parse::<u32>().ok()?;
                }
                host = h;
            }
        }
        let (path, query) = match after.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (after, None),
        };
        Some(JavaUrl {
            protocol,
            authority,
            user_info,
            host,
            path: path.into(),
            query,
            fragment,
        })
    }
}

/// `weir_similar_to(text, pattern[, escape])`: `text SIMILAR TO pattern`
/// (the planner writes it so), matched as Flink does (Calcite's
/// `sqlToRegexSimilar`): the whole text, `%` any run of characters
/// (newlines too), `_` any one, regular-expression syntax for the rest
/// (`|`, `*`, `+`, `?`, `{m,n}`, groups, `[...]` and `[:ALPHA:]` classes),
/// a backslash a backslash. DataFusion's `SIMILAR TO` is a regular
/// expression found anywhere in the text. NULL for a pattern that is not
/// one.
fn similar_to(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    let text = strings(&a[0])?;
    let pattern = strings(&a[1])?;
    let escape = a.get(2).map(strings).transpose()?;
    // The last pattern and escape seen, and their regular expression.
    type Compiled = ((String, Option<char>), Option<regex::Regex>);
    let mut compiled: Option<Compiled> = None;
    let out: BooleanArray = (0..text.len())
        .map(|i| {
            if text.is_null(i) || pattern.is_null(i) {
                return None;
            }
            let esc = match &escape {
                Some(e) if e.is_null(i) => return None,
                Some(e) => {
                    let mut cs = e.value(i).chars();
                    match (cs.next(), cs.next()) {
                        (Some(c), None) => Some(c),
                        _ => return None,
                    }
                }
                None => None,
            };
            let key = (pattern.value(i).to_string(), esc);
            if compiled.as_ref().map(|(k, _)| k) != Some(&key) {
                let re = similar_regex(&key.0, esc).and_then(|r| regex::Regex::new(&r).ok());
                compiled = Some((key, re));
            }
            let re = compiled.as_ref()?.1.as_ref()?;
            Some(re.is_match(text.value(i)))
        })
        .collect();
    Ok(Arc::new(out))
}

/// [`REGEXP_REPLACE_FN`]: every match of the pattern replaced by the
/// replacement as it is written (no group references), the matches found
/// as Java's `Matcher.replaceAll` finds them: an empty match right after
/// a match counts (`REGEXP_REPLACE('aaa', 'a*', 'X')` is `XX`, where the
/// `regex` crate's `replace_all` gives `X`). A pattern that does not
/// compile fails the statement, as in Flink.
fn regexp_replace(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    let text = strings(&a[0])?;
    let pattern = strings(&a[1])?;
    let replacement = strings(&a[2])?;
    let mut compiled: Option<(String, regex::Regex)> = None;
    let mut out = arrow::array::StringBuilder::with_capacity(text.len(), text.value_data().len());
    for i in 0..text.len() {
        if text.is_null(i) || pattern.is_null(i) || replacement.is_null(i) {
            out.append_null();
            continue;
        }
        let p = pattern.value(i);
        let re = match &compiled {
            Some((k, re)) if k == p => re,
            _ => {
                let re = regex::Regex::new(p).map_err(|e| {
                    datafusion::common::DataFusionError::Execution(format!(
                        "REGEXP_REPLACE: the pattern '{p}' is not a regular expression: {e}"
                    ))
                })?;
                &compiled.insert((p.to_string(), re)).1
            }
        };
        out.append_value(java_replace_all(re, text.value(i), replacement.value(i)));
    }
    Ok(Arc::new(out.finish()))
}

/// `text` with each match of `re` replaced by `with`, matches found as
/// Java's `Matcher.find` does: the next search starts where the last
/// match ended, one character further when it was empty.
fn java_replace_all(re: &regex::Regex, text: &str, with: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut copied, mut from) = (0, 0);
    while from <= text.len() {
        let Some(m) = re.find_at(text, from) else {
            break;
        };
        out.push_str(&text[copied..m.start()]);
        out.push_str(with);
        copied = m.end();
        from = if m.is_empty() {
            match text[m.end()..].chars().next() {
                Some(c) => m.end() + c.len_utf8(),
                None => break,
            }
        } else {
            m.end()
        };
    }
    out.push_str(&text[copied..]);
    out
}

/// A SQL `SIMILAR TO` pattern as an anchored regular expression, or
/// `None` when an escape is not followed by a special character.
fn similar_regex(pattern: &str, escape: Option<char>) -> Option<String> {
    const SIMILAR_SPECIALS: &str = "[]()|^-+*_%?{}";
    const REGEX_SPECIALS: &str = "[]()|^-+*?{}$\\.";
    let mut out = String::with_capacity(pattern.len() * 2 + 8);
    out.push_str("\\A(?:");
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            let next = chars.next()?;
            if !SIMILAR_SPECIALS.contains(next) && Some(next) != escape {
                return None;
            }
            if REGEX_SPECIALS.contains(next) {
                out.push('\\');
            }
            out.push(next);
            continue;
        }
        match c {
            '_' if !in_class => out.push('.'),
            '%' if !in_class => out.push_str("(?s:.*)"),
            '[' if !in_class => {
                in_class = true;
                out.push('[');
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push_str(")\\z");
    // `[:ALPHA:]` and its siblings, as Calcite spells them, are the POSIX
    // classes the regex crate knows in lower case.
    for class in [
        "ALPHA", "UPPER", "LOWER", "DIGIT", "ALNUM", "SPACE", "PUNCT", "XDIGIT", "CNTRL", "GRAPH",
        "PRINT", "BLANK",
    ] {
        out = out.replace(
            &format!("[:{class}:]"),
            &format!("[:{}:]", class.to_ascii_lowercase()),
        );
    }
    Some(out)
}

// ---- JSON ---------------------------------------------------------------

/// One step of a JSON path: a member, an array element, or every
/// element or member value (`[*]`, `.*`).
enum Step {
    Member(String),
    Index(usize),
    Wildcard,
}

/// The lax JSON path subset users write: `$`, `.name`, `['name']`,
/// `["name"]`, `[n]`, `[*]`, `.*`. `None` for anything else.
fn parse_path(path: &str) -> Option<Vec<Step>> {
    let p = path.trim();
    let p = p.strip_prefix("lax").map(str::trim_start).unwrap_or(p);
    let mut rest = p.strip_prefix('$')?;
    let mut steps = vec![];
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let name = &r[..end];
            if name.is_empty() {
                return None;
            }
            steps.push(match name {
                "*" => Step::Wildcard,
                _ => Step::Member(name.to_string()),
            });
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = r[..end].trim();
            if let Some(q) = inner
                .strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
            {
                steps.push(Step::Member(q.to_string()));
            } else if inner == "*" {
                steps.push(Step::Wildcard);
            } else {
                steps.push(Step::Index(inner.parse().ok()?));
            }
            rest = &r[end + 1..];
        } else {
            return None;
        }
    }
    Some(steps)
}

/// What `steps` lead to in `v`. A path with a wildcard leads to the
/// array of everything it matches, in document order (as Flink's JSON
/// path library gives it); the matches of several wildcards are one flat
/// array.
fn select<'a>(
    v: &'a serde_json::Value,
    steps: &[Step],
) -> Option<std::borrow::Cow<'a, serde_json::Value>> {
    if steps.iter().any(|s| matches!(s, Step::Wildcard)) {
        let mut found = vec![];
        select_all(v, steps, &mut found);
        return Some(std::borrow::Cow::Owned(serde_json::Value::Array(
            found.into_iter().cloned().collect(),
        )));
    }
    steps
        .iter()
        .try_fold(v, |v, s| match s {
            Step::Member(m) => v.as_object()?.get(m),
            Step::Index(i) => v.as_array()?.get(*i),
            Step::Wildcard => None,
        })
        .map(std::borrow::Cow::Borrowed)
}

fn select_all<'a>(v: &'a serde_json::Value, steps: &[Step], out: &mut Vec<&'a serde_json::Value>) {
    let Some((step, rest)) = steps.split_first() else {
        out.push(v);
        return;
    };
    match (step, v) {
        (Step::Member(m), serde_json::Value::Object(o)) => {
            if let Some(x) = o.get(m) {
                select_all(x, rest, out);
            }
        }
        (Step::Index(i), serde_json::Value::Array(a)) => {
            if let Some(x) = a.get(*i) {
                select_all(x, rest, out);
            }
        }
        (Step::Wildcard, serde_json::Value::Array(a)) => {
            for x in a {
                select_all(x, rest, out);
            }
        }
        (Step::Wildcard, serde_json::Value::Object(o)) => {
            for x in o.values() {
                select_all(x, rest, out);
            }
        }
        _ => {}
    }
}

/// Applies `f` to each (document, path) pair that parses; NULL otherwise.
fn with_json<T>(
    a: &[ArrayRef],
    f: impl Fn(&serde_json::Value, &[Step]) -> Option<T>,
) -> DfResult<Vec<Option<T>>> {
    let (docs, paths) = (strings(&a[0])?, strings(&a[1])?);
    Ok((0..docs.len())
        .map(|i| {
            if docs.is_null(i) || paths.is_null(i) {
                return None;
            }
            let doc: serde_json::Value = serde_json::from_str(docs.value(i)).ok()?;
            let steps = parse_path(paths.value(i))?;
            f(&doc, &steps)
        })
        .collect())
}

/// `JSON_VALUE`: the scalar at the path as text; NULL for a missing one, an
/// object or an array. A number is its own text as Java's `BigDecimal`
/// writes it, as in Flink (`1.50` stays `1.50`, `1e2` is `1E+2`).
fn json_value(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    let (docs, paths) = (strings(&a[0])?, strings(&a[1])?);
    let out: StringArray = (0..docs.len())
        .map(|i| {
            if docs.is_null(i) || paths.is_null(i) {
                return None;
            }
            let text = docs.value(i);
            let doc: serde_json::Value = serde_json::from_str(text).ok()?;
            let steps = parse_path(paths.value(i))?;
            match &*select(&doc, &steps)? {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(
                    raw_at(text, &steps)
                        .map(json_number_text)
                        .unwrap_or_else(|| n.to_string()),
                ),
                serde_json::Value::Bool(b) => Some(b.to_string()),
                _ => None,
            }
        })
        .collect();
    Ok(Arc::new(out))
}

/// The text of the value at `steps` (members and indexes) as `doc`
/// writes it; `None` when a step does not lead anywhere. A member named
/// twice is its last value, as in [`serde_json::Value`].
fn raw_at<'a>(doc: &'a str, steps: &[Step]) -> Option<&'a str> {
    use serde_json::value::RawValue;
    let mut raw: &'a RawValue = serde_json::from_str(doc).ok()?;
    for s in steps {
        raw = match s {
            Step::Member(m) => {
                serde_json::from_str::<std::collections::HashMap<String, &'a RawValue>>(raw.get())
                    .ok()?
                    .remove(m)?
            }
            Step::Index(i) => *serde_json::from_str::<Vec<&'a RawValue>>(raw.get())
                .ok()?
                .get(*i)?,
            Step::Wildcard => return None,
        };
    }
    Some(raw.get().trim())
}

/// A JSON number's text as Flink's JSON functions read and write it:
/// an integer as it is (`-0` is `0`), anything with a fraction or an
/// exponent as Java's `new BigDecimal(text).toString()`: `1.50`, `1E+2`,
/// `0.000001`, `1E-7`, `1.0E+3`.
fn json_number_text(text: &str) -> String {
    let (negative, body) = match text.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, text),
    };
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(at) => (&body[..at], Some(&body[at + 1..])),
        None => (body, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if exp.is_none() && fraction.is_empty() {
        let digits = whole.trim_start_matches('0');
        return match (negative, digits.is_empty()) {
            (_, true) => "0".into(),
            (true, false) => format!("-{digits}"),
            (false, false) => digits.into(),
        };
    }
    let Ok(exp) = exp.map_or(Ok(0i64), |e| e.trim_start_matches('+').parse::<i64>()) else {
        return text.into();
    };
    // An exponent beyond what a BigDecimal's scale holds: the text as it is.
    let Some(Ok(scale)) = (fraction.len() as i64).checked_sub(exp).map(i32::try_from) else {
        return text.into();
    };
    let digits = format!("{whole}{fraction}");
    big_decimal_text(negative, &digits, scale)
}

/// Java's `BigDecimal.toString()` of `unscaled × 10^-scale` (`unscaled`
/// in decimal digits, leading zeros allowed): plain when the scale is not
/// negative and the adjusted exponent is at least -6, scientific
/// otherwise. A zero has no sign.
fn big_decimal_text(negative: bool, unscaled: &str, scale: i32) -> String {
    let unscaled = unscaled.trim_start_matches('0');
    let unscaled = if unscaled.is_empty() { "0" } else { unscaled };
    let n = unscaled.len() as i64;
    let adjusted = n - 1 - scale as i64;
    let sign = if negative && unscaled != "0" { "-" } else { "" };
    if scale >= 0 && adjusted >= -6 {
        let s = scale as usize;
        let text = if s == 0 {
            unscaled.to_string()
        } else if unscaled.len() > s {
            let (a, b) = unscaled.split_at(unscaled.len() - s);
            format!("{a}.{b}")
        } else {
            format!("0.{}{unscaled}", "0".repeat(s - unscaled.len()))
        };
        return format!("{sign}{text}");
    }
    let (first, rest) = unscaled.split_at(1);
    let point = if rest.is_empty() {
        String::new()
    } else {
        format!(".{rest}")
    };
    let e_sign = if adjusted > 0 { "+" } else { "" };
    format!("{sign}{first}{point}E{e_sign}{adjusted}")
}

/// The name of [`json_value_status`].
pub(crate) const JSON_VALUE_STATUS_FN: &str = "weir_json_value_status";

/// What `JSON_VALUE(doc, path)` meets, for its `ON EMPTY` and `ON ERROR`
/// clauses: 0 a scalar, 2 an error (the text is not JSON, the path is not
/// one, or it leads nowhere, to JSON `null`, to an object or to an array);
/// NULL when an argument is NULL. As in Flink 2.3 (lax paths), a path
/// that leads nowhere is an error, not empty, so `ON EMPTY` never applies
/// (1 is never given).
fn json_value_status(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    let (docs, paths) = (strings(&a[0])?, strings(&a[1])?);
    let out: arrow::array::Int8Array = (0..docs.len())
        .map(|i| {
            if docs.is_null(i) || paths.is_null(i) {
                return None;
            }
            let Ok(doc) = serde_json::from_str::<serde_json::Value>(docs.value(i)) else {
                return Some(2);
            };
            let Some(steps) = parse_path(paths.value(i)) else {
                return Some(2);
            };
            Some(match select(&doc, &steps).as_deref() {
                None
                | Some(
                    serde_json::Value::Null
                    | serde_json::Value::Object(_)
                    | serde_json::Value::Array(_),
                ) => 2,
                Some(_) => 0,
            })
        })
        .collect();
    Ok(Arc::new(out))
}

/// The names of [`json_query_wrapped`] and [`json_query_status`].
pub(crate) const JSON_QUERY_FN: &str = "weir_json_query";
pub(crate) const JSON_QUERY_STATUS_FN: &str = "weir_json_query_status";

/// What `JSON_QUERY(doc, path, wrapper)` finds at the path, `wrapper` 0
/// for `WITHOUT WRAPPER`, 1 for `WITH [UNCONDITIONAL] WRAPPER` (always
/// wrapped in an array), 2 for `WITH CONDITIONAL WRAPPER` (wrapped unless
/// an array): `Ok(Some(json))`, or `Err(())` for an error: the text is not
/// JSON, the path is not one or leads nowhere or to JSON `null`, or a
/// scalar without a wrapper. As in Flink 2.3 (lax paths) nothing is
/// "empty" (`Ok(None)` is never given).
fn json_query_at(doc: &str, path: &str, wrapper: i64) -> Result<Option<String>, ()> {
    let doc: serde_json::Value = serde_json::from_str(doc).map_err(|_| ())?;
    let steps = parse_path(path).ok_or(())?;
    let found = select(&doc, &steps);
    let v = match found.as_deref() {
        None | Some(serde_json::Value::Null) => return Err(()),
        Some(v) => v,
    };
    let structured = matches!(
        v,
        serde_json::Value::Object(_) | serde_json::Value::Array(_)
    );
    match wrapper {
        0 if structured => Ok(Some(v.to_string())),
        0 => Err(()),
        2 if v.is_array() => Ok(Some(v.to_string())),
        _ => Ok(Some(serde_json::Value::Array(vec![v.clone()]).to_string())),
    }
}

/// Applies `f` to what [`json_query_at`] finds in each row; NULL where an
/// argument is NULL.
fn json_query_rows<T>(
    a: &[ArrayRef],
    f: impl Fn(Result<Option<String>, ()>) -> Option<T>,
) -> DfResult<Vec<Option<T>>> {
    let (docs, paths) = (strings(&a[0])?, strings(&a[1])?);
    let modes = arrow::compute::cast(&a[2], &DataType::Int64)?;
    let modes = modes.as_primitive::<arrow::datatypes::Int64Type>();
    Ok((0..docs.len())
        .map(|i| {
            if docs.is_null(i) || paths.is_null(i) || modes.is_null(i) {
                return None;
            }
            f(json_query_at(docs.value(i), paths.value(i), modes.value(i)))
        })
        .collect())
}

/// `JSON_QUERY` with its wrapper: the JSON at the path, or NULL.
fn json_query_wrapped(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    let out: StringArray = json_query_rows(a, |r| r.ok().flatten())?
        .into_iter()
        .collect();
    Ok(Arc::new(out))
}

/// What `JSON_QUERY` meets, for its `ON EMPTY` and `ON ERROR` clauses: 0
/// a value, 1 nothing, 2 an error (as [`json_value_status`]).
fn json_query_status(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    let out: arrow::array::Int8Array = json_query_rows(a, |r| {
        Some(match r {
            Ok(Some(_)) => 0,
            Ok(None) => 1,
            Err(()) => 2,
        })
    })?
    .into_iter()
    .collect();
    Ok(Arc::new(out))
}

/// The name of [`Fail`].
pub(crate) const FAIL_FN: &str = "weir_fail";

/// `weir_fail('message')` fails the statement with the message when a row
/// reaches it (`JSON_VALUE(... ERROR ON EMPTY)`); volatile, so that it is
/// never evaluated while planning.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Fail {
    signature: Signature,
}

impl ScalarUDFImpl for Fail {
    fn name(&self) -> &str {
        FAIL_FN
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Null)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let message = match args.args.first() {
            Some(ColumnarValue::Scalar(v)) => v.to_string(),
            _ => "failed".to_string(),
        };
        if args.number_rows == 0 {
            return Ok(ColumnarValue::Scalar(datafusion::common::ScalarValue::Null));
        }
        Err(datafusion::error::DataFusionError::Execution(message))
    }
}

/// `JSON_QUERY`: the object or array at the path as JSON text; NULL for a
/// scalar or a missing one (Flink's `WITHOUT WRAPPER`, `NULL ON EMPTY`).
fn json_query(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    let out: StringArray = with_json(a, |doc, steps| match &*select(doc, steps)? {
        v @ (serde_json::Value::Object(_) | serde_json::Value::Array(_)) => Some(v.to_string()),
        _ => None,
    })?
    .into_iter()
    .collect();
    Ok(Arc::new(out))
}

fn json_exists(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    let (docs, paths) = (strings(&a[0])?, strings(&a[1])?);
    let out: BooleanArray = (0..docs.len())
        .map(|i| {
            if docs.is_null(i) || paths.is_null(i) {
                return None;
            }
            // Text that is not JSON has nothing in it: FALSE, Flink's
            // default `FALSE ON ERROR`.
            let Ok(doc) = serde_json::from_str::<serde_json::Value>(docs.value(i)) else {
                return Some(false);
            };
            // A member whose value is `null` does not exist, as in Flink.
            Some(
                parse_path(paths.value(i))
                    .is_some_and(|s| select(&doc, &s).is_some_and(|v| !v.is_null())),
            )
        })
        .collect();
    Ok(Arc::new(out))
}

/// The function `JSON_OBJECT(k VALUE v, ...)` is rewritten to: keys and
/// values in turn, then whether a NULL value is kept (`NULL ON NULL`, the
/// default) or left out (`ABSENT ON NULL`).
pub(crate) const JSON_OBJECT_FN: &str = "weir_json_object";

/// Each value of `a` as JSON text: text quoted, numbers and booleans as
/// they are, NULL as `null`. Numbers keep their own digits, as Flink's
/// do: a `DECIMAL(12, 2)` 3.50 is `3.50`, and a `DECIMAL(38, 0)` keeps all
/// of its 38 digits (a JSON value of serde's would make them an `f64`).
pub(crate) fn json_values(a: &ArrayRef) -> DfResult<Vec<String>> {
    let t = a.data_type().clone();
    // An ARRAY is a JSON array of its elements.
    if let DataType::List(_) | DataType::LargeList(_) = t {
        let list = arrow::compute::cast(
            a,
            &DataType::LargeList(Arc::new(arrow::datatypes::Field::new(
                "item",
                match &t {
                    DataType::List(f) | DataType::LargeList(f) => f.data_type().clone(),
                    _ => unreachable!(),
                },
                true,
            ))),
        )?;
        let list = list.as_list::<i64>();
        return (0..list.len())
            .map(|i| {
                if list.is_null(i) {
                    return Ok("null".to_string());
                }
                Ok(format!("[{}]", json_values(&list.value(i))?.join(",")))
            })
            .collect();
    }
    // A FLOAT is widened to a DOUBLE first, as Flink does (0.1 is
    // 0.10000000149011612).
    if let DataType::Float16 | DataType::Float32 | DataType::Float64 = t {
        let d = arrow::compute::cast(a, &DataType::Float64)?;
        let d = d.as_primitive::<arrow::datatypes::Float64Type>();
        return Ok(d
            .iter()
            .map(|v| match v {
                None => "null".to_string(),
                Some(v) if v.is_finite() => json_double(v),
                Some(v) => json_quoted(&java_double_special(v)),
            })
            .collect());
    }
    let s = strings(a)?;
    Ok((0..s.len())
        .map(|i| {
            if s.is_null(i) {
                return "null".to_string();
            }
            let v = s.value(i);
            match &t {
                DataType::Boolean => v.to_string(),
                // NaN and the infinities are no JSON numbers: text.
                t if t.is_numeric() && serde_json::from_str::<serde_json::Number>(v).is_ok() => {
                    v.to_string()
                }
                _ => json_quoted(v),
            }
        })
        .collect())
}

/// A finite DOUBLE as Flink's JSON functions write it: Java's
/// `new BigDecimal(Double.toString(d)).toString()`. The shortest digits
/// that read back as `d` (Java's `Double.toString`, with at least one
/// digit after the point), then plain unless the exponent is positive in
/// Java's scientific form or below -6: `1.0E+7`, `0.000010`, `-2.5E-10`,
/// `123456789.5`.
fn json_double(d: f64) -> String {
    // Rust's `{:e}` gives the shortest digits: "1.2345e8", "-2.5e-10".
    let sci = format!("{:e}", d.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    // Java's `Double.toString`: plain from 10^-3 up to 10^7, else one
    // digit, a point, the rest; at least one digit after the point. The
    // digits after the point count for the BigDecimal's scale.
    let after_point = if (-3..7).contains(&exp) {
        let whole = (exp + 1).max(0) as usize;
        if digits.len() <= whole {
            digits.push_str(&"0".repeat(whole + 1 - digits.len()));
        }
        (digits.len() as i32 - exp - 1).max(1)
    } else {
        if digits.len() == 1 {
            digits.push('0');
        }
        digits.len() as i32 - 1
    };
    let scale = if (-3..7).contains(&exp) {
        after_point
    } else {
        after_point - exp
    };
    // BigDecimal's unscaled value drops leading zeros (0.001 is 1 at scale 3).
    big_decimal_text(d < 0.0, &digits, scale)
}

/// NaN and the infinities as Java writes them.
fn java_double_special(d: f64) -> String {
    if d.is_nan() {
        "NaN".into()
    } else if d > 0.0 {
        "Infinity".into()
    } else {
        "-Infinity".into()
    }
}

/// `s` as a JSON string.
fn json_quoted(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// The name `JSON_ARRAY` is rewritten to.
pub(crate) const JSON_ARRAY_FN: &str = "weir_json_array";

/// The values of `a` as JSON text, each taken as it is when `raw` (the
/// value of a nested `JSON_OBJECT` or `JSON_ARRAY`, JSON already), else as
/// [`json_values`] gives.
pub(crate) fn json_values_raw(a: &ArrayRef, raw: &ArrayRef) -> DfResult<Vec<String>> {
    let raw = raw.as_boolean();
    let raw = !raw.is_empty() && raw.value(0);
    if !raw {
        return json_values(a);
    }
    let s = strings(a)?;
    Ok((0..s.len())
        .map(|i| {
            if s.is_null(i) {
                return "null".to_string();
            }
            let v = s.value(i);
            if serde_json::from_str::<serde::de::IgnoredAny>(v).is_ok() {
                v.to_string()
            } else {
                json_quoted(v)
            }
        })
        .collect())
}

/// `JSON_ARRAY(v, ...)` as `weir_json_array(v1, raw1, ..., keep)`: the
/// values as a JSON array, NULLs left out (Flink's default `ABSENT ON
/// NULL`) unless `keep` (`NULL ON NULL`).
fn json_array(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    let (pairs, keep) = a.split_at(a.len().saturating_sub(1));
    let keep = keep
        .first()
        .map(|k| k.as_boolean().value(0))
        .unwrap_or(false);
    let rows = a.first().map_or(1, |x| x.len());
    let cols = pairs
        .chunks(2)
        .map(|c| match c {
            [v, raw] => json_values_raw(v, raw),
            [v] => json_values(v),
            _ => unreachable!("chunks of two"),
        })
        .collect::<DfResult<Vec<_>>>()?;
    let out: StringArray = (0..rows)
        .map(|i| {
            let items: Vec<&str> = cols
                .iter()
                .map(|c| c[i].as_str())
                .filter(|v| keep || *v != "null")
                .collect();
            Some(format!("[{}]", items.join(",")))
        })
        .collect();
    Ok(Arc::new(out))
}

fn json_object(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    let (pairs, keep) = a.split_at(a.len().saturating_sub(1));
    let keep = keep
        .first()
        .map(|k| k.as_boolean().value(0))
        .unwrap_or(true);
    let rows = a.first().map_or(1, |x| x.len());
    // (key, value, whether the value is JSON already) in turn.
    let keys = pairs
        .iter()
        .step_by(3)
        .map(strings)
        .collect::<DfResult<Vec<_>>>()?;
    let values = pairs
        .chunks(3)
        .map(|c| match c {
            [_, v, raw] => json_values_raw(v, raw),
            [_, v] => json_values(v),
            _ => Ok(vec!["null".to_string(); rows]),
        })
        .collect::<DfResult<Vec<_>>>()?;
    let out: StringArray = (0..rows)
        .map(|i| {
            // Keys in order, as Flink writes them; a key given twice keeps
            // its last value.
            let mut m = std::collections::BTreeMap::new();
            for (k, v) in keys.iter().zip(&values) {
                if k.is_null(i) {
                    return None;
                }
                if keep || v[i] != "null" {
                    m.insert(k.value(i), v[i].as_str());
                }
            }
            Some(json_object_text(m))
        })
        .collect();
    Ok(Arc::new(out))
}

/// A JSON object of keys and the JSON text of their values.
pub(crate) fn json_object_text<'a>(
    entries: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    let entries: Vec<String> = entries
        .into_iter()
        .map(|(k, v)| format!("{}:{v}", json_quoted(k)))
        .collect();
    format!("{{{}}}", entries.join(","))
}

/// The function `x IS [NOT] JSON [kind]` is parsed as.
pub(crate) const IS_JSON_FN: &str = "weir_is_json";

/// `IS JSON VALUE | OBJECT | ARRAY | SCALAR`: whether the text parses as
/// JSON of that kind (FALSE for NULL, as in Flink).
fn is_json(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    let (docs, kinds) = (strings(&a[0])?, strings(&a[1])?);
    let out: BooleanArray = (0..docs.len())
        .map(|i| {
            if docs.is_null(i) {
                return Some(false);
            }
            let v = serde_json::from_str::<serde_json::Value>(docs.value(i)).ok();
            let kind = if kinds.is_null(i) {
                "VALUE"
            } else {
                kinds.value(i)
            };
            Some(match (v, kind) {
                (None, _) => false,
                (Some(_), "VALUE") => true,
                (Some(v), "OBJECT") => v.is_object(),
                (Some(v), "ARRAY") => v.is_array(),
                (Some(v), _) => !v.is_object() && !v.is_array(),
            })
        })
        .collect();
    Ok(Arc::new(out))
}

/// `JSON_STRING`: a value as JSON text (a string quoted, a number or
/// boolean as it is).
fn json_string(a: &[ArrayRef]) -> DfResult<ArrayRef> {
    // SQL NULL is NULL, not the text `null`; a string is quoted, so no
    // other value writes as `null`.
    let out: StringArray = json_values(&a[0])?
        .into_iter()
        .map(|v| (v != "null").then_some(v))
        .collect();
    Ok(Arc::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_are_written_as_flinks_json_functions_write_them() {
        let cases = [
            (1e20, "1.0E+20"),
            (1e7, "1.0E+7"),
            (1e-5, "0.000010"),
            (1e-7, "1.0E-7"),
            (123456789.5, "123456789.5"),
            (9999999.0, "9999999.0"),
            (0.001, "0.001"),
            (0.05, "0.05"),
            (-2.5e-10, "-2.5E-10"),
            (100.0, "100.0"),
            (1.5, "1.5"),
            (-12345.678, "-12345.678"),
            (0.0, "0.0"),
            (-0.0, "0.0"),
            (0.1f32 as f64, "0.10000000149011612"),
        ];
        for (d, want) in cases {
            assert_eq!(json_double(d), want, "{d:e}");
        }
    }

    #[test]
    fn json_numbers_are_read_as_javas_big_decimal_writes_them() {
        let cases = [
            ("1.50", "1.50"),
            ("1e2", "1E+2"),
            ("1.0e3", "1.0E+3"),
            ("100e-2", "1.00"),
            ("1E-2", "0.01"),
            ("0.000001", "0.000001"),
            ("0.0000001", "1E-7"),
            ("-2.5e-10", "-2.5E-10"),
            ("-0.0", "0.0"),
            ("-0", "0"),
            ("-12", "-12"),
            ("12345678901234567890", "12345678901234567890"),
            ("0e5", "0E+5"),
            ("1e+2", "1E+2"),
            ("1e-9223372036854775808", "1e-9223372036854775808"),
            ("1e99999999999", "1e99999999999"),
        ];
        for (text, want) in cases {
            assert_eq!(json_number_text(text), want, "{text}");
        }
    }

    #[test]
    fn a_value_is_found_as_its_document_writes_it() {
        let steps = |p: &str| parse_path(p).unwrap();
        let doc = r#"{"a": {"b": [1, 2.50, {"c": 1e2}]}, "a\u0020": 3, "d": 1, "d": 2.0}"#;
        assert_eq!(raw_at(doc, &steps("$.a.b[1]")), Some("2.50"));
        assert_eq!(raw_at(doc, &steps("$.a.b[2].c")), Some("1e2"));
        assert_eq!(
            raw_at(doc, &steps("$.d")),
            Some("2.0"),
            "the last of a member named twice"
        );
        assert_eq!(raw_at(doc, &steps("$.a.b[3]")), None);
        assert_eq!(raw_at(doc, &steps("$.x")), None);
    }

    #[test]
    fn matches_are_replaced_where_java_finds_them() {
        let re = |p: &str| regex::Regex::new(p).unwrap();
        // An empty match right after a match counts, as in Java.
        assert_eq!(java_replace_all(&re("a*"), "aaa", "X"), "XX");
        assert_eq!(java_replace_all(&re("a*"), "baab", "X"), "XbXXbX");
        assert_eq!(java_replace_all(&re(""), "abc", "-"), "-a-b-c-");
        assert_eq!(java_replace_all(&re(""), "äé", "-"), "-ä-é-");
        assert_eq!(java_replace_all(&re("x"), "abc", "-"), "abc");
        assert_eq!(java_replace_all(&re("^a"), "aaa", "b"), "baa");
        // The replacement is taken as it is written.
        assert_eq!(java_replace_all(&re("(b)"), "abc", "[$1]"), "a[$1]c");
    }

    #[test]
    fn paths_select_members_and_elements() {
        let doc: serde_json::Value =
            serde_json::from_str(r#"{"a": {"b": [10, {"c": "x"}]}, "d e": 1}"#).unwrap();
        let at = |p: &str| parse_path(p).and_then(|s| select(&doc, &s).map(|v| v.into_owned()));
        assert_eq!(at("$.a.b[0]"), Some(serde_json::json!(10)));
        assert_eq!(at("$.a.b[1].c"), Some(serde_json::json!("x")));
        assert_eq!(at("$['d e']"), Some(serde_json::json!(1)));
        assert_eq!(at("lax $.a.b[5]"), None);
        assert_eq!(at("a.b"), None, "a path starts with $");
        // A wildcard gives the array of its matches, flat, in order.
        let doc: serde_json::Value =
            serde_json::from_str(r#"{"a": [{"b": 1}, {"c": 2}, {"b": [3, 4]}]}"#).unwrap();
        let at = |p: &str| parse_path(p).and_then(|s| select(&doc, &s).map(|v| v.into_owned()));
        assert_eq!(at("$.a[*].b"), Some(serde_json::json!([1, [3, 4]])));
        assert_eq!(at("$.a[*].b[*]"), Some(serde_json::json!([3, 4])));
        assert_eq!(at("$.a[*].z"), Some(serde_json::json!([])));
        assert_eq!(at("$.a[2].*"), Some(serde_json::json!([[3, 4]])));
    }

    #[test]
    fn integer_casts_wrap_and_saturate_as_java_does() {
        use arrow::array::{Float64Array, Int32Array, Int8Array, UInt64Array};
        let cast = |a: ArrayRef, to: DataType| java_integer_cast(&a, &to).unwrap().unwrap();
        // A row number past i64::MAX, as Java's long would hold its bits.
        let rows = Arc::new(UInt64Array::from(vec![Some(u64::MAX), None, Some(300)])) as ArrayRef;
        let got = cast(rows, DataType::Int32);
        assert_eq!(
            got.as_primitive::<arrow::datatypes::Int32Type>(),
            &Int32Array::from(vec![Some(-1), None, Some(300)])
        );
        let doubles = Arc::new(Float64Array::from(vec![
            f64::NAN,
            f64::INFINITY,
            -300.9,
            1e20,
        ])) as ArrayRef;
        let got = cast(doubles, DataType::Int8);
        assert_eq!(
            got.as_primitive::<arrow::datatypes::Int8Type>(),
            &Int8Array::from(vec![0, -1, -44, -1])
        );
        // Strings and booleans are not this cast's: DataFusion's applies.
        let text = Arc::new(StringArray::from(vec!["1"])) as ArrayRef;
        assert!(java_integer_cast(&text, &DataType::Int32)
            .unwrap()
            .is_none());
    }
}

#[cfg(test)]
mod printf_tests {
    use super::*;

    #[test]
    fn printf_formats_as_java_and_refuses_a_width_or_precision_past_the_value_bound() {
        let f = |fmt: &str, v: &[Option<&str>]| java_format(fmt, v);
        assert_eq!(
            f("%05d|%-4s|%.2f", &[Some("42"), Some("ab"), Some("3.14159")]).unwrap(),
            Some("00042|ab  |3.14".to_string())
        );
        assert_eq!(f("%d", &[Some("x")]).unwrap(), None);
        assert_eq!(f("%s %s", &[Some("a")]).unwrap(), None);
        for fmt in ["%2000000000d", "%.2000000000f", "%99999999999999999999999s"] {
            let err = f(fmt, &[Some("1")]).unwrap_err().to_string();
            assert!(err.contains("at most 16777216 bytes"), "{fmt}: {err}");
        }
    }
}

#[cfg(test)]
mod round_tests {
    use super::round_half_up;

    #[test]
    fn a_double_rounds_half_up_on_its_shortest_text() {
        for (x, r, want) in [
            (1.005, 2, 1.01),
            (2.5, 0, 3.0),
            (-2.5, 0, -3.0),
            (9.995, 2, 10.0),
            (9.99, 1, 10.0),
            (123.456, -1, 120.0),
            (155.0, -2, 200.0),
            (0.0006, 3, 0.001),
            (0.00004, 3, 0.0),
            (1e300, 2, 1e300),
            (0.1 + 0.2, 2, 0.3),
            (1.23, 5, 1.23),
        ] {
            assert_eq!(round_half_up(x, r), want, "ROUND({x}, {r})");
        }
        assert!(round_half_up(f64::NAN, 2).is_nan());
        assert_eq!(round_half_up(f64::INFINITY, 2), f64::INFINITY);
    }
}
