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
}

/// `weir broker`: the local Kafka-protocol broker, until Ctrl-C or SIGTERM.
pub async fn run_broker(a: BrokerArgs) -> anyhow::Result<()> {
    let broker = weir_broker::Broker::start(weir_broker::BrokerConfig {
        listen: a.listen,
        data_dir: (!a.memory).then_some(a.data_dir),
        sync_interval: Duration::from_millis(a.sync_interval_ms.max(1)),
        default_partitions: a.default_partitions.max(1),
        produce_delay: Duration::from_millis(a.produce_delay_ms),
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
        ..ServerConfig::default()
    };
    let server = Server::start(config)
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
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
    let server = Server::start(ServerConfig {
        database_url: a.database_url,
        listen: a.listen,
        public_url: a.public_url,
        statement_memory_limit: a.statement_memory_limit,
        ..ServerConfig::default()
    })
    .await
    .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
    eprintln!("weir server: listening on {}", server.url);
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    Ok(())
}
