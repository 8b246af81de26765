//! `ROW_NUMBER()` filters planned as Top-N and deduplication.

use super::*;

pub(super) fn strip_alias(plan: &LogicalPlan) -> &LogicalPlan {
    match plan {
        LogicalPlan::SubqueryAlias(a) => strip_alias(&a.input),
        other => other,
    }
}

/// A filter over a lone `ROW_NUMBER()` window (directly or through a
/// projection): a Top-N.
pub(super) struct RankFilter<'a> {
    filter: &'a datafusion::logical_expr::Filter,
    /// A projection between the filter and the window.
    middle: Option<&'a datafusion::logical_expr::Projection>,
    window: &'a datafusion::logical_expr::Window,
    params: datafusion::logical_expr::expr::WindowFunctionParams,
    /// The row number's column.
    pub(super) row_number: String,
}

pub(super) fn rank_filter(plan: &LogicalPlan) -> Option<RankFilter<'_>> {
    let LogicalPlan::Filter(filter) = strip_alias(plan) else {
        return None;
    };
    let (middle, window) = match strip_alias(&filter.input) {
        LogicalPlan::Window(w) => (None, w),
        LogicalPlan::Projection(p) => match strip_alias(&p.input) {
            LogicalPlan::Window(w) => (Some(p), w),
            _ => return None,
        },
        _ => return None,
    };
    let [e] = window.window_expr.as_slice() else {
        return None;
    };
    match e.clone().unalias_nested().data {
        Expr::WindowFunction(wf) if wf.fun.name() == "row_number" => Some(RankFilter {
            filter,
            middle,
            window,
            params: wf.params,
            row_number: window
                .schema
                .field(window.schema.fields().len() - 1)
                .name()
                .clone(),
        }),
        _ => None,
    }
}

pub(super) enum RankBound {
    AtMost(u64),
    /// `rn >= 1` or `rn > 0`: always true.
    AtLeastOne,
    /// `rn >= n` (n > 1) or `rn > n - 1`: the start of a rank range.
    AtLeast(u64),
    /// `rn = n` (n > 1): a range of one rank.
    Exactly(u64),
}

/// A bound on the row number column `rn`: `rn <= n`, `rn < n`, `rn = n`,
/// `rn >= n`, `rn > n` (either way round; `BETWEEN` arrives as two).
pub(super) fn rank_bound(e: &Expr, rn: &str) -> Option<RankBound> {
    use datafusion::logical_expr::{BinaryExpr, Operator};
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
        return None;
    };
    let value = |e: &Expr| match e {
        Expr::Literal(v, _) => v.cast_to(&DataType::Int64).ok().and_then(|v| match v {
            datafusion::common::ScalarValue::Int64(Some(n)) => Some(n),
            _ => None,
        }),
        _ => None,
    };
    let is_rn = |e: &Expr| matches!(e, Expr::Column(c) if c.name == rn);
    let (op, n) = if is_rn(left) {
        (*op, value(right)?)
    } else if is_rn(right) {
        (op.swap()?, value(left)?)
    } else {
        return None;
    };
    let at_most = |n: i64| Some(RankBound::AtMost(n.max(0) as u64));
    match op {
        Operator::LtEq => at_most(n),
        Operator::Lt => at_most(n - 1),
        Operator::Eq if n <= 1 => at_most(n),
        Operator::Eq => Some(RankBound::Exactly(n as u64)),
        Operator::GtEq if n <= 1 => Some(RankBound::AtLeastOne),
        Operator::Gt if n <= 0 => Some(RankBound::AtLeastOne),
        Operator::GtEq => Some(RankBound::AtLeast(n as u64)),
        Operator::Gt => Some(RankBound::AtLeast(n as u64 + 1)),
        _ => None,
    }
}

impl Planner {
    /// A filter on a `ROW_NUMBER()` as a Top-N; `row_number`: something
    /// above reads the row number.
    pub(super) fn top_n(
        &self,
        r: RankFilter<'_>,
        row_number: bool,
        sql: &str,
    ) -> Result<PlanNode, SqlError> {
        use datafusion::logical_expr::utils::{conjunction, split_conjunction};
        let RankFilter {
            filter: f,
            middle,
            window: w,
            params,
            row_number: rn,
        } = r;
        let mut limit: Option<u64> = None;
        // The first rank of a range (`rn BETWEEN 3 AND 5`).
        let mut first: u64 = 1;
        let mut rest = vec![];
        let mut at_most = |n: u64| limit = Some(limit.map_or(n, |l: u64| l.min(n)));
        for c in split_conjunction(&f.predicate) {
            match rank_bound(c, &rn) {
                Some(RankBound::AtMost(n)) => at_most(n),
                Some(RankBound::AtLeastOne) => {}
                Some(RankBound::AtLeast(n)) => first = first.max(n),
                Some(RankBound::Exactly(n)) => {
                    first = first.max(n);
                    at_most(n);
                }
                None if c.column_refs().iter().any(|col| col.name == rn) => {
                    return Err(SqlError::unsupported(format!(
                        "the condition {c} on ROW_NUMBER(): Weir keeps a range of ranks per partition, with rn <= N, rn < N, rn = N, rn >= M or rn BETWEEN M AND N"
                    )))
                }
                None => rest.push(c.clone()),
            }
        }
        let limit = limit.ok_or_else(|| {
            SqlError::unsupported(
                "ROW_NUMBER() without an upper bound on it: a streaming query keeps the first rows of each partition (WHERE rn <= N)",
            )
        })?;
        if limit == 0 || first > limit {
            return Err(SqlError::validation(
                "the condition on ROW_NUMBER() keeps no row (row numbers start at 1)",
                None,
            ));
        }
        // A range that does not start at 1: Top-N keeps the first `limit`
        // ranks with their row numbers, and a filter above keeps ranks from
        // `first` on; each change of a rank is a -U/+U pair of that rank,
        // so the filter keeps the changelog whole.
        let row_number = row_number || first > 1;
        if first > 1 {
            let schema = f.input.schema();
            let column = schema
                .columns()
                .into_iter()
                .find(|c| c.name == rn)
                .ok_or_else(|| SqlError::unsupported("a rank range on a hidden row number"))?;
            let at = ScalarValue::Int64(Some(first as i64))
                .cast_to(
                    &datafusion::common::ExprSchema::data_type(schema.as_ref(), &column)
                        .map_err(|e| df_error(e, sql))?
                        .clone(),
                )
                .map_err(|e| df_error(e, sql))?;
            rest.push(Expr::Column(column).gt_eq(Expr::Literal(at, None)));
        }
        if params.order_by.is_empty() {
            return Err(SqlError::validation(
                "ROW_NUMBER() OVER needs ORDER BY to say which rows come first",
                None,
            ));
        }
        let input = self.convert(&w.input, false, sql)?;
        // Flink plans ROW_NUMBER() = 1 ordered by a time attribute as a
        // deduplication (keep-first for ASC, keep-last for DESC).
        let by_time = match params.order_by.as_slice() {
            [o] => matches!(
                o.expr.get_type(w.input.schema()),
                Ok(DataType::Timestamp(..))
            ),
            _ => false,
        };
        // Keep-first on event time is insert-only in Flink: a partition's
        // earliest row once the watermark reaches it.
        let on_event_time = match params.order_by.as_slice() {
            [o] if o.asc => match o.expr.clone().unalias_nested().data {
                Expr::Column(c) => w
                    .input
                    .schema()
                    .index_of_column(&c)
                    .is_ok_and(|i| crate::interval::time_attribute(&input, i)),
                _ => false,
            },
            _ => false,
        };
        let rank = if row_number {
            RankOutput::RowNumbers
        } else if limit == 1 && on_event_time && input.is_append_only() {
            RankOutput::FirstOnWatermark
        } else if limit == 1 && by_time && input.is_append_only() {
            RankOutput::Deduplicate {
                keep_last: !params.order_by[0].asc,
            }
        } else {
            RankOutput::Rows
        };
        // A window Top-N partitions by a window's start and end.
        let bound_of = |e: &Expr| match e.clone().unalias_nested().data {
            Expr::Column(c) => w
                .input
                .schema()
                .index_of_column(&c)
                .ok()
                .and_then(|i| crate::windows::window_column(&input, i)),
            _ => None,
        };
        let bounds: Vec<_> = params.partition_by.iter().map(bound_of).collect();
        let window_end = match (
            bounds
                .iter()
                .position(|b| *b == Some(crate::windows::Bound::Start)),
            bounds
                .iter()
                .position(|b| *b == Some(crate::windows::Bound::End)),
        ) {
            (Some(_), Some(end)) if input.is_append_only() => {
                Some(params.partition_by[end].clone())
            }
            _ => None,
        };
        // A window deduplication emits when its window ends.
        let rank = match rank {
            RankOutput::FirstOnWatermark if window_end.is_some() => {
                RankOutput::Deduplicate { keep_last: false }
            }
            r => r,
        };
        let mut node = PlanNode::TopN {
            window_end,
            input: Box::new(input),
            input_schema: w.input.schema().clone(),
            partition_by: params.partition_by,
            order_by: params.order_by,
            limit: limit as usize,
            rank,
            output_schema: w.schema.clone(),
        };
        if let Some(p) = middle {
            node = PlanNode::Project {
                input: Box::new(node),
                exprs: p.expr.clone(),
                input_schema: w.schema.clone(),
            };
        }
        if let Some(predicate) = conjunction(rest) {
            node = PlanNode::Filter {
                input: Box::new(node),
                predicate,
                input_schema: f.input.schema().clone(),
            };
        }
        Ok(node)
    }
}
