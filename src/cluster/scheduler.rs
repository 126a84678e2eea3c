//! `alliance scheduler`: a Ballista scheduler that knows the warehouse.
//!
//! The scheduler decodes each job's logical plan (the statistical functions are found by name),
//! lists the files of its Parquet tables on the warehouse store and plans the stages its
//! executors run. Jobs are pulled by the executors (Ballista's `pull-staged` policy), so the
//! scheduler needs no route to them, only they to it. Its state is in memory: a scheduler that
//! restarts loses the jobs in flight, and `alliance build` fails those models (nothing of them is
//! published) and the next run builds them again.

use super::{cluster_error, warehouse_state};
use crate::error::Result;
use crate::storage::Store;
use ballista_core::config::TaskSchedulingPolicy;
use ballista_core::extension::SessionConfigExt;
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use datafusion::prelude::SessionConfig;
use std::net::SocketAddr;
use std::sync::Arc;

/// Default address `alliance scheduler` listens on.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:50050";

/// Where the scheduler listens and how executors and clients name it.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Address to listen on (gRPC for clients and executors).
    pub listen: SocketAddr,
    /// Host name others reach this scheduler by.
    pub external_host: String,
}

/// Runs a scheduler until the process stops.
pub async fn run_scheduler(options: &SchedulerOptions, warehouse: &Store) -> Result<()> {
    let store = warehouse.clone();
    let session_builder: ballista_scheduler::SessionBuilder =
        Arc::new(move |config: SessionConfig| warehouse_state(config, &store));
    let config = SchedulerConfig {
        bind_host: options.listen.ip().to_string(),
        bind_port: options.listen.port(),
        external_host: options.external_host.clone(),
        scheduling_policy: TaskSchedulingPolicy::PullStaged,
        override_session_builder: Some(session_builder),
        override_config_producer: Some(Arc::new(SessionConfig::new_with_ballista)),
        ..SchedulerConfig::default()
    };
    let cluster = BallistaCluster::new_from_config(&config).await.map_err(cluster_error("starting the scheduler"))?;
    tracing::info!(listen = %options.listen, "Ballista scheduler started");
    ballista_scheduler::scheduler_process::start_server(cluster, options.listen, Arc::new(config))
        .await
        .map_err(cluster_error("serving the scheduler"))
}
