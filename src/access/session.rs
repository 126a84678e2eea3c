//! The role-scoped, read-only SQL session that every analyst-facing surface uses: `alliance
//! query`, `alliance shell` and `alliance serve` (Flight SQL, [`super::server`]).
//!
//! Semantics of [`AccessSession::plan`], in order:
//!
//! 1. The text must parse as exactly one statement, and that statement must be a query: `SELECT`
//!    / `WITH` / `VALUES`, `EXPLAIN` of a query, `DESCRIBE`, `SHOW TABLES`, `SHOW COLUMNS`, `SHOW`
//!    of a setting.
//!    Anything else (`COPY`, `CREATE [EXTERNAL] TABLE`, `CREATE VIEW`, `INSERT`, `UPDATE`,
//!    `DELETE`, `DROP`, `SET`, `RESET`, `SELECT … INTO`, transactions, …) is refused with
//!    [`Error::ReadOnly`], naming the statement and nothing from it.
//! 2. Every table the query names must be a table of the session: a name that looks like a file
//!    path or URL (`'/etc/passwd'`, `'s3://…'`, `'x.csv'`) is refused with [`Error::NotATable`];
//!    a warehouse table the role may not read is refused with [`Error::Forbidden`] naming the
//!    role it needs. Tables outside the role are not registered at all (defence in depth), so
//!    `information_schema`, `SHOW TABLES` and the shell's `.tables` list only what the role sees.
//! 3. The statement is planned with [`read_only_options`] (DataFusion's `SQLOptions` without DDL,
//!    DML or statements) through `SessionContext::sql_with_options`, so a plan that writes is
//!    refused even if step 1 missed it. The session never enables DataFusion's URL tables
//!    (`enable_url_table`, the dynamic file catalog), so no path outside the registered tables
//!    can be read.

use super::role::{table_kinds, Role, TableKind};
use crate::error::{Error, Result};
use crate::jobs::JobContext;
use crate::transform::graph::Graph;
use crate::transform::model::Layer;
use crate::transform::session::{empty_session, register_memory, register_parquet, WAREHOUSE_URL};
use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::{DataFrame, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{SetExpr, Statement};
use std::collections::BTreeMap;
use std::sync::Arc;

/// DataFusion options that refuse DDL, DML and statements (`SET`, transactions, …).
pub fn read_only_options() -> SQLOptions {
    SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false)
}

/// A read-only session over the tables one role may read.
pub struct AccessSession {
    ctx: SessionContext,
    role: Role,
    tool: &'static str,
    kinds: BTreeMap<String, TableKind>,
}

impl AccessSession {
    /// Opens a session for `role` over the warehouse of `job`; `tool` names the surface in
    /// errors ("alliance query", "alliance shell", …).
    pub async fn open(job: &JobContext, role: Role, tool: &'static str) -> Result<Self> {
        let graph = crate::transform::load_graph(&job.sql_dir, &job.pipelines)?;
        let ctx = match role {
            Role::Engineer => warehouse_context(job, &graph).await?,
            Role::Analyst => marts_context(job, &graph).await?,
        };
        if role == Role::Analyst {
            register_runs(&ctx, job).await?;
        }
        let kinds = table_kinds(&job.pipelines, &graph);
        let catalogue = catalogue_batch(&graph, &kinds, role)?;
        register_memory(&ctx, "catalogue", catalogue.schema(), vec![catalogue])?;
        Ok(Self { ctx, role, tool, kinds })
    }

    /// The role the session serves.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The DataFusion context (only the role's tables are registered in it).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The kind of a warehouse table, if the warehouse defines it.
    pub fn kind_of(&self, table: &str) -> Option<TableKind> {
        self.kinds.get(&table.to_lowercase()).copied()
    }

    /// Refuses a table name the role may not read (or that is a file path).
    pub fn check_table(&self, table: &str) -> Result<()> {
        if looks_like_path(table) {
            return Err(Error::NotATable { tool: self.tool, path: table.to_string() });
        }
        match self.kind_of(table) {
            Some(kind) if !kind.visible_to(self.role) => Err(Error::Forbidden {
                table: table.to_string(),
                kind: kind.label(),
                role: self.role,
                needs: kind.needs(),
            }),
            _ => Ok(()),
        }
    }

    /// Checks that `sql` is one query over tables of the role (steps 1 and 2 of the module doc).
    pub fn check(&self, sql: &str) -> Result<()> {
        let state = self.ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let statement = state.sql_to_statement(sql, &dialect).map_err(query_error(sql))?;
        if let Some(name) = refused(&statement) {
            return Err(Error::ReadOnly { tool: self.tool, statement: name });
        }
        for reference in state.resolve_table_references(&statement).map_err(query_error(sql))? {
            if reference.schema().is_some_and(|s| s.eq_ignore_ascii_case("information_schema")) {
                continue;
            }
            self.check_table(reference.table())?;
        }
        Ok(())
    }

    /// Checks and plans `sql`; the frame is ready to collect or stream.
    pub async fn plan(&self, sql: &str) -> Result<DataFrame> {
        self.check(sql)?;
        read_only_sql(&self.ctx, sql, self.tool).await
    }

    /// Checks, plans and runs `sql`, collecting the result.
    pub async fn run(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        self.plan(sql).await?.collect().await.map_err(query_error(sql))
    }
}

/// Plans `sql` on `ctx` with [`read_only_options`]; errors point at the SQL.
pub async fn read_only_sql(ctx: &SessionContext, sql: &str, tool: &'static str) -> Result<DataFrame> {
    ctx.sql_with_options(sql, read_only_options()).await.map_err(|e| match refused_plan(&e) {
        Some(statement) => Error::ReadOnly { tool, statement },
        None => query_error(sql)(e),
    })
}

/// A context with every table of the warehouse: pipelines' staging tables, every built model
/// and `runs`. Used by the engineer role and by the catalogue and report pages.
pub async fn warehouse_context(job: &JobContext, graph: &Graph) -> Result<SessionContext> {
    let ctx = crate::transform::session::session(&job.stores.warehouse, &job.pipelines).await?;
    crate::transform::attach_built(&ctx, &job.stores.warehouse, graph).await?;
    register_runs(&ctx, job).await?;
    Ok(ctx)
}

/// A context with the published marts only (what the analyst role reads, before `runs`).
async fn marts_context(job: &JobContext, graph: &Graph) -> Result<SessionContext> {
    let ctx = empty_session();
    let url = url::Url::parse(WAREHOUSE_URL).expect("static URL");
    ctx.register_object_store(&url, job.stores.warehouse.object_store());
    for m in graph.models.iter().filter(|m| m.layer == Layer::Mart) {
        let path = crate::transform::publish::published_path(&m.name);
        if job.stores.warehouse.head(&path).await?.is_some() {
            register_parquet(&ctx, &m.name, &path, None).await?;
        }
    }
    Ok(ctx)
}

async fn register_runs(ctx: &SessionContext, job: &JobContext) -> Result<()> {
    let history = crate::schedule::status::runs(&job.stores.warehouse).await?;
    let runs = crate::schedule::status::runs_batch(&history)?;
    register_memory(ctx, "runs", runs.schema(), vec![runs])
}

/// `catalogue`: one row per documented column of each model the role reads (one row with null
/// column fields for a model without documented columns).
fn catalogue_batch(graph: &Graph, kinds: &BTreeMap<String, TableKind>, role: Role) -> Result<RecordBatch> {
    let names = ["table_name", "kind", "grain", "description", "column_name", "column_description"];
    let mut columns: [Vec<Option<String>>; 6] = Default::default();
    for m in &graph.models {
        let Some(kind) = kinds.get(&m.name).filter(|k| k.visible_to(role)) else { continue };
        let documented: Vec<(Option<String>, Option<String>)> = if m.spec.columns.is_empty() {
            vec![(None, None)]
        } else {
            m.spec.columns.iter().map(|c| (Some(c.name.clone()), Some(c.description.clone()))).collect()
        };
        for (column, meaning) in documented {
            let row = [
                Some(m.name.clone()),
                Some(kind.label().to_string()),
                Some(m.spec.grain.clone()),
                Some(m.spec.description.clone()),
                column,
                meaning,
            ];
            for (out, value) in columns.iter_mut().zip(row) {
                out.push(value);
            }
        }
    }
    let schema = Arc::new(Schema::new(names.map(|n| Field::new(n, DataType::Utf8, n.starts_with("column"))).to_vec()));
    let arrays = columns.into_iter().map(|c| Arc::new(StringArray::from(c)) as _).collect();
    RecordBatch::try_new(schema, arrays).map_err(Error::arrow("building the catalogue"))
}

fn query_error(sql: &str) -> impl Fn(DataFusionError) -> Error + '_ {
    move |e| Error::Query { reason: super::query::point_at(sql, &e.to_string()) }
}

/// The name of a statement a read-only session refuses, or None for a query.
fn refused(statement: &DfStatement) -> Option<String> {
    match statement {
        DfStatement::Statement(s) => refused_sql(s),
        DfStatement::Explain(e) => refused(&e.statement),
        DfStatement::CreateExternalTable(_) => Some("CREATE EXTERNAL TABLE".into()),
        DfStatement::CopyTo(_) => Some("COPY".into()),
        DfStatement::Reset(_) => Some("RESET".into()),
    }
}

fn refused_sql(statement: &Statement) -> Option<String> {
    match statement {
        Statement::Query(q) => {
            matches!(q.body.as_ref(), SetExpr::Select(s) if s.into.is_some()).then(|| "SELECT INTO".into())
        }
        Statement::Explain { statement, .. } => refused_sql(statement),
        Statement::ExplainTable { .. }
        | Statement::ShowTables { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowVariable { .. } => None,
        other => Some(leading_keywords(&other.to_string())),
    }
}

/// The keywords that name a statement (`INSERT`, `CREATE TABLE`, `DROP VIEW`, `SET`), never its
/// identifiers or values.
fn leading_keywords(text: &str) -> String {
    const OBJECTS: &[&str] = &[
        "TABLE",
        "VIEW",
        "SCHEMA",
        "DATABASE",
        "FUNCTION",
        "INDEX",
        "CATALOG",
        "TYPE",
        "SEQUENCE",
        "ROLE",
        "USER",
        "PROCEDURE",
        "TRIGGER",
        "EXTENSION",
        "SECRET",
        "MACRO",
    ];
    const MODIFIERS: &[&str] =
        &["OR", "REPLACE", "EXTERNAL", "TEMPORARY", "TEMP", "UNBOUNDED", "UNIQUE", "MATERIALIZED", "GLOBAL", "LOCAL"];
    let mut words = text.split_whitespace().map(str::to_uppercase);
    let Some(first) = words.next().filter(|w| w.chars().all(|c| c.is_ascii_alphabetic())) else {
        return "this statement".into();
    };
    let mut out = vec![first.clone()];
    if matches!(first.as_str(), "CREATE" | "DROP" | "ALTER") {
        for word in words.take(6) {
            let object = OBJECTS.contains(&word.as_str());
            if !object && !MODIFIERS.contains(&word.as_str()) {
                break;
            }
            out.push(word);
            if object {
                break;
            }
        }
    }
    out.join(" ")
}

/// The statement DataFusion's `SQLOptions` refused, from its planning error.
fn refused_plan(e: &DataFusionError) -> Option<String> {
    let DataFusionError::Plan(message) = e else { return None };
    ["DDL not supported: ", "DML not supported: ", "Statement not supported: "]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .map(|what| what.split_whitespace().next().unwrap_or("this statement").to_string())
}

/// True for a table name that is really a file path or URL.
fn looks_like_path(table: &str) -> bool {
    table.contains(['/', '\\', ':', '.', '~'])
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::parser::DFParser;

    fn name(sql: &str) -> Option<String> {
        refused(&DFParser::parse_sql(sql).unwrap().pop_front().unwrap())
    }

    #[test]
    fn only_queries_pass_and_refusals_name_the_statement_not_its_values() {
        for sql in [
            "SELECT 1",
            "WITH t AS (SELECT 1) SELECT * FROM t",
            "EXPLAIN SELECT 1",
            "DESCRIBE mart_backlog",
            "SHOW TABLES",
            "SHOW COLUMNS FROM mart_backlog",
            "SHOW ALL",
            "VALUES (1)",
        ] {
            assert_eq!(name(sql), None, "{sql}");
        }
        let cases = [
            ("COPY (SELECT 1) TO 'x.parquet' STORED AS PARQUET", "COPY"),
            ("EXPLAIN COPY (SELECT 1) TO 'x.parquet' STORED AS PARQUET", "COPY"),
            ("CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/'", "CREATE EXTERNAL TABLE"),
            ("CREATE TABLE x AS SELECT 1", "CREATE TABLE"),
            ("CREATE OR REPLACE VIEW v AS SELECT 1", "CREATE OR REPLACE VIEW"),
            ("INSERT INTO mart_backlog VALUES ('secret')", "INSERT"),
            ("DELETE FROM mart_backlog", "DELETE"),
            ("DROP TABLE mart_backlog", "DROP TABLE"),
            ("SET datafusion.execution.batch_size = 1", "SET"),
            ("RESET datafusion.execution.batch_size", "RESET"),
            ("SELECT 1 INTO t", "SELECT INTO"),
        ];
        for (sql, expected) in cases {
            assert_eq!(name(sql).as_deref(), Some(expected), "{sql}");
        }
    }

    #[test]
    fn file_paths_and_urls_are_not_tables() {
        for path in ["/etc/passwd", "s3://bucket/x", "x.csv", "~/data", "C:\\x"] {
            assert!(looks_like_path(path), "{path}");
        }
        assert!(!looks_like_path("mart_backlog"));
    }
}
