//! Flink functions that DataFusion spells or shapes differently.
//!
//! Names that differ are mapped in [`FLINK_FUNCTION_MAPPING`]; calls whose
//! arguments or syntax differ are rewritten on the SQL syntax tree before
//! planning ([`rewrite_flink_calls`]): `IF(c, a, b)`, `MOD(a, b)`,
//! `LOCATE(needle, haystack)`, `DATE_FORMAT(ts, 'java pattern')`,
//! `FLOOR(ts TO unit)`, `CEIL(ts TO unit)`, `GROUPING(...)` and
//! `GROUPING_ID(...)` (cast to BIGINT), `TO_TIMESTAMP_LTZ(n, 0|3)`,
//! `REGEXP_EXTRACT(s, pattern[, group])` (onto `regexp_match`) and
//! `SPLIT_INDEX(s, delimiter, index)` (onto `string_to_array`, 0-based).
//! Every other function is looked up under its own (lower-cased) name in
//! DataFusion's registry, which already agrees with Flink for `UPPER`,
//! `LOWER`, `TRIM`, `CONCAT`, `CONCAT_WS`, `REPLACE`, `SUBSTRING`, `POSITION`,
//! `LPAD`, `RPAD`, `INITCAP`, `REGEXP_REPLACE`, `ABS`, `POWER`, `SQRT`,
//! `ROUND`, `FLOOR`, `CEIL`, `COALESCE`, `NULLIF`, `MD5`, `SHA256`,
//! `TO_TIMESTAMP`, `DATE_TRUNC`, `NOW` and others.

/// `(flink name, datafusion name)`, lower case.
pub const FLINK_FUNCTION_MAPPING: &[(&str, &str)] = &[
    ("char_length", "character_length"),
    ("character_length", "character_length"),
    ("ln", "ln"),
    ("log10", "log10"),
    ("rand", "random"),
    ("uuid", "uuid"),
    ("regexp", "regexp_like"),
    ("ifnull", "coalesce"),
    ("unix_timestamp", "to_unixtime"),
    ("truncate", "trunc"),
    ("instr", "strpos"),
    ("sign", "signum"),
    ("startswith", "starts_with"),
    ("endswith", "ends_with"),
    // A bit vector of which keys the grouping set leaves out; both are cast
    // to Flink's BIGINT (DataFusion's is INT) by [`rewrite_flink_calls`].
    ("grouping_id", "grouping"),
];

/// The DataFusion name for a Flink function name.
pub fn datafusion_name(flink: &str) -> String {
    let lower = flink.to_lowercase();
    FLINK_FUNCTION_MAPPING
        .iter()
        .find(|(f, _)| *f == lower)
        .map(|(_, d)| d.to_string())
        .unwrap_or(lower)
}

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    visit_expressions_mut, AccessExpr, BinaryOperator, CastKind, CeilFloorKind,
    DataType as SqlDataType, DateTimeField, Expr, FunctionArg, FunctionArgExpr,
    FunctionArgOperator, FunctionArgumentClause, FunctionArguments, Ident, JsonNullClause,
    ObjectName, ObjectNamePart, Subscript, TimezoneInfo, Value, ValueWithSpan, VisitMut,
};
use datafusion::sql::sqlparser::parser::Parser;

use crate::dialect::FlinkDialect;
use crate::error::SqlError;

/// Rewrites the Flink calls DataFusion does not take as they are (see the
/// module documentation) anywhere in `node`; `tz` is the session time zone
/// that `TIMESTAMP_LTZ` values take (`CURRENT_TIMESTAMP`,
/// `TO_TIMESTAMP_LTZ`) and `LOCALTIMESTAMP` is read in.
/// `TRUE` when `v` is a `JSON_OBJECT` or `JSON_ARRAY` call (rewritten
/// already or not): its text goes into the enclosing one as JSON, not as
/// a string, as in Flink.
fn json_raw(v: &Expr) -> &'static str {
    let nested = matches!(v, Expr::Function(f) if {
        let n = f.name.to_string().to_ascii_lowercase();
        n == "json_object"
            || n == "json_array"
            || n == crate::flink_udfs::JSON_OBJECT_FN
            || n == crate::flink_udfs::JSON_ARRAY_FN
    });
    if nested {
        "TRUE"
    } else {
        "FALSE"
    }
}

/// Flink's functions that are rewritten (here or by the dialect) rather
/// than registered under their name, so that `SHOW FUNCTIONS` lists them.
pub const REWRITTEN: &[&str] = &[
    "e",
    "regexp_extract",
    "regexp_substr",
    "locate",
    "split_index",
    "elt",
    "year",
    "quarter",
    "month",
    "week",
    "dayofyear",
    "dayofmonth",
    "dayofweek",
    "hour",
    "minute",
    "second",
    "timestampadd",
    "timestampdiff",
    "to_timestamp_ltz",
    "if",
    "element",
    "map_from_arrays",
    "split",
    "json_object",
    "json_array",
    "sha2",
    "json_objectagg",
    "json_arrayagg",
    "ceiling",
    "rand_integer",
    "current_row_timestamp",
    "current_database",
    "inet_aton",
    "inet_ntoa",
];

/// When `name` is a Flink function of one argument that Weir computes
/// with its own function (Flink's semantics where DataFusion's differ):
/// that function's name.
fn renamed(name: &str) -> Option<&'static str> {
    use crate::flink_udfs::{ABS_FN, ASCII_FN, CEIL_FN, CHR_FN, INET_ATON_FN, INET_NTOA_FN};
    const RENAMED: &[(&str, &str)] = &[
        ("ceiling", CEIL_FN),
        ("inet_aton", INET_ATON_FN),
        ("inet_ntoa", INET_NTOA_FN),
        ("chr", CHR_FN),
        ("ascii", ASCII_FN),
        ("abs", ABS_FN),
    ];
    RENAMED.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// Flink's functions that Weir does not offer, and why: a call is refused
/// with this, rather than as a name the planner does not know. (Listed in
/// the README.)
pub const NOT_OFFERED: &[(&str, &str)] = &[
    ("bitmap_", "Weir has no BITMAP type (Flink 2.1's RoaringBitmap functions); count distinct values with COUNT(DISTINCT x)"),
    ("parse_json", "Weir has no VARIANT type; read JSON text with JSON_VALUE and JSON_QUERY"),
    ("try_parse_json", "Weir has no VARIANT type; read JSON text with JSON_VALUE and JSON_QUERY"),
    ("object_of", "Weir has no structured (class-backed) types; build a ROW(...)"),
    ("object_update", "Weir has no structured (class-backed) types; build a ROW(...)"),
    ("to_changelog", "Weir has no process table functions"),
    ("from_changelog", "Weir has no process table functions"),
    ("ml_predict", "Weir has no models"),
    ("ml_evaluate", "Weir has no models"),
    ("vector_search", "Weir has no vector indexes"),
    ("group_id", "tell grouping sets apart with GROUPING_ID(...)"),
];

/// Why `name` (lower case) is a Flink function Weir does not offer, if it
/// is one.
fn not_offered(name: &str) -> Option<&'static str> {
    NOT_OFFERED.iter().find_map(|(n, why)| {
        let hit = match n.strip_suffix('_') {
            Some(_) => name.starts_with(n),
            None => name == *n,
        };
        hit.then_some(*why)
    })
}

/// Calls the engine knows under another name (`SIGN`, `IFNULL`,
/// `CHAR_LENGTH`, ...) renamed to the name of the function they resolve
/// to (`canonical` gives it, or `None` to leave the call be).
///
/// DataFusion wraps a call made by an alias in an alias of the call's text
/// (`signum(x) AS sign(x)`), and typing an alias types its input twice, so
/// that nesting such calls doubled the planning time at every level (and
/// the text of the name): 20 nested `SIGN`s took minutes. Output columns
/// do not need the name: an unnamed item is named by its position, as in
/// Flink.
pub fn canonical_names<V: VisitMut>(node: &mut V, canonical: impl Fn(&str) -> Option<String>) {
    let _ = visit_expressions_mut(node, |e| {
        if let Expr::Function(f) = e {
            if let [ObjectNamePart::Identifier(i)] = f.name.0.as_mut_slice() {
                if i.quote_style.is_none() {
                    if let Some(name) = canonical(&i.value) {
                        if !name.eq_ignore_ascii_case(&i.value) && name == name.to_lowercase() {
                            i.value = name;
                        }
                    }
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

/// `CURRENT_DATABASE()`: the session's database (its Kafka cluster), as
/// text.
pub fn current_database<V: VisitMut>(node: &mut V, database: &str) {
    let _ = visit_expressions_mut(node, |e| {
        if let Expr::Function(f) = e {
            let named = matches!(f.name.0.as_slice(),
                [ObjectNamePart::Identifier(i)] if i.value.eq_ignore_ascii_case("current_database"));
            let no_args = match &f.args {
                FunctionArguments::None => true,
                FunctionArguments::List(l) => l.args.is_empty(),
                FunctionArguments::Subquery(_) => false,
            };
            if named && no_args {
                *e = Expr::value(Value::SingleQuotedString(database.to_string()));
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

pub fn rewrite_flink_calls<V: VisitMut>(node: &mut V, tz: &str) -> Result<(), SqlError> {
    let flow = visit_expressions_mut(node, |e| match rewrite(e, tz) {
        Ok(Some(new)) => {
            *e = new;
            ControlFlow::Continue(())
        }
        Ok(None) => ControlFlow::Continue(()),
        Err(err) => ControlFlow::Break(err),
    });
    match flow {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// The longest text one rewritten call may have. Several rewrites repeat
/// an argument (`GREATEST`'s NULL test, `TIMESTAMPDIFF`'s months), so
/// nesting them multiplies the size: past this a statement is refused
/// rather than grown without bound.
const MAX_REWRITTEN_BYTES: usize = 64 << 10;

/// Whether `e` is an interval as written: a literal, a sum or negation of
/// intervals, or an interval already scaled.
fn is_interval(e: &Expr) -> bool {
    match e {
        Expr::Interval(_) => true,
        Expr::Nested(inner) => is_interval(inner),
        Expr::UnaryOp { expr, .. } => is_interval(expr),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Plus | BinaryOperator::Minus,
            right,
        } => is_interval(left) && is_interval(right),
        Expr::Function(f) => matches!(f.name.0.as_slice(),
            [ObjectNamePart::Identifier(i)] if i.value == crate::flink_udfs::INTERVAL_TIMES_FN),
        _ => false,
    }
}

fn parse_expr(sql: &str) -> Result<Expr, SqlError> {
    if sql.len() > MAX_REWRITTEN_BYTES {
        return Err(SqlError::validation(
            format!(
                "an expression grows past {} KiB when Flink's functions are rewritten onto the engine's; nest fewer calls of GREATEST, LEAST, CONCAT, SUBSTRING, CEIL, TIMESTAMPDIFF (or write it in steps)",
                MAX_REWRITTEN_BYTES >> 10
            ),
            None,
        ));
    }
    // The rewritten text nests deeper than what the user wrote, and the
    // parser backtracks where nesting runs out: bounded like any parse.
    let budget = crate::dialect::ParseBudget::start();
    Parser::new(&FlinkDialect)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| match e {
            _ if budget.exhausted() => too_nested(),
            datafusion::sql::sqlparser::parser::ParserError::RecursionLimitExceeded => too_nested(),
            e => SqlError::parse(format!("internal rewrite of `{sql}`: {e}"), None),
        })
}

/// The error of a call nested too deeply once rewritten.
fn too_nested() -> SqlError {
    SqlError::validation(
        "an expression nests function calls too deeply once Flink's functions are rewritten \
         onto the engine's (HOUR, TIMESTAMPADD, FLOOR and CEIL to a unit, CONCAT and others \
         each add levels); compute the inner part as a column of a subquery or a WITH clause",
        None,
    )
}

/// The longest `CHAR(n)` a cast pads to (a row of `CHAR(2147483647)`
/// would be gigabytes).
const MAX_CHAR_LENGTH: u64 = 4096;

/// `(padded, n)` of `CHAR(n)` (padded) or `VARCHAR(n)`.
fn sized_string(t: &SqlDataType) -> Option<(bool, u64)> {
    let text = t.to_string().to_uppercase();
    let (name, rest) = text.split_once('(')?;
    let padded = match name.trim() {
        "CHAR" | "CHARACTER" => true,
        "VARCHAR" | "CHARACTER VARYING" | "CHAR VARYING" => false,
        _ => return None,
    };
    let n = rest.strip_suffix(')')?.trim().parse().ok()?;
    Some((padded, n))
}

/// `(s0, e0) OVERLAPS (s1, e1)`, as Calcite reads it: each period's end
/// is a time or an interval after its start, its two ends are put in
/// order, and the periods overlap when each ends at or after the other
/// starts.
fn overlaps(e: &Expr, left: &Expr, right: &Expr) -> Result<Expr, SqlError> {
    let period = |p: &Expr| -> Option<(String, String)> {
        let Expr::Tuple(items) = p else {
            return None;
        };
        let [start, end] = items.as_slice() else {
            return None;
        };
        let end = if matches!(end, Expr::Interval(_)) {
            format!("(({start}) + ({end}))")
        } else {
            format!("({end})")
        };
        let start = format!("({start})");
        Some((
            format!("CASE WHEN {start} <= {end} THEN {start} ELSE {end} END"),
            format!("CASE WHEN {start} <= {end} THEN {end} ELSE {start} END"),
        ))
    };
    let (Some((s0, e0)), Some((s1, e1))) = (period(left), period(right)) else {
        let start = datafusion::sql::sqlparser::ast::Spanned::span(e).start;
        return Err(SqlError::validation(
            format!("{e}: OVERLAPS compares two periods, each (start, end) or (start, interval)"),
            (start.line > 0).then_some((start.line, start.column)),
        ));
    };
    parse_expr(&format!("(({e0}) >= ({s1}) AND ({e1}) >= ({s0}))"))
}

fn unnamed_args(args: &FunctionArguments) -> Option<Vec<&Expr>> {
    let FunctionArguments::List(list) = args else {
        return None;
    };
    list.args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        })
        .collect()
}

/// `expr` truncated to the start of its `unit`; a week starts on Sunday,
/// as in Flink (DataFusion's `date_trunc` starts it on Monday).
fn truncated(unit: &str, expr: &Expr) -> String {
    if unit == "week" {
        format!("(date_trunc('week', ({expr}) + INTERVAL '1' DAY) - INTERVAL '1' DAY)")
    } else {
        format!("date_trunc('{unit}', {expr})")
    }
}

fn unit_name(field: &DateTimeField) -> Option<&'static str> {
    Some(match field {
        DateTimeField::Year | DateTimeField::Years => "year",
        DateTimeField::Quarter => "quarter",
        DateTimeField::Month | DateTimeField::Months => "month",
        DateTimeField::Week(_) | DateTimeField::Weeks => "week",
        DateTimeField::Day | DateTimeField::Days => "day",
        DateTimeField::Hour | DateTimeField::Hours => "hour",
        DateTimeField::Minute | DateTimeField::Minutes => "minute",
        DateTimeField::Second | DateTimeField::Seconds => "second",
        DateTimeField::Millisecond | DateTimeField::Milliseconds => "millisecond",
        _ => return None,
    })
}

/// The Arrow type of `TIMESTAMP_LTZ(3)` in zone `tz`, as `arrow_cast` spells it.
/// `text` read with the Java `pattern` as a `TIMESTAMP(3)`, NULL where it
/// does not match (Flink's `TO_TIMESTAMP`, `TO_TIMESTAMP_LTZ` and
/// `UNIX_TIMESTAMP` of text and a pattern).
fn timestamp_from_text(text: &Expr, pattern: &str) -> String {
    let fmt = java_to_strftime(pattern).replace('\'', "''");
    format!(
        "arrow_cast({}({text}, '{fmt}'), 'Timestamp(Millisecond, None)')",
        crate::flink_udfs::TRY_TO_TIMESTAMP_FN
    )
}

fn ltz(tz: &str) -> String {
    format!("'Timestamp(Millisecond, Some(\"{tz}\"))'")
}

/// `INTERVAL 'text' <leading> TO <last>` (Flink's `'1-6' YEAR TO MONTH`,
/// `'1 02:03:04.5' DAY TO SECOND`, `'1:30' HOUR TO MINUTE`, ...) as the
/// unit-named text DataFusion reads (`'1 years 6 months'`); `None` when
/// the text does not fit the range.
fn interval_range(text: &str, leading: &DateTimeField, last: &DateTimeField) -> Option<String> {
    let t = text.trim();
    let (negative, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let leading = unit_name(leading)?;
    let last = unit_name(last)?;
    // The fields of each range, in order, and how the text separates them.
    let units: &[&str] = match (leading, last) {
        ("year", "month") => &["years", "months"],
        ("day", "hour") => &["days", "hours"],
        ("day", "minute") => &["days", "hours", "minutes"],
        ("day", "second") => &["days", "hours", "minutes", "seconds"],
        ("hour", "minute") => &["hours", "minutes"],
        ("hour", "second") => &["hours", "minutes", "seconds"],
        ("minute", "second") => &["minutes", "seconds"],
        _ => return None,
    };
    let parts: Vec<&str> = if leading == "year" {
        t.split('-').collect()
    } else if leading == "day" {
        let (d, rest) = t.split_once(' ')?;
        std::iter::once(d).chain(rest.split(':')).collect()
    } else {
        t.split(':').collect()
    };
    if parts.len() != units.len() {
        return None;
    }
    let sign = if negative { "-" } else { "" };
    let mut out = vec![];
    for (i, (p, u)) in parts.iter().zip(units).enumerate() {
        let p = p.trim();
        let fractional = i == units.len() - 1 && *u == "seconds";
        let ok = !p.is_empty()
            && if fractional {
                p.parse::<f64>().is_ok_and(|v| v.is_finite() && v >= 0.0)
                    && p.chars().all(|c| c.is_ascii_digit() || c == '.')
            } else {
                p.chars().all(|c| c.is_ascii_digit()) && p.len() <= 9
            };
        if !ok {
            return None;
        }
        out.push(format!("{sign}{p} {u}"));
    }
    Some(out.join(" "))
}

fn rewrite(e: &Expr, tz: &str) -> Result<Option<Expr>, SqlError> {
    match e {
        // `f(x).name` and `items[1].name`: a field of a row an expression
        // or an element makes, read by name (DataFusion reads a dot after
        // a column only).
        Expr::CompoundFieldAccess { root, access_chain }
            if access_chain.iter().enumerate().any(|(i, a)| {
                matches!(a, AccessExpr::Dot(Expr::Identifier(_)))
                    && (!matches!(
                        root.as_ref(),
                        Expr::Identifier(_) | Expr::CompoundIdentifier(_)
                    ) || access_chain[..i]
                        .iter()
                        .any(|b| matches!(b, AccessExpr::Subscript(_))))
            }) =>
        {
            let column = matches!(
                root.as_ref(),
                Expr::Identifier(_) | Expr::CompoundIdentifier(_)
            );
            let mut subscripted = !column;
            let access_chain = access_chain
                .iter()
                .map(|a| match a {
                    AccessExpr::Dot(Expr::Identifier(i)) if subscripted => {
                        AccessExpr::Subscript(Subscript::Index {
                            index: Expr::value(Value::SingleQuotedString(i.value.clone())),
                        })
                    }
                    other => {
                        subscripted |= matches!(other, AccessExpr::Subscript(_));
                        other.clone()
                    }
                })
                .collect();
            Ok(Some(Expr::CompoundFieldAccess {
                root: root.clone(),
                access_chain,
            }))
        }
        // A numeric literal with an exponent is a DOUBLE in Flink (`1e2`
        // is 100.0), not an exact number.
        Expr::Value(v) if matches!(&v.value, Value::Number(n, _) if n.contains(['e', 'E'])) => {
            Ok(Some(parse_expr(&format!("CAST('{}' AS DOUBLE)", v.value))?))
        }
        // SIMILAR TO as Flink matches it (DataFusion's is a regular
        // expression found anywhere in the text).
        Expr::SimilarTo {
            negated,
            expr,
            pattern,
            escape_char,
        } => {
            let escape = escape_char
                .as_ref()
                .map(|c| format!(", {c}"))
                .unwrap_or_default();
            let not = if *negated { "NOT " } else { "" };
            Ok(Some(parse_expr(&format!(
                "{not}{}({expr}, {pattern}{escape})",
                crate::flink_udfs::SIMILAR_TO_FN
            ))?))
        }
        Expr::BinaryOp {
            left,
            op: datafusion::sql::sqlparser::ast::BinaryOperator::Overlaps,
            right,
        } => overlaps(e, left, right).map(Some),
        // An interval times an integer (Arrow has no such kernel); Flink
        // neither divides an interval nor scales it by a fraction.
        Expr::BinaryOp {
            left,
            op: op @ (BinaryOperator::Multiply | BinaryOperator::Divide),
            right,
        } if is_interval(left) || (*op == BinaryOperator::Multiply && is_interval(right)) => {
            if *op == BinaryOperator::Divide {
                let start = datafusion::sql::sqlparser::ast::Spanned::span(e).start;
                return Err(SqlError::validation(
                    format!("{e}: an interval cannot be divided (nor can it in Flink); multiply a smaller interval by an integer"),
                    (start.line > 0).then_some((start.line, start.column)),
                ));
            }
            let (interval, factor) = if is_interval(left) {
                (left, right)
            } else {
                (right, left)
            };
            Ok(Some(crate::unnest::call(
                crate::flink_udfs::INTERVAL_TIMES_FN,
                vec![interval.as_ref().clone(), factor.as_ref().clone()],
            )))
        }
        Expr::Interval(iv) if iv.last_field.is_some() => {
            let (Some(leading), Some(last)) = (&iv.leading_field, &iv.last_field) else {
                return Ok(None);
            };
            let start = datafusion::sql::sqlparser::ast::Spanned::span(iv.value.as_ref()).start;
            let at = (start.line > 0).then_some((start.line, start.column));
            let Expr::Value(v) = iv.value.as_ref() else {
                return Err(SqlError::validation(
                    format!(
                        "{e}: an interval range takes its value as text, as '1-6' YEAR TO MONTH"
                    ),
                    at,
                ));
            };
            let text = match &v.value {
                datafusion::sql::sqlparser::ast::Value::SingleQuotedString(t) => t.clone(),
                other => other.to_string(),
            };
            let Some(units) = interval_range(&text, leading, last) else {
                return Err(SqlError::validation(
                    format!(
                        "{e}: '{text}' is not an interval from {leading} to {last} (write it as \
                         '1-6' YEAR TO MONTH, '1 02:03:04.5' DAY TO SECOND, '1:30' HOUR TO MINUTE)"
                    ),
                    at,
                ));
            };
            Ok(Some(parse_expr(&format!("INTERVAL '{units}'"))?))
        }
        // `ARRAY[x, y]` is `make_array(x, y)`, as DataFusion plans it;
        // written as the call, its elements may name the outer row in a
        // lateral `UNNEST(ARRAY[t.x, t.y])` (DataFusion plans an array
        // literal's elements without the outer query's columns).
        Expr::Array(arr) if !arr.elem.is_empty() => {
            Ok(Some(crate::unnest::call("make_array", arr.elem.clone())))
        }
        // An instant in the session zone; DataFusion has no such SQL type.
        Expr::Cast {
            expr, data_type, ..
        } if data_type
            .to_string()
            .to_uppercase()
            .starts_with("TIMESTAMP_LTZ") =>
        {
            let text = data_type.to_string();
            let precision: u32 = text
                .split(['(', ')'])
                .nth(1)
                .and_then(|p| p.trim().parse().ok())
                .unwrap_or(6);
            let unit = match precision {
                0..=3 => "Millisecond",
                4..=6 => "Microsecond",
                _ => "Nanosecond",
            };
            Ok(Some(parse_expr(&format!(
                "arrow_cast({expr}, 'Timestamp({unit}, Some(\"{tz}\"))')"
            ))?))
        }
        // An integer target casts numbers as Java does, and a number too
        // large for a DECIMAL target is NULL: see
        // [`crate::flink_udfs::JAVA_CAST_FN`].
        Expr::Cast {
            expr,
            data_type:
                data_type @ (SqlDataType::TinyInt(_)
                | SqlDataType::SmallInt(_)
                | SqlDataType::Int(_)
                | SqlDataType::Integer(_)
                | SqlDataType::BigInt(_)
                | SqlDataType::Decimal(_)
                | SqlDataType::Dec(_)
                | SqlDataType::Numeric(_)),
            kind: kind @ (CastKind::Cast | CastKind::TryCast),
            ..
        } => Ok(Some(parse_expr(&format!(
            "{}({expr}, CAST(NULL AS {data_type}))",
            match kind {
                CastKind::TryCast => crate::flink_udfs::JAVA_TRY_CAST_FN,
                _ => crate::flink_udfs::JAVA_CAST_FN,
            }
        ))?)),
        // `CAST(x AS VARCHAR(n))` keeps the first n characters, and
        // `CAST(x AS CHAR(n))` pads with spaces to n, as Flink's casts do
        // (DataFusion ignores the length).
        Expr::Cast {
            expr,
            data_type,
            kind: kind @ (CastKind::Cast | CastKind::TryCast),
            ..
        } if sized_string(data_type).is_some() => {
            let Some((padded, n)) = sized_string(data_type) else {
                return Ok(None);
            };
            let cast = match kind {
                CastKind::TryCast => "TRY_CAST",
                _ => "CAST",
            };
            // The text as Flink writes it (`TRUE`, not `true`).
            let inner = parse_expr(&format!("{cast}(({expr}) AS STRING)"))?;
            let text = rewrite(&inner, tz)?.unwrap_or(inner);
            if padded && n > MAX_CHAR_LENGTH {
                return Err(SqlError::unsupported(format!(
                    "CAST to CHAR({n}) pads every value to {n} characters; above CHAR({MAX_CHAR_LENGTH}) cast to VARCHAR({n}) or STRING"
                )));
            }
            Ok(Some(parse_expr(&match (padded, n) {
                (true, n) => format!("rpad({text}, {n})"),
                (false, n) if n >= i32::MAX as u64 => text.to_string(),
                (false, n) => format!("substr({text}, 1, {n})"),
            })?))
        }
        // Flink's `BYTES` (`VARBINARY(2147483647)`); DataFusion's SQL has
        // no such name.
        Expr::Cast {
            expr, data_type, ..
        } if data_type.to_string().eq_ignore_ascii_case("BYTES") => {
            Ok(Some(parse_expr(&format!("arrow_cast({expr}, 'Binary')"))?))
        }
        // A `TIMESTAMP '…'` literal has the precision of its digits, and a
        // `TIME '…'` literal likewise, as in Flink (DataFusion's are
        // nanoseconds).
        Expr::TypedString(ts)
            if matches!(
                ts.data_type,
                SqlDataType::Timestamp(None, TimezoneInfo::None)
                    | SqlDataType::Time(None, TimezoneInfo::None)
            ) =>
        {
            let Some(text) = ts.value.value.clone().into_string() else {
                return Ok(None);
            };
            let digits = text
                .split_once('.')
                .map(|(_, f)| f.trim().chars().take_while(char::is_ascii_digit).count())
                .unwrap_or(0);
            let unit = match digits {
                0 => "Second",
                1..=3 => "Millisecond",
                4..=6 => "Microsecond",
                _ => "Nanosecond",
            };
            let quoted = text.replace('\'', "''");
            let target = match ts.data_type {
                SqlDataType::Time(..) => match unit {
                    "Second" | "Millisecond" => format!("Time32({unit})"),
                    _ => format!("Time64({unit})"),
                },
                _ => format!("Timestamp({unit}, None)"),
            };
            let kind = if matches!(ts.data_type, SqlDataType::Time(..)) {
                "TIME"
            } else {
                "TIMESTAMP"
            };
            Ok(Some(parse_expr(&format!(
                "arrow_cast(CAST('{quoted}' AS {kind}), '{target}')"
            ))?))
        }
        // Flink's TIME is TIME(0), and TIME(p) keeps p digits of the
        // second (DataFusion's casts give nanoseconds).
        Expr::Cast {
            expr,
            data_type: SqlDataType::Time(precision, TimezoneInfo::None),
            ..
        } => {
            let target = match precision.unwrap_or(0) {
                0 => "Time32(Second)",
                1..=3 => "Time32(Millisecond)",
                4..=6 => "Time64(Microsecond)",
                _ => "Time64(Nanosecond)",
            };
            Ok(Some(parse_expr(&format!(
                "arrow_cast(CAST({expr} AS TIME), '{target}')"
            ))?))
        }
        // Flink's TIMESTAMP is TIMESTAMP(6).
        Expr::Cast {
            expr,
            data_type: SqlDataType::Timestamp(None, TimezoneInfo::None),
            ..
        } => Ok(Some(parse_expr(&format!(
            "arrow_cast(CAST({expr} AS TIMESTAMP), 'Timestamp(Microsecond, None)')"
        ))?)),
        // Flink's text of a value, where it is not Arrow's (booleans,
        // floating point, timestamps).
        Expr::Cast {
            expr,
            data_type: SqlDataType::String(_) | SqlDataType::Varchar(_) | SqlDataType::Text,
            kind: CastKind::Cast,
            ..
        } => Ok(Some(parse_expr(&format!(
            "{}({expr})",
            crate::flink_text::TO_STRING_FN
        ))?)),
        // Flink's SUBSTRING counts a negative start from the end, takes a
        // start of 0 as 1, and gives NULL for a negative length (which
        // failed the statement in DataFusion's).
        Expr::Substring {
            expr,
            substring_from: Some(from),
            substring_for,
            ..
        } => {
            let len = substring_for
                .as_ref()
                .map(|l| format!(", {l}"))
                .unwrap_or_default();
            let negative = substring_for
                .as_ref()
                .map(|l| format!("WHEN ({l}) < 0 THEN CAST(NULL AS STRING) "))
                .unwrap_or_default();
            Ok(Some(parse_expr(&format!(
                "CASE {negative}WHEN ({from}) < 0 THEN substr({expr}, greatest(character_length({expr}) + ({from}) + 1, 1){len}) \
                 WHEN ({from}) = 0 THEN substr({expr}, 1{len}) \
                 ELSE substr({expr}, {from}{len}) END"
            ))?))
        }
        // Flink's OVERLAY keeps the text as it is for a start outside it,
        // and a length of 0 or less replaces all the rest.
        Expr::Overlay {
            expr,
            overlay_what,
            overlay_from,
            overlay_for,
        } => {
            let nulls = overlay_for
                .as_ref()
                .map(|l| format!(" OR ({l}) IS NULL"))
                .unwrap_or_default();
            let rest = match overlay_for {
                Some(l) => format!(
                    "CASE WHEN ({l}) > 0 THEN substr({expr}, ({overlay_from}) + ({l})) ELSE '' END"
                ),
                None => {
                    format!("substr({expr}, ({overlay_from}) + character_length({overlay_what}))")
                }
            };
            Ok(Some(parse_expr(&format!(
                "CASE WHEN ({expr}) IS NULL OR ({overlay_what}) IS NULL OR ({overlay_from}) IS NULL{nulls} \
                 THEN CAST(NULL AS STRING) \
                 WHEN ({overlay_from}) < 1 OR ({overlay_from}) > character_length({expr}) THEN {expr} \
                 ELSE substr({expr}, 1, ({overlay_from}) - 1) || ({overlay_what}) || ({rest}) END"
            ))?))
        }
        // Flink's CEIL and FLOOR keep an exact number exact: a DECIMAL's
        // is a DECIMAL of scale 0, an integer's the integer.
        Expr::Ceil {
            expr,
            field: CeilFloorKind::DateTimeField(DateTimeField::NoDateTime),
        } => Ok(Some(parse_expr(&format!(
            "{}({expr})",
            crate::flink_udfs::CEIL_FN
        ))?)),
        Expr::Floor {
            expr,
            field: CeilFloorKind::DateTimeField(DateTimeField::NoDateTime),
        } => Ok(Some(parse_expr(&format!(
            "{}({expr})",
            crate::flink_udfs::FLOOR_FN
        ))?)),
        // `LIKE p ESCAPE 'c'` with another escape than the backslash (the
        // only one DataFusion takes): the pattern rewritten to escape with
        // a backslash.
        Expr::Like {
            negated,
            any: false,
            expr,
            pattern,
            escape_char: Some(esc),
        } => {
            let (Value::SingleQuotedString(c), Expr::Value(p)) = (&esc.value, pattern.as_ref())
            else {
                return Ok(None);
            };
            let (Value::SingleQuotedString(p), Some(c)) = (&p.value, c.chars().next()) else {
                return Ok(None);
            };
            if c == '\\' {
                return Ok(None);
            }
            let mut out = String::new();
            let mut chars = p.chars();
            while let Some(ch) = chars.next() {
                if ch == c {
                    match chars.next() {
                        Some('\\') => out.push_str("\\\\"),
                        Some(next) => {
                            out.push('\\');
                            out.push(next);
                        }
                        None => {
                            return Err(SqlError::validation(
                                format!("the LIKE pattern '{p}' ends with its escape character"),
                                None,
                            ))
                        }
                    }
                } else if ch == '\\' {
                    out.push_str("\\\\");
                } else {
                    out.push(ch);
                }
            }
            let not = if *negated { "NOT " } else { "" };
            Ok(Some(parse_expr(&format!(
                "({expr}) {not}LIKE '{}'",
                out.replace('\'', "''")
            ))?))
        }
        // Flink's EXTRACT is a BIGINT; its DOW counts from Sunday = 1.
        Expr::Extract { field, expr, .. } => {
            let part = match field {
                DateTimeField::Dow | DateTimeField::DayOfWeek => {
                    return Ok(Some(parse_expr(&format!(
                        "CAST(date_part('dow', {expr}) + 1 AS BIGINT)"
                    ))?))
                }
                DateTimeField::Doy | DateTimeField::DayOfYear => "doy",
                // The milliseconds within the second (DataFusion counts
                // the seconds' too).
                DateTimeField::Millisecond | DateTimeField::Milliseconds => {
                    return Ok(Some(parse_expr(&format!(
                        "CAST(date_part('millisecond', {expr}) % 1000 AS BIGINT)"
                    ))?))
                }
                DateTimeField::Epoch => "epoch",
                // As Calcite counts them: the 21st century is 2001 to 2100,
                // the 3rd millennium 2001 to 3000; a decade is year / 10.
                DateTimeField::Century
                | DateTimeField::Millennium
                | DateTimeField::Millenium
                | DateTimeField::Decade => {
                    let year = format!("CAST(date_part('year', {expr}) AS BIGINT)");
                    let sql = match field {
                        DateTimeField::Decade => format!("{year} / 10"),
                        DateTimeField::Century => format!(
                            "CASE WHEN {year} > 0 THEN ({year} + 99) / 100 ELSE ({year} - 99) / 100 END"
                        ),
                        _ => format!(
                            "CASE WHEN {year} > 0 THEN ({year} + 999) / 1000 ELSE ({year} - 999) / 1000 END"
                        ),
                    };
                    return Ok(Some(parse_expr(&sql)?));
                }
                f => match unit_name(f) {
                    Some(u) => u,
                    None => return Ok(None),
                },
            };
            Ok(Some(parse_expr(&format!(
                "CAST(date_part('{part}', {expr}) AS BIGINT)"
            ))?))
        }
        Expr::Floor {
            expr,
            field: CeilFloorKind::DateTimeField(f),
        } if !matches!(f, DateTimeField::NoDateTime) => {
            let unit = unit_name(f).ok_or_else(|| {
                SqlError::unsupported(format!("FLOOR(... TO {f}) is not supported"))
            })?;
            Ok(Some(parse_expr(&format!(
                "{}({}, {expr})",
                crate::flink_udfs::LIKE_TYPE_FN,
                truncated(unit, expr)
            ))?))
        }
        Expr::Ceil {
            expr,
            field: CeilFloorKind::DateTimeField(f),
        } if !matches!(f, DateTimeField::NoDateTime) => {
            let unit = unit_name(f).ok_or_else(|| {
                SqlError::unsupported(format!("CEIL(... TO {f}) is not supported"))
            })?;
            // From a week up, Flink rounds the date up and drops the time
            // of day (`CEIL(TIMESTAMP '2024-05-01 00:00:01' TO MONTH)` is
            // 2024-05-01 00:00:00).
            let from = if matches!(unit, "week" | "month" | "quarter" | "year") {
                parse_expr(&format!("date_trunc('day', {expr})"))?
            } else {
                expr.as_ref().clone()
            };
            let t = truncated(unit, &from);
            Ok(Some(parse_expr(&format!(
                "{}(CASE WHEN {t} = ({from}) THEN ({from}) \
                 ELSE {t} + INTERVAL '1' {unit} END, {expr})",
                crate::flink_udfs::LIKE_TYPE_FN
            ))?))
        }
        Expr::Function(f) => {
            let name = match f.name.0.as_slice() {
                [ObjectNamePart::Identifier(i)] => i.value.to_lowercase(),
                _ => return Ok(None),
            };
            if let Some(why) = not_offered(&name) {
                return Err(SqlError::unsupported(format!(
                    "{} is a Flink function Weir does not offer: {why}",
                    name.to_uppercase()
                )));
            }
            let no_args = match &f.args {
                FunctionArguments::None => true,
                FunctionArguments::List(l) => l.args.is_empty(),
                FunctionArguments::Subquery(_) => false,
            };
            // Processing time, as an instant in the session zone, and as
            // the wall-clock time there.
            match name.as_str() {
                // `CEILING` is `CEIL`, rewritten as `CEIL` is.
                "current_timestamp" | "now" | "current_row_timestamp" if no_args => {
                    return Ok(Some(parse_expr(&format!(
                        "arrow_cast({}(), {})",
                        crate::proctime::NOW_FN,
                        ltz(tz)
                    ))?));
                }
                "proctime" if no_args => {
                    return Ok(Some(parse_expr(&format!(
                        "arrow_cast({}(), {})",
                        crate::proctime::PROCTIME_FN,
                        ltz(tz)
                    ))?));
                }
                // The date and the wall-clock time in the session zone.
                "current_date" if no_args => {
                    return Ok(Some(parse_expr(&format!(
                        "CAST(to_local_time(arrow_cast({}(), {})) AS DATE)",
                        crate::proctime::NOW_FN,
                        ltz(tz)
                    ))?));
                }
                // `TIME(0)`, as Flink's.
                "localtime" | "current_time" if no_args => {
                    return Ok(Some(parse_expr(&format!(
                        "arrow_cast(CAST(to_local_time(arrow_cast({}(), {})) AS TIME), 'Time32(Second)')",
                        crate::proctime::NOW_FN,
                        ltz(tz)
                    ))?));
                }
                "localtimestamp" if no_args => {
                    return Ok(Some(parse_expr(&format!(
                        "arrow_cast(to_local_time(arrow_cast({}(), {})), 'Timestamp(Millisecond, None)')",
                        crate::proctime::NOW_FN,
                        ltz(tz)
                    ))?));
                }
                _ => {}
            }
            // `JSON_VALUE(... RETURNING type)`: the text, cast.
            if let FunctionArguments::List(l) = &f.args {
                let returning = l.clauses.iter().find_map(|c| match c {
                    FunctionArgumentClause::JsonReturningClause(r) => Some(r.data_type.clone()),
                    _ => None,
                });
                if let (Some(ty), "json_value") = (returning, name.as_str()) {
                    let mut g = f.clone();
                    if let FunctionArguments::List(gl) = &mut g.args {
                        gl.clauses.clear();
                    }
                    return Ok(Some(parse_expr(&format!(
                        "CAST({} AS {ty})",
                        Expr::Function(g)
                    ))?));
                }
                // `JSON_OBJECT(k VALUE v, ... [NULL | ABSENT ON NULL])`:
                // keys and values in turn, then whether NULLs stay.
                if name == "json_object" {
                    let absent = l.clauses.iter().any(|c| {
                        matches!(
                            c,
                            FunctionArgumentClause::JsonNullClause(JsonNullClause::AbsentOnNull)
                        )
                    });
                    let mut parts = vec![];
                    for a in &l.args {
                        match a {
                            FunctionArg::ExprNamed {
                                name,
                                arg: FunctionArgExpr::Expr(v),
                                operator: FunctionArgOperator::Value,
                            } => parts.push(format!("({name}), ({v}), {}", json_raw(v))),
                            // `'key' VALUE v` parses with the key as a
                            // quoted identifier.
                            FunctionArg::Named {
                                name,
                                arg: FunctionArgExpr::Expr(v),
                                operator: FunctionArgOperator::Value,
                            } => parts.push(format!(
                                "'{}', ({v}), {}",
                                name.value.replace('\'', "''"),
                                json_raw(v)
                            )),
                            _ => {
                                return Err(SqlError::validation(
                                    "JSON_OBJECT takes `key VALUE value` pairs",
                                    None,
                                ))
                            }
                        }
                    }
                    parts.push(if absent { "FALSE" } else { "TRUE" }.to_string());
                    return Ok(Some(parse_expr(&format!(
                        "{}({})",
                        crate::flink_udfs::JSON_OBJECT_FN,
                        parts.join(", ")
                    ))?));
                }
                // `JSON_ARRAY(v, ... [NULL | ABSENT ON NULL])`: each value
                // and whether it is JSON already, then whether NULLs stay
                // (Flink's default: absent).
                if name == "json_array" {
                    let keep = l.clauses.iter().any(|c| {
                        matches!(
                            c,
                            FunctionArgumentClause::JsonNullClause(JsonNullClause::NullOnNull)
                        )
                    });
                    let mut parts = vec![];
                    for a in &l.args {
                        match a {
                            FunctionArg::Unnamed(FunctionArgExpr::Expr(v)) => {
                                parts.push(format!("({v}), {}", json_raw(v)))
                            }
                            _ => {
                                return Err(SqlError::validation(
                                    "JSON_ARRAY takes values, not named arguments",
                                    None,
                                ))
                            }
                        }
                    }
                    parts.push(if keep { "TRUE" } else { "FALSE" }.to_string());
                    return Ok(Some(parse_expr(&format!(
                        "{}({})",
                        crate::flink_udfs::JSON_ARRAY_FN,
                        parts.join(", ")
                    ))?));
                }
            }
            // `JSON_OBJECTAGG([KEY] k VALUE v [NULL | ABSENT ON NULL])` and
            // `JSON_ARRAYAGG(v [NULL | ABSENT ON NULL])`: Weir's aggregates
            // with whether the value is JSON already and whether NULLs stay.
            if let (FunctionArguments::List(l), "json_objectagg" | "json_arrayagg") =
                (&f.args, name.as_str())
            {
                let object = name == "json_objectagg";
                let null_clause = l.clauses.iter().find_map(|c| match c {
                    FunctionArgumentClause::JsonNullClause(n) => Some(n),
                    _ => None,
                });
                let keep = match null_clause {
                    Some(JsonNullClause::NullOnNull) => true,
                    Some(JsonNullClause::AbsentOnNull) => false,
                    None => object,
                };
                let text = match (object, l.args.as_slice()) {
                    (
                        true,
                        [FunctionArg::ExprNamed {
                            name: k,
                            arg: FunctionArgExpr::Expr(v),
                            operator: FunctionArgOperator::Value,
                        }],
                    ) => format!(
                        "{}(({k}), ({v}), {}, {keep})",
                        crate::aggregates::OBJECTAGG_FN,
                        json_raw(v)
                    ),
                    (false, [FunctionArg::Unnamed(FunctionArgExpr::Expr(v))])
                        if l.duplicate_treatment.is_none() =>
                    {
                        format!(
                            "{}(({v}), {}, {keep})",
                            crate::aggregates::ARRAYAGG_FN,
                            json_raw(v)
                        )
                    }
                    (true, _) => {
                        return Err(SqlError::validation(
                            "JSON_OBJECTAGG takes one `[KEY] key VALUE value` pair",
                            None,
                        ))
                    }
                    (false, _) => {
                        return Err(SqlError::validation(
                            "JSON_ARRAYAGG takes one value (and no DISTINCT)",
                            None,
                        ))
                    }
                };
                let mut agg = parse_expr(&text)?;
                if let Expr::Function(g) = &mut agg {
                    g.filter = f.filter.clone();
                    g.over = f.over.clone();
                }
                return Ok(Some(agg));
            }
            let Some(args) = unnamed_args(&f.args) else {
                return Ok(None);
            };
            let list = |xs: &[&Expr]| {
                xs.iter()
                    .map(|x| format!("({x})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let any_null = |xs: &[&Expr]| {
                xs.iter()
                    .map(|x| format!("({x}) IS NULL"))
                    .collect::<Vec<_>>()
                    .join(" OR ")
            };
            // Date parts, as Flink's BIGINT.
            let part = match name.as_str() {
                "year" => Some("year"),
                "quarter" => Some("quarter"),
                "month" => Some("month"),
                "week" => Some("week"),
                "dayofyear" => Some("doy"),
                "dayofmonth" => Some("day"),
                "hour" => Some("hour"),
                "minute" => Some("minute"),
                "second" => Some("second"),
                _ => None,
            };
            if let (Some(part), [x]) = (part, args.as_slice()) {
                return Ok(Some(parse_expr(&format!(
                    "CAST(date_part('{part}', {x}) AS BIGINT)"
                ))?));
            }
            match (name.as_str(), args.as_slice()) {
                // Flink names a row's fields by position, `EXPR$0`, ...
                ("row", items) if !items.is_empty() => {
                    let fields: Vec<String> = items
                        .iter()
                        .enumerate()
                        .map(|(i, x)| format!("'EXPR${i}', ({x})"))
                        .collect();
                    Ok(Some(parse_expr(&format!(
                        "named_struct({})",
                        fields.join(", ")
                    ))?))
                }
                ("dayofweek", [x]) => Ok(Some(parse_expr(&format!(
                    "CAST(date_part('dow', {x}) + 1 AS BIGINT)"
                ))?)),
                ("timestampadd", [Expr::Identifier(unit), n, ts]) => {
                    let unit = unit.value.to_lowercase();
                    let (count, unit) = match unit.as_str() {
                        "quarter" => ("3", "month"),
                        u @ ("second" | "minute" | "hour" | "day" | "week" | "month" | "year") => {
                            ("1", u)
                        }
                        u => {
                            return Err(SqlError::validation(
                                format!("TIMESTAMPADD does not take the unit {u}"),
                                None,
                            ))
                        }
                    };
                    Ok(Some(parse_expr(&format!(
                        "({ts}) + CAST(CAST(({n}) * {count} AS STRING) || ' {unit}' AS INTERVAL)"
                    ))?))
                }
                ("timestampdiff", [Expr::Identifier(unit), a, b]) => {
                    let u = unit.value.to_lowercase();
                    let seconds = match u.as_str() {
                        "second" => Some(1),
                        "minute" => Some(60),
                        "hour" => Some(3600),
                        "day" => Some(86400),
                        "week" => Some(604800),
                        _ => None,
                    };
                    let ts =
                        |x: &Expr| format!("arrow_cast(({x}), 'Timestamp(Millisecond, None)')");
                    if let Some(sec) = seconds {
                        return Ok(Some(parse_expr(&format!(
                            "CAST(trunc((date_part('epoch', {b}) - date_part('epoch', {a})) / {sec}) AS INT)",
                            a = ts(a),
                            b = ts(b)
                        ))?));
                    }
                    let per = match u.as_str() {
                        "month" => 1,
                        "quarter" => 3,
                        "year" => 12,
                        other => {
                            return Err(SqlError::validation(
                                format!("TIMESTAMPDIFF does not take the unit {other}"),
                                None,
                            ))
                        }
                    };
                    // Whole months, as Calcite counts them: the last day of
                    // a month is a whole month after any later day.
                    let (a, b) = (ts(a), ts(b));
                    let months = format!(
                        "((date_part('year', {b}) * 12 + date_part('month', {b})) - (date_part('year', {a}) * 12 + date_part('month', {a})))"
                    );
                    let within = |x: &str| {
                        format!("(date_part('epoch', {x}) - date_part('epoch', date_trunc('month', {x})))")
                    };
                    let month_end = |x: &str| {
                        format!("(date_part('month', {x} + INTERVAL '1' DAY) <> date_part('month', {x}))")
                    };
                    Ok(Some(parse_expr(&format!(
                        "CAST(trunc((CASE                            WHEN {months} > 0 AND {wb} < {wa} AND NOT {eb} THEN {months} - 1                            WHEN {months} < 0 AND {wb} > {wa} AND NOT {ea} THEN {months} + 1                            ELSE {months} END) / {per}) AS INT)",
                        wa = within(&a),
                        wb = within(&b),
                        ea = month_end(&a),
                        eb = month_end(&b),
                    ))?))
                }
                // Flink replaces every match as Java finds them, and takes
                // the replacement as it is written (no group references).
                ("regexp_replace", [text, pattern, replacement]) => Ok(Some(parse_expr(
                    &format!(
                        "{}({text}, {pattern}, {replacement})",
                        crate::flink_udfs::REGEXP_REPLACE_FN
                    ),
                )?)),
                // A NULL argument makes them NULL, as in Flink.
                ("greatest" | "least" | "concat", [_, _, ..]) => Ok(Some(parse_expr(&format!(
                    "CASE WHEN {} THEN NULL ELSE {name}({}) END",
                    any_null(&args),
                    list(&args)
                ))?)),
                // Flink's hashes are lower-case hex text.
                ("sha224" | "sha256" | "sha384" | "sha512", [x]) => Ok(Some(parse_expr(
                    &format!("encode(digest({x}, '{name}'), 'hex')"),
                )?)),
                ("sha2", [x, Expr::Value(bits)]) => {
                    let bits = bits.value.to_string();
                    if !["224", "256", "384", "512"].contains(&bits.as_str()) {
                        return Err(SqlError::validation(
                            format!("SHA2 takes 224, 256, 384 or 512 bits, not {bits}"),
                            None,
                        ));
                    }
                    Ok(Some(parse_expr(&format!(
                        "encode(digest({x}, 'sha{bits}'), 'hex')"
                    ))?))
                }
                // Flink's order arguments are booleans: ascending (NULLs
                // first), and where NULLs go.
                ("array_sort", [a, order, rest @ ..]) if rest.len() <= 1 => {
                    let flag = |x: &Expr| match x {
                        Expr::Value(v) => match v.value {
                            Value::Boolean(b) => Ok(b),
                            _ => Err(()),
                        },
                        _ => Err(()),
                    };
                    let refused = || {
                        SqlError::validation(
                            format!("{e}: ARRAY_SORT's order arguments are written TRUE or FALSE"),
                            None,
                        )
                    };
                    let asc = flag(order).map_err(|()| refused())?;
                    let nulls_first = match rest {
                        [n] => flag(n).map_err(|()| refused())?,
                        _ => asc,
                    };
                    Ok(Some(parse_expr(&format!(
                        "array_sort({a}, '{}', '{}')",
                        if asc { "ASC" } else { "DESC" },
                        if nulls_first { "NULLS FIRST" } else { "NULLS LAST" }
                    ))?))
                }
                // Flink's count of an array's or map's elements is an INT.
                ("cardinality", [a]) => Ok(Some(parse_expr(&format!(
                    "CAST(cardinality({a}) AS INT)"
                ))?)),
                ("element", [a]) => Ok(Some(parse_expr(&format!(
                    "CASE WHEN cardinality({a}) = 1 THEN ({a})[1] ELSE NULL END"
                ))?)),
                ("elt", [n, rest @ ..]) if !rest.is_empty() => {
                    let arms: String = rest
                        .iter()
                        .enumerate()
                        .map(|(i, x)| format!(" WHEN {} THEN ({x})", i + 1))
                        .collect();
                    Ok(Some(parse_expr(&format!("CASE ({n}){arms} END"))?))
                }
                // FALSE for a pattern that does not compile, as in Flink.
                ("regexp", [text, pattern]) => Ok(Some(parse_expr(&format!(
                    "CASE WHEN ({text}) IS NULL OR ({pattern}) IS NULL THEN CAST(NULL AS BOOLEAN) \
                     ELSE COALESCE({}({text}, {pattern}), FALSE) END",
                    crate::flink_udfs::TRY_REGEXP_LIKE_FN
                ))?)),
                ("regexp_substr", [text, pattern]) => Ok(Some(parse_expr(&format!(
                    "{}({text}, concat('(', {pattern}, ')'))[1]",
                    crate::flink_udfs::TRY_REGEXP_MATCH_FN
                ))?)),
                // A negative length is the empty string (NULL stays NULL).
                (side @ ("left" | "right"), [s, n]) => Ok(Some(parse_expr(&format!(
                    "CASE WHEN ({n}) < 0 THEN substr({s}, 1, 0) ELSE {side}({s}, {n}) END"
                ))?)),
                // Flink removes every element equal to the one given.
                ("array_remove", [a, x]) => Ok(Some(parse_expr(&format!(
                    "array_remove_all({a}, {x})"
                ))?)),
                // Flink's TO_TIMESTAMP is a TIMESTAMP(3), NULL for text that
                // is not a time; its format, Java's.
                ("to_timestamp", [s]) => Ok(Some(parse_expr(&format!(
                    "arrow_cast(TRY_CAST({s} AS TIMESTAMP), 'Timestamp(Millisecond, None)')"
                ))?)),
                // NaN for a negative number, as Java's Math.sqrt.
                ("sqrt", [x]) => Ok(Some(parse_expr(&format!(
                    "CASE WHEN ({x}) < 0 THEN CAST('NaN' AS DOUBLE) ELSE sqrt({x}) END"
                ))?)),
                // Not there (FALSE) when the element looked for is NULL.
                ("array_contains", [a, x]) => Ok(Some(parse_expr(&format!(
                    "CASE WHEN ({a}) IS NULL THEN NULL ELSE coalesce(array_has({a}, {x}), FALSE) END"
                ))?)),
                ("to_timestamp", [s, Expr::Value(v)]) => {
                    let Value::SingleQuotedString(pattern) = &v.value else {
                        return Ok(None);
                    };
                    Ok(Some(parse_expr(&timestamp_from_text(s, pattern))?))
                }
                // NULL for text that is not a date, as Flink's.
                ("to_date", [s]) => Ok(Some(parse_expr(&format!("TRY_CAST({s} AS DATE)"))?)),
                // Flink's collection functions DataFusion spells otherwise.
                ("split", [s, d]) => Ok(Some(parse_expr(&format!(
                    "string_to_array({s}, {d})"
                ))?)),
                // NULL for a NULL array, as Flink's (DataFusion's take it
                // as empty).
                ("array_prepend", [a, x]) => Ok(Some(parse_expr(&format!(
                    "CASE WHEN ({a}) IS NULL THEN NULL ELSE array_prepend({x}, {a}) END"
                ))?)),
                ("array_append", [a, x]) => Ok(Some(parse_expr(&format!(
                    "CASE WHEN ({a}) IS NULL THEN NULL ELSE array_append({a}, {x}) END"
                ))?)),
                ("array_concat", arrays) if !arrays.is_empty() => {
                    let nulls: Vec<String> =
                        arrays.iter().map(|a| format!("({a}) IS NULL")).collect();
                    let list: Vec<String> = arrays.iter().map(|a| a.to_string()).collect();
                    Ok(Some(parse_expr(&format!(
                        "CASE WHEN {} THEN NULL ELSE array_concat({}) END",
                        nulls.join(" OR "),
                        list.join(", ")
                    ))?))
                }
                // 0 when the element is not there, NULL when either
                // argument is NULL.
                ("array_position", [a, x]) => Ok(Some(parse_expr(&format!(
                    "CASE WHEN ({a}) IS NULL OR ({x}) IS NULL THEN CAST(NULL AS INT) \
                     ELSE coalesce(CAST(array_position({a}, {x}) AS INT), CAST(0 AS INT)) END"
                ))?)),
                ("map_from_arrays", [k, v]) => Ok(Some(parse_expr(&format!("map({k}, {v})"))?)),

                // a Java character set (DataFusion's take `'hex'` and
                // `'base64'`, which Weir's own rewrites use).
                // Flink's functions of one argument that are Weir's own
                // under another name.
                (n, [x]) if renamed(n).is_some() => Ok(Some(parse_expr(&format!(
                    "{}(({x}))",
                    renamed(n).unwrap_or_default()
                ))?)),
                // `ENCODE` and `DECODE` with a Java character set
                // (DataFusion's take `'hex'` and `'base64'`, which Weir's
                // own rewrites use).
                ("encode" | "decode", [x, Expr::Value(v)])
                    if matches!(&v.value, Value::SingleQuotedString(c)
                        if !matches!(c.to_ascii_lowercase().as_str(), "hex" | "base64" | "base64pad")) =>
                {
                    let f = if name == "encode" {
                        crate::flink_udfs::ENCODE_FN
                    } else {
                        crate::flink_udfs::DECODE_FN
                    };
                    if let Value::SingleQuotedString(c) = &v.value {
                        crate::flink_udfs::check_charset(c).map_err(|e| {
                            SqlError::validation(format!("{}: {e}", name.to_uppercase()), None)
                        })?;
                    }
                    Ok(Some(parse_expr(&format!("{f}(({x}), {v})"))?))
                }
                // `RAND_INTEGER(n)`: an INT in [0, n). A seed (`RAND(seed)`,
                // `RAND_INTEGER(seed, n)`) is refused: a statement's tasks
                // run in parallel and restart from checkpoints, so a seeded
                // sequence would not repeat as Flink's does in one task.
                ("rand_integer", [n]) => Ok(Some(parse_expr(&format!(
                    "CAST(floor(random() * ({n})) AS INT)"
                ))?)),
                ("rand_integer", [_, _]) | ("rand", [_]) => Err(SqlError::unsupported(
                    format!(
                        "{}(seed, ...) is not supported: a statement's tasks run in parallel and resume from checkpoints, so a seeded sequence would not repeat; call it without the seed",
                        name.to_uppercase()
                    ),
                )),
                // `REPLACE(s, '', r)` puts `r` between every two characters
                // and at both ends, as Java's `String.replace` does.
                ("replace", [x, Expr::Value(empty), Expr::Value(r)])
                    if matches!(&empty.value, Value::SingleQuotedString(e) if e.is_empty()) =>
                {
                    let Value::SingleQuotedString(r) = &r.value else {
                        return Ok(None);
                    };
                    let r = r.replace('$', "$$").replace('\'', "''");
                    Ok(Some(parse_expr(&format!(
                        "regexp_replace(({x}), '', '{r}', 'g')"
                    ))?))
                }
                // A literal pattern that does not compile: NULL, as in
                // Flink (DataFusion fails the statement).
                ("regexp_count" | "regexp_instr", [_, Expr::Value(v)])
                    if matches!(&v.value, Value::SingleQuotedString(p) if regex::Regex::new(p).is_err()) =>
                {
                    Ok(Some(parse_expr("CAST(NULL AS INT)")?))
                }
                // `ARRAY_SLICE(a, from)`: to the end.
                ("array_slice", [a, from]) => Ok(Some(parse_expr(&format!(
                    "array_slice(({a}), ({from}), -1)"
                ))?)),
                ("unix_timestamp", []) => Ok(Some(parse_expr(&format!(
                    "to_unixtime({}())",
                    crate::proctime::NOW_FN
                ))?)),
                // Seconds since the epoch of `yyyy-MM-dd HH:mm:ss` text read
                // in the session's time zone; text that is not a time is
                // the smallest BIGINT, as in Flink (NULL stays NULL).
                ("unix_timestamp", [s]) => Ok(Some(parse_expr(&format!(
                    "CASE WHEN ({s}) IS NULL THEN CAST(NULL AS BIGINT) \
                     ELSE COALESCE(to_unixtime({}(TRY_CAST({s} AS TIMESTAMP), '{tz}', true)), \
                     CAST(-9223372036854775807 AS BIGINT) - 1) END",
                    crate::timezone::LOCAL_INSTANT_FN
                ))?)),
                // Seconds since the epoch of text read with a Java pattern.
                ("unix_timestamp", [s, Expr::Value(v)]) => {
                    let Value::SingleQuotedString(pattern) = &v.value else {
                        return Ok(None);
                    };
                    // Text that does not match is the smallest BIGINT, as
                    // in Flink (it failed the statement).
                    Ok(Some(parse_expr(&format!(
                        "CASE WHEN ({s}) IS NULL THEN CAST(NULL AS BIGINT) \
                         ELSE COALESCE(to_unixtime({}({}, '{tz}', true)), \
                         CAST(-9223372036854775807 AS BIGINT) - 1) END",
                        crate::timezone::LOCAL_INSTANT_FN,
                        timestamp_from_text(s, pattern),
                    ))?))
                }
                ("to_date", [s, Expr::Value(v)]) => {
                    let Value::SingleQuotedString(pattern) = &v.value else {
                        return Ok(None);
                    };
                    let fmt = java_to_strftime(pattern).replace('\'', "''");
                    Ok(Some(parse_expr(&format!(
                        "{}({s}, '{fmt}')",
                        crate::flink_udfs::TRY_TO_DATE_FN
                    ))?))
                }
                // Seconds since the epoch as text in the session zone.
                ("from_unixtime", [n, rest @ ..]) if rest.len() <= 1 => {
                    let fmt = match rest {
                        [] => "%Y-%m-%d %H:%M:%S".to_string(),
                        [Expr::Value(v)] => match &v.value {
                            Value::SingleQuotedString(p) => java_to_strftime_format(p),
                            _ => return Ok(None),
                        },
                        _ => return Ok(None),
                    };
                    let fmt = fmt.replace('\'', "''");
                    Ok(Some(parse_expr(&format!(
                        "to_char(to_local_time(arrow_cast(arrow_cast(to_timestamp_seconds({n}), {}), {})), '{fmt}')",
                        ltz("UTC"),
                        ltz(tz)
                    ))?))
                }
                // Flink's LOG(x) is the natural logarithm; LOG(b, x) base b.
                ("log", [x]) => Ok(Some(parse_expr(&format!("ln({x})"))?)),
                ("log2", [x]) => Ok(Some(parse_expr(&format!("log(2, {x})"))?)),
                ("e", []) => Ok(Some(parse_expr("exp(1.0)")?)),
                ("if", [c, a, b]) => Ok(Some(parse_expr(&format!(
                    "CASE WHEN ({c}) THEN ({a}) ELSE ({b}) END"
                ))?)),
                // Text in a Java pattern, read in the session zone or the
                // zone given, as the instant it names.
                (
                    "to_timestamp_ltz",
                    [s, Expr::Value(ValueWithSpan {
                        value: Value::SingleQuotedString(pattern),
                        ..
                    }), zone @ ..],
                ) if zone.len() <= 1 => {
                    // Read in UTC unless a zone is given, as Flink's does.
                    let read_in = match zone {
                        [] => "UTC".to_string(),
                        [Expr::Value(ValueWithSpan {
                            value: Value::SingleQuotedString(z),
                            ..
                        })] => weir_catalog::parse_time_zone(z).map_err(|e| {
                            SqlError::validation(format!("TO_TIMESTAMP_LTZ: {e}"), None)
                        })?,
                        _ => {
                            return Err(SqlError::unsupported(
                                "TO_TIMESTAMP_LTZ's time zone as a string literal, such as 'Asia/Tokyo'",
                            ))
                        }
                    };
                    Ok(Some(parse_expr(&format!(
                        "arrow_cast(arrow_cast({}, {}), {})",
                        timestamp_from_text(s, pattern),
                        ltz(&read_in),
                        ltz(tz)
                    ))?))
                }
                ("to_timestamp_ltz", [n, Expr::Value(p)]) => {
                    let unit = match p.value.to_string().as_str() {
                        "0" => "seconds",
                        "3" => "millis",
                        other => {
                            return Err(SqlError::unsupported(format!(
                                "TO_TIMESTAMP_LTZ with precision {other}; use 0 (seconds) or 3 (milliseconds)"
                            )))
                        }
                    };
                    Ok(Some(parse_expr(&format!(
                        "arrow_cast(arrow_cast(to_timestamp_{unit}({n}), {}), {})",
                        ltz("UTC"),
                        ltz(tz)
                    ))?))
                }
                // Group k of the pattern is group k + 1 of the pattern in
                // parentheses, whose group 1 is the whole match (Flink's 0).
                ("regexp_extract", [text, pattern]) => Ok(Some(parse_expr(&format!(
                    "{}({text}, concat('(', {pattern}, ')'))[1]",
                    crate::flink_udfs::TRY_REGEXP_MATCH_FN
                ))?)),
                ("regexp_extract", [text, pattern, group]) => Ok(Some(parse_expr(&format!(
                    "{}({text}, concat('(', {pattern}, ')'))[({group}) + 1]",
                    crate::flink_udfs::TRY_REGEXP_MATCH_FN
                ))?)),
                ("split_index", [text, delimiter, index]) => Ok(Some(parse_expr(&format!(
                    "CASE WHEN ({index}) < 0 THEN NULL \
                     ELSE string_to_array({text}, {delimiter})[({index}) + 1] END"
                ))?)),
                ("mod", [a, b]) => Ok(Some(parse_expr(&format!("(({a}) % ({b}))"))?)),
                // Flink's GROUPING and GROUPING_ID are BIGINT, DataFusion's INT.
                ("grouping" | "grouping_id", [_, ..]) => {
                    Ok(Some(parse_expr(&format!("CAST({e} AS BIGINT)"))?))
                }
                ("locate", [needle, haystack]) => {
                    Ok(Some(parse_expr(&format!("strpos({haystack}, {needle})"))?))
                }
                // A start before the first character searches from it, as
                // Java's indexOf does.
                ("locate", [needle, haystack, from]) => {
                    let from = format!("(CASE WHEN ({from}) < 1 THEN 1 ELSE ({from}) END)");
                    Ok(Some(parse_expr(&format!(
                        "CASE WHEN strpos(substr({haystack}, {from}), {needle}) = 0 THEN 0 \
                         ELSE strpos(substr({haystack}, {from}), {needle}) + {from} - 1 END"
                    ))?))
                }
                // Java's Math.pow of two DOUBLEs: POWER(0, -1) is Infinity.
                ("power", [a, b]) => Ok(Some(parse_expr(&format!(
                    "{}({a}, {b})",
                    crate::flink_udfs::POWER_FN
                ))?)),
                ("date_format", [ts, Expr::Value(v)]) => {
                    let Value::SingleQuotedString(pattern) = &v.value else {
                        return Ok(None);
                    };
                    let mut g = f.clone();
                    g.name = ObjectName(vec![ObjectNamePart::Identifier(Ident::new("to_char"))]);
                    let fmt = java_to_strftime_format(pattern).replace('\'', "''");
                    g.args = FunctionArguments::List(
                        datafusion::sql::sqlparser::ast::FunctionArgumentList {
                            duplicate_treatment: None,
                            args: vec![
                                // Text that is not a time gives NULL, as in Flink.
                                FunctionArg::Unnamed(FunctionArgExpr::Expr(parse_expr(&format!(
                                    "{}({ts})",
                                    crate::flink_udfs::TEXT_TIMESTAMP_FN
                                ))?)),
                                FunctionArg::Unnamed(FunctionArgExpr::Expr(parse_expr(&format!(
                                    "'{fmt}'"
                                ))?)),
                            ],
                            clauses: vec![],
                        },
                    );
                    Ok(Some(Expr::Function(g)))
                }
                _ => Ok(None),
            }
        }
        _ => Ok(None),
    }
}

/// A Java `SimpleDateFormat` pattern (as Flink's `DATE_FORMAT` takes) as a
/// chrono `strftime` one (as DataFusion's `to_char` takes).
pub fn java_to_strftime(pattern: &str) -> String {
    java_pattern(pattern, false)
}

/// [`java_to_strftime`] for writing a time: a one-letter field is not
/// padded (`d` writes 5, `dd` 05), as Java writes it; `u` is the year.
pub fn java_to_strftime_format(pattern: &str) -> String {
    java_pattern(pattern, true)
}

fn java_pattern(pattern: &str, formatting: bool) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // Quoted literal text; '' is a quote.
            let mut j = i + 1;
            if j < chars.len() && chars[j] == '\'' {
                out.push('\'');
                i += 2;
                continue;
            }
            while j < chars.len() {
                if chars[j] == '\'' {
                    if chars.get(j + 1) == Some(&'\'') {
                        out.push('\'');
                        j += 2;
                        continue;
                    }
                    break;
                }
                out.push(chars[j]);
                j += 1;
            }
            i = j + 1;
            continue;
        }
        let mut n = 1;
        while i + n < chars.len() && chars[i + n] == c {
            n += 1;
        }
        let spec = match (c, n) {
            ('d', 1) if formatting => "%-d",
            ('M', 1) if formatting => "%-m",
            ('H', 1) if formatting => "%-H",
            ('h', 1) if formatting => "%-I",
            ('m', 1) if formatting => "%-M",
            ('s', 1) if formatting => "%-S",
            ('D', 1) if formatting => "%-j",
            ('u', _) if formatting => "%Y",
            ('y', 2) => "%y",
            ('y', _) => "%Y",
            ('M', 1 | 2) => "%m",
            ('M', 3) => "%b",
            ('M', _) => "%B",
            ('d', _) => "%d",
            ('D', _) => "%j",
            ('H', _) => "%H",
            ('h', _) => "%I",
            ('m', _) => "%M",
            ('s', _) => "%S",
            ('S', 1) => "%1f",
            ('S', 2) => "%2f",
            ('S', 3) => "%3f",
            ('S', 6) => "%6f",
            ('S', _) => "%9f",
            ('a', _) => "%p",
            ('E', 1..=3) => "%a",
            ('E', _) => "%A",
            ('Z' | 'X' | 'x', _) => "%z",
            ('%', _) => {
                out.push_str(&"%%".repeat(n));
                i += n;
                continue;
            }
            _ => {
                out.extend(std::iter::repeat_n(c, n));
                i += n;
                continue;
            }
        };
        out.push_str(spec);
        i += n;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::java_to_strftime;

    #[test]
    fn java_patterns_become_strftime() {
        assert_eq!(java_to_strftime("yyyy-MM-dd HH:mm:ss"), "%Y-%m-%d %H:%M:%S");
        assert_eq!(
            java_to_strftime("yyyy-MM-dd'T'HH:mm:ss.SSS"),
            "%Y-%m-%dT%H:%M:%S.%3f"
        );
        assert_eq!(java_to_strftime("dd MMM yy, EEE h a"), "%d %b %y, %a %I %p");
        assert_eq!(java_to_strftime("'it''s' 100%"), "it's 100%%");
    }
}
