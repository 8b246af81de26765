//! The SQL gateway: Flink SQL in, catalog changes or streaming plans out.
//!
//! It owns the Flink dialect (on `sqlparser`'s custom-dialect hooks plus a
//! small parser of its own for Flink DDL), name resolution against the
//! catalog, type checking through DataFusion's logical planner, and the
//! translation of a checked query into a [`StreamingPlan`] that a
//! `compute-pool` worker can run. It does not run anything and does not keep
//! state of its own: metadata statements are applied through `catalog`.
//!
//! Read [`parse`], [`Planner`] and [`StreamingPlan`] first. Errors are
//! [`SqlError`]s carrying a 1-based line and column wherever the text has one.

mod aggregates;
mod bounded;
mod dialect;
mod error;
pub mod flink_text;
mod flink_udfs;
mod functions;
mod hints;
mod information_schema;
mod interval;
pub mod limits;
mod match_recognize;
mod metadata;
mod numeric;
mod parser;
mod plan;
mod planner;
mod proctime;
pub mod stages;
mod table_changes;
mod temporal;
mod timezone;
mod unnest;
mod views;
mod watermark;
mod windows;

pub use dialect::FlinkDialect;
pub use error::{SqlError, SqlErrorKind};
pub use functions::FLINK_FUNCTION_MAPPING;
pub use metadata::{
    bounded_scans, checkpoint_interval_ms, create_table, database_of, duration_ms,
    execute_metadata, idle_timeout_ms, local_time_zone, memory_limit, state_ttl_ms, CatalogContext,
    ResultSet,
};
pub use parser::{parse, FlinkStatement, ShowKind};
pub use plan::{
    GroupColumn, IntervalBounds, JoinKind, MatchNav, MatchSkip, MatchSpec, OverFrame, PatternTerm,
    PlanNode, RankOutput, SetSink, SinkSpec, SourceSpec, StartupMode, StreamingPlan, WindowKind,
    WindowSpec, WindowZone,
};
pub use planner::{analyze, replan, Analysis, Planner};
pub use proctime::with_processing_time;
pub use watermark::with_current_watermark;

/// Statement properties that Weir itself reads.
pub mod properties {
    pub const CURRENT_CATALOG: &str = "sql.current-catalog";
    pub const CURRENT_DATABASE: &str = "sql.current-database";
    pub const LOCAL_TIME_ZONE: &str = "sql.local-time-zone";
    /// `'now'`: a snapshot query; its Kafka sources end at the offsets
    /// they find at start and the statement completes.
    pub const SNAPSHOT_MODE: &str = "sql.snapshot.mode";
    /// `'latest-offset'`: every Kafka source ends at the offsets it finds
    /// at start (a table's own `'scan.bounded.mode'` does the same for it).
    pub const SCAN_BOUNDED_MODE: &str = "sql.tables.scan.bounded.mode";
    /// How long a source partition may send nothing before it stops holding
    /// the watermark back (a duration; `'0'` switches idleness off).
    pub const IDLE_TIMEOUT: &str = "sql.tables.scan.idle-timeout";
    /// How often a stateful statement checkpoints (a duration).
    pub const CHECKPOINT_INTERVAL: &str = "execution.checkpointing.interval";
    /// How long a join keeps a row after its last write (a duration; unset
    /// or `'0'`: forever). Flink's `'table.exec.state.ttl'` is read too.
    pub const STATE_TTL: &str = "sql.state-ttl";
    pub const FLINK_STATE_TTL: &str = "table.exec.state.ttl";
    /// The most memory the statement's state and buffers may hold (a size
    /// like `'512 mb'`); past it the statement fails, naming what holds
    /// the memory. The server sets the default.
    pub const MEMORY_LIMIT: &str = "sql.memory.limit";
    /// Past this size (80% of the limit unless set) the statement is
    /// `DEGRADED`, saying what holds the memory, until it shrinks again.
    pub const MEMORY_SOFT_LIMIT: &str = "sql.memory.soft-limit";
    /// Tasks per stage (1 to 256). Set, a statement with one keyed
    /// stateful operator runs as a source stage and a keyed stage behind a
    /// repartition topic, and can be rescaled by changing this; unset, it
    /// runs as one task.
    pub const PARALLELISM: &str = "sql.parallelism";
    /// The partitions of the statement's repartition topic: the most tasks
    /// its keyed stage can ever have (fixed when it first starts).
    pub const MAX_PARALLELISM: &str = "sql.max-parallelism";
    /// `'true'`: `DROP TABLE` soft-deletes the table's key and value
    /// subjects in the schema registry too (by default they stay, for the
    /// other clients of the topic's data).
    pub const DROP_DELETES_SUBJECTS: &str = "sql.drop-table.delete-subjects";
}
