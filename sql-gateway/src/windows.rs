//! Flink's window table-valued functions: `TABLE(TUMBLE(TABLE t,
//! DESCRIPTOR(ts), size [, offset]))`, `HOP(..., slide, size [, offset])`,
//! `CUMULATE(..., step, size [, offset])` and `SESSION(TABLE t [PARTITION BY
//! k], DESCRIPTOR(ts), gap)`, positional or with named arguments (`DATA =>
//! TABLE t, TIMECOL => DESCRIPTOR(ts), SIZE => ...`); and the older group
//! windows, `GROUP BY TUMBLE(ts, size)` and the like, rewritten to the same
//! markers.
//!
//! A window TVF is rewritten, before DataFusion plans the query, into a
//! derived table: every column of `t` plus `window_start`, `window_end` and
//! `window_time`, computed by the marker functions `weir_window_start`,
//! `weir_window_end` and `weir_window_time`. Those carry the window's shape
//! as literal arguments, so the planner finds the window again when it meets
//! `GROUP BY window_start, window_end` and turns the aggregation into a
//! [`crate::PlanNode::WindowAggregate`], which assigns rows to windows itself
//! (a hopping or cumulating window puts one row in several windows). For a
//! tumbling window the markers also evaluate as plain functions, so a
//! `SELECT` over `TUMBLE` without aggregation works too.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit, TimestampMillisecondType};
use datafusion::common::{exec_err, plan_err, Result as DfResult, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    visit_expressions_mut, DateTimeField, Expr as SqlExpr, FunctionArg, FunctionArgExpr,
    FunctionArgOperator, FunctionArguments, GroupByExpr, Ident, Query, Select, SetExpr, TableAlias,
    TableFactor, TableWithJoins, Value,
};
use datafusion::sql::sqlparser::parser::Parser;

use crate::dialect::{FlinkDialect, TABLE_ARG_MARKER};
use crate::error::SqlError;
use crate::plan::{WindowKind, WindowSpec};

pub const WINDOW_START_FN: &str = "weir_window_start";
pub const WINDOW_END_FN: &str = "weir_window_end";
pub const WINDOW_TIME_FN: &str = "weir_window_time";
/// The `index`-th window of a row (earliest end first), for a `HOP` or
/// `CUMULATE` TVF used without aggregation: each row is expanded once per
/// window it is in ([`WindowNth`]).
pub const WINDOW_NTH_FN: &str = "weir_window_nth";

/// The window kind as a marker's second argument.
const TUMBLE: i64 = 0;
const HOP: i64 = 1;
const CUMULATE: i64 = 2;
const SESSION: i64 = 3;

/// Which window column a marker computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bound {
    Start,
    End,
    Time,
}

/// The marker functions, to register with the planner's session.
pub fn marker_udfs() -> Vec<Arc<ScalarUDF>> {
    [Bound::Start, Bound::End, Bound::Time]
        .into_iter()
        .map(|b| Arc::new(ScalarUDF::from(WindowMarker::new(b))))
        .chain([nth_udf()])
        .collect()
}

pub(crate) fn nth_udf() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::from(WindowNth {
        signature: Signature::variadic_any(Volatility::Immutable),
    }))
}

/// `weir_window_nth(time, kind, size, step, offset, index, bound)`: bound
/// `bound` (0 start, 1 end, 2 time) of the row's `index`-th window, NULL
/// when the row is in fewer windows (a `CUMULATE` row is in fewer the
/// later it comes in its window).
#[derive(Debug, PartialEq, Eq, Hash)]
struct WindowNth {
    signature: Signature,
}

impl ScalarUDFImpl for WindowNth {
    fn name(&self) -> &str {
        WINDOW_NTH_FN
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        bound_type(args)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let bound = match constant(&args, 6)? {
            0 => Bound::Start,
            1 => Bound::End,
            _ => Bound::Time,
        };
        window_bounds(&args, constant(&args, 5)? as usize, bound)
    }
}

/// The type of a window bound: the time attribute's, at millisecond
/// precision.
fn bound_type(args: &[DataType]) -> DfResult<DataType> {
    match args.first() {
        Some(DataType::Timestamp(_, tz)) => Ok(DataType::Timestamp(TimeUnit::Millisecond, tz.clone())),
        Some(other) => plan_err!(
            "the DESCRIPTOR of a window function must name a TIMESTAMP(3) or TIMESTAMP_LTZ(3) column, not one of type {other}"
        ),
        None => plan_err!("a window function needs a time column"),
    }
}

/// Argument `i` of a window function, a constant.
fn constant(args: &ScalarFunctionArgs, i: usize) -> DfResult<i64> {
    match &args.args[i] {
        ColumnarValue::Scalar(ScalarValue::Int64(Some(v))) => Ok(*v),
        ColumnarValue::Scalar(ScalarValue::Int32(Some(v))) => Ok(i64::from(*v)),
        _ => exec_err!("window argument {i} is not a constant"),
    }
}

/// An integer literal's value: the planner makes one that fits an `INT`
/// an `INT`, as Flink types it.
fn int_literal(e: Option<&Expr>) -> Option<i64> {
    match e? {
        Expr::Literal(ScalarValue::Int64(Some(v)), _) => Some(*v),
        Expr::Literal(ScalarValue::Int32(Some(v)), _) => Some(i64::from(*v)),
        _ => None,
    }
}

/// Bound `bound` of each row's window `index` (earliest end first), from
/// the arguments `(time, kind, size, step, offset, ...)`; NULL where a row
/// is in fewer windows.
fn window_bounds(args: &ScalarFunctionArgs, index: usize, bound: Bound) -> DfResult<ColumnarValue> {
    let ts = args.args[0].clone().into_array(args.number_rows)?;
    let kind = match constant(args, 1)? {
        HOP => WindowKind::Hop {
            slide_ms: constant(args, 3)?,
        },
        CUMULATE => WindowKind::Cumulate {
            step_ms: constant(args, 3)?,
        },
        _ => WindowKind::Tumble,
    };
    let spec = WindowSpec {
        kind,
        size_ms: constant(args, 2)?,
        offset_ms: constant(args, 4)?,
        zone: crate::plan::WindowZone::of_type(ts.data_type()),
        proctime: false,
    };
    let out_type = args.return_field.data_type().clone();
    let tz = match &out_type {
        DataType::Timestamp(_, tz) => tz.clone(),
        _ => None,
    };
    // The instants as they are: a plain cast would read them as wall-clock
    // time in the zone.
    let ms = cast(&ts, &DataType::Timestamp(TimeUnit::Millisecond, tz.clone()))?;
    let out: arrow::array::TimestampMillisecondArray = ms
        .as_primitive::<TimestampMillisecondType>()
        .iter()
        .map(|t| {
            let (start, end) = *spec.windows(t?).get(index)?;
            Some(match bound {
                Bound::Start => start,
                Bound::End => end,
                Bound::Time => end - 1,
            })
        })
        .collect::<arrow::array::TimestampMillisecondArray>()
        .with_timezone_opt(tz);
    let out: ArrayRef = Arc::new(out);
    Ok(ColumnarValue::Array(cast(&out, &out_type)?))
}

/// The window bound a [`WINDOW_NTH_FN`] call computes.
pub(crate) fn as_nth(e: &Expr) -> Option<Bound> {
    let Expr::ScalarFunction(f) = e.clone().unalias_nested().data else {
        return None;
    };
    if f.func.name() != WINDOW_NTH_FN {
        return None;
    }
    match int_literal(f.args.get(6))? {
        0 => Some(Bound::Start),
        1 => Some(Bound::End),
        _ => Some(Bound::Time),
    }
}

/// How many windows a row of a `HOP` or `CUMULATE` window is in at most;
/// `None` for other windows.
pub(crate) fn windows_per_row(w: &WindowSpec) -> Option<i64> {
    match w.kind {
        WindowKind::Hop { slide_ms } => Some(w.size_ms / slide_ms),
        WindowKind::Cumulate { step_ms } => Some(w.size_ms / step_ms),
        _ => None,
    }
}

/// The call of [`WINDOW_NTH_FN`] for bound `bound` of window `index` of
/// the window marker `m` stands for.
pub(crate) fn nth_call(m: &Marker, index: i64) -> Expr {
    let (kind, step) = match m.window.kind {
        WindowKind::Hop { slide_ms } => (HOP, slide_ms),
        WindowKind::Cumulate { step_ms } => (CUMULATE, step_ms),
        WindowKind::Tumble => (TUMBLE, m.window.size_ms),
        WindowKind::Session => (SESSION, m.window.size_ms),
    };
    let bound = match m.bound {
        Bound::Start => 0,
        Bound::End => 1,
        Bound::Time => 2,
    };
    let lit = |v: i64| Expr::Literal(ScalarValue::Int64(Some(v)), None);
    nth_udf().call(vec![
        m.time.clone(),
        lit(kind),
        lit(m.window.size_ms),
        lit(step),
        lit(m.window.offset_ms),
        lit(index),
        lit(bound),
    ])
}

/// Which window bound column `idx` of `node`'s output is, passed through
/// unchanged from a window aggregation or window TVF.
pub(crate) fn window_column(node: &crate::plan::PlanNode, idx: usize) -> Option<Bound> {
    use crate::plan::{ColumnOrigin, GroupColumn, PlanNode};
    match node.column_origin(idx)? {
        ColumnOrigin::Node(PlanNode::WindowAggregate { layout, .. }, i) => match layout.get(i)? {
            GroupColumn::WindowStart => Some(Bound::Start),
            GroupColumn::WindowEnd => Some(Bound::End),
            GroupColumn::WindowTime => Some(Bound::Time),
            GroupColumn::Key(_) => None,
        },
        ColumnOrigin::Computed(e) => as_marker(e).map(|m| m.bound),
        // A HOP or CUMULATE TVF expanded without aggregation.
        ColumnOrigin::Node(PlanNode::Expand { projections, .. }, i) => {
            as_nth(projections.first()?.get(i)?)
        }
        ColumnOrigin::Node(..) => None,
    }
}

/// A marker call, taken apart.
#[derive(Debug, Clone)]
pub struct Marker {
    pub bound: Bound,
    /// The time attribute.
    pub time: Expr,
    pub window: WindowSpec,
    /// A session window's `PARTITION BY` columns.
    pub partition_by: Vec<Expr>,
}

/// The marker `e` calls, if it calls one.
pub fn as_marker(e: &Expr) -> Option<Marker> {
    let Expr::ScalarFunction(f) = e.clone().unalias_nested().data else {
        return None;
    };
    let bound = match f.func.name() {
        WINDOW_START_FN => Bound::Start,
        WINDOW_END_FN => Bound::End,
        WINDOW_TIME_FN => Bound::Time,
        _ => return None,
    };
    let lit = |i: usize| int_literal(f.args.get(i));
    let kind = match lit(1)? {
        TUMBLE => WindowKind::Tumble,
        HOP => WindowKind::Hop { slide_ms: lit(3)? },
        CUMULATE => WindowKind::Cumulate { step_ms: lit(3)? },
        SESSION => WindowKind::Session,
        _ => return None,
    };
    Some(Marker {
        bound,
        time: f.args[0].clone(),
        window: WindowSpec {
            kind,
            size_ms: lit(2)?,
            offset_ms: lit(4)?,
            // The planner sets these from the time column.
            zone: None,
            proctime: false,
        },
        partition_by: f.args[5..].to_vec(),
    })
}

/// Why a window of `kind` cannot be computed row by row, outside a window
/// aggregation; `None` for a tumbling window, which can.
fn needs_aggregation(kind: i64) -> Option<&'static str> {
    match kind {
        TUMBLE => None,
        SESSION => Some(
            "a SESSION window depends on the rows after it: use it with GROUP BY window_start, window_end",
        ),
        _ => Some(
            "HOP and CUMULATE windows put a row in several windows: Weir expands the rows of a window TVF used without aggregation, but not where its columns are used like this",
        ),
    }
}

/// Refuses window columns used outside a window aggregation where they
/// cannot be computed row by row (see [`needs_aggregation`]).
pub fn refuse_unaggregated(exprs: &[Expr]) -> Result<(), SqlError> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    let mut why = None;
    for e in exprs {
        let _ = e.apply(|x| {
            let kind = match as_marker(x) {
                Some(Marker { window, .. }) => match window.kind {
                    WindowKind::Tumble => TUMBLE,
                    WindowKind::Hop { .. } => HOP,
                    WindowKind::Cumulate { .. } => CUMULATE,
                    WindowKind::Session => SESSION,
                },
                None => return Ok(TreeNodeRecursion::Continue),
            };
            why = needs_aggregation(kind);
            Ok(if why.is_some() {
                TreeNodeRecursion::Stop
            } else {
                TreeNodeRecursion::Continue
            })
        });
        if let Some(why) = why {
            return Err(SqlError::unsupported(why));
        }
    }
    Ok(())
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct WindowMarker {
    bound: Bound,
    signature: Signature,
}

impl WindowMarker {
    fn new(bound: Bound) -> WindowMarker {
        WindowMarker {
            bound,
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for WindowMarker {
    fn name(&self) -> &str {
        match self.bound {
            Bound::Start => WINDOW_START_FN,
            Bound::End => WINDOW_END_FN,
            Bound::Time => WINDOW_TIME_FN,
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        bound_type(args)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        if let Some(why) = needs_aggregation(constant(&args, 1)?) {
            return exec_err!("{why}");
        }
        window_bounds(&args, 0, self.bound)
    }
}

/// Rewrites every window TVF in `query` (see the module documentation).
pub fn rewrite_window_tvfs(query: &mut Query) -> Result<(), SqlError> {
    if let Some(with) = &mut query.with {
        for cte in &mut with.cte_tables {
            rewrite_window_tvfs(&mut cte.query)?;
        }
    }
    set_expr(&mut query.body)?;
    // Subqueries in expressions (`IN`, `EXISTS`, scalar) may read window
    // TVFs too; a query already rewritten is left as it is.
    let flow = visit_expressions_mut(&mut query.body, |e| {
        let q = match e {
            SqlExpr::Subquery(q)
            | SqlExpr::InSubquery { subquery: q, .. }
            | SqlExpr::Exists { subquery: q, .. } => q,
            _ => return std::ops::ControlFlow::Continue(()),
        };
        match rewrite_window_tvfs(q) {
            Ok(()) => std::ops::ControlFlow::Continue(()),
            Err(err) => std::ops::ControlFlow::Break(err),
        }
    });
    match flow {
        std::ops::ControlFlow::Break(e) => Err(e),
        std::ops::ControlFlow::Continue(()) => Ok(()),
    }
}

fn set_expr(s: &mut SetExpr) -> Result<(), SqlError> {
    match s {
        SetExpr::Select(select) => {
            for t in &mut select.from {
                table_with_joins(t)?;
            }
            group_window(select)
        }
        SetExpr::Query(q) => rewrite_window_tvfs(q),
        SetExpr::SetOperation { left, right, .. } => {
            set_expr(left)?;
            set_expr(right)
        }
        _ => Ok(()),
    }
}

fn table_with_joins(t: &mut TableWithJoins) -> Result<(), SqlError> {
    factor(&mut t.relation)?;
    for j in &mut t.joins {
        factor(&mut j.relation)?;
    }
    Ok(())
}

fn factor(f: &mut TableFactor) -> Result<(), SqlError> {
    match f {
        TableFactor::Derived { subquery, .. } => rewrite_window_tvfs(subquery),
        TableFactor::NestedJoin {
            table_with_joins: t,
            ..
        } => table_with_joins(t),
        TableFactor::TableFunction { expr, alias } => {
            let start = datafusion::sql::sqlparser::ast::Spanned::span(&*expr).start;
            let at = (start.line > 0).then_some((start.line, start.column));
            let Some(sub) = window_subquery(expr).map_err(|e| e.or_at(at))? else {
                return Ok(());
            };
            *f = TableFactor::Derived {
                lateral: false,
                subquery: Box::new(sub),
                alias: alias.take(),
                sample: None,
            };
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Flink's older group-window syntax, `GROUP BY k, TUMBLE(ts, size)`,
/// `HOP(ts, slide, size)` or `SESSION(ts, gap)` with `TUMBLE_START(ts,
/// size)`, `..._END` and `..._ROWTIME` in the select list, rewritten to the
/// markers the window TVFs use: the one table in `FROM` becomes a derived
/// table under the same name with the window columns added, the window
/// call in `GROUP BY` becomes its start and end, and the auxiliary calls
/// become the columns.
fn group_window(select: &mut Select) -> Result<(), SqlError> {
    let GroupByExpr::Expressions(group_by, _) = &mut select.group_by else {
        return Ok(());
    };
    let found = group_by.iter().enumerate().find_map(|(i, e)| match e {
        SqlExpr::Function(f) => {
            let name = f.name.to_string().to_uppercase();
            matches!(name.as_str(), "TUMBLE" | "HOP" | "SESSION").then(|| (i, name, f.args.clone()))
        }
        _ => None,
    });
    let Some((at, name, args)) = found else {
        return Ok(());
    };
    let args: Vec<SqlExpr> = match &args {
        FunctionArguments::List(l) => l
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e.clone()),
                other => Err(SqlError::validation(
                    format!("GROUP BY {name}(...): unexpected argument {other}"),
                    None,
                )),
            })
            .collect::<Result<_, _>>()?,
        _ => vec![],
    };
    let (kind, size, step) = match (name.as_str(), args.len()) {
        ("TUMBLE", 2) => (TUMBLE, interval_ms(&args[1])?, 0),
        ("HOP", 3) => (HOP, interval_ms(&args[2])?, interval_ms(&args[1])?),
        ("SESSION", 2) => (SESSION, interval_ms(&args[1])?, 0),
        _ => {
            return Err(SqlError::validation(
                format!(
                    "GROUP BY {name} takes {}",
                    match name.as_str() {
                        "HOP" => "(time_attr, slide, size)",
                        "SESSION" => "(time_attr, gap)",
                        _ => "(time_attr, size)",
                    }
                ),
                None,
            ))
        }
    };
    let [from] = &mut select.from[..] else {
        return Err(SqlError::unsupported(format!(
            "GROUP BY {name}(...) over more than one table; join in a subquery and group its result"
        )));
    };
    if !from.joins.is_empty() {
        return Err(SqlError::unsupported(format!(
            "GROUP BY {name}(...) over a join; join in a subquery and group its result"
        )));
    }
    let alias = match &from.relation {
        TableFactor::Table { alias: Some(a), .. } | TableFactor::Derived { alias: Some(a), .. } => {
            a.name.clone()
        }
        TableFactor::Table { name: n, .. } => {
            n.0.last()
                .and_then(|p| p.as_ident().cloned())
                .unwrap_or_else(|| Ident::new("__weir_window_input"))
        }
        _ => Ident::new("__weir_window_input"),
    };
    let mut inner = window_columns(
        &format!("GROUP BY {name}"),
        kind,
        size,
        (step, "slide"),
        0,
        &args[0].to_string(),
        &[],
        [LEGACY_START, LEGACY_END, LEGACY_TIME],
        "__weir_window_input",
    )?;
    if let SetExpr::Select(s) = inner.body.as_mut() {
        s.from[0].relation = from.relation.clone();
    }
    from.relation = TableFactor::Derived {
        lateral: false,
        subquery: inner,
        alias: Some(TableAlias {
            explicit: true,
            name: alias.clone(),
            columns: vec![],
            at: None,
        }),
        sample: None,
    };
    let column = |c: &str| SqlExpr::CompoundIdentifier(vec![alias.clone(), Ident::new(c)]);
    group_by.splice(
        at..=at,
        [
            column(LEGACY_START),
            column(LEGACY_END),
            column(LEGACY_TIME),
        ],
    );
    // The auxiliary functions must name the GROUP BY's window.
    let window_text = args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let mut bad = None;
    let mut replace = |e: &mut SqlExpr| {
        if let SqlExpr::Function(f) = e {
            let fname = f.name.to_string().to_uppercase();
            let column_name = match fname.strip_prefix(&format!("{name}_")) {
                Some("START") => LEGACY_START,
                Some("END") => LEGACY_END,
                Some("ROWTIME") => LEGACY_TIME,
                _ => return ControlFlow::<()>::Continue(()),
            };
            let same = match &f.args {
                FunctionArguments::List(l) => {
                    l.args.iter().map(|a| a.to_string()).collect::<Vec<_>>() == window_text
                }
                _ => false,
            };
            if !same {
                bad = Some(format!(
                    "{fname}({}) must repeat the GROUP BY's {name}({}) arguments",
                    match &f.args {
                        FunctionArguments::List(l) => l.to_string(),
                        _ => String::new(),
                    },
                    window_text.join(", ")
                ));
            }
            *e = column(column_name);
        }
        ControlFlow::Continue(())
    };
    let _ = visit_expressions_mut(&mut select.projection, &mut replace);
    let _ = visit_expressions_mut(&mut select.having, &mut replace);
    match bad {
        Some(m) => Err(SqlError::validation(m, None)),
        None => Ok(()),
    }
}

/// Checks a window's sizes, and parses the query that adds its columns to
/// `from` under `names`: `SELECT *, <start>, <end>, <time> FROM <from>`,
/// each a marker call over `timecol` (and, for a session, the partition
/// columns). `what` and `step_name` name the window in errors.
#[allow(clippy::too_many_arguments)]
fn window_columns(
    what: &str,
    kind: i64,
    size: i64,
    (step, step_name): (i64, &str),
    offset: i64,
    timecol: &str,
    partition_by: &[SqlExpr],
    names: [&str; 3],
    from: &str,
) -> Result<Box<Query>, SqlError> {
    let stepped = matches!(kind, HOP | CUMULATE);
    if size <= 0 || (stepped && step <= 0) {
        return Err(SqlError::validation(
            format!("{what}: window sizes must be positive"),
            None,
        ));
    }
    if stepped && size % step != 0 {
        return Err(SqlError::validation(
            format!(
                "{what}: the size ({size} ms) must be a whole multiple of the {step_name} ({step} ms)"
            ),
            None,
        ));
    }
    // Every row is added to size / step windows: a 1-day HOP sliding by
    // 1 ms would put each row in 86.4 million of them.
    if stepped && size / step > crate::limits::MAX_WINDOWS_PER_ROW {
        return Err(SqlError::validation(
            format!(
                "{what}: a size of {size} ms in {step_name}s of {step} ms puts every row in {} \
                 windows; Weir allows at most {} per row. Use a longer {step_name} or a shorter \
                 size (one day in one-minute {step_name}s is 1,440 windows), or a TUMBLE window",
                size / step,
                crate::limits::MAX_WINDOWS_PER_ROW
            ),
            None,
        ));
    }
    let mut args = format!("{timecol}, {kind}, {size}, {step}, {offset}");
    for p in partition_by {
        args.push_str(&format!(", {p}"));
    }
    let [start, end, time] = names;
    let sql = format!(
        "SELECT *, {WINDOW_START_FN}({args}) AS {start}, {WINDOW_END_FN}({args}) AS {end}, \
         {WINDOW_TIME_FN}({args}) AS {time} FROM {from}"
    );
    Parser::new(&FlinkDialect)
        .try_with_sql(&sql)
        .and_then(|mut p| p.parse_query())
        .map_err(|e| SqlError::parse(format!("{what}: {e}"), None))
}

/// The window columns a group window adds; not names a user would pick.
const LEGACY_START: &str = "__weir_window_start";
const LEGACY_END: &str = "__weir_window_end";
const LEGACY_TIME: &str = "__weir_window_time";

/// The derived query that stands for a window TVF call, or `None` when
/// `expr` is another table function.
fn window_subquery(expr: &SqlExpr) -> Result<Option<Query>, SqlError> {
    let SqlExpr::Function(f) = expr else {
        return Ok(None);
    };
    let name = f.name.to_string().to_uppercase();
    let (kind, params): (i64, &[&str]) = match name.as_str() {
        "TUMBLE" => (TUMBLE, &["DATA", "TIMECOL", "SIZE", "OFFSET"]),
        "HOP" => (HOP, &["DATA", "TIMECOL", "SLIDE", "SIZE", "OFFSET"]),
        "CUMULATE" => (CUMULATE, &["DATA", "TIMECOL", "STEP", "SIZE", "OFFSET"]),
        "SESSION" => (SESSION, &["DATA", "TIMECOL", "GAP"]),
        _ => return Ok(None),
    };
    let FunctionArguments::List(list) = &f.args else {
        return Err(SqlError::validation(
            format!("{name} takes arguments: {}", params.join(", ")),
            None,
        ));
    };
    let mut by_name: Vec<Option<&SqlExpr>> = vec![None; params.len()];
    for (i, a) in list.args.iter().enumerate() {
        let (slot, e) = match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => (i, e),
            FunctionArg::Named {
                name: n,
                arg: FunctionArgExpr::Expr(e),
                operator: FunctionArgOperator::RightArrow | FunctionArgOperator::Equals,
            } => {
                let up = n.value.to_uppercase();
                let slot = params.iter().position(|p| *p == up).ok_or_else(|| {
                    SqlError::validation(
                        format!(
                            "{name} has no parameter {up}; its parameters are {}",
                            params.join(", ")
                        ),
                        None,
                    )
                })?;
                (slot, e)
            }
            other => {
                return Err(SqlError::validation(
                    format!("{name}: unexpected argument {other}"),
                    None,
                ))
            }
        };
        if slot >= params.len() {
            return Err(SqlError::validation(
                format!(
                    "{name} takes at most {} arguments ({})",
                    params.len(),
                    params.join(", ")
                ),
                None,
            ));
        }
        by_name[slot] = Some(e);
    }
    let need = |i: usize| {
        by_name[i].ok_or_else(|| {
            SqlError::validation(format!("{name} needs its {} argument", params[i]), None)
        })
    };
    let (data, partition_by) = match need(0)? {
        SqlExpr::Tuple(parts) if !parts.is_empty() => (&parts[0], &parts[1..]),
        other => (other, &[][..]),
    };
    let table = match data {
        SqlExpr::CompoundIdentifier(parts)
            if parts.first().is_some_and(|p| p.value == TABLE_ARG_MARKER) =>
        {
            parts[1..]
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(".")
        }
        other => {
            return Err(SqlError::validation(
                format!("the DATA argument of {name} must be TABLE <name>, not {other}"),
                None,
            ))
        }
    };
    if kind != SESSION && !partition_by.is_empty() {
        return Err(SqlError::validation(
            format!("{name} takes no PARTITION BY; only SESSION windows are partitioned"),
            None,
        ));
    }
    let timecol = match need(1)? {
        SqlExpr::Function(d) if d.name.to_string().eq_ignore_ascii_case("DESCRIPTOR") => {
            match &d.args {
                FunctionArguments::List(l) if l.args.len() == 1 => l.args[0].to_string(),
                _ => {
                    return Err(SqlError::validation(
                        format!("{name}: DESCRIPTOR takes exactly one time column"),
                        None,
                    ))
                }
            }
        }
        other => {
            return Err(SqlError::validation(
                format!("the TIMECOL argument of {name} must be DESCRIPTOR(<column>), not {other}"),
                None,
            ))
        }
    };
    let (size, step) = match kind {
        TUMBLE | SESSION => (interval_ms(need(2)?)?, 0),
        _ => (interval_ms(need(3)?)?, interval_ms(need(2)?)?),
    };
    let offset = match params.iter().position(|p| *p == "OFFSET") {
        Some(i) => by_name[i].map_or(Ok(0), interval_ms)?,
        None => 0,
    };
    let q = window_columns(
        &name,
        kind,
        size,
        (step, params[2]),
        offset,
        &timecol,
        partition_by,
        ["window_start", "window_end", "window_time"],
        &table,
    )?;
    Ok(Some(*q))
}

/// Milliseconds of an `INTERVAL '10' SECOND`-style literal.
fn interval_ms(e: &SqlExpr) -> Result<i64, SqlError> {
    let bad = || {
        SqlError::validation(
            format!("expected an interval like INTERVAL '10' SECOND, found {e}"),
            None,
        )
    };
    let SqlExpr::Interval(iv) = e else {
        return Err(bad());
    };
    let text = match iv.value.as_ref() {
        SqlExpr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => s.clone(),
            Value::Number(n, _) => n.clone(),
            _ => return Err(bad()),
        },
        _ => return Err(bad()),
    };
    let (number, unit) = match &iv.leading_field {
        Some(f) => (text.trim().to_string(), unit_ms(f).ok_or_else(bad)?),
        None => {
            let mut parts = text.split_whitespace();
            let n = parts.next().ok_or_else(bad)?.to_string();
            let u = parts.next().ok_or_else(bad)?.to_uppercase();
            let u = u.trim_end_matches('S');
            let ms = match u {
                "MILLISECOND" => 1,
                "SECOND" => 1_000,
                "MINUTE" => 60_000,
                "HOUR" => 3_600_000,
                "DAY" => 86_400_000,
                _ => return Err(bad()),
            };
            (n, ms)
        }
    };
    let v: f64 = number.parse().map_err(|_| bad())?;
    Ok((v * unit as f64).round() as i64)
}

fn unit_ms(f: &DateTimeField) -> Option<i64> {
    Some(match f {
        DateTimeField::Millisecond | DateTimeField::Milliseconds => 1,
        DateTimeField::Second | DateTimeField::Seconds => 1_000,
        DateTimeField::Minute | DateTimeField::Minutes => 60_000,
        DateTimeField::Hour | DateTimeField::Hours => 3_600_000,
        DateTimeField::Day | DateTimeField::Days => 86_400_000,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_arithmetic_matches_flink() {
        let tumble = WindowSpec {
            kind: WindowKind::Tumble,
            size_ms: 10,
            offset_ms: 0,
            zone: None,
            proctime: false,
        };
        assert_eq!(tumble.windows(17), vec![(10, 20)]);
        assert_eq!(tumble.windows(-3), vec![(-10, 0)]);
        let shifted = WindowSpec {
            offset_ms: 3,
            ..tumble
        };
        assert_eq!(shifted.windows(2), vec![(-7, 3)]);
        let hop = WindowSpec {
            kind: WindowKind::Hop { slide_ms: 5 },
            size_ms: 10,
            offset_ms: 0,
            zone: None,
            proctime: false,
        };
        assert_eq!(hop.windows(7), vec![(0, 10), (5, 15)]);
        let cumulate = WindowSpec {
            kind: WindowKind::Cumulate { step_ms: 2 },
            size_ms: 6,
            offset_ms: 0,
            zone: None,
            proctime: false,
        };
        assert_eq!(cumulate.windows(3), vec![(0, 4), (0, 6)]);
        assert_eq!(cumulate.windows(6), vec![(6, 8), (6, 10), (6, 12)]);
    }

    #[test]
    fn windows_in_a_zone_align_on_its_wall_clock() {
        const H: i64 = 3_600_000;
        let day = WindowSpec {
            kind: WindowKind::Tumble,
            size_ms: 24 * H,
            offset_ms: 0,
            zone: crate::plan::WindowZone::parse("+08:00"),
            proctime: false,
        };
        // 1970-01-01T20:00Z is 04:00 on 1970-01-02 at +08:00: that day
        // began at 16:00Z the day before.
        assert_eq!(day.windows(20 * H), vec![(16 * H, 40 * H)]);
        assert_eq!(day.windows(15 * H), vec![(-8 * H, 16 * H)]);
        // Amsterdam's day of the 2024 spring-forward (31 March) has 23
        // hours: 2024-03-30T23:00Z to 2024-03-31T22:00Z.
        let ams = WindowSpec {
            zone: crate::plan::WindowZone::parse("Europe/Amsterdam"),
            ..day
        };
        let noon = 1_711_886_400_000; // 2024-03-31T12:00Z
        assert_eq!(
            ams.windows(noon),
            vec![(1_711_839_600_000, 1_711_922_400_000)]
        );
        assert_eq!(crate::plan::WindowZone::parse("UTC"), None);
        assert_eq!(crate::plan::WindowZone::parse("+00:00"), None);
    }
}
