//! A job: ingest and/or build under the warehouse lock, recorded in the run history. The CLI's
//! `ingest`, `build` and `run` and every scheduled run go through [`run_job`].

use crate::config::{Environment, Pipeline};
use crate::error::{Error, Result};
use crate::ingest::{IngestOptions, Ingestor, PipelineReport};
use crate::lock::{LockKeeper, WarehouseLock};
use crate::runs::{new_run_id, RunRecord};
use crate::storage::Stores;
use crate::transform::{BuildOptions, BuildReport};
use std::path::PathBuf;
use tracing::{info_span, Instrument};

/// What a job works on.
#[derive(Clone)]
pub struct JobContext {
    pub env: Environment,
    pub stores: Stores,
    pub pipelines: Vec<Pipeline>,
    pub sql_dir: PathBuf,
}

/// What a job does.
#[derive(Debug, Clone, Default)]
pub struct JobSpec {
    /// `manual`, `schedule`, `new_file`.
    pub trigger: String,
    /// `ingest`, `build`, `run`.
    pub command: String,
    pub ingest: Option<IngestOptions>,
    pub build: Option<BuildOptions>,
}

/// What a job did.
pub struct JobOutcome {
    pub record: RunRecord,
    pub ingest: Option<Result<Vec<PipelineReport>>>,
    pub build: Option<Result<BuildReport>>,
}

impl JobOutcome {
    /// The first error of the job, if any (ingest before build).
    pub fn error(&self) -> Option<&Error> {
        self.ingest.as_ref().and_then(|r| r.as_ref().err()).or(self.build.as_ref().and_then(|r| r.as_ref().err()))
    }

    /// True if the job failed on a transient object-store error (worth another attempt).
    pub fn transient(&self) -> bool {
        self.error().is_some_and(Error::is_transient)
    }
}

/// Runs a job under the warehouse lock and records it. Fails only when the lock cannot be taken
/// or the run record cannot be written; errors of the work itself are in the outcome. A run that
/// loses its lock stops before its next publish or commit with [`Error::LockLost`], and its record
/// says why (`lock_lost`).
pub async fn run_job(ctx: &JobContext, spec: &JobSpec) -> Result<JobOutcome> {
    crate::transform::session::set_memory_limit(ctx.env.limits.memory_limit_bytes);
    let run_id = new_run_id();
    let started = chrono::Utc::now();
    let ttl = chrono::Duration::seconds(ctx.env.operations.lock_ttl_secs as i64);
    crate::lock::trace::start_gate().await;
    let lock = WarehouseLock::acquire(&ctx.stores.warehouse, &run_id, &spec.command, ttl).await?;
    let keeper = LockKeeper::keep(lock);
    let health = keeper.health();
    crate::lock::trace::hold().await;
    let span = info_span!("run", run = %run_id, trigger = %spec.trigger);
    let (ingest, build) = async {
        let ingest = match &spec.ingest {
            Some(options) => {
                let ingestor =
                    Ingestor::new(ctx.env.clone(), ctx.stores.clone(), run_id.clone()).guarded_by(health.clone());
                Some(ingestor.run(&ctx.pipelines, options).await)
            }
            None => None,
        };
        let ingest_failed = ingest.as_ref().is_some_and(|r| r.is_err());
        let build = match (&spec.build, ingest_failed) {
            (Some(options), false) => {
                let options = BuildOptions { lock: health.clone(), ..options.clone() };
                Some(build(ctx, &options, &run_id).await)
            }
            _ => None,
        };
        (ingest, build)
    }
    .instrument(span)
    .await;
    let finished = chrono::Utc::now();
    let error = ingest
        .as_ref()
        .and_then(|r| r.as_ref().err())
        .or(build.as_ref().and_then(|r| r.as_ref().err()))
        .map(|e| e.to_string());
    let record = RunRecord {
        run_id: run_id.clone(),
        trigger: spec.trigger.clone(),
        command: spec.command.clone(),
        environment: ctx.env.name.clone(),
        started_at: started,
        finished_at: finished,
        seconds: (finished - started).num_milliseconds() as f64 / 1000.0,
        pipelines: ingest
            .as_ref()
            .and_then(|r| r.as_ref().ok())
            .map(|r| RunRecord::pipelines_json(r))
            .unwrap_or_default(),
        build: build
            .as_ref()
            .and_then(|r| r.as_ref().ok())
            .and_then(|r| serde_json::to_value(r).ok())
            .unwrap_or_default(),
        accepted_revisions: spec.ingest.as_ref().map(|o| o.accept_revisions.clone()).unwrap_or_default(),
        error,
        lock_lost: health.lost(),
    };
    let saved = record.save(&ctx.stores.warehouse).await;
    keeper.release().await?;
    saved?;
    Ok(JobOutcome { record, ingest, build })
}

async fn build(ctx: &JobContext, options: &BuildOptions, run_id: &str) -> Result<BuildReport> {
    let graph = crate::transform::load_graph(&ctx.sql_dir, &ctx.pipelines)?;
    let props = crate::ingest::writer::writer_properties(&ctx.env.ingest, &[])?;
    let options = BuildOptions { engine: ctx.env.engine.clone(), ..options.clone() };
    crate::transform::build(&ctx.stores.warehouse, &ctx.pipelines, &graph, &options, run_id, props).await
}
