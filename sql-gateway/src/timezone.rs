//! The session time zone (`'sql.local-time-zone'`), as Flink applies it to
//! `TIMESTAMP_LTZ`.
//!
//! A `TIMESTAMP_LTZ` value is an instant. Its Arrow type carries the
//! session zone (the catalog's [`weir_catalog::localize`]), so Arrow and
//! DataFusion show it, format it (`DATE_FORMAT`), truncate it (`FLOOR(ts TO
//! DAY)`) and take it apart (`HOUR(ts)`) in that zone. Arrow casts an
//! instant to a `TIMESTAMP`, `DATE`, `TIME` or string by its UTC wall
//! clock, where Flink uses the session zone's: [`localize_casts`] makes
//! those casts go through `to_local_time` first. The other way, a
//! `TIMESTAMP` or string cast to `TIMESTAMP_LTZ` is read as wall-clock time
//! in the zone by Arrow already, as in Flink. Windows over a `TIMESTAMP_LTZ`
//! time attribute are aligned in the zone ([`crate::WindowSpec`]).

use arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result as DfResult};
use datafusion::logical_expr::expr::{Cast, TryCast};
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan};

/// Whether a cast from `from` to `to` reads an instant's wall clock.
fn reads_wall_clock(from: &DataType, to: &DataType) -> bool {
    matches!(from, DataType::Timestamp(_, Some(_)))
        && matches!(
            to,
            DataType::Timestamp(_, None)
                | DataType::Date32
                | DataType::Date64
                | DataType::Time32(_)
                | DataType::Time64(_)
                | DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
        )
}

fn local(e: Expr) -> Expr {
    datafusion::functions::datetime::expr_fn::to_local_time(vec![e])
}

/// Rewrites every cast of a `TIMESTAMP_LTZ` to a wall-clock type in `plan`
/// so that it reads the session zone's wall clock (see the module
/// documentation). Types do not change, so schemas stay as they are.
pub fn localize_casts(plan: LogicalPlan) -> DfResult<LogicalPlan> {
    plan.transform_up_with_subqueries(|node| {
        // The schema the node's expressions are over: its input's, or both
        // of a join's. A union has no expressions (and its inputs' schemas
        // may share names), so it is left as it is.
        let inputs = node.inputs();
        let schema: DFSchema = match inputs.as_slice() {
            [] => node.schema().as_ref().clone(),
            [one] => one.schema().as_ref().clone(),
            [left, right] if matches!(node, LogicalPlan::Join(_)) => {
                left.schema().join(right.schema())?
            }
            _ => return Ok(Transformed::no(node)),
        };
        node.map_expressions(|e| localize(e, &schema))
    })
    .map(|t| t.data)
}

/// [`localize_casts`] for one expression over `schema` (a computed
/// column's).
pub fn localize_expr_casts(e: Expr, schema: &DFSchema) -> DfResult<Expr> {
    localize(e, schema).map(|t| t.data)
}

fn localize(e: Expr, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    e.transform_up(|e| match e {
        Expr::Cast(Cast { expr, field })
            if reads_wall_clock(&expr.get_type(schema)?, field.data_type()) =>
        {
            Ok(Transformed::yes(Expr::Cast(Cast {
                expr: Box::new(local(*expr)),
                field,
            })))
        }
        Expr::TryCast(TryCast { expr, field })
            if reads_wall_clock(&expr.get_type(schema)?, field.data_type()) =>
        {
            Ok(Transformed::yes(Expr::TryCast(TryCast {
                expr: Box::new(local(*expr)),
                field,
            })))
        }
        other => Ok(Transformed::no(other)),
    })
}
