//! The build's side of the `ballista` engine: a DataFusion session whose queries run on the
//! cluster.
//!
//! The session plans SQL here, against the same tables as the local engine, so model SQL, data
//! tests and error messages are unchanged; executing a plan submits it to the scheduler and
//! streams the final stage's batches back. Every table is Parquet on the warehouse store (a
//! plan's tables travel to the scheduler as their location and schema): reference tables, which
//! the local engine holds in memory, are read in place. A staging table with no data yet is not
//! registered: Ballista 55 re-plans a job over an empty table without end, so the models reading
//! it fail (table not found) rather than hang the build; the local engine builds them.

use crate::config::environment::DEFAULT_BALLISTA_PORT;
use crate::config::pipeline::Pipeline;
use crate::error::{Error, Result};
use crate::ingest::normalise::output_schema;
use crate::storage::Store;
use crate::transform::session::{self, TablesOnStore};
use ballista::prelude::{SessionConfigExt, SessionContextExt};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::SessionContext;

/// A session over `warehouse` whose queries run on the Ballista cluster at `url`
/// (`df://host:port`), with every pipeline's staging table registered.
pub async fn session(warehouse: &Store, pipelines: &[Pipeline], url: &str) -> Result<SessionContext> {
    let local = session::empty_session();
    let url_of_store = url::Url::parse(session::WAREHOUSE_URL).expect("static URL");
    local.register_object_store(&url_of_store, warehouse.object_store());
    let state = local.state();
    // Ballista 55's adaptive planner (on by default) re-plans a job whose stage produced no rows,
    // or that reads a table with no files, without end: thousands of stages, the build hung
    // (seen with mart_referral_activity's 2019 baseline when no 2019 month is loaded). The
    // static distributed planner runs such jobs like any other.
    let config = state
        .config()
        .clone()
        .with_extension(std::sync::Arc::new(TablesOnStore))
        .upgrade_for_ballista()
        .with_ballista_adaptive_query_planner(false);
    let state = SessionStateBuilder::new_from_existing(state).with_config(config).build();
    let ctx = SessionContext::remote_with_state(&scheduler_url(url)?, state)
        .await
        .map_err(Error::datafusion(format!("connecting to the Ballista scheduler {url}")))?;
    // Ballista's session replaces the function list with its own: the statistical UDFs again.
    crate::stats::udf::register(&ctx);
    for p in pipelines {
        let prefix = format!("staging/{}/", p.table);
        if !warehouse.list(&prefix).await?.iter().any(|m| m.location.as_ref().ends_with(".parquet")) {
            // Ballista 55 re-plans a job reading a table with no files without end (seen with an
            // empty reference table): such a table is left out, so the models reading it fail
            // at once, naming it, instead of hanging the build.
            tracing::warn!(table = %p.table, "no data yet: models reading it cannot run on the Ballista engine");
            continue;
        }
        session::register_parquet(&ctx, &p.table, &prefix, Some(&every_column_nullable(&output_schema(p)))).await?;
    }
    tracing::info!(scheduler = %url, "models run on the Ballista cluster");
    Ok(ctx)
}

/// `schema` with every column nullable. Staging tables are declared with their contract's
/// non-null columns; on the cluster a plan that reaches the executors through Ballista's static
/// planner can keep a column of the null-padded side of an outer join non-nullable (seen with
/// `ref_operational_standards.effective_from` in mart_cwt_performance's LEFT JOIN: "declared as
/// non-nullable but contains null values"). Declaring every column nullable changes no value.
fn every_column_nullable(schema: &SchemaRef) -> SchemaRef {
    session::map_fields(schema, |f| f.clone().with_nullable(true))
}

/// `df://host[:port]` as the scheduler URL Ballista connects to.
fn scheduler_url(url: &str) -> Result<String> {
    let parsed = url::Url::parse(url).map_err(|e| Error::config("[engine]", format!("url '{url}': {e}")))?;
    let host =
        parsed.host_str().filter(|h| !h.is_empty()).ok_or_else(|| Error::config("[engine]", "url has no host"))?;
    Ok(format!("df://{host}:{}", parsed.port().unwrap_or(DEFAULT_BALLISTA_PORT)))
}
