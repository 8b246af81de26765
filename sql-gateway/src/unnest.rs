//! `CROSS JOIN UNNEST(t.arr) AS x(v)`: Flink's lateral expansion of an
//! array into rows.
//!
//! `sqlparser` parses `UNNEST(...)` in `FROM` as a table factor only for a
//! few dialects; for Flink's it is a table-valued function call, which this
//! rewrite turns into the `UNNEST` table factor DataFusion plans as a
//! lateral unnest of the row's array.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    self as sql, FunctionArg, FunctionArgExpr, Query, TableFactor, VisitMut, VisitorMut,
};

use crate::error::SqlError;

struct Rewrite {
    error: Option<SqlError>,
    /// Unaliased `UNNEST`s so far: each gets a relation name, so that `*`
    /// can be expanded per relation (leaving `$rowtime` out of the tables).
    unnamed: usize,
}

impl VisitorMut for Rewrite {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table {
            name,
            alias,
            args: Some(args),
            with_ordinality,
            ..
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        let is_unnest = matches!(name.0.as_slice(), [part]
            if part.as_ident().is_some_and(|i| i.value.eq_ignore_ascii_case("unnest")));
        if !is_unnest {
            return ControlFlow::Continue(());
        }
        let mut array_exprs = vec![];
        for a in &args.args {
            match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => array_exprs.push(e.clone()),
                other => {
                    self.error = Some(SqlError::validation(
                        format!("UNNEST takes arrays, not {other}"),
                        None,
                    ));
                    return ControlFlow::Break(());
                }
            }
        }
        let names = alias.as_ref().map_or(0, |a| a.columns.len());
        let ordinality = usize::from(*with_ordinality);
        if array_exprs.len() == 1 && names == 2 + ordinality {
            // A map into its keys and values, zipped (checked to be a map
            // when planned).
            let m = array_exprs.remove(0);
            array_exprs = vec![
                call(MAP_KEYS_FN, vec![m.clone()]),
                call(MAP_VALUES_FN, vec![m]),
            ];
        } else if array_exprs.len() == 1 && names > 1 + ordinality {
            self.error = Some(SqlError::unsupported(format!(
                "UNNEST of one array into {names} columns (an array of ROWs spread into its fields): {ROW_ADVICE}"
            )));
            return ControlFlow::Break(());
        }
        if *with_ordinality {
            array_exprs.push(ordinals(&array_exprs));
        }
        let alias = alias.take().unwrap_or_else(|| {
            self.unnamed += 1;
            sql::TableAlias {
                explicit: true,
                at: None,
                name: sql::Ident::new(format!("__weir_unnest_{}", self.unnamed)),
                columns: vec![],
            }
        });
        *factor = TableFactor::UNNEST {
            alias: Some(alias),
            array_exprs,
            with_offset: false,
            with_offset_alias: None,
            with_ordinality: false,
        };
        ControlFlow::Continue(())
    }
}

/// `WITH ORDINALITY`, which DataFusion does not plan: one more array zipped
/// with the others, `[1, 2, ..., n]` for the longest one's `n`, as an
/// `INT` array (Flink's ordinal is an `INT`, counting from 1).
fn ordinals(arrays: &[sql::Expr]) -> sql::Expr {
    let lengths: Vec<sql::Expr> = arrays
        .iter()
        .map(|a| call("cardinality", vec![a.clone()]))
        .collect();
    let longest = match <[sql::Expr; 1]>::try_from(lengths) {
        Ok([one]) => one,
        Err(many) => call("greatest", many),
    };
    let one = sql::Expr::value(sql::Value::Number("1".into(), false));
    sql::Expr::Cast {
        kind: sql::CastKind::Cast,
        expr: Box::new(call("generate_series", vec![one, longest])),
        data_type: sql::DataType::Array(sql::ArrayElemTypeDef::SquareBracket(
            Box::new(sql::DataType::Int(None)),
            None,
        )),
        array: false,
        format: None,
    }
}

/// The call `name(args...)`.
fn call(name: &str, args: Vec<sql::Expr>) -> sql::Expr {
    sql::Expr::Function(sql::Function {
        name: sql::ObjectName::from(vec![sql::Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: sql::FunctionArguments::None,
        args: sql::FunctionArguments::List(sql::FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|a| FunctionArg::Unnamed(FunctionArgExpr::Expr(a)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

const ROW_ADVICE: &str =
    "name the element instead, `AS x(item)`, and read its fields as `x.item.field`";

use arrow::array::{Array, AsArray, ListArray};
use arrow::datatypes::{DataType, Field};
use datafusion::common::plan_err;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use std::sync::Arc;

/// `UNNEST(m) AS x(k, v)` over a map is `UNNEST(keys(m), values(m))`:
/// these two functions give a map's keys and values as arrays.
pub(crate) const MAP_KEYS_FN: &str = "__weir_unnest_map_keys";
pub(crate) const MAP_VALUES_FN: &str = "__weir_unnest_map_values";

pub(crate) fn map_udfs() -> [Arc<ScalarUDF>; 2] {
    [true, false].map(|keys| {
        Arc::new(ScalarUDF::from(MapPart {
            keys,
            signature: Signature::any(1, Volatility::Immutable),
        }))
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct MapPart {
    keys: bool,
    signature: Signature,
}

impl ScalarUDFImpl for MapPart {
    fn name(&self) -> &str {
        if self.keys {
            MAP_KEYS_FN
        } else {
            MAP_VALUES_FN
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// A list of the keys' or values' type; anything but a map is the
    /// user's error, said here so that it reaches them when planned.
    fn return_type(&self, args: &[DataType]) -> datafusion::common::Result<DataType> {
        match args {
            [DataType::Map(entries, _)] => match entries.data_type() {
                DataType::Struct(f) if f.len() == 2 => {
                    let part = &f[usize::from(!self.keys)];
                    Ok(DataType::List(Arc::new(Field::new_list_field(
                        part.data_type().clone(),
                        true,
                    ))))
                }
                other => plan_err!("a map whose entries are {other}"),
            },
            [other] => plan_err!(
                "UNNEST of one {other} into two columns: a MAP gives its keys and values; for an array of ROWs, {ROW_ADVICE}"
            ),
            _ => plan_err!("UNNEST of a map takes one map"),
        }
    }

    /// The map's offsets over its keys or values: no copy.
    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let array = args.args[0].to_array(args.number_rows)?;
        let map = array.as_map();
        let part = if self.keys { map.keys() } else { map.values() };
        let field = Arc::new(Field::new_list_field(part.data_type().clone(), true));
        let list = ListArray::try_new(
            field,
            map.offsets().clone(),
            part.clone(),
            map.nulls().cloned(),
        )?;
        Ok(ColumnarValue::Array(Arc::new(list)))
    }
}

/// Turns every `UNNEST(...)` in a `FROM` of `query` into the table factor.
pub fn rewrite_unnest(query: &mut Query) -> Result<(), SqlError> {
    let mut r = Rewrite {
        error: None,
        unnamed: 0,
    };
    let _ = query.visit(&mut r);
    r.error.map_or(Ok(()), Err)
}

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{JoinType, NullHandling};
use datafusion::logical_expr::builder::unnest_with_options;
use datafusion::logical_expr::{Expr, LogicalPlan, Projection};

/// A join of a plan with a lateral `UNNEST` of its own columns, as
/// DataFusion plans `t CROSS JOIN UNNEST(t.arr)`: a subquery projecting the
/// outer row's arrays over one empty row and unnesting them. Returns the
/// same rows as one plan over the left input: project the arrays, unnest
/// them (a row whose arrays are all NULL or empty is dropped, or kept with
/// NULLs for `LEFT JOIN UNNEST(...) ON TRUE`), name the elements as the
/// join does. `None` when the join is not one.
pub(crate) fn decorrelate(
    j: &datafusion::logical_expr::Join,
) -> Result<Option<LogicalPlan>, SqlError> {
    let mut right = j.right.as_ref();
    while let LogicalPlan::SubqueryAlias(a) = right {
        right = &a.input;
    }
    let LogicalPlan::Subquery(sq) = right else {
        return Ok(None);
    };
    if !is_lateral_unnest(&sq.subquery) {
        return Ok(None);
    }
    let unsupported = |what: &str| Err(SqlError::unsupported(what.to_string()));
    let always = j.filter.as_ref().is_none_or(|f| {
        matches!(
            f,
            Expr::Literal(datafusion::common::ScalarValue::Boolean(Some(true)), _)
        )
    }) && j.on.is_empty();
    let null_handling = match j.join_type {
        JoinType::Inner if always => NullHandling::Drop,
        JoinType::Left if always => NullHandling::PreserveAndExpandEmpty,
        JoinType::Inner | JoinType::Left => {
            return unsupported(
                "a join with UNNEST takes no condition: write CROSS JOIN UNNEST(...) (or LEFT JOIN UNNEST(...) ON TRUE) and filter in WHERE",
            )
        }
        _ => {
            return unsupported(
                "UNNEST joins its row with CROSS JOIN or LEFT JOIN ... ON TRUE only",
            )
        }
    };
    let left_cols: Vec<Expr> = j
        .left
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    let LogicalPlan::Projection(top) = sq.subquery.as_ref() else {
        unreachable!("a lateral unnest ends in a projection")
    };
    let input = rebuild(&top.input, &j.left, &left_cols, null_handling)?;
    // The left columns, then the elements named as the join names them
    // (qualified: a left column may have the same name).
    let width = left_cols.len();
    let mut out = left_cols;
    for (i, e) in top.expr.iter().enumerate() {
        let (q, f) = j.schema.qualified_field(width + i);
        out.push(e.clone().unalias().alias_qualified(q.cloned(), f.name()));
    }
    let plan = Projection::try_new(out, std::sync::Arc::new(input)).map_err(df)?;
    Ok(Some(LogicalPlan::Projection(plan)))
}

fn df(e: datafusion::common::DataFusionError) -> SqlError {
    SqlError::validation(e.to_string(), None)
}

/// Projections over one `Unnest` over a projection of one empty row: what
/// DataFusion plans for `UNNEST(outer.arr)` in `FROM`.
fn is_lateral_unnest(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Projection(p) => is_lateral_unnest(&p.input),
        LogicalPlan::Unnest(u) => match u.input.as_ref() {
            LogicalPlan::Projection(p) => {
                matches!(p.input.as_ref(), LogicalPlan::EmptyRelation(e) if e.produce_one_row)
            }
            _ => false,
        },
        _ => false,
    }
}

/// The subquery of [`is_lateral_unnest`] over `left` in place of the empty
/// row: every projection also passes `left_cols` through, first.
fn rebuild(
    plan: &LogicalPlan,
    left: &std::sync::Arc<LogicalPlan>,
    left_cols: &[Expr],
    null_handling: NullHandling,
) -> Result<LogicalPlan, SqlError> {
    let plain = |e: &Expr| {
        e.clone()
            .transform_up(|x| match x {
                Expr::OuterReferenceColumn(_, c) => Ok(Transformed::yes(Expr::Column(c))),
                other => Ok(Transformed::no(other)),
            })
            .map(|t| t.data)
    };
    Ok(match plan {
        LogicalPlan::Projection(p) => {
            let input = match p.input.as_ref() {
                LogicalPlan::EmptyRelation(_) => left.clone(),
                other => std::sync::Arc::new(rebuild(other, left, left_cols, null_handling)?),
            };
            let mut exprs = left_cols.to_vec();
            for e in &p.expr {
                exprs.push(plain(e).map_err(df)?);
            }
            LogicalPlan::Projection(Projection::try_new(exprs, input).map_err(df)?)
        }
        LogicalPlan::Unnest(u) => {
            let input = rebuild(&u.input, left, left_cols, null_handling)?;
            let mut options = u.options.clone();
            options.null_handling = null_handling;
            unnest_with_options(input, u.exec_columns.clone(), options).map_err(df)?
        }
        _ => unreachable!("checked by is_lateral_unnest"),
    })
}

/// Rewrites every lateral `UNNEST` join of `plan` (see [`decorrelate`]),
/// before the optimizer prunes the columns only the subquery reads.
pub(crate) fn decorrelate_all(plan: LogicalPlan) -> Result<LogicalPlan, SqlError> {
    let mut error = None;
    let out = plan
        .transform_up(|node| match &node {
            LogicalPlan::Join(j) => match decorrelate(j) {
                Ok(Some(p)) => Ok(Transformed::yes(p)),
                Ok(None) => Ok(Transformed::no(node)),
                Err(e) => {
                    error = Some(e);
                    Ok(Transformed::no(node))
                }
            },
            _ => Ok(Transformed::no(node)),
        })
        .map_err(|e| SqlError::validation(e.to_string(), None))?;
    match error {
        Some(e) => Err(e),
        None => Ok(out.data),
    }
}
