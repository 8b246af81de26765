//! Client commands: settings come from flags, then the environment
//! (`WEIR_URL`, `WEIR_API_KEY`, `WEIR_API_SECRET`, `WEIR_ORG`, `WEIR_ENV`,
//! `WEIR_COMPUTE_POOL`), then the file `weir login` writes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use weir_api::{Client, CreateStatementRequest, Credentials, Phase, Statement, StatementSpec};

#[derive(clap::Args, Clone, Default)]
pub struct Conn {
    /// The API URL (else $WEIR_URL, else what `weir login` saved).
    #[arg(long, global = true)]
    url: Option<String>,
    /// The API key (else $WEIR_API_KEY, else `weir login`'s).
    #[arg(long, global = true)]
    api_key: Option<String>,
    /// The API secret (else $WEIR_API_SECRET, else `weir login`'s).
    #[arg(long, global = true)]
    api_secret: Option<String>,
    /// The organization (else $WEIR_ORG, else `weir login`'s).
    #[arg(long, global = true)]
    org: Option<String>,
    /// The environment, the SQL catalog (else $WEIR_ENV, else `weir login`'s).
    #[arg(long, global = true)]
    env: Option<String>,
    /// An OAuth bearer token from the organization's identity provider,
    /// used instead of an API key (else $WEIR_TOKEN).
    #[arg(long, global = true)]
    token: Option<String>,
    /// The identity pool to act as, when several admit the token (else
    /// $WEIR_IDENTITY_POOL).
    #[arg(long, global = true)]
    identity_pool: Option<String>,
    /// human, json or yaml.
    #[arg(long, global = true, default_value = "human")]
    output: String,
}

#[derive(Serialize, Deserialize, Default)]
struct Saved {
    url: Option<String>,
    api_key: Option<String>,
    api_secret: Option<String>,
    org: Option<String>,
    env: Option<String>,
    compute_pool: Option<String>,
}

/// Where `weir login` saves settings and `weir shell` its history:
/// `$WEIR_CONFIG_DIR`, else `~/.config/weir`.
pub(crate) fn config_dir() -> PathBuf {
    std::env::var_os("WEIR_CONFIG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default()
                .join(".config/weir")
        })
}

fn config_path() -> PathBuf {
    config_dir().join("config.json")
}

fn saved() -> Saved {
    std::fs::read_to_string(config_path())
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

fn pick(flag: &Option<String>, env: &str, file: &Option<String>) -> Option<String> {
    flag.clone()
        .or_else(|| std::env::var(env).ok().filter(|v| !v.is_empty()))
        .or_else(|| file.clone())
}

impl Conn {
    pub(crate) fn client(&self) -> anyhow::Result<Client> {
        let s = saved();
        let url = pick(&self.url, "WEIR_URL", &s.url).context(
            "no API URL: pass --url, set WEIR_URL (source .weir/dev.env) or run `weir login`",
        )?;
        let org = pick(&self.org, "WEIR_ORG", &s.org)
            .context("no organization: pass --org or set WEIR_ORG")?;
        let env = pick(&self.env, "WEIR_ENV", &s.env)
            .context("no environment: pass --env or set WEIR_ENV")?;
        let key = pick(&self.api_key, "WEIR_API_KEY", &s.api_key);
        let secret = pick(&self.api_secret, "WEIR_API_SECRET", &s.api_secret);
        let creds = match (key, secret) {
            (Some(key), Some(secret)) => Some(Credentials { key, secret }),
            _ => None,
        };
        let client = Client::new(&url, &org, &env, creds);
        let env_var = |v: &str| std::env::var(v).ok().filter(|s| !s.is_empty());
        Ok(match self.token.clone().or_else(|| env_var("WEIR_TOKEN")) {
            Some(token) => client.with_bearer_token(weir_api::BearerToken {
                token,
                identity_pool: self
                    .identity_pool
                    .clone()
                    .or_else(|| env_var("WEIR_IDENTITY_POOL")),
            }),
            None => client,
        })
    }

    pub(crate) fn pool(&self) -> Option<String> {
        std::env::var("WEIR_COMPUTE_POOL")
            .ok()
            .filter(|v| !v.is_empty())
            .or(saved().compute_pool)
    }

    pub(crate) fn print<T: Serialize>(
        &self,
        value: &T,
        human: impl FnOnce(),
    ) -> anyhow::Result<()> {
        match self.output.as_str() {
            "json" => println!("{}", serde_json::to_string_pretty(value)?),
            "yaml" => print!("{}", serde_yaml::to_string(value)?),
            "human" => human(),
            other => bail!("--output {other}: use human, json or yaml"),
        }
        Ok(())
    }
}

#[derive(clap::Args)]
pub struct LoginArgs {
    #[command(flatten)]
    conn: Conn,
    #[arg(long)]
    compute_pool: Option<String>,
}

pub fn login(a: LoginArgs) -> anyhow::Result<()> {
    let c = &a.conn;
    let s = Saved {
        url: pick(&c.url, "WEIR_URL", &None),
        api_key: pick(&c.api_key, "WEIR_API_KEY", &None),
        api_secret: pick(&c.api_secret, "WEIR_API_SECRET", &None),
        org: pick(&c.org, "WEIR_ORG", &None),
        env: pick(&c.env, "WEIR_ENV", &None),
        compute_pool: a
            .compute_pool
            .or_else(|| std::env::var("WEIR_COMPUTE_POOL").ok()),
    };
    if s.url.is_none() || s.api_key.is_none() || s.api_secret.is_none() {
        bail!("weir login needs --url, --api-key and --api-secret (or WEIR_URL, WEIR_API_KEY, WEIR_API_SECRET)");
    }
    let path = config_path();
    std::fs::create_dir_all(path.parent().unwrap())?;
    std::fs::write(&path, serde_json::to_string_pretty(&s)?)?;
    println!("Saved to {}", path.display());
    Ok(())
}

#[derive(clap::Subcommand)]
pub enum StatementCmd {
    /// Submit a statement.
    Create {
        /// The Flink SQL text.
        #[arg(long)]
        sql: String,
        /// A lowercase DNS-style name (default: generated).
        #[arg(long)]
        name: Option<String>,
        /// The compute pool to run on (else $WEIR_COMPUTE_POOL).
        #[arg(long)]
        compute_pool: Option<String>,
        /// `sql.current-database`: the Kafka cluster tables resolve in.
        #[arg(long)]
        database: Option<String>,
        /// key=value, repeatable.
        #[arg(long = "property", value_parser = parse_kv)]
        properties: Vec<(String, String)>,
        /// Wait until the statement is running or done.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// List the statements of the environment.
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Show one statement: spec, phase, schema, metrics.
    Describe {
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Print a statement's result rows (a changelog: +I, -U, +U, -D).
    Results {
        name: String,
        /// Keep reading until the statement ends.
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// The last ten errors of a statement.
    Exceptions {
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Stop a running statement (it can be resumed).
    Stop {
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Resume a stopped statement where it stopped.
    Resume {
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Change a statement's `'sql.parallelism'` (tasks per stage): it
    /// checkpoints, stops its tasks and starts the new number, each
    /// restoring the state of the repartition partitions it now owns.
    Rescale {
        name: String,
        /// Tasks per stage, from 1 to 256 (and within the pool's max_cfu).
        #[arg(long)]
        parallelism: u32,
        #[command(flatten)]
        conn: Conn,
    },
    /// The autoscaler's decisions for a statement, newest first, each
    /// with what it saw and why.
    ScalingEvents {
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Delete a statement.
    Delete {
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("'{s}' is not key=value"))
}

fn line(s: &Statement) -> String {
    format!(
        "{:<28} {:<10} {}",
        s.name,
        s.status.phase,
        s.spec.statement.replace('\n', " ")
    )
}

pub async fn statement(cmd: StatementCmd) -> anyhow::Result<()> {
    match cmd {
        StatementCmd::Create {
            sql,
            name,
            compute_pool,
            database,
            properties,
            wait,
            conn,
        } => {
            let client = conn.client()?;
            let mut props: BTreeMap<String, String> = properties.into_iter().collect();
            if let Some(d) = database {
                props.insert("sql.current-database".into(), d);
            }
            let req = CreateStatementRequest {
                metadata: None,
                name,
                spec: StatementSpec {
                    statement: sql,
                    compute_pool_id: compute_pool.or_else(|| conn.pool()),
                    properties: props,
                    ..Default::default()
                },
            };
            let mut s = client.create_statement(&req).await?;
            if wait {
                s = client
                    .wait_started(&s.name, Duration::from_secs(60))
                    .await?;
            }
            conn.print(&s, || println!("{}", line(&s)))
        }
        StatementCmd::List { conn } => {
            let client = conn.client()?;
            let mut all = vec![];
            let mut next: Option<String> = None;
            loop {
                let page = client.list_statements(next.as_deref()).await?;
                all.extend(page.data);
                if page.metadata.next.is_empty() {
                    break;
                }
                next = Some(page.metadata.next);
            }
            conn.print(&all, || all.iter().for_each(|s| println!("{}", line(s))))
        }
        StatementCmd::Describe { name, conn } => {
            let s = conn.client()?.get_statement(&name).await?;
            conn.print(&s, || {
                println!("{}", line(&s));
                if !s.status.detail.is_empty() {
                    println!("detail: {}", s.status.detail);
                }
                if let Some(sc) = &s.status.scaling {
                    let stages: Vec<String> = sc
                        .parallelism
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    println!(
                        "scaling: {} {:?} ({}){}",
                        sc.mode,
                        sc.state,
                        stages.join(", "),
                        sc.pending_records
                            .map(|p| format!(", {p} records behind"))
                            .unwrap_or_default()
                    );
                    if let Some(d) = &sc.last_decision {
                        println!("last decision: {}", d.reason);
                    }
                }
                for st in &s.status.stages {
                    let tasks: Vec<String> = st
                        .tasks
                        .iter()
                        .map(|t| {
                            format!(
                                "{} on {}",
                                t.task,
                                t.worker.as_deref().unwrap_or("(waiting)")
                            )
                        })
                        .collect();
                    println!(
                        "stage {} (parallelism {}): {}",
                        st.name,
                        st.parallelism,
                        tasks.join(", ")
                    );
                }
            })
        }
        StatementCmd::Results { name, follow, conn } => {
            let client = conn.client()?;
            print_results(&client, &name, follow, &conn).await
        }
        StatementCmd::Exceptions { name, conn } => {
            let e = conn.client()?.exceptions(&name).await?;
            conn.print(&e, || {
                e.data
                    .iter()
                    .for_each(|x| println!("{}  {}", x.timestamp, x.message))
            })
        }
        StatementCmd::Stop { name, conn } => set_stopped(&conn, &name, true).await,
        StatementCmd::Resume { name, conn } => set_stopped(&conn, &name, false).await,
        StatementCmd::Rescale {
            name,
            parallelism,
            conn,
        } => {
            let client = conn.client()?;
            let mut s = client.get_statement(&name).await?;
            s.spec
                .properties
                .insert("sql.parallelism".into(), parallelism.to_string());
            let s = client.update_statement(&s).await?;
            conn.print(&s, || println!("{}", line(&s)))
        }
        StatementCmd::ScalingEvents { name, conn } => {
            let e = conn.client()?.scaling_events(&name).await?;
            conn.print(&e, || {
                for d in &e.data {
                    println!(
                        "{}  {:<16} {} → {}  {:<18} {}",
                        d.at,
                        d.stage,
                        d.from,
                        d.to,
                        format!("{:?}", d.state),
                        d.reason
                    );
                }
            })
        }
        StatementCmd::Delete { name, conn } => {
            conn.client()?.delete_statement(&name).await?;
            println!("Deleted {name}");
            Ok(())
        }
    }
}

async fn set_stopped(conn: &Conn, name: &str, stopped: bool) -> anyhow::Result<()> {
    let client = conn.client()?;
    let mut s = client.get_statement(name).await?;
    s.spec.stopped = stopped;
    let s = client.update_statement(&s).await?;
    conn.print(&s, || println!("{}", line(&s)))
}

const OPS: [&str; 4] = ["+I", "-U", "+U", "-D"];

async fn print_results(
    client: &Client,
    name: &str,
    follow: bool,
    conn: &Conn,
) -> anyhow::Result<()> {
    let s = client.get_statement(name).await?;
    let cols: Vec<String> = s
        .status
        .traits
        .as_ref()
        .and_then(|t| t.schema.as_ref())
        .map(|sc| sc.columns.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default();
    if conn.output == "human" {
        println!("op | {}", cols.join(" | "));
    }
    let mut next: Option<String> = None;
    loop {
        let page = client.results(name, next.as_deref()).await?;
        for r in &page.results.data {
            if conn.output == "human" {
                let vals: Vec<String> = r
                    .row
                    .iter()
                    .map(|v| match v {
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Null => "NULL".into(),
                        v => v.to_string(),
                    })
                    .collect();
                println!(
                    "{} | {}",
                    OPS.get(r.op as usize).unwrap_or(&"?"),
                    vals.join(" | ")
                );
            } else {
                println!("{}", serde_json::to_string(r)?);
            }
        }
        if page.metadata.next.is_empty() {
            return Ok(());
        }
        if !follow && page.results.data.is_empty() {
            return Ok(());
        }
        if page.results.data.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        next = Some(page.metadata.next);
    }
}

#[derive(clap::Args)]
pub struct SqlArgs {
    sql: String,
    /// A statement property, key=value (repeatable), e.g.
    /// `sql.local-time-zone=UTC`.
    #[arg(long = "property", value_parser = parse_kv)]
    properties: Vec<(String, String)>,
    #[command(flatten)]
    conn: Conn,
}

pub async fn sql(a: SqlArgs) -> anyhow::Result<()> {
    let client = a.conn.client()?;
    let req = CreateStatementRequest {
        metadata: None,
        name: None,
        spec: StatementSpec {
            statement: a.sql,
            compute_pool_id: a.conn.pool(),
            properties: a.properties.into_iter().collect(),
            ..Default::default()
        },
    };
    let s = client.create_statement(&req).await?;
    let name = s.name.clone();
    let run = async {
        let s = client.wait_started(&name, Duration::from_secs(60)).await?;
        if s.status.phase == Phase::Failed {
            bail!("statement {name} failed: {}", s.status.detail);
        }
        print_results(&client, &name, true, &a.conn).await?;
        // The results end when the statement does: a statement that
        // failed part-way (a bad record, say) is an error, not an empty
        // success.
        for _ in 0..50 {
            let s = client.get_statement(&name).await?;
            match s.status.phase {
                Phase::Failed => bail!("statement {name} failed: {}", s.status.detail),
                Phase::Running | Phase::Pending | Phase::Failing | Phase::Degraded => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                _ => return Ok(()),
            }
        }
        Ok(())
    };
    tokio::select! {
        r = run => r,
        _ = tokio::signal::ctrl_c() => {
            let _ = client.delete_statement(&name).await;
            Ok(())
        }
    }
}
