//! `alliance query`: one statement over the tables of a role ([`super::session`]), with results
//! as a table, CSV, JSON lines or Parquet, and errors that point at the place in the SQL.
//!
//! CSV is safe to open in a spreadsheet by default: a text cell beginning with `=`, `+`, `-`,
//! `@`, a tab or a carriage return is prefixed with `'` (OWASP's rule against CSV injection), so
//! Excel or LibreOffice shows it as text instead of running it as a formula. Numbers, dates and
//! the header are left alone. [`CsvCells::Raw`] (`--raw`) writes cells exactly as stored.

use crate::error::{Error, Result};
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::SessionContext;
use std::sync::Arc;

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

/// How CSV text cells are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CsvCells {
    /// Cells a spreadsheet would run as a formula are prefixed with `'`.
    #[default]
    Safe,
    /// Cells exactly as stored.
    Raw,
}

/// Runs one query on an internal context (the catalogue and report pages), read-only; on
/// failure the error shows where in the SQL it went wrong. People's queries go through
/// [`super::AccessSession::run`], which also checks the role.
pub async fn run(session: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    let df = super::session::read_only_sql(session, sql, "alliance").await?;
    df.collect().await.map_err(|e| Error::Query { reason: point_at(sql, &e.to_string()) })
}

/// Renders batches in a format.
pub fn render(batches: &[RecordBatch], format: OutputFormat, cells: CsvCells) -> Result<Vec<u8>> {
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
                match cells {
                    CsvCells::Safe => w.write(&neutralise_csv(b)?),
                    CsvCells::Raw => w.write(b),
                }
                .map_err(Error::arrow("writing CSV"))?;
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

/// True for a text cell a spreadsheet would read as a formula (OWASP: `=`, `+`, `-`, `@`, tab,
/// carriage return first).
pub fn is_formula_like(text: &str) -> bool {
    text.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

/// The batch with every text column (plain, large, view or dictionary-encoded) as UTF-8 and each
/// formula-like cell prefixed with `'`.
pub fn neutralise_csv(batch: &RecordBatch) -> Result<RecordBatch> {
    let text = |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let is_text = match field.data_type() {
            DataType::Dictionary(_, values) => text(values),
            other => text(other),
        };
        if !is_text {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
            continue;
        }
        let utf8 = datafusion::arrow::compute::cast(column, &DataType::Utf8).map_err(Error::arrow("writing CSV"))?;
        let strings = utf8.as_any().downcast_ref::<StringArray>().expect("cast to Utf8 gives a StringArray");
        let safe: StringArray = strings
            .iter()
            .map(|v| v.map(|v| if is_formula_like(v) { format!("'{v}") } else { v.to_string() }))
            .collect();
        fields.push(Field::new(field.name(), DataType::Utf8, field.is_nullable()));
        columns.push(Arc::new(safe));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(Error::arrow("writing CSV"))
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
    use datafusion::arrow::array::{DictionaryArray, Int32Array};
    use datafusion::arrow::datatypes::Int32Type;

    #[test]
    fn csv_cells_that_start_a_formula_are_prefixed_unless_raw() {
        let cells = ["=HYPERLINK(\"http://x\")", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "plain", "a=b", "'q"];
        let text = Arc::new(StringArray::from(cells.iter().map(|c| Some(*c)).chain([None]).collect::<Vec<_>>()));
        let dict: DictionaryArray<Int32Type> =
            ["=1", "ok", "=1", "ok", "ok", "ok", "ok", "ok", "ok", "@x"].into_iter().collect();
        let numbers = Arc::new(Int32Array::from(vec![-1; 10]));
        let batch =
            RecordBatch::try_from_iter([("t", text as ArrayRef), ("d", Arc::new(dict) as _), ("n", numbers as _)])
                .unwrap();
        let safe = String::from_utf8(render(std::slice::from_ref(&batch), OutputFormat::Csv, CsvCells::Safe).unwrap())
            .unwrap();
        let lines: Vec<&str> = safe.lines().collect();
        assert_eq!(lines[0], "t,d,n");
        assert_eq!(lines[1], "\"'=HYPERLINK(\"\"http://x\"\")\",'=1,-1");
        assert_eq!(lines[2], "'+1,ok,-1");
        assert_eq!(lines[3], "'-2+3,'=1,-1");
        assert_eq!(lines[4], "'@SUM(A1),ok,-1");
        assert!(safe.contains("\n'\tx,ok,-1\n"), "{safe}");
        assert!(safe.contains("\"'\rx\""), "{safe}");
        assert_eq!(&lines[lines.len() - 3..], ["a=b,ok,-1", "'q,ok,-1", ",'@x,-1"]);
        let raw = String::from_utf8(render(&[batch], OutputFormat::Csv, CsvCells::Raw).unwrap()).unwrap();
        assert!(raw.lines().nth(1).unwrap().starts_with("\"=HYPERLINK") && raw.contains("\n+1,ok,-1\n"), "{raw}");
    }

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
