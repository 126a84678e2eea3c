//! The marts built on an Apache DataFusion Ballista cluster are the marts built locally.
//!
//! A real S3 server (s3s-fs) holds landing and warehouse; a scheduler and an executor run in this
//! process on 127.0.0.1 with the warehouse's functions and store (the code `alliance scheduler`
//! and `alliance executor` run); the executor opens its own connection to the S3 warehouse. Every
//! model is built locally, then again with `[engine] kind = "ballista"`, and every mart is
//! compared row for row (floats to 1e-12). The executor's task count shows that the queries ran
//! there, not in the building process. Needs the `ballista` feature (`make test` runs it).

mod common;

use alliance_warehouse::cluster::executor::{run_executor, ExecutorOptions, TaskCount};
use alliance_warehouse::cluster::scheduler::{run_scheduler, SchedulerOptions};
use alliance_warehouse::config::environment::{EngineKind, EngineSettings};
use alliance_warehouse::generate::{self, GenerateArgs};
use alliance_warehouse::storage::Stores;
use alliance_warehouse::transform::{self, model::Layer, ModelStatus};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type};
use common::servers::S3Server;
use common::{pipelines, props, repo, shared, Workspace};
use std::collections::BTreeMap;
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Every published mart, its batches concatenated.
async fn marts(ws: &Workspace, names: &[String]) -> BTreeMap<String, RecordBatch> {
    let mut out = BTreeMap::new();
    for name in names {
        let bytes = ws.stores.warehouse.get(&format!("marts/{name}.parquet")).await.expect("mart published");
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap().build().unwrap();
        let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
        let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        out.insert(name.clone(), batch);
    }
    out
}

/// Asserts two marts hold the same rows in the same order: the same column names and types,
/// equal values, floats to 1e-12 (relative to the value's size when above 1). Not nullability:
/// on the cluster every staging column is read as nullable (`cluster::client`), so a mart column
/// the local engine proves non-null may be declared nullable there; its values are compared all
/// the same, nulls included.
fn assert_same(name: &str, local: &RecordBatch, cluster: &RecordBatch) {
    let columns = |b: &RecordBatch| -> Vec<(String, DataType)> {
        b.schema().fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect()
    };
    assert_eq!(columns(local), columns(cluster), "{name}: columns and types");
    assert_eq!(local.num_rows(), cluster.num_rows(), "{name}: rows");
    for (i, field) in local.schema().fields().iter().enumerate() {
        let (a, b) = (local.column(i), cluster.column(i));
        if matches!(field.data_type(), DataType::Float64 | DataType::Float32) {
            let a = arrow::compute::cast(a, &DataType::Float64).unwrap();
            let b = arrow::compute::cast(b, &DataType::Float64).unwrap();
            let (a, b) = (a.as_primitive::<Float64Type>(), b.as_primitive::<Float64Type>());
            for row in 0..a.len() {
                match (a.is_null(row), b.is_null(row)) {
                    (true, true) => {}
                    (false, false) => {
                        let (x, y) = (a.value(row), b.value(row));
                        let close = (x.is_nan() && y.is_nan()) || (x - y).abs() <= 1e-12 * x.abs().max(1.0);
                        assert!(close, "{name}.{} row {row}: local {x}, cluster {y}", field.name());
                    }
                    _ => panic!("{name}.{} row {row}: null on one side only", field.name()),
                }
            }
        } else {
            assert_eq!(a.as_ref(), b.as_ref(), "{name}.{}", field.name());
        }
    }
}

/// Ballista decodes and plans query stages recursively: like `alliance`, the test gives its
/// runtime's threads 16 MiB stacks (unoptimised builds use far more stack per frame).
#[test]
fn marts_built_on_a_ballista_cluster_match_the_local_build() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .thread_stack_size(alliance_warehouse::cli::THREAD_STACK_BYTES)
        .enable_all()
        .build()
        .unwrap()
        .block_on(build_locally_and_on_a_cluster());
}

async fn build_locally_and_on_a_cluster() {
    let (key, secret) = ("alliance-ballista", "alliance-ballista-secret-0123456789");
    let server = S3Server::start(key, secret);
    std::env::set_var("ALLIANCE_TEST_BALLISTA_KEY", key);
    std::env::set_var("ALLIANCE_TEST_BALLISTA_SECRET", secret);
    std::env::set_var("ALLIANCE_TEST_BALLISTA_ENDPOINT", format!("http://127.0.0.1:{}", server.port));
    let toml = r#"
[storage]
landing = "s3://landing"
warehouse = "s3://warehouse"

[storage.options]
endpoint = "env:ALLIANCE_TEST_BALLISTA_ENDPOINT"
access_key_id = "env:ALLIANCE_TEST_BALLISTA_KEY"
secret_access_key = "env:ALLIANCE_TEST_BALLISTA_SECRET"
region = "us-east-1"
allow_http = "true"
virtual_hosted_style_request = "false"
"#;
    let ws = Workspace::with_toml(tempfile::tempdir().unwrap(), toml);
    generate::seed(&shared(), &repo().join("config/reference"), &ws.stores.landing).await.unwrap();
    // The 2024–25 provider extracts (123,000 rows) only lengthen the CWT mart; the engines are
    // compared on every other shape (2023 extracts, every workbook, OHID, trusts).
    for object in ws.stores.landing.list("cwt-extracts/").await.unwrap() {
        ws.stores.landing.delete(object.location.as_ref()).await.unwrap();
    }
    let args = GenerateArgs { rows: 6_000, months: 2, start: "2024-01".into(), ..GenerateArgs::default() };
    generate::run(&args, &ws.stores.landing).await.unwrap();
    let all = pipelines();
    ws.ingest(&all).await;
    let graph = transform::load_graph(&repo().join("sql"), &all).unwrap();
    let mart_names: Vec<String> =
        graph.models.iter().filter(|m| m.layer == Layer::Mart).map(|m| m.name.clone()).collect();
    assert!(mart_names.len() >= 9, "{mart_names:?}");

    // The local build.
    let options = transform::BuildOptions::default();
    let run_id = alliance_warehouse::runs::new_run_id();
    let local = transform::build(&ws.stores.warehouse, &all, &graph, &options, &run_id, props()).await.unwrap();
    assert!(local.succeeded(), "{:#?}", local.models);
    let local_marts = marts(&ws, &mart_names).await;
    assert!(local_marts.values().all(|b| b.num_rows() > 0), "every mart has rows to compare");

    // A cluster on 127.0.0.1: scheduler and one executor, each with its own connection to S3.
    let scheduler_port = free_port();
    let scheduler_store = Stores::open(&ws.env.storage).unwrap().warehouse;
    let scheduler = SchedulerOptions {
        listen: format!("127.0.0.1:{scheduler_port}").parse().unwrap(),
        external_host: "127.0.0.1".into(),
    };
    tokio::spawn(async move { run_scheduler(&scheduler, &scheduler_store).await.expect("scheduler runs") });
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", scheduler_port)).is_err() {
        assert!(Instant::now() < deadline, "the scheduler did not start listening");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tasks = TaskCount::default();
    let executor = ExecutorOptions {
        scheduler_host: "127.0.0.1".into(),
        scheduler_port,
        bind_host: "127.0.0.1".into(),
        flight_port: free_port(),
        grpc_port: free_port(),
        external_host: Some("127.0.0.1".into()),
        vcores: 2,
        memory_pool_bytes: 1 << 30,
        work_dir: Some(ws.dir.path().join("executor")),
    };
    std::fs::create_dir_all(ws.dir.path().join("executor")).unwrap();
    let executor_store = Stores::open(&ws.env.storage).unwrap().warehouse;
    let counted = tasks.clone();
    tokio::spawn(async move { run_executor(&executor, &executor_store, counted).await.expect("executor runs") });

    // The same models, every one rebuilt, on the cluster.
    let engine = EngineSettings { kind: EngineKind::Ballista, url: Some(format!("df://127.0.0.1:{scheduler_port}")) };
    let options = transform::BuildOptions { force: true, engine, ..Default::default() };
    let run_id = alliance_warehouse::runs::new_run_id();
    let cluster = transform::build(&ws.stores.warehouse, &all, &graph, &options, &run_id, props()).await.unwrap();
    assert!(cluster.succeeded(), "{:#?}", cluster.models);
    assert!(cluster.models.iter().all(|m| m.status == ModelStatus::Ok), "every model rebuilt on the cluster");

    // Each materialised model and each data test is at least one job of at least one task.
    let jobs: usize = graph.models.iter().filter(|m| m.layer != Layer::Staging).map(|m| 1 + m.spec.tests.len()).sum();
    assert!(tasks.get() >= jobs as u64, "the executor ran {} tasks for {jobs} queries", tasks.get());

    let cluster_marts = marts(&ws, &mart_names).await;
    for name in &mart_names {
        assert_same(name, &local_marts[name], &cluster_marts[name]);
    }
    // The rows of the published intermediate model match too.
    for m in cluster.models.iter().filter(|m| m.layer == Layer::Intermediate) {
        let before = local.models.iter().find(|l| l.model == m.model).unwrap();
        assert_eq!(before.rows, m.rows, "{}", m.model);
    }
}
