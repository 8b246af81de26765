//! Compiling a streaming plan into branches of stateless operators and a
//! chain of stateful stages above them.
//!
//! Filters and projections act on each row alone, so they commute with
//! `UNION ALL`: the plan below the lowest stateful operator is flattened
//! into one [`Branch`] per leaf (a Kafka source or constant rows), each
//! carrying every operator on its path up. Branches run independently and
//! meet at the first [`Stage`] (or at the sink when there is none); each
//! stage is a stateful operator and the stateless steps above it, and
//! passes [`Changes`] (rows with their row kinds) to the next.

use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch, RecordBatchOptions};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::execution::context::ExecutionProps;
use datafusion::physical_expr::{create_physical_expr, PhysicalExpr};
use weir_sql_gateway::{PlanNode, SourceSpec, StreamingPlan};

use crate::changelog::Changes;
use crate::checkpoint::StageState;
use crate::group::GroupAggregate;
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
            Operator::Project { .. } => self.project(batch).map(Some),
        }
    }

    /// Applies the operator to changes: a filter keeps or drops each row
    /// with its kind, a projection keeps the kinds.
    pub fn apply_changes(&self, c: Changes) -> Result<Option<Changes>, EngineError> {
        match self {
            Operator::Filter(pred) => {
                let mask = pred.evaluate(&c.batch)?.into_array(c.num_rows())?;
                let mask = mask
                    .as_boolean_opt()
                    .ok_or_else(|| EngineError::Plan("a filter predicate is not boolean".into()))?;
                let out = c.filter(mask)?;
                Ok((out.num_rows() > 0).then_some(out))
            }
            Operator::Project { .. } => Ok(Some(Changes {
                batch: self.project(c.batch)?,
                ops: c.ops,
            })),
        }
    }

    fn project(&self, batch: RecordBatch) -> Result<RecordBatch, EngineError> {
        match self {
            Operator::Filter(_) => unreachable!("only called on projections"),
            Operator::Project { exprs, schema } => {
                let n = batch.num_rows();
                let cols = exprs
                    .iter()
                    .map(|e| e.evaluate(&batch).and_then(|v| v.into_array(n)))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(RecordBatch::try_new_with_options(
                    schema.clone(),
                    cols,
                    &RecordBatchOptions::new().with_row_count(Some(n)),
                )?)
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

/// A stateful operator.
#[derive(Debug)]
pub enum StatefulOp {
    Window(WindowAggregate),
    Group(GroupAggregate),
}

impl StatefulOp {
    fn process(&mut self, c: &Changes) -> Result<Vec<Changes>, EngineError> {
        match self {
            StatefulOp::Window(w) => {
                // The planner refuses a window over an update stream.
                w.process(&c.batch)?;
                Ok(vec![])
            }
            StatefulOp::Group(g) => Ok(g.process(c)?.into_iter().collect()),
        }
    }

    fn advance(&mut self, wm: i64) -> Result<Vec<Changes>, EngineError> {
        match self {
            StatefulOp::Window(w) => Ok(w.advance(wm)?.into_iter().map(Changes::inserts).collect()),
            StatefulOp::Group(_) => Ok(vec![]),
        }
    }
}

/// A stateful operator and the stateless steps above it, up to the next
/// stage or the root.
#[derive(Debug)]
pub struct Stage {
    pub op: StatefulOp,
    /// Bottom first.
    pub tail: Vec<Operator>,
}

/// The stateful stages of a plan, bottom first. The branches feed the
/// first; watermarks close windows.
#[derive(Debug, Default)]
pub struct Stages {
    pub stages: Vec<Stage>,
}

impl Stages {
    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// Feeds a batch from the branches through every stage; returns what
    /// reaches the root.
    pub fn process(&mut self, batch: RecordBatch) -> Result<Vec<Changes>, EngineError> {
        self.push_from(0, vec![Changes::inserts(batch)])
    }

    fn push_from(
        &mut self,
        from: usize,
        mut cur: Vec<Changes>,
    ) -> Result<Vec<Changes>, EngineError> {
        for stage in &mut self.stages[from..] {
            let mut next = vec![];
            for c in &cur {
                for out in stage.op.process(c)? {
                    next.extend(run_tail(&stage.tail, out)?);
                }
            }
            cur = next;
        }
        Ok(cur)
    }

    /// Moves the watermark to `wm`; returns what reaches the root.
    pub fn advance(&mut self, wm: i64) -> Result<Vec<Changes>, EngineError> {
        let mut out = vec![];
        for i in 0..self.stages.len() {
            let mut fired = vec![];
            for c in self.stages[i].op.advance(wm)? {
                fired.extend(run_tail(&self.stages[i].tail, c)?);
            }
            if !fired.is_empty() {
                out.extend(self.push_from(i + 1, fired)?);
            }
        }
        Ok(out)
    }

    /// Every stage's state, bottom first.
    pub fn snapshot(&mut self) -> Result<Vec<StageState>, EngineError> {
        self.stages
            .iter_mut()
            .map(|s| match &mut s.op {
                StatefulOp::Window(w) => w.snapshot(),
                StatefulOp::Group(g) => g.snapshot(),
            })
            .collect()
    }

    /// Restores what [`Stages::snapshot`] took from the same plan.
    pub fn restore(&mut self, states: &[StageState]) -> Result<(), EngineError> {
        if states.len() != self.stages.len() {
            return Err(EngineError::Checkpoint(format!(
                "the checkpoint has {} stateful stages, the plan {}",
                states.len(),
                self.stages.len()
            )));
        }
        for (s, st) in self.stages.iter_mut().zip(states) {
            match &mut s.op {
                StatefulOp::Window(w) => w.restore(st)?,
                StatefulOp::Group(g) => g.restore(st)?,
            }
        }
        Ok(())
    }

    /// Records window operators dropped as late.
    pub fn late(&self) -> u64 {
        self.stages
            .iter()
            .map(|s| match &s.op {
                StatefulOp::Window(w) => w.late,
                StatefulOp::Group(_) => 0,
            })
            .sum()
    }

    /// Open windows, and groups held (per window and key, and per key).
    pub fn state_size(&self) -> (usize, usize) {
        self.stages.iter().fold((0, 0), |(w, g), s| match &s.op {
            StatefulOp::Window(op) => {
                let (ow, og) = op.state_size();
                (w + ow, g + og)
            }
            StatefulOp::Group(op) => (w, g + op.state_size()),
        })
    }

    /// Bytes of operator state held, summed over the stages (see the
    /// operators' `state_bytes`).
    pub fn state_bytes(&self) -> usize {
        self.stages
            .iter()
            .map(|s| match &s.op {
                StatefulOp::Window(op) => op.state_bytes(),
                StatefulOp::Group(op) => op.state_bytes(),
            })
            .sum()
    }
}

fn run_tail(tail: &[Operator], mut c: Changes) -> Result<Option<Changes>, EngineError> {
    for op in tail {
        match op.apply_changes(c)? {
            Some(next) => c = next,
            None => return Ok(None),
        }
    }
    Ok(Some(c))
}

#[derive(Debug)]
pub struct CompiledPlan {
    pub branches: Vec<Branch>,
    /// Rows to stop after (a top-level `LIMIT`).
    pub limit: Option<usize>,
    pub output_schema: SchemaRef,
    /// The stateful stages the branches feed (empty for a stateless plan).
    pub stages: Stages,
}

/// Compiles a plan's expressions to physical ones and flattens it.
pub fn compile(plan: &StreamingPlan) -> Result<CompiledPlan, EngineError> {
    let props = ExecutionProps::new();
    let (root, limit) = match &plan.root {
        PlanNode::Limit { input, fetch } => (input.as_ref(), Some(*fetch)),
        other => (other, None),
    };
    // Stateful stages from the root down, with the stateless steps above
    // each; what is left above the lowest goes into the branches.
    let mut stages = vec![];
    let mut above = vec![];
    let mut node = root;
    loop {
        match node {
            PlanNode::Filter {
                input,
                predicate,
                input_schema,
            } => {
                above.push(Operator::Filter(create_physical_expr(
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
                above.push(project(exprs, input_schema, &props)?);
                node = input;
            }
            PlanNode::WindowAggregate {
                input,
                input_schema,
                window,
                time,
                keys,
                layout,
                aggs,
                output_schema,
            } => {
                let mut tail = std::mem::take(&mut above);
                tail.reverse();
                stages.push(Stage {
                    op: StatefulOp::Window(WindowAggregate::new(
                        *window,
                        time,
                        keys,
                        layout,
                        aggs,
                        input_schema,
                        output_schema,
                    )?),
                    tail,
                });
                node = input;
            }
            PlanNode::GroupAggregate {
                input,
                input_schema,
                keys,
                aggs,
                output_schema,
            } => {
                let mut tail = std::mem::take(&mut above);
                tail.reverse();
                stages.push(Stage {
                    op: StatefulOp::Group(GroupAggregate::new(
                        keys,
                        aggs,
                        input_schema,
                        output_schema,
                        !input.is_append_only(),
                    )?),
                    tail,
                });
                node = input;
            }
            _ => break,
        }
    }
    stages.reverse();
    let mut branches = vec![];
    flatten(node, &mut above, &mut branches, &props)?;
    Ok(CompiledPlan {
        branches,
        limit,
        output_schema: plan.output_schema.clone(),
        stages: Stages { stages },
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
        PlanNode::WindowAggregate { .. } | PlanNode::GroupAggregate { .. } => {
            return Err(EngineError::Plan(
                "an aggregation under UNION ALL is not supported yet".into(),
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
