//! Event-time temporal joins: `JOIN versioned FOR SYSTEM_TIME AS OF l.ts`.
//!
//! DataFusion plans a table version like no version at all, so the
//! version is taken off the syntax tree first and becomes a marker call
//! [`AS_OF_FN`]`(l.ts, r.<time attribute>)` added to the join's `ON`
//! condition, where the optimizer keeps both columns and the call (it is
//! volatile); the join whose condition holds it becomes a
//! [`PlanNode::TemporalJoin`]. The right table must be versioned: an upsert
//! table (a primary key) with a watermark, whose time attribute is the
//! versions' time.
//!
//! `AS OF` a processing-time attribute (`PROCTIME()`) makes it a
//! processing-time temporal join, which Flink runs as a lookup join: each
//! left row is joined when it arrives with the row its key has then. The
//! right table must be an upsert table; it needs no watermark. (Flink
//! looks the row up in an external store; Weir holds the table's latest
//! rows, read from its topic.)

use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::array::BooleanArray;
use arrow::datatypes::DataType;
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr as SqlExpr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList,
    FunctionArguments, Ident, JoinConstraint, JoinOperator, ObjectName, ObjectNamePart, Query,
    Select, SetExpr, TableFactor, TableVersion, VisitMut, VisitorMut,
};

use crate::error::SqlError;
use crate::metadata::CatalogContext;
use crate::plan::{JoinKind, PlanNode};

/// The marker of a temporal join in its `ON` condition.
pub const AS_OF_FN: &str = "__weir_for_system_time_as_of";

pub(crate) fn udf() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::from(AsOf {
        signature: Signature::any(2, Volatility::Volatile),
    }))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct AsOf {
    signature: Signature,
}

impl ScalarUDFImpl for AsOf {
    fn name(&self) -> &str {
        AS_OF_FN
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }

    /// Always true: the temporal join operator does the matching.
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Ok(ColumnarValue::Array(Arc::new(BooleanArray::from(vec![
            true;
            args.number_rows
        ]))))
    }
}

struct Versions<'a> {
    ctx: &'a CatalogContext,
    error: Option<SqlError>,
}

impl Versions<'_> {
    fn select(&mut self, select: &mut Select) -> Result<(), SqlError> {
        for twj in &mut select.from {
            if version_of(&twj.relation).is_some() {
                return Err(SqlError::unsupported(
                    "FOR SYSTEM_TIME AS OF on the first table: write the versioned table on the right, `FROM l JOIN r FOR SYSTEM_TIME AS OF l.ts ON ...`",
                ));
            }
            for join in &mut twj.joins {
                let Some(marker) = self.marker(&mut join.relation)? else {
                    continue;
                };
                let constraint =
                    match &mut join.join_operator {
                        JoinOperator::Join(c)
                        | JoinOperator::Inner(c)
                        | JoinOperator::Left(c)
                        | JoinOperator::LeftOuter(c) => c,
                        _ => return Err(SqlError::unsupported(
                            "a temporal join is JOIN or LEFT JOIN ... FOR SYSTEM_TIME AS OF ... ON",
                        )),
                    };
                let JoinConstraint::On(on) = constraint else {
                    return Err(SqlError::unsupported(
                        "a temporal join needs ON with an equality on the versioned table's primary key",
                    ));
                };
                *on = SqlExpr::BinaryOp {
                    left: Box::new(on.clone()),
                    op: BinaryOperator::And,
                    right: Box::new(marker),
                };
            }
        }
        Ok(())
    }

    /// Takes the version off a versioned table factor; the marker call.
    fn marker(&mut self, factor: &mut TableFactor) -> Result<Option<SqlExpr>, SqlError> {
        let TableFactor::Table {
            name,
            alias,
            version,
            ..
        } = factor
        else {
            return Ok(None);
        };
        let Some(v) = version.take() else {
            return Ok(None);
        };
        let left = match v {
            TableVersion::ForSystemTimeAsOf(e @ (SqlExpr::Identifier(_) | SqlExpr::CompoundIdentifier(_))) => e,
            other => {
                return Err(SqlError::unsupported(format!(
                    "{other}: a temporal join is FOR SYSTEM_TIME AS OF the left table's time attribute (a column)"
                )))
            }
        };
        let parts: Vec<String> = name
            .0
            .iter()
            .filter_map(|p| p.as_ident().map(|i| i.value.clone()))
            .collect();
        let (catalog, db, table) = match parts.as_slice() {
            [t] => (None, None, t.as_str()),
            [d, t] => (None, Some(d.as_str()), t.as_str()),
            [c, d, t] => (Some(c.as_str()), Some(d.as_str()), t.as_str()),
            _ => return Ok(None),
        };
        let def = self.ctx.find_table(catalog, db, table)?;
        let qualifier = alias
            .as_ref()
            .map_or_else(|| Ident::new(table), |a| a.name.clone());
        // Without a watermark there are no versions by time: the join can
        // only be on processing time, which `temporal_join` checks. The
        // marker still names a right column, which keeps it in the join
        // (a condition on the left alone would be pushed below it).
        let column = match (&def.watermark, def.primary_key.first(), def.columns.first()) {
            (Some(w), _, _) => &w.column,
            (None, Some(k), _) => k,
            (None, None, Some(c)) => &c.name,
            (None, None, None) => return Ok(None),
        };
        let right = SqlExpr::CompoundIdentifier(vec![qualifier, Ident::new(column)]);
        let arg = |e: SqlExpr| FunctionArg::Unnamed(FunctionArgExpr::Expr(e));
        Ok(Some(SqlExpr::Function(Function {
            name: ObjectName(vec![ObjectNamePart::Identifier(Ident::new(AS_OF_FN))]),
            uses_odbc_syntax: false,
            parameters: FunctionArguments::None,
            args: FunctionArguments::List(FunctionArgumentList {
                duplicate_treatment: None,
                args: vec![arg(left), arg(right)],
                clauses: vec![],
            }),
            filter: None,
            null_treatment: None,
            over: None,
            within_group: vec![],
        })))
    }
}

fn version_of(factor: &TableFactor) -> Option<&TableVersion> {
    match factor {
        TableFactor::Table { version, .. } => version.as_ref(),
        _ => None,
    }
}

fn set_expr(v: &mut Versions<'_>, body: &mut SetExpr) -> Result<(), SqlError> {
    match body {
        SetExpr::Select(s) => v.select(s),
        SetExpr::SetOperation { left, right, .. } => {
            set_expr(v, left)?;
            set_expr(v, right)
        }
        _ => Ok(()),
    }
}

impl VisitorMut for Versions<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        match set_expr(self, &mut query.body) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                self.error = Some(e);
                ControlFlow::Break(())
            }
        }
    }
}

/// Turns every `FOR SYSTEM_TIME AS OF` of `query` into a marker in its
/// join's `ON`.
pub(crate) fn take_versions(query: &mut Query, ctx: &CatalogContext) -> Result<(), SqlError> {
    let mut v = Versions { ctx, error: None };
    let _ = query.visit(&mut v);
    v.error.map_or(Ok(()), Err)
}

/// The temporal join of `left` and `right` (converted), when the join's
/// right input reads a table `FOR SYSTEM_TIME AS OF` a left column.
pub(crate) fn temporal_join(
    j: &datafusion::logical_expr::Join,
    left: PlanNode,
    right: PlanNode,
    kind: JoinKind,
) -> Result<Result<PlanNode, (PlanNode, PlanNode)>, SqlError> {
    // The marker, and the rest of the condition.
    let mut times = None;
    let mut rest = vec![];
    for c in j.filter.iter().flat_map(split_conjunction) {
        match c {
            Expr::ScalarFunction(f) if f.func.name() == AS_OF_FN => {
                times = Some((f.args[0].clone(), f.args[1].clone()))
            }
            other => rest.push(other.clone()),
        }
    }
    let Some((left_time, right_time)) = times else {
        return Ok(Err((left, right)));
    };
    let sources = right.sources();
    let [spec] = sources.as_slice() else {
        return Err(SqlError::unsupported(
            "FOR SYSTEM_TIME AS OF must name one table, not a subquery",
        ));
    };
    let name = spec.qualified_name.clone();
    let refuse = |why: String| Err(SqlError::unsupported(why));
    let proctime = crate::planner::reads_proctime_attribute(&left_time, &left, j.left.schema());
    let right_time = match (&spec.table.watermark, proctime) {
        // Versions have no time on processing time.
        (_, true) => Expr::Literal(ScalarValue::TimestampMillisecond(None, None), None),
        (Some(_), false) => right_time,
        (None, false) => return refuse(format!(
            "{name} FOR SYSTEM_TIME AS OF {left_time}: a temporal join needs a versioned table, with a WATERMARK on its time attribute, on event time (or join AS OF a PROCTIME() attribute)"
        )),
    };
    if spec.table.primary_key.is_empty() || spec.table.changelog_mode() != "upsert" {
        return refuse(format!(
            "{name} FOR SYSTEM_TIME AS OF: a temporal join needs a versioned table, an upsert table with a PRIMARY KEY"
        ));
    }
    if !matches!(kind, JoinKind::Inner | JoinKind::Left) {
        return refuse(format!(
            "a {} of a temporal table: Flink runs temporal joins as JOIN or LEFT JOIN",
            kind.sql()
        ));
    }
    if j.on.is_empty() {
        return refuse(format!(
            "a temporal join of {name} needs an equality on its primary key ({})",
            spec.table.primary_key.join(", ")
        ));
    }
    if conjunction(rest).is_some() {
        return refuse(
            "a temporal join takes only equalities in ON; filter the joined rows in WHERE".into(),
        );
    }
    if !left.is_append_only() {
        return refuse(format!(
            "a temporal join's left input must be append-only, not the update stream of {}",
            left.update_source().unwrap_or_default()
        ));
    }
    Ok(Ok(PlanNode::TemporalJoin {
        left: Box::new(left),
        right: Box::new(right),
        left_schema: j.left.schema().clone(),
        right_schema: j.right.schema().clone(),
        kind,
        on: j.on.clone(),
        left_time,
        right_time,
        proctime,
        output_schema: j.schema.clone(),
    }))
}
