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
        let columns = names.saturating_sub(usize::from(*with_ordinality));
        if array_exprs.len() == 1 && columns > 1 {
            // A map into its keys and values, or an array of ROWs into its
            // fields: one list per column, zipped (checked when planned).
            let e = array_exprs.remove(0);
            let number = |n: usize| sql::Expr::value(sql::Value::Number(n.to_string(), false));
            array_exprs = (0..columns)
                .map(|i| call(PART_FN, vec![e.clone(), number(i), number(columns)]))
                .collect();
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
pub(crate) fn call(name: &str, args: Vec<sql::Expr>) -> sql::Expr {
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

use arrow::array::{Array, AsArray, ListArray};
use arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::common::{exec_err, plan_err, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use std::sync::Arc;

/// `UNNEST(e) AS x(c0, ..., cn)` over one map (its keys and values) or one
/// array of ROWs (its fields) is `UNNEST(part(e, 0, n), ..., part(e, n, n))`:
/// `part(e, i, n)` is the list of the entries' or elements' `i`-th field,
/// `n` the number of columns the alias names.
pub(crate) const PART_FN: &str = "__weir_unnest_part";

pub(crate) fn udf() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::from(Part {
        signature: Signature::any(3, Volatility::Immutable),
    }))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Part {
    signature: Signature,
}

/// The fields each element of `t` is spread into: a map's key and value,
/// an array of ROWs' fields.
fn parts(t: &DataType) -> Option<&Fields> {
    match t {
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(f) => Some(f),
            _ => None,
        },
        DataType::List(element) => match element.data_type() {
            DataType::Struct(f) => Some(f),
            _ => None,
        },
        _ => None,
    }
}

fn index(v: Option<&ScalarValue>) -> Option<usize> {
    match v? {
        ScalarValue::Int64(Some(i)) => usize::try_from(*i).ok(),
        other => other
            .cast_to(&DataType::Int64)
            .ok()
            .and_then(|v| index(Some(&v))),
    }
}

impl ScalarUDFImpl for Part {
    fn name(&self) -> &str {
        PART_FN
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> datafusion::common::Result<DataType> {
        plan_err!("{PART_FN} is typed by its arguments")
    }

    /// A list of the part's type; anything that does not spread into as
    /// many columns as the alias names is the user's error, said here so
    /// that it reaches them when planned.
    fn return_field_from_args(
        &self,
        args: ReturnFieldArgs,
    ) -> datafusion::common::Result<FieldRef> {
        let t = args.arg_fields[0].data_type();
        let (Some(i), Some(n)) = (
            index(args.scalar_arguments.get(1).copied().flatten()),
            index(args.scalar_arguments.get(2).copied().flatten()),
        ) else {
            return plan_err!("{PART_FN} takes constant positions");
        };
        let Some(fields) = parts(t) else {
            return plan_err!(
                "UNNEST of one {t} into {n} columns: only a MAP (into its key and value) or an array of ROWs (into its fields) spreads into several"
            );
        };
        if fields.len() != n {
            return plan_err!(
                "UNNEST of {t} gives {} columns, but its alias names {n}",
                fields.len()
            );
        }
        Ok(Arc::new(Field::new(
            self.name(),
            DataType::List(Arc::new(Field::new_list_field(
                fields[i].data_type().clone(),
                true,
            ))),
            true,
        )))
    }

    /// The map's or array's offsets over one child column: no copy, unless
    /// the array has NULL elements (ROWs), which are left out.
    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let array = args.args[0].to_array(args.number_rows)?;
        let Some(ColumnarValue::Scalar(i)) = args.args.get(1) else {
            return exec_err!("{PART_FN} takes a constant position");
        };
        let Some(i) = index(Some(i)) else {
            return exec_err!("{PART_FN} takes a constant position");
        };
        let (offsets, nulls, part) = match array.data_type() {
            DataType::Map(..) => {
                let map = array.as_map();
                let part = if i == 0 { map.keys() } else { map.values() };
                (map.offsets().clone(), map.nulls().cloned(), part.clone())
            }
            _ => {
                let list = array.as_list::<i32>();
                let rows = list.values().as_struct();
                let child = rows.column(i);
                match rows.nulls().filter(|n| n.null_count() > 0) {
                    // A NULL element (a ROW) is no row, as in Flink: the
                    // lists keep their non-NULL elements only.
                    Some(row_nulls) => {
                        let mut keep: Vec<u32> = vec![];
                        let mut offsets: Vec<i32> = vec![0];
                        for w in list.offsets().windows(2) {
                            for e in w[0]..w[1] {
                                if row_nulls.is_valid(e as usize) {
                                    keep.push(e as u32);
                                }
                            }
                            offsets.push(keep.len() as i32);
                        }
                        let child = arrow::compute::take(
                            child,
                            &arrow::array::UInt32Array::from(keep),
                            None,
                        )?;
                        (
                            arrow::buffer::OffsetBuffer::new(offsets.into()),
                            list.nulls().cloned(),
                            child,
                        )
                    }
                    None => (list.offsets().clone(), list.nulls().cloned(), child.clone()),
                }
            }
        };
        let field = Arc::new(Field::new_list_field(part.data_type().clone(), true));
        let list = ListArray::try_new(field, offsets, part, nulls)?;
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
