//! `alliance scheduler` and `alliance executor`: the processes of a Ballista cluster, each
//! opening the warehouse store of the environment (`--env`, `config/<env>.toml`) it is started
//! with. Use the same environment file (and the same object-store credentials) as the builds.

use super::executor::{run_executor, ExecutorOptions, TaskCount, DEFAULT_FLIGHT_PORT, DEFAULT_GRPC_PORT};
use super::scheduler::{run_scheduler, SchedulerOptions, DEFAULT_LISTEN};
use crate::config::environment::{Environment, DEFAULT_BALLISTA_PORT};
use crate::error::{Error, Result};
use crate::storage::Stores;
use std::net::SocketAddr;
use std::path::PathBuf;

/// `alliance scheduler`.
#[derive(Debug, Clone, clap::Args)]
pub struct SchedulerArgs {
    /// Address to listen on; builds connect with `[engine] url = "df://HOST:PORT"`.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Host name executors and builds reach this scheduler by.
    #[arg(long, default_value = "localhost")]
    pub external_host: String,
}

/// `alliance executor`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExecutorArgs {
    /// The scheduler, `host:port` (port 50050 when omitted).
    #[arg(long, default_value = "localhost")]
    pub scheduler: String,
    /// Address to bind.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: String,
    /// Arrow Flight port (query results and shuffle data).
    #[arg(long, default_value_t = DEFAULT_FLIGHT_PORT)]
    pub port: u16,
    /// gRPC port.
    #[arg(long, default_value_t = DEFAULT_GRPC_PORT)]
    pub grpc_port: u16,
    /// Host name the scheduler, other executors and builds reach this executor by (default:
    /// the address the scheduler sees).
    #[arg(long)]
    pub external_host: Option<String>,
    /// Tasks run at once (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub vcores: usize,
    /// Folder for shuffle files (a temporary folder by default).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
}

/// Runs `alliance scheduler` until stopped.
pub async fn scheduler(args: &SchedulerArgs, env: &Environment) -> Result<()> {
    let stores = Stores::open(&env.storage)?;
    let options = SchedulerOptions { listen: args.listen, external_host: args.external_host.clone() };
    run_scheduler(&options, &stores.warehouse).await
}

/// Runs `alliance executor` until stopped; its operators get `[limits] memory_limit_bytes`.
pub async fn executor(args: &ExecutorArgs, env: &Environment) -> Result<()> {
    let stores = Stores::open(&env.storage)?;
    let (host, port) = match args.scheduler.rsplit_once(':') {
        Some((host, port)) => {
            let port = port
                .parse()
                .map_err(|_| Error::config("--scheduler", format!("'{}' is not host:port", args.scheduler)))?;
            (host.to_string(), port)
        }
        None => (args.scheduler.clone(), DEFAULT_BALLISTA_PORT),
    };
    let options = ExecutorOptions {
        scheduler_host: host,
        scheduler_port: port,
        bind_host: args.bind.clone(),
        flight_port: args.port,
        grpc_port: args.grpc_port,
        external_host: args.external_host.clone(),
        vcores: args.vcores,
        memory_pool_bytes: env.limits.memory_limit_bytes,
        work_dir: args.work_dir.clone(),
    };
    run_executor(&options, &stores.warehouse, TaskCount::default()).await
}
