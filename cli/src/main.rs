//! The `weir` binary: `weir dev`, `weir server`, `weir worker`, `weir
//! broker`, and the client commands.

mod client_cmds;
mod dev;
mod iam_cmds;
mod pool_cmds;
mod shell;
mod telemetry;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "weir", version, about = "Weir: serverless Flink SQL on Kafka")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start everything on 127.0.0.1 with embedded defaults.
    Dev(dev::DevArgs),
    /// Run the control plane: with its local worker, or (`--workers`)
    /// placing statements on `weir worker` processes.
    Server(dev::ServerArgs),
    /// Run one worker of a compute pool, taking tasks from `weir server`.
    Worker(dev::WorkerArgs),
    /// Run Weir's local Kafka-protocol broker (what `weir dev` starts).
    Broker(dev::BrokerArgs),
    /// Save the API URL and credentials for later commands.
    Login(client_cmds::LoginArgs),
    /// Manage statements.
    #[command(subcommand)]
    Statement(client_cmds::StatementCmd),
    /// Submit SQL and print its rows until it ends or Ctrl-C.
    Sql(client_cmds::SqlArgs),
    /// An interactive SQL shell: history, completion, live results.
    Shell(shell::ShellArgs),
    /// Manage compute pools.
    #[command(subcommand)]
    ComputePool(pool_cmds::PoolCmd),
    /// CFU usage of the organization over a time range.
    Usage(pool_cmds::UsageArgs),
    /// Manage environments.
    #[command(subcommand)]
    Environment(iam_cmds::EnvironmentCmd),
    /// Kafka clusters of the environment: each one's topics are the tables
    /// of a database named after it.
    #[command(subcommand)]
    KafkaCluster(iam_cmds::KafkaClusterCmd),
    /// Service accounts, API keys, role bindings and the audit log.
    #[command(subcommand)]
    Iam(iam_cmds::IamCmd),
    /// Quotas of the environment and the organization.
    #[command(subcommand)]
    Limits(iam_cmds::LimitsCmd),
}

/// The API threads' stack: the planner and statements have threads of
/// their own, but a plan is still dropped and printed here.
const RUNTIME_STACK_BYTES: usize = 8 << 20;

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(RUNTIME_STACK_BYTES)
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let _telemetry = telemetry::init()?;
    let cli = Cli::parse();
    match cli.command {
        Command::Dev(a) => dev::run_dev(a).await,
        Command::Server(a) => dev::run_server(a).await,
        Command::Worker(a) => dev::run_worker(a).await,
        Command::Broker(a) => dev::run_broker(a).await,
        Command::Login(a) => client_cmds::login(a),
        Command::Statement(c) => client_cmds::statement(c).await,
        Command::Sql(a) => client_cmds::sql(a).await,
        Command::Shell(a) => shell::run(a).await,
        Command::ComputePool(c) => pool_cmds::compute_pool(c).await,
        Command::Usage(a) => pool_cmds::usage(a).await,
        Command::Environment(c) => iam_cmds::environment(c).await,
        Command::KafkaCluster(c) => iam_cmds::kafka_cluster(c).await,
        Command::Limits(c) => iam_cmds::limits(c).await,
        Command::Iam(c) => iam_cmds::iam(c).await,
    }
}
