//! Compiling a streaming plan into branches of stateless operators.
//!
//! Filters and projections act on each row alone, so they commute with
//! `UNION ALL`: the plan is flattened into one [`Branch`] per leaf (a Kafka
//! source or constant rows), each carrying every operator on its path to the
//! root. Branches run independently and meet at the sink.

use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch, RecordBatchOptions};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::execution::context::ExecutionProps;
use datafusion::physical_expr::{create_physical_expr, PhysicalExpr};
use weir_sql_gateway::{PlanNode, SourceSpec, StreamingPlan};

use crate::window::WindowAggregate;
use crate::EngineError;

/// One stateless step.
pub enum Operator {
    Filter(Arc<dyn PhysicalExpr>),
    Project {
        exprs: Vec<Arc<dyn PhysicalExpr>>,
        schema: SchemaRef,
    },
}

impl std::fmt::Debug for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Operator::Filter(e) => write!(f, "Filter({e})"),
            Operator::Project { exprs, .. } => write!(f, "Project({} exprs)", exprs.len()),
        }
    }
}

impl Operator {
    /// Applies the operator to a batch; `None` when no row is left.
    pub fn apply(&self, batch: RecordBatch) -> Result<Option<RecordBatch>, EngineError> {
        match self {
            Operator::Filter(pred) => {
                let mask = pred.evaluate(&batch)?.into_array(batch.num_rows())?;
                let mask = mask
                    .as_boolean_opt()
                    .ok_or_else(|| EngineError::Plan("a filter predicate is not boolean".into()))?;
                let out = filter_record_batch(&batch, mask)?;
                Ok((out.num_rows() > 0).then_some(out))
            }
            Operator::Project { exprs, schema } => {
                let n = batch.num_rows();
                let cols = exprs
                    .iter()
                    .map(|e| e.evaluate(&batch).and_then(|v| v.into_array(n)))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Some(RecordBatch::try_new_with_options(
                    schema.clone(),
                    cols,
                    &RecordBatchOptions::new().with_row_count(Some(n)),
                )?))
            }
        }
    }
}

#[derive(Debug)]
pub enum BranchSource {
    Kafka(Box<SourceSpec>),
    Values(RecordBatch),
}

/// A source and the operators from it to the root.
#[derive(Debug)]
pub struct Branch {
    pub source: BranchSource,
    pub operators: Vec<Operator>,
}

impl Branch {
    /// Runs a batch through every operator.
    pub fn process(&self, mut batch: RecordBatch) -> Result<Option<RecordBatch>, EngineError> {
        for op in &self.operators {
            match op.apply(batch)? {
                Some(b) => batch = b,
                None => return Ok(None),
            }
        }
        Ok(Some(batch))
    }
}

/// A stateful operator at the top of the plan and the stateless steps
/// above it. The branches feed it; watermarks close its windows.
#[derive(Debug)]
pub struct StatefulTop {
    pub op: WindowAggregate,
    /// Operators from the stateful one to the root, bottom first.
    pub tail: Vec<Operator>,
}

impl StatefulTop {
    /// Runs emitted batches through the tail.
    pub fn finish(&self, batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>, EngineError> {
        let mut out = vec![];
        'batches: for mut b in batches {
            for op in &self.tail {
                match op.apply(b)? {
                    Some(next) => b = next,
                    None => continue 'batches,
                }
            }
            out.push(b);
        }
        Ok(out)
    }
}

#[derive(Debug)]
pub struct CompiledPlan {
    pub branches: Vec<Branch>,
    /// Rows to stop after (a top-level `LIMIT`).
    pub limit: Option<usize>,
    pub output_schema: SchemaRef,
    /// The window aggregation the branches feed, if the plan has one.
    pub stateful: Option<StatefulTop>,
}

/// Compiles a plan's expressions to physical ones and flattens it.
pub fn compile(plan: &StreamingPlan) -> Result<CompiledPlan, EngineError> {
    let props = ExecutionProps::new();
    let (root, limit) = match &plan.root {
        PlanNode::Limit { input, fetch } => (input.as_ref(), Some(*fetch)),
        other => (other, None),
    };
    // Stateless steps from the root down to a window aggregation, if any.
    let mut tail = vec![];
    let mut node = root;
    let stateful_at = loop {
        match node {
            PlanNode::Filter {
                input,
                predicate,
                input_schema,
            } => {
                tail.push(Operator::Filter(create_physical_expr(
                    predicate,
                    input_schema,
                    &props,
                    &Default::default(),
                )?));
                node = input;
            }
            PlanNode::Project {
                input,
                exprs,
                input_schema,
            } => {
                tail.push(project(exprs, input_schema, &props)?);
                node = input;
            }
            PlanNode::WindowAggregate { .. } => break Some(node),
            _ => break None,
        }
    };
    let mut branches = vec![];
    let stateful = match stateful_at {
        Some(PlanNode::WindowAggregate {
            input,
            input_schema,
            window,
            time,
            keys,
            layout,
            aggs,
            output_schema,
        }) => {
            flatten(input, &mut Vec::new(), &mut branches, &props)?;
            tail.reverse();
            Some(StatefulTop {
                op: WindowAggregate::new(
                    *window,
                    time,
                    keys,
                    layout,
                    aggs,
                    input_schema,
                    output_schema,
                )?,
                tail,
            })
        }
        _ => {
            flatten(root, &mut Vec::new(), &mut branches, &props)?;
            None
        }
    };
    Ok(CompiledPlan {
        branches,
        limit,
        output_schema: plan.output_schema.clone(),
        stateful,
    })
}

/// `above` holds the operators between this node and the root, root last.
fn flatten(
    node: &PlanNode,
    above: &mut Vec<Operator>,
    out: &mut Vec<Branch>,
    props: &ExecutionProps,
) -> Result<(), EngineError> {
    match node {
        PlanNode::Source(s) => {
            out.push(Branch {
                source: BranchSource::Kafka(Box::new(s.clone())),
                operators: above.drain(..).rev().collect(),
            });
        }
        PlanNode::Values { batch } => out.push(Branch {
            source: BranchSource::Values(batch.clone()),
            operators: above.drain(..).rev().collect(),
        }),
        PlanNode::Filter {
            input,
            predicate,
            input_schema,
        } => {
            above.push(Operator::Filter(create_physical_expr(
                predicate,
                input_schema,
                props,
                &Default::default(),
            )?));
            flatten(input, above, out, props)?;
        }
        PlanNode::Project {
            input,
            exprs,
            input_schema,
        } => {
            above.push(project(exprs, input_schema, props)?);
            flatten(input, above, out, props)?;
        }
        PlanNode::Union { inputs } => {
            // Each input gets its own copy of the operators above the union.
            let ops_above: Vec<_> = std::mem::take(above);
            for i in inputs {
                let mut copy = recompile(&ops_above);
                flatten(i, &mut copy, out, props)?;
            }
        }
        PlanNode::Limit { .. } => {
            return Err(EngineError::Plan(
                "LIMIT is only supported at the top of a query".into(),
            ))
        }
        PlanNode::WindowAggregate { .. } => {
            return Err(EngineError::Plan(
                "a window aggregation under UNION ALL or under another aggregation is not supported yet".into(),
            ))
        }
    }
    Ok(())
}

fn project(
    exprs: &[datafusion::logical_expr::Expr],
    input: &DFSchema,
    props: &ExecutionProps,
) -> Result<Operator, EngineError> {
    let mut fields = Vec::with_capacity(exprs.len());
    let mut phys = Vec::with_capacity(exprs.len());
    for e in exprs {
        let (_, field) = datafusion::logical_expr::ExprSchemable::to_field(e, input)?;
        fields.push(Field::new(field.name(), field.data_type().clone(), true));
        phys.push(create_physical_expr(e, input, props, &Default::default())?);
    }
    Ok(Operator::Project {
        exprs: phys,
        schema: Arc::new(Schema::new(fields)),
    })
}

/// Physical expressions are immutable and shared: a copy is a list of the
/// same `Arc`s.
fn recompile(ops: &[Operator]) -> Vec<Operator> {
    ops.iter()
        .map(|o| match o {
            Operator::Filter(e) => Operator::Filter(e.clone()),
            Operator::Project { exprs, schema } => Operator::Project {
                exprs: exprs.clone(),
                schema: schema.clone(),
            },
        })
        .collect()
}
