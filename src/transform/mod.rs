//! SQL transforms: staging tables → `sql/staging` views → `sql/intermediate` tables →
//! `sql/marts`, run with DataFusion in dependency order.
//!
//! - Staging models are views (inlined into the queries that read them).
//! - Intermediate models are streamed to a staging object, audited by their data tests there and
//!   only then promoted to `warehouse/models/<name>/data.parquet` and read from it, so memory
//!   stays bounded on large fact tables and a failed intermediate is never attached by a later
//!   run.
//! - Marts are computed, passed through disclosure control when declared, written to a staging
//!   object and audited by their data tests; once every mart of the run is audited, those that
//!   passed are published atomically ([`publish`]), except marts held back with a mart that
//!   failed its tests on the same inputs ([`hold`]).
//!
//! A model whose query or tests fail is not published, and every model downstream of it is
//! skipped; the others still run. Tests of staging and intermediate models gate their
//! downstream models the same way. Before anything runs, materialised models changed outside the
//! pipeline are restored or rebuilt ([`tamper`]); fingerprints follow the code
//! ([`crate::code_identity`]).

pub mod datatest;
pub mod disclosure;
pub mod graph;
pub mod hold;
pub mod model;
pub mod publish;
pub mod run;
pub mod session;
pub mod state;
pub mod tamper;

use crate::config::Pipeline;
use crate::error::{Error, Result};
use crate::ingest::manifest::Manifest;
use crate::storage::Store;
use datafusion::prelude::SessionContext;
use graph::Graph;
use model::{Layer, Model};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;
use tracing::{info, info_span, warn, Instrument};

/// What happened to one model.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum ModelStatus {
    /// Built (and published, for a mart).
    Ok,
    /// Inputs, SQL and tests unchanged since the last successful build: nothing to do.
    Unchanged,
    /// The query failed.
    Failed,
    /// Data tests failed: not published.
    TestsFailed,
    /// An upstream model failed.
    Skipped,
    /// Passed its own tests but not published: another mart that reads the same inputs failed
    /// its tests in this run ([`hold`]).
    Held,
}

/// Report of one model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelReport {
    pub model: String,
    pub layer: Layer,
    pub status: ModelStatus,
    pub rows: Option<u64>,
    pub seconds: f64,
    pub tests: Vec<datatest::TestResult>,
    pub published: Option<String>,
    pub error: Option<String>,
    /// What disclosure control withheld and how well the audit found it protected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disclosure: Option<disclosure::Audit>,
}

impl ModelReport {
    fn new(m: &Model) -> Self {
        Self {
            model: m.name.clone(),
            layer: m.layer,
            status: ModelStatus::Ok,
            rows: None,
            seconds: 0.0,
            tests: vec![],
            published: None,
            error: None,
            disclosure: None,
        }
    }
}

/// Lineage of one staging table read by the run: the landing files and the runs that loaded them.
#[derive(Debug, Clone, Serialize)]
pub struct InputVersion {
    pub table: String,
    pub files: BTreeMap<String, serde_json::Value>,
}

/// Report of a build.
#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    pub models: Vec<ModelReport>,
    pub inputs: Vec<InputVersion>,
    /// Materialised models found changed or deleted outside the pipeline, and what was done.
    pub tampered: Vec<tamper::TamperFinding>,
}

impl BuildReport {
    /// True when every selected model built and passed its tests.
    pub fn succeeded(&self) -> bool {
        self.models.iter().all(|m| matches!(m.status, ModelStatus::Ok | ModelStatus::Unchanged))
    }
}

/// Options of a build.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Models to run (see [`graph`]); all when `None`.
    pub select: Option<String>,
    /// Rebuild even when nothing changed.
    pub force: bool,
    /// The build identity fingerprints are computed for (this binary's, by default).
    pub code: crate::code_identity::CodeIdentity,
    /// The run's lock, checked before every publish or state change ([`Error::LockLost`]).
    pub lock: crate::lock::LockHealth,
    /// Where the models' SQL runs (`[engine]` of the environment; this process by default).
    pub engine: crate::config::environment::EngineSettings,
}

/// Loads the models of `sql_dir` and checks the graph against the pipelines' tables.
pub fn load_graph(sql_dir: &Path, pipelines: &[Pipeline]) -> Result<Graph> {
    let tables: BTreeSet<String> = pipelines.iter().map(|p| p.table.clone()).collect();
    let models = model::load_models(sql_dir)?;
    for m in &models {
        for t in m.spec.tests.iter().flat_map(|t| t.reads()) {
            if !tables.contains(&t) && !models.iter().any(|o| o.name == t) {
                return Err(Error::config(&m.path, format!("a data test reads unknown table '{t}'")));
            }
        }
    }
    Graph::new(models, &tables)
}

/// Plans every model over empty staging tables without reading data: checks SQL, column names and
/// types, test queries and disclosure columns. Returns the number of models checked.
pub async fn validate(graph: &Graph, pipelines: &[Pipeline]) -> Result<usize> {
    let ctx = session::empty_session();
    for p in pipelines {
        session::register_memory(&ctx, &p.table, crate::ingest::normalise::output_schema(p), vec![])?;
    }
    for m in &graph.models {
        let df = ctx.sql(&m.sql).await.map_err(|e| Error::config(&m.path, format!("does not plan: {e}")))?;
        let schema = df.schema().as_arrow().clone();
        ctx.register_table(m.name.as_str(), df.into_view())
            .map_err(Error::datafusion(format!("registering {}", m.name)))?;
        for test in &m.spec.tests {
            ctx.sql(&test.failing_rows_sql(&m.name))
                .await
                .map_err(|e| Error::config(&m.path, format!("data test {} does not plan: {e}", test.name())))?;
        }
        if let Some(d) = &m.spec.disclosure {
            d.check(&schema).map_err(|e| Error::config(&m.path, e))?;
        }
    }
    Ok(graph.models.len())
}

/// Runs the selected models.
pub async fn build(
    warehouse: &Store,
    pipelines: &[Pipeline],
    graph: &Graph,
    options: &BuildOptions,
    run_id: &str,
    props: parquet::file::properties::WriterProperties,
) -> Result<BuildReport> {
    let mut selected: BTreeSet<String> =
        graph.select(options.select.as_deref())?.into_iter().map(|m| m.name.clone()).collect();
    let lock = &options.lock;
    lock.check()?;
    remove_leftovers(warehouse, graph).await?;
    // Materialised models changed outside the pipeline: restored, or rebuilt now.
    let tamper = tamper::check_models(warehouse, graph).await?;
    selected.extend(tamper.rebuild.iter().cloned());
    let ctx = session::build_session(warehouse, pipelines, &options.engine).await?;
    let sources_now = state::source_fingerprints(warehouse, pipelines).await?;
    let fingerprints = state::model_fingerprints(graph, &sources_now, &options.code);
    let mut failed: BTreeSet<String> = BTreeSet::new();
    let mut reports = Vec::new();
    let mut audited_marts: Vec<(usize, String)> = Vec::new();
    let mut sources = BTreeSet::new();
    let bar = crate::logging::progress(selected.len() as u64, "models");
    for m in &graph.models {
        let needed_downstream =
            graph.models.iter().any(|d| selected.contains(&d.name) && depends_on(graph, &d.name, &m.name));
        if !selected.contains(&m.name) {
            if needed_downstream {
                attach_existing(&ctx, warehouse, m).await?;
            }
            continue;
        }
        sources.extend(graph.sources[&m.name].iter().cloned());
        bar.set_message(m.name.clone());
        bar.inc(1);
        let started = Instant::now();
        let mut report = ModelReport::new(m);
        if let Some(up) = graph.upstream[&m.name].iter().find(|u| failed.contains(*u)) {
            report.status = ModelStatus::Skipped;
            report.error = Some(format!("upstream model {up} failed"));
            failed.insert(m.name.clone());
            reports.push(report);
            continue;
        }
        let fingerprint = &fingerprints[&m.name];
        let previous = state::load(warehouse, &m.name).await?;
        let exists = m.layer == Layer::Staging || warehouse.head(&materialised_path(m)).await?.is_some();
        if !options.force && exists && previous.as_ref().is_some_and(|s| &s.fingerprint == fingerprint) {
            attach_existing(&ctx, warehouse, m).await?;
            report.status = ModelStatus::Unchanged;
            report.rows = previous.and_then(|s| s.rows);
            report.published = (m.layer == Layer::Mart).then(|| materialised_path(m));
            reports.push(report);
            continue;
        }
        lock.check()?;
        // The recorded state stays until a new build succeeds: a failed or held model keeps its
        // last good object, which the state's seal still describes.
        let span = info_span!("model", model = %m.name);
        let outcome = run::run_model(&ctx, warehouse, m, run_id, &props).instrument(span).await;
        let mut seal = None;
        match outcome {
            Ok(outcome) => {
                report.rows = outcome.rows;
                report.disclosure = outcome.audit;
                let passed = outcome.tests.iter().all(|t| t.passed);
                report.tests = outcome.tests;
                if !passed {
                    report.status = ModelStatus::TestsFailed;
                    for t in report.tests.iter().filter(|t| !t.passed) {
                        warn!(model = %m.name, test = %t.test, failing_rows = t.failing_rows, "data test failed\n{}", t.sample);
                    }
                    lock.check()?;
                    discard_staged(&ctx, warehouse, m, run_id).await?;
                } else if let Some(written) = outcome.staged {
                    // An intermediate model that passed its tests: promoted, then read from there.
                    lock.check()?;
                    seal =
                        Some(publish::promote_model(warehouse, &m.name, run_id, written.bytes, written.blake3).await?);
                    session::register_parquet(&ctx, &m.name, &materialised_path(m), None).await?;
                }
            }
            Err(
                e @ (Error::DataFusion { .. } | Error::Arrow { .. } | Error::Config { .. } | Error::Disclosure { .. }),
            ) => {
                warn!(model = %m.name, error = %e, "model failed");
                report.status = ModelStatus::Failed;
                report.error = Some(e.to_string());
                discard_staged(&ctx, warehouse, m, run_id).await?;
            }
            Err(other) => return Err(other),
        }
        report.seconds = started.elapsed().as_secs_f64();
        if report.status != ModelStatus::Ok {
            failed.insert(m.name.clone());
        } else if m.layer == Layer::Mart {
            // Published below, once every mart of the run has been audited.
            audited_marts.push((reports.len(), fingerprint.clone()));
        } else {
            lock.check()?;
            let recorded = state::ModelState {
                fingerprint: fingerprint.clone(),
                run_id: run_id.to_string(),
                rows: report.rows,
                object: seal,
            };
            state::save(warehouse, &m.name, &recorded).await?;
        }
        info!(model = %m.name, status = ?report.status, rows = report.rows, seconds = report.seconds, "model done");
        reports.push(report);
    }
    bar.finish_and_clear();
    publish_audited(warehouse, graph, pipelines, run_id, &mut reports, audited_marts, lock).await?;
    let inputs = input_versions(warehouse, pipelines, &sources).await?;
    Ok(BuildReport { models: reports, inputs, tampered: tamper.findings })
}

/// Publishes the marts of this run that passed their tests, except those held back with a mart
/// that failed its tests on the same inputs ([`hold::held_marts`]).
async fn publish_audited(
    warehouse: &Store,
    graph: &Graph,
    pipelines: &[Pipeline],
    run_id: &str,
    reports: &mut [ModelReport],
    audited: Vec<(usize, String)>,
    lock: &crate::lock::LockHealth,
) -> Result<()> {
    let test_failures: Vec<String> =
        reports.iter().filter(|r| r.status == ModelStatus::TestsFailed).map(|r| r.model.clone()).collect();
    let candidates: Vec<String> = audited.iter().map(|(i, _)| reports[*i].model.clone()).collect();
    let held = hold::held_marts(graph, pipelines, &test_failures, &candidates);
    for (index, fingerprint) in audited {
        lock.check()?;
        let report = &mut reports[index];
        if let Some(reason) = held.get(&report.model) {
            warn!(model = %report.model, reason = %reason, "mart held back: not published");
            report.status = ModelStatus::Held;
            report.error = Some(reason.clone());
            publish::discard(warehouse, &publish::staged_path(&report.model, run_id)).await?;
            continue;
        }
        let seal = publish::publish(warehouse, &report.model, run_id).await?;
        report.published = Some(seal.path.clone());
        let recorded =
            state::ModelState { fingerprint, run_id: run_id.to_string(), rows: report.rows, object: Some(seal) };
        state::save(warehouse, &report.model, &recorded).await?;
    }
    Ok(())
}

/// Removes what a run killed before publishing or discarding left in the staging locations.
async fn remove_leftovers(warehouse: &Store, graph: &Graph) -> Result<()> {
    let mut prefixes = vec!["marts/_staging/".to_string()];
    prefixes.extend(
        graph.models.iter().filter(|m| m.layer == Layer::Intermediate).map(|m| format!("models/{}/_staging/", m.name)),
    );
    for prefix in prefixes {
        for leftover in warehouse.list(&prefix).await? {
            warn!(object = %leftover.location, "removing a staged model left by an interrupted run");
            warehouse.delete(leftover.location.as_ref()).await?;
        }
    }
    Ok(())
}

/// Removes a failed model's staged object; a failed intermediate is no longer readable.
async fn discard_staged(ctx: &SessionContext, warehouse: &Store, m: &Model, run_id: &str) -> Result<()> {
    match m.layer {
        Layer::Mart => publish::discard(warehouse, &publish::staged_path(&m.name, run_id)).await,
        Layer::Intermediate => {
            let _ = ctx.deregister_table(m.name.as_str());
            publish::discard(warehouse, &publish::staged_model_path(&m.name, run_id)).await
        }
        Layer::Staging => Ok(()),
    }
}

/// Lineage of the staging tables a build read.
async fn input_versions(
    warehouse: &Store,
    pipelines: &[Pipeline],
    sources: &BTreeSet<String>,
) -> Result<Vec<InputVersion>> {
    let mut inputs = Vec::new();
    for p in pipelines.iter().filter(|p| sources.contains(&p.table)) {
        let manifest = Manifest::load(warehouse, &p.name).await?;
        let files = manifest
            .files
            .iter()
            .map(|(path, r)| {
                let v = serde_json::json!({"content_hash": r.content_hash, "e_tag": r.e_tag, "size": r.size, "run_id": r.run_id, "status": r.status});
                (path.clone(), v)
            })
            .collect();
        inputs.push(InputVersion { table: p.table.clone(), files });
    }
    Ok(inputs)
}

/// Registers every model that can be read without running anything: staging views, and the
/// last materialisation of intermediate models and marts (those never built are left out).
pub async fn attach_built(ctx: &SessionContext, warehouse: &Store, graph: &Graph) -> Result<Vec<String>> {
    let mut attached = Vec::new();
    for m in &graph.models {
        match attach_existing(ctx, warehouse, m).await {
            Ok(()) => attached.push(m.name.clone()),
            // Never built, or a view that does not plan over what is there: left out.
            Err(Error::Config { .. } | Error::DataFusion { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(attached)
}

/// True if `model` reads `ancestor`, directly or not.
fn depends_on(graph: &Graph, model: &str, ancestor: &str) -> bool {
    let mut stack = vec![model.to_string()];
    let mut seen = BTreeSet::new();
    while let Some(n) = stack.pop() {
        for up in &graph.upstream[&n] {
            if up == ancestor {
                return true;
            }
            if seen.insert(up.clone()) {
                stack.push(up.clone());
            }
        }
    }
    false
}

/// Makes an unselected upstream model readable: views are re-planned, tables and marts are read
/// from their last materialisation.
async fn attach_existing(ctx: &SessionContext, warehouse: &Store, m: &Model) -> Result<()> {
    match m.layer {
        Layer::Staging => {
            let df = ctx.sql(&m.sql).await.map_err(Error::datafusion(format!("planning {}", m.name)))?;
            ctx.register_table(m.name.as_str(), df.into_view())
                .map_err(Error::datafusion(format!("registering {}", m.name)))?;
            Ok(())
        }
        Layer::Intermediate | Layer::Mart => {
            let path = materialised_path(m);
            if warehouse.head(&path).await?.is_none() {
                return Err(Error::config(
                    &m.path,
                    format!("{} has not been built yet: select it too (e.g. --select +{})", m.name, m.name),
                ));
            }
            session::register_parquet(ctx, &m.name, &path, None).await
        }
    }
}

fn materialised_path(m: &Model) -> String {
    match m.layer {
        Layer::Mart => publish::published_path(&m.name),
        _ => publish::model_path(&m.name),
    }
}
