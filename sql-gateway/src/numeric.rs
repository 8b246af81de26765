//! Flink's numeric result types where DataFusion's differ, as analyzer
//! rules: `DECIMAL` arithmetic (`+`, `-`, `*`, `/`, `%`) with the precision
//! and scale of Flink's `LogicalTypeMerging`, where Arrow's kernels follow
//! other rules (a quotient's scale is the dividend's plus 4 and its last
//! digit truncated, and no result gives up scale to fit in 38 digits);
//! `ROUND` and `TRUNCATE` of a decimal; `SIGN` of the argument's type; an
//! integer remainder of the divisor's type; and
//! positions and counts (`REGEXP_COUNT`, `REGEXP_INSTR`, `ARRAY_POSITION`)
//! as `INT`s.
//!
//! Each arithmetic expression over two decimals is computed so that its
//! result has Flink's type and digits (a quotient rounded half up at
//! Flink's scale), and a value that does not fit that type is NULL, as in
//! Flink. Integer literals typed `INT` are the planner's (`rewrite.rs`).

use arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::logical_expr::expr::{BinaryExpr, Cast, ScalarFunction, TryCast};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan, Operator};
use datafusion::optimizer::AnalyzerRule;

/// The most digits of a `DECIMAL`.
const MAX_PRECISION: u8 = 38;
/// The least scale Flink keeps when a result would need more than
/// [`MAX_PRECISION`] digits.
const MINIMUM_ADJUSTED_SCALE: i8 = 6;

/// See the module's documentation.
#[derive(Debug, Default)]
pub(crate) struct FlinkDecimalArithmetic;

impl AnalyzerRule for FlinkDecimalArithmetic {
    fn name(&self) -> &str {
        "flink_decimal_arithmetic"
    }

    fn analyze(&self, plan: LogicalPlan, _: &ConfigOptions) -> Result<LogicalPlan> {
        rewrite_expressions(plan, flink_arithmetic)
    }
}

/// `SIGN(x)` of the type of `x`, as in Flink, where DataFusion's is a
/// `DOUBLE`, and an integer `a % b` of the type of `b`: a rule run before
/// type coercion, which casts the operands as a user's `CAST` would.
#[derive(Debug, Default)]
pub(crate) struct FlinkSign;

impl AnalyzerRule for FlinkSign {
    fn name(&self) -> &str {
        "flink_sign"
    }

    fn analyze(&self, plan: LogicalPlan, _: &ConfigOptions) -> Result<LogicalPlan> {
        rewrite_expressions(plan, |e, schema| match &e {
            Expr::ScalarFunction(f) if f.func.name() == "signum" && f.args.len() == 1 => {
                let to = f.args[0].get_type(schema)?;
                if to.is_integer() || matches!(to, DataType::Decimal128(..)) {
                    Ok(Transformed::yes(cast(e, to)))
                } else {
                    Ok(Transformed::no(e))
                }
            }
            // An integer remainder has the divisor's type (it is smaller
            // than the divisor), where DataFusion's is the wider one.
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::Modulo,
                right,
            }) => {
                let (l, r) = (left.get_type(schema)?, right.get_type(schema)?);
                if l.is_integer() && r.is_integer() && l != r {
                    Ok(Transformed::yes(cast(e, r)))
                } else {
                    Ok(Transformed::no(e))
                }
            }
            _ => Ok(Transformed::no(e)),
        })
    }
}

/// `plan` with `rewrite` applied to each expression bottom up, given the
/// schema of the expression's input; a rewritten expression keeps its
/// name, and each node's schema follows its inputs'.
fn rewrite_expressions(
    plan: LogicalPlan,
    rewrite: impl Fn(Expr, &DFSchema) -> Result<Transformed<Expr>>,
) -> Result<LogicalPlan> {
    plan.transform_up_with_subqueries(|node| {
        let inputs = node.inputs();
        if inputs.is_empty() {
            return Ok(Transformed::no(node));
        }
        let mut schema = DFSchema::empty();
        for input in inputs {
            schema.merge(input.schema());
        }
        let names = NamePreserver::new(&node);
        let node = node.map_expressions(|e| {
            let saved = names.save(&e);
            let t = e.transform_up(|e| rewrite(e, &schema))?;
            Ok(if t.transformed {
                t.update_data(|e| saved.restore(e))
            } else {
                t
            })
        })?;
        if node.transformed {
            node.map_data(|p| p.recompute_schema())
        } else {
            Ok(node)
        }
    })
    .map(|t| t.data)
}

/// `e` computed with Flink's result type, if it is arithmetic over two
/// decimals whose type Arrow would give otherwise.
fn flink_arithmetic(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    if let Expr::ScalarFunction(f) = &e {
        return match f.func.name() {
            "round" | "trunc" => flink_round(e.clone(), f, schema),
            // Positions and counts are `INT`s in Flink.
            "regexp_count" | "regexp_instr" | "array_position"
                if matches!(e.get_type(schema)?, DataType::Int64 | DataType::UInt64) =>
            {
                Ok(Transformed::yes(cast(e, DataType::Int32)))
            }
            _ => Ok(Transformed::no(e)),
        };
    }
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &e else {
        return Ok(Transformed::no(e));
    };
    let (Some(l), Some(r)) = (flink_decimal(left, schema)?, flink_decimal(right, schema)?) else {
        return Ok(Transformed::no(e));
    };
    let Some(flink) = result_type(*op, l, r) else {
        return Ok(Transformed::no(e));
    };
    let arrow = arrow_result_type(
        *op,
        operand_type(left, schema)?,
        operand_type(right, schema)?,
    );
    // Arrow's quotient truncates its last digit, where Flink's rounds it
    // half up: a division is computed below even at Flink's type.
    if arrow == Some(flink) && *op != Operator::Divide {
        return Ok(Transformed::no(e));
    }
    let (p, s) = flink;
    let fits = |(p, _): (u8, i8)| p <= MAX_PRECISION;
    let exact = match op {
        Operator::Plus | Operator::Minus | Operator::Multiply | Operator::Modulo
            if arrow.is_some_and(|a| a.1 == s && fits(a)) =>
        {
            // Arrow's digits are Flink's; only the precision differs.
            e
        }
        _ => {
            // Computed in 256 bits, with the dividend scaled so that the
            // quotient has a digit beyond Flink's scale to round away.
            let (p1, s1) = operand_type(left, schema)?;
            let (p2, s2) = operand_type(right, schema)?;
            let (p1, s1) = match op {
                Operator::Divide if s - 3 > s1 => (p1 + (s - 3 - s1) as u8, s - 3),
                _ => (p1, s1),
            };
            Expr::BinaryExpr(BinaryExpr::new(
                Box::new(cast(*left.clone(), DataType::Decimal256(p1.min(76), s1))),
                *op,
                Box::new(cast(*right.clone(), DataType::Decimal256(p2, s2))),
            ))
        }
    };
    Ok(Transformed::yes(Expr::TryCast(TryCast::new(
        Box::new(exact),
        DataType::Decimal128(p, s),
    ))))
}

/// `ROUND(d, r)` and `TRUNCATE(d, r)` of a `DECIMAL(p, s)` with Flink's
/// type: `r` digits after the point and one more before it for a carry
/// (`DECIMAL(1 + p - s + r, r)`), where DataFusion keeps `p` (and
/// `TRUNCATE` `s`).
fn flink_round(e: Expr, f: &ScalarFunction, schema: &DFSchema) -> Result<Transformed<Expr>> {
    // A DOUBLE is rounded as Flink does, on its decimal text (1.005 to two
    // places is 1.01, though the nearest double is below 1.005).
    if f.func.name() == "round" && f.args[0].get_type(schema)? == DataType::Float64 {
        let digits = f
            .args
            .get(1)
            .cloned()
            .unwrap_or(Expr::Literal(ScalarValue::Int64(Some(0)), None));
        return Ok(Transformed::yes(Expr::ScalarFunction(
            ScalarFunction::new_udf(
                crate::flink_udfs::round_double_udf(),
                vec![f.args[0].clone(), digits],
            ),
        )));
    }
    let DataType::Decimal128(p, s) = f.args[0].get_type(schema)? else {
        return Ok(Transformed::no(e));
    };
    let r = match f.args.get(1) {
        None => Some(0),
        Some(arg) => {
            let literal = match arg {
                Expr::Literal(v, _) => Some(v),
                Expr::Cast(Cast { expr, .. }) => match expr.as_ref() {
                    Expr::Literal(v, _) => Some(v),
                    _ => None,
                },
                _ => None,
            };
            match literal.and_then(|v| v.cast_to(&DataType::Int64).ok()) {
                Some(ScalarValue::Int64(Some(r))) => Some(r),
                _ => None,
            }
        }
    };
    let Some(r) = r else {
        return Ok(Transformed::no(e));
    };
    let (p, s) = (i64::from(p), i64::from(s));
    let flink = if r >= s {
        (p, s)
    } else if r < 0 {
        ((1 + p - s).min(i64::from(MAX_PRECISION)), 0)
    } else {
        ((1 + p - s + r).min(i64::from(MAX_PRECISION)), r)
    };
    let to = DataType::Decimal128(flink.0 as u8, flink.1 as i8);
    if e.get_type(schema)? == to {
        return Ok(Transformed::no(e));
    }
    Ok(Transformed::yes(Expr::TryCast(TryCast::new(
        Box::new(e),
        to,
    ))))
}

fn cast(e: Expr, to: DataType) -> Expr {
    Expr::Cast(Cast::new(Box::new(e), to))
}

/// The precision and scale of a decimal operand as it is typed now.
fn operand_type(e: &Expr, schema: &DFSchema) -> Result<(u8, i8)> {
    Ok(match e.get_type(schema)? {
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => (p, s),
        _ => (MAX_PRECISION, 0),
    })
}

/// The precision and scale Flink gives operand `e` in arithmetic: its
/// `DECIMAL` type, a `BIGINT` cast to one by type coercion counted as
/// `DECIMAL(19, 0)`. `None`: not a decimal.
fn flink_decimal(e: &Expr, schema: &DFSchema) -> Result<Option<(u8, i8)>> {
    let ty = e.get_type(schema)?;
    let DataType::Decimal128(p, s) = ty else {
        return Ok(None);
    };
    // DataFusion widens a BIGINT to 20 digits where Flink takes 19; the
    // other integers are as wide in both.
    if let Expr::Cast(Cast { expr, .. }) = e {
        if (p, s) == (20, 0) && matches!(expr.get_type(schema)?, DataType::Int64 | DataType::UInt64)
        {
            return Ok(Some((19, 0)));
        }
    }
    Ok(Some((p, s)))
}

/// Flink's result type of `l op r` over decimals (`LogicalTypeMerging`).
fn result_type(op: Operator, (p1, s1): (u8, i8), (p2, s2): (u8, i8)) -> Option<(u8, i8)> {
    let (p1, s1, p2, s2) = (i32::from(p1), i32::from(s1), i32::from(p2), i32::from(s2));
    let (p, s) = match op {
        Operator::Plus | Operator::Minus => {
            let s = s1.max(s2);
            ((p1 - s1).max(p2 - s2) + s + 1, s)
        }
        Operator::Multiply => (p1 + p2 + 1, s1 + s2),
        Operator::Divide => {
            let s = 6.max(s1 + p2 + 1);
            (p1 - s1 + s2 + s, s)
        }
        Operator::Modulo => {
            let s = s1.max(s2);
            ((p1 - s1).min(p2 - s2) + s, s)
        }
        _ => return None,
    };
    Some(adjust(p, s))
}

/// A result of more than 38 digits gives up scale, down to 6 digits, to
/// keep its integer digits (Flink's `adjustPrecisionScale`).
fn adjust(p: i32, s: i32) -> (u8, i8) {
    let max = i32::from(MAX_PRECISION);
    if p <= max {
        return (p as u8, s as i8);
    }
    let digits = p - s;
    let min_scale = s.min(i32::from(MINIMUM_ADJUSTED_SCALE));
    (MAX_PRECISION, (max - digits).max(min_scale) as i8)
}

/// The type Arrow's kernel gives `l op r` (arrow-arith's `decimal_op`),
/// `None` where it fails for lack of digits.
fn arrow_result_type(op: Operator, (p1, s1): (u8, i8), (p2, s2): (u8, i8)) -> Option<(u8, i8)> {
    let (p1, s1, p2, s2) = (i32::from(p1), i32::from(s1), i32::from(p2), i32::from(s2));
    let max = i32::from(MAX_PRECISION);
    let (p, s) = match op {
        Operator::Plus | Operator::Minus => {
            let s = s1.max(s2);
            ((p1 - s1).max(p2 - s2) + s + 1, s)
        }
        Operator::Multiply => (p1 + p2 + 1, s1 + s2),
        Operator::Divide => {
            let s = (s1 + 4).min(max);
            (s - s1 + s2 + p1, s)
        }
        Operator::Modulo => {
            let s = s1.max(s2);
            ((p1 - s1).min(p2 - s2) + s, s)
        }
        _ => return None,
    };
    (s <= max).then_some((p.min(max) as u8, s as i8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flink_result_types_of_decimal_arithmetic() {
        // 7.0 / 2: DECIMAL(2, 1) / INT.
        assert_eq!(
            result_type(Operator::Divide, (2, 1), (10, 0)),
            Some((13, 12))
        );
        assert_eq!(result_type(Operator::Plus, (2, 1), (10, 0)), Some((12, 1)));
        assert_eq!(
            result_type(Operator::Multiply, (3, 3), (19, 0)),
            Some((23, 3))
        );
        assert_eq!(result_type(Operator::Modulo, (10, 2), (4, 1)), Some((5, 2)));
        // More than 38 digits: the scale gives way, to no less than 6.
        assert_eq!(
            result_type(Operator::Divide, (38, 10), (38, 10)),
            Some((38, 6))
        );
        assert_eq!(
            result_type(Operator::Multiply, (38, 18), (38, 18)),
            Some((38, 6))
        );
        assert_eq!(
            result_type(Operator::Plus, (38, 2), (38, 20)),
            Some((38, 6))
        );
        assert_eq!(
            result_type(Operator::Multiply, (20, 2), (20, 2)),
            Some((38, 4))
        );
    }
}
