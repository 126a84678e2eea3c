//! `alliance executor`: a Ballista executor that knows the warehouse and its functions.
//!
//! An executor registers with the scheduler, pulls tasks (a stage's plan for some partitions),
//! reads the warehouse's Parquet through the warehouse store, evaluates the statistical UDFs and
//! keeps shuffle output in its work folder, served to other executors and to the client over
//! Arrow Flight on `port`. Its operators share a memory pool of `memory_pool_bytes`, split
//! between its concurrent tasks; beyond it they spill to the work folder. [`TaskCount`] counts
//! the tasks it has run, which the test reads to show that queries ran here.

use super::{cluster_error, warehouse_state};
use crate::error::Result;
use crate::storage::Store;
use ballista_core::config::TaskSchedulingPolicy;
use ballista_core::extension::SessionConfigExt;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::JobId;
use ballista_executor::execution_engine::{DefaultExecutionEngine, ExecutionEngine, QueryStageExecutor};
use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionConfig;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Default Arrow Flight port of `alliance executor` (results and shuffle data).
pub const DEFAULT_FLIGHT_PORT: u16 = 50051;
/// Default gRPC port of `alliance executor`.
pub const DEFAULT_GRPC_PORT: u16 = 50052;

/// How an executor reaches its scheduler and serves its data.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// Scheduler host.
    pub scheduler_host: String,
    /// Scheduler port.
    pub scheduler_port: u16,
    /// Address to bind (IP).
    pub bind_host: String,
    /// Arrow Flight port.
    pub flight_port: u16,
    /// gRPC port.
    pub grpc_port: u16,
    /// Host name the scheduler, other executors and clients reach this executor by.
    pub external_host: Option<String>,
    /// Tasks run at once (0: one per core).
    pub vcores: usize,
    /// Memory pool of the executor's operators, in bytes.
    pub memory_pool_bytes: u64,
    /// Folder for shuffle files and spills (a temporary folder when `None`).
    pub work_dir: Option<PathBuf>,
}

/// Tasks an executor has run (shared with the caller).
#[derive(Debug, Clone, Default)]
pub struct TaskCount(Arc<AtomicU64>);

impl TaskCount {
    /// Tasks started so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Ballista's execution engine, counting the tasks it is given.
struct CountingEngine {
    inner: DefaultExecutionEngine,
    tasks: TaskCount,
}

impl ExecutionEngine for CountingEngine {
    fn create_query_stage_exec(
        &self,
        job_id: JobId,
        stage_id: usize,
        task_id: usize,
        global_output_partition_ids: Vec<usize>,
        plan: Arc<dyn ExecutionPlan>,
        work_dir: &str,
        config: &SessionConfig,
    ) -> datafusion::error::Result<Arc<dyn QueryStageExecutor>> {
        self.tasks.0.fetch_add(1, Ordering::SeqCst);
        tracing::debug!(job = %job_id, stage = stage_id, task = task_id, "task");
        self.inner.create_query_stage_exec(
            job_id,
            stage_id,
            task_id,
            global_output_partition_ids,
            plan,
            work_dir,
            config,
        )
    }
}

/// Runs an executor until the process stops (or its scheduler tells it to); `tasks` counts the
/// tasks it runs.
pub async fn run_executor(options: &ExecutorOptions, warehouse: &Store, tasks: TaskCount) -> Result<()> {
    let state = warehouse_state(SessionConfig::new_with_ballista(), warehouse)
        .map_err(crate::error::Error::datafusion("building the executor's session"))?;
    let runtime: Arc<RuntimeEnv> = state.runtime_env().clone();
    let functions = Arc::new(BallistaFunctionRegistry::from(&state));
    let config = ExecutorProcessConfig {
        scheduler_host: options.scheduler_host.clone(),
        scheduler_port: options.scheduler_port,
        bind_host: options.bind_host.clone(),
        port: options.flight_port,
        grpc_port: options.grpc_port,
        external_host: options.external_host.clone(),
        vcores: options.vcores,
        task_scheduling_policy: TaskSchedulingPolicy::PullStaged,
        work_dir: options.work_dir.as_ref().map(|d| d.display().to_string()),
        memory_pool_size: Some(options.memory_pool_bytes),
        // Retry reaching the scheduler for a minute (it may start after its executors).
        scheduler_connect_timeout_seconds: 60,
        override_function_registry: Some(functions),
        override_runtime_producer: Some(Arc::new(move |_| Ok(runtime.clone()))),
        override_config_producer: Some(Arc::new(|| {
            crate::transform::session::warehouse_config(SessionConfig::new_with_ballista())
        })),
        override_execution_engine: Some(Arc::new(CountingEngine { inner: DefaultExecutionEngine::new(), tasks })),
        ..ExecutorProcessConfig::default()
    };
    tracing::info!(scheduler = %format!("{}:{}", options.scheduler_host, options.scheduler_port), port = options.flight_port, "Ballista executor starting");
    start_executor_process(Arc::new(config)).await.map_err(cluster_error("running the executor"))
}
