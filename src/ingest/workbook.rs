//! Workbooks of many sheets (`[[sheets]]` in a pipeline): NHS England's monthly CWT provider and
//! commissioner workbooks publish one sheet per standard and breakdown, each with title rows
//! (the period in `A2`), a header of one or two rows and, in some sheets, several parts (`PART A:
//! ALL STAGES`, `PART B: FIRST TREATMENTS`, …) each under its own copy of the header.
//!
//! Semantics (sheets no entry matches are not read; a workbook none of whose sheets is read is
//! rejected):
//!
//! - **Blocks.** Every row holding one of the entry's header keywords (a cell equal to it, trimmed,
//!   case-insensitive) is a header row and starts a block; the block's rows run to the row before
//!   the next block's header (before its group row when `header_rows = 2`) or the end of the sheet.
//! - **Parts.** A block's label is the nearest row above its header holding exactly one text
//!   (e.g. `PART B: FIRST TREATMENTS`); with `parts` set, only blocks whose label starts with one
//!   of them are read, so that roll-ups printed beside their parts are not read twice.
//! - **Eras.** A sheet is read by the first entry matching its name whose header keywords occur
//!   in it, so that eras reusing a sheet name are told apart by their headers.
//! - **Columns.** A column's name is its cell in the header row, or with `header_rows = 2` the
//!   group cell above it when that is empty. Each contract column takes its `constants` value
//!   (`{sheet}` stands for the sheet name, `{NAME}` for the row's cell under header `NAME`, e.g.
//!   `62-day ({REFERRAL ROUTE})`; no value when that cell is empty), else its `title` cell of the sheet, else the first
//!   present of the sheet's `columns` names, its own name and its `aliases`, in that order (of
//!   several columns with that name, the first): aliases are therefore in priority order, which
//!   is how `WITHIN 62 DAYS` (the standard) wins over the day band `WITHIN 31 DAYS` of a 62-day
//!   sheet. A contract column found nowhere is null.
//! - **Records.** Cells under no header name are ignored (part labels, notes in column A); a row
//!   with nothing under a named header is not a record and is sent blank, so it is not counted,
//!   while source row numbers stay those of the sheet. Every other row is sent, including the
//!   England totals rows, which the pipeline drops by a declared `[[drop_rows]]` rule.
//!
//! The header sent downstream is the contract's column names; the title cells are those of the
//! first sheet read (for file-level `title_cell` derived columns). Limits are those of a
//! single-sheet workbook: the archive once, each sheet's extent before it is read, and
//! `max_field_bytes` per cell.

use super::source::{header_key, row_has_keyword, RawBatch, SourceHeader, SourceMsg, SourceTx};
use super::xlsx::{cell_text, checked_range, open_checked};
use crate::config::environment::LimitSettings;
use crate::config::pipeline::{parse_cell_ref, Pipeline, SheetSpec};
use crate::error::{Error, Result};
use arrow::array::{ArrayRef, StringBuilder};
use bytes::Bytes;
use calamine::{Data, Reader};
use std::collections::HashMap;
use std::sync::Arc;

/// Where a contract column's value comes from in one block.
#[derive(Debug, Clone, PartialEq)]
enum Source {
    Constant(String),
    /// Text with `{HEADER}` parts filled from the row's cells under that header.
    Template(Vec<Piece>),
    Column(usize),
    Missing,
}

/// Part of a constant template.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    /// The row's cell in this column; `None` when the block has no such header.
    Cell(Option<usize>),
}

/// Parses a constant: `{sheet}` is the sheet name, `{NAME}` the row's cell under header `NAME`.
fn template(value: &str, sheet: &str, keys: &[String]) -> Source {
    let mut pieces = Vec::new();
    let mut rest = value;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|c| open + c) else { break };
        pieces.push(Piece::Text(rest[..open].to_string()));
        let name = &rest[open + 1..close];
        if name == "sheet" {
            pieces.push(Piece::Text(sheet.trim().to_string()));
        } else {
            let key = header_key(name);
            pieces.push(Piece::Cell(keys.iter().position(|k| *k == key)));
        }
        rest = &rest[close + 1..];
    }
    pieces.push(Piece::Text(rest.to_string()));
    if pieces.iter().all(|p| matches!(p, Piece::Text(_))) {
        let text: String = pieces.iter().map(|p| if let Piece::Text(t) = p { t.as_str() } else { "" }).collect();
        Source::Constant(text)
    } else {
        Source::Template(pieces)
    }
}

/// Reads every sheet `[[sheets]]` selects and sends the contract-shaped header and batches.
pub fn send_workbook(
    file: &str,
    p: &Pipeline,
    batch_rows: usize,
    limits: &LimitSettings,
    bytes: Bytes,
    tx: &SourceTx,
) -> Result<()> {
    let mut workbook = open_checked(file, bytes, limits)?;
    let names = workbook.sheet_names();
    let mut header_sent = false;
    let mut read_any = false;
    for sheet in &names {
        let candidates: Vec<&SheetSpec> = p.sheets.iter().filter(|s| s.matches(sheet)).collect();
        if candidates.is_empty() {
            continue;
        }
        let range = checked_range(&mut workbook, file, sheet, limits)?;
        let Some((row0, col0)) = range.start() else { continue };
        let grid = Grid { rows: range.rows().collect(), row0, col0 };
        // The first entry whose header keywords occur in the sheet: eras that reuse a sheet name
        // (`62-DAY (ALL CANCER)`) are told apart by their headers.
        let found = candidates.iter().find_map(|spec| {
            let keywords = keywords(p, spec);
            let headers: Vec<usize> = (0..grid.rows.len())
                .filter(|&i| {
                    let cells = grid.texts(i);
                    keywords.iter().any(|k| row_has_keyword(cells.iter().map(String::as_str), k))
                })
                .collect();
            (!headers.is_empty()).then_some((*spec, headers))
        });
        let Some((spec, headers)) = found else {
            let all: Vec<&str> = candidates.iter().flat_map(|s| keywords(p, s)).collect();
            return Err(Error::source_file(
                file,
                format!("sheet '{}': no header row containing {}", super::redact::excerpt(sheet), all.join(" or ")),
            ));
        };
        read_any = true;
        let first_header = headers[0];
        if !header_sent {
            let header = SourceHeader {
                names: p.columns.iter().map(|c| c.name.clone()).collect(),
                title_lines: vec![],
                title_cells: grid.title_cells(first_header),
                header_row: 0,
            };
            if tx.blocking_send(Ok(SourceMsg::Header(header))).is_err() {
                return Ok(());
            }
            header_sent = true;
        }
        let titles = title_values(file, sheet, spec, &grid)?;
        for (b, &h) in headers.iter().enumerate() {
            let end = headers.get(b + 1).map(|&next| next + 1 - spec.header_rows.max(1)).unwrap_or(grid.rows.len());
            let floor = if b == 0 { 0 } else { headers[b - 1] + 1 };
            if !spec.parts.is_empty() {
                let label = grid.label_above(h, spec.header_rows, floor).unwrap_or_default().to_uppercase();
                if !spec.parts.iter().any(|part| label.starts_with(part.trim().to_uppercase().as_str())) {
                    continue;
                }
            }
            let columns = grid.column_names(h, spec.header_rows);
            let sources = map_columns(p, spec, sheet, &titles, &columns);
            let named: Vec<usize> = (0..columns.len()).filter(|j| !columns[*j].is_empty()).collect();
            let mut start = h + 1;
            while start < end {
                let stop = (start + batch_rows.max(1)).min(end);
                let batch = grid.batch(file, start..stop, &sources, &named, limits)?;
                if tx.blocking_send(Ok(SourceMsg::Batch(batch))).is_err() {
                    return Ok(());
                }
                start = stop;
            }
        }
    }
    if !read_any {
        return Err(Error::source_file(
            file,
            format!("no sheet matches [[sheets]] (sheets: {})", super::redact::names_joined(&names)),
        ));
    }
    Ok(())
}

/// Header keywords of an entry: its own, else the pipeline's `source.header.keyword`.
fn keywords<'a>(p: &'a Pipeline, spec: &'a SheetSpec) -> Vec<&'a str> {
    if spec.header_keywords.is_empty() {
        p.source.header.keyword.iter().map(String::as_str).collect()
    } else {
        spec.header_keywords.iter().map(String::as_str).collect()
    }
}

/// The values of the sheet's `title` cells, by contract column.
fn title_values(file: &str, sheet: &str, spec: &SheetSpec, grid: &Grid) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for (name, t) in &spec.title {
        let fail = |reason: String| {
            Error::source_file(file, format!("sheet '{}': title '{name}': {reason}", super::redact::excerpt(sheet)))
        };
        let (r, c) = parse_cell_ref(&t.cell).ok_or_else(|| fail(format!("bad cell {}", t.cell)))?;
        let text = grid.text_at(r, c).ok_or_else(|| fail(format!("cell {} is empty", t.cell)))?;
        let value = match &t.pattern {
            None => text.trim().to_string(),
            Some(pattern) => {
                let re = regex::Regex::new(pattern).map_err(|e| fail(e.to_string()))?;
                let caps = re
                    .captures(&text)
                    .ok_or_else(|| fail(format!("{} does not match {pattern}", super::redact::excerpt(&text))))?;
                caps.name("value").or_else(|| caps.get(1)).map(|m| m.as_str().trim().to_string()).unwrap_or_default()
            }
        };
        out.insert(name.clone(), value);
    }
    Ok(out)
}

/// Where each contract column comes from in a block with these column names.
fn map_columns(
    p: &Pipeline,
    spec: &SheetSpec,
    sheet: &str,
    titles: &HashMap<String, String>,
    columns: &[String],
) -> Vec<Source> {
    let keys: Vec<String> = columns.iter().map(|n| header_key(n)).collect();
    p.columns
        .iter()
        .map(|c| {
            if let Some(v) = spec.constants.get(&c.name) {
                return template(v, sheet, &keys);
            }
            if let Some(v) = titles.get(&c.name) {
                return Source::Constant(v.clone());
            }
            let wanted =
                spec.columns.get(&c.name).into_iter().flatten().chain(std::iter::once(&c.name)).chain(&c.aliases);
            wanted
                .map(|w| header_key(w))
                .find_map(|w| keys.iter().position(|k| !k.is_empty() && *k == w))
                .map(Source::Column)
                .unwrap_or(Source::Missing)
        })
        .collect()
}

/// A sheet's cells, by 0-based index relative to the range's start.
struct Grid<'a> {
    rows: Vec<&'a [Data]>,
    row0: u32,
    col0: u32,
}

impl Grid<'_> {
    /// Text of the cell at absolute column `j` of row `i`.
    fn text(&self, i: usize, j: usize) -> Option<String> {
        let k = j.checked_sub(self.col0 as usize)?;
        self.rows.get(i)?.get(k).and_then(cell_text).filter(|t| !t.trim().is_empty())
    }

    /// Text of the cell at absolute (row, column).
    fn text_at(&self, r: u32, c: u32) -> Option<String> {
        self.text(r.checked_sub(self.row0)? as usize, c as usize)
    }

    /// Non-empty texts of row `i`.
    fn texts(&self, i: usize) -> Vec<String> {
        self.rows[i].iter().filter_map(cell_text).collect()
    }

    fn width(&self) -> usize {
        self.col0 as usize + self.rows.iter().map(|r| r.len()).max().unwrap_or(0)
    }

    /// Column names of the header at row `h`, by absolute column.
    fn column_names(&self, h: usize, header_rows: usize) -> Vec<String> {
        (0..self.width())
            .map(|j| {
                let own = self.text(h, j);
                let group = if header_rows == 2 && h > 0 { self.text(h - 1, j) } else { None };
                own.or(group).map(|t| t.trim().to_string()).unwrap_or_default()
            })
            .collect()
    }

    /// The nearest row above the header at `h` (and its group row), not above `floor`, holding
    /// exactly one text.
    fn label_above(&self, h: usize, header_rows: usize, floor: usize) -> Option<String> {
        let top = h.checked_sub(header_rows.max(1))?;
        (floor..=top).rev().find_map(|i| {
            let texts: Vec<String> = self.texts(i).into_iter().filter(|t| !t.trim().is_empty()).collect();
            (texts.len() == 1).then(|| texts[0].trim().to_string())
        })
    }

    /// Non-empty cells above row `h`, by absolute (row, column).
    fn title_cells(&self, h: usize) -> HashMap<(u32, u32), String> {
        let mut cells = HashMap::new();
        for i in 0..h {
            for j in 0..self.width() {
                if let Some(t) = self.text(i, j) {
                    cells.insert((self.row0 + i as u32, j as u32), t);
                }
            }
        }
        cells
    }

    /// Rows `range` as a contract-shaped batch; rows with nothing under a named column are blank.
    fn batch(
        &self,
        file: &str,
        range: std::ops::Range<usize>,
        sources: &[Source],
        named: &[usize],
        limits: &LimitSettings,
    ) -> Result<RawBatch> {
        let n = range.len();
        let mut builders: Vec<StringBuilder> = sources.iter().map(|_| StringBuilder::with_capacity(n, n * 8)).collect();
        for i in range.clone() {
            let excel_row = self.row0 as u64 + i as u64 + 1;
            let record = named.iter().any(|&j| self.text(i, j).is_some());
            for (k, (b, source)) in builders.iter_mut().zip(sources).enumerate() {
                let value = match source {
                    _ if !record => None,
                    Source::Constant(v) => Some(v.clone()),
                    // A template naming a cell that is empty or absent gives no value.
                    Source::Template(pieces) => pieces
                        .iter()
                        .map(|p| match p {
                            Piece::Text(t) => Some(t.clone()),
                            Piece::Cell(j) => j.and_then(|j| self.text(i, j)).map(|t| t.trim().to_string()),
                        })
                        .collect::<Option<String>>(),
                    Source::Column(j) => self.text(i, *j),
                    Source::Missing => None,
                };
                match value {
                    Some(t) if t.len() > limits.max_field_bytes => {
                        return Err(Error::SourceValue {
                            file: file.to_string(),
                            row: excel_row,
                            column: format!("column {}", k + 1),
                            reason: format!(
                                "a cell is longer than {} bytes (limits.max_field_bytes)",
                                limits.max_field_bytes
                            ),
                        })
                    }
                    Some(t) => b.append_value(t),
                    None => b.append_null(),
                }
            }
        }
        let columns: Vec<ArrayRef> = builders.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef).collect();
        Ok(RawBatch { columns, rows: n, first_row: self.row0 as u64 + range.start as u64 + 1 })
    }
}
