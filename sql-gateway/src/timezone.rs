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
//! `TIMESTAMP` cast to `TIMESTAMP_LTZ` is read as wall-clock time in the
//! zone, as in Flink, by [`LocalInstant`]: Arrow's cast fails (and with it
//! the statement) on a wall-clock time the zone skips or shows twice at a
//! daylight-saving change, where Flink, as Java's `ZonedDateTime`, takes
//! the time after the gap and the earlier of the two. Windows over a `TIMESTAMP_LTZ`
//! time attribute are aligned in the zone ([`crate::WindowSpec`]).

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result as DfResult};
use datafusion::logical_expr::expr::{Cast, ScalarFunction, TryCast};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};

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
        // A wall-clock time read in the zone: Java's rules at a
        // daylight-saving change, not a failed statement.
        Expr::Cast(Cast { expr, field })
            if reads_in_zone(&expr.get_type(schema)?, field.data_type()).is_some() =>
        {
            let zone =
                reads_in_zone(&expr.get_type(schema)?, field.data_type()).unwrap_or_default();
            Ok(Transformed::yes(Expr::Cast(Cast {
                expr: Box::new(in_zone(*expr, zone)),
                field,
            })))
        }
        Expr::TryCast(TryCast { expr, field })
            if reads_in_zone(&expr.get_type(schema)?, field.data_type()).is_some() =>
        {
            let zone =
                reads_in_zone(&expr.get_type(schema)?, field.data_type()).unwrap_or_default();
            Ok(Transformed::yes(Expr::TryCast(TryCast {
                expr: Box::new(in_zone(*expr, zone)),
                field,
            })))
        }
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

/// The zone a cast from `from` to `to` reads a wall-clock time in: a
/// `TIMESTAMP` cast to a `TIMESTAMP_LTZ` in a zone other than UTC.
fn reads_in_zone(from: &DataType, to: &DataType) -> Option<String> {
    match (from, to) {
        (DataType::Timestamp(_, None), DataType::Timestamp(_, Some(z)))
            if crate::plan::WindowZone::parse(z).is_some() =>
        {
            Some(z.to_string())
        }
        _ => None,
    }
}

/// `e` (a `TIMESTAMP`) as the instant its wall clock shows in `zone`.
fn in_zone(e: Expr, zone: String) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(
        local_instant(),
        vec![
            e,
            Expr::Literal(datafusion::common::ScalarValue::Utf8(Some(zone)), None),
        ],
    ))
}

/// The name of [`LocalInstant`], for the functions that call it by name.
pub(crate) const LOCAL_INSTANT_FN: &str = "weir_local_instant";

/// The function [`LocalInstant`].
pub(crate) fn local_instant() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::from(LocalInstant {
        signature: Signature::one_of(
            vec![
                datafusion::logical_expr::TypeSignature::Any(2),
                datafusion::logical_expr::TypeSignature::Any(3),
            ],
            Volatility::Immutable,
        ),
    }))
}

/// `weir_local_instant(ts, 'zone' [, later])`: the instant at which
/// `zone`'s wall clock shows the `TIMESTAMP` `ts` (a `TIMESTAMP_LTZ` in
/// UTC, which a cast then shows in the zone). Across a spring-forward gap
/// it is the time after the gap (read with the offset before it); of the
/// two a fall-back shows, the earlier, as Java's `ZonedDateTime` takes it,
/// or with `later` the later, as `java.util`'s calendar (Flink's
/// `UNIX_TIMESTAMP`) does.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct LocalInstant {
    signature: Signature,
}

impl ScalarUDFImpl for LocalInstant {
    fn name(&self) -> &str {
        LOCAL_INSTANT_FN
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        match args.first() {
            Some(DataType::Timestamp(unit, None)) => {
                Ok(DataType::Timestamp(*unit, Some("UTC".into())))
            }
            other => {
                datafusion::common::plan_err!("weir_local_instant takes a TIMESTAMP, not {other:?}")
            }
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let zone = match &args.args[1] {
            ColumnarValue::Scalar(datafusion::common::ScalarValue::Utf8(Some(z))) => z.clone(),
            _ => {
                return datafusion::common::exec_err!(
                    "weir_local_instant takes its zone as a literal"
                )
            }
        };
        let zone = crate::plan::WindowZone::parse(&zone);
        let later = matches!(
            args.args.get(2),
            Some(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::Boolean(Some(true))
            ))
        );
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let values = args.args[0].to_array(args.number_rows.max(1))?;
        let DataType::Timestamp(unit, None) = values.data_type().clone() else {
            return datafusion::common::exec_err!("weir_local_instant takes a TIMESTAMP");
        };
        let per_ms: i64 = match unit {
            TimeUnit::Second => 0,
            TimeUnit::Millisecond => 1,
            TimeUnit::Microsecond => 1_000,
            TimeUnit::Nanosecond => 1_000_000,
        };
        let raw = arrow::compute::cast(&values, &DataType::Int64)?;
        let raw = raw.as_primitive::<arrow::datatypes::Int64Type>();
        let shifted: arrow::array::Int64Array = raw.unary(|v| {
            let local_ms = match per_ms {
                0 => v.saturating_mul(1000),
                n => v.div_euclid(n),
            };
            let offset_ms = zone.map_or(0, |z| local_ms.saturating_sub(z.to_utc(local_ms)));
            // The later of two instants: an hour (the usual step) on, if
            // the zone's clock shows the same time then too.
            let offset_ms = match zone {
                Some(z) if later => {
                    let next = local_ms.saturating_sub(offset_ms).saturating_add(3_600_000);
                    if next.saturating_add(z.offset_ms(next)) == local_ms {
                        local_ms.saturating_sub(next)
                    } else {
                        offset_ms
                    }
                }
                _ => offset_ms,
            };
            match per_ms {
                0 => v.saturating_sub(offset_ms / 1000),
                n => v.saturating_sub(offset_ms.saturating_mul(n)),
            }
        });
        let out = arrow::compute::cast(
            &(Arc::new(shifted) as arrow::array::ArrayRef),
            &DataType::Timestamp(unit, Some("UTC".into())),
        )?;
        Ok(if scalar {
            ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&out, 0)?)
        } else {
            ColumnarValue::Array(out)
        })
    }
}
