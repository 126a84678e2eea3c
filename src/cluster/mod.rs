//! The `ballista` engine: models built on an Apache DataFusion Ballista 55 cluster (feature
//! `ballista`).
//!
//! A cluster is one scheduler ([`scheduler`], `alliance scheduler`) and any number of executors
//! ([`executor`], `alliance executor`), every process reading and writing the warehouse's object
//! store. `alliance build` with `[engine] kind = "ballista"` ([`client`]) plans each model's SQL
//! here, sends the logical plan to the scheduler, which plans it into stages and hands their tasks
//! to the executors; the final stage's batches stream back to this process, which writes them
//! with the same Parquet sink, runs the same data tests (also on the cluster) and publishes the
//! same way as the local engine. So write-audit-publish, seals and fingerprints do not depend on
//! the engine, and a mart built on the cluster can be compared row for row with a local one.
//!
//! What every process of a cluster shares, built here once ([`warehouse_state`]):
//! - the warehouse store under [`WAREHOUSE_URL`](crate::transform::session::WAREHOUSE_URL), from
//!   the same `config/<env>.toml` (the scheduler lists table files, executors read them);
//! - the statistical functions of [`crate::stats`], looked up by name when plans are decoded;
//! - the session settings of [`warehouse_config`](crate::transform::session::warehouse_config).

pub mod client;
pub mod commands;
pub mod executor;
pub mod scheduler;

use crate::error::Error;
use crate::storage::Store;
use crate::transform::session::{warehouse_config, warehouse_runtime};
use ballista_core::extension::{ballista_aggregate_functions, ballista_scalar_functions, ballista_window_functions};
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::prelude::SessionConfig;
use std::sync::Arc;

/// A session state for a scheduler or executor: `config` (the job's settings sent by the client,
/// with the warehouse's settings on top), the warehouse store, DataFusion's and Ballista's
/// functions and the statistical UDFs.
pub fn warehouse_state(config: SessionConfig, warehouse: &Store) -> datafusion::error::Result<SessionState> {
    let mut scalar = ballista_scalar_functions();
    scalar.extend(crate::stats::udf::all().into_iter().map(Arc::new));
    let mut aggregate = ballista_aggregate_functions();
    aggregate.extend(crate::stats::udaf::all().into_iter().map(Arc::new));
    Ok(SessionStateBuilder::new()
        .with_default_features()
        .with_config(warehouse_config(config))
        .with_runtime_env(warehouse_runtime(Some(warehouse))?)
        .with_optimizer_rules(ballista_core::optimizer::ballista_default_optimizer_rules())
        .with_scalar_functions(scalar)
        .with_aggregate_functions(aggregate)
        .with_window_functions(ballista_window_functions())
        .build())
}

/// An [`Error::Cluster`] from any failure of the cluster's processes.
pub(crate) fn cluster_error(context: impl Into<String>) -> impl FnOnce(ballista_core::error::BallistaError) -> Error {
    let context = context.into();
    move |e| Error::Cluster { context, reason: e.to_string() }
}
