//! Running one model: plan its SQL, materialise it where it will be audited, run its data tests.
//!
//! - A staging model becomes a view of the session.
//! - An intermediate model is streamed to `models/<model>/_staging/<run_id>.parquet` and read
//!   from there by its tests; the caller promotes it ([`super::publish::promote_model`]) only if
//!   they pass.
//! - A mart is computed in a fixed row order, passed through disclosure control when declared,
//!   written to `marts/_staging/<mart>/<run_id>.parquet` and registered in memory for its tests
//!   and for the marts that read it; the caller publishes it after every mart of the run has
//!   been audited ([`super::build`]).

use super::model::{Layer, Model};
use super::{datatest, disclosure, publish, session};
use crate::error::{Error, Result};
use crate::parquet_sink::Written;
use crate::storage::Store;
use datafusion::arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use tracing::info;

/// What one model run gave.
#[derive(Debug)]
pub struct ModelOutcome {
    /// Rows of a materialised model.
    pub rows: Option<u64>,
    pub tests: Vec<datatest::TestResult>,
    /// The disclosure audit of a protected mart.
    pub audit: Option<disclosure::Audit>,
    /// The staged object of an intermediate model (its size and hash, for the seal).
    pub staged: Option<Written>,
}

/// Runs one model; see the module documentation.
pub async fn run_model(
    ctx: &SessionContext,
    warehouse: &Store,
    m: &Model,
    run_id: &str,
    props: &parquet::file::properties::WriterProperties,
) -> Result<ModelOutcome> {
    let context = |what: &str| format!("{what} {}", m.name);
    let df = ctx.sql(&m.sql).await.map_err(Error::datafusion(context("planning")))?;
    let mut audit = None;
    let mut staged = None;
    let rows = match m.layer {
        Layer::Staging => {
            ctx.register_table(m.name.as_str(), df.into_view()).map_err(Error::datafusion(context("registering")))?;
            None
        }
        Layer::Intermediate => {
            let path = publish::staged_model_path(&m.name, run_id);
            let schema = std::sync::Arc::new(df.schema().as_arrow().clone());
            let mut stream = df.execute_stream().await.map_err(Error::datafusion(context("running")))?;
            let threads = crate::ingest::parallel::default_workers();
            let mut sink =
                crate::parquet_sink::ParquetSink::open(warehouse, &path, schema.clone(), props.clone(), threads)?;
            while let Some(batch) = stream.next().await {
                sink.write(&batch.map_err(Error::datafusion(context("running")))?).await?;
            }
            let written = sink.close_written().await?;
            session::register_parquet(ctx, &m.name, &path, Some(&schema)).await?;
            let rows = written.rows;
            staged = Some(written);
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
    let mut tests = Vec::with_capacity(m.spec.tests.len());
    for test in &m.spec.tests {
        tests.push(test.run(ctx, &m.name, &m.name).await?);
    }
    Ok(ModelOutcome { rows, tests, audit, staged })
}
