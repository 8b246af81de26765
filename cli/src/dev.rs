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
    /// The local broker's storage: `sqlite` (default; topics are kept in
    /// `<data-dir>/broker.db` across restarts) or `memory`.
    #[arg(long, default_value = "sqlite")]
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

const TANSU_VERSION: &str = "0.6.0";

/// The tansu binary: `$WEIR_TANSU_BIN`, then `PATH`, then the cache that
/// `infra/broker/install-tansu.sh` fills.
fn find_tansu() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("WEIR_TANSU_BIN") {
        return Some(PathBuf::from(p));
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let c = dir.join("tansu");
            if c.is_file() {
                return Some(c);
            }
        }
    }
    let home = std::env::var_os("HOME").map(PathBuf::from)?;
    let c = home.join(".cache/weir/tools/bin/tansu");
    c.is_file().then_some(c)
}

async fn install_tansu() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .context("HOME is not set")?;
    let root = home.join(".cache/weir/tools");
    eprintln!("weir dev: installing the local Kafka broker (tansu {TANSU_VERSION}) into {} — first run only, about 15 minutes on 2 cores…", root.display());
    let status = tokio::process::Command::new("cargo")
        .args([
            "install",
            "tansu",
            "--version",
            TANSU_VERSION,
            "--locked",
            "--features",
            "dynostore,libsql",
            "--root",
        ])
        .arg(&root)
        .status()
        .await
        .context("running cargo install tansu")?;
    if !status.success() {
        bail!("installing tansu failed; run `cargo install tansu --locked --features dynostore,libsql` yourself or pass --bootstrap");
    }
    Ok(root.join("bin/tansu"))
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
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn start_broker(
    data_dir: &Path,
    port: u16,
    storage: &str,
) -> anyhow::Result<tokio::process::Child> {
    let bin = match find_tansu() {
        Some(b) => b,
        None => install_tansu().await?,
    };
    let addr = format!("127.0.0.1:{port}");
    // tansu reads the path of a sqlite:// URL relative to its working directory.
    let dir = std::fs::canonicalize(data_dir)?;
    let log = std::fs::File::create(data_dir.join("broker.log"))?;
    let child = tokio::process::Command::new(&bin)
        .arg("broker")
        .args(["--listener-url", &format!("tcp://{addr}")])
        .args(["--advertised-listener-url", &format!("tcp://{addr}")])
        .args([
            "--storage-engine",
            if storage == "sqlite" {
                "sqlite://broker.db"
            } else {
                "memory://tansu/"
            },
        ])
        .current_dir(&dir)
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    wait_port(&addr, Duration::from_secs(30))
        .await
        .with_context(|| format!("see {}", data_dir.join("broker.log").display()))?;
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
    tokio::signal::ctrl_c().await?;
    eprintln!("weir dev: stopping statements…");
    server.shutdown().await;
    if let Some(b) = broker.as_mut() {
        let _ = b.kill().await;
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
