//! Compute pools (`/fcpm/v2/compute-pools`), shaped like the managed
//! service's, and the usage API's records.

use serde::{Deserialize, Serialize};

/// The `api_version` of compute pool resources.
pub const FCPM_API_VERSION: &str = "fcpm/v2";
/// The largest `max_cfu` a pool may have.
pub const MAX_POOL_CFU: i64 = 1024;

/// A compute pool: the task slots (CFUs) an environment's statements run on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ComputePool {
    pub api_version: String,
    pub kind: String,
    pub id: String,
    pub metadata: PoolMeta,
    pub spec: ComputePoolSpec,
    pub status: ComputePoolStatus,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct PoolMeta {
    #[serde(rename = "self", default)]
    pub self_: String,
    #[serde(default)]
    pub resource_name: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub updated_at: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ComputePoolSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The most CFUs (task slots) its statements may hold at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cfu: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<EnvironmentRef>,
    /// Weir's own: how the autoscaler sizes this pool's statements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaler: Option<AutoscalerSettings>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct EnvironmentRef {
    pub id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub related: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_name: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ComputePoolStatus {
    /// `PROVISIONED` (Weir's pools are ready when created).
    pub phase: String,
    /// Task slots its statements hold now (one task is one CFU).
    pub current_cfu: i64,
}

/// The body of a create or update: `{"spec": {...}}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ComputePoolRequest {
    pub spec: ComputePoolSpec,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ComputePoolList {
    pub api_version: String,
    pub kind: String,
    pub data: Vec<ComputePool>,
}

/// How the autoscaler sizes a pool's statements. Every field has a default
/// (documented on it); a pool stores only what was set.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AutoscalerSettings {
    /// The share of a task's busy capacity the autoscaler plans to use,
    /// leaving the rest for bursts: in (0, 1]. Default 0.7.
    pub target_utilization: f64,
    /// How soon a statement should have worked off its lag, in seconds.
    /// Default 120.
    pub catch_up_seconds: f64,
    /// How long a lower parallelism must be recommended before it is
    /// applied, in seconds (the highest recommendation in this period is
    /// the one taken). Default 300.
    pub stabilization_seconds: f64,
    /// The most one scale-down may remove, as a share of the current
    /// parallelism: in (0, 1]. Default 0.5 (at most halve per step).
    pub max_scale_down: f64,
    /// Metrics from this long after a rescale are ignored (tasks restoring
    /// state and catching up are not a steady state), in seconds.
    /// Default 30.
    pub rescale_grace_seconds: f64,
    /// How far back the metrics window reaches, in seconds. Default 60.
    pub window_seconds: f64,
    /// How often statements are evaluated, in seconds. Default 10.
    pub interval_seconds: f64,
    /// How long a rescale pauses a statement, in seconds: the input that
    /// arrives meanwhile is planned for. Default 5.
    pub rescale_pause_seconds: f64,
}

impl Default for AutoscalerSettings {
    fn default() -> Self {
        AutoscalerSettings {
            target_utilization: 0.7,
            catch_up_seconds: 120.0,
            stabilization_seconds: 300.0,
            max_scale_down: 0.5,
            rescale_grace_seconds: 30.0,
            window_seconds: 60.0,
            interval_seconds: 10.0,
            rescale_pause_seconds: 5.0,
        }
    }
}

impl AutoscalerSettings {
    /// `Err` names the first setting out of range, and its range.
    pub fn validate(&self) -> Result<(), String> {
        // (name, value, may be zero, most)
        let checks = [
            ("target_utilization", self.target_utilization, false, 1.0),
            ("catch_up_seconds", self.catch_up_seconds, false, 86_400.0),
            (
                "stabilization_seconds",
                self.stabilization_seconds,
                true,
                86_400.0,
            ),
            ("max_scale_down", self.max_scale_down, false, 1.0),
            (
                "rescale_grace_seconds",
                self.rescale_grace_seconds,
                true,
                3_600.0,
            ),
            ("window_seconds", self.window_seconds, false, 3_600.0),
            ("interval_seconds", self.interval_seconds, false, 3_600.0),
            (
                "rescale_pause_seconds",
                self.rescale_pause_seconds,
                true,
                3_600.0,
            ),
        ];
        for (name, v, zero, most) in checks {
            let low_ok = if zero { v >= 0.0 } else { v > 0.0 };
            if !v.is_finite() || !low_ok || v > most {
                let low = if zero { "at least 0" } else { "more than 0" };
                return Err(format!(
                    "autoscaler.{name} is {v}; it must be {low} and at most {most}"
                ));
            }
        }
        Ok(())
    }
}

/// One bucket of usage: CFU-minutes used in `[start, end)`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct UsageBucket {
    pub start: String,
    pub end: String,
    pub environment: String,
    pub compute_pool: String,
    /// Empty when the query groups by pool only.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub statement: String,
    pub cfu_minutes: i64,
    pub cfu_hours: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct UsageList {
    pub api_version: String,
    pub kind: String,
    pub granularity: String,
    pub start: String,
    pub end: String,
    pub total_cfu_minutes: i64,
    pub data: Vec<UsageBucket>,
}

/// Where a statement stands with the autoscaler.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ScalingState {
    /// Its parallelism meets its input.
    #[default]
    Ok,
    /// It needs more tasks: a rescale up is being applied.
    PendingScaleUp,
    /// It has more tasks than it needs: they are removed once the lower
    /// figure has held for the stabilization period.
    PendingScaleDown,
    /// It needs more tasks than its pool's `max_cfu` leaves it; it keeps
    /// running at what it has.
    PoolExhausted,
}

/// One decision of the autoscaler for one stage, with what it saw.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ScalingDecision {
    /// When it was made (RFC 3339); empty before it is recorded.
    #[serde(default)]
    pub at: String,
    pub stage: String,
    /// Tasks before and after.
    pub from: u32,
    pub to: u32,
    /// What the metrics alone ask for (before stabilization and limits).
    pub recommended: u32,
    pub state: ScalingState,
    /// In words a user reads.
    pub reason: String,
    /// Records per second arriving at the stage.
    pub input_rate: f64,
    /// Records behind; `None`: unknown.
    pub lag: Option<f64>,
    /// How fast the lag grows (negative: shrinks), records per second.
    pub lag_trend: Option<f64>,
    /// Records the busiest task processes per second of busy time.
    pub true_rate: Option<f64>,
    /// Records per second the stage must process to keep up and catch up.
    pub required_rate: Option<f64>,
    /// Records per second its `from` tasks can process (the busiest task's
    /// rate, times the tasks' worth its partitions give).
    #[serde(default)]
    pub capacity: Option<f64>,
}

/// Where a statement stands with the autoscaler.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ScalingStatus {
    pub state: ScalingState,
    /// `AUTO` (the autoscaler sizes it), `PINNED` (`'sql.parallelism'` is a
    /// number) or `FIXED` (it runs as one task; `detail` says why).
    pub mode: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// Tasks per stage (`source`, and the keyed operator's stage).
    #[serde(default)]
    pub parallelism: std::collections::BTreeMap<String, u32>,
    /// Records in its input not read yet (over the partitions where that
    /// is known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_records: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_decision: Option<ScalingDecision>,
    /// Whether it runs in stages. A stateless statement starts as one task
    /// (exactly-once where the broker has transactions) and, once split,
    /// stays in stages (at-least-once).
    #[serde(default)]
    pub split: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ScalingEventList {
    pub api_version: String,
    pub kind: String,
    /// Newest first.
    pub data: Vec<ScalingDecision>,
}
