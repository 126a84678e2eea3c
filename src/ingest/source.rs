//! Raw sources: every supported format is read into the same shape — a header (column names and
//! the title text above it) followed by batches of text columns (`Utf8`), one per source column,
//! each batch knowing the source row number of its first record. Normalisation then works on that
//! shape whatever the format.
//!
//! Each source runs on its own thread (or task) and sends [`SourceMsg`]s over a bounded channel,
//! so reading, normalising and Parquet encoding overlap and memory stays bounded.

use crate::config::pipeline::SourceSpec;
use crate::error::Result;
use arrow::array::ArrayRef;
use std::collections::HashMap;
use tokio::sync::mpsc;

/// Header of a source: column names (trimmed) and the text above the header row.
#[derive(Debug, Clone, Default)]
pub struct SourceHeader {
    /// One name per source column; empty names for header-less sources.
    pub names: Vec<String>,
    /// Text files: the lines before the header row.
    pub title_lines: Vec<String>,
    /// Spreadsheets: non-empty cells above the header row, by 0-based (row, column).
    pub title_cells: HashMap<(u32, u32), String>,
    /// 1-based source row number of the header row (0 when there is none).
    pub header_row: u64,
}

/// A batch of raw text columns.
#[derive(Debug, Clone)]
pub struct RawBatch {
    /// Utf8 arrays, one per header column, all the same length.
    pub columns: Vec<ArrayRef>,
    /// Number of rows.
    pub rows: usize,
    /// 1-based source row number of the first row.
    pub first_row: u64,
}

/// What a source sends: the header first, then batches.
#[derive(Debug)]
pub enum SourceMsg {
    Header(SourceHeader),
    Batch(RawBatch),
}

pub type SourceTx = mpsc::Sender<Result<SourceMsg>>;
pub type SourceRx = mpsc::Receiver<Result<SourceMsg>>;

/// Channel depth between stages: enough to overlap, small enough to bound memory.
pub const CHANNEL_DEPTH: usize = 4;

/// Normalises a header cell for matching: trimmed, inner whitespace collapsed, lower case,
/// underscores as spaces.
pub fn header_key(name: &str) -> String {
    name.split(|c: char| c.is_whitespace() || c == '_')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Splits one delimited line into fields, honouring double quotes (`""` is a literal quote).
pub fn split_record(line: &str, delimiter: u8) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if in_quotes && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' => in_quotes = !in_quotes,
            c if !in_quotes && c as u32 == delimiter as u32 => fields.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    fields.push(field);
    fields.iter().map(|f| f.trim().to_string()).collect()
}

/// True if any cell of `cells` equals `keyword` (trimmed, case-insensitive).
pub fn row_has_keyword<'a>(cells: impl IntoIterator<Item = &'a str>, keyword: &str) -> bool {
    let key = header_key(keyword);
    cells.into_iter().any(|c| header_key(c) == key)
}

/// The spec's delimiter byte.
pub fn delimiter(spec: &SourceSpec) -> u8 {
    use crate::config::pipeline::Format;
    match spec.format {
        Format::Tsv => b'\t',
        _ => spec.delimiter.map(|c| c as u8).unwrap_or(b','),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_keys() {
        assert_eq!(split_record(r#"a,"b, c","d ""q""",,"#, b','), vec!["a", "b, c", "d \"q\"", "", ""]);
        assert_eq!(split_record("x\ty", b'\t'), vec!["x", "y"]);
        assert_eq!(header_key("  ORG   Code "), "org code");
        assert_eq!(header_key("org_code"), "org code");
        assert!(row_has_keyword(["", "Organisation Code"], "organisation code"));
    }
}
