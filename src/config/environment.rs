//! Environment configuration (`config/<env>.toml`): where landing and warehouse live, which
//! environment variables hold secrets, and tuning knobs. Secrets are never written in these files:
//! a file names the variable, the process environment supplies the value.

use super::read_toml;
use crate::error::{Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One environment (`local`, `s3`, `azure`, ...).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// Name of the environment; defaults to the file stem (`local` for `config/local.toml`).
    #[serde(default)]
    pub name: String,
    /// Where the data lives.
    pub storage: StorageSettings,
    /// Keyed pseudonymisation of NHS numbers.
    #[serde(default)]
    pub pseudonymisation: PseudonymisationSettings,
    /// Ingestion tuning.
    #[serde(default)]
    pub ingest: IngestSettings,
    /// Locking, scheduling and retries.
    #[serde(default)]
    pub operations: OperationsSettings,
    /// Bounds on what one landing file may make the reader hold, and on what one query or build
    /// may use.
    #[serde(default)]
    pub limits: LimitSettings,
    /// Where `build` runs the models' SQL: in this process (default) or on a Ballista cluster.
    #[serde(default)]
    pub engine: EngineSettings,
}

/// The default scheduler port of a Ballista cluster, when `url` names none.
pub const DEFAULT_BALLISTA_PORT: u16 = 50050;

/// Which engine runs the models' SQL (`[engine]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineKind {
    /// DataFusion in the `alliance` process (default).
    #[default]
    Local,
    /// An Apache DataFusion Ballista cluster (scheduler + executors) that reads and writes the
    /// same object store; needs a binary built with the `ballista` feature.
    Ballista,
}

/// `[engine]`: where `alliance build` (and `run`) plan and execute each model's query. With
/// `kind = "ballista"` the query runs on the cluster's executors and its result stream comes back
/// to this process, which writes, tests and publishes it exactly as the local engine does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSettings {
    /// `local` (default) or `ballista`.
    #[serde(default)]
    pub kind: EngineKind,
    /// The Ballista scheduler, `df://host:port` (port [`DEFAULT_BALLISTA_PORT`] when omitted);
    /// required with `kind = "ballista"`, refused with `local`.
    #[serde(default)]
    pub url: Option<String>,
}

impl EngineSettings {
    /// Checks the combination of kind and url; the reason names the offending key.
    pub fn check(&self) -> std::result::Result<(), String> {
        match (self.kind, &self.url) {
            (EngineKind::Local, None) => Ok(()),
            (EngineKind::Local, Some(_)) => Err("[engine] url applies only to kind = \"ballista\"".into()),
            (EngineKind::Ballista, None) => Err("[engine] kind = \"ballista\" needs url = \"df://host:50050\"".into()),
            (EngineKind::Ballista, Some(url)) => match url::Url::parse(url) {
                Ok(u) if u.scheme() == "df" && u.host_str().is_some_and(|h| !h.is_empty()) => Ok(()),
                _ => Err(format!("[engine] url must look like df://host:{DEFAULT_BALLISTA_PORT}, not '{url}'")),
            },
        }
    }
}

/// Default of [`LimitSettings::max_query_rows`]: 10 million rows.
pub const DEFAULT_MAX_QUERY_ROWS: u64 = 10_000_000;
/// Default of [`LimitSettings::max_query_bytes`]: 2 GiB of output.
pub const DEFAULT_MAX_QUERY_BYTES: u64 = 2 << 30;
/// Default of [`LimitSettings::max_table_rows`]: rows the table format shows.
pub const DEFAULT_MAX_TABLE_ROWS: usize = 10_000;
/// Default of [`LimitSettings::memory_limit_bytes`]: 4 GiB for DataFusion's operators. The pool
/// gives each spilling operator running at once an equal share, so a 20M-pathway merge spills at
/// 4 GiB; `config/bench.toml` sets 8 GiB (no spill, 2.2–2.4 GiB peak). At 8 GiB by default the
/// hostile-corpus run of `tests/hostile.rs` peaked at 1,045 MiB, over its 1 GiB bound (908 at 4).
pub const DEFAULT_MEMORY_LIMIT_BYTES: u64 = 4 << 30;

/// Bounds (`[limits]`). Reading: a landing file over a bound is rejected whole with a reason
/// naming the bound; each is checked while reading, before the data is held in memory, so a
/// hostile file costs at most about the bound. Querying: `max_query_*` and `max_table_rows` bound
/// one statement's output, `memory_limit_bytes` the operators of one DataFusion session.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Largest uncompressed worksheet (or shared-strings part) of an XLSX workbook, in bytes
    /// (default 256 MiB). Checked against the zip central directory before the sheet is
    /// decompressed, and while it is.
    #[serde(default = "LimitSettings::default_max_xlsx_sheet_bytes")]
    pub max_xlsx_sheet_bytes: u64,
    /// Largest ratio of uncompressed to compressed size of a workbook part over 1 MiB (default
    /// 200): more is a zip bomb, not a spreadsheet.
    #[serde(default = "LimitSettings::default_max_xlsx_zip_ratio")]
    pub max_xlsx_zip_ratio: u64,
    /// Longest field of a delimited text file or cell of a workbook, in bytes (default 1 MiB).
    #[serde(default = "LimitSettings::default_max_field_bytes")]
    pub max_field_bytes: usize,
    /// Longest line (record) of a delimited text file, in bytes (default 4 MiB); the title and
    /// header lines too.
    #[serde(default = "LimitSettings::default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// Most rows `alliance query` and `alliance shell` write for one statement (default
    /// [`DEFAULT_MAX_QUERY_ROWS`]); a larger result stops with an error naming this setting.
    #[serde(default = "LimitSettings::default_max_query_rows")]
    pub max_query_rows: u64,
    /// Most bytes of output (CSV, JSON, Parquet or table text) for one statement (default
    /// [`DEFAULT_MAX_QUERY_BYTES`]); a larger result stops with an error naming this setting.
    #[serde(default = "LimitSettings::default_max_query_bytes")]
    pub max_query_bytes: u64,
    /// Rows the `table` format shows before it stops with a note (default
    /// [`DEFAULT_MAX_TABLE_ROWS`]): a text table is for reading, files are for everything.
    #[serde(default = "LimitSettings::default_max_table_rows")]
    pub max_table_rows: usize,
    /// Memory DataFusion's operators (joins, aggregates, sorts) may reserve in one query or build
    /// session, shared fairly between them; beyond it they spill to temporary files, or fail with
    /// a resources-exhausted error (default [`DEFAULT_MEMORY_LIMIT_BYTES`]).
    #[serde(default = "LimitSettings::default_memory_limit_bytes")]
    pub memory_limit_bytes: u64,
}

impl LimitSettings {
    fn default_max_xlsx_sheet_bytes() -> u64 {
        256 << 20
    }
    fn default_max_xlsx_zip_ratio() -> u64 {
        200
    }
    fn default_max_field_bytes() -> usize {
        1 << 20
    }
    fn default_max_line_bytes() -> usize {
        4 << 20
    }
    fn default_max_query_rows() -> u64 {
        DEFAULT_MAX_QUERY_ROWS
    }
    fn default_max_query_bytes() -> u64 {
        DEFAULT_MAX_QUERY_BYTES
    }
    fn default_max_table_rows() -> usize {
        DEFAULT_MAX_TABLE_ROWS
    }
    fn default_memory_limit_bytes() -> u64 {
        DEFAULT_MEMORY_LIMIT_BYTES
    }
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            max_xlsx_sheet_bytes: Self::default_max_xlsx_sheet_bytes(),
            max_xlsx_zip_ratio: Self::default_max_xlsx_zip_ratio(),
            max_field_bytes: Self::default_max_field_bytes(),
            max_line_bytes: Self::default_max_line_bytes(),
            max_query_rows: DEFAULT_MAX_QUERY_ROWS,
            max_query_bytes: DEFAULT_MAX_QUERY_BYTES,
            max_table_rows: DEFAULT_MAX_TABLE_ROWS,
            memory_limit_bytes: DEFAULT_MEMORY_LIMIT_BYTES,
        }
    }
}

/// Locking, scheduling and retries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationsSettings {
    /// Time to live of the warehouse lock in seconds, renewed while a run works (default 900).
    #[serde(default = "OperationsSettings::default_lock_ttl_secs")]
    pub lock_ttl_secs: u64,
    /// How often `alliance schedule` looks for new landing files, in seconds (default 60).
    #[serde(default = "OperationsSettings::default_poll_secs")]
    pub poll_secs: u64,
    /// Attempts of a scheduled run that failed on a transient object-store error (default 3).
    #[serde(default = "OperationsSettings::default_run_attempts")]
    pub run_attempts: u32,
    /// First wait between attempts in seconds, doubled each time (default 5).
    #[serde(default = "OperationsSettings::default_run_backoff_secs")]
    pub run_backoff_secs: u64,
}

impl OperationsSettings {
    fn default_lock_ttl_secs() -> u64 {
        900
    }
    fn default_poll_secs() -> u64 {
        60
    }
    fn default_run_attempts() -> u32 {
        3
    }
    fn default_run_backoff_secs() -> u64 {
        5
    }
}

impl Default for OperationsSettings {
    fn default() -> Self {
        Self {
            lock_ttl_secs: Self::default_lock_ttl_secs(),
            poll_secs: Self::default_poll_secs(),
            run_attempts: Self::default_run_attempts(),
            run_backoff_secs: Self::default_run_backoff_secs(),
        }
    }
}

/// Object-store locations. URLs are `file://` (absolute, or relative to the working directory:
/// `file://./landing`), `s3://bucket/prefix`, `az://container/prefix` or `gs://bucket/prefix`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    /// Root of the raw extracts (`landing/<dataset>/...`). The tool never modifies or deletes here.
    pub landing: String,
    /// Root of the warehouse (`staging/`, `quarantine/`, `marts/`, `_state/`).
    pub warehouse: String,
    /// Extra object-store builder options (e.g. `endpoint`, `allow_http`, `region`), passed to the
    /// store's builder on top of its standard environment variables (`AWS_*`, `AZURE_*`,
    /// `GOOGLE_*`). A value of the form `env:NAME` is read from environment variable NAME, so
    /// endpoints and credentials stay out of the file.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Retries on transient object-store errors (network, throttling, 5xx).
    #[serde(default)]
    pub retry: RetrySettings,
}

/// Retry policy for remote object stores.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    /// Attempts after the first failure (default 4).
    #[serde(default = "RetrySettings::default_max_retries")]
    pub max_retries: usize,
    /// First back-off in milliseconds, doubled each retry (default 200).
    #[serde(default = "RetrySettings::default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// Give up after this many seconds in total (default 60).
    #[serde(default = "RetrySettings::default_timeout_secs")]
    pub timeout_secs: u64,
}

impl RetrySettings {
    fn default_max_retries() -> usize {
        4
    }
    fn default_initial_backoff_ms() -> u64 {
        200
    }
    fn default_timeout_secs() -> u64 {
        60
    }
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_retries: Self::default_max_retries(),
            initial_backoff_ms: Self::default_initial_backoff_ms(),
            timeout_secs: Self::default_timeout_secs(),
        }
    }
}

/// Where the pseudonymisation key comes from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PseudonymisationSettings {
    /// Environment variable holding the HMAC-SHA256 key (default `ALLIANCE_PSEUDO_KEY`). Required
    /// only when a pipeline has an `nhs_number` column. At least 16 bytes.
    #[serde(default = "PseudonymisationSettings::default_key_env")]
    pub key_env: String,
}

impl PseudonymisationSettings {
    fn default_key_env() -> String {
        "ALLIANCE_PSEUDO_KEY".into()
    }
}

impl Default for PseudonymisationSettings {
    fn default() -> Self {
        Self { key_env: Self::default_key_env() }
    }
}

/// Ingestion tuning.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSettings {
    /// Rows per record batch while normalising (default 32,768: measured fastest on the 20M-row
    /// benchmark, as a batch's columns stay in the CPU caches between the reader, the
    /// normalisers and the encoders; memory scales with it).
    #[serde(default = "IngestSettings::default_batch_rows")]
    pub batch_rows: usize,
    /// Maximum rows per Parquet row group (default 131,072); bounds writer memory, since a row
    /// group is buffered whole while its columns are encoded in parallel.
    #[serde(default = "IngestSettings::default_row_group_rows")]
    pub row_group_rows: usize,
    /// zstd level for Parquet pages (default 1: on the pathway extracts it is as small as level 3,
    /// because the bulk is pseudonyms that only entropy coding shrinks, at half the CPU).
    #[serde(default = "IngestSettings::default_zstd_level")]
    pub zstd_level: i32,
    /// Normaliser threads per file (default: the machine's parallelism, at most 8).
    #[serde(default)]
    pub workers: Option<usize>,
}

impl IngestSettings {
    fn default_batch_rows() -> usize {
        32_768
    }
    fn default_row_group_rows() -> usize {
        131_072
    }
    fn default_zstd_level() -> i32 {
        1
    }
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            batch_rows: Self::default_batch_rows(),
            row_group_rows: Self::default_row_group_rows(),
            zstd_level: Self::default_zstd_level(),
            workers: None,
        }
    }
}

impl Environment {
    /// Loads `<config_dir>/<name>.toml`.
    pub fn load(config_dir: &Path, name: &str) -> Result<Self> {
        let path: PathBuf = config_dir.join(format!("{name}.toml"));
        if !path.exists() {
            let known = list_environments(config_dir).join(", ");
            return Err(Error::config(&path, format!("no such environment '{name}' (known: {known})")));
        }
        let mut env: Environment = read_toml(&path)?;
        if env.name.is_empty() {
            env.name = name.to_string();
        }
        if env.ingest.batch_rows == 0 || env.ingest.row_group_rows == 0 {
            return Err(Error::config(&path, "ingest batch_rows and row_group_rows must be > 0"));
        }
        let l = &env.limits;
        if l.max_xlsx_sheet_bytes == 0
            || l.max_xlsx_zip_ratio == 0
            || l.max_field_bytes == 0
            || l.max_line_bytes == 0
            || l.max_query_rows == 0
            || l.max_query_bytes == 0
            || l.max_table_rows == 0
            || l.memory_limit_bytes == 0
        {
            return Err(Error::config(&path, "every [limits] value must be > 0"));
        }
        env.engine.check().map_err(|reason| Error::config(&path, reason))?;
        Ok(env)
    }

    /// Reads the pseudonymisation key from the environment.
    pub fn pseudonymisation_key(&self) -> Result<Vec<u8>> {
        let var = &self.pseudonymisation.key_env;
        let value = std::env::var(var).map_err(|_| Error::MissingSecret {
            var: var.clone(),
            purpose: "the HMAC key that pseudonymises NHS numbers (at least 16 bytes)".into(),
        })?;
        if value.len() < 16 {
            return Err(Error::MissingSecret {
                var: var.clone(),
                purpose: "is shorter than 16 bytes; use a long random key".into(),
            });
        }
        Ok(value.into_bytes())
    }
}

/// Names of the environments in a config directory (file stems of `*.toml`).
pub fn list_environments(config_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(config_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            (p.extension()? == "toml").then(|| p.file_stem()?.to_str().map(str::to_string))?
        })
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(toml: &str) -> std::result::Result<EngineSettings, String> {
        let settings: EngineSettings = toml::from_str(toml).map_err(|e| e.to_string())?;
        settings.check().map(|_| settings)
    }

    #[test]
    fn engine_is_local_by_default_and_ballista_needs_a_df_url() {
        assert_eq!(engine("").unwrap(), EngineSettings::default());
        assert_eq!(EngineSettings::default().kind, EngineKind::Local);
        let cluster = engine("kind = \"ballista\"\nurl = \"df://scheduler.internal:50050\"").unwrap();
        assert_eq!(cluster.kind, EngineKind::Ballista);
        assert!(engine("kind = \"ballista\"").unwrap_err().contains("needs url"));
        assert!(engine("kind = \"ballista\"\nurl = \"http://host:50050\"").unwrap_err().contains("df://host"));
        assert!(engine("url = \"df://host:50050\"").unwrap_err().contains("only to kind"));
        assert!(engine("kind = \"spark\"").is_err());
        assert!(engine("kind = \"local\"\nscheduler = \"x\"").unwrap_err().contains("unknown field"));
    }
}
