//! Recognising interval joins: a join of two append-only inputs whose
//! condition bounds one input's time attribute by the other's, as Flink's
//! `IntervalJoinUtil` does.
//!
//! `l.ts BETWEEN r.ts - INTERVAL '1' HOUR AND r.ts`, `l.ts >= r.ts AND
//! l.ts < r.ts + INTERVAL '10' MINUTE` or `l.ts = r.ts` all become bounds
//! `lower <= l.ts - r.ts <= upper` in milliseconds (a strict comparison
//! moves its bound by one millisecond). Both columns must be time
//! attributes (a table's `WATERMARK FOR` column, `$rowtime` of a table that
//! declares none, or a window's `window_time`), passed through unchanged;
//! otherwise the join stays a regular join, as in Flink. A window join
//! (equal window starts and ends of two windowed inputs) is one too, on
//! the window ends.

use arrow::datatypes::DataType;
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use weir_catalog::ROWTIME_COLUMN;

use crate::plan::{ColumnOrigin, GroupColumn, IntervalBounds, PlanNode};

/// The interval of a join of `left` and `right`, when it is one.
pub(crate) fn interval_bounds(
    join: &datafusion::logical_expr::Join,
    left: &PlanNode,
    right: &PlanNode,
) -> Option<IntervalBounds> {
    if !(left.is_append_only() && right.is_append_only()) {
        return None;
    }
    let (ls, rs) = (join.left.schema(), join.right.schema());
    if let Some(b) = window_join(join, left, right) {
        return Some(b);
    }
    let mut pair: Option<(Column, Column)> = None;
    let (mut lower, mut upper) = (None::<i64>, None::<i64>);
    // `l.ts = r.ts` is planned as an equi-join key.
    let mut comparisons: Vec<(Expr, Operator, Expr)> = join
        .on
        .iter()
        .map(|(l, r)| (l.clone(), Operator::Eq, r.clone()))
        .collect();
    for c in join.filter.iter().flat_map(split_conjunction) {
        match c {
            Expr::Between(b) if !b.negated => {
                comparisons.push(((*b.expr).clone(), Operator::GtEq, (*b.low).clone()));
                comparisons.push(((*b.expr).clone(), Operator::LtEq, (*b.high).clone()));
            }
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                comparisons.push(((**left).clone(), *op, (**right).clone()))
            }
            _ => {}
        }
    }
    for (a, op, b) in comparisons {
        let (Some((ca, oa)), Some((cb, ob))) = (time_term(&a), time_term(&b)) else {
            continue;
        };
        // Rewrite `ca + oa op cb + ob` as `l - r op k`.
        let (cl, cr, op, k) = if ls.has_column(&ca) && rs.has_column(&cb) {
            (ca, cb, op, ob - oa)
        } else if rs.has_column(&ca) && ls.has_column(&cb) {
            (cb, ca, op.swap()?, oa - ob)
        } else {
            continue;
        };
        let is_time = |schema: &DFSchema, c: &Column| {
            schema
                .qualified_field_from_column(c)
                .is_ok_and(|(_, f)| matches!(f.data_type(), DataType::Timestamp(..)))
        };
        if !(is_time(ls, &cl) && is_time(rs, &cr)) {
            continue;
        }
        match &pair {
            Some(p) if *p != (cl.clone(), cr.clone()) => return None,
            _ => pair = Some((cl, cr)),
        }
        let tighten_lower = |l: &mut Option<i64>, v: i64| *l = Some(l.map_or(v, |x| x.max(v)));
        let tighten_upper = |u: &mut Option<i64>, v: i64| *u = Some(u.map_or(v, |x| x.min(v)));
        match op {
            Operator::GtEq => tighten_lower(&mut lower, k),
            Operator::Gt => tighten_lower(&mut lower, k + 1),
            Operator::LtEq => tighten_upper(&mut upper, k),
            Operator::Lt => tighten_upper(&mut upper, k - 1),
            Operator::Eq => {
                tighten_lower(&mut lower, k);
                tighten_upper(&mut upper, k);
            }
            _ => continue,
        }
    }
    let (cl, cr) = pair?;
    let (lower_ms, upper_ms) = (lower?, upper?);
    let li = ls.index_of_column(&cl).ok()?;
    let ri = rs.index_of_column(&cr).ok()?;
    if !(time_attribute(left, li) && time_attribute(right, ri)) {
        return None;
    }
    Some(IntervalBounds {
        left_time: Expr::Column(cl),
        right_time: Expr::Column(cr),
        lower_ms,
        upper_ms,
        window: false,
    })
}

/// A window join (`ON l.window_start = r.window_start AND l.window_end =
/// r.window_end` over two windowed inputs), as an interval join on equal
/// window ends: a row is held until the watermark reaches its window's
/// end, when no row of that window can arrive any more, and an outer
/// side's unmatched row is padded then, as Flink's window join does.
fn window_join(
    join: &datafusion::logical_expr::Join,
    left: &PlanNode,
    right: &PlanNode,
) -> Option<IntervalBounds> {
    use crate::windows::{window_column, Bound};
    let (ls, rs) = (join.left.schema(), join.right.schema());
    let bound = |schema: &DFSchema, node: &PlanNode, e: &Expr| match e {
        Expr::Column(c) => schema
            .index_of_column(c)
            .ok()
            .and_then(|i| window_column(node, i)),
        _ => None,
    };
    let pairs: Vec<_> = join
        .on
        .iter()
        .map(|(l, r)| (bound(ls, left, l), bound(rs, right, r), l, r))
        .collect();
    let starts = pairs
        .iter()
        .any(|(a, b, _, _)| *a == Some(Bound::Start) && *b == Some(Bound::Start));
    let (_, _, l, r) = pairs
        .iter()
        .find(|(a, b, _, _)| *a == Some(Bound::End) && *b == Some(Bound::End))?;
    starts.then(|| IntervalBounds {
        left_time: (*l).clone(),
        right_time: (*r).clone(),
        lower_ms: 0,
        upper_ms: 0,
        window: true,
    })
}

/// `col`, `col + INTERVAL ...` or `col - INTERVAL ...`: the column and the
/// offset in milliseconds.
fn time_term(e: &Expr) -> Option<(Column, i64)> {
    match e {
        Expr::Column(c) => Some((c.clone(), 0)),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match (&**left, op, &**right) {
            (Expr::Column(c), Operator::Plus, Expr::Literal(v, _)) => {
                Some((c.clone(), interval_ms(v)?))
            }
            (Expr::Literal(v, _), Operator::Plus, Expr::Column(c)) => {
                Some((c.clone(), interval_ms(v)?))
            }
            (Expr::Column(c), Operator::Minus, Expr::Literal(v, _)) => {
                Some((c.clone(), -interval_ms(v)?))
            }
            _ => None,
        },
        _ => None,
    }
}

/// Milliseconds of a day-time interval (months have no fixed length).
fn interval_ms(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::IntervalMonthDayNano(Some(i)) if i.months == 0 => {
            Some(i.days as i64 * 86_400_000 + i.nanoseconds / 1_000_000)
        }
        ScalarValue::IntervalDayTime(Some(i)) => {
            Some(i.days as i64 * 86_400_000 + i.milliseconds as i64)
        }
        _ => None,
    }
}

/// Whether column `idx` of `node`'s output is a time attribute passed
/// through unchanged.
pub(crate) fn time_attribute(node: &PlanNode, idx: usize) -> bool {
    match node.column_origin(idx) {
        Some(ColumnOrigin::Node(PlanNode::Source(s), i)) => {
            let column = s
                .table
                .watermark
                .as_ref()
                .map_or(ROWTIME_COLUMN, |w| w.column.as_str());
            s.schema.field(i).name() == column
        }
        Some(ColumnOrigin::Node(PlanNode::WindowAggregate { layout, .. }, i)) => {
            layout.get(i) == Some(&GroupColumn::WindowTime)
        }
        Some(ColumnOrigin::Node(
            PlanNode::Join {
                left,
                right,
                left_schema,
                interval: Some(_),
                ..
            },
            i,
        )) => {
            let width = left_schema.fields().len();
            if i < width {
                time_attribute(left, i)
            } else {
                time_attribute(right, i - width)
            }
        }
        _ => false,
    }
}
