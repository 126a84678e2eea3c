//! Analyst access: one SQL session over everything in the warehouse, by name — the staging
//! tables of every pipeline, every model (staging views, intermediate tables, published marts)
//! and the run history (`runs`) — with results as a table, CSV, JSON lines or Parquet, and errors
//! that point at the place in the SQL.

use crate::error::{Error, Result};
use crate::jobs::JobContext;
use datafusion::arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;

/// Output formats of `alliance query` and the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum OutputFormat {
    /// An aligned text table.
    #[default]
    Table,
    /// CSV with a header row.
    Csv,
    /// One JSON object per row.
    Json,
    /// Parquet (zstd); needs an output file.
    Parquet,
}

/// A session with every table of the warehouse registered.
pub async fn session(ctx: &JobContext) -> Result<SessionContext> {
    let session = crate::transform::session::session(&ctx.stores.warehouse, &ctx.pipelines).await?;
    let graph = crate::transform::load_graph(&ctx.sql_dir, &ctx.pipelines)?;
    crate::transform::attach_built(&session, &ctx.stores.warehouse, &graph).await?;
    let history = crate::schedule::status::runs(&ctx.stores.warehouse).await?;
    let runs = crate::schedule::status::runs_batch(&history)?;
    crate::transform::session::register_memory(&session, "runs", runs.schema(), vec![runs])?;
    Ok(session)
}

/// Runs one statement; on failure the error shows where in the SQL it went wrong.
pub async fn run(session: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    let fail = |e: datafusion::error::DataFusionError| Error::Query { reason: point_at(sql, &e.to_string()) };
    let df = session.sql(sql).await.map_err(fail)?;
    df.collect().await.map_err(fail)
}

/// Renders batches in a format.
pub fn render(batches: &[RecordBatch], format: OutputFormat) -> Result<Vec<u8>> {
    use datafusion::arrow::{csv, json};
    let err = Error::arrow("formatting the result");
    match format {
        OutputFormat::Table => {
            let table = datafusion::arrow::util::pretty::pretty_format_batches(batches).map_err(err)?;
            Ok(format!("{table}\n").into_bytes())
        }
        OutputFormat::Csv => {
            let mut out = Vec::new();
            let mut w = csv::WriterBuilder::new().with_header(true).build(&mut out);
            for b in batches {
                w.write(b).map_err(Error::arrow("writing CSV"))?;
            }
            drop(w);
            Ok(out)
        }
        OutputFormat::Json => {
            let mut w = json::LineDelimitedWriter::new(Vec::new());
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            w.write_batches(&refs).map_err(Error::arrow("writing JSON"))?;
            w.finish().map_err(Error::arrow("writing JSON"))?;
            Ok(w.into_inner())
        }
        OutputFormat::Parquet => {
            let Some(first) = batches.first() else { return Ok(vec![]) };
            let props = crate::ingest::writer::writer_properties(&Default::default(), &[])?;
            let mut w = parquet::arrow::ArrowWriter::try_new(Vec::new(), first.schema(), Some(props))
                .map_err(Error::parquet("writing the result"))?;
            for b in batches {
                w.write(b).map_err(Error::parquet("writing the result"))?;
            }
            w.into_inner().map_err(Error::parquet("writing the result"))
        }
    }
}

/// The error message with the SQL line it is about and a caret under the position: from the
/// parser's `Line: L, Column: C`, or else from the first unknown name the message quotes.
pub fn point_at(sql: &str, message: &str) -> String {
    let end_of_input = || {
        let lines = sql.trim_end().lines().count().max(1);
        message.contains("found: EOF").then(|| (lines, sql.trim_end().lines().last().unwrap_or("").len() + 1))
    };
    let position = parser_position(message).or_else(|| unknown_name_position(sql, message)).or_else(end_of_input);
    let Some((line, column)) = position else { return message.to_string() };
    let Some(text) = sql.lines().nth(line.saturating_sub(1)) else { return message.to_string() };
    format!("{message}\n  {line:>3} | {text}\n      | {}^", " ".repeat(column.saturating_sub(1)))
}

fn parser_position(message: &str) -> Option<(usize, usize)> {
    let at = message.find("Line: ")?;
    let rest = &message[at + 6..];
    let line: usize = rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
    let col_at = rest.find("Column: ")?;
    let column: usize = rest[col_at + 8..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
    Some((line, column))
}

fn unknown_name_position(sql: &str, message: &str) -> Option<(usize, usize)> {
    let name = ["No field named ", "table '", "Invalid function '", "not found: "].iter().find_map(|marker| {
        let at = message.find(marker)?;
        let rest = message[at + marker.len()..].trim_start_matches(['"', '\'']);
        let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.')).unwrap_or(rest.len());
        let name = rest[..end].trim_end_matches('.').rsplit('.').next()?.to_string();
        (!name.is_empty()).then_some(name)
    })?;
    let lower = name.to_lowercase();
    sql.lines().enumerate().find_map(|(i, l)| l.to_lowercase().find(&lower).map(|c| (i + 1, c + 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carets_point_at_parser_positions_and_unknown_names() {
        let shown = point_at(
            "SELECT *\nFROM t WHERE",
            "sql parser error: Expected: an expression, found: EOF at Line: 2, Column: 13",
        );
        assert!(shown.ends_with("    2 | FROM t WHERE\n      |             ^"), "{shown}");
        let shown =
            point_at("select org_cde from mart", "Schema error: No field named org_cde. Did you mean 'org_code'?");
        assert!(shown.ends_with("      |        ^"), "{shown}");
        assert_eq!(point_at("select 1", "something else"), "something else");
    }
}
