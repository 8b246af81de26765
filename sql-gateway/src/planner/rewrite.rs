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

/// Names repeated in a select list get a number, as Flink's validator
/// gives them (`SELECT a, a` is `a, a0`), where DataFusion refuses them:
/// a repeated column or alias is aliased `<name><n>`, the first `n` from 0
/// that no other item is named. An expression with no name is named
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
        let names: Vec<Option<String>> = items.iter().map(name).collect();
        let mut taken: std::collections::HashSet<String> =
            names.iter().flatten().cloned().collect();
        let mut seen = std::collections::HashSet::new();
        for (item, n) in items.iter_mut().zip(names) {
            let Some(n) = n else { continue };
            if seen.insert(n.clone()) {
                continue;
            }
            let fresh = (0..)
                .map(|i| format!("{n}{i}"))
                .find(|f| !taken.contains(f))
                .expect("a free name");
            taken.insert(fresh.clone());
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
/// its qualifier.
pub(super) fn hide_rowtime(query: &mut Query) {
    /// The name a relation's columns are qualified with, and whether it is
    /// a table (which has `$rowtime`).
    fn qualifier(t: &TableFactor) -> Option<(ObjectName, bool)> {
        match t {
            TableFactor::Table { name, alias, .. } => Some((
                alias
                    .as_ref()
                    .map_or_else(|| name.clone(), |a| ObjectName::from(vec![a.name.clone()])),
                true,
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
    fn set_expr(s: &mut SetExpr) {
        match s {
            SetExpr::Select(select) => {
                for t in &mut select.from {
                    if let TableFactor::Derived { subquery, .. } = &mut t.relation {
                        hide_rowtime(subquery);
                    }
                    for j in &mut t.joins {
                        if let TableFactor::Derived { subquery, .. } = &mut j.relation {
                            hide_rowtime(subquery);
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
                    .map(|r| qualifier(r))
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
            SetExpr::Query(q) => hide_rowtime(q),
            SetExpr::SetOperation { left, right, .. } => {
                set_expr(left);
                set_expr(right);
            }
            _ => {}
        }
    }
    set_expr(&mut query.body);
}
