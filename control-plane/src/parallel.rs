//! A statement with `'sql.parallelism'` as tasks: which tasks, their
//! repartition topic, and what its status says of them (see
//! [`weir_sql_gateway::stages`] for the shapes, and
//! [`weir_compute_pool::runtime::exchange`] for the topic).

use weir_api::{StageStatus, TaskPlacement};
use weir_compute_pool::runtime::exchange::{ExchangeSpec, TaskRole};
use weir_compute_pool::worker::protocol::Assignment;
use weir_sql_gateway::stages::{Shape, DEFAULT_REPARTITION_PARTITIONS};
use weir_sql_gateway::{CatalogContext, StreamingPlan};

use crate::ApiError;

/// The repartition topic of statement `uid`: `__`-prefixed, so that the
/// catalog does not list it as a table.
pub fn exchange_topic(uid: &str) -> String {
    format!("__weir-repartition-{uid}")
}

/// The tasks a statement needs slots for at parallelism `p` (`None`:
/// unset).
pub fn tasks_needed(plan: &StreamingPlan, p: Option<u32>) -> usize {
    match (p, Shape::of(plan)) {
        (Some(p), Shape::Stateless) => p as usize,
        (Some(p), Shape::Keyed { .. }) => 2 * p as usize,
        _ => 1,
    }
}

/// Tasks per stage, as the autoscaler sets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageCounts {
    pub source: u32,
    pub keyed: u32,
}

/// A statement's tasks: `whole` alone, or its stages' tasks, each a copy
/// of `whole` with its role. `counts` (the autoscaler's) overrides
/// `'sql.parallelism'`.
pub async fn tasks(
    whole: Assignment,
    plan: &StreamingPlan,
    ctx: &CatalogContext,
    uid: &str,
    counts: Option<StageCounts>,
) -> Result<Vec<Assignment>, ApiError> {
    let Some(counts) = counts.or(ctx.parallelism.map(|p| StageCounts {
        source: p,
        keyed: p,
    })) else {
        return Ok(vec![whole]);
    };
    let p = counts.source.max(1);
    let task = |role: TaskRole| {
        let mut a = whole.clone();
        a.task = format!("{uid}.{}", role.suffix());
        a.role = role;
        a
    };
    match Shape::of(plan) {
        Shape::Single(_) => Ok(vec![whole]),
        Shape::Stateless => Ok((0..p)
            .map(|index| {
                task(TaskRole::Source {
                    index,
                    count: p,
                    exchange: None,
                })
            })
            .collect()),
        Shape::Keyed { .. } => {
            let exchange = ensure_exchange(plan, ctx, uid).await?;
            let keyed = counts.keyed.max(1).min(exchange.partitions);
            let mut out: Vec<Assignment> = (0..p)
                .map(|index| {
                    task(TaskRole::Source {
                        index,
                        count: p,
                        exchange: Some(exchange.clone()),
                    })
                })
                .collect();
            out.extend((0..keyed).map(|index| {
                task(TaskRole::Keyed {
                    index,
                    count: keyed,
                    exchange: exchange.clone(),
                    upstream: p,
                })
            }));
            Ok(out)
        }
    }
}

/// Creates the statement's repartition topic the first time it starts;
/// later its partition count, fixed then, is read back.
async fn ensure_exchange(
    plan: &StreamingPlan,
    ctx: &CatalogContext,
    uid: &str,
) -> Result<ExchangeSpec, ApiError> {
    let cluster = ctx
        .plan_cluster(plan)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let topic = exchange_topic(uid);
    let unreachable = |e: weir_catalog::CatalogError| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "kafka_unavailable",
            format!(
                "cannot create the statement's repartition topic '{topic}' in Kafka cluster '{}': {e}",
                cluster.name
            ),
        )
    };
    let admin = weir_catalog::KafkaAdmin::new(&cluster.connection()).map_err(unreachable)?;
    let topics = admin.list_topics().await.map_err(unreachable)?;
    if let Some((_, n)) = topics.iter().find(|(t, _)| *t == topic) {
        return Ok(ExchangeSpec {
            topic,
            partitions: *n as u32,
        });
    }
    let largest_source = largest_source(plan, &topics);
    let partitions = ctx
        .max_parallelism
        .unwrap_or_else(|| DEFAULT_REPARTITION_PARTITIONS.max(largest_source));
    admin
        .create_topic(&topic, partitions, &[])
        .await
        .map_err(unreachable)?;
    Ok(ExchangeSpec { topic, partitions })
}

/// The most partitions of any of the plan's source topics among `topics`
/// (name, partitions); 0 when none is there.
fn largest_source(plan: &StreamingPlan, topics: &[(String, usize)]) -> u32 {
    plan.root
        .sources()
        .iter()
        .filter_map(|s| topics.iter().find(|(t, _)| *t == s.table.topic))
        .map(|(_, n)| *n as u32)
        .max()
        .unwrap_or(0)
}

/// Deletes statement `uid`'s repartition topic, if it has one.
pub async fn delete_exchange(ctx: &CatalogContext, uid: &str) {
    // It is on the cluster of the statement's tables; the name is the
    // statement's own, so it is looked for on each.
    let topic = exchange_topic(uid);
    for cluster in &ctx.clusters {
        let Ok(admin) = weir_catalog::KafkaAdmin::new(&cluster.connection()) else {
            continue;
        };
        match admin.list_topics().await {
            Ok(t) if t.iter().any(|(name, _)| *name == topic) => {
                if let Err(e) = admin.delete_topic(&topic).await {
                    tracing::warn!(topic = %topic, error = %e, "cannot delete a statement's repartition topic");
                }
            }
            _ => {}
        }
    }
}

/// The stage a task of role `role` belongs to, by name: `source`, the
/// keyed operator, or `statement` for a statement that is one task.
pub fn stage_of(role: &TaskRole, operator: Option<&str>) -> String {
    match role {
        TaskRole::Whole if operator.is_none() => crate::scaling::SOURCE_STAGE.to_string(),
        TaskRole::Whole => crate::scaling::WHOLE_STAGE.to_string(),
        TaskRole::Source { .. } => crate::scaling::SOURCE_STAGE.to_string(),
        TaskRole::Keyed { .. } => operator.unwrap_or("keyed").to_string(),
    }
}

/// Tasks per stage name.
pub fn stage_counts(
    tasks: &[Assignment],
    operator: Option<&str>,
) -> std::collections::BTreeMap<String, u32> {
    let mut out = std::collections::BTreeMap::new();
    for a in tasks {
        *out.entry(stage_of(&a.role, operator)).or_insert(0) += 1;
    }
    out
}

/// Each stage's input partitions: the most of any source topic for the
/// source stage (0 when Kafka cannot say), the repartition topic's for the
/// keyed one.
pub async fn stage_partitions(
    plan: &StreamingPlan,
    ctx: &CatalogContext,
    tasks: &[Assignment],
    operator: Option<&str>,
) -> Vec<(String, u32)> {
    let mut sources = 0u32;
    if let Ok(cluster) = ctx.plan_cluster(plan) {
        if let Ok(admin) = weir_catalog::KafkaAdmin::new(&cluster.connection()) {
            if let Ok(topics) = admin.list_topics().await {
                sources = largest_source(plan, &topics);
            }
        }
    }
    let mut out = vec![(crate::scaling::SOURCE_STAGE.to_string(), sources)];
    if let Some(TaskRole::Keyed { exchange, .. }) = tasks
        .iter()
        .map(|a| &a.role)
        .find(|r| matches!(r, TaskRole::Keyed { .. }))
    {
        out.push((operator.unwrap_or("keyed").to_string(), exchange.partitions));
    }
    out
}

/// The stages of a statement whose tasks are `tasks`, and where each runs
/// (`worker_of` a task id); empty for a statement that is one task.
pub fn stages_status(
    tasks: &[Assignment],
    plan_operator: Option<&str>,
    worker_of: impl Fn(&str) -> Option<String>,
) -> Vec<StageStatus> {
    let mut stages: Vec<StageStatus> = vec![];
    for a in tasks {
        let name = match &a.role {
            TaskRole::Whole => return vec![],
            TaskRole::Source { .. } => "source".to_string(),
            TaskRole::Keyed { .. } => plan_operator.unwrap_or("keyed").to_string(),
        };
        let placement = TaskPlacement {
            task: a.task.clone(),
            worker: worker_of(&a.task),
        };
        match stages.iter_mut().find(|s| s.name == name) {
            Some(s) => {
                s.parallelism += 1;
                s.tasks.push(placement);
            }
            None => stages.push(StageStatus {
                name,
                parallelism: 1,
                tasks: vec![placement],
            }),
        }
    }
    stages
}
