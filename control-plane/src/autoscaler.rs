//! The autoscaler's decision: a pure function from a window of one stage's
//! metrics, its limits and its recent history to the stage's parallelism
//! and the reason for it. Nothing here reads a clock or a store, so that it
//! is tested apart from any process (unit and property tests below).
//!
//! The model follows the Flink Kubernetes Operator's autoscaler
//! (FLIP-271), with these differences:
//! - capacity is taken from the *busiest* task's records per busy second
//!   (not an average, and not CPU), so skew and idle time do not fool it;
//! - the partitions of the stage's input bound the useful parallelism, and
//!   a count is sized by what its busiest task owns (`⌈partitions ÷ p⌉`),
//!   so counts that split the partitions evenly are preferred;
//! - lag that cannot be measured is unknown, never lag;
//! - a scale-down waits for a full stabilization period, takes the highest
//!   recommendation of that period, never happens while lag drains, and
//!   is capped per step; a scale-up happens at once, by whatever factor.

use weir_api::{AutoscalerSettings, ScalingDecision, ScalingState};

/// One sample of a stage's metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Seconds on the caller's clock.
    pub at: f64,
    /// Records per second arriving at the stage's input.
    pub input_rate: f64,
    /// Records behind at the stage's input; `None`: unknown (a partition
    /// without a committed offset, records gone to retention).
    pub lag: Option<f64>,
    /// The busiest task's records processed per second of busy time;
    /// `None`: no task was busy.
    pub true_rate: Option<f64>,
}

/// The stage being decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub name: String,
    /// Its tasks now (at least 1).
    pub current: u32,
    /// The partitions of its input, which bound its useful parallelism;
    /// 0: unknown (no bound).
    pub partitions: u32,
    /// Task slots its pool has free beyond what the stage holds.
    pub free_slots: u32,
    /// A parallelism the user pinned; the autoscaler leaves it alone.
    pub pinned: Option<u32>,
}

/// What the autoscaler remembers of a stage between decisions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// When its parallelism last changed (or the statement started).
    pub last_rescale: Option<f64>,
    /// Earlier recommendations `(at, parallelism)`, oldest first.
    pub recommendations: Vec<(f64, u32)>,
    /// Its last scale-up, to tell whether it helped.
    pub last_scale_up: Option<ScaleUp>,
}

/// A scale-up and what the stage could do before it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaleUp {
    pub from: u32,
    pub to: u32,
    /// Records per second the `from` tasks could process.
    pub capacity: f64,
    /// Records per second arriving then.
    pub input_rate: f64,
}

/// A scale-up counts as effective when it brought at least this share of
/// the capacity it promised. Tasks that share a bottleneck (the cores of
/// an oversubscribed worker, a cost per batch, the broker) each go slower
/// as more of them run: measured per task, such a stage looks as if it
/// needs ever more tasks, and only this check stops it.
const EFFECTIVE_SHARE: f64 = 0.5;
/// After an ineffective scale-up, the stage scales up again only once its
/// input has grown by this factor.
const REGROWTH: f64 = 1.5;

/// Lag shrinking faster than this share of the input rate (or 1 record/s)
/// counts as being drained.
const DRAINING: f64 = 0.01;

/// Decides one stage's parallelism at `now`.
pub fn decide(
    now: f64,
    stage: &Stage,
    window: &[Sample],
    history: &History,
    s: &AutoscalerSettings,
) -> ScalingDecision {
    let current = stage.current.max(1);
    let mut d = ScalingDecision {
        at: String::new(),
        stage: stage.name.clone(),
        from: current,
        to: current,
        recommended: current,
        state: ScalingState::Ok,
        reason: String::new(),
        input_rate: 0.0,
        lag: None,
        lag_trend: None,
        true_rate: None,
        required_rate: None,
        capacity: None,
    };
    if let Some(p) = stage.pinned {
        d.to = p.max(1);
        d.recommended = d.to;
        d.reason = format!("parallelism pinned to {} by 'sql.parallelism'", d.to);
        return d;
    }
    let settled = history
        .last_rescale
        .map_or(f64::NEG_INFINITY, |t| t + s.rescale_grace_seconds);
    let usable: Vec<&Sample> = window
        .iter()
        .filter(|x| x.at >= now - s.window_seconds && x.at >= settled && x.at <= now)
        .collect();
    if usable.len() < 2 {
        d.reason = if settled > now - s.window_seconds && settled > now {
            format!(
                "waiting {} for metrics after the last rescale",
                fmt_secs(settled - now)
            )
        } else {
            "collecting metrics".to_string()
        };
        return d;
    }
    let input_rate =
        usable.iter().map(|x| x.input_rate.max(0.0)).sum::<f64>() / usable.len() as f64;
    let lag = usable.iter().rev().find_map(|x| x.lag).map(|l| l.max(0.0));
    let lag_trend = trend(usable.iter().filter_map(|x| x.lag.map(|l| (x.at, l))));
    let rates: Vec<f64> = usable
        .iter()
        .filter_map(|x| x.true_rate)
        .filter(|r| r.is_finite() && *r > 0.0)
        .collect();
    let true_rate = (!rates.is_empty()).then(|| rates.iter().sum::<f64>() / rates.len() as f64);
    d.input_rate = input_rate;
    d.lag = lag;
    d.lag_trend = lag_trend;
    d.true_rate = true_rate;

    let required = lag.unwrap_or(0.0) / s.catch_up_seconds
        + input_rate / s.target_utilization
        + input_rate * s.rescale_pause_seconds / s.catch_up_seconds;
    d.required_rate = Some(required);
    let lag_words = describe_lag(lag, lag_trend);
    d.capacity = true_rate.map(|r| r * effective(current, stage.partitions));
    let (recommended, capped_by_partitions) = if required <= 0.0 {
        (1, false)
    } else if let Some(rate) = true_rate {
        smallest_meeting(required / rate, stage.partitions)
    } else {
        d.reason = format!("{lag_words}; no task reported busy time yet, keeping {current}");
        return d;
    };
    d.recommended = recommended;
    let need_words = match true_rate {
        Some(r) => format!(
            "{lag_words}, input {}/s; a task processes {}/s busy",
            count(input_rate),
            count(r)
        ),
        None => format!("{lag_words}, no input"),
    };

    if recommended > current {
        if let (Some(up), Some(now_capacity)) = (history.last_scale_up, d.capacity) {
            let promised = up.capacity * effective(up.to, stage.partitions)
                / effective(up.from, stage.partitions);
            let gained = now_capacity - up.capacity;
            if up.to == current
                && gained < EFFECTIVE_SHARE * (promised - up.capacity)
                && input_rate < REGROWTH * up.input_rate
            {
                d.reason = format!(
                    "{need_words}; would need {recommended}, but the last scale-up ({} → {}) raised capacity from {}/s to {}/s of the {}/s it promised: keeping {current} until the input grows",
                    up.from,
                    up.to,
                    count(up.capacity),
                    count(now_capacity),
                    count(promised)
                );
                return d;
            }
        }
        let allowed = current.saturating_add(stage.free_slots);
        if recommended > allowed {
            d.to = allowed.max(current);
            d.state = ScalingState::PoolExhausted;
            d.reason = format!(
                "{need_words}; needs {recommended} tasks but the pool's max_cfu leaves room for {}, keeping {}",
                allowed,
                d.to
            );
            if d.to > current {
                d.reason = format!(
                    "{need_words}; needs {recommended} tasks, the pool's max_cfu allows {}: {current} → {}",
                    allowed, d.to
                );
            }
            return d;
        }
        d.to = recommended;
        d.state = ScalingState::PendingScaleUp;
        d.reason = format!(
            "{need_words}; {current} → {recommended} tasks to keep up and catch up within {}",
            fmt_secs(s.catch_up_seconds)
        );
        if capped_by_partitions {
            d.reason
                .push_str(" (its input's partition count; more tasks would idle)");
        }
        return d;
    }
    if recommended == current {
        d.reason = format!("{need_words}; {current} tasks fit");
        return d;
    }

    // A scale-down: only after a full stabilization period, from its
    // highest recommendation, never while lag drains, capped per step.
    d.state = ScalingState::PendingScaleDown;
    if let (Some(t), Some(l)) = (lag_trend, lag) {
        if l > 0.0 && t < -(DRAINING * input_rate).max(1.0) {
            d.reason = format!("{need_words}; would need {recommended}, but lag is being drained: keeping {current}");
            return d;
        }
    }
    let since = now - s.stabilization_seconds;
    let observed_from = history
        .recommendations
        .first()
        .map_or(now, |(t, _)| *t)
        .max(history.last_rescale.unwrap_or(f64::NEG_INFINITY));
    if observed_from > since {
        d.reason = format!(
            "{need_words}; would need {recommended}, scaling down once that holds for {}",
            fmt_secs(s.stabilization_seconds)
        );
        return d;
    }
    let highest = history
        .recommendations
        .iter()
        .filter(|(t, _)| *t >= since)
        .map(|(_, p)| *p)
        .chain([recommended])
        .max()
        .unwrap_or(recommended);
    if highest >= current {
        d.reason = format!(
            "{need_words}; would need {recommended}, but {highest} was needed within the last {}",
            fmt_secs(s.stabilization_seconds)
        );
        return d;
    }
    let floor = ((current as f64) * (1.0 - s.max_scale_down))
        .ceil()
        .max(1.0) as u32;
    let to = even(highest.max(floor), stage.partitions).max(floor);
    if to >= current {
        d.reason = format!("{need_words}; {current} tasks fit");
        d.state = ScalingState::Ok;
        return d;
    }
    d.to = to;
    d.reason = format!(
        "{need_words}; {current} → {to} tasks, the most needed in the last {}",
        fmt_secs(s.stabilization_seconds)
    );
    if to > highest {
        d.reason.push_str(&format!(
            " (at most {}% fewer per step)",
            (s.max_scale_down * 100.0).round()
        ));
    }
    d
}

/// The smallest parallelism whose busiest task's share of the partitions
/// leaves capacity for `tasks` tasks' worth of work, and whether the
/// partition count capped it.
fn smallest_meeting(tasks: f64, partitions: u32) -> (u32, bool) {
    if !tasks.is_finite() {
        return (partitions.max(1), partitions > 0);
    }
    if partitions == 0 {
        return ((tasks.ceil().max(1.0)).min(u32::MAX as f64) as u32, false);
    }
    for p in 1..=partitions {
        if effective(p, partitions) >= tasks - 1e-9 {
            return (p, false);
        }
    }
    (partitions, true)
}

/// How many tasks' worth of input `p` tasks keep up with when the busiest
/// owns ⌈partitions ÷ p⌉ equally loaded partitions.
fn effective(p: u32, partitions: u32) -> f64 {
    if partitions == 0 {
        return p as f64;
    }
    let busiest = partitions.div_ceil(p.max(1));
    partitions as f64 / busiest as f64
}

/// The fewest tasks as effective as `p` (those that split the partitions
/// as evenly).
fn even(p: u32, partitions: u32) -> u32 {
    if partitions == 0 || p >= partitions {
        return p.max(1);
    }
    partitions.div_ceil(partitions.div_ceil(p.max(1)))
}

/// The least-squares slope of `(at, value)` points, per second.
fn trend(points: impl Iterator<Item = (f64, f64)>) -> Option<f64> {
    let pts: Vec<(f64, f64)> = points.collect();
    if pts.len() < 2 {
        return None;
    }
    let n = pts.len() as f64;
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let var = pts.iter().map(|p| (p.0 - mx).powi(2)).sum::<f64>();
    if var <= 0.0 {
        return None;
    }
    Some(pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>() / var)
}

fn describe_lag(lag: Option<f64>, trend: Option<f64>) -> String {
    match (lag, trend) {
        (None, _) => "lag unknown".to_string(),
        (Some(l), Some(t)) if t.abs() >= 1.0 => format!(
            "lag {} records and {} {}/s",
            count(l),
            if t > 0.0 { "growing" } else { "shrinking" },
            count(t.abs())
        ),
        (Some(l), _) => format!("lag {} records", count(l)),
    }
}

/// 1234567 → "1.2 M", 40000 → "40 k".
fn count(v: f64) -> String {
    let a = v.abs();
    let (x, unit) = if a >= 1e9 {
        (v / 1e9, " G")
    } else if a >= 1e6 {
        (v / 1e6, " M")
    } else if a >= 1e3 {
        (v / 1e3, " k")
    } else {
        (v, "")
    };
    if x.abs() >= 10.0 || unit.is_empty() {
        format!("{x:.0}{unit}")
    } else {
        format!("{x:.1}{unit}")
    }
}

fn fmt_secs(s: f64) -> String {
    if s >= 120.0 && (s % 60.0).abs() < 1e-9 {
        format!("{} min", s / 60.0)
    } else {
        format!("{s:.0} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn settings() -> AutoscalerSettings {
        AutoscalerSettings {
            target_utilization: 0.7,
            catch_up_seconds: 120.0,
            stabilization_seconds: 60.0,
            max_scale_down: 0.5,
            rescale_grace_seconds: 10.0,
            window_seconds: 30.0,
            interval_seconds: 5.0,
            rescale_pause_seconds: 5.0,
        }
    }

    fn stage(current: u32, partitions: u32) -> Stage {
        Stage {
            name: "source".into(),
            current,
            partitions,
            free_slots: 100,
            pinned: None,
        }
    }

    /// Samples every 5 s over the 30 s before `now`.
    fn steady(now: f64, input: f64, lag: Option<(f64, f64)>, rate: Option<f64>) -> Vec<Sample> {
        (0..7)
            .map(|i| {
                let at = now - 30.0 + 5.0 * i as f64;
                Sample {
                    at,
                    input_rate: input,
                    lag: lag.map(|(l, slope)| (l + slope * (at - now)).max(0.0)),
                    true_rate: rate,
                }
            })
            .collect()
    }

    fn settled() -> History {
        History {
            last_rescale: Some(0.0),
            ..Default::default()
        }
    }

    #[test]
    fn the_reason_says_what_it_saw_in_words() {
        // 1.2 M behind and growing 3 k/s, 30 k/s arriving, a task does
        // 40 k/s busy: 1.2 M / 120 + 30 k / 0.7 + 30 k × 5 / 120 = 54.1 k/s,
        // 1.35 tasks' worth: 2 tasks.
        let w = steady(1000.0, 30_000.0, Some((1.2e6, 3_000.0)), Some(40_000.0));
        let d = decide(1000.0, &stage(1, 12), &w, &settled(), &settings());
        let required = d.required_rate.unwrap();
        assert!((required - (1.2e6 / 120.0 + 30_000.0 / 0.7 + 30_000.0 * 5.0 / 120.0)).abs() < 1.0);
        assert_eq!((d.to, d.state), (2, ScalingState::PendingScaleUp));
        assert_eq!(
            d.reason,
            "lag 1.2 M records and growing 3.0 k/s, input 30 k/s; a task processes 40 k/s busy; \
             1 → 2 tasks to keep up and catch up within 2 min"
        );
    }

    #[test]
    fn a_four_fold_load_is_met_in_one_step_with_an_even_split() {
        // A task does 10 k/s busy; input 4 × 7 k/s = 28 k/s and lag of
        // 600 k growing.
        let w = steady(500.0, 28_000.0, Some((600_000.0, 20_000.0)), Some(10_000.0));
        let d = decide(500.0, &stage(1, 12), &w, &settled(), &settings());
        // 600 k / 120 + 28 k / 0.7 + 28 k × 5 / 120 = 5 k + 40 k + 1.17 k
        // = 46.2 k/s: 4.62 tasks' worth; 5 tasks would leave a task with 3
        // partitions (4 tasks' worth), 6 split 12 evenly.
        assert_eq!(d.to, 6, "{}", d.reason);
        assert_eq!(d.state, ScalingState::PendingScaleUp);
        assert!(d.reason.contains("1 → 6 tasks"), "{}", d.reason);
    }

    #[test]
    fn an_idle_statement_goes_down_to_one_task_after_stabilization() {
        let s = settings();
        let w = steady(1000.0, 0.0, Some((0.0, 0.0)), None);
        let h = History {
            last_rescale: Some(0.0),
            recommendations: (0..20).map(|i| (880.0 + 5.0 * i as f64, 1)).collect(),
            ..Default::default()
        };
        let d = decide(1000.0, &stage(4, 12), &w, &h, &s);
        // At most half per step.
        assert_eq!(d.to, 2, "{}", d.reason);
        assert_eq!(d.state, ScalingState::PendingScaleDown);
        let d = decide(1000.0, &stage(2, 12), &w, &h, &s);
        assert_eq!(d.to, 1, "{}", d.reason);
    }

    #[test]
    fn a_scale_down_waits_for_the_stabilization_period() {
        let s = settings();
        let w = steady(1000.0, 100.0, Some((0.0, 0.0)), Some(10_000.0));
        // Watched for 20 s only.
        let h = History {
            last_rescale: Some(980.0 - s.rescale_grace_seconds),
            recommendations: vec![(985.0, 1), (990.0, 1)],
            ..Default::default()
        };
        let d = decide(1000.0, &stage(4, 12), &w, &h, &s);
        assert_eq!(d.to, 4, "{}", d.reason);
        assert_eq!(d.state, ScalingState::PendingScaleDown);
        assert!(d.reason.contains("once that holds"), "{}", d.reason);
    }

    #[test]
    fn a_scale_down_takes_the_highest_recommendation_of_the_period() {
        let s = settings();
        let w = steady(1000.0, 100.0, Some((0.0, 0.0)), Some(10_000.0));
        let h = History {
            last_rescale: Some(0.0),
            recommendations: vec![(900.0, 1), (950.0, 3), (990.0, 1)],
            ..Default::default()
        };
        let d = decide(1000.0, &stage(6, 12), &w, &h, &s);
        assert_eq!(d.to, 3, "{}", d.reason);
    }

    #[test]
    fn no_scale_down_while_lag_is_drained() {
        let s = settings();
        // Lag 50 k shrinking 5 k/s with light input.
        let w = steady(1000.0, 1_000.0, Some((50_000.0, -5_000.0)), Some(100_000.0));
        let h = History {
            last_rescale: Some(0.0),
            recommendations: (0..30).map(|i| (850.0 + 5.0 * i as f64, 1)).collect(),
            ..Default::default()
        };
        let d = decide(1000.0, &stage(4, 12), &w, &h, &s);
        assert_eq!(d.to, 4, "{}", d.reason);
        assert!(d.reason.contains("being drained"), "{}", d.reason);
    }

    #[test]
    fn a_full_pool_keeps_what_it_has_and_says_so() {
        let w = steady(500.0, 50_000.0, Some((1e6, 10_000.0)), Some(10_000.0));
        let mut st = stage(2, 12);
        st.free_slots = 0;
        let d = decide(500.0, &st, &w, &settled(), &settings());
        assert_eq!(d.to, 2);
        assert_eq!(d.state, ScalingState::PoolExhausted);
        assert!(d.reason.contains("max_cfu"), "{}", d.reason);
        st.free_slots = 2;
        let d = decide(500.0, &st, &w, &settled(), &settings());
        assert_eq!(d.to, 4, "{}", d.reason);
        assert_eq!(d.state, ScalingState::PoolExhausted);
    }

    #[test]
    fn metrics_right_after_a_rescale_are_ignored() {
        let s = settings();
        let w = steady(100.0, 50_000.0, Some((1e6, 10_000.0)), Some(10_000.0));
        let h = History {
            last_rescale: Some(95.0),
            ..Default::default()
        };
        let d = decide(100.0, &stage(2, 12), &w, &h, &s);
        assert_eq!(d.to, 2);
        assert!(d.reason.contains("after the last rescale"), "{}", d.reason);
    }

    #[test]
    fn a_scale_up_that_brought_no_capacity_is_not_repeated_until_the_input_grows() {
        // 1 → 2 promised twice the 1.4 k/s; each task now does 700/s
        // busy: 1.4 k/s in all, nothing gained.
        let h = History {
            last_rescale: Some(0.0),
            last_scale_up: Some(ScaleUp {
                from: 1,
                to: 2,
                capacity: 1_400.0,
                input_rate: 300.0,
            }),
            ..Default::default()
        };
        let s = AutoscalerSettings {
            target_utilization: 0.2,
            ..settings()
        };
        let w = steady(500.0, 300.0, Some((0.0, 0.0)), Some(700.0));
        let d = decide(500.0, &stage(2, 12), &w, &h, &s);
        assert_eq!(d.to, 2, "{}", d.reason);
        assert!(
            d.reason.contains("the last scale-up (1 → 2)"),
            "{}",
            d.reason
        );
        // Four times the input: worth trying again.
        let w = steady(500.0, 1_200.0, Some((0.0, 0.0)), Some(700.0));
        let d = decide(500.0, &stage(2, 12), &w, &h, &s);
        assert!(d.to > 2, "{}", d.reason);
        // A scale-up that helped does not hold the next one back.
        let w = steady(500.0, 440.0, Some((100_000.0, 0.0)), Some(1_300.0));
        let d = decide(500.0, &stage(2, 12), &w, &h, &s);
        assert!(d.to > 2, "{}", d.reason);
    }

    #[test]
    fn a_pinned_parallelism_is_left_alone() {
        let w = steady(500.0, 50_000.0, Some((1e6, 10_000.0)), Some(10_000.0));
        let mut st = stage(2, 12);
        st.pinned = Some(2);
        let d = decide(500.0, &st, &w, &settled(), &settings());
        assert_eq!((d.to, d.state), (2, ScalingState::Ok));
    }

    #[test]
    fn the_partition_count_bounds_the_parallelism() {
        let w = steady(500.0, 1e6, Some((1e7, 1e4)), Some(1_000.0));
        let d = decide(500.0, &stage(1, 8), &w, &settled(), &settings());
        assert_eq!(d.to, 8);
        assert!(d.reason.contains("partition count"), "{}", d.reason);
    }

    fn arb_sample(now: f64) -> impl Strategy<Value = Sample> {
        (
            0.0..60.0f64,
            0.0..1e5f64,
            proptest::option::of(0.0..1e7f64),
            proptest::option::of(1.0..1e5f64),
        )
            .prop_map(move |(ago, input_rate, lag, true_rate)| Sample {
                at: now - ago,
                input_rate,
                lag,
                true_rate,
            })
    }

    fn arb_case() -> impl Strategy<Value = (Stage, Vec<Sample>, History, AutoscalerSettings)> {
        let now = 10_000.0;
        (
            1u32..40,
            0u32..64,
            0u32..40,
            proptest::collection::vec(arb_sample(now), 0..12),
            proptest::option::of(now - 2_000.0..now),
            proptest::collection::vec((now - 1_000.0..now, 1u32..40), 0..10),
            (0.1..1.0f64, 1.0..600.0f64, 0.0..600.0f64, 0.1..1.0f64),
        )
            .prop_map(
                move |(current, partitions, free, mut window, last, mut recs, (u, c, st, down))| {
                    window.sort_by(|a, b| a.at.total_cmp(&b.at));
                    recs.sort_by(|a, b| a.0.total_cmp(&b.0));
                    let s = AutoscalerSettings {
                        target_utilization: u,
                        catch_up_seconds: c,
                        stabilization_seconds: st,
                        max_scale_down: down,
                        rescale_grace_seconds: 10.0,
                        window_seconds: 60.0,
                        interval_seconds: 5.0,
                        rescale_pause_seconds: 5.0,
                    };
                    let stage = Stage {
                        name: "s".into(),
                        current,
                        partitions,
                        free_slots: free,
                        pinned: None,
                    };
                    let h = History {
                        last_rescale: last,
                        recommendations: recs,
                        last_scale_up: None,
                    };
                    (stage, window, h, s)
                },
            )
    }

    const NOW: f64 = 10_000.0;

    proptest! {
        #[test]
        fn stays_within_its_bounds((stage, w, h, s) in arb_case()) {
            let d = decide(NOW, &stage, &w, &h, &s);
            prop_assert!(d.to >= 1);
            if d.to > stage.current {
                prop_assert!(d.to <= stage.current + stage.free_slots, "{:?}", d);
                if stage.partitions > 0 {
                    prop_assert!(d.to <= stage.partitions, "{:?}", d);
                }
            }
        }

        #[test]
        fn a_scale_up_meets_the_required_rate_in_one_step((stage, w, h, s) in arb_case()) {
            let d = decide(NOW, &stage, &w, &h, &s);
            if d.to > stage.current && d.state == ScalingState::PendingScaleUp {
                let need = d.required_rate.unwrap() / d.true_rate.unwrap();
                let bounded = stage.partitions > 0 && d.to == stage.partitions;
                prop_assert!(bounded || effective(d.to, stage.partitions) >= need - 1e-6, "{:?}", d);
                // And not by more than needed: one task fewer would not do.
                if d.to > 1 {
                    prop_assert!(effective(d.to - 1, stage.partitions) < need + 1e-6, "{:?}", d);
                }
            }
        }

        #[test]
        fn a_scale_down_is_stable_capped_and_never_while_draining((stage, w, h, s) in arb_case()) {
            let d = decide(NOW, &stage, &w, &h, &s);
            if d.to < stage.current {
                let floor = ((stage.current as f64) * (1.0 - s.max_scale_down)).ceil().max(1.0) as u32;
                prop_assert!(d.to >= floor, "{:?}", d);
                for (t, p) in &h.recommendations {
                    if *t >= NOW - s.stabilization_seconds {
                        prop_assert!(d.to >= *p || effective(d.to, stage.partitions) >= effective(*p, stage.partitions), "{:?} {:?}", d, h);
                    }
                }
                prop_assert!(h.last_rescale.unwrap_or(f64::NEG_INFINITY) <= NOW - s.stabilization_seconds);
                if let (Some(t), Some(l)) = (d.lag_trend, d.lag) {
                    prop_assert!(!(l > 0.0 && t < -(DRAINING * d.input_rate).max(1.0)), "{:?}", d);
                }
            }
        }

        #[test]
        fn more_lag_never_asks_for_fewer_tasks((stage, w, h, s) in arb_case(), extra in 0.0..1e7f64) {
            let more: Vec<Sample> = w.iter().map(|x| Sample { lag: x.lag.map(|l| l + extra), ..*x }).collect();
            let a = decide(NOW, &stage, &w, &h, &s);
            let b = decide(NOW, &stage, &more, &h, &s);
            prop_assert!(b.recommended >= a.recommended, "{:?}\n{:?}", a, b);
        }

        #[test]
        fn unknown_lag_is_not_counted_as_lag((stage, w, h, s) in arb_case()) {
            let unknown: Vec<Sample> = w.iter().map(|x| Sample { lag: None, ..*x }).collect();
            let known = decide(NOW, &stage, &w, &h, &s);
            let d = decide(NOW, &stage, &unknown, &h, &s);
            prop_assert!(d.recommended <= known.recommended.max(stage.current), "{:?}\n{:?}", d, known);
            prop_assert_eq!(d.lag, None);
        }

        #[test]
        fn samples_from_the_grace_period_change_nothing((stage, w, h, s) in arb_case(), noise in proptest::collection::vec(arb_sample(NOW), 0..5)) {
            let Some(last) = h.last_rescale else { return Ok(()) };
            let grace_end = last + s.rescale_grace_seconds;
            let mut mixed = w.clone();
            mixed.extend(noise.into_iter().map(|x| Sample { at: last + (x.at - (NOW - 60.0)).abs() % s.rescale_grace_seconds.max(1e-3), ..x }).filter(|x| x.at < grace_end));
            mixed.sort_by(|a, b| a.at.total_cmp(&b.at));
            let a = decide(NOW, &stage, &w, &h, &s);
            let b = decide(NOW, &stage, &mixed, &h, &s);
            prop_assert_eq!(a.to, b.to);
            prop_assert_eq!(a.recommended, b.recommended);
        }
    }
}
