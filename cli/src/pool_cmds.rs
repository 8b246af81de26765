//! `weir compute-pool ...` and `weir usage`.

use anyhow::bail;
use weir_api::{AutoscalerSettings, ComputePool, ComputePoolRequest, ComputePoolSpec};

use crate::client_cmds::Conn;

/// Autoscaler settings a command may set; unset ones keep their value.
#[derive(clap::Args, Default)]
pub struct AutoscalerArgs {
    /// Share of a task's busy capacity to plan for, in (0, 1] (default 0.7).
    #[arg(long)]
    target_utilization: Option<f64>,
    /// Seconds within which lag should be worked off (default 120).
    #[arg(long)]
    catch_up_seconds: Option<f64>,
    /// Seconds a lower parallelism must be recommended before a scale-down
    /// (default 300).
    #[arg(long)]
    stabilization_seconds: Option<f64>,
    /// The most one scale-down removes, as a share of the tasks, in (0, 1]
    /// (default 0.5).
    #[arg(long)]
    max_scale_down: Option<f64>,
    /// Seconds of metrics ignored after a rescale (default 30).
    #[arg(long)]
    rescale_grace_seconds: Option<f64>,
    /// Seconds of metrics a decision looks at (default 60).
    #[arg(long)]
    window_seconds: Option<f64>,
    /// Seconds between decisions (default 10).
    #[arg(long)]
    interval_seconds: Option<f64>,
}

impl AutoscalerArgs {
    fn apply(&self, base: AutoscalerSettings) -> Option<AutoscalerSettings> {
        let mut s = base;
        let mut any = false;
        for (v, field) in [
            (self.target_utilization, &mut s.target_utilization),
            (self.catch_up_seconds, &mut s.catch_up_seconds),
            (self.stabilization_seconds, &mut s.stabilization_seconds),
            (self.max_scale_down, &mut s.max_scale_down),
            (self.rescale_grace_seconds, &mut s.rescale_grace_seconds),
            (self.window_seconds, &mut s.window_seconds),
            (self.interval_seconds, &mut s.interval_seconds),
        ] {
            if let Some(v) = v {
                *field = v;
                any = true;
            }
        }
        any.then_some(s)
    }
}

#[derive(clap::Subcommand)]
pub enum PoolCmd {
    /// Create a compute pool in the environment.
    Create {
        /// Its display name.
        name: String,
        /// The most CFUs (task slots) its statements may hold at once.
        #[arg(long)]
        max_cfu: i64,
        #[command(flatten)]
        autoscaler: AutoscalerArgs,
        #[command(flatten)]
        conn: Conn,
    },
    /// List the environment's compute pools.
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Show one compute pool.
    Describe {
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Change a pool's name, max_cfu or autoscaler settings (while its
    /// statements run).
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        max_cfu: Option<i64>,
        #[command(flatten)]
        autoscaler: AutoscalerArgs,
        #[command(flatten)]
        conn: Conn,
    },
    /// Delete a pool that runs no statement.
    Delete {
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
}

fn line(p: &ComputePool) -> String {
    format!(
        "{:<18} {:<20} {:<12} {:>3} / {:<4} CFU",
        p.id,
        p.spec.display_name.as_deref().unwrap_or(""),
        p.status.phase,
        p.status.current_cfu,
        p.spec.max_cfu.unwrap_or(0),
    )
}

fn describe(p: &ComputePool) {
    println!("{}", line(p));
    if let Some(a) = &p.spec.autoscaler {
        println!(
            "autoscaler: target utilization {}, catch up within {} s, scale down after {} s stable, by at most {}%",
            a.target_utilization,
            a.catch_up_seconds,
            a.stabilization_seconds,
            a.max_scale_down * 100.0
        );
    }
}

pub async fn compute_pool(cmd: PoolCmd) -> anyhow::Result<()> {
    match cmd {
        PoolCmd::Create {
            name,
            max_cfu,
            autoscaler,
            conn,
        } => {
            let req = ComputePoolRequest {
                spec: ComputePoolSpec {
                    display_name: Some(name),
                    max_cfu: Some(max_cfu),
                    autoscaler: autoscaler.apply(AutoscalerSettings::default()),
                    ..Default::default()
                },
            };
            let p = conn.client()?.create_pool(&req).await?;
            conn.print(&p, || describe(&p))
        }
        PoolCmd::List { conn } => {
            let l = conn.client()?.list_pools().await?;
            conn.print(&l.data, || {
                l.data.iter().for_each(|p| println!("{}", line(p)))
            })
        }
        PoolCmd::Describe { id, conn } => {
            let p = conn.client()?.get_pool(&id).await?;
            conn.print(&p, || describe(&p))
        }
        PoolCmd::Update {
            id,
            name,
            max_cfu,
            autoscaler,
            conn,
        } => {
            let client = conn.client()?;
            let current = client.get_pool(&id).await?;
            let settings = autoscaler.apply(current.spec.autoscaler.unwrap_or_default());
            if name.is_none() && max_cfu.is_none() && settings.is_none() {
                bail!("nothing to change: pass --name, --max-cfu or an autoscaler setting");
            }
            let req = ComputePoolRequest {
                spec: ComputePoolSpec {
                    display_name: name,
                    max_cfu,
                    autoscaler: settings,
                    ..Default::default()
                },
            };
            let p = client.update_pool(&id, &req).await?;
            conn.print(&p, || describe(&p))
        }
        PoolCmd::Delete { id, conn } => {
            conn.client()?.delete_pool(&id).await?;
            println!("Deleted {id}");
            Ok(())
        }
    }
}

#[derive(clap::Args)]
pub struct UsageArgs {
    /// The range's start (RFC 3339 or YYYY-MM-DD), inclusive.
    #[arg(long)]
    start: String,
    /// The range's end (RFC 3339 or YYYY-MM-DD), exclusive.
    #[arg(long)]
    end: String,
    /// MINUTE, HOURLY or DAILY.
    #[arg(long, default_value = "HOURLY")]
    granularity: String,
    /// Only this pool's usage.
    #[arg(long)]
    compute_pool: Option<String>,
    /// Only this statement's usage.
    #[arg(long)]
    statement: Option<String>,
    /// Break usage down per statement, not only per pool.
    #[arg(long)]
    by_statement: bool,
    /// Only the environment of --env (else every environment).
    #[arg(long)]
    this_env_only: bool,
    #[command(flatten)]
    conn: Conn,
}

pub async fn usage(a: UsageArgs) -> anyhow::Result<()> {
    let client = a.conn.client()?;
    let mut q: Vec<(&str, &str)> = vec![
        ("start", &a.start),
        ("end", &a.end),
        ("granularity", &a.granularity),
    ];
    if let Some(p) = &a.compute_pool {
        q.push(("compute_pool", p));
    }
    if let Some(s) = &a.statement {
        q.push(("statement", s));
    }
    if a.by_statement {
        q.push(("group_by", "statement"));
    }
    let env = client.env().to_string();
    if a.this_env_only || a.statement.is_some() {
        q.push(("environment", &env));
    }
    let u = client.usage(&q).await?;
    a.conn.print(&u, || {
        for b in &u.data {
            println!(
                "{}  {:<10} {:<18} {:<28} {:>8.3} CFU-hours",
                b.start, b.environment, b.compute_pool, b.statement, b.cfu_hours
            );
        }
        println!(
            "total: {:.3} CFU-hours ({} CFU-minutes)",
            u.total_cfu_minutes as f64 / 60.0,
            u.total_cfu_minutes
        );
    })
}
