//! Statement resources, shaped like the public managed-Flink statement API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A statement: a piece of Flink SQL that Weir keeps running (or ran).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Statement {
    pub api_version: String,
    pub kind: String,
    pub organization_id: String,
    pub environment_id: String,
    pub name: String,
    pub metadata: ObjectMeta,
    pub spec: StatementSpec,
    #[serde(default)]
    pub status: StatementStatus,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ObjectMeta {
    #[serde(rename = "self", default)]
    pub self_: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub updated_at: String,
    #[serde(default)]
    pub uid: String,
    /// Increases on every change; a `PUT` must carry the current one.
    #[serde(default)]
    pub resource_version: String,
    /// Labels a client tags the statement with (`user.confluent.io/...`
    /// for the managed service's clients); listings filter on them.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct StatementSpec {
    /// The SQL text. Immutable once created.
    pub statement: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_pool_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// `sql.current-catalog`, `sql.current-database`, `sql.local-time-zone`
    /// and any `SET` option.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    #[serde(default)]
    pub stopped: bool,
}

/// The body of `POST .../statements`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct CreateStatementRequest {
    /// A lowercase DNS-style label; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<CreateMetadata>,
    pub spec: StatementSpec,
}

/// The `metadata` a client may send with a new statement.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct CreateMetadata {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(
    Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash, utoipa::ToSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Phase {
    #[default]
    Pending,
    Running,
    Completed,
    Degraded,
    Stopping,
    Stopped,
    Failing,
    Failed,
    Deleting,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "PENDING",
            Phase::Running => "RUNNING",
            Phase::Completed => "COMPLETED",
            Phase::Degraded => "DEGRADED",
            Phase::Stopping => "STOPPING",
            Phase::Stopped => "STOPPED",
            Phase::Failing => "FAILING",
            Phase::Failed => "FAILED",
            Phase::Deleting => "DELETING",
        }
    }

    pub fn parse(s: &str) -> Option<Phase> {
        [
            Phase::Pending,
            Phase::Running,
            Phase::Completed,
            Phase::Degraded,
            Phase::Stopping,
            Phase::Stopped,
            Phase::Failing,
            Phase::Failed,
            Phase::Deleting,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }

    /// A phase from which the statement will not move on its own.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Completed | Phase::Stopped | Phase::Failed)
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct StatementStatus {
    pub phase: Phase,
    #[serde(default)]
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traits: Option<StatementTraits>,
    /// Per source topic: `partition:offset,...` of the last committed position.
    #[serde(default)]
    pub latest_offsets: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_offsets_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<StatementMetrics>,
    /// The `weir worker` running the statement (its name), when the server
    /// places statements on workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// A statement with `'sql.parallelism'`: its stages, each with its
    /// tasks and the worker running each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageStatus>,
    /// Where it stands with the autoscaler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<crate::ScalingStatus>,
}

/// One stage of a parallel statement.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct StageStatus {
    /// `source` (reads the source partitions), or the keyed operator it
    /// runs (`GroupAggregate`, `Join`, ...).
    pub name: String,
    pub parallelism: u32,
    pub tasks: Vec<TaskPlacement>,
}

/// A task of a stage and where it runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct TaskPlacement {
    pub task: String,
    /// The worker holding its lease (`local` when the server runs its
    /// statements itself); `None` while it waits for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
}

/// Counters a worker reports for a running statement.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct StatementMetrics {
    pub records_in: u64,
    /// Records read and fully processed, their output written (into a
    /// Kafka table: acknowledged by the broker). `records_in` less this is
    /// the work queued inside the worker.
    #[serde(default)]
    pub records_processed: u64,
    pub records_out: u64,
    /// Records that failed to decode and were skipped (`ignore` or `log`).
    pub records_skipped: u64,
    /// Records a window operator dropped because their window had closed.
    #[serde(default)]
    pub records_late: u64,
    /// Open windows and groups held in state.
    #[serde(default)]
    pub state_windows: u64,
    #[serde(default)]
    pub state_groups: u64,
    /// Bytes of operator state held (an estimate, refreshed about once a
    /// second).
    #[serde(default)]
    pub state_bytes: u64,
    /// Checkpoints written since the statement last started.
    #[serde(default)]
    pub checkpoints: u64,
    /// Offsets a source skipped over: the broker served a later record than
    /// the next one expected in a partition. Transaction markers and
    /// compaction explain small gaps; otherwise the broker lost records.
    #[serde(default)]
    pub source_offset_gaps: u64,
    /// What a Kafka sink guarantees after a crash: `exactly-once` (a Kafka
    /// transaction per checkpoint; readers must read committed records),
    /// `at-least-once` (records written after the last checkpoint may be
    /// written again), or empty for a statement without a Kafka sink.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub delivery_guarantee: String,
    /// Kafka transactions committed by an exactly-once sink since the
    /// statement last started.
    #[serde(default)]
    pub transactions: u64,
    /// Milliseconds its tasks spent working on input (reading, decoding,
    /// operators, writing), not waiting for it.
    #[serde(default)]
    pub busy_ms: u64,
    /// Records its tasks took from their input topics: the sources', or a
    /// keyed stage's repartition topic (whose records carry many rows, and
    /// watermarks).
    #[serde(default)]
    pub input_consumed: u64,
    /// Records in its input partitions not read yet ("messages behind"),
    /// over the partitions where that is known.
    #[serde(default)]
    pub pending_records: u64,
    /// The sum of its input partitions' end offsets: how it grows is the
    /// input rate.
    #[serde(default)]
    pub input_end_offsets: u64,
    /// Input partitions whose lag is unknown (no position yet, or no end
    /// offset from the broker yet).
    #[serde(default)]
    pub input_unknown_partitions: u64,
}

impl StatementMetrics {
    /// The counters of a statement whose tasks reported `parts`: summed,
    /// with the guarantee of the first task that has one.
    pub fn sum<'a>(parts: impl IntoIterator<Item = &'a StatementMetrics>) -> StatementMetrics {
        let mut t = StatementMetrics::default();
        for m in parts {
            t.records_in += m.records_in;
            t.records_processed += m.records_processed;
            t.records_out += m.records_out;
            t.records_skipped += m.records_skipped;
            t.records_late += m.records_late;
            t.state_windows += m.state_windows;
            t.state_groups += m.state_groups;
            t.state_bytes += m.state_bytes;
            t.checkpoints += m.checkpoints;
            t.source_offset_gaps += m.source_offset_gaps;
            t.transactions += m.transactions;
            t.busy_ms += m.busy_ms;
            t.input_consumed += m.input_consumed;
            t.pending_records += m.pending_records;
            t.input_end_offsets += m.input_end_offsets;
            t.input_unknown_partitions += m.input_unknown_partitions;
            // The statement gives what its weakest task gives.
            if t.delivery_guarantee.is_empty() || m.delivery_guarantee == "at-least-once" {
                t.delivery_guarantee = m.delivery_guarantee.clone();
            }
        }
        t
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct StatementTraits {
    /// `SELECT`, `INSERT_INTO`, `CREATE_TABLE`, `SHOW_TABLES`, ...
    pub sql_kind: String,
    pub is_bounded: bool,
    pub is_append_only: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upsert_columns: Option<Vec<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<ResultSchema>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ResultSchema {
    pub columns: Vec<ColumnDescriptor>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ColumnDescriptor {
    pub name: String,
    #[serde(rename = "type")]
    pub type_: DataTypeDescriptor,
}

/// A Flink SQL type as the API describes it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct DataTypeDescriptor {
    /// `INTEGER`, `VARCHAR`, `ROW`, `ARRAY`, `TIMESTAMP_WITH_LOCAL_TIME_ZONE`, ...
    #[serde(rename = "type")]
    pub type_: String,
    pub nullable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub fields: Option<Vec<RowFieldDescriptor>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub element_type: Option<Box<DataTypeDescriptor>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub key_type: Option<Box<DataTypeDescriptor>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub value_type: Option<Box<DataTypeDescriptor>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct RowFieldDescriptor {
    pub name: String,
    pub field_type: DataTypeDescriptor,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ListMeta {
    #[serde(rename = "self", default)]
    pub self_: String,
    /// The URL of the next page; empty on the last page.
    #[serde(default)]
    pub next: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct StatementList {
    pub api_version: String,
    pub kind: String,
    pub metadata: ListMeta,
    pub data: Vec<Statement>,
}

/// One page of a statement's changelog.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct StatementResult {
    pub api_version: String,
    pub kind: String,
    pub metadata: ListMeta,
    pub results: ResultData,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ResultData {
    pub data: Vec<ResultRow>,
}

/// A changelog row: `op` 0 = +I, 1 = -U, 2 = +U, 3 = -D.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ResultRow {
    pub op: u8,
    pub row: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct StatementException {
    pub name: String,
    pub message: String,
    pub timestamp: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct StatementExceptionList {
    pub api_version: String,
    pub kind: String,
    pub data: Vec<StatementException>,
}
