//! Views: a statement that reads a view reads the view's query in its
//! place, as a subquery under the view's name, before anything else is
//! planned (so windows, joins and hints in a view plan as they would
//! written out).

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Ident, Query, TableAlias, TableFactor, VisitMut, VisitorMut,
};

use crate::metadata::{object_parts, CatalogContext};
use crate::SqlError;

/// How many views one statement may expand, nested or side by side: a view
/// that reads itself, directly or through others, stops here.
const MAX_EXPANSIONS: usize = 64;

struct Expand<'a> {
    ctx: &'a CatalogContext,
    /// Names a `WITH` clause defines: those are not views.
    ctes: HashSet<String>,
    expanded: usize,
    error: Option<SqlError>,
}

impl Expand<'_> {
    fn view_query(&self, parts: &[String]) -> Result<Option<(String, Query)>, SqlError> {
        let (catalog, db, table) = match parts {
            [t] if self.ctes.contains(t) => return Ok(None),
            [t] => (None, None, t.as_str()),
            [d, t] => (None, Some(d.as_str()), t.as_str()),
            [c, d, t] => (Some(c.as_str()), Some(d.as_str()), t.as_str()),
            _ => return Ok(None),
        };
        let Ok(def) = self.ctx.find_table(catalog, db, table) else {
            return Ok(None);
        };
        let Some(text) = &def.view else {
            return Ok(None);
        };
        let parsed = crate::parse(text).map_err(|e| {
            SqlError::validation(format!("view '{table}' no longer plans: {e}"), None)
        })?;
        match parsed.statement {
            crate::FlinkStatement::Query(q) => Ok(Some((def.name.clone(), *q))),
            _ => Err(SqlError::validation(
                format!("view '{table}' is not a query"),
                None,
            )),
        }
    }
}

impl VisitorMut for Expand<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes.insert(cte.alias.name.value.clone());
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table {
            name,
            alias,
            args: None,
            version: None,
            ..
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        match self.view_query(&object_parts(name)) {
            Ok(None) => ControlFlow::Continue(()),
            Ok(Some((view, query))) => {
                self.expanded += 1;
                if self.expanded > MAX_EXPANSIONS {
                    self.error = Some(SqlError::validation(
                        format!(
                            "view '{view}' expands into more than {MAX_EXPANSIONS} views; does it read itself?"
                        ),
                        None,
                    ));
                    return ControlFlow::Break(());
                }
                let alias = alias.take().unwrap_or(TableAlias {
                    explicit: true,
                    name: Ident::with_quote('`', view),
                    columns: vec![],
                    at: None,
                });
                *factor = TableFactor::Derived {
                    lateral: false,
                    subquery: Box::new(query),
                    alias: Some(alias),
                    sample: None,
                };
                ControlFlow::Continue(())
            }
            Err(e) => {
                self.error = Some(e);
                ControlFlow::Break(())
            }
        }
    }
}

/// Replaces every view `query` reads with the view's query.
pub(crate) fn expand(query: &mut Query, ctx: &CatalogContext) -> Result<(), SqlError> {
    if !ctx.tables.iter().any(|(_, t)| t.view.is_some()) {
        return Ok(());
    }
    let mut e = Expand {
        ctx,
        ctes: HashSet::new(),
        expanded: 0,
        error: None,
    };
    let _ = query.visit(&mut e);
    e.error.map_or(Ok(()), Err)
}
