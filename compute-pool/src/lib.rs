//! The streaming runtime: runs a [`weir_sql_gateway::StreamingPlan`] over
//! Arrow `RecordBatch`es.
//!
//! It owns sources (Kafka through rdkafka, and in-memory for tests and
//! benchmarks), the operators, sinks (Kafka, and the bounded
//! [`ResultsBuffer`] behind a `SELECT`), and the [`Worker`] that runs
//! statements and reports their progress. It does not plan SQL, keep
//! metadata or decide placement; the control plane hands it a plan and the
//! offsets to start from, and stores what the worker reports through
//! [`StatementEvents`].
//!
//! The folders:
//! - [`operators`]: filter and projection aside (DataFusion physical
//!   expressions), every operator of a stage: windows, group aggregation,
//!   joins, Top-N, OVER, and the changelog they exchange;
//! - [`connector`]: Kafka (consumer, producer, transactions) and the
//!   formats: JSON into and out of Arrow, and the REST results encoding;
//! - [`runtime`]: a plan compiled into branches and stages, checkpoints,
//!   the in-memory runner, the results buffer;
//! - `worker`: the [`Worker`] that runs a statement on its own thread and
//!   reports what it does.

pub mod connector;
mod error;
mod hash;
pub mod operators;
pub mod runtime;
pub mod worker;

pub use error::EngineError;
pub use operators::changelog::Changes;
pub use runtime::checkpoint::{Checkpointer, Snapshot, StageState};
pub use runtime::memory::{
    run_in_memory, run_in_memory_with, MemoryOptions, MemoryOutput, MemoryPoll, MemoryRecord,
};
pub use runtime::pipeline::{
    compile, Branch, BranchSource, CompiledPlan, Stage, Stages, StatefulOp, Target,
};
pub use runtime::results::{ResultsBuffer, ResultsPage};
pub use worker::{
    Outcome, RunningStatement, StatementEvents, StatementMetrics, StatementTask, Worker,
};
