//! Running a plan over in-memory records, without a broker: the engine as
//! the SQL conformance corpus and the benchmarks see it.
//!
//! Records go through the same decoder, error policy and operators as on
//! the worker; polls are replayed in the order given, so a bounded input
//! gives a deterministic output.

use std::sync::Arc;

use datafusion::common::DFSchema;
use datafusion::execution::context::ExecutionProps;
use datafusion::physical_expr::{create_physical_expr, PhysicalExpr};
use weir_sql_gateway::{with_processing_time, StreamingPlan};

use crate::connector::decode::{row_partitions, ErrorMode, RawRecord, SourceDecoder};
use crate::operators::changelog::Changes;
use crate::operators::window::{admit_batch, PartitionWatermarks};
use crate::runtime::checkpoint::{decode_batches, encode_batches, StageState};
use crate::runtime::pipeline::{compile, BranchSource};
use crate::EngineError;

/// One Kafka record as a test or benchmark supplies it.
#[derive(Debug, Clone, Default)]
pub struct MemoryRecord {
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Records of one topic that arrive together, as one consumer poll.
#[derive(Debug, Clone)]
pub struct MemoryPoll {
    pub topic: String,
    pub records: Vec<MemoryRecord>,
    /// When the poll happens, in milliseconds of processing time (for idle
    /// partitions).
    pub at_ms: i64,
}

/// Settings of an in-memory run.
#[derive(Debug, Clone, Default)]
pub struct MemoryOptions {
    /// `'sql.tables.scan.idle-timeout'` in milliseconds; `None` or 0: off.
    pub idle_timeout_ms: Option<i64>,
    /// `'sql.state-ttl'` in milliseconds of processing time; `None`: off.
    pub state_ttl_ms: Option<i64>,
    /// After every poll, snapshot the state, encode it as a checkpoint
    /// does, and go on with a freshly compiled plan restored from it: the
    /// output must not change.
    pub restore_every_poll: bool,
}

/// What a run produced.
#[derive(Debug, Default)]
pub struct MemoryOutput {
    /// The root's output, in emission order, with row kinds.
    pub batches: Vec<Changes>,
    /// Records skipped by an `'error-handling.mode'` of `ignore` or `log`.
    pub skipped: u64,
    /// Records a window operator dropped as late.
    pub late: u64,
    /// The statement's watermark at the end, in milliseconds.
    pub watermark: Option<i64>,
    /// Groups (or rows, for a join) held in operator state at the end.
    pub state_groups: usize,
    /// Bytes of operator state at the end (the operators' estimate).
    pub state_bytes: usize,
}

/// Runs `plan` over `polls` until they are used up (or its `LIMIT` is
/// reached). A record that does not decode under `'error-handling.mode' =
/// 'fail'` ends the run with the same error the worker reports. After each
/// poll the sources' watermarks (per partition of each table, minimum over
/// partitions) are passed to the stateful operators, each moving by the
/// sources that feed it (the minimum over them); the input is
/// treated as unbounded, so windows the watermark has not passed at the end
/// emit nothing.
pub fn run_in_memory(
    plan: &StreamingPlan,
    polls: &[MemoryPoll],
) -> Result<MemoryOutput, EngineError> {
    run_in_memory_with(plan, polls, &MemoryOptions::default())
}

/// [`run_in_memory`] with settings.
pub fn run_in_memory_with(
    plan: &StreamingPlan,
    polls: &[MemoryPoll],
    options: &MemoryOptions,
) -> Result<MemoryOutput, EngineError> {
    let compiled = compile(plan)?;
    let limit = compiled.limit;
    let mut stages = compiled.stages;
    stages.set_state_ttl(options.state_ttl_ms);
    let mut out = MemoryOutput::default();
    let mut written = 0usize;
    let mut emit = |batch: Changes, out: &mut MemoryOutput| -> bool {
        let batch = match limit {
            Some(l) if written + batch.num_rows() > l => batch.slice(0, l - written),
            _ => batch,
        };
        written += batch.num_rows();
        if batch.num_rows() > 0 {
            out.batches.push(batch);
        }
        limit.is_some_and(|l| written >= l)
    };
    // Constant rows first, as the worker sends them at once.
    for branch in &compiled.branches {
        if let BranchSource::Values(batch) = &branch.source {
            if let Some(b) = branch.process(batch.clone(), None)? {
                for c in stages.process(branch.target, b)? {
                    if emit(c, &mut out) {
                        return Ok(out);
                    }
                }
            }
        }
    }
    let decoders = compiled
        .branches
        .iter()
        .map(|b| match &b.source {
            BranchSource::Kafka(spec) => SourceDecoder::new(spec).map(Some),
            BranchSource::Values(_) => Ok(None),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let props = ExecutionProps::new();
    let mut watermarks: Vec<Option<(Arc<dyn PhysicalExpr>, PartitionWatermarks)>> = compiled
        .branches
        .iter()
        .map(|b| match &b.source {
            BranchSource::Kafka(spec) => {
                let df = DFSchema::try_from(spec.schema.as_ref().clone())?;
                let e = create_physical_expr(&spec.watermark, &df, &props, &Default::default())?;
                let parts = (0..spec.table.partitions() as i32).collect();
                let start = polls.first().map(|p| p.at_ms).unwrap_or(0);
                Ok(Some((
                    e,
                    PartitionWatermarks::new(parts, options.idle_timeout_ms, start),
                )))
            }
            BranchSource::Values(_) => Ok(None),
        })
        .collect::<Result<Vec<_>, EngineError>>()?;
    let mut late_at_source = 0u64;
    for poll in polls {
        stages.set_processing_time(poll.at_ms);
        // Processing-time windows whose end has passed fire before the
        // poll's rows are processed, as timers would have fired by then.
        if stages.has_processing_timers() {
            for c in stages.on_processing_time(poll.at_ms)? {
                if emit(c, &mut out) {
                    return Ok(out);
                }
            }
        }
        let headers: Vec<Vec<crate::connector::decode::Header<'_>>> = poll
            .records
            .iter()
            .map(|r| {
                r.headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_deref()))
                    .collect()
            })
            .collect();
        let raw: Vec<RawRecord<'_>> = poll
            .records
            .iter()
            .zip(&headers)
            .map(|(r, headers)| RawRecord {
                headers,
                key: r.key.as_deref(),
                value: r.value.as_deref(),
                partition: r.partition,
                offset: r.offset,
                timestamp_ms: r.timestamp_ms,
            })
            .collect();
        for (i, (branch, decoder)) in compiled.branches.iter().zip(&decoders).enumerate() {
            let (BranchSource::Kafka(spec), Some(decoder)) = (&branch.source, decoder) else {
                continue;
            };
            if spec.table.topic != poll.topic {
                continue;
            }
            // PROCTIME() reads the poll's processing time.
            let (batch, bad) = with_processing_time(poll.at_ms, || decoder.decode(&raw))?;
            if let Some(b) = bad.first() {
                if decoder.mode == ErrorMode::Fail {
                    return Err(crate::worker::bad_record_error(&poll.topic, b));
                }
                out.skipped += bad.len() as u64;
            }
            if let Some(mut b) = batch.filter(|b| b.num_rows() > 0) {
                let mut before = None;
                if let Some((expr, tracker)) = &mut watermarks[i] {
                    before = tracker.current(poll.at_ms);
                    let (kept, dropped) = admit_batch(
                        tracker,
                        expr,
                        &spec.table,
                        b,
                        &row_partitions(&raw, &bad),
                        poll.at_ms,
                    )?;
                    late_at_source += dropped as u64;
                    b = kept;
                }
                if let Some(b) = with_processing_time(poll.at_ms, || branch.process(b, before))? {
                    for c in stages.process(branch.target, b)? {
                        if emit(c, &mut out) {
                            return Ok(out);
                        }
                    }
                }
            }
        }
        if options.restore_every_poll && !stages.is_empty() {
            let states = stages
                .snapshot()?
                .into_iter()
                .map(|s| {
                    Ok(StageState {
                        batches: decode_batches(&encode_batches(&s.batches)?)?,
                        meta: s.meta,
                    })
                })
                .collect::<Result<Vec<_>, EngineError>>()?;
            stages = compile(plan)?.stages;
            stages.set_state_ttl(options.state_ttl_ms);
            stages.restore(&states)?;
        }
        // The statement's watermark: the minimum over its sources.
        // Sources whose every partition is idle hold nothing back.
        // It never goes back.
        let active: Vec<_> = watermarks
            .iter()
            .flatten()
            .filter(|(_, t)| !t.all_idle(poll.at_ms))
            .collect();
        let wm = active
            .iter()
            .map(|(_, t)| t.current(poll.at_ms))
            .try_fold(i64::MAX, |acc, w| w.map(|w| acc.min(w)))
            .filter(|w| !active.is_empty() && Some(*w) > out.watermark);
        if let Some(wm) = wm {
            out.watermark = Some(wm);
        }
        // Each stage moves by the branches that feed it; constant rows
        // never hold one back.
        let (branch_wms, idle): (Vec<Option<i64>>, Vec<bool>) = watermarks
            .iter()
            .map(|w| match w {
                Some((_, t)) => (t.current(poll.at_ms), t.all_idle(poll.at_ms)),
                None => (Some(i64::MAX), false),
            })
            .unzip();
        for c in stages.advance_branches(&branch_wms, &idle, out.watermark)? {
            if emit(c, &mut out) {
                return Ok(out);
            }
        }
    }
    out.late = stages.late() + late_at_source;
    out.state_groups = stages.state_size().1;
    out.state_bytes = stages.state_bytes();
    Ok(out)
}
