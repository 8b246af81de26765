//! `weir dev` and `weir server`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use weir_control_plane::{dev, Server, ServerConfig};

#[derive(clap::Args)]
pub struct DevArgs {
    /// Where the store, the broker's data and dev.env live.
    #[arg(long, default_value = ".weir")]
    data_dir: PathBuf,
    /// The API port.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Use this Kafka cluster instead of starting a local broker.
    #[arg(long)]
    bootstrap: Option<String>,
    /// The local broker's port.
    #[arg(long, default_value_t = 9092)]
    broker_port: u16,
    /// The local broker's storage: `disk` (default; topics are kept in
    /// `<data-dir>/broker/` across restarts) or `memory`.
    #[arg(long, default_value = "disk", value_parser = ["disk", "memory"])]
    broker_storage: String,
    /// Seconds a SELECT may go unread before it is stopped.
    #[arg(long, default_value_t = 300)]
    results_idle_timeout: u64,
    /// A statement's memory limit unless its 'sql.memory.limit' property
    /// says otherwise ('512 mb', '2 gb').
    #[arg(long, env = "WEIR_STATEMENT_MEMORY_LIMIT", default_value = "1 gb", value_parser = memory_size)]
    statement_memory_limit: u64,
    /// Run statements in this process instead of on `weir worker` child
    /// processes (which are started as the pools' statements need slots,
    /// and stopped when idle).
    #[arg(long)]
    in_process: bool,
    /// Tasks one worker process runs at once (each statement is a thread
    /// of its own in it; a worker process costs ~20 MiB before any).
    #[arg(long, default_value_t = 8)]
    worker_slots: u32,
    /// The price of one CFU-hour: enables the costs view
    /// (`/billing/v1/costs`).
    #[arg(long, env = "WEIR_PRICE_PER_CFU_HOUR", value_parser = price)]
    price_per_cfu_hour: Option<f64>,
}

fn price(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|p| p.is_finite() && *p >= 0.0)
        .ok_or_else(|| format!("'{s}' is not a price: give a number such as 0.21"))
}

fn memory_size(s: &str) -> Result<u64, String> {
    weir_sql_gateway::limits::memory_bytes(s)
        .filter(|b| *b > 0)
        .ok_or_else(|| format!("'{s}' is not a memory size like '512 mb' or '2 gb'"))
}

#[derive(clap::Args)]
pub struct ServerArgs {
    /// `sqlite://PATH` or `postgres://...`.
    #[arg(long, env = "WEIR_DATABASE_URL")]
    database_url: String,
    #[arg(long, env = "WEIR_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    #[arg(long, env = "WEIR_PUBLIC_URL")]
    public_url: Option<String>,
    /// A statement's memory limit unless its 'sql.memory.limit' property
    /// says otherwise ('512 mb', '2 gb').
    #[arg(long, env = "WEIR_STATEMENT_MEMORY_LIMIT", default_value = "1 gb", value_parser = memory_size)]
    statement_memory_limit: u64,
    /// Where stateful statements checkpoint (shared with the workers).
    #[arg(long, env = "WEIR_CHECKPOINT_DIR", default_value = ".weir/checkpoints")]
    checkpoint_dir: PathBuf,
    /// Run no statement here: place each on the `weir worker` processes of
    /// its compute pool.
    #[arg(long)]
    workers: bool,
    /// The credential workers present; created (random, mode 0600) when
    /// the file does not exist. Replacing it revokes the old one at the
    /// next start.
    #[arg(
        long,
        env = "WEIR_WORKER_CREDENTIAL_FILE",
        default_value = ".weir/worker-credential"
    )]
    worker_credential_file: PathBuf,
    /// The key that seals the credentials the server stores (an external
    /// schema registry's password); created (random, mode 0600) when the
    /// file does not exist. Every server on one database needs the same.
    #[arg(long, env = "WEIR_SECRET_KEY_FILE", default_value = ".weir/secret.key")]
    secret_key_file: PathBuf,
    /// A worker silent this long loses its tasks to another worker.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(200..))]
    lease_timeout_ms: u64,
    /// How often workers heartbeat (at least 50 ms: the server holds an
    /// idle heartbeat this long, and a shorter hold would spin).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(50..))]
    heartbeat_interval_ms: u64,
    /// Start `weir worker` child processes of this many slots each, as
    /// many as the pools' statements need, and stop them when idle.
    #[arg(long, requires = "workers")]
    provision_worker_slots: Option<u32>,
    /// Create `weir dev`'s organization, environment, compute pool and API
    /// key (if absent), with this Kafka cluster, and write them to
    /// `<dev-env-dir>/dev.env`: a first tenant until one is made through
    /// the API.
    #[arg(long, requires = "dev_env_dir")]
    dev_bootstrap: Option<String>,
    #[arg(long, requires = "dev_bootstrap")]
    dev_env_dir: Option<PathBuf>,
    /// The price of one CFU-hour: enables the costs view
    /// (`/billing/v1/costs`).
    #[arg(long, env = "WEIR_PRICE_PER_CFU_HOUR", value_parser = price)]
    price_per_cfu_hour: Option<f64>,
}

#[derive(clap::Args)]
pub struct WorkerArgs {
    /// The compute pool this worker is a member of.
    #[arg(long, env = "WEIR_COMPUTE_POOL")]
    pool: String,
    /// The control plane's URL (`weir server --workers`).
    #[arg(long, env = "WEIR_CONTROL_PLANE")]
    control_plane: String,
    /// How many tasks it runs at once.
    #[arg(long, default_value_t = 2)]
    slots: u32,
    /// The file holding the credential the server issued.
    #[arg(long, env = "WEIR_WORKER_CREDENTIAL_FILE")]
    credential_file: PathBuf,
}

#[derive(clap::Args)]
pub struct BrokerArgs {
    /// Where topics and committed offsets are kept.
    #[arg(long, default_value = ".weir/broker")]
    data_dir: PathBuf,
    /// Keep topics in memory only (lost when the broker stops).
    #[arg(long, conflicts_with = "data_dir")]
    memory: bool,
    /// The address to listen on (and to advertise to clients).
    #[arg(long, default_value = "127.0.0.1:9092")]
    listen: String,
    /// Milliseconds between flushes of the logs to the disk.
    #[arg(long, default_value_t = 1000)]
    sync_interval_ms: u64,
    /// Partitions of a topic a client creates by asking for it.
    #[arg(long, default_value_t = 1)]
    default_partitions: i32,
    /// Answer every produce this many milliseconds late: a slow broker, to
    /// see how clients (and Weir's sinks) behave against one.
    #[arg(long, default_value_t = 0)]
    produce_delay_ms: u64,
    /// Require SASL/PLAIN: a file of `user:password` lines (blank lines and
    /// lines starting with `#` are skipped). Without it the broker has no
    /// authentication.
    #[arg(long)]
    sasl_users_file: Option<PathBuf>,
}

/// Reads `user:password` lines.
fn read_sasl_users(path: &Path) -> anyhow::Result<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the SASL users file {}", path.display()))?;
    let mut users = std::collections::HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once(':') {
            Some((u, p)) if !u.is_empty() && !p.is_empty() => {
                users.insert(u.to_string(), p.to_string());
            }
            _ => bail!(
                "{} line {}: expected `user:password`",
                path.display(),
                n + 1
            ),
        }
    }
    if users.is_empty() {
        bail!("{} names no user", path.display());
    }
    Ok(users)
}

/// `weir broker`: the local Kafka-protocol broker, until Ctrl-C or SIGTERM.
pub async fn run_broker(a: BrokerArgs) -> anyhow::Result<()> {
    let broker = weir_broker::Broker::start(weir_broker::BrokerConfig {
        listen: a.listen,
        data_dir: (!a.memory).then_some(a.data_dir),
        sync_interval: Duration::from_millis(a.sync_interval_ms.max(1)),
        default_partitions: a.default_partitions.max(1),
        produce_delay: Duration::from_millis(a.produce_delay_ms),
        sasl_plain_users: match &a.sasl_users_file {
            Some(p) => read_sasl_users(p)?,
            None => Default::default(),
        },
    })
    .await?;
    eprintln!("weir broker: listening on {}", broker.addr());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    broker.stop().await;
    Ok(())
}

async fn wait_port(addr: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the broker did not open {addr} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts `weir broker` as a child process (its CPU and memory are its
/// own, and a statement's figures are Weir's alone).
async fn start_broker(
    data_dir: &Path,
    port: u16,
    storage: &str,
) -> anyhow::Result<tokio::process::Child> {
    let bin = std::env::current_exe().context("finding the weir binary")?;
    let addr = format!("127.0.0.1:{port}");
    let log = std::fs::File::create(data_dir.join("broker.log"))?;
    let mut cmd = tokio::process::Command::new(&bin);
    cmd.arg("broker").args(["--listen", &addr]);
    if storage == "memory" {
        cmd.arg("--memory");
    } else {
        cmd.arg("--data-dir").arg(data_dir.join("broker"));
    }
    // SAFETY: prctl(2) between fork and exec, touching no memory of the
    // parent: the broker gets SIGTERM (and flushes) when `weir dev` dies,
    // however it dies, rather than holding the port for the next start.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut child = cmd
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {} broker", bin.display()))?;
    let log = data_dir.join("broker.log");
    tokio::select! {
        r = wait_port(&addr, Duration::from_secs(30)) => r.with_context(|| format!("see {}", log.display()))?,
        s = child.wait() => bail!(
            "the local broker exited ({}): {}",
            s?,
            std::fs::read_to_string(&log).unwrap_or_default().trim()
        ),
    }
    Ok(child)
}

pub async fn run_dev(a: DevArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&a.data_dir)
        .with_context(|| format!("creating {}", a.data_dir.display()))?;
    let (bootstrap, mut broker) = match a.bootstrap {
        Some(b) => (b, None),
        None => (
            format!("127.0.0.1:{}", a.broker_port),
            Some(start_broker(&a.data_dir, a.broker_port, &a.broker_storage).await?),
        ),
    };
    let db = std::fs::canonicalize(&a.data_dir)?.join("weir.db");
    let config = ServerConfig {
        database_url: format!("sqlite://{}", db.display()),
        listen: format!("127.0.0.1:{}", a.port),
        results_idle_timeout: Duration::from_secs(a.results_idle_timeout),
        checkpoint_dir: Some(a.data_dir.join("checkpoints")),
        statement_memory_limit: a.statement_memory_limit,
        workers: if !a.in_process {
            let file = a.data_dir.join("worker-credential");
            Some(weir_control_plane::WorkersConfig {
                credential: worker_credential(&file)?,
                lease_timeout: Duration::from_secs(10),
                heartbeat_interval: Duration::from_millis(500),
                processes: Some(process_workers(&file, a.worker_slots, &a.data_dir)?),
            })
        } else {
            None
        },
        price_per_cfu_hour: a.price_per_cfu_hour,
        secret_key_file: Some(a.data_dir.join("secret.key")),
        ..ServerConfig::default()
    };
    let server = Server::start(config)
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
    crate::telemetry::export_metrics(server.state.clone());
    let env = dev::bootstrap(&server.state.store, &a.data_dir, &server.url, &bootstrap)
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
    println!("# Weir is running. Workspace and API: {}", env.url);
    print!("{}", env.shell_lines());
    println!(
        "# Saved to {}; `source {}` sets up a shell and the CLI. Ctrl-C stops.",
        a.data_dir.join("dev.env").display(),
        a.data_dir.join("dev.env").display()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    eprintln!("weir dev: stopping statements…");
    server.shutdown().await;
    if let Some(b) = broker.as_mut() {
        // SIGTERM: the broker flushes its logs and exits.
        if let Some(pid) = b.id() {
            // SAFETY: kill(2) on our own child's pid; no memory is shared.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        if tokio::time::timeout(Duration::from_secs(5), b.wait())
            .await
            .is_err()
        {
            let _ = b.kill().await;
        }
    }
    Ok(())
}

pub async fn run_server(a: ServerArgs) -> anyhow::Result<()> {
    let workers = if a.workers {
        Some(weir_control_plane::WorkersConfig {
            credential: worker_credential(&a.worker_credential_file)?,
            lease_timeout: Duration::from_millis(a.lease_timeout_ms),
            heartbeat_interval: Duration::from_millis(a.heartbeat_interval_ms),
            processes: match a.provision_worker_slots {
                Some(slots) => Some(process_workers(
                    &a.worker_credential_file,
                    slots,
                    a.checkpoint_dir.parent().unwrap_or(Path::new(".")),
                )?),
                None => None,
            },
        })
    } else {
        None
    };
    let server = Server::start(ServerConfig {
        database_url: a.database_url,
        listen: a.listen,
        public_url: a.public_url,
        statement_memory_limit: a.statement_memory_limit,
        checkpoint_dir: Some(std::path::absolute(&a.checkpoint_dir)?),
        workers,
        price_per_cfu_hour: a.price_per_cfu_hour,
        secret_key_file: Some(std::path::absolute(&a.secret_key_file)?),
        ..ServerConfig::default()
    })
    .await
    .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
    crate::telemetry::export_metrics(server.state.clone());
    eprintln!("weir server: listening on {}", server.url);
    if let (Some(bootstrap), Some(dir)) = (&a.dev_bootstrap, &a.dev_env_dir) {
        std::fs::create_dir_all(dir)?;
        let env = dev::bootstrap(&server.state.store, dir, &server.url, bootstrap)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
        print!("{}", env.shell_lines());
    }
    if a.workers {
        eprintln!(
            "weir server: statements run on workers: weir worker --control-plane {} --pool <pool> --credential-file {}",
            server.url,
            a.worker_credential_file.display()
        );
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    server.shutdown().await;
    Ok(())
}

/// The process provisioner's settings: this binary, workers' logs in
/// `log_dir`.
fn process_workers(
    credential_file: &Path,
    slots: u32,
    log_dir: &Path,
) -> anyhow::Result<weir_control_plane::ProcessWorkers> {
    std::fs::create_dir_all(log_dir)?;
    Ok(weir_control_plane::ProcessWorkers {
        bin: std::env::current_exe().context("finding the weir binary")?,
        credential_file: std::path::absolute(credential_file)?,
        slots: slots.max(1),
        log_dir: std::path::absolute(log_dir)?,
    })
}

/// The workers' credential in `path`, created there when absent.
fn worker_credential(path: &Path) -> anyhow::Result<String> {
    if let Ok(c) = std::fs::read_to_string(path) {
        let c = c.trim().to_string();
        if !c.is_empty() {
            return Ok(c);
        }
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let c = format!(
        "wkc-{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(c.as_bytes()))
        .with_context(|| format!("writing the worker credential to {}", path.display()))?;
    Ok(c)
}

/// `weir worker`: one member of a compute pool, until Ctrl-C or SIGTERM.
pub async fn run_worker(a: WorkerArgs) -> anyhow::Result<()> {
    let credential = std::fs::read_to_string(&a.credential_file)
        .with_context(|| {
            format!(
                "reading the worker credential {}",
                a.credential_file.display()
            )
        })?
        .trim()
        .to_string();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "worker".into());
    let config = weir_compute_pool::worker::remote::RemoteConfig {
        control_plane: a.control_plane,
        pool: a.pool,
        slots: a.slots,
        credential,
        name: format!("{host}-{}", std::process::id()),
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        c.cancel();
    });
    eprintln!(
        "weir worker {}: joining pool {} at {}",
        config.name, config.pool, config.control_plane
    );
    weir_compute_pool::worker::remote::run(config, cancel).await?;
    Ok(())
}
