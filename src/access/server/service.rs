//! The Flight SQL service of `alliance serve` (semantics in [`super`]): authentication on every
//! call, statements and prepared statements through the role's [`AccessSession`], catalog calls
//! from the session's registered tables, and results streamed under the server's [`Limits`].

use super::auth::{credential, Tokens};
use super::results::{batch_stream, flight_schema, limit_bytes, limit_rows, AbortOnDrop, QueryLog};
use super::{Limits, Sessions};
use crate::access::{AccessSession, Role};
use crate::error::Error;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult,
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables,
    CommandPreparedStatementQuery, CommandPreparedStatementUpdate, CommandStatementIngest, CommandStatementQuery,
    CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage, SchemaAsIpc,
    Ticket,
};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use datafusion::datasource::TableType;
use futures::{Stream, StreamExt};
use prost::Message;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;
use tokio::time::Instant as Deadline;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

pub(super) type DoGetStream = <FlightSql as FlightService>::DoGetStream;

/// Table types the catalog calls report.
const TABLE_TYPES: [&str; 3] = ["TABLE", "VIEW", "SYSTEM TABLE"];

/// The Flight SQL service: tokens, one session per role, limits.
pub struct FlightSql {
    sessions: Arc<Sessions>,
    executor: tokio::runtime::Handle,
    tokens: Arc<Tokens>,
    limits: Limits,
    info: SqlInfoData,
}

impl FlightSql {
    /// A service over `sessions`; queries plan and run on `executor`, a runtime of their own, so
    /// that a query keeping every thread busy cannot hold up other calls or the timeout.
    pub fn new(sessions: Arc<Sessions>, executor: tokio::runtime::Handle, tokens: Arc<Tokens>, limits: Limits) -> Self {
        let mut info = SqlInfoDataBuilder::new();
        info.append(SqlInfo::FlightSqlServerName, "alliance-warehouse");
        info.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
        info.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
        info.append(SqlInfo::FlightSqlServerReadOnly, true);
        info.append(SqlInfo::FlightSqlServerSql, true);
        info.append(SqlInfo::FlightSqlServerSubstrait, false);
        info.append(SqlInfo::FlightSqlServerTransaction, 0i32);
        info.append(SqlInfo::FlightSqlServerCancel, false);
        let info = info.build().expect("static SqlInfo values build");
        Self { sessions, executor, tokens, limits, info }
    }

    /// The caller's role, from its `authorization` header.
    fn role<T>(&self, request: &Request<T>) -> Result<Role, Status> {
        let header = request.metadata().get("authorization").and_then(|v| v.to_str().ok());
        self.tokens.authenticate(header).map_err(|e| {
            tracing::warn!(target: "alliance::serve", peer = %peer(request), outcome = "unauthenticated", "{e}");
            status(&e)
        })
    }

    /// The caller's role and its session.
    async fn session<T>(&self, request: &Request<T>) -> Result<(Role, Arc<AccessSession>), Status> {
        let role = self.role(request)?;
        let session = self.sessions.get(role).await.map_err(|e| status(&e))?;
        Ok((role, session))
    }

    /// Checks and plans `sql` for the caller within the time limit: the result's schema as sent.
    async fn describe<T>(&self, request: &Request<T>, sql: &str) -> Result<Schema, Status> {
        let (role, session) = self.session(request).await?;
        let started = Instant::now();
        let deadline = Deadline::now() + self.limits.query_timeout;
        let owned = sql.to_string();
        let planned = self.executor.spawn(async move {
            let df = session.plan(&owned).await?;
            Ok::<_, Error>(flight_schema(df.schema().as_arrow()))
        });
        let _abort = AbortOnDrop(planned.abort_handle());
        let outcome = match tokio::time::timeout_at(deadline, planned).await {
            Err(_) => Err(self.timeout()),
            Ok(Err(e)) => Err(Error::Serve { reason: format!("planning stopped: {e}") }),
            Ok(Ok(result)) => result,
        };
        outcome.map_err(|e| {
            QueryLog::new(role, peer(request), sql, started, Arc::default()).finish(&e);
            status(&e)
        })
    }

    fn timeout(&self) -> Error {
        Error::QueryTimeout { seconds: self.limits.query_timeout.as_secs() }
    }

    /// Runs `sql` for the caller and streams its result under the limits. The query plans and
    /// runs on the query runtime and sends its batches through a small channel; this side waits
    /// on the channel with the deadline, so a query that keeps its threads busy still times out,
    /// and dropping the result (client gone, limit, timeout) aborts the query's task.
    async fn execute<T>(&self, request: &Request<T>, sql: String) -> Result<Response<DoGetStream>, Status> {
        let (role, session) = self.session(request).await?;
        let started = Instant::now();
        let deadline = Deadline::now() + self.limits.query_timeout;
        let rows = Arc::new(AtomicU64::new(0));
        let mut log = QueryLog::new(role, peer(request), &sql, started, rows.clone());
        let (schema_tx, schema_rx) = tokio::sync::oneshot::channel::<Result<SchemaRef, Error>>();
        let (batch_tx, batch_rx) = tokio::sync::mpsc::channel::<Result<RecordBatch, Error>>(2);
        let task = self.executor.spawn(async move {
            let started = async {
                let df = session.plan(&sql).await?;
                let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
                let stream = df.execute_stream().await.map_err(|e| Error::Query { reason: e.to_string() })?;
                Ok::<_, Error>((schema, stream))
            };
            let mut stream = match started.await {
                Ok((schema, stream)) => {
                    let _ = schema_tx.send(Ok(schema));
                    stream
                }
                Err(e) => {
                    let _ = schema_tx.send(Err(e));
                    return;
                }
            };
            while let Some(item) = stream.next().await {
                let item = item.map_err(|e| Error::Query { reason: e.to_string() });
                let failed = item.is_err();
                if batch_tx.send(item).await.is_err() || failed {
                    break;
                }
            }
        });
        let abort = AbortOnDrop(task.abort_handle());
        let schema = match tokio::time::timeout_at(deadline, schema_rx).await {
            Err(_) => Err(self.timeout()),
            Ok(Err(_)) => Err(Error::Serve { reason: "the query stopped before it started".into() }),
            Ok(Ok(result)) => result,
        };
        let schema = schema.map_err(|e| {
            log.finish(&e);
            status(&e)
        })?;
        let batches = limit_rows(batch_rx, abort, deadline, self.limits, rows);
        let encoded = FlightDataEncoderBuilder::new().with_schema(schema).build(batches);
        Ok(Response::new(limit_bytes(encoded, self.limits, log)))
    }

    /// The error for a write sent through DoPut: the read-only session's refusal of the SQL, if
    /// it has one, else [`Error::ReadOnly`] naming `what`. Logged like a query.
    async fn refuse_write<T>(&self, request: &Request<T>, sql: Option<&str>, what: &str) -> Status {
        let (role, session) = match self.session(request).await {
            Ok(found) => found,
            Err(status) => return status,
        };
        let checked = sql.map_or(Ok(()), |sql| session.check(sql));
        let e = checked.err().unwrap_or(Error::ReadOnly { tool: super::TOOL, statement: what.to_string() });
        QueryLog::new(role, peer(request), sql.unwrap_or(what), Instant::now(), Arc::default()).finish(&e);
        status(&e)
    }

    /// A `FlightInfo` for a statement: its schema and one ticket (`ticket`, which carries the SQL).
    fn flight_info(schema: &Schema, ticket: Vec<u8>, descriptor: FlightDescriptor) -> Result<FlightInfo, Status> {
        let info = FlightInfo::new()
            .try_with_schema(schema)
            .map_err(|e| Status::internal(format!("encoding the schema: {e}")))?
            .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
            .with_descriptor(descriptor)
            .with_ordered(true);
        Ok(info)
    }
}

/// The Arrow error status of a library error; messages are the library's, which never show a
/// token or a value from the warehouse beyond what the caller may read.
pub(super) fn status(e: &Error) -> Status {
    let message = e.to_string();
    match e {
        Error::Unauthenticated { .. } => Status::unauthenticated(message),
        Error::ReadOnly { .. } | Error::NotATable { .. } | Error::Forbidden { .. } => {
            Status::permission_denied(message)
        }
        Error::Query { .. } => Status::invalid_argument(message),
        Error::ResultTooLarge { .. } => Status::resource_exhausted(message),
        Error::QueryTimeout { .. } => Status::deadline_exceeded(message),
        _ => Status::internal(message),
    }
}

fn peer<T>(request: &Request<T>) -> String {
    request.remote_addr().map_or_else(|| "-".to_string(), |a| a.to_string())
}

#[tonic::async_trait]
impl FlightSqlService for FlightSql {
    type FlightService = FlightSql;

    /// Accepts `authorization: Bearer TOKEN`, basic auth with the token as password, or a
    /// `BasicAuth` payload; answers with `authorization: Bearer TOKEN` for the following calls.
    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>, Status> {
        let header = request.metadata().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
        let token = match header {
            Some(header) => credential(Some(&header)).map_err(|e| status(&e))?,
            None => {
                let peer = peer(&request);
                let mut messages = request.into_inner();
                let first = messages.message().await?.ok_or_else(|| {
                    Status::unauthenticated("not authenticated: the handshake carried no credentials")
                })?;
                let basic = arrow_flight::BasicAuth::decode(first.payload.as_ref())
                    .map_err(|_| Status::unauthenticated("not authenticated: the handshake carried no credentials"))?;
                tracing::debug!(target: "alliance::serve", peer, "handshake with a BasicAuth payload");
                basic.password.into_bytes()
            }
        };
        let Some(role) = self.tokens.role_of(&token) else {
            let e = Error::Unauthenticated { reason: "the token is not valid".into() };
            tracing::warn!(target: "alliance::serve", outcome = "unauthenticated", "handshake: {e}");
            return Err(status(&e));
        };
        tracing::debug!(target: "alliance::serve", role = role.name(), "handshake");
        let bearer = String::from_utf8(token)
            .ok()
            .and_then(|t| MetadataValue::try_from(format!("Bearer {t}")).ok())
            .ok_or_else(|| Status::invalid_argument("the token is not a valid header value"))?;
        let reply = HandshakeResponse { protocol_version: 0, payload: Default::default() };
        let mut response: Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>> =
            Response::new(Box::pin(futures::stream::iter([Ok(reply)])));
        response.metadata_mut().insert("authorization", bearer);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = self.describe(&request, &query.query).await?;
        let ticket = TicketStatementQuery { statement_handle: query.query.into_bytes().into() };
        let info = Self::flight_info(&schema, ticket.as_any().encode_to_vec(), request.into_inner())?;
        Ok(Response::new(info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let sql = String::from_utf8(ticket.statement_handle.to_vec())
            .map_err(|_| Status::invalid_argument("the ticket is not a statement of this server"))?;
        self.execute(&request, sql).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let schema = self.describe(&request, &query.query).await?;
        let IpcMessage(dataset_schema) = SchemaAsIpc::new(&schema, &IpcWriteOptions::default())
            .try_into()
            .map_err(|e| Status::internal(format!("encoding the schema: {e}")))?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: query.query.into_bytes().into(),
            dataset_schema,
            parameter_schema: Default::default(),
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        // Handles are the SQL itself: nothing is kept, nothing to close.
        self.role(&request).map(|_| ())
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let sql = String::from_utf8(query.prepared_statement_handle.to_vec())
            .map_err(|_| Status::invalid_argument("not a prepared statement of this server"))?;
        let schema = self.describe(&request, &sql).await?;
        let info = Self::flight_info(&schema, query.as_any().encode_to_vec(), request.into_inner())?;
        Ok(Response::new(info))
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let sql = String::from_utf8(query.prepared_statement_handle.to_vec())
            .map_err(|_| Status::invalid_argument("not a prepared statement of this server"))?;
        self.execute(&request, sql).await
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.role(&request)?;
        let schema = query.into_builder().schema();
        Ok(Response::new(Self::flight_info(&schema, query.as_any().encode_to_vec(), request.into_inner())?))
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let (_, session) = self.session(&request).await?;
        let mut builder = query.into_builder();
        for catalog in session.context().catalog_names() {
            builder.append(catalog);
        }
        batch_stream(builder.build())
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.role(&request)?;
        let schema = query.clone().into_builder().schema();
        Ok(Response::new(Self::flight_info(&schema, query.as_any().encode_to_vec(), request.into_inner())?))
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let (_, session) = self.session(&request).await?;
        let ctx = session.context();
        let mut builder = query.into_builder();
        for catalog_name in ctx.catalog_names() {
            let Some(catalog) = ctx.catalog(&catalog_name) else { continue };
            for schema in catalog.schema_names() {
                builder.append(&catalog_name, schema);
            }
        }
        batch_stream(builder.build())
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.role(&request)?;
        let schema = query.clone().into_builder().schema();
        Ok(Response::new(Self::flight_info(&schema, query.as_any().encode_to_vec(), request.into_inner())?))
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let (_, session) = self.session(&request).await?;
        let ctx = session.context();
        let mut builder = query.into_builder();
        for catalog_name in ctx.catalog_names() {
            let Some(catalog) = ctx.catalog(&catalog_name) else { continue };
            for schema_name in catalog.schema_names() {
                let Some(schema) = catalog.schema(&schema_name) else { continue };
                let system = schema_name.eq_ignore_ascii_case("information_schema");
                for table_name in schema.table_names() {
                    let Ok(Some(table)) = schema.table(&table_name).await else { continue };
                    let kind = match (system, table.table_type()) {
                        (true, _) => TABLE_TYPES[2],
                        (false, TableType::View) => TABLE_TYPES[1],
                        (false, _) => TABLE_TYPES[0],
                    };
                    let columns = flight_schema(&table.schema());
                    builder
                        .append(&catalog_name, &schema_name, &table_name, kind, &columns)
                        .map_err(|e| Status::internal(format!("listing {table_name}: {e}")))?;
                }
            }
        }
        batch_stream(builder.build())
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.role(&request)?;
        let schema = query.into_builder().schema();
        Ok(Response::new(Self::flight_info(&schema, query.as_any().encode_to_vec(), request.into_inner())?))
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.role(&request)?;
        let mut builder = query.into_builder();
        for kind in TABLE_TYPES {
            builder.append(kind);
        }
        batch_stream(builder.build())
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.role(&request)?;
        let schema = query.clone().into_builder(&self.info).schema();
        Ok(Response::new(Self::flight_info(&schema, query.as_any().encode_to_vec(), request.into_inner())?))
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.role(&request)?;
        batch_stream(query.into_builder(&self.info).build())
    }

    /// Updates are refused with the same error `alliance query` gives for the statement (or
    /// "UPDATE (DoPut)" for a query sent as an update); nothing runs.
    async fn do_put_statement_update(
        &self,
        ticket: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(self.refuse_write(&request, Some(&ticket.query), "UPDATE (DoPut)").await)
    }

    async fn do_put_statement_ingest(
        &self,
        _ticket: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(self.refuse_write(&request, None, "bulk ingest").await)
    }

    async fn do_put_prepared_statement_update(
        &self,
        query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let sql = String::from_utf8_lossy(&query.prepared_statement_handle).into_owned();
        Err(self.refuse_write(&request, Some(&sql), "UPDATE (DoPut)").await)
    }

    async fn do_put_prepared_statement_query(
        &self,
        _query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        self.role(&request)?;
        Err(Status::invalid_argument("alliance serve does not bind parameters: put the values in the SQL"))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
