//! Compiling a streaming plan into branches of stateless operators and a
//! tree of stateful stages above them.
//!
//! Filters and projections act on each row alone, so they commute with
//! `UNION ALL`: the plan below each stateful operator is flattened into one
//! [`Branch`] per leaf (a Kafka source or constant rows), each carrying
//! every operator on its path up to its [`Target`]: the input of a
//! [`Stage`], or the sink. Each stage is a stateful operator and the
//! stateless steps above it, and passes [`Changes`] (rows with their row
//! kinds) to its own target. A join is a stage with two inputs.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions, UInt32Array};
use arrow::compute::filter_record_batch;
use arrow::compute::take;
use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::common::NullHandling;
use datafusion::execution::context::ExecutionProps;
use datafusion::physical_expr::{create_physical_expr, PhysicalExpr};
use weir_sql_gateway::{
    with_current_watermark, with_processing_time, PlanNode, RankOutput, SourceSpec, StreamingPlan,
    WindowKind,
};

use crate::operators::changelog::Changes;
use crate::operators::group::GroupAggregate;
use crate::operators::join::Join;
use crate::operators::matching::MatchRecognize;
use crate::operators::normalize::ChangelogNormalize;
use crate::operators::over::OverAggregate;
use crate::operators::session::SessionAggregate;
use crate::operators::temporal::TemporalJoin;
use crate::operators::topn::TopN;
use crate::operators::window::WindowAggregate;
use crate::runtime::checkpoint::StageState;
use crate::EngineError;

/// One stateless step.
pub enum Operator {
    Filter(Arc<dyn PhysicalExpr>),
    Project {
        exprs: Vec<Arc<dyn PhysicalExpr>>,
        schema: SchemaRef,
    },
    /// Every row once per projection (each a `Project`), as Flink's
    /// `Expand` feeds grouping sets: the copies of a batch, one after the
    /// other, in one batch.
    Expand(Vec<Operator>),
    /// `UNNEST`: each row once per element of the array columns `lists`
    /// (zipped, the shorter padded with NULLs), which become their
    /// elements.
    Unnest {
        lists: Vec<usize>,
        null_handling: NullHandling,
        schema: SchemaRef,
    },
}

impl std::fmt::Debug for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Operator::Filter(e) => write!(f, "Filter({e})"),
            Operator::Project { exprs, .. } => write!(f, "Project({} exprs)", exprs.len()),
            Operator::Expand(p) => write!(f, "Expand({} projections)", p.len()),
            Operator::Unnest { lists, .. } => write!(f, "Unnest({lists:?})"),
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
            Operator::Project { .. } | Operator::Expand(_) => self.project(batch).map(Some),
            Operator::Unnest { .. } => {
                let (out, _) = self.unnest(&batch)?;
                Ok((out.num_rows() > 0).then_some(out))
            }
        }
    }

    /// The rows an `Unnest` makes of `batch`, and the input row of each.
    fn unnest(&self, batch: &RecordBatch) -> Result<(RecordBatch, UInt32Array), EngineError> {
        let Operator::Unnest {
            lists,
            null_handling,
            schema,
        } = self
        else {
            unreachable!("only called on unnests")
        };
        // Each array's (offset, length) per row; None: NULL.
        let spans: Vec<Vec<Option<(usize, usize)>>> = lists
            .iter()
            .map(|&c| list_spans(batch.column(c)))
            .collect::<Result<_, _>>()?;
        let n = batch.num_rows();
        let mut rows: Vec<u32> = Vec::with_capacity(n);
        let mut elems: Vec<Vec<Option<u32>>> = vec![Vec::with_capacity(n); lists.len()];
        for i in 0..n {
            let longest = spans
                .iter()
                .map(|s| s[i].map_or(0, |(_, len)| len))
                .max()
                .unwrap_or(0);
            let all_null = spans.iter().all(|s| s[i].is_none());
            let count = match (longest, null_handling) {
                (0, NullHandling::Drop) => 0,
                (0, NullHandling::Preserve) => usize::from(all_null),
                (0, NullHandling::PreserveAndExpandEmpty) => 1,
                (k, _) => k,
            };
            for j in 0..count {
                rows.push(i as u32);
                for (e, s) in elems.iter_mut().zip(&spans) {
                    e.push(match s[i] {
                        Some((off, len)) if j < len => Some((off + j) as u32),
                        _ => None,
                    });
                }
            }
        }
        let rows = UInt32Array::from(rows);
        let mut cols = Vec::with_capacity(batch.num_columns());
        for (c, col) in batch.columns().iter().enumerate() {
            cols.push(match lists.iter().position(|l| *l == c) {
                Some(k) => take(
                    list_values(col).as_ref(),
                    &UInt32Array::from(std::mem::take(&mut elems[k])),
                    None,
                )?,
                None => take(col.as_ref(), &rows, None)?,
            });
        }
        let out = RecordBatch::try_new_with_options(
            schema.clone(),
            cols,
            &RecordBatchOptions::new().with_row_count(Some(rows.len())),
        )?;
        Ok((out, rows))
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
            Operator::Unnest { .. } => {
                let (batch, rows) = self.unnest(&c.batch)?;
                if batch.num_rows() == 0 {
                    return Ok(None);
                }
                let ops = match &c.ops {
                    Some(o) => Some(Arc::new(
                        take(o.as_ref(), &rows, None)?.as_primitive().clone(),
                    )),
                    None => None,
                };
                Ok(Some(Changes { batch, ops }))
            }
            Operator::Expand(p) => {
                let ops = match &c.ops {
                    Some(o) => {
                        let copies = vec![o.as_ref() as &dyn arrow::array::Array; p.len()];
                        Some(Arc::new(
                            arrow::compute::concat(&copies)?.as_primitive().clone(),
                        ))
                    }
                    None => None,
                };
                Ok(Some(Changes {
                    batch: self.project(c.batch)?,
                    ops,
                }))
            }
        }
    }

    fn project(&self, batch: RecordBatch) -> Result<RecordBatch, EngineError> {
        match self {
            Operator::Filter(_) | Operator::Unnest { .. } => {
                unreachable!("only called on projections")
            }
            Operator::Expand(p) => {
                let copies = p
                    .iter()
                    .map(|o| o.project(batch.clone()))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(arrow::compute::concat_batches(
                    &copies[0].schema(),
                    &copies,
                )?)
            }
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

/// Where a branch or a stage sends its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The statement's sink.
    Root,
    /// Stage `index`'s input: `right` only for a join's right input.
    Stage { index: usize, right: bool },
}

impl Target {
    /// Input `right` (or the only input) of stage `index`.
    fn input(index: usize, right: bool) -> Target {
        Target::Stage { index, right }
    }
}

/// A source and the operators from it to its target.
#[derive(Debug)]
pub struct Branch {
    pub source: BranchSource,
    pub operators: Vec<Operator>,
    pub target: Target,
}

impl Branch {
    /// Runs a batch through every operator; `watermark` is the source's
    /// watermark before the batch (what `CURRENT_WATERMARK` returns).
    pub fn process(
        &self,
        mut batch: RecordBatch,
        watermark: Option<i64>,
    ) -> Result<Option<RecordBatch>, EngineError> {
        with_current_watermark(watermark, || {
            for op in &self.operators {
                match op.apply(batch)? {
                    Some(b) => batch = b,
                    None => return Ok(None),
                }
            }
            Ok(Some(batch))
        })
    }
}

/// A stateful operator.
#[derive(Debug)]
pub enum StatefulOp {
    Window(WindowAggregate),
    Session(Box<SessionAggregate>),
    Group(GroupAggregate),
    Join(Box<Join>),
    TopN(Box<TopN>),
    Normalize(Box<ChangelogNormalize>),
    Over(Box<OverAggregate>),
    Match(Box<MatchRecognize>),
    Temporal(Box<TemporalJoin>),
}

impl StatefulOp {
    /// The operator's name, as `EXPLAIN` prints it.
    pub fn name(&self) -> &'static str {
        match self {
            StatefulOp::Window(_) => "WindowAggregate",
            StatefulOp::Session(_) => "WindowAggregate (session)",
            StatefulOp::Group(_) => "GroupAggregate",
            StatefulOp::Join(_) => "Join",
            StatefulOp::TopN(_) => "TopN",
            StatefulOp::Normalize(_) => "ChangelogNormalize",
            StatefulOp::Over(o) if o.is_sort() => "Sort",
            StatefulOp::Over(_) => "OverAggregate",
            StatefulOp::Match(_) => "MatchRecognize",
            StatefulOp::Temporal(_) => "TemporalJoin",
        }
    }

    /// Bytes of state the operator holds (an estimate; see each operator).
    pub fn state_bytes(&self) -> usize {
        match self {
            StatefulOp::Window(op) => op.state_bytes(),
            StatefulOp::Session(op) => op.state_bytes(),
            StatefulOp::Group(op) => op.state_bytes(),
            StatefulOp::Join(op) => op.state_bytes(),
            StatefulOp::TopN(op) => op.state_bytes(),
            StatefulOp::Normalize(op) => op.state_bytes(),
            StatefulOp::Over(op) => op.state_bytes(),
            StatefulOp::Match(op) => op.state_bytes(),
            StatefulOp::Temporal(op) => op.state_bytes(),
        }
    }

    fn process(&mut self, right: bool, c: &Changes, now: i64) -> Result<Vec<Changes>, EngineError> {
        match self {
            StatefulOp::Window(w) => {
                // The planner refuses a window over an update stream.
                w.process(&c.batch)?;
                Ok(vec![])
            }
            StatefulOp::Session(s) => {
                s.process(&c.batch)?;
                Ok(vec![])
            }
            StatefulOp::Group(g) => Ok(g.process(c, now)?.into_iter().collect()),
            StatefulOp::Join(j) => j.process(right, c, now),
            StatefulOp::TopN(t) => t.process(c, now),
            StatefulOp::Normalize(n) => n.process(c),
            StatefulOp::Over(o) => {
                // The planner refuses OVER over an update stream.
                o.process(&c.batch)?;
                Ok(vec![])
            }
            StatefulOp::Match(m) => {
                // The planner refuses MATCH_RECOGNIZE over an update stream.
                m.process(&c.batch)?;
                Ok(vec![])
            }
            StatefulOp::Temporal(t) => Ok(t
                .process(right, c)?
                .into_iter()
                .map(Changes::inserts)
                .collect()),
        }
    }

    fn advance(&mut self, wm: i64) -> Result<Vec<Changes>, EngineError> {
        match self {
            StatefulOp::Window(w) => Ok(w.advance(wm)?.into_iter().map(Changes::inserts).collect()),
            StatefulOp::Session(s) => {
                Ok(s.advance(wm)?.into_iter().map(Changes::inserts).collect())
            }
            StatefulOp::Join(j) => j.advance(wm),
            StatefulOp::TopN(t) => t.advance(wm),
            StatefulOp::Over(o) => Ok(o.advance(wm)?.into_iter().map(Changes::inserts).collect()),
            StatefulOp::Match(m) => Ok(m.advance(wm)?.into_iter().map(Changes::inserts).collect()),
            StatefulOp::Temporal(t) => {
                Ok(t.advance(wm)?.into_iter().map(Changes::inserts).collect())
            }
            // Only the end of a bounded input moves a group aggregation.
            StatefulOp::Group(g) if wm == i64::MAX => Ok(g.end_of_input()?.into_iter().collect()),
            StatefulOp::Group(_) | StatefulOp::Normalize(_) => Ok(vec![]),
        }
    }

    fn on_processing_time(&mut self, now: i64) -> Result<Vec<Changes>, EngineError> {
        match self {
            StatefulOp::Window(w) => Ok(w
                .on_processing_time(now)?
                .into_iter()
                .map(Changes::inserts)
                .collect()),
            StatefulOp::Session(s) => Ok(s
                .on_processing_time(now)?
                .into_iter()
                .map(Changes::inserts)
                .collect()),
            _ => Ok(vec![]),
        }
    }

    fn fires_on_processing_time(&self) -> bool {
        match self {
            StatefulOp::Window(w) => w.fires_on_processing_time(),
            StatefulOp::Session(s) => s.fires_on_processing_time(),
            _ => false,
        }
    }
}

/// A stateful operator and the stateless steps above it, up to its target.
#[derive(Debug)]
pub struct Stage {
    pub op: StatefulOp,
    /// Bottom first.
    pub tail: Vec<Operator>,
    /// Where its output goes: a stage after it, or the root.
    pub target: Target,
}

/// The stateful stages of a plan, each after every stage that feeds it
/// (bottom first). Branches feed them; watermarks close windows.
#[derive(Debug, Default)]
pub struct Stages {
    pub stages: Vec<Stage>,
    /// Processing time (ms) of what is being processed, for state TTL.
    now_ms: i64,
    /// The statement's watermark, last passed to [`Stages::advance`].
    watermark: Option<i64>,
    /// Per stage, the branches whose rows reach it.
    feeds: Vec<Vec<usize>>,
    /// Per stage, the watermark last passed to its operator.
    advanced: Vec<Option<i64>>,
}

impl Stages {
    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// Sets the processing time (ms) the next changes arrive at.
    pub fn set_processing_time(&mut self, now_ms: i64) {
        self.now_ms = now_ms;
    }

    /// `'sql.state-ttl'`: joins forget rows, group aggregations keys and
    /// Top-Ns partitions this long after their last write (`None`: never).
    /// A snapshot query: stages take batch semantics at the end of input.
    pub fn set_snapshot(&mut self, snapshot: bool) {
        for s in &mut self.stages {
            if let StatefulOp::Group(g) = &mut s.op {
                g.one_row_for_no_input = snapshot;
            }
        }
    }

    pub fn set_state_ttl(&mut self, ttl_ms: Option<i64>) {
        for s in &mut self.stages {
            match &mut s.op {
                StatefulOp::Join(j) => j.set_state_ttl(ttl_ms),
                StatefulOp::Group(g) => g.set_state_ttl(ttl_ms),
                StatefulOp::TopN(t) => t.set_state_ttl(ttl_ms),
                _ => {}
            }
        }
    }

    /// Feeds a batch from a branch into its target; returns what reaches
    /// the root.
    pub fn process(
        &mut self,
        target: Target,
        batch: RecordBatch,
    ) -> Result<Vec<Changes>, EngineError> {
        let mut out = vec![];
        self.push(target, Changes::inserts(batch), &mut out)?;
        Ok(out)
    }

    /// Feeds changes (rows with their kinds, read from a repartition
    /// topic) into `target`; returns what reaches the root.
    pub fn process_changes(
        &mut self,
        target: Target,
        changes: Changes,
    ) -> Result<Vec<Changes>, EngineError> {
        let mut out = vec![];
        self.push(target, changes, &mut out)?;
        Ok(out)
    }

    /// Sends changes into `target` and on up to the root, depth first, so
    /// that the root sees them in the order they were produced.
    fn push(
        &mut self,
        target: Target,
        c: Changes,
        out: &mut Vec<Changes>,
    ) -> Result<(), EngineError> {
        let Target::Stage { index, right } = target else {
            out.push(c);
            return Ok(());
        };
        let now = self.now_ms;
        self.run_stage(index, |op| op.process(right, &c, now), out)
    }

    /// Runs stage `index`'s operator (`f`) and its tail with the
    /// statement's watermark as `CURRENT_WATERMARK`, and pushes what comes
    /// out on to the stage's target.
    fn run_stage(
        &mut self,
        index: usize,
        f: impl FnOnce(&mut StatefulOp) -> Result<Vec<Changes>, EngineError>,
        out: &mut Vec<Changes>,
    ) -> Result<(), EngineError> {
        let stage = &mut self.stages[index];
        let produced = with_processing_time(self.now_ms, || {
            with_current_watermark(self.watermark, || {
                f(&mut stage.op)?
                    .into_iter()
                    .filter_map(|p| run_tail(&stage.tail, p).transpose())
                    .collect::<Result<Vec<_>, _>>()
            })
        })?;
        let up = stage.target;
        for next in produced {
            self.push(up, next, out)?;
        }
        Ok(())
    }

    /// Moves the watermark to `wm`; returns what reaches the root. Stages
    /// fire bottom first, so what one fires reaches the stages above before
    /// they see the watermark.
    pub fn advance(&mut self, wm: i64) -> Result<Vec<Changes>, EngineError> {
        let mut out = vec![];
        self.watermark = Some(wm);
        self.advanced.resize(self.stages.len(), None);
        for i in 0..self.stages.len() {
            self.advanced[i] = self.advanced[i].max(Some(wm));
            self.run_stage(i, |op| op.advance(wm), &mut out)?;
        }
        Ok(out)
    }

    /// Moves each stage by the watermarks of the branches that feed it, as
    /// Flink moves each operator by its own inputs: the minimum over the
    /// feeding branches that are not idle (`branches`: each branch's
    /// watermark, `None` before its first; `idle`: which are idle). A
    /// stage waits while a feeding branch has none, or all are idle.
    /// `statement` (the minimum over every branch) is what
    /// `CURRENT_WATERMARK` returns. Returns what reaches the root.
    pub fn advance_branches(
        &mut self,
        branches: &[Option<i64>],
        idle: &[bool],
        statement: Option<i64>,
    ) -> Result<Vec<Changes>, EngineError> {
        let mut out = vec![];
        if statement > self.watermark {
            self.watermark = statement;
        }
        self.advanced.resize(self.stages.len(), None);
        for i in 0..self.stages.len() {
            let mut active = self
                .feeds
                .get(i)
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .filter(|b| !idle.get(**b).copied().unwrap_or(false))
                .peekable();
            if active.peek().is_none() {
                continue;
            }
            let Some(wm) = active.try_fold(i64::MAX, |acc, b| {
                branches.get(*b).copied().flatten().map(|w| acc.min(w))
            }) else {
                continue;
            };
            if self.advanced[i].is_some_and(|a| wm <= a) {
                continue;
            }
            self.advanced[i] = Some(wm);
            self.run_stage(i, |op| op.advance(wm), &mut out)?;
        }
        Ok(out)
    }

    /// Whether a stage fires by processing time: the worker then calls
    /// [`Stages::on_processing_time`] as time passes, input or not.
    pub fn has_processing_timers(&self) -> bool {
        self.stages.iter().any(|s| s.op.fires_on_processing_time())
    }

    /// Processing time is `now`: fires what waits for it (processing-time
    /// windows), bottom first; returns what reaches the root.
    pub fn on_processing_time(&mut self, now: i64) -> Result<Vec<Changes>, EngineError> {
        self.now_ms = now;
        let mut out = vec![];
        for i in 0..self.stages.len() {
            self.run_stage(i, |op| op.on_processing_time(now), &mut out)?;
        }
        Ok(out)
    }

    /// Every stage's state, bottom first.
    pub fn snapshot(&mut self) -> Result<Vec<StageState>, EngineError> {
        self.stages
            .iter_mut()
            .map(|s| match &mut s.op {
                StatefulOp::Window(w) => w.snapshot(),
                StatefulOp::Session(s) => s.snapshot(),
                StatefulOp::Group(g) => g.snapshot(),
                StatefulOp::Join(j) => j.snapshot(),
                StatefulOp::TopN(t) => t.snapshot(),
                StatefulOp::Normalize(n) => n.snapshot(),
                StatefulOp::Over(o) => o.snapshot(),
                StatefulOp::Match(m) => m.snapshot(),
                StatefulOp::Temporal(t) => t.snapshot(),
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
                StatefulOp::Session(s) => s.restore(st)?,
                StatefulOp::Group(g) => g.restore(st)?,
                StatefulOp::Join(j) => j.restore(st)?,
                StatefulOp::TopN(t) => t.restore(st)?,
                StatefulOp::Normalize(n) => n.restore(st)?,
                StatefulOp::Over(o) => o.restore(st)?,
                StatefulOp::Match(m) => m.restore(st)?,
                StatefulOp::Temporal(t) => t.restore(st)?,
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
                StatefulOp::Session(s) => s.late,
                StatefulOp::TopN(t) => t.late(),
                StatefulOp::Over(o) => o.late,
                StatefulOp::Match(m) => m.late,
                StatefulOp::Group(_)
                | StatefulOp::Join(_)
                | StatefulOp::Normalize(_)
                | StatefulOp::Temporal(_) => 0,
            })
            .sum()
    }

    /// Open windows, and groups held (per window and key, and per key; a
    /// join counts the rows it holds).
    pub fn state_size(&self) -> (usize, usize) {
        self.stages.iter().fold((0, 0), |(w, g), s| match &s.op {
            StatefulOp::Window(op) => {
                let (ow, og) = op.state_size();
                (w + ow, g + og)
            }
            StatefulOp::Session(op) => {
                let (ow, og) = op.state_size();
                (w + ow, g + og)
            }
            StatefulOp::Group(op) => (w, g + op.state_size()),
            StatefulOp::Join(op) => (w, g + op.state_size()),
            StatefulOp::TopN(op) => (w, g + op.state_size()),
            StatefulOp::Normalize(op) => (w, g + op.state_size()),
            StatefulOp::Over(op) => (w, g + op.state_size()),
            StatefulOp::Match(op) => (w, g + op.state_size()),
            StatefulOp::Temporal(op) => (w, g + op.state_size()),
        })
    }

    /// Bytes of operator state held, summed over the stages (see the
    /// operators' `state_bytes`).
    pub fn state_bytes(&self) -> usize {
        self.stages.iter().map(|s| s.op.state_bytes()).sum()
    }

    /// Each stage's operator and the bytes of state it holds, bottom first.
    pub fn state_bytes_by_stage(&self) -> Vec<(&'static str, usize)> {
        self.stages
            .iter()
            .map(|s| (s.op.name(), s.op.state_bytes()))
            .collect()
    }

    /// The statement's memory limit: an operator that would build more
    /// than this in one step (a join matching a batch against everything
    /// it holds) fails the statement instead.
    pub fn set_memory_limit(&mut self, bytes: Option<usize>) {
        for s in &mut self.stages {
            if let StatefulOp::Join(j) = &mut s.op {
                j.set_memory_limit(bytes);
            }
        }
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
    /// Per branch, the branch whose source reader feeds it (itself, or an
    /// earlier branch reading the same table the same way).
    pub readers: Vec<usize>,
    /// Rows to stop after (a top-level `LIMIT`).
    pub limit: Option<usize>,
    pub output_schema: SchemaRef,
    /// The stateful stages the branches feed (empty for a stateless plan).
    pub stages: Stages,
}

impl CompiledPlan {
    /// The name each branch's read position is stored under: its topic, and
    /// `topic#n` for the n-th further reader of the same topic (one that
    /// reads it differently, say from another startup position, at its own
    /// pace). Branches sharing a reader share its position.
    pub fn position_keys(&self) -> Vec<String> {
        let mut seen: std::collections::HashMap<&str, usize> = Default::default();
        let mut keys: Vec<String> = Vec::with_capacity(self.branches.len());
        for (i, b) in self.branches.iter().enumerate() {
            let key = match &b.source {
                _ if self.readers[i] != i => keys[self.readers[i]].clone(),
                BranchSource::Kafka(s) => {
                    let n = seen.entry(&s.table.topic).or_default();
                    *n += 1;
                    if *n == 1 {
                        s.table.topic.clone()
                    } else {
                        format!("{}#{}", s.table.topic, *n - 1)
                    }
                }
                BranchSource::Values(_) => String::new(),
            };
            keys.push(key);
        }
        keys
    }
}

/// Compiles a plan's expressions to physical ones and flattens it.
pub fn compile(plan: &StreamingPlan) -> Result<CompiledPlan, EngineError> {
    let (root, limit) = match &plan.root {
        PlanNode::Limit { input, fetch } => (input.as_ref(), Some(*fetch)),
        other => (other, None),
    };
    let mut c = Compiler {
        props: ExecutionProps::new(),
        stages: vec![],
        branches: vec![],
    };
    c.node(root, &mut vec![], Target::Root)?;
    // Stages were numbered from the root down; run them bottom first.
    let n = c.stages.len();
    let flip = |t: Target| match t {
        Target::Root => Target::Root,
        Target::Stage { index, right } => Target::Stage {
            index: n - 1 - index,
            right,
        },
    };
    let mut stages: Vec<Stage> = c.stages.into_iter().rev().collect();
    for s in &mut stages {
        s.target = flip(s.target);
    }
    for b in &mut c.branches {
        b.target = flip(b.target);
    }
    let readers = share_sources(&mut c.branches);
    let mut feeds = vec![vec![]; stages.len()];
    for (b, branch) in c.branches.iter().enumerate() {
        let mut target = branch.target;
        while let Target::Stage { index, .. } = target {
            if !feeds[index].contains(&b) {
                feeds[index].push(b);
            }
            target = stages[index].target;
        }
    }
    let advanced = vec![None; stages.len()];
    Ok(CompiledPlan {
        readers,
        branches: c.branches,
        limit,
        output_schema: plan.output_schema.clone(),
        stages: Stages {
            stages,
            now_ms: 0,
            watermark: None,
            feeds,
            advanced,
        },
    })
}

/// Which branch's reader feeds each branch: branches that read the same
/// table the same way (a self-join, a self-union, the `INSERT`s of a
/// statement set) share the first one's reader, so that each topic is read
/// once, as Flink reuses a source. The shared reader decodes every column
/// any of them reads.
fn share_sources(branches: &mut [Branch]) -> Vec<usize> {
    let mut readers: Vec<usize> = (0..branches.len()).collect();
    for i in 0..branches.len() {
        let BranchSource::Kafka(spec) = &branches[i].source else {
            continue;
        };
        let leader = (0..i).find(|&j| {
            readers[j] == j
                && matches!(&branches[j].source, BranchSource::Kafka(other) if same_reading(spec, other))
        });
        let Some(j) = leader else {
            continue;
        };
        readers[i] = j;
        let wanted = spec.read_columns.clone();
        if let BranchSource::Kafka(lead) = &mut branches[j].source {
            lead.read_columns = match (lead.read_columns.take(), wanted) {
                (Some(mut a), Some(b)) => {
                    for c in b {
                        if !a.contains(&c) {
                            a.push(c);
                        }
                    }
                    Some(a)
                }
                _ => None,
            };
        }
    }
    readers
}

/// Whether two sources read the same records into the same rows with the
/// same watermark (which columns they decode aside).
fn same_reading(a: &SourceSpec, b: &SourceSpec) -> bool {
    a.table == b.table
        && a.startup == b.startup
        && a.bounded == b.bounded
        && a.computed == b.computed
        && a.watermark == b.watermark
        && a.schema == b.schema
}

struct Compiler {
    props: ExecutionProps,
    stages: Vec<Stage>,
    branches: Vec<Branch>,
}

impl Compiler {
    /// Compiles `node`, whose output passes through `above` (the stateless
    /// operators between it and `target`, nearest last) into `target`.
    fn node(
        &mut self,
        node: &PlanNode,
        above: &mut Vec<Operator>,
        target: Target,
    ) -> Result<(), EngineError> {
        match node {
            PlanNode::Source(s) => self.branches.push(Branch {
                source: BranchSource::Kafka(Box::new(s.clone())),
                operators: above.drain(..).rev().collect(),
                target,
            }),
            PlanNode::Values { batch } => self.branches.push(Branch {
                source: BranchSource::Values(batch.clone()),
                operators: above.drain(..).rev().collect(),
                target,
            }),
            PlanNode::Filter {
                input,
                predicate,
                input_schema,
            } => {
                above.push(Operator::Filter(create_physical_expr(
                    predicate,
                    input_schema,
                    &self.props,
                    &Default::default(),
                )?));
                self.node(input, above, target)?;
            }
            PlanNode::Project {
                input,
                exprs,
                input_schema,
            } => {
                above.push(project(exprs, input_schema, &self.props)?);
                self.node(input, above, target)?;
            }
            PlanNode::Expand {
                input,
                projections,
                input_schema,
            } => {
                above.push(Operator::Expand(
                    projections
                        .iter()
                        .map(|p| project(p, input_schema, &self.props))
                        .collect::<Result<_, _>>()?,
                ));
                self.node(input, above, target)?;
            }
            PlanNode::Unnest {
                input,
                lists,
                null_handling,
                output_schema,
            } => {
                above.push(Operator::Unnest {
                    lists: lists.clone(),
                    null_handling: *null_handling,
                    schema: Arc::new(Schema::new(
                        output_schema
                            .fields()
                            .iter()
                            .map(|f| Field::new(f.name(), f.data_type().clone(), true))
                            .collect::<Vec<_>>(),
                    )),
                });
                self.node(input, above, target)?;
            }
            PlanNode::TemporalJoin {
                left,
                right,
                left_schema,
                right_schema,
                kind,
                on,
                left_time,
                right_time,
                proctime,
                output_schema,
            } => {
                let op = StatefulOp::Temporal(Box::new(TemporalJoin::new(
                    *kind,
                    on,
                    (left_schema, left_time),
                    (right_schema, right_time),
                    *proctime,
                    output_schema,
                )?));
                self.binary_stage(op, (left, right), above, target)?;
            }
            PlanNode::OverAggregate {
                input,
                input_schema,
                partition_by,
                time,
                frame,
                aggs,
                output_schema,
            } => {
                let op = StatefulOp::Over(Box::new(OverAggregate::new(
                    partition_by,
                    time,
                    *frame,
                    aggs,
                    input_schema,
                    output_schema,
                )?));
                self.unary_stage(op, input, above, target)?;
            }
            PlanNode::Sort {
                input,
                input_schema,
                time,
                peers,
            } => {
                let op =
                    StatefulOp::Over(Box::new(OverAggregate::sort(time, peers, input_schema)?));
                self.unary_stage(op, input, above, target)?;
            }
            PlanNode::MatchRecognize {
                input,
                input_schema,
                spec,
                output_schema,
            } => {
                let op = StatefulOp::Match(Box::new(MatchRecognize::new(
                    spec,
                    input_schema,
                    output_schema,
                )?));
                self.unary_stage(op, input, above, target)?;
            }
            PlanNode::ChangelogNormalize {
                input,
                keys,
                retract,
                schema,
            } => {
                let op = StatefulOp::Normalize(Box::new(ChangelogNormalize::new(
                    schema.as_arrow(),
                    keys,
                    *retract,
                )?));
                self.unary_stage(op, input, above, target)?;
            }
            PlanNode::Union { inputs } => {
                // Each input gets its own copy of the operators above the
                // union; their rows meet at the target.
                let ops_above: Vec<_> = std::mem::take(above);
                for i in inputs {
                    let mut copy = recompile(&ops_above);
                    self.node(i, &mut copy, target)?;
                }
            }
            PlanNode::Limit { .. } => {
                return Err(EngineError::Plan(
                    "LIMIT is only supported at the top of a query".into(),
                ))
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
                let op = if window.kind == WindowKind::Session {
                    StatefulOp::Session(Box::new(
                        SessionAggregate::new(
                            window.size_ms,
                            time,
                            keys,
                            layout,
                            aggs,
                            input_schema,
                            output_schema,
                        )?
                        .by_processing_time(window.proctime),
                    ))
                } else {
                    StatefulOp::Window(WindowAggregate::new(
                        *window,
                        time,
                        keys,
                        layout,
                        aggs,
                        input_schema,
                        output_schema,
                    )?)
                };
                self.unary_stage(op, input, above, target)?;
            }
            PlanNode::GroupAggregate {
                input,
                input_schema,
                keys,
                aggs,
                output_schema,
            } => {
                let op = StatefulOp::Group(GroupAggregate::new(
                    keys,
                    aggs,
                    input_schema,
                    output_schema,
                    !input.is_append_only(),
                )?);
                self.unary_stage(op, input, above, target)?;
            }
            PlanNode::TopN {
                input,
                input_schema,
                partition_by,
                order_by,
                limit,
                rank,
                window_end,
                output_schema,
            } => {
                let mut top = TopN::new(
                    partition_by,
                    order_by,
                    *limit,
                    *rank,
                    input_schema,
                    output_schema,
                    !input.is_append_only(),
                )?;
                if let Some(key) = node.update_fast_key() {
                    top = top.with_update_key(key, input_schema)?;
                }
                if let Some(end) = window_end {
                    top = top.with_window_end(end, input_schema)?;
                } else if let (RankOutput::FirstOnWatermark, [time]) = (rank, order_by.as_slice()) {
                    top = top.on_event_time(&time.expr, input_schema)?;
                }
                let op = StatefulOp::TopN(Box::new(top));
                self.unary_stage(op, input, above, target)?;
            }
            PlanNode::Join {
                left,
                right,
                left_schema,
                right_schema,
                kind,
                on,
                filter,
                null_equal,
                interval,
                output_schema,
            } => {
                let mut join = Join::new(
                    *kind,
                    on,
                    filter.as_ref(),
                    *null_equal,
                    (left_schema, !left.is_append_only()),
                    (right_schema, !right.is_append_only()),
                    output_schema,
                )?;
                if let Some(bounds) = interval {
                    join = join.with_interval(bounds, left_schema, right_schema)?;
                }
                let op = StatefulOp::Join(Box::new(join));
                self.binary_stage(op, (left, right), above, target)?;
            }
        }
        Ok(())
    }

    /// Adds a stage with one input and compiles that input into it.
    fn unary_stage(
        &mut self,
        op: StatefulOp,
        input: &PlanNode,
        above: &mut Vec<Operator>,
        target: Target,
    ) -> Result<(), EngineError> {
        let index = self.stage(op, above, target);
        self.node(input, &mut vec![], Target::input(index, false))
    }

    /// Adds a stage with two inputs and compiles them into it.
    fn binary_stage(
        &mut self,
        op: StatefulOp,
        (left, right): (&PlanNode, &PlanNode),
        above: &mut Vec<Operator>,
        target: Target,
    ) -> Result<(), EngineError> {
        let index = self.stage(op, above, target);
        self.node(left, &mut vec![], Target::input(index, false))?;
        self.node(right, &mut vec![], Target::input(index, true))
    }

    /// Adds a stage with the operators `above` it; returns its index.
    fn stage(&mut self, op: StatefulOp, above: &mut Vec<Operator>, target: Target) -> usize {
        let tail = above.drain(..).rev().collect();
        self.stages.push(Stage { op, tail, target });
        self.stages.len() - 1
    }
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

/// Each row's `(offset, length)` into an array column's values, `None`
/// for NULL.
fn list_spans(col: &ArrayRef) -> Result<Vec<Option<(usize, usize)>>, EngineError> {
    fn spans<O: arrow::array::OffsetSizeTrait>(
        l: &arrow::array::GenericListArray<O>,
    ) -> Vec<Option<(usize, usize)>> {
        let o = l.value_offsets();
        (0..l.len())
            .map(|i| {
                l.is_valid(i)
                    .then(|| (o[i].as_usize(), (o[i + 1] - o[i]).as_usize()))
            })
            .collect()
    }
    if let Some(l) = col.as_list_opt::<i32>() {
        Ok(spans(l))
    } else if let Some(l) = col.as_list_opt::<i64>() {
        Ok(spans(l))
    } else {
        Err(EngineError::Plan(format!(
            "UNNEST takes an ARRAY, not a {}",
            col.data_type()
        )))
    }
}

/// The values of an array column (checked by [`list_spans`]).
fn list_values(col: &ArrayRef) -> ArrayRef {
    match col.as_list_opt::<i32>() {
        Some(l) => l.values().clone(),
        None => col.as_list::<i64>().values().clone(),
    }
}

/// Physical expressions are immutable and shared: a copy is a list of the
/// same `Arc`s.
fn recompile(ops: &[Operator]) -> Vec<Operator> {
    ops.iter().map(copy).collect()
}

fn copy(o: &Operator) -> Operator {
    match o {
        Operator::Filter(e) => Operator::Filter(e.clone()),
        Operator::Project { exprs, schema } => Operator::Project {
            exprs: exprs.clone(),
            schema: schema.clone(),
        },
        Operator::Expand(p) => Operator::Expand(recompile(p)),
        Operator::Unnest {
            lists,
            null_handling,
            schema,
        } => Operator::Unnest {
            lists: lists.clone(),
            null_handling: *null_handling,
            schema: schema.clone(),
        },
    }
}
