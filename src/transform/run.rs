//! Running one model: plan its SQL, materialise it where it will be audited, run its data tests.
//!
//! - A staging model becomes a view of the session.
//! - An intermediate model is streamed to `models/<model>/_staging/<run_id>.parquet`; its row,
//!   row-count and unique tests are judged on the rows as they are written
//!   ([`datatest::streamed`]), the others read it from there, as does a failing test for its
//!   sample rows; the caller promotes it ([`super::publish::promote_model`]) only if
//!   they pass.
//! - A mart is computed in a fixed row order, passed through disclosure control when declared,
//!   written to `marts/_staging/<mart>/<run_id>.parquet` and registered in memory (on a
//!   distributed engine: from that object) for its tests and for the marts that read it; the caller publishes it after every mart of the run has
//!   been audited ([`super::build`]).

use super::model::{Layer, Model};
use super::{datatest, disclosure, publish, session};
use crate::error::{Error, Result};
use crate::parquet_sink::Written;
use crate::storage::Store;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::{concat_batches, lexsort_to_indices, take_record_batch, SortColumn, SortOptions};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
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

/// A mart's rows in a fixed order, every column ascending, nulls first: the same inputs give the
/// same file and the same disclosure decisions, whatever order parallel (or distributed)
/// execution produced. Sorted here rather than by an `ORDER BY` in the plan, because DataFusion
/// 55's optimiser drops sort keys it takes as functionally dependent on earlier ones, wrongly so
/// after a non-equi join: `mart_backlog` came out ordered by `month_end` alone, its trusts in
/// hash order.
pub fn fixed_order(schema: &SchemaRef, batches: &[RecordBatch]) -> std::result::Result<RecordBatch, ArrowError> {
    let batch = concat_batches(schema, batches)?;
    let options = SortOptions { descending: false, nulls_first: true };
    let columns: Vec<SortColumn> =
        batch.columns().iter().map(|c| SortColumn { values: c.clone(), options: Some(options) }).collect();
    if columns.is_empty() || batch.num_rows() < 2 {
        return Ok(batch);
    }
    let indices = lexsort_to_indices(&columns, None)?;
    take_record_batch(&batch, &indices)
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
    // Failing-row counts of tests judged on the rows as they were written (intermediate models).
    let mut known = std::collections::HashMap::new();
    let rows = match m.layer {
        Layer::Staging => {
            ctx.register_table(m.name.as_str(), df.into_view()).map_err(Error::datafusion(context("registering")))?;
            None
        }
        Layer::Intermediate => {
            let path = publish::staged_model_path(&m.name, run_id);
            let schema = session::plain_strings(&std::sync::Arc::new(df.schema().as_arrow().clone()));
            let mut stream = df.execute_stream().await.map_err(Error::datafusion(context("running")))?;
            let threads = crate::ingest::parallel::default_workers();
            let mut sink =
                crate::parquet_sink::ParquetSink::open(warehouse, &path, schema.clone(), props.clone(), threads)?;
            let mut judged = datatest::streamed::StreamedTests::plan(&m.spec.tests, ctx, &schema);
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(Error::datafusion(context("running")))?;
                let batch = session::plain_batch(batch).map_err(Error::arrow(context("casting")))?;
                judged.observe(&batch);
                sink.write(&batch).await?;
            }
            let written = sink.close_written().await?;
            // Sorting the key hashes of a large model takes a while: off the async workers. (Should
            // that task fail, nothing is known and every test runs as SQL.)
            known = tokio::task::spawn_blocking(move || judged.finish()).await.unwrap_or_default();
            session::register_parquet(ctx, &m.name, &path, Some(&schema)).await?;
            let rows = written.rows;
            staged = Some(written);
            Some(rows)
        }
        Layer::Mart => {
            let schema = session::plain_strings(&std::sync::Arc::new(df.schema().as_arrow().clone()));
            let batches: Vec<RecordBatch> = df.collect().await.map_err(Error::datafusion(context("running")))?;
            let batches = batches.into_iter().map(session::plain_batch);
            let batches =
                batches.collect::<std::result::Result<Vec<_>, _>>().map_err(Error::arrow(context("casting")))?;
            let schema = batches.first().map(|b| b.schema()).unwrap_or(schema);
            let batches = vec![fixed_order(&schema, &batches).map_err(Error::arrow(context("ordering")))?];
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
            session::register_result(ctx, &m.name, schema, batches, &path).await?;
            Some(rows)
        }
    };
    let tests = datatest::run_all(&m.spec.tests, &known, ctx, &m.name, &m.name).await?;
    Ok(ModelOutcome { rows, tests, audit, staged })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, Float64Array, Int32Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn fixed_order_sorts_on_every_column_whatever_the_input_order() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("month", DataType::Int32, true),
            Field::new("org", DataType::Utf8, true),
            Field::new("x", DataType::Float64, true),
        ]));
        let batch = |m: Vec<Option<i32>>, o: Vec<Option<&str>>, x: Vec<Option<f64>>| {
            RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(Int32Array::from(m)), Arc::new(StringArray::from(o)), Arc::new(Float64Array::from(x))],
            )
            .unwrap()
        };
        let a = batch(vec![Some(2), Some(1)], vec![Some("RRV"), Some("RAL")], vec![Some(1.0), None]);
        let b = batch(
            vec![Some(1), None, Some(1)],
            vec![Some("R1H"), Some("RQX"), Some("RAL")],
            vec![None, Some(3.0), Some(0.5)],
        );
        let one = fixed_order(&schema, &[a.clone(), b.clone()]).unwrap();
        let other = fixed_order(&schema, &[b, a]).unwrap();
        assert_eq!(one, other);
        let orgs: Vec<_> = one.column(1).as_any().downcast_ref::<StringArray>().unwrap().iter().flatten().collect();
        // Null month first, then month 1 by org (RAL's null x before its 0.5), then month 2.
        assert_eq!(orgs, ["RQX", "R1H", "RAL", "RAL", "RRV"]);
        let x = one.column(2).as_any().downcast_ref::<Float64Array>().unwrap();
        assert!(x.is_null(2) && x.value(3) == 0.5);
    }
}
