//! The DataFusion session models run in: the warehouse's object store registered under
//! [`WAREHOUSE_URL`], every pipeline's staging table registered by its name, the statistical UDFs.
//!
//! Staging tables of `full_replace` pipelines (reference data: trusts, LSOAs, populations,
//! standards) are small dimensions and are loaded into memory (`MemTable`), so that joins build
//! their hash tables on them rather than on the fact side. Other staging tables are Parquet
//! listing tables read in place, streamed. A table with no data yet is an empty table of the
//! pipeline's schema, so models still plan.
//!
//! Every session shares its operators' memory (hash tables, aggregates, sorts) in one pool of
//! [`memory_limit`] bytes (the environment's `[limits] memory_limit_bytes`), divided fairly among
//! the operators that can spill; beyond it they spill to temporary files, and an operator that
//! cannot fails with DataFusion's resources-exhausted error instead of growing without bound.
//!
//! A build's session reads Parquet strings as Arrow string views and casts what each model
//! returns back to plain strings ([`read_strings_as_views`]); query sessions read plain strings.
//!
//! [`build_session`] chooses the engine of `[engine]`: this session, or (feature `ballista`) a
//! session whose queries run on a Ballista cluster ([`crate::cluster::client`]). A distributed
//! session cannot ship in-memory tables to its executors, so there every table, reference tables
//! and just-built marts included, is a Parquet table on the shared store ([`tables_on_store`]).

use crate::config::environment::{EngineKind, EngineSettings};
use crate::config::pipeline::{LoadMode, Pipeline};
use crate::error::{Error, Result};
use crate::ingest::normalise::output_schema;
use crate::storage::Store;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::datasource::MemTable;
use datafusion::execution::disk_manager::DiskManagerBuilder;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::options::ParquetReadOptions;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Memory pool size of the sessions this process creates (see the module documentation).
static MEMORY_LIMIT: AtomicU64 = AtomicU64::new(crate::config::environment::DEFAULT_MEMORY_LIMIT_BYTES);

/// Sets the memory pool size of sessions created from now on (from `[limits]
/// memory_limit_bytes`, when a command or job starts).
pub fn set_memory_limit(bytes: u64) {
    MEMORY_LIMIT.store(bytes.max(1), Ordering::Relaxed);
}

/// The memory pool size of new sessions, in bytes.
pub fn memory_limit() -> u64 {
    MEMORY_LIMIT.load(Ordering::Relaxed)
}

/// URL under which the warehouse store is known to DataFusion.
pub const WAREHOUSE_URL: &str = "alliance://warehouse/";

/// The warehouse's session settings, for this process and for a cluster's scheduler and executors.
pub fn warehouse_config(config: SessionConfig) -> SessionConfig {
    let mut config = config.with_information_schema(true).with_default_catalog_and_schema("alliance", "public");
    // Staging tables keep one folder per month: read every file below the table's folder.
    config.options_mut().execution.listing_table_ignore_subdirectory = false;
    // Plain UTF-8 strings throughout: published marts are read by tools that may not know
    // Arrow's string views.
    config.options_mut().execution.parquet.schema_force_view_types = false;
    config.options_mut().sql_parser.map_string_types_to_utf8view = false;
    config
}

/// A runtime with the memory pool of [`memory_limit`] bytes, spilling to temporary files, and,
/// when given, the warehouse store registered under [`WAREHOUSE_URL`].
pub fn warehouse_runtime(warehouse: Option<&Store>) -> datafusion::error::Result<Arc<RuntimeEnv>> {
    let pool = FairSpillPool::new(usize::try_from(memory_limit()).unwrap_or(usize::MAX));
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(pool))
        .with_disk_manager_builder(DiskManagerBuilder::default())
        .build_arc()?;
    if let Some(store) = warehouse {
        runtime.register_object_store(&url::Url::parse(WAREHOUSE_URL).expect("static URL"), store.object_store());
    }
    Ok(runtime)
}

/// A session with the warehouse's settings and the statistical UDFs, and no tables.
pub fn empty_session() -> SessionContext {
    let config = warehouse_config(SessionConfig::new());
    let ctx = match warehouse_runtime(None) {
        Ok(runtime) => SessionContext::new_with_config_rt(config, runtime),
        Err(e) => {
            tracing::warn!(error = %e, "no memory-limited runtime; using DataFusion's unbounded default");
            SessionContext::new_with_config(config)
        }
    };
    crate::stats::udf::register(&ctx);
    ctx
}

/// Marks a session whose tables must all be Parquet on the warehouse store: its queries run on
/// other machines, which cannot read this process's memory.
#[derive(Debug, Clone, Copy, Default)]
pub struct TablesOnStore;

/// True when `ctx` may hold only tables on the store ([`TablesOnStore`]).
pub fn tables_on_store(ctx: &SessionContext) -> bool {
    ctx.state().config().get_extension::<TablesOnStore>().is_some()
}

/// The session a build runs its models in, on the engine of `[engine]`.
pub async fn build_session(
    warehouse: &Store,
    pipelines: &[Pipeline],
    engine: &EngineSettings,
) -> Result<SessionContext> {
    match engine.kind {
        EngineKind::Local => {
            let ctx = empty_session();
            read_strings_as_views(&ctx);
            collect_join_build_sides(&ctx);
            register_staging(ctx, warehouse, pipelines).await
        }
        #[cfg(feature = "ballista")]
        EngineKind::Ballista => {
            let url = engine.url.as_deref().unwrap_or_default();
            crate::cluster::client::session(warehouse, pipelines, url).await
        }
        #[cfg(not(feature = "ballista"))]
        EngineKind::Ballista => Err(Error::config(
            "[engine]",
            "kind = \"ballista\" needs an alliance binary built with the `ballista` feature \
             (cargo build --features ballista)",
        )),
    }
}

/// A session over `warehouse` with every pipeline's staging table registered.
pub async fn session(warehouse: &Store, pipelines: &[Pipeline]) -> Result<SessionContext> {
    register_staging(empty_session(), warehouse, pipelines).await
}

/// Makes `ctx` read the strings of Parquet tables as Arrow string views (a build's session):
/// joins, repartitions and aggregates then move 16-byte views instead of copying every string
/// (on 20M pathways `int_pathways` took 39 s with plain strings, 32 s with views, in DataFusion
/// 55). What a model returns is cast back to plain strings ([`plain_batch`]) before it is
/// written, audited or tested, so published files and their schemas do not change. Sessions
/// that answer analysts keep plain strings: their results go to clients over Flight SQL.
pub fn read_strings_as_views(ctx: &SessionContext) {
    ctx.state_ref().write().config_mut().options_mut().execution.parquet.schema_force_view_types = true;
}

/// Makes `ctx` plan every hash join without hash-partitioning its inputs (a build's session on
/// one machine): the smaller input is collected once and the larger streams past it in its own
/// partitions. `int_pathways` joins its 20M snapshot rows to the few pathways reported again, and
/// to four small dimensions; hash-partitioning both sides first moved every wide row between
/// threads once more (int_pathways' SQL on 20M rows, 2 cores, DataFusion 55: 17-18 s, 12-14 s
/// without). A cluster keeps partitioned joins: that is how it spreads a large join.
pub fn collect_join_build_sides(ctx: &SessionContext) {
    ctx.state_ref().write().config_mut().options_mut().optimizer.repartition_joins = false;
}

fn reads_strings_as_views(ctx: &SessionContext) -> bool {
    ctx.state_ref().read().config().options().execution.parquet.schema_force_view_types
}

/// `schema` with each field replaced by `f(field)`, its metadata kept.
pub fn map_fields(schema: &SchemaRef, f: impl Fn(&Field) -> Field) -> SchemaRef {
    let fields: Vec<Field> = schema.fields().iter().map(|field| f(field)).collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `schema` with string views for plain strings.
fn with_string_views(schema: &SchemaRef) -> SchemaRef {
    map_fields(schema, |f| match f.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 => f.clone().with_data_type(DataType::Utf8View),
        _ => f.clone(),
    })
}

/// `schema` with plain strings for string views: the schema a model's output is written with.
pub fn plain_strings(schema: &SchemaRef) -> SchemaRef {
    map_fields(schema, |f| match f.data_type() {
        DataType::Utf8View => f.clone().with_data_type(DataType::Utf8),
        _ => f.clone(),
    })
}

/// `batch` with its string views cast to plain strings (the schema [`plain_strings`] gives).
pub fn plain_batch(batch: RecordBatch) -> std::result::Result<RecordBatch, ArrowError> {
    if batch.columns().iter().all(|c| c.data_type() != &DataType::Utf8View) {
        return Ok(batch);
    }
    let schema = plain_strings(&batch.schema());
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| match c.data_type() == f.data_type() {
            true => Ok(c.clone()),
            false => datafusion::arrow::compute::cast(c, f.data_type()),
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema, columns)
}

async fn register_staging(ctx: SessionContext, warehouse: &Store, pipelines: &[Pipeline]) -> Result<SessionContext> {
    let url = url::Url::parse(WAREHOUSE_URL).expect("static URL");
    ctx.register_object_store(&url, warehouse.object_store());
    for p in pipelines {
        let prefix = format!("staging/{}/", p.table);
        let has_data = warehouse.list(&prefix).await?.iter().any(|m| m.location.as_ref().ends_with(".parquet"));
        let schema = output_schema(p);
        if !has_data {
            register_memory(&ctx, &p.table, schema, vec![])?;
        } else if p.load.mode == LoadMode::FullReplace {
            let df = read_parquet(&ctx, &prefix, &schema).await?;
            let batches = df.collect().await.map_err(Error::datafusion(format!("loading {}", p.table)))?;
            register_memory(&ctx, &p.table, schema, batches)?;
        } else {
            register_parquet(&ctx, &p.table, &prefix, Some(&schema)).await?;
        }
    }
    Ok(ctx)
}

async fn read_parquet(ctx: &SessionContext, prefix: &str, schema: &SchemaRef) -> Result<DataFrame> {
    let options = ParquetReadOptions::default().schema(schema);
    ctx.read_parquet(format!("{WAREHOUSE_URL}{prefix}"), options)
        .await
        .map_err(Error::datafusion(format!("reading {prefix}")))
}

/// Registers Parquet under `prefix` of the warehouse (a folder or one object) as `name`.
pub async fn register_parquet(
    ctx: &SessionContext,
    name: &str,
    prefix: &str,
    schema: Option<&SchemaRef>,
) -> Result<()> {
    let _ = ctx.deregister_table(name);
    let mut options = ParquetReadOptions::default();
    let views = schema.filter(|_| reads_strings_as_views(ctx)).map(with_string_views);
    if let Some(schema) = views.as_ref().or(schema) {
        options = options.schema(schema);
    }
    ctx.register_parquet(name, format!("{WAREHOUSE_URL}{prefix}"), options)
        .await
        .map_err(Error::datafusion(format!("registering {name} from {prefix}")))
}

/// Registers a model's result (in memory, or on a distributed session from the object at `path`
/// it was just written to).
pub async fn register_result(
    ctx: &SessionContext,
    name: &str,
    schema: SchemaRef,
    batches: Vec<datafusion::arrow::array::RecordBatch>,
    path: &str,
) -> Result<()> {
    if tables_on_store(ctx) {
        register_parquet(ctx, name, path, Some(&schema)).await
    } else {
        register_memory(ctx, name, schema, batches)
    }
}

/// Registers batches as an in-memory table.
pub fn register_memory(
    ctx: &SessionContext,
    name: &str,
    schema: SchemaRef,
    batches: Vec<datafusion::arrow::array::RecordBatch>,
) -> Result<()> {
    let _ = ctx.deregister_table(name);
    let table = MemTable::try_new(schema, vec![batches]).map_err(Error::datafusion(format!("table {name}")))?;
    ctx.register_table(name, Arc::new(table)).map_err(Error::datafusion(format!("registering {name}")))?;
    Ok(())
}

/// Registers every published mart (`marts/<name>.parquet`) under its name.
pub async fn register_marts(ctx: &SessionContext, warehouse: &Store) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for meta in warehouse.list("marts/").await? {
        let path = meta.location.to_string();
        let Some(name) = path.strip_prefix("marts/").and_then(|n| n.strip_suffix(".parquet")) else { continue };
        if name.contains('/') {
            continue;
        }
        register_parquet(ctx, name, &path, None).await?;
        names.push(name.to_string());
    }
    Ok(names)
}
