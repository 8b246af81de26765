//! OVER aggregation: `agg(x) OVER (PARTITION BY k ORDER BY ts frame)`, as
//! Flink's row-time over aggregate functions run it.
//!
//! Rows wait until the watermark passes their time, then are processed in
//! time order (arrival order among equal times), each emitted once with
//! its frame's aggregates (append-only):
//!
//! - `ROWS BETWEEN n PRECEDING AND CURRENT ROW`: the row and the `n`
//!   before it in its partition;
//! - `RANGE BETWEEN INTERVAL ... PRECEDING AND CURRENT ROW`: the rows of
//!   the partition whose time is at most that far before the row's, and
//!   its peers (rows with the same time), which share one result;
//! - `UNBOUNDED PRECEDING`: every row of the partition so far, kept as
//!   running accumulators rather than rows.
//!
//! A bounded frame keeps the rows it may still need per partition and
//! folds fresh accumulators over them for each result. A row whose time is
//! not after the watermark when it arrives is late: dropped and counted.
//! A sort ([`OverAggregate::sort`]) drops a row as Flink's row-time sort
//! does: when its time is not after the last time rows were emitted at (a
//! row behind the watermark but after every row emitted still comes out,
//! at the next watermark).

use crate::hash::HashMap;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::filter;
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::row::RowConverter;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::{Accumulator, Expr};
use datafusion::physical_expr::{create_physical_expr, PhysicalExpr};
use weir_sql_gateway::OverFrame;

use crate::operators::group::{
    conform, emitted_schema, lower_aggregates, row_converter, sort_fields, Aggregate, GroupKeys,
};
use crate::runtime::checkpoint::{StageState, TaggedRows};
use crate::EngineError;

#[derive(Default)]
struct Partition {
    /// Rows a bounded frame may still need, oldest first.
    history: VecDeque<(i64, Box<[u8]>)>,
    /// An unbounded frame's accumulators.
    running: Option<Vec<Box<dyn Accumulator>>>,
}

pub struct OverAggregate {
    partition: GroupKeys,
    time: Arc<dyn PhysicalExpr>,
    frame: OverFrame,
    aggs: Vec<Aggregate>,
    rows: RowConverter,
    input: SchemaRef,
    output: SchemaRef,
    /// Rows waiting for the watermark, by time: partition key and row.
    pending: BTreeMap<i64, Vec<(Bytes, Bytes)>>,
    partitions: HashMap<Box<[u8]>, Partition>,
    watermark: i64,
    /// The latest time rows were emitted at (a sort's rows are late when
    /// not after it).
    emitted: i64,
    pub late: u64,
    /// A streaming `ORDER BY time, k...` (no aggregates, no partitions):
    /// the rows of one time come out ordered by their key (`partition`,
    /// built from the `k...` with their directions), equal keys in
    /// arrival order.
    sort: bool,
}

impl std::fmt::Debug for OverAggregate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "OverAggregate({}, {} partitions)",
            self.frame,
            self.partitions.len()
        )
    }
}

/// Snapshot tags: a row waiting for the watermark, a row kept for
/// frames, a partition's running accumulator states.
const PENDING: i8 = 0;
const FRAME: i8 = 1;
const RUNNING: i8 = 2;

/// A row in Arrow's row format, and a partition key.
type Bytes = Box<[u8]>;

/// One result: the row and its aggregate values.
type Emitted = (Box<[u8]>, Vec<ScalarValue>);

impl OverAggregate {
    pub fn new(
        partition_by: &[Expr],
        time: &Expr,
        frame: OverFrame,
        aggs: &[Expr],
        input: &DFSchema,
        output: &DFSchema,
    ) -> Result<OverAggregate, EngineError> {
        let rows = row_converter(
            sort_fields(input.fields().iter().map(|f| f.data_type())),
            "an OVER aggregation's input",
        )?;
        Ok(OverAggregate {
            partition: GroupKeys::new(partition_by, input)?,
            time: create_physical_expr(time, input, &ExecutionProps::new(), &Default::default())?,
            frame,
            aggs: lower_aggregates(aggs, input)?,
            rows,
            input: emitted_schema(input),
            output: emitted_schema(output),
            pending: BTreeMap::new(),
            partitions: HashMap::default(),
            watermark: i64::MIN,
            emitted: i64::MIN,
            late: 0,
            sort: false,
        })
    }

    /// `ORDER BY time ASC, peers...` over a stream, as Flink's row-time
    /// sort runs it: each row once the watermark passes its time, in time
    /// order, rows of one time ordered by `peers`; a late row is dropped.
    pub fn sort(
        time: &Expr,
        peers: &[datafusion::logical_expr::SortExpr],
        input: &DFSchema,
    ) -> Result<OverAggregate, EngineError> {
        let mut op = OverAggregate::new(&[], time, OverFrame::Rows(Some(0)), &[], input, input)?;
        let keys: Vec<_> = peers
            .iter()
            .map(|p| {
                let options = arrow::compute::SortOptions {
                    descending: !p.asc,
                    nulls_first: p.nulls_first,
                };
                (&p.expr, Some(options))
            })
            .collect();
        op.partition = GroupKeys::ordered(&keys, input)?;
        op.sort = true;
        Ok(op)
    }

    /// Whether it is a streaming `ORDER BY` ([`OverAggregate::sort`]).
    pub fn is_sort(&self) -> bool {
        self.sort
    }

    /// Holds a batch's rows until the watermark passes their time.
    pub fn process(&mut self, batch: &RecordBatch) -> Result<(), EngineError> {
        let late_until = match self.sort {
            true => self.emitted,
            false => self.watermark,
        };
        self.late += hold_until_watermark(
            batch,
            &self.time,
            &self.partition,
            &self.rows,
            late_until,
            &mut self.pending,
        )?;
        Ok(())
    }

    /// Emits every held row whose time the watermark `wm` passed.
    pub fn advance(&mut self, wm: i64) -> Result<Option<RecordBatch>, EngineError> {
        if wm <= self.watermark {
            return Ok(None);
        }
        self.watermark = wm;
        let rest = self.pending.split_off(&wm.saturating_add(1));
        let due = std::mem::replace(&mut self.pending, rest);
        if let Some(last) = due.keys().next_back() {
            self.emitted = self.emitted.max(*last);
        }
        let mut out: Vec<Emitted> = vec![];
        for (t, mut entries) in due {
            if self.sort {
                // A stable sort: equal keys keep their arrival order.
                entries.sort_by(|(a, _), (b, _)| a.cmp(b));
                out.extend(entries.into_iter().map(|(_, r)| (r, vec![])));
                continue;
            }
            // The partitions at this time, in arrival order, with their rows.
            let mut order: Vec<(Bytes, Vec<Bytes>)> = vec![];
            for (key, row) in entries {
                match order.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, rows)) => rows.push(row),
                    None => order.push((key, vec![row])),
                }
            }
            for (key, peers) in order {
                self.emit(t, key, peers, &mut out)?;
            }
        }
        if out.is_empty() {
            return Ok(None);
        }
        let parser = self.rows.parser();
        let mut cols = self
            .rows
            .convert_rows(out.iter().map(|(r, _)| parser.parse(r)))?;
        for j in 0..self.aggs.len() {
            cols.push(ScalarValue::iter_to_array(
                out.iter().map(|(_, v)| v[j].clone()),
            )?);
        }
        Ok(Some(conform(&self.output, cols, out.len())?))
    }

    /// The results of one partition's rows at time `t`.
    fn emit(
        &mut self,
        t: i64,
        key: Box<[u8]>,
        peers: Vec<Box<[u8]>>,
        out: &mut Vec<Emitted>,
    ) -> Result<(), EngineError> {
        let mut part = self.partitions.remove(&key).unwrap_or_default();
        match self.frame {
            OverFrame::Rows(None) | OverFrame::Range(None) => {
                let mut accs = match part.running.take() {
                    Some(a) => a,
                    None => self.accumulators()?,
                };
                if self.frame == OverFrame::Range(None) {
                    self.fold(&mut accs, peers.iter().map(|r| &**r))?;
                    let v = evaluate(&mut accs)?;
                    out.extend(peers.into_iter().map(|r| (r, v.clone())));
                } else {
                    for r in peers {
                        self.fold(&mut accs, [&*r])?;
                        out.push((r, evaluate(&mut accs)?));
                    }
                }
                part.running = Some(accs);
            }
            OverFrame::Rows(Some(n)) => {
                for r in peers {
                    part.history.push_back((t, r.clone()));
                    while part.history.len() as u64 > n + 1 {
                        part.history.pop_front();
                    }
                    let mut accs = self.accumulators()?;
                    self.fold(&mut accs, part.history.iter().map(|(_, r)| &**r))?;
                    out.push((r, evaluate(&mut accs)?));
                }
            }
            OverFrame::Range(Some(ms)) => {
                part.history.extend(peers.iter().map(|r| (t, r.clone())));
                while part.history.front().is_some_and(|(ht, _)| *ht < t - ms) {
                    part.history.pop_front();
                }
                let mut accs = self.accumulators()?;
                self.fold(&mut accs, part.history.iter().map(|(_, r)| &**r))?;
                let v = evaluate(&mut accs)?;
                out.extend(peers.into_iter().map(|r| (r, v.clone())));
            }
        }
        self.partitions.insert(key, part);
        Ok(())
    }

    fn accumulators(&self) -> Result<Vec<Box<dyn Accumulator>>, EngineError> {
        self.aggs
            .iter()
            .map(|a| Ok(a.expr.create_accumulator()?))
            .collect()
    }

    /// Feeds `rows` to the accumulators.
    fn fold<'r>(
        &self,
        accs: &mut [Box<dyn Accumulator>],
        rows: impl IntoIterator<Item = &'r [u8]>,
    ) -> Result<(), EngineError> {
        let parser = self.rows.parser();
        let cols = self
            .rows
            .convert_rows(rows.into_iter().map(|r| parser.parse(r)))?;
        if cols.first().is_none_or(|c| c.is_empty()) {
            return Ok(());
        }
        let batch = RecordBatch::try_new(self.input.clone(), cols)?;
        let n = batch.num_rows();
        for (a, acc) in self.aggs.iter().zip(accs.iter_mut()) {
            let mut args = a
                .args
                .iter()
                .map(|e| e.evaluate(&batch).and_then(|v| v.into_array(n)))
                .collect::<Result<Vec<ArrayRef>, _>>()?;
            if let Some(f) = &a.filter {
                let mask = f.evaluate(&batch)?.into_array(n)?;
                let mask = mask.as_boolean();
                args = args
                    .iter()
                    .map(|c| filter(c, mask))
                    .collect::<Result<_, _>>()?;
            }
            acc.update_batch(&args)?;
        }
        Ok(())
    }

    /// Rows held: waiting, and kept for frames.
    pub fn state_size(&self) -> usize {
        self.pending.values().map(Vec::len).sum::<usize>()
            + self
                .partitions
                .values()
                .map(|p| p.history.len())
                .sum::<usize>()
    }

    pub fn state_bytes(&self) -> usize {
        let pending: usize = self
            .pending
            .values()
            .flatten()
            .map(|(k, r)| k.len() + r.len() + 2 * std::mem::size_of::<Box<[u8]>>())
            .sum();
        let parts: usize = self
            .partitions
            .iter()
            .map(|(k, p)| {
                k.len()
                    + p.history.iter().map(|(_, r)| r.len() + 24).sum::<usize>()
                    + p.running
                        .as_ref()
                        .map_or(0, |a| a.iter().map(|a| a.size()).sum())
            })
            .sum();
        pending + parts
    }

    /// Waiting rows, frame rows and running accumulators' states, tagged,
    /// in one batch.
    pub fn snapshot(&mut self) -> Result<StageState, EngineError> {
        // A running partition's accumulator states: one row of Arrow IPC
        // (a stage's batches share one schema).
        let mut running: Vec<(Box<[u8]>, Vec<u8>)> = vec![];
        for (k, p) in &mut self.partitions {
            if let Some(accs) = &mut p.running {
                let mut fields = vec![];
                let mut cols: Vec<ArrayRef> = vec![];
                for a in accs.iter_mut() {
                    for v in a.state()? {
                        let col = v.to_array()?;
                        fields.push(Field::new(
                            format!("s{}", cols.len()),
                            col.data_type().clone(),
                            true,
                        ));
                        cols.push(col);
                    }
                }
                let one = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?;
                running.push((
                    k.clone(),
                    crate::runtime::checkpoint::encode_batches(&[one])?,
                ));
            }
        }
        let mut held = TaggedRows::default();
        for (t, entries) in &self.pending {
            for (k, r) in entries {
                held.push(PENDING, *t, Some(k), Some(r));
            }
        }
        for (k, p) in &self.partitions {
            for (t, r) in &p.history {
                held.push(FRAME, *t, Some(k), Some(r));
            }
        }
        for (k, bytes) in &running {
            held.push(RUNNING, 0, Some(k), Some(bytes));
        }
        let batches = vec![held.into_batch()?];
        Ok(StageState {
            batches,
            meta: serde_json::json!({
                "watermark": self.watermark,
                "emitted": self.emitted,
                "late": self.late
            }),
        })
    }

    pub fn restore(&mut self, state: &StageState) -> Result<(), EngineError> {
        self.pending.clear();
        self.partitions.clear();
        self.watermark = state.meta["watermark"].as_i64().unwrap_or(i64::MIN);
        // A checkpoint from before `emitted` was kept: the watermark bounds it.
        self.emitted = state.meta["emitted"].as_i64().unwrap_or(self.watermark);
        self.late = state.meta["late"].as_u64().unwrap_or(0);
        for b in &state.batches {
            for (tag, t, k, r) in TaggedRows::read(b, "an OVER aggregation")? {
                let (k, r) = (k.unwrap_or_default(), r.unwrap_or_default());
                match tag {
                    PENDING => self
                        .pending
                        .entry(t)
                        .or_default()
                        .push((k.into(), r.into())),
                    FRAME => self
                        .partitions
                        .entry(k.into())
                        .or_default()
                        .history
                        .push_back((t, r.into())),
                    _ => {
                        let states = crate::runtime::checkpoint::decode_batches(r)?;
                        let st = states.first().ok_or_else(|| {
                            EngineError::Checkpoint("an empty accumulator state".into())
                        })?;
                        let mut accs = self.accumulators()?;
                        let mut c = 0;
                        for acc in accs.iter_mut() {
                            let width = acc.state()?.len();
                            acc.merge_batch(&st.columns()[c..c + width])?;
                            c += width;
                        }
                        self.partitions.entry(k.into()).or_default().running = Some(accs);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Puts each row of `batch` into `pending` under its time (`time` over
/// the batch), with its partition key and the row in Arrow's row format,
/// to wait for the watermark; returns how many rows were late (their time
/// NULL or not after `late_until`), which are dropped. Shared by the
/// operators that take rows in time order (OVER, MATCH_RECOGNIZE).
pub(crate) fn hold_until_watermark(
    batch: &RecordBatch,
    time: &Arc<dyn PhysicalExpr>,
    partition: &GroupKeys,
    converter: &RowConverter,
    late_until: i64,
    pending: &mut BTreeMap<i64, Vec<(Bytes, Bytes)>>,
) -> Result<u64, EngineError> {
    let n = batch.num_rows();
    let times = crate::operators::times_ms(time, batch)?;
    let keys = partition.rows(batch)?;
    let rows = converter.convert_columns(batch.columns())?;
    let mut late = 0;
    for i in 0..n {
        if times.is_null(i) || times.value(i) <= late_until {
            late += 1;
            continue;
        }
        let key: Bytes = keys
            .as_ref()
            .map_or(Box::default(), |k| k.row(i).data().into());
        pending
            .entry(times.value(i))
            .or_default()
            .push((key, rows.row(i).data().into()));
    }
    Ok(late)
}

fn evaluate(accs: &mut [Box<dyn Accumulator>]) -> Result<Vec<ScalarValue>, EngineError> {
    accs.iter_mut().map(|a| Ok(a.evaluate()?)).collect()
}
