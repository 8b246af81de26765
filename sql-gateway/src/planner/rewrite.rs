//! Rewrites of the parsed statement before DataFusion plans it, where
//! Flink's validator and DataFusion's differ: numbered repeated names,
//! `$rowtime` left out of `*`, parameter placeholders refused.

use super::*;

/// A `$name` outside backticks is a parameter placeholder to DataFusion,
/// which would silently be a NULL; Weir takes no parameters, and the usual
/// cause is Flink's system column written without its backticks.
pub(super) fn refuse_placeholders(plan: &LogicalPlan, sql: &str) -> Result<(), SqlError> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    let mut found: Option<String> = None;
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::Placeholder(p) = e {
                    found = Some(p.id.clone());
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    match found {
        None => Ok(()),
        Some(id) => Err(SqlError::validation(
            format!("{id} is not a column: a name that starts with $ must be quoted, as in `{id}`"),
            None,
        )
        .locate_in(sql, Some(&id))),
    }
}

/// `COUNT(DISTINCT a, b)`, which Flink's streaming planner cannot plan
/// either, refused when planned rather than when a worker starts it.
pub(super) fn refuse_multi_column_distinct_counts(
    plan: &LogicalPlan,
    sql: &str,
) -> Result<(), SqlError> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    let mut found = false;
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::AggregateFunction(f) = e {
                    if f.func.name() == "count" && f.params.distinct && f.params.args.len() > 1 {
                        found = true;
                        return Ok(TreeNodeRecursion::Stop);
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    if !found {
        return Ok(());
    }
    Err(SqlError::unsupported(
        "COUNT(DISTINCT a, b) over several columns is not supported (nor in Flink's streaming mode); count the distinct rows of a subquery: SELECT COUNT(*) FROM (SELECT DISTINCT a, b FROM ...)".to_string(),
    )
    .locate_in(sql, Some("COUNT")))
}

/// A scalar subquery is one value: one whose rows are not bounded to one
/// (by an aggregate without `GROUP BY`, `LIMIT 1`, or a correlation, which
/// DataFusion aggregates) is refused here. Flink accepts it and fails the
/// running statement when a second row arrives; a streaming statement that
/// fails on its data hours in is worse than one refused when submitted.
pub(super) fn refuse_unbounded_scalar_subqueries(
    plan: &LogicalPlan,
    sql: &str,
) -> Result<(), SqlError> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    fn at_most_one_row(plan: &LogicalPlan) -> bool {
        match plan {
            LogicalPlan::Aggregate(a) => a.group_expr.is_empty(),
            LogicalPlan::Limit(l) => {
                matches!(l.get_fetch_type(), Ok(datafusion::logical_expr::FetchType::Literal(Some(n))) if n <= 1)
                    || at_most_one_row(&l.input)
            }
            LogicalPlan::EmptyRelation(_) => true,
            LogicalPlan::Values(v) => v.values.len() <= 1,
            LogicalPlan::Projection(_)
            | LogicalPlan::Filter(_)
            | LogicalPlan::SubqueryAlias(_)
            | LogicalPlan::Sort(_) => plan.inputs().iter().all(|i| at_most_one_row(i)),
            _ => false,
        }
    }
    let mut found = false;
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::ScalarSubquery(sq) = e {
                    if sq.outer_ref_columns.is_empty() && !at_most_one_row(&sq.subquery) {
                        found = true;
                        return Ok(TreeNodeRecursion::Stop);
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    if found {
        return Err(SqlError::validation(
            "a scalar subquery must give at most one row, and this one can give more: \
             aggregate it (MAX(...), COUNT(*), ... without GROUP BY) or end it with LIMIT 1",
            subquery_start(sql),
        ));
    }
    Ok(())
}

/// Where the first `(SELECT` of `sql` opens its `SELECT`.
fn subquery_start(sql: &str) -> Option<(u64, u64)> {
    sql.char_indices().find_map(|(i, c)| {
        let rest = sql[i + c.len_utf8()..].trim_start();
        (c == '('
            && rest
                .get(..6)
                .is_some_and(|w| w.eq_ignore_ascii_case("select")))
        .then(|| crate::error::offset_to_position(sql, sql.len() - rest.len()))
    })
}

/// Names repeated in a select list get a number, as Flink's validator
/// gives them (`SELECT a, a` is `a, a0`), where DataFusion refuses them:
/// in order, a name already used is aliased `<name><n>`, the first `n` from
/// 0 that no item before it is named (`a, a, b AS a0, t.a` is `a, a0, a00,
/// a1`). An expression with no name is named
/// `EXPR$<position>`, as in Flink.
pub(super) fn uniquify_select_names(query: &mut Query) {
    use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, VisitMut, VisitorMut};
    struct Names;
    impl VisitorMut for Names {
        type Break = ();
        fn pre_visit_query(&mut self, q: &mut Query) -> std::ops::ControlFlow<()> {
            fn set_expr(s: &mut SetExpr) {
                match s {
                    SetExpr::Select(select) => uniquify(&mut select.projection),
                    SetExpr::SetOperation { left, right, .. } => {
                        set_expr(left);
                        set_expr(right);
                    }
                    _ => {}
                }
            }
            set_expr(&mut q.body);
            std::ops::ControlFlow::Continue(())
        }
    }
    fn name(item: &SelectItem) -> Option<String> {
        match item {
            SelectItem::UnnamedExpr(SqlExpr::Identifier(i)) => Some(i.value.clone()),
            SelectItem::UnnamedExpr(SqlExpr::CompoundIdentifier(p)) => {
                p.last().map(|i| i.value.clone())
            }
            SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.clone()),
            _ => None,
        }
    }
    fn uniquify(items: &mut [SelectItem]) {
        // An expression without a name is named `EXPR$<position>`, as
        // Flink's validator names it (DataFusion would name it after its
        // text, and two such texts can collide).
        let named: Vec<Option<String>> = items.iter().map(name).collect();
        for (i, item) in items.iter_mut().enumerate() {
            if named[i].is_some() {
                continue;
            }
            if let SelectItem::UnnamedExpr(_) = item {
                let fresh = format!("EXPR${i}");
                if named.iter().flatten().any(|n| *n == fresh) {
                    continue;
                }
                let SelectItem::UnnamedExpr(expr) =
                    std::mem::replace(item, SelectItem::Wildcard(Default::default()))
                else {
                    unreachable!("matched above")
                };
                *item = SelectItem::ExprWithAlias {
                    expr,
                    alias: Ident::new(fresh),
                };
            }
        }
        // Calcite's `SqlValidatorUtil.uniquify`: in order, a name already
        // used becomes the first `<name><j>` (j from 0) not used so far.
        let names: Vec<Option<String>> = items.iter().map(name).collect();
        let mut used = std::collections::HashSet::new();
        for (item, n) in items.iter_mut().zip(names) {
            let Some(n) = n else { continue };
            if used.insert(n.clone()) {
                continue;
            }
            let fresh = (0..)
                .map(|i| format!("{n}{i}"))
                .find(|f| !used.contains(f))
                .expect("a free name");
            used.insert(fresh.clone());
            let expr = match std::mem::replace(item, SelectItem::Wildcard(Default::default())) {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
                _ => unreachable!("named items are expressions"),
            };
            *item = SelectItem::ExprWithAlias {
                expr,
                alias: Ident::new(fresh),
            };
        }
    }
    let _ = query.visit(&mut Names);
}

/// `SELECT *` over a table leaves out `$rowtime`: Flink's system column is
/// only there when named. Over several relations (a join), `*` becomes one
/// `q.*` per relation, so that each table's `$rowtime` can be left out by
/// its qualifier. A `WITH` query's name is not a table: its columns are
/// those its query selects (with `$rowtime` already left out of a `*`).
pub(super) fn hide_rowtime(query: &mut Query) {
    hide(query, &mut vec![]);
}

/// [`hide_rowtime`] of `query`, inside `WITH` queries named `ctes`.
fn hide(query: &mut Query, ctes: &mut Vec<String>) {
    /// The name a relation's columns are qualified with, and whether it is
    /// a table (which has `$rowtime`).
    fn qualifier(t: &TableFactor, ctes: &[String]) -> Option<(ObjectName, bool)> {
        match t {
            TableFactor::Table { name, alias, .. } => Some((
                alias
                    .as_ref()
                    .map_or_else(|| name.clone(), |a| ObjectName::from(vec![a.name.clone()])),
                !(name.0.len() == 1 && last(name).is_some_and(|n| ctes.contains(&n))),
            )),
            TableFactor::Derived { alias: Some(a), .. }
            | TableFactor::UNNEST { alias: Some(a), .. } => {
                Some((ObjectName::from(vec![a.name.clone()]), false))
            }
            _ => None,
        }
    }
    fn last(n: &ObjectName) -> Option<String> {
        n.0.last()
            .and_then(|p| p.as_ident())
            .map(|i| i.value.clone())
    }
    fn set_expr(s: &mut SetExpr, ctes: &mut Vec<String>) {
        match s {
            SetExpr::Select(select) => {
                for t in &mut select.from {
                    if let TableFactor::Derived { subquery, .. } = &mut t.relation {
                        hide(subquery, ctes);
                    }
                    for j in &mut t.joins {
                        if let TableFactor::Derived { subquery, .. } = &mut j.relation {
                            hide(subquery, ctes);
                        }
                    }
                }
                let relations: Vec<&TableFactor> = select
                    .from
                    .iter()
                    .flat_map(|t| {
                        std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation))
                    })
                    .collect();
                let Some(quals) = relations
                    .iter()
                    .map(|r| qualifier(r, ctes))
                    .collect::<Option<Vec<_>>>()
                else {
                    return;
                };
                if quals.len() > 1 {
                    let items = std::mem::take(&mut select.projection);
                    for item in items {
                        match item {
                            SelectItem::Wildcard(o) if o == Default::default() => {
                                for (q, _) in &quals {
                                    select.projection.push(SelectItem::QualifiedWildcard(
                                        SelectItemQualifiedWildcardKind::ObjectName(q.clone()),
                                        Default::default(),
                                    ));
                                }
                            }
                            other => select.projection.push(other),
                        }
                    }
                }
                let tables: Vec<String> = quals
                    .iter()
                    .filter(|(_, table)| *table)
                    .filter_map(|(q, _)| last(q))
                    .collect();
                for item in &mut select.projection {
                    let opts = match item {
                        SelectItem::Wildcard(o) if quals.len() == 1 && quals[0].1 => o,
                        SelectItem::QualifiedWildcard(
                            SelectItemQualifiedWildcardKind::ObjectName(q),
                            o,
                        ) if last(q).is_some_and(|q| tables.contains(&q)) => o,
                        _ => continue,
                    };
                    let rowtime = ObjectName::from(vec![Ident::with_quote('`', ROWTIME_COLUMN)]);
                    opts.opt_exclude = Some(match opts.opt_exclude.take() {
                        None => ExcludeSelectItem::Single(rowtime),
                        Some(ExcludeSelectItem::Single(o)) => {
                            ExcludeSelectItem::Multiple(vec![o, rowtime])
                        }
                        Some(ExcludeSelectItem::Multiple(mut v)) => {
                            v.push(rowtime);
                            ExcludeSelectItem::Multiple(v)
                        }
                    });
                }
            }
            SetExpr::Query(q) => hide(q, ctes),
            SetExpr::SetOperation { left, right, .. } => {
                set_expr(left, ctes);
                set_expr(right, ctes);
            }
            _ => {}
        }
    }
    let outer = ctes.len();
    if let Some(with) = &mut query.with {
        for cte in &mut with.cte_tables {
            hide(&mut cte.query, ctes);
            ctes.push(cte.alias.name.value.clone());
        }
    }
    set_expr(&mut query.body, ctes);
    ctes.truncate(outer);
}

/// Calls in one select that differ only in a `CAST` of an argument
/// (`AVG(a)`, `AVG(CAST(a AS DOUBLE))`) would get one name from DataFusion,
/// which names a cast after the value cast, and the aggregate holding both
/// would be refused; each such cast is wrapped in
/// [`crate::flink_udfs::TAGGED_CAST_FN`], which names it after its type too.
pub(super) fn tag_colliding_casts(query: &mut Query) {
    use datafusion::sql::sqlparser::ast::{
        Expr as SqlExpr, FunctionArg, FunctionArgExpr, FunctionArguments, Value, VisitMut,
        VisitorMut,
    };
    use std::collections::HashMap;

    /// The call's text with every top-level cast argument left out.
    fn stripped(f: &datafusion::sql::sqlparser::ast::Function) -> Option<String> {
        let FunctionArguments::List(list) = &f.args else {
            return None;
        };
        let mut any = false;
        let args: Vec<String> = list
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(SqlExpr::Cast { expr, .. })) => {
                    any = true;
                    expr.to_string()
                }
                other => other.to_string(),
            })
            .collect();
        any.then(|| format!("{}({})", f.name, args.join(", ")))
    }

    fn collect(e: &SqlExpr, out: &mut HashMap<String, Vec<String>>) {
        let _ = datafusion::sql::sqlparser::ast::visit_expressions(e, |e| {
            if let SqlExpr::Function(f) = e {
                let key = stripped(f).unwrap_or_else(|| f.to_string());
                let full = f.to_string();
                let seen = out.entry(key).or_default();
                if !seen.contains(&full) {
                    seen.push(full);
                }
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
    }

    struct Tag;
    impl VisitorMut for Tag {
        type Break = ();
        fn pre_visit_query(&mut self, q: &mut Query) -> std::ops::ControlFlow<()> {
            let SetExpr::Select(select) = q.body.as_mut() else {
                return std::ops::ControlFlow::Continue(());
            };
            let mut calls: HashMap<String, Vec<String>> = HashMap::new();
            for item in &select.projection {
                match item {
                    SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                        collect(e, &mut calls)
                    }
                    _ => {}
                }
            }
            if let Some(h) = &select.having {
                collect(h, &mut calls);
            }
            let colliding: std::collections::HashSet<String> = calls
                .into_iter()
                .filter(|(_, texts)| texts.len() > 1)
                .map(|(key, _)| key)
                .collect();
            if colliding.is_empty() {
                return std::ops::ControlFlow::Continue(());
            }
            let wrap = |e: &mut SqlExpr| {
                let _ = datafusion::sql::sqlparser::ast::visit_expressions_mut(e, |e| {
                    if let SqlExpr::Function(f) = e {
                        if !stripped(f).is_some_and(|k| colliding.contains(&k)) {
                            return std::ops::ControlFlow::<()>::Continue(());
                        }
                        let FunctionArguments::List(list) = &mut f.args else {
                            return std::ops::ControlFlow::Continue(());
                        };
                        for arg in &mut list.args {
                            if let FunctionArg::Unnamed(FunctionArgExpr::Expr(
                                cast @ SqlExpr::Cast { .. },
                            )) = arg
                            {
                                let SqlExpr::Cast { data_type, .. } = &*cast else {
                                    unreachable!("matched above")
                                };
                                let tag = data_type.to_string();
                                let inner = std::mem::replace(cast, SqlExpr::value(Value::Null));
                                *cast =
                                    SqlExpr::Function(datafusion::sql::sqlparser::ast::Function {
                                        name: datafusion::sql::sqlparser::ast::ObjectName::from(
                                            vec![datafusion::sql::sqlparser::ast::Ident::new(
                                                crate::flink_udfs::TAGGED_CAST_FN,
                                            )],
                                        ),
                                        uses_odbc_syntax: false,
                                        parameters: FunctionArguments::None,
                                        args: FunctionArguments::List(
                                            datafusion::sql::sqlparser::ast::FunctionArgumentList {
                                                duplicate_treatment: None,
                                                args: vec![
                                                    FunctionArg::Unnamed(FunctionArgExpr::Expr(
                                                        inner,
                                                    )),
                                                    FunctionArg::Unnamed(FunctionArgExpr::Expr(
                                                        SqlExpr::value(Value::SingleQuotedString(
                                                            tag,
                                                        )),
                                                    )),
                                                ],
                                                clauses: vec![],
                                            },
                                        ),
                                        filter: None,
                                        null_treatment: None,
                                        over: None,
                                        within_group: vec![],
                                    });
                            }
                        }
                    }
                    std::ops::ControlFlow::Continue(())
                });
            };
            for item in &mut select.projection {
                match item {
                    SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                        wrap(e)
                    }
                    _ => {}
                }
            }
            if let Some(h) = &mut select.having {
                wrap(h);
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let _ = query.visit(&mut Tag);
}

/// An integer literal is an `INT` in Flink when it fits one and a `BIGINT`
/// only when it does not; DataFusion makes every one a `BIGINT`. Without
/// this, `7 / 2` and `ABS(-3)` would be `BIGINT`s, `int_col + 1` would not
/// wrap around as Flink's `INT` arithmetic does, and `7.0 / 2` would take a
/// `BIGINT`'s 19 digits into its `DECIMAL` precision and scale, so that
/// Flink's `3.500000000000` would print with more zeros.
///
/// A `VALUES` column is an `INT` when every row of it is an integer
/// literal that fits one. The literals of `LIMIT`/`OFFSET`, sort keys and
/// `OVER` arguments (offsets, buckets) keep their type: they name counts,
/// not values whose type a result shows.
pub(super) fn int_literals(plan: LogicalPlan) -> datafusion::common::Result<LogicalPlan> {
    use datafusion::common::tree_node::Transformed;
    use datafusion::logical_expr::expr_rewriter::NamePreserver;
    plan.transform_up_with_subqueries(|node| {
        if let LogicalPlan::Values(v) = node {
            return narrow_values(v).map(|v| v.update_data(LogicalPlan::Values));
        }
        let node = if matches!(
            node,
            LogicalPlan::Limit(_) | LogicalPlan::Sort(_) | LogicalPlan::Window(_)
        ) {
            Transformed::no(node)
        } else {
            let names = NamePreserver::new(&node);
            let narrow = |e: Expr| -> datafusion::common::Result<Transformed<Expr>> {
                let saved = names.save(&e);
                let narrowed = narrow_int_literals(e)?;
                Ok(if narrowed.transformed {
                    narrowed.update_data(|e| saved.restore(e))
                } else {
                    narrowed
                })
            };
            node.map_expressions(|e| match e {
                // Each key of a grouping set keeps its name: an alias
                // around the set would make it one key.
                Expr::GroupingSet(set) => {
                    use datafusion::logical_expr::GroupingSet;
                    let mut changed = false;
                    let mut keys = |v: Vec<Expr>| {
                        v.into_iter()
                            .map(|x| {
                                let t = narrow(x)?;
                                changed |= t.transformed;
                                Ok(t.data)
                            })
                            .collect::<datafusion::common::Result<Vec<Expr>>>()
                    };
                    let set = match set {
                        GroupingSet::Rollup(v) => GroupingSet::Rollup(keys(v)?),
                        GroupingSet::Cube(v) => GroupingSet::Cube(keys(v)?),
                        GroupingSet::GroupingSets(sets) => GroupingSet::GroupingSets(
                            sets.into_iter()
                                .map(&mut keys)
                                .collect::<datafusion::common::Result<_>>()?,
                        ),
                    };
                    Ok(Transformed::new_transformed(
                        Expr::GroupingSet(set),
                        changed,
                    ))
                }
                e => narrow(e),
            })?
        };
        // A column's type may have changed below, whether or not this
        // node's own expressions did.
        node.map_data(|p| p.recompute_schema())
    })
    .map(|t| t.data)
}

/// `VALUES` rows with each column whose rows are all integer literals
/// that fit an `INT` (or NULL, at least one not) made `INT`.
fn narrow_values(
    v: datafusion::logical_expr::Values,
) -> datafusion::common::Result<
    datafusion::common::tree_node::Transformed<datafusion::logical_expr::Values>,
> {
    use datafusion::common::tree_node::Transformed;
    let fits = |e: &Expr| match e {
        Expr::Literal(ScalarValue::Int64(Some(x)), _) => Some(i32::try_from(*x).is_ok()),
        Expr::Literal(ScalarValue::Int64(None) | ScalarValue::Null, _) => None,
        _ => Some(false),
    };
    let narrow: Vec<bool> = (0..v.schema.fields().len())
        .map(|j| {
            v.schema.field(j).data_type() == &DataType::Int64 && {
                let each: Vec<Option<bool>> = v.values.iter().map(|row| fits(&row[j])).collect();
                each.iter().all(|f| *f != Some(false)) && each.contains(&Some(true))
            }
        })
        .collect();
    if !narrow.contains(&true) {
        return Ok(Transformed::no(v));
    }
    let values = v
        .values
        .into_iter()
        .map(|row| {
            row.into_iter()
                .enumerate()
                .map(|(j, e)| match e {
                    Expr::Literal(ScalarValue::Int64(x), meta) if narrow[j] => {
                        Expr::Literal(ScalarValue::Int32(x.map(|x| x as i32)), meta)
                    }
                    Expr::Literal(ScalarValue::Null, meta) if narrow[j] => {
                        Expr::Literal(ScalarValue::Int32(None), meta)
                    }
                    e => e,
                })
                .collect()
        })
        .collect();
    let fields = v
        .schema
        .iter()
        .enumerate()
        .map(|(j, (q, f))| {
            let f = if narrow[j] {
                Arc::new(f.as_ref().clone().with_data_type(DataType::Int32))
            } else {
                f.clone()
            };
            (q.cloned(), f)
        })
        .collect();
    let schema =
        datafusion::common::DFSchema::new_with_metadata(fields, v.schema.metadata().clone())?;
    Ok(Transformed::yes(datafusion::logical_expr::Values {
        schema: Arc::new(schema),
        values,
    }))
}

/// `e` with its integer literals that fit an `INT` made `INT`s (see
/// [`int_literals`]).
pub(super) fn narrow_int_literals(
    e: Expr,
) -> datafusion::common::Result<datafusion::common::tree_node::Transformed<Expr>> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    e.transform(|e| match e {
        Expr::Literal(ScalarValue::Int64(Some(v)), meta) if i32::try_from(v).is_ok() => Ok(
            Transformed::yes(Expr::Literal(ScalarValue::Int32(Some(v as i32)), meta)),
        ),
        // A decimal literal below 1 has a digit for its zero in Flink:
        // `0.1` is a `DECIMAL(2, 1)`, `-0.05` a `DECIMAL(3, 2)`.
        Expr::Literal(ScalarValue::Decimal128(v, p, s), meta) if s >= 0 && (p as i8) <= s => {
            Ok(Transformed::yes(Expr::Literal(
                ScalarValue::Decimal128(v, (s as u8 + 1).min(38), s),
                meta,
            )))
        }
        e => Ok(Transformed::no(e)),
    })
}

/// `INTERSECT ALL` and `EXCEPT ALL` as Flink plans them (its
/// `RewriteIntersectAllRule` and `RewriteMinusAllRule`): both sides' rows
/// counted per distinct row, in one aggregation over their union, and each
/// row repeated `LEAST(left, right)` times (`INTERSECT ALL`) or `left -
/// right` times (`EXCEPT ALL`). DataFusion plans them as a semi or anti
/// join of the left side's rows, which keeps every duplicate of a row that
/// has one match (and drops every duplicate that has one). The distinct
/// forms are left as DataFusion plans them (a join of the distinct left
/// side), which is right.
pub(super) fn set_operations_all(plan: LogicalPlan) -> datafusion::common::Result<LogicalPlan> {
    use datafusion::common::tree_node::Transformed;
    use datafusion::common::{JoinType, NullEquality};
    use datafusion::logical_expr::{col, lit, when, LogicalPlanBuilder};
    plan.transform_up_with_subqueries(|node| {
        let LogicalPlan::Join(j) = &node else {
            return Ok(Transformed::no(node));
        };
        let except = match j.join_type {
            JoinType::LeftSemi => false,
            JoinType::LeftAnti => true,
            _ => return Ok(Transformed::no(node)),
        };
        // Before the optimizer runs, a semi or anti join that matches NULLs
        // to NULLs on every column is a set operation; with a DISTINCT
        // left side, the distinct one.
        let every_column = j.on.len() == j.left.schema().fields().len();
        if j.null_equality != NullEquality::NullEqualsNull
            || j.filter.is_some()
            || !every_column
            || matches!(j.left.as_ref(), LogicalPlan::Distinct(_))
        {
            return Ok(Transformed::no(node));
        }
        let name = |i: usize| format!("__weir_set_c{i}");
        let side = |p: &LogicalPlan, mark: (i64, i64)| {
            let mut exprs: Vec<Expr> = p
                .schema()
                .columns()
                .into_iter()
                .enumerate()
                .map(|(i, c)| Expr::Column(c).alias(name(i)))
                .collect();
            exprs.push(lit(mark.0).alias("__weir_set_l"));
            exprs.push(lit(mark.1).alias("__weir_set_r"));
            LogicalPlanBuilder::from(p.clone()).project(exprs)?.build()
        };
        let n = j.left.schema().fields().len();
        let keys: Vec<Expr> = (0..n).map(|i| col(name(i))).collect();
        let (lc, rc) = (col("__weir_set_lc"), col("__weir_set_rc"));
        let (keep, times) = if except {
            (lc.clone().gt(rc.clone()), lc.clone() - rc.clone())
        } else {
            (
                lc.clone().gt(lit(0i64)).and(rc.clone().gt(lit(0i64))),
                when(lc.clone().lt(rc.clone()), lc.clone()).otherwise(rc.clone())?,
            )
        };
        let mut repeated = keys.clone();
        repeated.push(
            datafusion::functions_nested::expr_fn::array_repeat(lit(true), times)
                .alias("__weir_set_n"),
        );
        // The left side's names and qualifiers, as the join's output had.
        let back: Vec<Expr> = j
            .left
            .schema()
            .iter()
            .enumerate()
            .map(|(i, (q, f))| col(name(i)).alias_qualified(q.cloned(), f.name()))
            .collect();
        let rewritten = LogicalPlanBuilder::from(side(&j.left, (1, 0))?)
            .union(side(&j.right, (0, 1))?)?
            .aggregate(
                keys,
                vec![
                    datafusion::functions_aggregate::expr_fn::sum(col("__weir_set_l"))
                        .alias("__weir_set_lc"),
                    datafusion::functions_aggregate::expr_fn::sum(col("__weir_set_r"))
                        .alias("__weir_set_rc"),
                ],
            )?
            .filter(keep)?
            .project(repeated)?
            .unnest_column("__weir_set_n")?
            .project(back)?
            .build()?;
        Ok(Transformed::yes(rewritten))
    })
    .map(|t| t.data)
}

/// Flink's common type of a `DOUBLE` (or `FLOAT`) and a `DECIMAL` is the
/// `DOUBLE`; DataFusion's, for `COALESCE`, `CASE` and the like, is a
/// `DECIMAL`, into which it casts the floating-point values (`COALESCE(temp,
/// -273.15)` showed `21.500000000000000` and would lose a value too large
/// or too small for its scale). Where the arguments of `COALESCE`, `NVL`,
/// `IFNULL`, `NULLIF`, `GREATEST` or `LEAST`, or the results of a `CASE`,
/// mix the two, the decimals are cast to `DOUBLE` before DataFusion's type
/// coercion runs.
pub(super) fn float_over_decimal(plan: LogicalPlan) -> datafusion::common::Result<LogicalPlan> {
    use datafusion::common::tree_node::TreeNode;
    use datafusion::logical_expr::expr_rewriter::NamePreserver;
    use datafusion::logical_expr::utils::merge_schema;
    plan.transform_up_with_subqueries(|node| {
        let schema = merge_schema(&node.inputs());
        let names = NamePreserver::new(&node);
        node.map_expressions(|e| {
            let saved = names.save(&e);
            let t = e.transform_up(|x| widen_decimals(x, &schema))?;
            Ok(if t.transformed {
                t.update_data(|e| saved.restore(e))
            } else {
                t
            })
        })?
        .map_data(|n| n.recompute_schema())
    })
    .map(|t| t.data)
}

/// [`float_over_decimal`] of one expression (its children already done).
fn widen_decimals(
    e: Expr,
    schema: &datafusion::common::DFSchema,
) -> datafusion::common::Result<datafusion::common::tree_node::Transformed<Expr>> {
    use datafusion::common::tree_node::Transformed;
    let kind = |x: &Expr| match x.get_type(schema) {
        Ok(DataType::Float16 | DataType::Float32 | DataType::Float64) => 1u8,
        Ok(DataType::Decimal32(..) | DataType::Decimal64(..))
        | Ok(DataType::Decimal128(..) | DataType::Decimal256(..)) => 2,
        _ => 0,
    };
    let mixed = |xs: &[&Expr]| {
        let ks: Vec<u8> = xs.iter().map(|x| kind(x)).collect();
        ks.contains(&1) && ks.contains(&2)
    };
    let widen = |x: Expr| {
        if kind(&x) == 2 {
            Expr::Cast(datafusion::logical_expr::Cast::new(
                Box::new(x),
                DataType::Float64,
            ))
        } else {
            x
        }
    };
    match e {
        Expr::ScalarFunction(mut f)
            if matches!(
                f.name(),
                "coalesce" | "nvl" | "ifnull" | "nullif" | "greatest" | "least"
            ) && mixed(&f.args.iter().collect::<Vec<_>>()) =>
        {
            f.args = f.args.into_iter().map(widen).collect();
            Ok(Transformed::yes(Expr::ScalarFunction(f)))
        }
        Expr::Case(mut c)
            if mixed(
                &c.when_then_expr
                    .iter()
                    .map(|(_, t)| t.as_ref())
                    .chain(c.else_expr.as_deref())
                    .collect::<Vec<_>>(),
            ) =>
        {
            c.when_then_expr = c
                .when_then_expr
                .into_iter()
                .map(|(w, t)| (w, Box::new(widen(*t))))
                .collect();
            c.else_expr = c.else_expr.map(|x| Box::new(widen(*x)));
            Ok(Transformed::yes(Expr::Case(c)))
        }
        e => Ok(Transformed::no(e)),
    }
}
