//! The streaming runtime: runs a [`weir_sql_gateway::StreamingPlan`] over
//! Arrow `RecordBatch`es.
//!
//! It owns sources (Kafka through rdkafka, and in-memory for tests and
//! benchmarks), JSON decoding straight into Arrow ([`decode`]), the stateless
//! operators (filter and projection as DataFusion physical expressions,
//! [`pipeline`]), sinks (Kafka, and the bounded [`ResultsBuffer`] behind a
//! `SELECT`), and the [`Worker`] that runs statements and reports their
//! progress. It does not plan SQL, keep metadata or decide placement; the
//! control plane hands it a plan and the offsets to start from, and stores
//! what the worker reports through [`StatementEvents`].
//!
//! Watermarks and window aggregation are in [`window`], session windows in
//! [`session`], group aggregation
//! (an update stream, [`changelog`]) in [`group`], snapshots of their state
//! in [`checkpoint`]; regular joins in [`join`], Top-N and deduplication in
//! [`topn`], upsert tables read as update streams in [`normalize`], OVER aggregation
//! in [`over`], temporal joins in [`temporal`]. Exactly-once Kafka sinks
//! (a transaction per checkpoint) are in `transaction`.

pub mod changelog;
pub mod checkpoint;
pub mod decode;
pub mod encode;
mod error;
mod fastjson;
pub mod group;
mod hash;
pub mod join;
mod kafka;
pub mod memory;
pub mod normalize;
pub mod over;
pub mod pipeline;
mod results;
pub mod session;
pub mod temporal;
pub mod topn;
mod transaction;
pub mod window;
pub mod wire;
mod worker;

pub use changelog::Changes;
pub use checkpoint::{Checkpointer, Snapshot, StageState};
pub use error::EngineError;
pub use memory::{
    run_in_memory, run_in_memory_with, MemoryOptions, MemoryOutput, MemoryPoll, MemoryRecord,
};
pub use pipeline::{
    compile, Branch, BranchSource, CompiledPlan, Stage, Stages, StatefulOp, Target,
};
pub use results::{ResultsBuffer, ResultsPage};
pub use worker::{
    Outcome, RunningStatement, StatementEvents, StatementMetrics, StatementTask, Worker,
};
