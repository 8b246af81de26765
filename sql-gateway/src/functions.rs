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
    ("localtimestamp", "now"),
    ("current_timestamp", "now"),
    ("ln", "ln"),
    ("log10", "log10"),
    ("power", "power"),
    ("rand", "random"),
    ("uuid", "uuid"),
    ("regexp", "regexp_like"),
    ("ifnull", "coalesce"),
    ("from_unixtime", "from_unixtime"),
    ("unix_timestamp", "to_unixtime"),
    ("truncate", "trunc"),
    ("instr", "strpos"),
    ("sign", "signum"),
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
    visit_expressions_mut, CeilFloorKind, DateTimeField, Expr, FunctionArg, FunctionArgExpr,
    FunctionArguments, Ident, ObjectName, ObjectNamePart, Value, VisitMut,
};
use datafusion::sql::sqlparser::parser::Parser;

use crate::dialect::FlinkDialect;
use crate::error::SqlError;

/// Rewrites the Flink calls DataFusion does not take as they are (see the
/// module documentation) anywhere in `node`; `tz` is the session time zone
/// that `TIMESTAMP_LTZ` values take (`CURRENT_TIMESTAMP`,
/// `TO_TIMESTAMP_LTZ`) and `LOCALTIMESTAMP` is read in.
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

fn parse_expr(sql: &str) -> Result<Expr, SqlError> {
    Parser::new(&FlinkDialect)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| SqlError::parse(format!("internal rewrite of `{sql}`: {e}"), None))
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
fn ltz(tz: &str) -> String {
    format!("'Timestamp(Millisecond, Some(\"{tz}\"))'")
}

fn rewrite(e: &Expr, tz: &str) -> Result<Option<Expr>, SqlError> {
    match e {
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
        // Flink's `BYTES` (`VARBINARY(2147483647)`); DataFusion's SQL has
        // no such name.
        Expr::Cast {
            expr, data_type, ..
        } if data_type.to_string().eq_ignore_ascii_case("BYTES") => {
            Ok(Some(parse_expr(&format!("arrow_cast({expr}, 'Binary')"))?))
        }
        Expr::Floor {
            expr,
            field: CeilFloorKind::DateTimeField(f),
        } if !matches!(f, DateTimeField::NoDateTime) => {
            let unit = unit_name(f).ok_or_else(|| {
                SqlError::unsupported(format!("FLOOR(... TO {f}) is not supported"))
            })?;
            Ok(Some(parse_expr(&format!("date_trunc('{unit}', {expr})"))?))
        }
        Expr::Ceil {
            expr,
            field: CeilFloorKind::DateTimeField(f),
        } if !matches!(f, DateTimeField::NoDateTime) => {
            let unit = unit_name(f).ok_or_else(|| {
                SqlError::unsupported(format!("CEIL(... TO {f}) is not supported"))
            })?;
            Ok(Some(parse_expr(&format!(
                "CASE WHEN date_trunc('{unit}', {expr}) = ({expr}) THEN ({expr}) \
                 ELSE date_trunc('{unit}', {expr}) + INTERVAL '1' {unit} END"
            ))?))
        }
        Expr::Function(f) => {
            let name = match f.name.0.as_slice() {
                [ObjectNamePart::Identifier(i)] => i.value.to_lowercase(),
                _ => return Ok(None),
            };
            let no_args = match &f.args {
                FunctionArguments::None => true,
                FunctionArguments::List(l) => l.args.is_empty(),
                FunctionArguments::Subquery(_) => false,
            };
            // Processing time, as an instant in the session zone, and as
            // the wall-clock time there.
            match name.as_str() {
                "current_timestamp" | "now" if no_args => {
                    return Ok(Some(parse_expr(&format!(
                        "arrow_cast(now(), {})",
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
                "localtimestamp" if no_args => {
                    return Ok(Some(parse_expr(&format!(
                        "arrow_cast(to_local_time(arrow_cast(now(), {})), 'Timestamp(Millisecond, None)')",
                        ltz(tz)
                    ))?));
                }
                _ => {}
            }
            let Some(args) = unnamed_args(&f.args) else {
                return Ok(None);
            };
            match (name.as_str(), args.as_slice()) {
                ("if", [c, a, b]) => Ok(Some(parse_expr(&format!(
                    "CASE WHEN ({c}) THEN ({a}) ELSE ({b}) END"
                ))?)),
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
                    "regexp_match({text}, concat('(', {pattern}, ')'))[1]"
                ))?)),
                ("regexp_extract", [text, pattern, group]) => Ok(Some(parse_expr(&format!(
                    "regexp_match({text}, concat('(', {pattern}, ')'))[({group}) + 1]"
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
                ("locate", [needle, haystack, from]) => Ok(Some(parse_expr(&format!(
                    "CASE WHEN strpos(substr({haystack}, {from}), {needle}) = 0 THEN 0 \
                     ELSE strpos(substr({haystack}, {from}), {needle}) + ({from}) - 1 END"
                ))?)),
                ("date_format", [ts, Expr::Value(v)]) => {
                    let Value::SingleQuotedString(pattern) = &v.value else {
                        return Ok(None);
                    };
                    let mut g = f.clone();
                    g.name = ObjectName(vec![ObjectNamePart::Identifier(Ident::new("to_char"))]);
                    let fmt = java_to_strftime(pattern).replace('\'', "''");
                    g.args = FunctionArguments::List(
                        datafusion::sql::sqlparser::ast::FunctionArgumentList {
                            duplicate_treatment: None,
                            args: vec![
                                FunctionArg::Unnamed(FunctionArgExpr::Expr((*ts).clone())),
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
