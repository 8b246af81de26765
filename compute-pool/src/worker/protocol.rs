//! The internal API between the control plane and `weir worker`
//! processes: what a worker sends and what it is told, as JSON over HTTP
//! under `/internal/v1`, authenticated with the worker credential the
//! server issued (`Authorization: Bearer <credential>`).
//!
//! - `POST /internal/v1/workers` ([`Register`] → [`Registered`]): a worker
//!   joins its pool.
//! - `POST /internal/v1/workers/{id}/heartbeat` ([`Heartbeat`] →
//!   [`HeartbeatReply`]): renews the worker's leases, reports its tasks'
//!   metrics, and is told which tasks to start and stop. A 404 means the
//!   server no longer knows the worker (its leases expired, or the server
//!   restarted): the worker stops its tasks and registers again.
//! - `POST /internal/v1/tasks/{task}/{offsets,exception,degraded,results,finished}`
//!   ([`TaskReport`]): what a running task reports. Each names the worker
//!   and the lease's epoch; a report for a lease the worker no longer holds
//!   is refused with 409 and nothing of it is kept.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use weir_api::{ResultRow, StatementMetrics};
use weir_sql_gateway::CatalogContext;

/// The header a worker sends its credential in, as a bearer token.
pub const AUTHORIZATION: &str = "authorization";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Register {
    /// The compute pool the worker belongs to.
    pub pool: String,
    /// How many tasks it runs at once.
    pub slots: u32,
    /// A name for logs and the statement's status (the host and pid).
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Registered {
    pub worker_id: String,
    /// How often to heartbeat.
    pub heartbeat_interval_ms: u64,
    /// A worker silent this long loses its leases.
    pub lease_timeout_ms: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The tasks the worker is running, with their metrics.
    pub tasks: Vec<TaskStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskStatus {
    pub task: String,
    pub epoch: u64,
    pub metrics: StatementMetrics,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HeartbeatReply {
    /// Tasks to start, each with a new lease.
    pub start: Vec<Assignment>,
    /// Tasks to stop (after they drain what they read): `(task, epoch)`.
    pub stop: Vec<(String, u64)>,
}

/// A task leased to a worker: everything it needs to plan and run it,
/// without reading the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Assignment {
    /// The task's id: the statement's uid, and for a task of a parallel
    /// statement its stage and index after it (`<uid>.s2-t0`).
    pub task: String,
    /// The lease's number: a task that moves to another worker gets a new
    /// epoch, and reports under an old one are refused.
    pub epoch: u64,
    /// `org/env/name/uid`, for logs, the consumer group and checkpoints.
    pub key: String,
    pub sql: String,
    pub properties: BTreeMap<String, String>,
    /// The catalog as the statement sees it, loaded by the server.
    pub context: CatalogContext,
    /// Stored offsets: topic -> partition -> next offset.
    pub start_offsets: HashMap<String, HashMap<i32, i64>>,
    /// The folder checkpoints live in (shared with the server's other
    /// workers); `None`: no checkpoints.
    pub checkpoint_dir: Option<std::path::PathBuf>,
    pub results_idle_timeout_ms: u64,
    pub results_capacity: usize,
    /// The server's default `'sql.memory.limit'` (bytes).
    pub default_memory_limit: u64,
    /// The whole statement, or which task of which of its stages.
    #[serde(default)]
    pub role: crate::runtime::exchange::TaskRole,
}

/// What a running task reports, under its lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskReport {
    pub worker_id: String,
    pub epoch: u64,
    #[serde(flatten)]
    pub body: ReportBody,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReportBody {
    /// The sink durably wrote everything read before these offsets.
    Offsets {
        topic: String,
        offsets: Vec<(i32, i64)>,
    },
    Exception {
        message: String,
    },
    Degraded {
        detail: Option<String>,
    },
    /// Rows of a `SELECT`'s results, in order; `complete`: there are no
    /// more. The server answers once its buffer has taken them (so a full
    /// buffer holds the worker back), or 410 when nobody reads them.
    Results {
        rows: Vec<ResultRow>,
        complete: bool,
    },
    Finished {
        outcome: crate::Outcome,
        metrics: StatementMetrics,
    },
    /// Asks for schema `id` of the statement's schema registry; answered
    /// with a [`SchemaAnswer`].
    Schema {
        id: u32,
    },
    /// Registers the sink's schema; answered with a [`SchemaAnswer`].
    RegisterSchema {
        subject: String,
        schema_type: weir_catalog::registry::SchemaType,
        schema: String,
    },
}

/// The control plane's answer to a schema report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SchemaAnswer {
    /// The schema asked for (`None`: the registry has no such id).
    #[serde(default)]
    pub schema: Option<weir_catalog::registry::RegisteredSchema>,
    /// The id registered.
    #[serde(default)]
    pub id: Option<u32>,
    /// Why the registration was refused.
    #[serde(default)]
    pub error: Option<String>,
}

impl ReportBody {
    /// The last segment of the route a report goes to.
    pub fn kind(&self) -> &'static str {
        match self {
            ReportBody::Offsets { .. } => "offsets",
            ReportBody::Exception { .. } => "exception",
            ReportBody::Degraded { .. } => "degraded",
            ReportBody::Results { .. } => "results",
            ReportBody::Finished { .. } => "finished",
            ReportBody::Schema { .. } => "schema",
            ReportBody::RegisterSchema { .. } => "register-schema",
        }
    }
}

impl Assignment {
    /// The task to run `plan` (this assignment's SQL, planned) with, its
    /// reports going to `events`.
    pub fn into_task(
        self,
        plan: weir_sql_gateway::StreamingPlan,
        events: std::sync::Arc<dyn crate::StatementEvents>,
    ) -> Result<crate::StatementTask, crate::EngineError> {
        use std::time::Duration;
        let sql = |e: weir_sql_gateway::SqlError| crate::EngineError::Plan(e.to_string());
        let p = &self.properties;
        let checkpoints = match &self.checkpoint_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    crate::EngineError::Checkpoint(format!(
                        "checkpoint folder {}: {e}",
                        dir.display()
                    ))
                })?;
                let store =
                    object_store::local::LocalFileSystem::new_with_prefix(dir).map_err(|e| {
                        crate::EngineError::Checkpoint(format!("checkpoint folder: {e}"))
                    })?;
                Some(crate::Checkpointer::new(
                    std::sync::Arc::new(store),
                    &self.key,
                    Duration::from_millis(
                        weir_sql_gateway::checkpoint_interval_ms(p).map_err(sql)? as u64,
                    ),
                ))
            }
            None => None,
        };
        Ok(crate::StatementTask {
            key: self.key,
            kafka: self.context.plan_cluster(&plan).map_err(sql)?.connection(),
            plan,
            start_offsets: self.start_offsets,
            events,
            results_idle_timeout: Duration::from_millis(self.results_idle_timeout_ms),
            results_capacity: self.results_capacity,
            idle_timeout: weir_sql_gateway::idle_timeout_ms(p)
                .map_err(sql)?
                .map(|ms| Duration::from_millis(ms as u64)),
            state_ttl: weir_sql_gateway::state_ttl_ms(p)
                .map_err(sql)?
                .map(|ms| Duration::from_millis(ms as u64)),
            memory_limit: weir_sql_gateway::memory_limit(p, self.default_memory_limit)
                .map_err(sql)?,
            checkpoints,
            role: self.role,
        })
    }
}
