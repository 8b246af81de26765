//! How a statement splits into parallel stages.
//!
//! A statement without a stateful operator is one stage: its tasks split
//! the source partitions among themselves. A statement whose one stateful
//! operator is keyed (a `GROUP BY`, an equi-join, a keyed window, a Top-N
//! or dedup with `PARTITION BY`, a keyed `OVER`) is two: a source stage
//! that runs everything below the operator and writes each row into an
//! internal repartition topic, hashed by the operator's key, and a keyed
//! stage whose tasks each own a set of that topic's partitions, with the
//! operator's state kept per partition. Stateful operators stacked on a
//! common key are two stages the same way, the keyed stage running them
//! all. Every other plan (a global aggregate, an `ORDER BY ... LIMIT`,
//! stateful operators stacked on keys that share no column, a `SELECT`
//! with a stateful operator) runs as one task. A
//! stateless `SELECT` is one stage like any stateless statement, its
//! tasks' rows gathered into the one result.

use std::collections::BTreeMap;

use datafusion::common::{Column, DFSchemaRef};
use datafusion::logical_expr::Expr;

use crate::plan::{ColumnOrigin, GroupColumn, PlanNode, SinkSpec, StreamingPlan};
use crate::SqlError;

/// The most tasks a stage may have.
pub const MAX_PARALLELISM: u32 = 256;
/// The most partitions a repartition topic may have.
pub const MAX_REPARTITION_PARTITIONS: u32 = 1024;
/// A repartition topic's partitions when `'sql.max-parallelism'` is unset,
/// unless a source has more.
pub const DEFAULT_REPARTITION_PARTITIONS: u32 = 32;

/// The key rows are re-partitioned by on one input of the keyed operator.
#[derive(Debug, Clone)]
pub struct ExchangeKey {
    /// Over `schema`, the operator's input on this side.
    pub exprs: Vec<Expr>,
    pub schema: DFSchemaRef,
}

/// How a statement runs in parallel.
#[derive(Debug, Clone)]
pub enum Shape {
    /// No stateful operator: one stage of tasks splitting the sources'
    /// partitions.
    Stateless,
    /// A source stage and, behind a repartition topic, a keyed stage.
    Keyed {
        /// The operator, as `EXPLAIN` names it.
        operator: &'static str,
        left: ExchangeKey,
        /// A join's right input.
        right: Option<ExchangeKey>,
    },
    /// One task, for the reason given.
    Single(String),
}

impl Shape {
    /// The shape of `plan`.
    pub fn of(plan: &StreamingPlan) -> Shape {
        match plan.sink {
            SinkSpec::Results => {}
            SinkSpec::Tables(_) => return Shape::Single(
                "a statement set runs as one task, reading each source once for all its INSERTs"
                    .into(),
            ),
            SinkSpec::Table { .. } => {}
        }
        let root = match &plan.root {
            PlanNode::Limit { .. } => {
                return Shape::Single("a LIMIT needs every row in one task".into())
            }
            r => r,
        };
        let mut stateful = vec![];
        let mut sources = 0;
        collect(root, &mut stateful, &mut sources);
        if sources == 0 {
            return Shape::Single("it reads no Kafka topic".into());
        }
        if matches!(plan.sink, SinkSpec::Results) && !stateful.is_empty() {
            return Shape::Single(
                "a SELECT's changes are gathered in one task; INSERT INTO a table to run its stateful operators in parallel"
                    .into(),
            );
        }
        match stateful.as_slice() {
            [] => Shape::Stateless,
            [one] => keyed(one),
            chain => stacked(chain),
        }
    }
}

/// Stateful operators stacked on each other, top first: one keyed stage
/// that runs them all, behind a repartition topic hashed by the columns
/// of the bottom operator's key that every operator above keys by too
/// (passed up unchanged), so that each operator finds all the rows of
/// each of its keys in one partition. `GROUP BY a, b` under `GROUP BY a`
/// is split by `a`; a `GROUP BY` over a join, or a Top-N per window over
/// a window aggregate, has no such columns and is one task.
fn stacked(chain: &[&PlanNode]) -> Shape {
    let names = chain
        .iter()
        .map(|n| n.name())
        .collect::<Vec<_>>()
        .join(" over ");
    let single = |why: &str| {
        Shape::Single(format!(
            "its stateful operators are stacked ({names}) {why}; only operators stacked on a common key are split into tasks yet"
        ))
    };
    let bottom = chain[chain.len() - 1];
    let Some((keys, schema)) = own_key(bottom).filter(|(k, _)| !k.is_empty()) else {
        return single("and the bottom one has no key");
    };
    let mut common: Vec<usize> = keys.iter().filter_map(|e| column_of(e, &schema)).collect();
    for upper in &chain[..chain.len() - 1] {
        let Some((keys, schema)) = own_key(upper).filter(|(k, _)| !k.is_empty()) else {
            return single("and one of them has no key");
        };
        let Some(input) = upper.inputs().first().copied() else {
            return single("and one of them has no input");
        };
        let reached: Vec<usize> = keys
            .iter()
            .filter_map(|e| lineage(input, column_of(e, &schema)?, bottom))
            .collect();
        common.retain(|c| reached.contains(c));
    }
    if common.is_empty() {
        return single("on keys that share no column");
    }
    Shape::Keyed {
        operator: bottom.name(),
        left: ExchangeKey {
            exprs: common
                .iter()
                .map(|&i| Expr::Column(Column::from(schema.qualified_field(i))))
                .collect(),
            schema,
        },
        right: None,
    }
}

/// A single-input stateful operator's key over its input's schema (empty
/// when it has none: a global aggregate, a retract table's normalisation).
fn own_key(node: &PlanNode) -> Option<(Vec<Expr>, DFSchemaRef)> {
    let (keys, schema) = match node {
        PlanNode::GroupAggregate {
            keys, input_schema, ..
        }
        | PlanNode::WindowAggregate {
            keys, input_schema, ..
        } => (keys.clone(), input_schema),
        PlanNode::TopN {
            partition_by,
            input_schema,
            ..
        }
        | PlanNode::OverAggregate {
            partition_by,
            input_schema,
            ..
        } => (partition_by.clone(), input_schema),
        PlanNode::MatchRecognize {
            spec, input_schema, ..
        } => (spec.partition_by.clone(), input_schema),
        PlanNode::Sort { input_schema, .. } => (vec![], input_schema),
        PlanNode::ChangelogNormalize {
            keys,
            retract,
            schema,
            ..
        } => (
            keys.iter()
                .filter(|_| !retract)
                .map(|&i| Expr::Column(Column::from(schema.qualified_field(i))))
                .collect(),
            schema,
        ),
        _ => return None,
    };
    Some((keys, schema.clone()))
}

/// The index of `e` in `schema`, when `e` is a plain column.
fn column_of(e: &Expr, schema: &DFSchemaRef) -> Option<usize> {
    let mut e = e;
    while let Expr::Alias(a) = e {
        e = &a.expr;
    }
    match e {
        Expr::Column(c) => schema.index_of_column(c).ok(),
        _ => None,
    }
}

/// Output column `idx` of `node` as a column of the input of `bottom`, a
/// stateful operator below it: followed down through filters, projections
/// that pass it on, the input columns a Top-N, an `OVER` or a
/// normalisation passes on and the grouping keys an aggregation outputs;
/// `None` when it is computed on the way.
fn lineage(node: &PlanNode, idx: usize, bottom: &PlanNode) -> Option<usize> {
    let ColumnOrigin::Node(node, idx) = node.column_origin(idx)? else {
        return None;
    };
    let (input, schema, below) = match node {
        PlanNode::GroupAggregate {
            input,
            keys,
            input_schema,
            ..
        } => (
            input,
            input_schema,
            column_of(keys.get(idx)?, input_schema)?,
        ),
        PlanNode::WindowAggregate {
            input,
            keys,
            layout,
            input_schema,
            ..
        } => match layout.get(idx)? {
            GroupColumn::Key(k) => (input, input_schema, column_of(keys.get(*k)?, input_schema)?),
            _ => return None,
        },
        // The input's columns come first, then a row number or the
        // aggregates.
        PlanNode::TopN {
            input,
            input_schema,
            ..
        }
        | PlanNode::OverAggregate {
            input,
            input_schema,
            ..
        }
        | PlanNode::Sort {
            input,
            input_schema,
            ..
        } => (input, input_schema, idx),
        PlanNode::ChangelogNormalize {
            input,
            schema,
            retract: false,
            ..
        } => (input, schema, idx),
        _ => return None,
    };
    if below >= schema.fields().len() {
        return None;
    }
    match std::ptr::eq(node, bottom) {
        true => Some(below),
        false => lineage(input, below, bottom),
    }
}

/// The stateful nodes of a plan, top first, and the number of sources.
fn collect<'a>(node: &'a PlanNode, out: &mut Vec<&'a PlanNode>, sources: &mut usize) {
    if node.is_stateful() {
        out.push(node);
    }
    if matches!(node, PlanNode::Source(_)) {
        *sources += 1;
    }
    for i in node.inputs() {
        collect(i, out, sources);
    }
}

fn keyed(node: &PlanNode) -> Shape {
    let single = |why: &str| Shape::Single(format!("its {} {why}", node.name()));
    let key = |exprs: &[Expr], schema: &DFSchemaRef| ExchangeKey {
        exprs: exprs.to_vec(),
        schema: schema.clone(),
    };
    match node {
        PlanNode::Join {
            on,
            left_schema,
            right_schema,
            ..
        }
        | PlanNode::TemporalJoin {
            on,
            left_schema,
            right_schema,
            ..
        } => {
            if on.is_empty() {
                return single("has no equality condition, so every row meets in one task");
            }
            let (l, r): (Vec<Expr>, Vec<Expr>) = on.iter().cloned().unzip();
            Shape::Keyed {
                operator: node.name(),
                left: key(&l, left_schema),
                right: Some(key(&r, right_schema)),
            }
        }
        _ => match own_key(node) {
            Some((keys, schema)) if !keys.is_empty() => Shape::Keyed {
                operator: node.name(),
                left: key(&keys, &schema),
                right: None,
            },
            Some(_) => single(match node {
                PlanNode::GroupAggregate { .. } | PlanNode::WindowAggregate { .. } => {
                    "has no grouping key, so every row meets in one task"
                }
                PlanNode::ChangelogNormalize { .. } => "has no primary key to split by",
                PlanNode::Sort { .. } => "orders every row, so every row meets in one task",
                _ => "has no PARTITION BY, so every row meets in one task",
            }),
            None => single("is not keyed"),
        },
    }
}

/// What `'sql.parallelism'` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParallelismSetting {
    /// Not set: the autoscaler sizes a stateless statement; a keyed one
    /// runs as one task (exactly-once where the broker has transactions).
    Unset,
    /// `'auto'`: the autoscaler sizes every stage, a keyed statement in
    /// two stages from the start.
    Auto,
    /// A number: tasks per stage, pinned.
    Fixed(u32),
}

/// `'sql.parallelism'`: a number of tasks per stage, `auto`, or unset.
pub fn parallelism_setting(
    properties: &BTreeMap<String, String>,
) -> Result<ParallelismSetting, SqlError> {
    let key = crate::properties::PARALLELISM;
    if properties
        .get(key)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("auto"))
    {
        return Ok(ParallelismSetting::Auto);
    }
    Ok(
        match bounded_count(properties, key, MAX_PARALLELISM).map_err(|_| {
            SqlError::validation(
                format!(
                    "property '{key}' = '{}' is not 'auto' or a whole number from 1 to {MAX_PARALLELISM}",
                    properties.get(key).map(String::as_str).unwrap_or_default()
                ),
                None,
            )
        })? {
            Some(n) => ParallelismSetting::Fixed(n),
            None => ParallelismSetting::Unset,
        },
    )
}

/// `'sql.parallelism'` as the tasks per stage a statement starts with when
/// it runs in stages: the number, 1 for `'auto'`; `None` when unset.
pub fn parallelism(properties: &BTreeMap<String, String>) -> Result<Option<u32>, SqlError> {
    Ok(match parallelism_setting(properties)? {
        ParallelismSetting::Unset => None,
        ParallelismSetting::Auto => Some(1),
        ParallelismSetting::Fixed(n) => Some(n),
    })
}

/// `'sql.max-parallelism'`: the partitions of the statement's repartition
/// topic, if set.
pub fn max_parallelism(properties: &BTreeMap<String, String>) -> Result<Option<u32>, SqlError> {
    bounded_count(
        properties,
        crate::properties::MAX_PARALLELISM,
        MAX_REPARTITION_PARTITIONS,
    )
}

fn bounded_count(
    properties: &BTreeMap<String, String>,
    key: &str,
    max: u32,
) -> Result<Option<u32>, SqlError> {
    let Some(v) = properties.get(key) else {
        return Ok(None);
    };
    match v.trim().parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(Some(n)),
        _ => Err(SqlError::validation(
            format!("property '{key}' = '{v}' is not a whole number from 1 to {max}"),
            None,
        )),
    }
}

/// The `EXPLAIN` lines saying how the statement runs: its stages, the
/// repartition key and partitions, and each stage's parallelism.
pub fn explain_stages(plan: &StreamingPlan, ctx: &crate::CatalogContext) -> String {
    let p = ctx.parallelism;
    let partitions = ctx.max_parallelism.map_or_else(
        || format!("max({DEFAULT_REPARTITION_PARTITIONS}, the largest source's partitions)"),
        |n| n.to_string(),
    );
    let keys = |k: &ExchangeKey| {
        k.exprs
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (Shape::of(plan), p) {
        (Shape::Stateless, p) => format!(
            "Stages: 1\n  Stage 1 (source, sink): parallelism={}, each task reads its share of the source partitions\n",
            p.unwrap_or(1)
        ),
        (Shape::Keyed { left, right, .. }, Some(p)) => {
            // Bottom first: the keyed operator, then any stacked on it.
            let mut stateful = vec![];
            collect(&plan.root, &mut stateful, &mut 0);
            let operator = stateful
                .iter()
                .rev()
                .map(|n| n.name())
                .collect::<Vec<_>>()
                .join(" → ");
            let key = match &right {
                Some(r) => format!("left [{}], right [{}]", keys(&left), keys(r)),
                None => format!("[{}]", keys(&left)),
            };
            format!(
                "Stages: 2\n  Stage 1 (source): parallelism={p}, each task reads its share of the source partitions\n  \
                 Exchange: repartition topic hashed by {key} into {partitions} partitions\n  \
                 Stage 2 ({operator}, sink): parallelism={p}, state kept per repartition partition\n"
            )
        }
        (Shape::Keyed { .. }, None) => "Stages: 1 (parallelism=1; set 'sql.parallelism' to split it into a source stage and a keyed stage behind a repartition topic)\n".into(),
        (Shape::Single(why), _) => format!("Stages: 1 (parallelism=1: {why})\n"),
    }
}
