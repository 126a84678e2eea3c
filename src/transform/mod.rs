//! SQL transforms: staging tables → `sql/staging` views → `sql/intermediate` tables →
//! `sql/marts`, run with DataFusion in dependency order.
//!
//! - Staging models are views (inlined into the queries that read them).
//! - Intermediate models are streamed to `warehouse/models/<name>/data.parquet` and read from
//!   there, so memory stays bounded on large fact tables.
//! - Marts are computed, passed through disclosure control when declared, written to a staging
//!   object, audited by their data tests and only then published atomically ([`publish`]).
//!
//! A model whose query or tests fail is not published, and every model downstream of it is
//! skipped; the others still run. Tests of staging and intermediate models gate their
//! downstream models the same way.

pub mod datatest;
pub mod disclosure;
pub mod graph;
pub mod model;
pub mod publish;
pub mod session;
pub mod state;

use crate::config::Pipeline;
use crate::error::{Error, Result};
use crate::ingest::manifest::Manifest;
use crate::storage::Store;
use datafusion::arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
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
    /// The run's lock, checked before every publish or state change ([`Error::LockLost`]).
    pub lock: crate::lock::LockHealth,
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
    let selected: BTreeSet<String> =
        graph.select(options.select.as_deref())?.into_iter().map(|m| m.name.clone()).collect();
    let lock = &options.lock;
    lock.check()?;
    // Staged marts left by a run that was killed before it published or discarded them.
    for leftover in warehouse.list("marts/_staging/").await? {
        warn!(object = %leftover.location, "removing a staged mart left by an interrupted run");
        warehouse.delete(leftover.location.as_ref()).await?;
    }
    let ctx = session::session(warehouse, pipelines).await?;
    let fingerprints = state::model_fingerprints(graph, &state::source_fingerprints(warehouse, pipelines).await?);
    let mut failed: BTreeSet<String> = BTreeSet::new();
    let mut reports = Vec::new();
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
        let mut report = ModelReport {
            model: m.name.clone(),
            layer: m.layer,
            status: ModelStatus::Ok,
            rows: None,
            seconds: 0.0,
            tests: vec![],
            published: None,
            error: None,
            disclosure: None,
        };
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
        state::clear(warehouse, &m.name).await?;
        let span = info_span!("model", model = %m.name);
        let outcome = run_model(&ctx, warehouse, m, run_id, &props, lock).instrument(span).await;
        match outcome {
            Ok((rows, tests, audit)) => {
                report.rows = rows;
                report.disclosure = audit;
                let passed = tests.iter().all(|t| t.passed);
                report.tests = tests;
                if !passed {
                    report.status = ModelStatus::TestsFailed;
                    for t in report.tests.iter().filter(|t| !t.passed) {
                        warn!(model = %m.name, test = %t.test, failing_rows = t.failing_rows, "data test failed\n{}", t.sample);
                    }
                    lock.check()?;
                    if m.layer == Layer::Mart {
                        publish::discard(warehouse, &m.name, run_id).await?;
                    }
                } else if m.layer == Layer::Mart {
                    lock.check()?;
                    report.published = Some(publish::publish(warehouse, &m.name, run_id).await?);
                }
            }
            Err(
                e @ (Error::DataFusion { .. } | Error::Arrow { .. } | Error::Config { .. } | Error::Disclosure { .. }),
            ) => {
                warn!(model = %m.name, error = %e, "model failed");
                report.status = ModelStatus::Failed;
                report.error = Some(e.to_string());
            }
            Err(other) => return Err(other),
        }
        if report.status == ModelStatus::Ok {
            lock.check()?;
            let recorded =
                state::ModelState { fingerprint: fingerprint.clone(), run_id: run_id.to_string(), rows: report.rows };
            state::save(warehouse, &m.name, &recorded).await?;
        } else {
            failed.insert(m.name.clone());
        }
        report.seconds = started.elapsed().as_secs_f64();
        info!(model = %m.name, status = ?report.status, rows = report.rows, seconds = report.seconds, "model done");
        reports.push(report);
    }
    bar.finish_and_clear();
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
    Ok(BuildReport { models: reports, inputs })
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
        _ => format!("models/{}/data.parquet", m.name),
    }
}

/// What one model run gave: its row count (materialised models), test results and, for a
/// protected mart, the disclosure audit.
type ModelOutcome = (Option<u64>, Vec<datatest::TestResult>, Option<disclosure::Audit>);

/// Runs one model.
async fn run_model(
    ctx: &SessionContext,
    warehouse: &Store,
    m: &Model,
    run_id: &str,
    props: &parquet::file::properties::WriterProperties,
    lock: &crate::lock::LockHealth,
) -> Result<ModelOutcome> {
    let context = |what: &str| format!("{what} {}", m.name);
    let df = ctx.sql(&m.sql).await.map_err(Error::datafusion(context("planning")))?;
    let mut audit = None;
    let rows = match m.layer {
        Layer::Staging => {
            ctx.register_table(m.name.as_str(), df.into_view()).map_err(Error::datafusion(context("registering")))?;
            None
        }
        Layer::Intermediate => {
            let path = materialised_path(m);
            let schema = std::sync::Arc::new(df.schema().as_arrow().clone());
            let mut stream = df.execute_stream().await.map_err(Error::datafusion(context("running")))?;
            let threads = crate::ingest::parallel::default_workers();
            let mut sink =
                crate::parquet_sink::ParquetSink::open(warehouse, &path, schema.clone(), props.clone(), threads)?;
            while let Some(batch) = stream.next().await {
                sink.write(&batch.map_err(Error::datafusion(context("running")))?).await?;
            }
            // Completing the upload replaces the materialisation readers see.
            lock.check()?;
            let rows = sink.close().await?;
            session::register_parquet(ctx, &m.name, &path, Some(&schema)).await?;
            Some(rows)
        }
        Layer::Mart => {
            // A fixed row order (every column, ascending): the same inputs give the same file and
            // the same disclosure decisions, whatever order parallel execution produced.
            let order: Vec<_> =
                df.schema().columns().into_iter().map(|c| datafusion::prelude::col(c).sort(true, true)).collect();
            let df = df.sort(order).map_err(Error::datafusion(context("ordering")))?;
            let schema = std::sync::Arc::new(df.schema().as_arrow().clone());
            let batches: Vec<RecordBatch> = df.collect().await.map_err(Error::datafusion(context("running")))?;
            let schema = batches.first().map(|b| b.schema()).unwrap_or(schema);
            let (schema, batches) = match &m.spec.disclosure {
                Some(d) => {
                    let (protected, report) = d.apply(&m.name, schema, &batches)?;
                    info!(model = %m.name, withheld = report.withheld, primary = report.primary, min_protection_range = ?report.min_protection_range, "disclosure control audited");
                    audit = Some(report);
                    (protected.schema(), vec![protected])
                }
                None => (schema, batches),
            };
            let path = publish::staged_path(&m.name, run_id);
            let mut writer = crate::ingest::writer::open_writer(warehouse, &path, schema.clone(), props.clone())?;
            let mut rows = 0u64;
            for batch in &batches {
                rows += batch.num_rows() as u64;
                writer.write(batch).await.map_err(Error::parquet(context("writing")))?;
            }
            writer.close().await.map_err(Error::parquet(context("completing")))?;
            session::register_memory(ctx, &m.name, schema, batches)?;
            Some(rows)
        }
    };
    let mut results = Vec::with_capacity(m.spec.tests.len());
    for test in &m.spec.tests {
        results.push(test.run(ctx, &m.name, &m.name).await?);
    }
    Ok((rows, results, audit))
}
