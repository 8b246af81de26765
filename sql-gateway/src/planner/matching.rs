//! Plans `MATCH_RECOGNIZE`: its input as a query of its own, its pattern
//! as a list of quantified variables, and its `DEFINE` and `MEASURES`
//! expressions over the values a match supplies ([`MatchNav`]).
//!
//! Supported is what Flink (and the managed service) supports: `PARTITION
//! BY` columns, `ORDER BY` the time attribute, `MEASURES`, `ONE ROW PER
//! MATCH`, `AFTER MATCH SKIP ...`, a pattern of variables with greedy or
//! reluctant quantifiers, `DEFINE` with `FIRST`/`LAST`/`PREV` and
//! aggregates, `WITHIN`.

use super::*;
use crate::match_recognize::{nav_column, take_navs, NavCall};
use crate::plan::{MatchNav, MatchSkip, MatchSpec, PatternTerm};
use datafusion::sql::sqlparser::ast::{
    AfterMatchSkip, MatchRecognizePattern, MatchRecognizeSymbol, RepetitionQuantifier,
    RowsPerMatch, TableFactor,
};

/// A planned `MATCH_RECOGNIZE`, read as a table by the query around it.
#[derive(Debug)]
pub(crate) struct MatchSource {
    pub node: PlanNode,
    pub schema: SchemaRef,
}

impl TableSource for MatchSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

fn unsupported(what: impl Into<String>) -> SqlError {
    SqlError::unsupported(what.into())
}

/// The pattern as a list of terms (variables by name).
fn terms(
    p: &MatchRecognizePattern,
    out: &mut Vec<(String, u32, Option<u32>, bool)>,
) -> Result<(), SqlError> {
    use MatchRecognizePattern as P;
    let bounds = |q: &RepetitionQuantifier| match *q {
        RepetitionQuantifier::ZeroOrMore => (0, None),
        RepetitionQuantifier::OneOrMore => (1, None),
        RepetitionQuantifier::AtMostOne => (0, Some(1)),
        RepetitionQuantifier::Exactly(n) => (n, Some(n)),
        RepetitionQuantifier::AtLeast(n) => (n, None),
        RepetitionQuantifier::AtMost(m) => (0, Some(m)),
        RepetitionQuantifier::Range(n, m) => (n, Some(m)),
    };
    let symbol = |s: &MatchRecognizeSymbol| match s {
        MatchRecognizeSymbol::Named(i) => Ok(i.value.clone()),
        _ => Err(unsupported(
            "the pattern anchors ^ and $ are not supported in MATCH_RECOGNIZE (nor by Flink)",
        )),
    };
    match p {
        P::Symbol(s) => out.push((symbol(s)?, 1, Some(1), true)),
        P::Concat(ps) => {
            for p in ps {
                terms(p, out)?;
            }
        }
        // `A+?`: the reluctant form parses as `?` applied to `A+`.
        P::Repetition(inner, RepetitionQuantifier::AtMostOne)
            if matches!(inner.as_ref(), P::Repetition(..)) =>
        {
            let P::Repetition(base, q) = inner.as_ref() else {
                unreachable!("matched above")
            };
            let P::Symbol(s) = base.as_ref() else {
                return Err(unsupported(
                    "a quantifier applies to one pattern variable in MATCH_RECOGNIZE (Flink has no groups)",
                ));
            };
            let (min, max) = bounds(q);
            out.push((symbol(s)?, min, max, false));
        }
        P::Repetition(base, q) => {
            let P::Symbol(s) = base.as_ref() else {
                return Err(unsupported(
                    "a quantifier applies to one pattern variable in MATCH_RECOGNIZE (Flink has no groups)",
                ));
            };
            let (min, max) = bounds(q);
            if max == Some(0) || max.is_some_and(|m| m < min) {
                return Err(SqlError::validation(
                    format!("the quantifier {q} of '{s}' matches no rows"),
                    None,
                ));
            }
            out.push((symbol(s)?, min, max, true));
        }
        P::Group(inner) if matches!(inner.as_ref(), P::Symbol(_) | P::Concat(_)) => {
            terms(inner, out)?
        }
        P::Alternation(_) => {
            return Err(unsupported(
                "alternation (A | B) in a MATCH_RECOGNIZE pattern is not supported (nor by Flink)",
            ))
        }
        P::Group(_) | P::Permute(_) | P::Exclude(_) => {
            return Err(unsupported(
                "groups, PERMUTE and {- -} in a MATCH_RECOGNIZE pattern are not supported (nor by Flink)",
            ))
        }
    }
    Ok(())
}

impl Planner {
    /// Plans a taken-out `MATCH_RECOGNIZE` (`factor`) whose clause `WITHIN`
    /// is `within_ms`.
    pub(super) fn plan_match(
        &self,
        factor: TableFactor,
        hints: &TableHints,
        ctx: &CatalogContext,
        sql: &str,
    ) -> Result<MatchSource, SqlError> {
        let TableFactor::MatchRecognize {
            table,
            partition_by,
            order_by,
            measures,
            rows_per_match,
            after_match_skip,
            pattern,
            symbols: defines,
            ..
        } = factor
        else {
            unreachable!("take_out takes MATCH_RECOGNIZE only")
        };
        if matches!(rows_per_match, Some(RowsPerMatch::AllRows(_))) {
            return Err(unsupported(
                "ALL ROWS PER MATCH is not supported (nor by Flink); use ONE ROW PER MATCH",
            ));
        }
        // The input, as a query of its own (`$rowtime` too, which `*`
        // leaves out, so that it can be ordered by).
        let input_sql = format!("SELECT *, `{ROWTIME_COLUMN}` FROM {table}");
        let input_query = Parser::new(&FlinkDialect)
            .try_with_sql(&input_sql)
            .and_then(|mut p| p.parse_query())
            .map_err(|e| SqlError::validation(format!("MATCH_RECOGNIZE input: {e}"), None))?;
        let input_plan = match self.logical(&input_query, hints, ctx, sql) {
            Ok(p) => p,
            // A subquery without `$rowtime`: its own columns only.
            Err(_) => {
                let input_sql = format!("SELECT * FROM {table}");
                let q = Parser::new(&FlinkDialect)
                    .try_with_sql(&input_sql)
                    .and_then(|mut p| p.parse_query())
                    .map_err(|e| {
                        SqlError::validation(format!("MATCH_RECOGNIZE input: {e}"), None)
                    })?;
                self.logical(&q, hints, ctx, sql)?
            }
        };
        let input = self.convert(&input_plan, false, sql)?;
        if !input.is_append_only() {
            return Err(unsupported(
                "MATCH_RECOGNIZE reads an append-only input; this one updates its rows (an aggregation, a join or an upsert table)",
            ));
        }
        let input_schema = input_plan.schema().clone();
        let columns: Vec<String> = input_schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let provider = Provider {
            state: &self.state,
            ctx,
            hints,
            matches: &[],
        };
        let to_rel = SqlToRel::new_with_options(&provider, parser_options());
        let type_of = |e: &Expr, schema: &DFSchema| {
            e.to_field(schema)
                .map(|(_, f)| f.data_type().clone())
                .map_err(|e| df_error(e, sql))
        };
        let plan_over = |e: datafusion::sql::sqlparser::ast::Expr, schema: &DFSchema| {
            to_rel
                .sql_to_expr(e, schema, &mut PlannerContext::new())
                .and_then(|e| finish_lone_expr(e, schema))
                .and_then(|e| crate::timezone::localize_expr_casts(e, schema))
                .map_err(|e| df_error(e, sql))
        };

        let partition_by = partition_by
            .into_iter()
            .map(|e| {
                let planned = plan_over(e.clone(), &input_schema)?;
                match planned {
                    Expr::Column(_) => Ok(planned),
                    _ => Err(SqlError::validation(
                        format!("MATCH_RECOGNIZE partitions by columns; '{e}' is not one"),
                        None,
                    )),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let [order] = <[_; 1]>::try_from(order_by).map_err(|_| {
            SqlError::validation(
                "MATCH_RECOGNIZE is ordered by one time attribute, ascending: ORDER BY `$rowtime` (or the table's watermarked column)",
                None,
            )
        })?;
        if order.options.asc == Some(false) {
            return Err(SqlError::validation(
                "MATCH_RECOGNIZE is ordered by its time attribute ascending",
                None,
            ));
        }
        let time = plan_over(order.expr.clone(), &input_schema)?;
        let time_type = type_of(&time, &input_schema)?;
        if !matches!(time_type, DataType::Timestamp(..)) {
            return Err(SqlError::validation(
                format!(
                    "MATCH_RECOGNIZE must be ordered by a time attribute (a TIMESTAMP or TIMESTAMP_LTZ), not '{}' of type {time_type}",
                    order.expr
                ),
                None,
            ));
        }

        let mut raw = vec![];
        terms(&pattern, &mut raw)?;
        let mut within_ms = None;
        if let Some((s, ..)) = raw.last() {
            if let Some(ms) = s.strip_prefix(crate::match_recognize::WITHIN_MARK) {
                within_ms = ms.parse::<i64>().ok();
                raw.pop();
            }
        }
        if raw.is_empty() {
            return Err(SqlError::validation(
                "a MATCH_RECOGNIZE pattern needs a variable",
                None,
            ));
        }
        let mut symbols: Vec<String> = vec![];
        for (s, ..) in &raw {
            if !symbols.iter().any(|x| x.eq_ignore_ascii_case(s)) {
                symbols.push(s.clone());
            }
        }
        let symbol_index = |s: &str| symbols.iter().position(|x| x.eq_ignore_ascii_case(s));
        let pattern: Vec<PatternTerm> = raw
            .iter()
            .map(|(s, min, max, greedy)| PatternTerm {
                symbol: symbol_index(s).expect("collected above"),
                min: *min,
                max: *max,
                greedy: *greedy && min != &max.unwrap_or(u32::MAX),
            })
            .collect();
        let last = pattern.last().expect("a pattern has a variable");
        if last.greedy && last.max != Some(last.min) {
            return Err(SqlError::validation(
                format!(
                    "greedy quantifiers are not allowed on the last variable of a pattern (as in Flink): end the pattern with '{}' taken a fixed number of times, or make its quantifier reluctant ('{}+?')",
                    symbols[last.symbol], symbols[last.symbol]
                ),
                None,
            ));
        }
        if pattern.iter().all(|t| t.min == 0) {
            return Err(SqlError::validation(
                "a MATCH_RECOGNIZE pattern must take at least one row",
                None,
            ));
        }

        let is_aggregate = |name: &str| {
            self.state
                .aggregate_functions()
                .contains_key(&datafusion_name(name))
        };
        let mut calls: Vec<NavCall> = vec![];
        let mut define_asts: Vec<Option<datafusion::sql::sqlparser::ast::Expr>> =
            vec![None; symbols.len()];
        for d in defines {
            let Some(i) = symbol_index(&d.symbol.value) else {
                return Err(SqlError::validation(
                    format!(
                        "DEFINE {}: '{}' is not a variable of the pattern",
                        d.symbol, d.symbol
                    ),
                    None,
                ));
            };
            let mut e = d.definition;
            take_navs(&mut e, &symbols, &columns, &is_aggregate, &mut calls)?;
            define_asts[i] = Some(e);
        }
        let mut measure_asts = vec![];
        for m in measures {
            let mut e = m.expr;
            take_navs(&mut e, &symbols, &columns, &is_aggregate, &mut calls)?;
            measure_asts.push((m.alias.value, e));
        }

        // The navigation values and their types.
        let mut navs = vec![];
        let mut nav_fields = vec![];
        let column_index = |name: &str| {
            input_schema
                .index_of_column_by_name(None, name)
                .expect("take_navs checked the column")
        };
        for (i, call) in calls.iter().enumerate() {
            let symbol_of = |s: &Option<String>| s.as_deref().and_then(symbol_index);
            let (nav, field) = match call {
                NavCall::Row {
                    symbol,
                    column,
                    first,
                    offset,
                } => {
                    let c = column_index(column);
                    (
                        MatchNav::Row {
                            symbol: symbol_of(symbol),
                            column: c,
                            first: *first,
                            offset: *offset,
                        },
                        input_schema.field(c).data_type().clone(),
                    )
                }
                NavCall::Prev { column, offset } => {
                    let c = column_index(column);
                    (
                        MatchNav::Prev {
                            column: c,
                            offset: *offset,
                        },
                        input_schema.field(c).data_type().clone(),
                    )
                }
                NavCall::Aggregate {
                    name,
                    symbol,
                    column,
                    distinct,
                } => {
                    let arg = match column {
                        Some(c) => format!("`{}`", c.replace('`', "``")),
                        None => "*".into(),
                    };
                    let text = format!("{name}({}{arg})", if *distinct { "DISTINCT " } else { "" });
                    let ast = Parser::new(&FlinkDialect)
                        .try_with_sql(&text)
                        .and_then(|mut p| p.parse_expr())
                        .map_err(|e| SqlError::validation(e.to_string(), None))?;
                    let call = plan_over(ast, &input_schema)?;
                    let t = type_of(&call, &input_schema)?;
                    (
                        MatchNav::Aggregate {
                            symbol: symbol_of(symbol),
                            call,
                        },
                        t,
                    )
                }
                NavCall::MatchRowtime => (
                    MatchNav::MatchRowtime,
                    DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
                ),
            };
            navs.push(nav);
            nav_fields.push(Field::new(nav_column(i), field, true));
        }
        let nav_schema =
            Arc::new(DFSchema::try_from(Schema::new(nav_fields)).map_err(|e| df_error(e, sql))?);

        let defines = define_asts
            .into_iter()
            .enumerate()
            .map(|(i, d)| {
                d.map(|e| {
                    let planned = plan_over(e, &nav_schema)?;
                    let t = type_of(&planned, &nav_schema)?;
                    if t != DataType::Boolean {
                        return Err(SqlError::validation(
                            format!(
                                "DEFINE {}: the condition must be a BOOLEAN, not {t}",
                                symbols[i]
                            ),
                            None,
                        ));
                    }
                    Ok(planned)
                })
                .transpose()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut out_fields: Vec<Field> = vec![];
        for p in &partition_by {
            let Expr::Column(c) = p else {
                unreachable!("checked above")
            };
            let f = input_schema
                .field_with_unqualified_name(&c.name)
                .map_err(|e| df_error(e, sql))?;
            out_fields.push(f.as_ref().clone());
        }
        let mut measure_exprs = vec![];
        for (name, e) in measure_asts {
            let planned = plan_over(e, &nav_schema)?;
            let t = type_of(&planned, &nav_schema)?;
            if out_fields.iter().any(|f| f.name() == &name) {
                return Err(SqlError::validation(
                    format!("MATCH_RECOGNIZE: the measure '{name}' has the name of a PARTITION BY column"),
                    None,
                ));
            }
            out_fields.push(Field::new(name, t, true));
            measure_exprs.push(planned);
        }
        let skip = match &after_match_skip {
            // Flink's default (Calcite's): the next match may start at the
            // row after the last match's first.
            None | Some(AfterMatchSkip::ToNextRow) => MatchSkip::ToNextRow,
            Some(AfterMatchSkip::PastLastRow) => MatchSkip::PastLastRow,
            Some(AfterMatchSkip::ToFirst(s) | AfterMatchSkip::ToLast(s)) => {
                let i = symbol_index(&s.value).ok_or_else(|| {
                    SqlError::validation(
                        format!(
                            "AFTER MATCH SKIP: '{}' is not a variable of the pattern",
                            s.value
                        ),
                        None,
                    )
                })?;
                if matches!(after_match_skip, Some(AfterMatchSkip::ToFirst(_))) {
                    MatchSkip::ToFirst(i)
                } else {
                    MatchSkip::ToLast(i)
                }
            }
        };
        let output = Schema::new(out_fields);
        let output_schema =
            Arc::new(DFSchema::try_from(output.clone()).map_err(|e| df_error(e, sql))?);
        let node = PlanNode::MatchRecognize {
            input: Box::new(input),
            input_schema,
            spec: Box::new(MatchSpec {
                partition_by,
                time,
                pattern,
                symbols,
                navs,
                nav_schema,
                defines,
                measures: measure_exprs,
                skip,
                within_ms,
            }),
            output_schema,
        };
        Ok(MatchSource {
            node,
            schema: Arc::new(output),
        })
    }
}
