//! `MATCH_RECOGNIZE` as written: the clauses `sqlparser` leaves out
//! (`WITHIN INTERVAL ...` after the pattern), each `MATCH_RECOGNIZE` taken
//! out of the query to be planned on its own, and the navigation calls of
//! its `DEFINE` and `MEASURES` (`A.price`, `LAST(A.price, 1)`,
//! `PREV(price)`, `AVG(A.price)`, `MATCH_ROWTIME()`) replaced by columns a
//! match supplies. The planning is in `planner::matching`, the matching in
//! the compute pool's `operators::matching`.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, ObjectName, Query, TableAlias,
    TableFactor, Value, VisitMut, VisitorMut,
};

use crate::error::SqlError;

/// Where `WITHIN INTERVAL '<n>' <unit>` clauses are in `sql` (outside
/// quotes): their byte ranges and lengths in milliseconds, in order.
fn within_spans(sql: &str) -> Vec<(std::ops::Range<usize>, Result<i64, String>)> {
    let bytes = sql.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    let mut quote: Option<u8> = None;
    let word_at = |i: usize, w: &str| {
        sql.get(i..i + w.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(w))
            && (i == 0 || !(bytes[i - 1] as char).is_alphanumeric() && bytes[i - 1] != b'_')
            && bytes
                .get(i + w.len())
                .is_none_or(|c| !(*c as char).is_alphanumeric() && *c != b'_')
    };
    let skip_ws = |mut j: usize| {
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        j
    };
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'\'' || c == b'`' || c == b'"' => quote = Some(c),
            None if word_at(i, "WITHIN") => {
                let j = skip_ws(i + 6);
                if word_at(j, "INTERVAL") {
                    let k = skip_ws(j + 8);
                    if bytes.get(k) == Some(&b'\'') {
                        if let Some(close) = sql[k + 1..].find('\'') {
                            let number = sql[k + 1..k + 1 + close].trim().to_string();
                            let u = skip_ws(k + 2 + close);
                            let unit_end = sql[u..]
                                .find(|c: char| !c.is_alphabetic())
                                .map_or(sql.len(), |e| u + e);
                            let unit = sql[u..unit_end].to_uppercase();
                            let ms = match unit.trim_end_matches('S') {
                                "MILLISECOND" => Some(1),
                                "SECOND" => Some(1_000),
                                "MINUTE" => Some(60_000),
                                "HOUR" => Some(3_600_000),
                                "DAY" => Some(86_400_000),
                                _ => None,
                            };
                            let value = match (number.parse::<i64>(), ms) {
                                (Ok(n), Some(ms)) if n > 0 => n
                                    .checked_mul(ms)
                                    .ok_or_else(|| format!("WITHIN INTERVAL '{number}' {unit} is too long")),
                                _ => Err(format!(
                                    "WITHIN takes a positive INTERVAL in MILLISECOND, SECOND, MINUTE, HOUR or DAY, not INTERVAL '{number}' {unit}"
                                )),
                            };
                            out.push((i..unit_end, value));
                            i = unit_end;
                            continue;
                        }
                    }
                }
            }
            None => {}
        }
        i += 1;
    }
    out
}

/// The pattern variable that carries a `WITHIN` length into the parsed
/// pattern: `PATTERN (A B) WITHIN INTERVAL '10' SECOND` is read as
/// `PATTERN (A B __weir_within_10000)`, which `sqlparser` parses (it has
/// no `WITHIN`) and a view's stored text keeps.
pub(crate) const WITHIN_MARK: &str = "__weir_within_";

/// `sql` with each `WITHIN INTERVAL ...` clause after a pattern moved into
/// the pattern as a [`WITHIN_MARK`] variable, padded with spaces so that
/// positions in messages stay where they can.
pub(crate) fn mark_within(sql: &str) -> Result<String, SqlError> {
    let spans = within_spans(sql);
    if spans.is_empty() {
        return Ok(sql.to_string());
    }
    let mut out = String::with_capacity(sql.len());
    let mut done = 0;
    for (range, ms) in spans {
        let ms = ms.map_err(|m| {
            SqlError::parse(m, Some(crate::error::offset_to_position(sql, range.start)))
        })?;
        let Some(close) = sql[..range.start]
            .trim_end()
            .strip_suffix(')')
            .map(str::len)
        else {
            continue;
        };
        if close < done {
            continue;
        }
        out.push_str(&sql[done..close]);
        let mark = format!(" {WITHIN_MARK}{ms})");
        let width = range.end - close;
        out.push_str(&mark);
        out.push_str(&" ".repeat(width.saturating_sub(mark.len())));
        done = range.end;
    }
    out.push_str(&sql[done..]);
    Ok(out)
}

/// The name a subquery that `MATCH_RECOGNIZE` reads stands under while
/// the statement is parsed ([`lift_subqueries`]).
pub(crate) const SUBQUERY_MARK: &str = "__weir_mr_input_";

/// `sqlparser` takes `MATCH_RECOGNIZE` after a table name only, where
/// Flink takes it after a subquery too: each `(SELECT ...) [AS x]
/// MATCH_RECOGNIZE` has its subquery replaced by a [`SUBQUERY_MARK`] name
/// (padded with spaces, so that positions after it stay), and the
/// subqueries' text returned in order, for [`restore_subqueries`].
pub(crate) fn lift_subqueries(sql: &str) -> (String, Vec<String>) {
    let bytes = sql.as_bytes();
    // Which bytes are inside quotes.
    let mut quoted = vec![false; bytes.len()];
    let mut quote: Option<u8> = None;
    for (i, &c) in bytes.iter().enumerate() {
        match quote {
            Some(q) if c == q => {
                quoted[i] = true;
                quote = None
            }
            Some(_) => quoted[i] = true,
            None if c == b'\'' || c == b'`' || c == b'"' => {
                quoted[i] = true;
                quote = Some(c)
            }
            None => {}
        }
    }
    let word = |i: usize, w: &str| {
        !quoted[i]
            && sql
                .get(i..i + w.len())
                .is_some_and(|s| s.eq_ignore_ascii_case(w))
            && (i == 0 || !(bytes[i - 1] as char).is_alphanumeric() && bytes[i - 1] != b'_')
            && bytes
                .get(i + w.len())
                .is_none_or(|c| !(*c as char).is_alphanumeric() && *c != b'_')
    };
    let mut out = sql.to_string();
    let mut subs = vec![];
    for i in 0..bytes.len() {
        if !word(i, "MATCH_RECOGNIZE") {
            continue;
        }
        // Back over an alias (`AS x`, `x`) to the `)` closing a subquery.
        let mut j = i;
        let back_ws = |mut j: usize| {
            while j > 0 && bytes[j - 1].is_ascii_whitespace() {
                j -= 1;
            }
            j
        };
        j = back_ws(j);
        if j > 0 && bytes[j - 1] != b')' {
            while j > 0
                && ((bytes[j - 1] as char).is_alphanumeric()
                    || bytes[j - 1] == b'_'
                    || bytes[j - 1] == b'`')
            {
                j -= 1;
            }
            j = back_ws(j);
            if sql
                .get(j.saturating_sub(2)..j)
                .is_some_and(|w| w.eq_ignore_ascii_case("AS"))
            {
                j = back_ws(j - 2);
            }
        }
        if j == 0 || bytes[j - 1] != b')' || quoted[j - 1] {
            continue;
        }
        let close = j - 1;
        let mut depth = 0i32;
        let mut open = None;
        for k in (0..=close).rev() {
            if quoted[k] {
                continue;
            }
            match bytes[k] {
                b')' => depth += 1,
                b'(' => {
                    depth -= 1;
                    if depth == 0 {
                        open = Some(k);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(open) = open else { continue };
        let inner = sql[open + 1..close].trim();
        let starts = |w: &str| {
            inner
                .get(..w.len())
                .is_some_and(|s| s.eq_ignore_ascii_case(w))
        };
        if !(starts("SELECT") || starts("WITH")) {
            continue;
        }
        let name = format!("{SUBQUERY_MARK}{}", subs.len());
        let width = close + 1 - open;
        if name.len() > width {
            continue;
        }
        subs.push(inner.to_string());
        out.replace_range(
            open..=close,
            &format!("{name}{}", " ".repeat(width - name.len())),
        );
    }
    (out, subs)
}

/// Puts back the subqueries [`lift_subqueries`] took out of `query`.
pub(crate) fn restore_subqueries(query: &mut Query, subs: &[Query]) {
    struct Put<'a> {
        subs: &'a [Query],
    }
    impl VisitorMut for Put<'_> {
        type Break = ();
        fn pre_visit_table_factor(&mut self, f: &mut TableFactor) -> ControlFlow<()> {
            if let TableFactor::MatchRecognize { table, .. } = f {
                if let TableFactor::Table { name, alias, .. } = table.as_mut() {
                    let n = name.to_string();
                    if let Some(i) = n
                        .strip_prefix(SUBQUERY_MARK)
                        .and_then(|i| i.parse::<usize>().ok())
                    {
                        if let Some(q) = self.subs.get(i) {
                            **table = TableFactor::Derived {
                                lateral: false,
                                subquery: Box::new(q.clone()),
                                alias: alias.take(),
                                sample: None,
                            };
                        }
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = query.visit(&mut Put { subs });
}

/// The name a taken-out `MATCH_RECOGNIZE` is read under.
pub(crate) fn source_name(i: usize) -> String {
    format!("__weir_match_{i}")
}

/// Takes every `MATCH_RECOGNIZE` out of `query`, in order, leaving a table
/// named by [`source_name`] under the same alias in its place.
pub(crate) fn take_out(query: &mut Query) -> Vec<TableFactor> {
    struct Take {
        found: Vec<TableFactor>,
    }
    impl VisitorMut for Take {
        type Break = ();
        fn post_visit_table_factor(&mut self, f: &mut TableFactor) -> ControlFlow<()> {
            if let TableFactor::MatchRecognize { alias, .. } = f {
                let alias: Option<TableAlias> = alias.clone();
                let name = source_name(self.found.len());
                let placeholder = TableFactor::Table {
                    name: ObjectName::from(vec![Ident::new(name)]),
                    alias,
                    args: None,
                    with_hints: vec![],
                    version: None,
                    with_ordinality: false,
                    partitions: vec![],
                    json_path: None,
                    sample: None,
                    index_hints: vec![],
                };
                self.found.push(std::mem::replace(f, placeholder));
            }
            ControlFlow::Continue(())
        }
    }
    let mut t = Take { found: vec![] };
    let _ = query.visit(&mut t);
    t.found
}

/// A navigation call of a `DEFINE` or `MEASURES` expression, as written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NavCall {
    /// `[FIRST | LAST](symbol.column, offset)`, or a plain column.
    Row {
        symbol: Option<String>,
        column: String,
        first: bool,
        offset: u32,
    },
    Prev {
        column: String,
        offset: u32,
    },
    /// An aggregate call: its name, and its argument (`None`: `*`).
    Aggregate {
        name: String,
        symbol: Option<String>,
        column: Option<String>,
        distinct: bool,
    },
    MatchRowtime,
}

/// The column name navigation call `i` is read under.
pub(crate) fn nav_column(i: usize) -> String {
    format!("__nav{i}")
}

/// Replaces the navigation calls of `expr` by columns [`nav_column`],
/// adding each distinct call to `navs`. `symbols` are the pattern's
/// variables, `columns` the input's, `is_aggregate` tells an aggregate
/// function's name.
pub(crate) fn take_navs(
    expr: &mut Expr,
    symbols: &[String],
    columns: &[String],
    is_aggregate: &dyn Fn(&str) -> bool,
    navs: &mut Vec<NavCall>,
) -> Result<(), SqlError> {
    struct Nav<'a> {
        symbols: &'a [String],
        columns: &'a [String],
        is_aggregate: &'a dyn Fn(&str) -> bool,
        navs: &'a mut Vec<NavCall>,
        error: Option<SqlError>,
    }
    fn symbol_of(symbols: &[String], name: &str) -> Option<String> {
        symbols
            .iter()
            .find(|s| s.eq_ignore_ascii_case(name))
            .cloned()
    }
    impl Nav<'_> {
        fn column(&self, name: &str) -> Result<String, SqlError> {
            self.columns
                .iter()
                .find(|c| *c == name)
                .or_else(|| self.columns.iter().find(|c| c.eq_ignore_ascii_case(name)))
                .cloned()
                .ok_or_else(|| {
                    SqlError::validation(
                        format!(
                            "MATCH_RECOGNIZE: '{name}' is not a column of its input; it has {}",
                            self.columns.join(", ")
                        ),
                        None,
                    )
                })
        }

        /// `A.col` or `col` (a column of symbol A, or of the match).
        fn reference(&self, e: &Expr) -> Result<Option<(Option<String>, String)>, SqlError> {
            Ok(match e {
                Expr::Identifier(i) => Some((None, self.column(&i.value)?)),
                Expr::CompoundIdentifier(parts) if parts.len() == 2 => {
                    let sym = symbol_of(self.symbols, &parts[0].value).ok_or_else(|| {
                        SqlError::validation(
                            format!(
                                "MATCH_RECOGNIZE: '{}' is not a pattern variable; the pattern has {}",
                                parts[0].value,
                                self.symbols.join(", ")
                            ),
                            None,
                        )
                    })?;
                    Some((Some(sym), self.column(&parts[1].value)?))
                }
                _ => None,
            })
        }

        fn replace(&mut self, call: NavCall) -> Expr {
            let i = match self.navs.iter().position(|n| *n == call) {
                Some(i) => i,
                None => {
                    self.navs.push(call);
                    self.navs.len() - 1
                }
            };
            Expr::Identifier(Ident::new(nav_column(i)))
        }

        fn visit(&mut self, e: &mut Expr) -> Result<bool, SqlError> {
            if let Some((symbol, column)) = self.reference(e)? {
                *e = self.replace(NavCall::Row {
                    symbol,
                    column,
                    first: false,
                    offset: 0,
                });
                return Ok(true);
            }
            let Expr::Function(f) = e else {
                return Ok(false);
            };
            let name = f.name.to_string().to_uppercase();
            let FunctionArguments::List(list) = &f.args else {
                if name == "MATCH_ROWTIME" || name == "MATCH_PROCTIME" {
                    return self.rowtime(e, &name);
                }
                return Ok(false);
            };
            let args: Vec<&FunctionArg> = list.args.iter().collect();
            let arg_expr = |i: usize| match args.get(i) {
                Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(e))) => Some(e),
                _ => None,
            };
            let offset = |i: usize| -> Result<u32, SqlError> {
                match arg_expr(i) {
                    None => Ok(0),
                    Some(Expr::Value(v)) => match &v.value {
                        Value::Number(n, _) => n.parse().map_err(|_| {
                            SqlError::validation(
                                format!(
                                    "{name}: the offset must be a non-negative integer, not {n}"
                                ),
                                None,
                            )
                        }),
                        other => Err(SqlError::validation(
                            format!(
                                "{name}: the offset must be a non-negative integer, not {other}"
                            ),
                            None,
                        )),
                    },
                    Some(other) => Err(SqlError::validation(
                        format!("{name}: the offset must be an integer literal, not {other}"),
                        None,
                    )),
                }
            };
            match name.as_str() {
                "MATCH_ROWTIME" | "MATCH_PROCTIME" if args.is_empty() => self.rowtime(e, &name),
                "FIRST" | "LAST" => {
                    let Some((symbol, column)) = arg_expr(0)
                        .map(|a| self.reference(a))
                        .transpose()?
                        .flatten()
                    else {
                        return Err(SqlError::validation(
                            format!("{name} takes a column of a pattern variable (A.price), and an optional offset"),
                            None,
                        ));
                    };
                    let offset = offset(1)?;
                    *e = self.replace(NavCall::Row {
                        symbol,
                        column,
                        first: name == "FIRST",
                        offset,
                    });
                    Ok(true)
                }
                "PREV" => {
                    if let Some(Expr::CompoundIdentifier(parts)) = arg_expr(0) {
                        return Err(SqlError::unsupported(format!(
                            "PREV({}) is not supported (nor by Flink, which has no physical offsets of a pattern variable): write PREV({}) for the row before the current one in the match, or LAST({}, 1)",
                            arg_expr(0).map(|a| a.to_string()).unwrap_or_default(),
                            parts.last().map(|p| p.value.as_str()).unwrap_or_default(),
                            arg_expr(0).map(|a| a.to_string()).unwrap_or_default(),
                        )));
                    }
                    let Some((_, column)) = arg_expr(0)
                        .map(|a| self.reference(a))
                        .transpose()?
                        .flatten()
                    else {
                        return Err(SqlError::validation(
                            "PREV takes a column (PREV(A.price) or PREV(price)), and an optional offset",
                            None,
                        ));
                    };
                    let offset = offset(1)?.max(1);
                    *e = self.replace(NavCall::Prev { column, offset });
                    Ok(true)
                }
                "NEXT" => Err(SqlError::unsupported(
                    "NEXT is not supported in MATCH_RECOGNIZE (nor by Flink); use PREV or LAST",
                )),
                _ if (self.is_aggregate)(&name) => {
                    let distinct = list.duplicate_treatment.is_some_and(|d| {
                        matches!(
                            d,
                            datafusion::sql::sqlparser::ast::DuplicateTreatment::Distinct
                        )
                    });
                    let (symbol, column) = match args.as_slice() {
                        [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)] => (None, None),
                        [FunctionArg::Unnamed(FunctionArgExpr::QualifiedWildcard(q))] => {
                            let q = q.to_string();
                            let sym = symbol_of(self.symbols, &q).ok_or_else(|| {
                                SqlError::validation(
                                    format!("MATCH_RECOGNIZE: '{q}' is not a pattern variable"),
                                    None,
                                )
                            })?;
                            (Some(sym), None)
                        }
                        [FunctionArg::Unnamed(FunctionArgExpr::Expr(a))] => {
                            match self.reference(a)? {
                                Some((s, c)) => (s, Some(c)),
                                None => {
                                    return Err(SqlError::unsupported(format!(
                                        "{name}(...) in MATCH_RECOGNIZE takes one column (of a pattern variable, A.price), not {a}"
                                    )))
                                }
                            }
                        }
                        _ => {
                            return Err(SqlError::unsupported(format!(
                                "{name}(...) in MATCH_RECOGNIZE takes one column, as in {name}(A.price)"
                            )))
                        }
                    };
                    *e = self.replace(NavCall::Aggregate {
                        name: name.to_lowercase(),
                        symbol,
                        column,
                        distinct,
                    });
                    Ok(true)
                }
                _ => Ok(false),
            }
        }

        fn rowtime(&mut self, e: &mut Expr, name: &str) -> Result<bool, SqlError> {
            if name == "MATCH_PROCTIME" {
                return Err(SqlError::unsupported(
                    "MATCH_PROCTIME() is not supported: matches are ordered by event time; use MATCH_ROWTIME()",
                ));
            }
            *e = self.replace(NavCall::MatchRowtime);
            Ok(true)
        }
    }
    impl VisitorMut for Nav<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            match self.visit(e) {
                Ok(_) => ControlFlow::Continue(()),
                Err(err) => {
                    self.error = Some(err);
                    ControlFlow::Break(())
                }
            }
        }
    }
    let mut v = Nav {
        symbols,
        columns,
        is_aggregate,
        navs,
        error: None,
    };
    let _ = expr.visit(&mut v);
    v.error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subquery_before_match_recognize_is_lifted_out_and_put_back() {
        let sql = "SELECT * FROM (SELECT a, ')' AS b FROM t) AS s MATCH_RECOGNIZE (PATTERN (A))";
        let (lifted, subs) = lift_subqueries(sql);
        assert_eq!(lifted.len(), sql.len());
        assert!(
            lifted.starts_with("SELECT * FROM __weir_mr_input_0"),
            "{lifted}"
        );
        assert!(lifted.contains(" AS s MATCH_RECOGNIZE"));
        assert_eq!(subs, ["SELECT a, ')' AS b FROM t"]);
        let plain = "SELECT * FROM t MATCH_RECOGNIZE (PATTERN (A))";
        assert_eq!(lift_subqueries(plain).0, plain);
    }

    #[test]
    fn within_moves_into_the_pattern_keeping_positions() {
        let sql = "SELECT * FROM t MATCH_RECOGNIZE (PATTERN (A B) WITHIN INTERVAL '10' MINUTE DEFINE A AS 'within' = 'x')";
        let marked = mark_within(sql).unwrap();
        assert_eq!(marked.len(), sql.len());
        assert!(
            marked.contains("PATTERN (A B __weir_within_600000)"),
            "{marked}"
        );
        assert!(marked.contains("'within'"));
        assert!(mark_within("PATTERN (A) WITHIN INTERVAL '1' YEAR").is_err());
        let listagg = "LISTAGG(x) WITHIN GROUP (ORDER BY y)";
        assert_eq!(mark_within(listagg).unwrap(), listagg);
    }
}
