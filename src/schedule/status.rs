//! `alliance status` and the `runs` table: the run history under `_state/runs/`, the lock, the
//! landing files waiting, and when each pipeline is next due.

use super::due_times;
use crate::error::{Error, Result};
use crate::ingest::pending_files;
use crate::jobs::JobContext;
use crate::runs::RunRecord;
use crate::storage::Store;
use datafusion::arrow::array::{
    ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use serde_json::Value;
use std::fmt::Write;
use std::sync::Arc;

/// One run, flattened for tables and listings.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub record: RunRecord,
    pub files_loaded: u64,
    pub files_rejected: u64,
    pub rows_in: u64,
    pub rows_written: u64,
    pub rows_quarantined: u64,
    pub models_built: u64,
    pub models_unchanged: u64,
    pub models_failed: u64,
    pub marts_published: u64,
}

/// Sum of a row count over the files the run loaded (unchanged files report their earlier
/// counts and are not counted again).
fn sum(pipelines: &Value, field: &str) -> u64 {
    let files = pipelines.as_array().into_iter().flatten().flat_map(|p| p["files"].as_array().into_iter().flatten());
    files.filter(|f| f["outcome"] == "loaded").map(|f| f["counts"][field].as_u64().unwrap_or(0)).sum()
}

fn count_files(pipelines: &Value, outcome: &str) -> u64 {
    let files = pipelines.as_array().into_iter().flatten().flat_map(|p| p["files"].as_array().into_iter().flatten());
    files.filter(|f| f["outcome"] == outcome).count() as u64
}

fn count_models(build: &Value, status: &[&str]) -> u64 {
    let models = build["models"].as_array().into_iter().flatten();
    models.filter(|m| status.iter().any(|s| m["status"] == *s)).count() as u64
}

impl RunSummary {
    pub fn new(record: RunRecord) -> Self {
        let (p, b) = (&record.pipelines, &record.build);
        let published = b["models"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["status"] == "ok" && !m["published"].is_null())
            .count();
        Self {
            files_loaded: count_files(p, "loaded"),
            files_rejected: count_files(p, "rejected"),
            rows_in: sum(p, "rows_in"),
            rows_written: sum(p, "rows_written"),
            rows_quarantined: sum(p, "rows_quarantined"),
            models_built: count_models(b, &["ok"]),
            models_unchanged: count_models(b, &["unchanged"]),
            models_failed: count_models(b, &["failed", "tests_failed", "skipped", "held"]),
            marts_published: published as u64,
            record,
        }
    }
}

/// Every recorded run, newest first.
pub async fn runs(warehouse: &Store) -> Result<Vec<RunSummary>> {
    let mut objects = warehouse.list("_state/runs/").await?;
    objects.sort_by(|a, b| b.location.cmp(&a.location));
    let mut out = Vec::with_capacity(objects.len());
    for o in objects {
        let bytes = warehouse.get(o.location.as_ref()).await?;
        let record: RunRecord = serde_json::from_slice(&bytes)
            .map_err(|e| Error::State { location: warehouse.display(o.location.as_ref()), reason: e.to_string() })?;
        out.push(RunSummary::new(record));
    }
    Ok(out)
}

/// The run history as one record batch (the `runs` table of `alliance query`).
pub fn runs_batch(runs: &[RunSummary]) -> Result<RecordBatch> {
    let text = |f: fn(&RunSummary) -> Option<String>| {
        Arc::new(StringArray::from(runs.iter().map(f).collect::<Vec<_>>())) as ArrayRef
    };
    let count =
        |f: fn(&RunSummary) -> u64| Arc::new(UInt64Array::from(runs.iter().map(f).collect::<Vec<_>>())) as ArrayRef;
    let time = |f: fn(&RunSummary) -> i64| {
        Arc::new(TimestampMillisecondArray::from(runs.iter().map(f).collect::<Vec<_>>()).with_timezone("UTC"))
            as ArrayRef
    };
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let schema = Schema::new(vec![
        Field::new("run_id", DataType::Utf8, true),
        Field::new("trigger", DataType::Utf8, true),
        Field::new("command", DataType::Utf8, true),
        Field::new("environment", DataType::Utf8, true),
        Field::new("started_at", ts.clone(), false),
        Field::new("finished_at", ts, false),
        Field::new("seconds", DataType::Float64, false),
        Field::new("files_loaded", DataType::UInt64, false),
        Field::new("files_rejected", DataType::UInt64, false),
        Field::new("rows_in", DataType::UInt64, false),
        Field::new("rows_written", DataType::UInt64, false),
        Field::new("rows_quarantined", DataType::UInt64, false),
        Field::new("models_built", DataType::UInt64, false),
        Field::new("models_unchanged", DataType::UInt64, false),
        Field::new("models_failed", DataType::UInt64, false),
        Field::new("marts_published", DataType::UInt64, false),
        Field::new("error", DataType::Utf8, true),
    ]);
    let columns = vec![
        text(|r| Some(r.record.run_id.clone())),
        text(|r| Some(r.record.trigger.clone())),
        text(|r| Some(r.record.command.clone())),
        text(|r| Some(r.record.environment.clone())),
        time(|r| r.record.started_at.timestamp_millis()),
        time(|r| r.record.finished_at.timestamp_millis()),
        Arc::new(Float64Array::from(runs.iter().map(|r| r.record.seconds).collect::<Vec<_>>())) as ArrayRef,
        count(|r| r.files_loaded),
        count(|r| r.files_rejected),
        count(|r| r.rows_in),
        count(|r| r.rows_written),
        count(|r| r.rows_quarantined),
        count(|r| r.models_built),
        count(|r| r.models_unchanged),
        count(|r| r.models_failed),
        count(|r| r.marts_published),
        text(|r| r.record.error.clone()),
    ];
    RecordBatch::try_new(Arc::new(schema), columns).map_err(Error::arrow("assembling the runs table"))
}

/// The text `alliance status` prints.
pub async fn status(ctx: &JobContext, last: usize) -> Result<String> {
    let mut out = String::new();
    let warehouse = &ctx.stores.warehouse;
    match crate::lock::holder(warehouse).await? {
        Some(h) => writeln!(
            out,
            "lock: held by run {} ({}) pid {} on {} until {}",
            h.run_id, h.command, h.pid, h.host, h.expires_at
        ),
        None => writeln!(out, "lock: free"),
    }
    .ok();
    let history = runs(warehouse).await?;
    writeln!(out, "\nlast runs ({} recorded):", history.len()).ok();
    writeln!(
        out,
        "  {:<28} {:<9} {:<7} {:>7} {:>6} {:>10} {:>7} {:>7} {:>7}  error",
        "run", "trigger", "command", "seconds", "files", "rows", "quarant", "models", "marts"
    )
    .ok();
    for r in history.iter().take(last) {
        writeln!(
            out,
            "  {:<28} {:<9} {:<7} {:>7.1} {:>6} {:>10} {:>7} {:>7} {:>7}  {}",
            r.record.run_id,
            r.record.trigger,
            r.record.command,
            r.record.seconds,
            r.files_loaded,
            r.rows_written,
            r.rows_quarantined,
            r.models_built,
            r.marts_published,
            r.record.error.as_deref().unwrap_or("")
        )
        .ok();
    }
    write_integrity(ctx, &mut out).await?;
    let due = due_times(ctx, chrono::Utc::now());
    writeln!(out, "\npipelines:").ok();
    writeln!(out, "  {:<28} {:<14} {:<22} {:>8}", "pipeline", "cron (UTC)", "next due", "waiting").ok();
    for p in &ctx.pipelines {
        let waiting = pending_files(&ctx.stores, p).await?.len();
        let next = due.get(&p.name).map(|t| t.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_else(|| "-".into());
        let cron = p.schedule.cron.clone().unwrap_or_else(|| "-".into());
        let watch = if p.schedule.on_new_file { "" } else { " (no file trigger)" };
        writeln!(out, "  {:<28} {:<14} {:<22} {:>8}{watch}", p.name, cron, next, waiting).ok();
    }
    // Landing entries no pipeline will read: near misses and entries that are not files.
    let listing = crate::ingest::landing::list(&ctx.stores.landing, "").await?;
    let paths: Vec<String> = listing.files.iter().map(|m| m.location.to_string()).collect();
    let misses = crate::ingest::landing::near_misses(&paths, &ctx.pipelines);
    if !misses.is_empty() || !listing.skipped.is_empty() {
        writeln!(
            out,
            "
landing entries not read:"
        )
        .ok();
    }
    for m in &misses {
        writeln!(out, "  {} (pipeline {}: {})", m.path, m.pipeline, m.reason).ok();
    }
    for s in &listing.skipped {
        writeln!(out, "  {} (skipped: {})", s.path, s.reason).ok();
    }
    let mut held = Vec::new();
    for p in &ctx.pipelines {
        let manifest = crate::ingest::manifest::Manifest::load(&ctx.stores.warehouse, &p.name).await?;
        held.extend(
            manifest
                .files
                .iter()
                .filter(|(_, r)| r.status == crate::ingest::manifest::FileStatus::Held)
                .map(|(path, r)| (path.clone(), r.error.clone().unwrap_or_default())),
        );
    }
    if !held.is_empty() {
        writeln!(
            out,
            "
revisions held by the revision guard (load one with --accept-revision FILE):"
        )
        .ok();
        for (path, reason) in held {
            writeln!(out, "  {path}: {reason}").ok();
        }
    }
    Ok(out)
}

/// The materialised models checked quickly against their recorded seals (`alliance verify`
/// reads every byte; the next `run` restores or rebuilds what differs).
async fn write_integrity(ctx: &JobContext, out: &mut String) -> Result<()> {
    let warehouse = &ctx.stores.warehouse;
    let mut intact = 0;
    let mut differing = Vec::new();
    for (model, state) in crate::transform::state::load_all(warehouse).await? {
        let Some(seal) = state.object else { continue };
        let found = crate::integrity::check(warehouse, &seal, crate::integrity::Depth::Quick).await?;
        match found.is_intact() {
            true => intact += 1,
            false => differing.push(format!("  {model:<28} {}: {}", seal.path, found.describe())),
        }
    }
    writeln!(out, "\nmodels and marts as published: {intact} intact, {} differ", differing.len()).ok();
    for line in differing {
        writeln!(out, "{line} (the next run restores it)").ok();
    }
    Ok(())
}
