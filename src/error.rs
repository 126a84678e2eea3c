//! Typed errors of the library.
//!
//! Every error names what it is about: the pipeline or config file, the source object, and where
//! relevant the row (1-based, as a spreadsheet shows it) and column, plus a human reason. The binary
//! wraps these in `anyhow` only at the top level.

use std::path::PathBuf;

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong inside alliance-warehouse.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration or pipeline file could not be read or is invalid.
    #[error("config {file}: {reason}")]
    Config { file: PathBuf, reason: String },

    /// A source file cannot be ingested at all (wrong shape, unreadable, missing columns, ...).
    /// The file is recorded in quarantine and in the manifest; nothing from it is written.
    #[error("source {file}: {reason}")]
    SourceFile { file: String, reason: String },

    /// A value-level problem that is fatal for the file (used where a row cannot be quarantined,
    /// e.g. a header row problem).
    #[error("source {file} row {row} column {column}: {reason}")]
    SourceValue { file: String, row: u64, column: String, reason: String },

    /// An object-store operation failed.
    #[error("object store {op} {location}: {source}")]
    Store {
        op: &'static str,
        location: String,
        #[source]
        source: object_store::Error,
    },

    /// A storage URL or environment setting is unusable.
    #[error("storage {url}: {reason}")]
    StorageUrl { url: String, reason: String },

    /// Arrow kernel failure.
    #[error("arrow while {context}: {source}")]
    Arrow {
        context: String,
        #[source]
        source: arrow::error::ArrowError,
    },

    /// Parquet encoding or decoding failure.
    #[error("parquet while {context}: {source}")]
    Parquet {
        context: String,
        #[source]
        source: parquet::errors::ParquetError,
    },

    /// DataFusion planning or execution failure.
    #[error("sql while {context}: {source}")]
    DataFusion {
        context: String,
        #[source]
        source: datafusion::error::DataFusionError,
    },

    /// State (manifest, run record) could not be serialised or parsed.
    #[error("state {location}: {reason}")]
    State { location: String, reason: String },

    /// A secret required by the configuration is missing from the environment.
    #[error("environment variable {var} is not set: {purpose}")]
    MissingSecret { var: String, purpose: String },

    /// Local I/O failure (generator output, config reading).
    #[error("io {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An analyst's query failed; the reason shows where in the SQL.
    #[error("query failed: {reason}")]
    Query { reason: String },

    /// A read-only session (query, shell, serve) was sent a statement that is not a query.
    /// Names the kind of statement only, never its identifiers or values.
    #[error("{tool} is read-only: {statement} is not allowed (only queries: SELECT, WITH, EXPLAIN, DESCRIBE, SHOW)")]
    ReadOnly { tool: &'static str, statement: String },

    /// A query named a file path or URL as a table; sessions read registered tables only.
    #[error("{tool} reads only the warehouse's tables: '{path}' is a file path, not a table")]
    NotATable { tool: &'static str, path: String },

    /// A query named a table its role may not read.
    #[error(
        "table '{table}' ({kind}) needs the {needs} role (--role {needs}); the {role} role reads published \
         marts, runs, catalogue and information_schema only"
    )]
    Forbidden { table: String, kind: &'static str, role: crate::access::Role, needs: crate::access::Role },

    /// A query's result went past a bound of the environment's `[limits]`; nothing more was
    /// written (and an `--output` file was removed).
    #[error(
        "the result is larger than {setting} = {limit} (stopped at {reached}); narrow the query (WHERE, LIMIT, \
         GROUP BY) or raise [limits] {setting} in the environment file"
    )]
    QueryLimit { setting: &'static str, limit: u64, reached: u64 },

    /// A caller of `alliance serve` presented no token or a wrong one. Never shows the token.
    #[error("not authenticated: {reason}")]
    Unauthenticated { reason: String },

    /// A result of `alliance serve` passed one of the server's limits (`--max-rows`,
    /// `--max-bytes`); the stream stops there.
    #[error("the result is larger than this server sends: more than {limit} ({flag}); add a LIMIT or a WHERE, or ask for fewer columns")]
    ResultTooLarge { limit: String, flag: &'static str },

    /// A query of `alliance serve` ran longer than `--query-timeout`; it is cancelled.
    #[error("the query ran longer than {seconds} s (--query-timeout) and was cancelled")]
    QueryTimeout { seconds: u64 },

    /// `alliance serve` could not start or stopped serving (address, TLS files, transport).
    #[error("alliance serve: {reason}")]
    Serve { reason: String },

    /// Another run holds the warehouse lock.
    #[error("the warehouse is locked by {holder} until {until}")]
    Locked { holder: String, until: String },

    /// The run lost the warehouse lock (taken over, or not renewed in time) and stopped before
    /// its next publish or commit.
    #[error("the warehouse lock was lost ({reason}): the run stopped before publishing anything further")]
    LockLost { reason: String },

    /// Disclosure control could not protect a mart: its declared structure does not hold on the
    /// data, or the audit could not be solved. Names the rule, never a value.
    #[error("disclosure control of {model}: {reason}")]
    Disclosure { model: String, reason: String },

    /// A Ballista scheduler or executor could not start or serve (the `ballista` engine).
    #[error("cluster {context}: {reason}")]
    Cluster { context: String, reason: String },

    /// The run was asked to stop (signal) before it finished.
    #[error("run interrupted: {0}")]
    Interrupted(String),
}

impl Error {
    pub fn source_file(file: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::SourceFile { file: file.into(), reason: reason.into() }
    }

    pub fn config(file: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Config { file: file.into(), reason: reason.into() }
    }

    pub fn arrow(context: impl Into<String>) -> impl FnOnce(arrow::error::ArrowError) -> Self {
        let context = context.into();
        move |source| Error::Arrow { context, source }
    }

    pub fn parquet(context: impl Into<String>) -> impl FnOnce(parquet::errors::ParquetError) -> Self {
        let context = context.into();
        move |source| Error::Parquet { context, source }
    }

    pub fn store(op: &'static str, location: impl Into<String>) -> impl FnOnce(object_store::Error) -> Self {
        let location = location.into();
        move |source| Error::Store { op, location, source }
    }

    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Error::Io { path, source }
    }

    pub fn datafusion(context: impl Into<String>) -> impl FnOnce(datafusion::error::DataFusionError) -> Self {
        let context = context.into();
        move |source| Error::DataFusion { context, source }
    }

    /// True for object-store failures worth retrying (network, throttling, server errors).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Store { source, .. } => is_transient(source),
            _ => false,
        }
    }
}

/// True for errors worth another try: anything that is not a definite answer from the store.
pub fn is_transient(e: &object_store::Error) -> bool {
    !matches!(
        e,
        object_store::Error::NotFound { .. }
            | object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. }
            | object_store::Error::NotModified { .. }
            | object_store::Error::NotImplemented { .. }
            | object_store::Error::InvalidPath { .. }
            | object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. }
            | object_store::Error::UnknownConfigurationKey { .. }
    )
}
