//! Shared fixtures for the integration tests: a throw-away warehouse on the local filesystem (or
//! any object store), the repository's real pipeline files, the published data in
//! `../shared/data`, and readers for what ingestion wrote.
#![allow(dead_code)]

pub mod servers;

use alliance_warehouse::config::{load_pipelines, Environment, Pipeline};
use alliance_warehouse::ingest::{IngestOptions, Ingestor, PipelineReport};
use alliance_warehouse::storage::Stores;
use arrow::array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// Key used by every test environment (never a real key).
pub const TEST_KEY_ENV: &str = "ALLIANCE_TEST_PSEUDO_KEY";
pub const TEST_KEY: &str = "test-only-key-not-for-production-0001";

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The published data set beside the checkout.
pub fn shared() -> PathBuf {
    let path = repo().join("../shared/data");
    assert!(path.join("cwt").is_dir(), "the published data set is expected at {}", path.display());
    path
}

/// The repository's pipeline files.
pub fn pipelines() -> Vec<Pipeline> {
    load_pipelines(&repo().join("pipelines")).expect("repository pipelines are valid")
}

/// The named pipelines only.
pub fn only(names: &[&str]) -> Vec<Pipeline> {
    let all = pipelines();
    names
        .iter()
        .map(|n| all.iter().find(|p| p.name == *n).unwrap_or_else(|| panic!("no pipeline {n}")).clone())
        .collect()
}

/// A warehouse environment in a temporary folder (or at the given URLs).
pub struct Workspace {
    pub dir: TempDir,
    pub env: Environment,
    pub stores: Stores,
}

impl Workspace {
    /// Landing and warehouse as folders of a fresh temporary directory.
    pub fn local() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let landing = format!("file://{}", dir.path().join("landing").display());
        let warehouse = format!("file://{}", dir.path().join("warehouse").display());
        Self::with_toml(dir, &format!("[storage]\nlanding = \"{landing}\"\nwarehouse = \"{warehouse}\"\n"))
    }

    /// An environment from TOML text (written to `<tmp>/config/test.toml` and loaded as users do).
    pub fn with_toml(dir: TempDir, storage_toml: &str) -> Self {
        std::env::set_var(TEST_KEY_ENV, TEST_KEY);
        let config = dir.path().join("config");
        std::fs::create_dir_all(&config).unwrap();
        let text = format!(
            "{storage_toml}\n[pseudonymisation]\nkey_env = \"{TEST_KEY_ENV}\"\n\n[ingest]\nbatch_rows = 4096\nrow_group_rows = 16384\n"
        );
        std::fs::write(config.join("test.toml"), text).unwrap();
        let env = Environment::load(&config, "test").expect("test environment loads");
        let stores = Stores::open(&env.storage).expect("stores open");
        Self { dir, env, stores }
    }

    /// Local path of the landing folder (local workspaces only).
    pub fn landing_dir(&self) -> PathBuf {
        self.dir.path().join("landing")
    }

    /// Local path of the warehouse folder (local workspaces only).
    pub fn warehouse_dir(&self) -> PathBuf {
        self.dir.path().join("warehouse")
    }

    /// Writes a landing file.
    pub async fn land(&self, path: &str, bytes: impl Into<Vec<u8>>) {
        self.stores.landing.put(path, bytes.into()).await.expect("landing put");
    }

    /// Copies a published file into landing.
    pub async fn land_file(&self, from: &Path, path: &str) {
        self.land(path, std::fs::read(from).expect("published file")).await;
    }

    /// Runs ingestion of `pipelines` and returns the reports.
    pub async fn ingest(&self, pipelines: &[Pipeline]) -> Vec<PipelineReport> {
        self.try_ingest(pipelines, false).await.expect("ingest runs")
    }

    pub async fn try_ingest(
        &self,
        pipelines: &[Pipeline],
        force: bool,
    ) -> alliance_warehouse::Result<Vec<PipelineReport>> {
        let ingestor = Ingestor::new(self.env.clone(), self.stores.clone(), alliance_warehouse::runs::new_run_id());
        ingestor.run(pipelines, &IngestOptions { force, ..Default::default() }).await
    }

    /// Every Parquet object under a warehouse prefix, with its batches.
    pub async fn read_parquet(&self, prefix: &str) -> Vec<(String, Vec<RecordBatch>)> {
        let mut out = Vec::new();
        for meta in self.stores.warehouse.list(prefix).await.expect("list") {
            let path = meta.location.to_string();
            if !path.ends_with(".parquet") {
                continue;
            }
            let bytes = self.stores.warehouse.get(&path).await.expect("get");
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).expect("parquet").build().expect("reader");
            out.push((path, reader.collect::<Result<Vec<_>, _>>().expect("batches")));
        }
        out
    }

    /// All rows of a staging table as batches.
    pub async fn table(&self, table: &str) -> Vec<RecordBatch> {
        self.read_parquet(&format!("staging/{table}/")).await.into_iter().flat_map(|(_, b)| b).collect()
    }

    /// Row count of a staging table.
    pub async fn rows(&self, table: &str) -> usize {
        self.table(table).await.iter().map(|b| b.num_rows()).sum()
    }
}

/// Sum of a Float64 column over batches, filtered by a predicate on the row.
pub fn sum_f64(batches: &[RecordBatch], column: &str, keep: impl Fn(&RecordBatch, usize) -> bool) -> f64 {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Float64Type;
    let mut total = 0.0;
    for b in batches {
        let col = b.column_by_name(column).unwrap_or_else(|| panic!("no column {column}"));
        let col = col.as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            if !col.is_null(i) && keep(b, i) {
                total += col.value(i);
            }
        }
    }
    total
}

/// A text cell of a row (`None` for null).
pub fn text(b: &RecordBatch, column: &str, row: usize) -> Option<String> {
    use arrow::array::{Array, AsArray};
    let col = b.column_by_name(column).unwrap_or_else(|| panic!("no column {column}"));
    let col = arrow::compute::cast(col, &arrow::datatypes::DataType::Utf8).unwrap();
    let col = col.as_string::<i32>();
    (!col.is_null(row)).then(|| col.value(row).to_string())
}

/// Runs the `alliance` binary in `dir` against its `config/test.toml` with the test key.
pub fn alliance(dir: &Path, args: &[&str]) -> std::process::Output {
    alliance_command(dir, args).output().expect("alliance runs")
}

/// The `alliance` command, ready to spawn: the binary cargo built for these tests, or the one
/// `ALLIANCE_TEST_BIN` names (a copy, when several checkouts share one target folder).
pub fn alliance_command(dir: &Path, args: &[&str]) -> std::process::Command {
    let binary = std::env::var_os("ALLIANCE_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_alliance").into());
    let mut command = std::process::Command::new(binary);
    command
        .current_dir(dir)
        .args(["--config-dir", "config", "--pipelines-dir", "pipelines", "--env", "test"])
        .args(args)
        .env(TEST_KEY_ENV, TEST_KEY)
        .env("RUST_LOG", "warn");
    command
}

/// A working copy: the repository's pipelines, SQL and reference tables, and a local test
/// environment with its landing and warehouse inside.
pub fn workdir() -> TempDir {
    workdir_with("[storage]\nlanding = \"file://./landing\"\nwarehouse = \"file://./warehouse\"\n")
}

/// A working copy with the given storage settings.
pub fn workdir_with(storage_toml: &str) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir_all(config.join("reference")).unwrap();
    std::fs::write(
        config.join("test.toml"),
        format!("{storage_toml}\n[pseudonymisation]\nkey_env = \"{TEST_KEY_ENV}\"\n\n[operations]\npoll_secs = 1\nrun_backoff_secs = 1\nrun_attempts = 2\n"),
    )
    .unwrap();
    copy_dir(&repo().join("config/reference"), &config.join("reference"));
    copy_dir(&repo().join("pipelines"), &dir.path().join("pipelines"));
    for layer in ["staging", "intermediate", "marts"] {
        copy_dir(&repo().join("sql").join(layer), &dir.path().join("sql").join(layer));
    }
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// A pipeline from TOML text, written to `<tmp>/pipelines/<name>.toml` and loaded and validated
/// as a file in `pipelines/` would be.
pub fn pipeline(ws: &Workspace, name: &str, toml: &str) -> Pipeline {
    let dir = ws.dir.path().join("pipelines");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, toml).unwrap();
    Pipeline::load(&path).expect("test pipeline is valid")
}

/// Runs `alliance` and insists it succeeds; returns its standard output.
pub fn alliance_ok(dir: &Path, args: &[&str]) -> String {
    let out = alliance(dir, args);
    assert!(out.status.success(), "alliance {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Parquet writer settings for models built in tests.
pub fn props() -> parquet::file::properties::WriterProperties {
    parquet::file::properties::WriterProperties::builder().build()
}

/// Seeds the published reference data into landing and ingests the reference pipelines.
pub async fn load_reference(ws: &Workspace) {
    alliance_warehouse::generate::seed(&shared(), &repo().join("config/reference"), &ws.stores.landing).await.unwrap();
    let refs: Vec<_> = pipelines().into_iter().filter(|p| p.name.starts_with("ref_")).collect();
    ws.ingest(&refs).await;
}

/// Builds the models of `sql` (all, or `select`) over every pipeline's staging table.
pub async fn build(ws: &Workspace, sql: &Path, select: Option<&str>) -> alliance_warehouse::transform::BuildReport {
    use alliance_warehouse::transform;
    let all = pipelines();
    let graph = transform::load_graph(sql, &all).expect("models load");
    let options = transform::BuildOptions { select: select.map(str::to_string), ..Default::default() };
    transform::build(&ws.stores.warehouse, &all, &graph, &options, &alliance_warehouse::runs::new_run_id(), props())
        .await
        .expect("build runs")
}

/// The marts declared in `sql/marts` (one `.sql` file each): what a full build publishes.
pub fn declared_marts() -> usize {
    std::fs::read_dir(repo().join("sql/marts"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "sql"))
        .count()
}

/// A CWT CRS provider extract workbook of one row, in NHS England's published shape: R1H's urgent
/// suspected cancer referrals against the 28-day FDS standard for `period` (`YYYY-MM-01`), with
/// `[total treated, within standard, breaches]`.
pub fn one_row_provider_extract(
    period: &str,
    year: &str,
    month: &str,
    cancer_type: &str,
    figures: [f64; 3],
) -> Vec<u8> {
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet().set_name("CWT CRS Provider Extract").unwrap();
    let header = [
        "PERIOD",
        "YEAR",
        "MONTH",
        "STANDARD",
        "ORG CODE",
        "STAGE/ROUTE",
        "TREATMENT MODALITY",
        "CANCER TYPE",
        "TOTAL TREATED",
        "WITHIN STANDARD",
        "BREACHES",
    ];
    for (c, h) in header.iter().enumerate() {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    let row = [period, year, month, "28-day FDS", "R1H", "URGENT SUSPECTED CANCER", "", cancer_type];
    for (c, v) in row.iter().enumerate() {
        sheet.write_string(1, c as u16, *v).unwrap();
    }
    for (c, v) in figures.iter().enumerate() {
        sheet.write_number(1, (8 + c) as u16, *v).unwrap();
    }
    workbook.save_to_buffer().unwrap()
}
