//! Results of `alliance serve`: query batches streamed under the server's limits (rows and
//! deadline checked as batches arrive from the query's task, bytes as they are encoded), one-batch
//! listings for the catalog calls, and the one log line each query gets — when it ends, fails or
//! is dropped by the client — with role, peer, outcome, rows, bytes, seconds and the statement
//! cut to [`LOGGED_SQL_CHARS`] characters (never a token).

use super::service::{status, DoGetStream};
use super::Limits;
use crate::access::Role;
use crate::error::Error;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::FlightData;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use futures::{Stream, StreamExt};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::time::Instant as Deadline;
use tonic::{Response, Status};

/// How much of a statement a log line shows.
const LOGGED_SQL_CHARS: usize = 200;

/// The schema a result is sent with: dictionary columns are sent as their values (the encoder's
/// default, which every Flight client reads).
pub(super) fn flight_schema(schema: &Schema) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Dictionary(_, values) => f.as_ref().clone().with_data_type(values.as_ref().clone()),
            _ => f.as_ref().clone(),
        })
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// A one-batch result of a catalog call.
pub(super) fn batch_stream(batch: Result<RecordBatch, FlightError>) -> Result<Response<DoGetStream>, Status> {
    let batch = batch.map_err(|e| Status::internal(format!("building the listing: {e}")))?;
    let schema = batch.schema();
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(futures::stream::once(async move { Ok(batch) }))
        .map(|r| r.map_err(Status::from));
    Ok(Response::new(Box::pin(stream)))
}

/// Aborts a query's task when the result is dropped (finished, failed or abandoned).
pub(super) struct AbortOnDrop(pub(super) tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The batches of a query from its task, stopped with an error past the row limit or the
/// deadline.
pub(super) fn limit_rows(
    receiver: tokio::sync::mpsc::Receiver<Result<RecordBatch, Error>>,
    task: AbortOnDrop,
    deadline: Deadline,
    limits: Limits,
    rows: Arc<AtomicU64>,
) -> impl Stream<Item = Result<RecordBatch, FlightError>> + Send + 'static {
    futures::stream::unfold(Some((receiver, task)), move |state| {
        let rows = rows.clone();
        async move {
            let (mut receiver, task) = state?;
            let item = match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Err(_) => Err(Error::QueryTimeout { seconds: limits.query_timeout.as_secs() }),
                Ok(None) => return None,
                Ok(Some(Err(e))) => Err(e),
                Ok(Some(Ok(batch))) => {
                    let total = rows.load(Ordering::Relaxed) + batch.num_rows() as u64;
                    if total > limits.max_rows {
                        Err(Error::ResultTooLarge { limit: format!("{} rows", limits.max_rows), flag: "--max-rows" })
                    } else {
                        rows.store(total, Ordering::Relaxed);
                        Ok(batch)
                    }
                }
            };
            match item {
                Ok(batch) => Some((Ok(batch), Some((receiver, task)))),
                Err(e) => Some((Err(FlightError::Tonic(Box::new(status(&e)))), None)),
            }
        }
    })
}

/// The encoded result, stopped with an error past the byte limit; logs the query when the
/// stream ends, fails or is dropped by the client.
pub(super) fn limit_bytes(
    inner: impl Stream<Item = Result<FlightData, FlightError>> + Send + 'static,
    limits: Limits,
    log: QueryLog,
) -> DoGetStream {
    let inner: Pin<Box<dyn Stream<Item = Result<FlightData, FlightError>> + Send>> = Box::pin(inner);
    let stream = futures::stream::unfold(Some((inner, log)), move |state| async move {
        let (mut inner, mut log) = state?;
        match inner.next().await {
            None => {
                log.finish_ok();
                None
            }
            Some(Err(e)) => {
                let status = Status::from(e);
                log.finish_status(&status);
                Some((Err(status), None))
            }
            Some(Ok(data)) => {
                log.bytes += (data.data_header.len() + data.data_body.len()) as u64;
                if log.bytes > limits.max_bytes {
                    let e = Error::ResultTooLarge { limit: format!("{} bytes", limits.max_bytes), flag: "--max-bytes" };
                    log.finish(&e);
                    return Some((Err(status(&e)), None));
                }
                Some((Ok(data), Some((inner, log))))
            }
        }
    });
    Box::pin(stream)
}

/// The log line of one query, written once: when it ends, fails, or is dropped unfinished.
pub(super) struct QueryLog {
    role: Role,
    peer: String,
    sql: String,
    started: Instant,
    rows: Arc<AtomicU64>,
    bytes: u64,
    done: bool,
}

impl QueryLog {
    pub(super) fn new(role: Role, peer: String, sql: &str, started: Instant, rows: Arc<AtomicU64>) -> Self {
        let mut shown: String =
            sql.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(LOGGED_SQL_CHARS + 1).collect();
        if shown.chars().count() > LOGGED_SQL_CHARS {
            shown = shown.chars().take(LOGGED_SQL_CHARS).chain(['…']).collect();
        }
        Self { role, peer, sql: shown, started, rows, bytes: 0, done: false }
    }

    pub(super) fn finish_ok(&mut self) {
        self.write("ok", None);
    }

    pub(super) fn finish(&mut self, e: &Error) {
        let outcome = match e {
            Error::ReadOnly { .. } | Error::NotATable { .. } | Error::Forbidden { .. } => "refused",
            Error::Query { .. } => "invalid",
            Error::ResultTooLarge { .. } => "too_large",
            Error::QueryTimeout { .. } => "timeout",
            _ => "failed",
        };
        self.write(outcome, Some(&e.to_string()));
    }

    pub(super) fn finish_status(&mut self, s: &Status) {
        let outcome = match s.code() {
            tonic::Code::PermissionDenied => "refused",
            tonic::Code::InvalidArgument => "invalid",
            tonic::Code::ResourceExhausted => "too_large",
            tonic::Code::DeadlineExceeded => "timeout",
            _ => "failed",
        };
        self.write(outcome, Some(s.message()));
    }

    fn write(&mut self, outcome: &str, error: Option<&str>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let rows = self.rows.load(Ordering::Relaxed);
        let seconds = (self.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
        let (role, peer, bytes, sql) = (self.role.name(), self.peer.as_str(), self.bytes, self.sql.as_str());
        match error {
            None => tracing::info!(target: "alliance::serve", role, peer, outcome, rows, bytes, seconds, sql, "query"),
            Some(error) => {
                tracing::warn!(target: "alliance::serve", role, peer, outcome, rows, bytes, seconds, sql, error, "query")
            }
        }
    }
}

impl Drop for QueryLog {
    fn drop(&mut self) {
        self.write("cancelled", Some("the client stopped reading"));
    }
}
