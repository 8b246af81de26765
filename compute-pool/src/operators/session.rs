//! Session window aggregation: Flink's `SESSION` window TVF and the older
//! `GROUP BY SESSION(ts, gap)`.
//!
//! Sessions are kept per grouping key, as Flink's merging window operator
//! keeps them. A row at `t` opens the window `[t, t + gap)`; it merges
//! with every session of its key it intersects (touching counts, as in
//! Flink's `TimeWindow.intersects`), so a row that arrives out of order
//! can bridge two sessions into one. Each session owns a group slot in one
//! set of DataFusion `GroupsAccumulator`s; a merge only records the slots
//! that now belong together, and they are folded into one when sessions
//! are emitted. A session is emitted once, append-only, when the watermark
//! reaches its last millisecond (`end - 1`). A row whose window closes
//! before the watermark and touches no open session is late: dropped and
//! counted. Over a processing-time attribute (`PROCTIME()`) processing
//! time plays the watermark's part: a session closes when the clock passes
//! its end, input or not.

use crate::hash::HashMap;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, BinaryArray, BooleanArray, Int64Array, RecordBatch,
    TimestampMillisecondArray, UInt32Array,
};
use arrow::compute::take;
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::{create_physical_expr, PhysicalExpr};
use weir_sql_gateway::GroupColumn;

use crate::operators::group::{conform, emitted_schema, lower_aggregates, Aggregate, GroupKeys};
use crate::operators::window::{
    groups_accumulator, restore_states, snapshot_states, watermark_values,
};
use crate::runtime::checkpoint::StageState;
use crate::EngineError;

/// One open session of one key.
#[derive(Debug, Clone)]
struct Session {
    end: i64,
    /// The accumulator slot rows of this session update.
    slot: usize,
    /// Slots of sessions merged into this one, folded in on emission.
    merged: Vec<usize>,
}

/// A session that has closed: its key, bounds and slots.
struct Closed {
    key: Box<[u8]>,
    start: i64,
    end: i64,
    slots: Vec<usize>,
}

/// The session window aggregation operator.
pub struct SessionAggregate {
    gap_ms: i64,
    time: Arc<dyn PhysicalExpr>,
    keys: GroupKeys,
    aggs: Vec<Aggregate>,
    layout: Vec<GroupColumn>,
    output: SchemaRef,
    /// Open sessions per key (Arrow row format), by start.
    sessions: HashMap<Box<[u8]>, BTreeMap<i64, Session>>,
    /// Open sessions by `(end, start, key)`: the next to close first.
    closing: BTreeSet<(i64, i64, Box<[u8]>)>,
    /// One group per slot.
    accs: Vec<Box<dyn GroupsAccumulator>>,
    slots: usize,
    watermark: Option<i64>,
    /// Rows dropped because their session had closed.
    pub late: u64,
    /// Sessions close by processing time, not by the watermark.
    proctime: bool,
}

impl std::fmt::Debug for SessionAggregate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SessionAggregate(gap={}ms, {} open)",
            self.gap_ms,
            self.closing.len()
        )
    }
}

impl SessionAggregate {
    pub fn new(
        gap_ms: i64,
        time: &datafusion::logical_expr::Expr,
        keys: &[datafusion::logical_expr::Expr],
        layout: &[GroupColumn],
        aggs: &[datafusion::logical_expr::Expr],
        input_schema: &DFSchema,
        output_schema: &DFSchema,
    ) -> Result<SessionAggregate, EngineError> {
        let aggs = lower_aggregates(aggs, input_schema)?;
        Ok(SessionAggregate {
            gap_ms,
            time: create_physical_expr(
                time,
                input_schema,
                &ExecutionProps::new(),
                &Default::default(),
            )?,
            keys: GroupKeys::new(keys, input_schema)?,
            accs: aggs
                .iter()
                .map(groups_accumulator)
                .collect::<Result<_, _>>()?,
            aggs,
            layout: layout.to_vec(),
            output: emitted_schema(output_schema),
            sessions: HashMap::default(),
            closing: BTreeSet::new(),
            slots: 0,
            watermark: None,
            late: 0,
            proctime: false,
        })
    }

    pub fn output_schema(&self) -> &SchemaRef {
        &self.output
    }

    /// Sessions open (each its own window and group), for metrics.
    pub fn state_size(&self) -> (usize, usize) {
        (self.closing.len(), self.closing.len())
    }

    /// Bytes of state held: accumulators, the session index and its keys
    /// (an estimate; allocator overhead is not counted).
    pub fn state_bytes(&self) -> usize {
        let keys: usize = self.closing.iter().map(|(_, _, k)| 2 * k.len()).sum();
        self.accs.iter().map(|a| a.size()).sum::<usize>()
            + keys
            + self.closing.len()
                * (std::mem::size_of::<(i64, i64, Box<[u8]>)>()
                    + std::mem::size_of::<(i64, Session)>())
            + self.sessions.capacity() * std::mem::size_of::<(Box<[u8]>, BTreeMap<i64, Session>)>()
    }

    /// Adds a batch's rows to their keys' sessions.
    pub fn process(&mut self, batch: &RecordBatch) -> Result<(), EngineError> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let times = watermark_values(&self.time, batch)?;
        let rows = self.keys.rows(batch)?;
        let mut kept = Vec::with_capacity(n);
        let mut slot_of = Vec::with_capacity(n);
        for (i, t) in times.iter().enumerate() {
            let Some(t) = t else {
                // A row without a time cannot be placed in a session.
                self.late += 1;
                continue;
            };
            let key: &[u8] = rows.as_ref().map_or(&[], |r| r.row(i).data());
            let mut slot = self.assign(key, t);
            // By processing time a row is placed when it arrives: one whose
            // PROCTIME() was read before the clock closed its session
            // starts one now, never late.
            if let (None, Some(wm), true) = (slot, self.watermark, self.proctime) {
                slot = self.assign(key, wm.saturating_add(1));
            }
            match slot {
                Some(slot) => {
                    kept.push(i as u32);
                    slot_of.push(slot);
                }
                None => self.late += 1,
            }
        }
        if kept.is_empty() {
            return Ok(());
        }
        let indices = (kept.len() < n).then(|| UInt32Array::from(kept));
        let pick = |a: ArrayRef| -> Result<ArrayRef, EngineError> {
            match &indices {
                Some(ix) => Ok(take(a.as_ref(), ix, None)?),
                None => Ok(a),
            }
        };
        for (a, acc) in self.aggs.iter().zip(self.accs.iter_mut()) {
            let values = a
                .args
                .iter()
                .map(|e| pick(e.evaluate(batch)?.into_array(n)?))
                .collect::<Result<Vec<_>, _>>()?;
            let filter = match &a.filter {
                Some(f) => Some(pick(f.evaluate(batch)?.into_array(n)?)?),
                None => None,
            };
            let filter: Option<&BooleanArray> = filter.as_ref().map(|f| f.as_boolean());
            acc.update_batch(&values, &slot_of, filter, self.slots)?;
        }
        Ok(())
    }

    /// The slot of the session a row of `key` at `t` falls in, merging the
    /// sessions it bridges; `None` when the row is late.
    fn assign(&mut self, key: &[u8], t: i64) -> Option<usize> {
        let (mut start, mut end) = (t, t.saturating_add(self.gap_ms));
        let sessions = match self.sessions.get_mut(key) {
            Some(s) => s,
            None => self.sessions.entry(key.into()).or_default(),
        };
        // Sessions of a key never touch, so those the new window
        // intersects are adjacent, the last starting at or before `end`.
        let touching: Vec<i64> = sessions
            .range(..=end)
            .rev()
            .take_while(|(_, s)| s.end >= start)
            .map(|(st, _)| *st)
            .collect();
        match touching.as_slice() {
            [] => {
                if self.watermark.is_some_and(|wm| end - 1 <= wm) {
                    if sessions.is_empty() {
                        self.sessions.remove(key);
                    }
                    return None;
                }
                let slot = self.slots;
                self.slots += 1;
                sessions.insert(
                    start,
                    Session {
                        end,
                        slot,
                        merged: vec![],
                    },
                );
                self.closing.insert((end, start, key.into()));
                Some(slot)
            }
            // Inside the one session it touches: nothing moves.
            [s] if *s <= start && sessions[s].end >= end => Some(sessions[s].slot),
            _ => {
                let mut kept: Option<Session> = None;
                for st in &touching {
                    let s = sessions.remove(st).expect("listed above");
                    self.closing.remove(&(s.end, *st, key.into()));
                    start = start.min(*st);
                    end = end.max(s.end);
                    match &mut kept {
                        None => kept = Some(s),
                        Some(k) => {
                            k.merged.push(s.slot);
                            k.merged.extend(s.merged);
                        }
                    }
                }
                let mut s = kept.expect("at least one session touched");
                s.end = end;
                let slot = s.slot;
                sessions.insert(start, s);
                self.closing.insert((end, start, key.into()));
                Some(slot)
            }
        }
    }

    /// Makes sessions close by processing time (over a `PROCTIME()`
    /// attribute) when `yes`.
    pub fn by_processing_time(mut self, yes: bool) -> SessionAggregate {
        self.proctime = yes;
        self
    }

    /// Moves the watermark to `wm` and emits every session it closes, in
    /// order of their end. Processing-time sessions ignore it.
    pub fn advance(&mut self, wm: i64) -> Result<Vec<RecordBatch>, EngineError> {
        if self.proctime {
            return Ok(vec![]);
        }
        self.close(wm)
    }

    /// Whether sessions close by processing time ([`Self::on_processing_time`]).
    pub fn fires_on_processing_time(&self) -> bool {
        self.proctime
    }

    /// Processing time is `now`: a processing-time session aggregation
    /// emits every session whose end it has passed.
    pub fn on_processing_time(&mut self, now: i64) -> Result<Vec<RecordBatch>, EngineError> {
        if !self.proctime {
            return Ok(vec![]);
        }
        self.close(now)
    }

    /// Emits every session whose last millisecond is at or before `wm`.
    fn close(&mut self, wm: i64) -> Result<Vec<RecordBatch>, EngineError> {
        if self.watermark.is_some_and(|old| wm <= old) {
            return Ok(vec![]);
        }
        self.watermark = Some(wm);
        let mut closed = vec![];
        while self
            .closing
            .first()
            .is_some_and(|(end, _, _)| end - 1 <= wm)
        {
            let (end, start, key) = self.closing.pop_first().expect("checked");
            let sessions = self.sessions.get_mut(&key).expect("indexed session");
            let s = sessions.remove(&start).expect("indexed session");
            if sessions.is_empty() {
                self.sessions.remove(&key);
            }
            let mut slots = vec![s.slot];
            slots.extend(s.merged);
            closed.push(Closed {
                key,
                start,
                end,
                slots,
            });
        }
        if closed.is_empty() {
            return Ok(vec![]);
        }
        let values = self.fold(&closed)?;
        Ok(vec![self.emit(&closed, values)?])
    }

    /// Takes every slot's state out, returns the aggregate values of the
    /// `closed` sessions, and renumbers the open sessions' slots from 0,
    /// each session's merged slots folded into one.
    fn fold(&mut self, closed: &[Closed]) -> Result<Vec<ArrayRef>, EngineError> {
        let (mut closed_slots, mut closed_group) = (vec![], vec![]);
        for (g, c) in closed.iter().enumerate() {
            for s in &c.slots {
                closed_slots.push(*s as u32);
                closed_group.push(g);
            }
        }
        let (mut open_slots, mut open_group) = (vec![], vec![]);
        let mut next = 0;
        for sessions in self.sessions.values_mut() {
            for s in sessions.values_mut() {
                open_slots.push(s.slot as u32);
                open_group.push(next);
                for m in s.merged.drain(..) {
                    open_slots.push(m as u32);
                    open_group.push(next);
                }
                s.slot = next;
                next += 1;
            }
        }
        let closed_slots = UInt32Array::from(closed_slots);
        let open_slots = UInt32Array::from(open_slots);
        let mut values = Vec::with_capacity(self.accs.len());
        for (a, acc) in self.aggs.iter().zip(self.accs.iter_mut()) {
            let state = acc.state(EmitTo::All)?;
            let part = |ix: &UInt32Array| {
                state
                    .iter()
                    .map(|s| take(s.as_ref(), ix, None))
                    .collect::<Result<Vec<_>, _>>()
            };
            let mut done = groups_accumulator(a)?;
            if !closed.is_empty() {
                done.merge_batch(&part(&closed_slots)?, &closed_group, closed.len())?;
                values.push(done.evaluate(EmitTo::All)?);
            }
            let mut open = groups_accumulator(a)?;
            open.merge_batch(&part(&open_slots)?, &open_group, next)?;
            *acc = open;
        }
        self.slots = next;
        Ok(values)
    }

    fn emit(&self, closed: &[Closed], values: Vec<ArrayRef>) -> Result<RecordBatch, EngineError> {
        let n = closed.len();
        let keys = if self.keys.is_empty() {
            vec![]
        } else {
            let bytes = BinaryArray::from_iter_values(closed.iter().map(|c| &c.key));
            let rows = self.keys.converter.from_binary(bytes);
            self.keys.converter.convert_rows(rows.iter())?
        };
        let stamps = |f: &dyn Fn(&Closed) -> i64| -> ArrayRef {
            Arc::new(TimestampMillisecondArray::from_iter_values(
                closed.iter().map(f),
            ))
        };
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.output.fields().len());
        for g in &self.layout {
            columns.push(match g {
                GroupColumn::WindowStart => stamps(&|c| c.start),
                GroupColumn::WindowEnd => stamps(&|c| c.end),
                GroupColumn::WindowTime => stamps(&|c| c.end - 1),
                GroupColumn::Key(i) => keys[*i].clone(),
            });
        }
        columns.extend(values);
        conform(&self.output, columns, n)
    }

    /// The state as one batch, a row per open session: `key` (Arrow row
    /// format), `start`, `end` and each accumulator's state (`a<j>_<k>`),
    /// with the watermark and late count beside it.
    pub fn snapshot(&mut self) -> Result<StageState, EngineError> {
        self.fold(&[])?;
        let mut info: Vec<(&[u8], i64, i64)> = vec![(&[], 0, 0); self.slots];
        for (key, sessions) in &self.sessions {
            for (start, s) in sessions {
                info[s.slot] = (key, *start, s.end);
            }
        }
        let mut fields = vec![
            Field::new("key", DataType::Binary, false),
            Field::new("start", DataType::Int64, false),
            Field::new("end", DataType::Int64, false),
        ];
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(BinaryArray::from_iter_values(info.iter().map(|i| i.0))),
            Arc::new(Int64Array::from_iter_values(info.iter().map(|i| i.1))),
            Arc::new(Int64Array::from_iter_values(info.iter().map(|i| i.2))),
        ];
        snapshot_states(
            &self.aggs,
            &mut self.accs,
            self.slots,
            &mut fields,
            &mut columns,
        )?;
        Ok(StageState {
            batches: vec![RecordBatch::try_new(
                Arc::new(Schema::new(fields)),
                columns,
            )?],
            meta: serde_json::json!({"watermark": self.watermark, "late": self.late}),
        })
    }

    /// Restores the state [`SessionAggregate::snapshot`] took.
    pub fn restore(&mut self, state: &StageState) -> Result<(), EngineError> {
        self.sessions.clear();
        self.closing.clear();
        self.slots = 0;
        self.accs = self
            .aggs
            .iter()
            .map(groups_accumulator)
            .collect::<Result<_, _>>()?;
        self.watermark = state.meta.get("watermark").and_then(|v| v.as_i64());
        self.late = state.meta.get("late").and_then(|v| v.as_u64()).unwrap_or(0);
        for b in &state.batches {
            let n = b.num_rows();
            let keys = b.column(0).as_binary::<i32>();
            let starts = b.column(1).as_primitive::<Int64Type>();
            let ends = b.column(2).as_primitive::<Int64Type>();
            for i in 0..n {
                let key: Box<[u8]> = keys.value(i).into();
                let (start, end) = (starts.value(i), ends.value(i));
                self.sessions.entry(key.clone()).or_default().insert(
                    start,
                    Session {
                        end,
                        slot: self.slots + i,
                        merged: vec![],
                    },
                );
                self.closing.insert((end, start, key));
            }
            restore_states(&mut self.accs, b, self.slots)?;
            self.slots += n;
        }
        Ok(())
    }
}
