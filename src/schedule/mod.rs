//! `alliance schedule`: a long-running service that runs each pipeline on its cron schedule and
//! when new or changed landing files appear (polling the landing store), then rebuilds what
//! depends on them (the build is incremental: unchanged models are not rebuilt).
//!
//! One run at a time per warehouse (the lock in [`crate::lock`]): a tick that finds the warehouse
//! locked by another process waits for the next one. A run that fails on a transient
//! object-store error is retried with exponential backoff, then recorded as failed; the service
//! keeps going. SIGINT/SIGTERM end the service after the current run; a second signal ends it at
//! once. Cron expressions are UTC, 5 fields (`min hour day month weekday`) or 6 with seconds.

pub mod status;

pub use crate::config::cron::parse_cron;
use crate::error::{Error, Result};
use crate::ingest::{pending_files, IngestOptions};
use crate::jobs::{run_job, JobContext, JobSpec};
use crate::transform::BuildOptions;
use chrono::{DateTime, Utc};
use croner::Cron;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::sync::watch;
use tracing::{error, info, warn};

pub use status::status;

/// The next time `expr` fires strictly after `after`.
pub fn next_due(cron: &Cron, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&after, false).ok()
}

/// Next due time of every pipeline with a cron schedule.
pub fn due_times(ctx: &JobContext, after: DateTime<Utc>) -> BTreeMap<String, DateTime<Utc>> {
    ctx.pipelines
        .iter()
        .filter_map(|p| {
            let cron = parse_cron(p.schedule.cron.as_deref()?).ok()?;
            Some((p.name.clone(), next_due(&cron, after)?))
        })
        .collect()
}

/// Pipelines (watching for new files) that have new or changed landing files.
pub async fn pipelines_with_new_files(ctx: &JobContext) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for p in ctx.pipelines.iter().filter(|p| p.schedule.on_new_file) {
        if !pending_files(&ctx.stores, p).await?.is_empty() {
            out.insert(p.name.clone());
        }
    }
    Ok(out)
}

/// A watch that turns true on the first SIGINT/SIGTERM; a second signal exits at once.
fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut signals = 0;
        loop {
            let terminate = async {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate => {}
            }
            signals += 1;
            if signals > 1 {
                warn!("second signal: stopping now");
                std::process::exit(130);
            }
            warn!("stopping after the current run (signal again to stop now)");
            let _ = tx.send(true);
        }
    });
    rx
}

/// Runs the service until a signal (or once, with `once`).
pub async fn serve(ctx: JobContext, once: bool) -> Result<()> {
    let mut stop = shutdown_signal();
    let mut due = due_times(&ctx, Utc::now());
    let poll = Duration::from_secs(ctx.env.operations.poll_secs.max(1));
    info!(pipelines = ctx.pipelines.len(), scheduled = due.len(), poll_secs = poll.as_secs(), "scheduler started");
    loop {
        let now = Utc::now();
        let by_cron: BTreeSet<String> = due.iter().filter(|(_, t)| **t <= now).map(|(p, _)| p.clone()).collect();
        let by_file = match pipelines_with_new_files(&ctx).await {
            Ok(p) => p,
            // The store did not answer: run the watching pipelines, whose run retries with
            // backoff and records a clean failure if the store stays away (and finds nothing to
            // do once it is back).
            Err(e) if e.is_transient() => {
                warn!(error = %e, "could not look for new landing files; running to find out");
                ctx.pipelines.iter().filter(|p| p.schedule.on_new_file).map(|p| p.name.clone()).collect()
            }
            Err(e) => {
                warn!(error = %e, "could not look for new landing files");
                BTreeSet::new()
            }
        };
        let work: BTreeSet<String> = by_cron.union(&by_file).cloned().collect();
        if !work.is_empty() {
            let trigger = if by_file.is_empty() { "schedule" } else { "new_file" };
            run_with_retries(&ctx, work.into_iter().collect(), trigger).await;
            for p in &by_cron {
                if let Some(next) = due_times(&ctx, Utc::now()).remove(p) {
                    due.insert(p.clone(), next);
                }
            }
        }
        if once || *stop.borrow() {
            break;
        }
        let next_cron = due.values().min().map(|t| (*t - Utc::now()).to_std().unwrap_or_default());
        let wait = next_cron.map_or(poll, |c| c.min(poll));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            break;
        }
    }
    info!("scheduler stopped");
    Ok(())
}

/// Runs ingest of `pipelines` then the build, retrying transient failures with backoff.
async fn run_with_retries(ctx: &JobContext, pipelines: Vec<String>, trigger: &str) {
    let ops = &ctx.env.operations;
    let spec = JobSpec {
        trigger: trigger.to_string(),
        command: "run".into(),
        ingest: Some(IngestOptions { pipelines: pipelines.clone(), ..Default::default() }),
        build: Some(BuildOptions::default()),
    };
    let mut backoff = Duration::from_secs(ops.run_backoff_secs);
    for attempt in 1..=ops.run_attempts.max(1) {
        info!(attempt, pipelines = ?pipelines, trigger, "run starting");
        match run_job(ctx, &spec).await {
            Ok(outcome) if outcome.transient() && attempt < ops.run_attempts => {
                warn!(attempt, error = ?outcome.error().map(|e| e.to_string()), wait_secs = backoff.as_secs(), "transient failure; retrying");
            }
            Ok(outcome) => {
                match outcome.error() {
                    None => info!(run = %outcome.record.run_id, seconds = outcome.record.seconds, "run finished"),
                    Some(e) => error!(run = %outcome.record.run_id, error = %e, "run failed"),
                }
                return;
            }
            Err(e @ Error::Locked { .. }) => {
                warn!(error = %e, "warehouse busy; will try at the next tick");
                return;
            }
            Err(e) if e.is_transient() && attempt < ops.run_attempts => {
                warn!(attempt, error = %e, wait_secs = backoff.as_secs(), "transient failure; retrying");
            }
            Err(e) => {
                error!(error = %e, "run could not start or be recorded");
                return;
            }
        }
        tokio::time::sleep(backoff).await;
        backoff *= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn five_and_six_fields() {
        let c = parse_cron("30 6 * * *").unwrap();
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 7, 0, 0).unwrap();
        assert_eq!(next_due(&c, t).unwrap(), Utc.with_ymd_and_hms(2026, 1, 2, 6, 30, 0).unwrap());
        assert!(parse_cron("0 30 6 * * *").is_ok());
        assert!(parse_cron("61 * * * *").is_err());
    }
}
