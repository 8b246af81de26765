//! Running a plan over in-memory records, without a broker: the engine as
//! the SQL conformance corpus and the benchmarks see it.
//!
//! Records go through the same decoder, error policy and operators as on
//! the worker; polls are replayed in the order given, so a bounded input
//! gives a deterministic output.

use arrow::array::RecordBatch;
use weir_sql_gateway::StreamingPlan;

use crate::decode::{ErrorMode, RawRecord, SourceDecoder};
use crate::pipeline::{compile, BranchSource};
use crate::EngineError;

/// One Kafka record as a test or benchmark supplies it.
#[derive(Debug, Clone, Default)]
pub struct MemoryRecord {
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

/// Records of one topic that arrive together, as one consumer poll.
#[derive(Debug, Clone)]
pub struct MemoryPoll {
    pub topic: String,
    pub records: Vec<MemoryRecord>,
}

/// What a run produced.
#[derive(Debug, Default)]
pub struct MemoryOutput {
    /// The root's output, in emission order (every row is an insert: the
    /// operators here are append-only).
    pub batches: Vec<RecordBatch>,
    /// Records skipped by an `'error-handling.mode'` of `ignore` or `log`.
    pub skipped: u64,
}

/// Runs `plan` over `polls` until they are used up (or its `LIMIT` is
/// reached). A record that does not decode under `'error-handling.mode' =
/// 'fail'` ends the run with the same error the worker reports.
pub fn run_in_memory(
    plan: &StreamingPlan,
    polls: &[MemoryPoll],
) -> Result<MemoryOutput, EngineError> {
    let compiled = compile(plan)?;
    let mut out = MemoryOutput::default();
    let mut written = 0usize;
    let mut emit = |batch: RecordBatch, out: &mut MemoryOutput| -> bool {
        let batch = match compiled.limit {
            Some(l) if written + batch.num_rows() > l => batch.slice(0, l - written),
            _ => batch,
        };
        written += batch.num_rows();
        if batch.num_rows() > 0 {
            out.batches.push(batch);
        }
        compiled.limit.is_some_and(|l| written >= l)
    };
    // Constant rows first, as the worker sends them at once.
    for branch in &compiled.branches {
        if let BranchSource::Values(batch) = &branch.source {
            if let Some(b) = branch.process(batch.clone())? {
                if emit(b, &mut out) {
                    return Ok(out);
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
    for poll in polls {
        let raw: Vec<RawRecord<'_>> = poll
            .records
            .iter()
            .map(|r| RawRecord {
                key: r.key.as_deref(),
                value: r.value.as_deref(),
                partition: r.partition,
                offset: r.offset,
                timestamp_ms: r.timestamp_ms,
            })
            .collect();
        for (branch, decoder) in compiled.branches.iter().zip(&decoders) {
            let (BranchSource::Kafka(spec), Some(decoder)) = (&branch.source, decoder) else {
                continue;
            };
            if spec.table.topic != poll.topic {
                continue;
            }
            let (batch, bad) = decoder.decode(&raw)?;
            if let Some(b) = bad.first() {
                if decoder.mode == ErrorMode::Fail {
                    return Err(crate::worker::bad_record_error(&poll.topic, b));
                }
                out.skipped += bad.len() as u64;
            }
            if let Some(b) = batch.filter(|b| b.num_rows() > 0) {
                if let Some(b) = branch.process(b)? {
                    if emit(b, &mut out) {
                        return Ok(out);
                    }
                }
            }
        }
    }
    Ok(out)
}
