//! `alliance serve`: the warehouse as an Arrow Flight SQL endpoint, for Python (ADBC), DBeaver
//! (Flight SQL JDBC), Power BI (Flight SQL ODBC) and any other Flight SQL client.
//!
//! Semantics:
//!
//! - **Who.** Every call carries a bearer token ([`auth`]): `authorization: Bearer TOKEN`, or basic
//!   auth with the token as password (the Flight handshake answers with the bearer header to use
//!   from then on). Each token has one role, from `ALLIANCE_SERVE_TOKENS`; without a valid token
//!   nothing is answered (`UNAUTHENTICATED`).
//! - **What.** A call runs on the caller's role's [`AccessSession`], the same read-only, role-checked
//!   session as `alliance query` and `alliance shell`: only queries run, each table is checked
//!   against the role, file paths are never tables, and DataFusion's own read-only options refuse
//!   what writes. Refusals are the same errors, with `alliance serve` as the tool name. Catalog
//!   calls (`GetCatalogs`, `GetDbSchemas`, `GetTables`, `GetTableTypes`, `GetSqlInfo`) list only
//!   what the role's session has registered.
//! - **How.** `GetFlightInfo` checks and plans a statement and returns its schema with one ticket
//!   that carries the SQL itself (no state is kept between calls); `DoGet` authenticates again and
//!   checks and plans the SQL again for the caller's role, so a ticket grants nothing by itself.
//!   Prepared statements are supported without parameters; their handle is the SQL. Updates and
//!   bulk ingest (`DoPut`) are refused like write statements. Queries plan and run on a runtime
//!   of their own, so one that keeps its threads busy cannot stop the server from answering
//!   others or from timing it out.
//! - **Limits.** A result streams batch by batch and stops with an error (`RESOURCE_EXHAUSTED`)
//!   when it passes `--max-rows` rows or `--max-bytes` bytes of Arrow IPC data; a query (planning
//!   and streaming) that takes longer than `--query-timeout` is cancelled (`DEADLINE_EXCEEDED`).
//! - **Freshness.** Sessions are opened once per role and reopened when the run history
//!   (`_state/runs/`) changes, so a mart published by a run is served from the next query on.
//! - **Logs.** One `tracing` line per query: role, peer, outcome, rows, bytes, seconds and the SQL
//!   (cut at 200 characters); never the token.
//! - **Transport.** Plain gRPC (`grpc://`), or TLS (`grpc+tls://`) with `--tls-cert` and
//!   `--tls-key` (PEM). SIGINT/SIGTERM stop accepting calls and end the server.

pub mod auth;
mod results;
pub mod service;

use crate::access::{AccessSession, Role};
use crate::error::{Error, Result};
use crate::jobs::JobContext;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use auth::{Tokens, TOKENS_ENV};

/// The tool name in errors and logs.
pub const TOOL: &str = "alliance serve";

/// Default of `--max-rows`: the most rows one result sends.
pub const DEFAULT_MAX_ROWS: u64 = 5_000_000;

/// Default of `--max-bytes`: the most Arrow IPC bytes one result sends (1 GiB).
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;

/// Default of `--query-timeout`, in seconds.
pub const DEFAULT_QUERY_TIMEOUT_SECS: u64 = 300;

/// How much one query may return and how long it may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most rows per result.
    pub max_rows: u64,
    /// Most Arrow IPC bytes per result.
    pub max_bytes: u64,
    /// Longest a query may take, planning and streaming.
    pub query_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_rows: DEFAULT_MAX_ROWS,
            max_bytes: DEFAULT_MAX_BYTES,
            query_timeout: Duration::from_secs(DEFAULT_QUERY_TIMEOUT_SECS),
        }
    }
}

/// PEM files of the server's certificate chain and private key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Everything `alliance serve` is started with.
#[derive(Debug)]
pub struct ServeOptions {
    /// Address to listen on (port 0 picks a free port, printed at startup).
    pub listen: SocketAddr,
    /// TLS, or plain gRPC when `None`.
    pub tls: Option<TlsFiles>,
    /// Result and time limits.
    pub limits: Limits,
    /// Bearer tokens and their roles.
    pub tokens: Tokens,
}

/// One read-only session per role, reopened when the run history changes.
pub struct Sessions {
    job: JobContext,
    open: tokio::sync::Mutex<BTreeMap<Role, (String, Arc<AccessSession>)>>,
}

impl Sessions {
    pub fn new(job: JobContext) -> Self {
        Self { job, open: tokio::sync::Mutex::new(BTreeMap::new()) }
    }

    /// The session of `role`, reopened if a run was recorded since it was opened.
    pub async fn get(&self, role: Role) -> Result<Arc<AccessSession>> {
        let version = self.runs_version().await?;
        let mut open = self.open.lock().await;
        if let Some((seen, session)) = open.get(&role) {
            if *seen == version {
                return Ok(session.clone());
            }
        }
        let session = Arc::new(AccessSession::open(&self.job, role, TOOL).await?);
        open.insert(role, (version, session.clone()));
        Ok(session)
    }

    /// A digest of the listing of `_state/runs/` (names, sizes, times): it changes whenever a
    /// run is recorded, and every run that changes the warehouse records itself when it ends.
    async fn runs_version(&self) -> Result<String> {
        use sha2::Digest;
        let mut listing = self.job.stores.warehouse.list("_state/runs/").await?;
        listing.sort_by(|a, b| a.location.cmp(&b.location));
        let mut hasher = sha2::Sha256::new();
        for meta in &listing {
            hasher.update(format!("{}\t{}\t{}\n", meta.location, meta.size, meta.last_modified.timestamp_micros()));
        }
        Ok(hex::encode(hasher.finalize()))
    }
}

/// Runs the server until SIGINT or SIGTERM. Prints `alliance serve listening on URL` on stdout
/// once it accepts connections.
pub async fn serve(job: JobContext, options: ServeOptions) -> Result<()> {
    use arrow_flight::flight_service_server::FlightServiceServer;
    use tonic::transport::server::TcpIncoming;
    use tonic::transport::{Identity, Server, ServerTlsConfig};

    let serve_error = |reason: String| Error::Serve { reason };
    let mut builder = Server::builder();
    if let Some(tls) = &options.tls {
        let cert = std::fs::read(&tls.cert).map_err(Error::io(&tls.cert))?;
        let key = std::fs::read(&tls.key).map_err(Error::io(&tls.key))?;
        let config = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
        builder = builder.tls_config(config).map_err(|e| serve_error(format!("TLS configuration: {e}")))?;
    }
    let sessions = Arc::new(Sessions::new(job));
    // Open both sessions once now: a warehouse that cannot be read fails at startup, not at the
    // first query.
    for role in [Role::Analyst, Role::Engineer] {
        sessions.get(role).await?;
    }
    let incoming = TcpIncoming::bind(options.listen)
        .map_err(|e| serve_error(format!("cannot listen on {}: {e}", options.listen)))?
        .with_nodelay(Some(true));
    let local = incoming.local_addr().map_err(|e| serve_error(format!("listening address: {e}")))?;
    let scheme = if options.tls.is_some() { "grpc+tls" } else { "grpc" };
    tracing::info!(
        target: "alliance::serve",
        address = %local,
        tls = options.tls.is_some(),
        analyst_tokens = options.tokens.count(Role::Analyst),
        engineer_tokens = options.tokens.count(Role::Engineer),
        max_rows = options.limits.max_rows,
        max_bytes = options.limits.max_bytes,
        query_timeout_secs = options.limits.query_timeout.as_secs(),
        "serving Flight SQL"
    );
    let queries = QueryRuntime::new()?;
    println!("alliance serve listening on {scheme}://{local}");
    let service = service::FlightSql::new(sessions, queries.handle(), Arc::new(options.tokens), options.limits);
    // Results are streamed in pieces well under gRPC's usual 4 MiB message limit; requests are
    // small, so the server keeps tonic's default decoding limit.
    builder
        .add_service(FlightServiceServer::new(service))
        .serve_with_incoming_shutdown(incoming, shutdown())
        .await
        .map_err(|e| serve_error(format!("transport: {e}")))?;
    tracing::info!(target: "alliance::serve", "stopped");
    Ok(())
}

/// The runtime queries plan and run on, apart from the one answering calls: a query whose
/// operators keep their threads busy (a large cross join) cannot stop the server from answering
/// or from timing the query out. Shut down in the background when dropped.
struct QueryRuntime(Option<tokio::runtime::Runtime>);

impl QueryRuntime {
    fn new() -> Result<Self> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("alliance-query")
            .enable_all()
            .build()
            .map_err(|e| Error::Serve { reason: format!("cannot start the query runtime: {e}") })?;
        Ok(Self(Some(runtime)))
    }

    fn handle(&self) -> tokio::runtime::Handle {
        self.0.as_ref().expect("runtime until dropped").handle().clone()
    }
}

impl Drop for QueryRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!(target: "alliance::serve", "signal received: stopping");
}
