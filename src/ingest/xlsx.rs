//! Excel workbooks (xlsx). The sheet is read with calamine; cells are turned into text the way
//! a person reads them (whole numbers without `.0`, date cells as ISO `yyyy-mm-dd`, error cells
//! as their `#N/A` text so that they are quarantined with a reason rather than lost), then sent as
//! raw batches like any other source. Positions are absolute: `header.offset = 0` is Excel row 1.
//!
//! Before calamine decompresses anything the archive and the sheet's extent are checked against
//! the environment's `[limits]` ([`super::limits`]); a cell longer than `max_field_bytes` rejects
//! the file.

use super::source::{row_has_keyword, RawBatch, SourceHeader, SourceMsg, SourceTx};
use crate::config::environment::LimitSettings;
use crate::config::pipeline::{Pipeline, SourceSpec};
use crate::error::{Error, Result};
use arrow::array::{ArrayRef, StringBuilder};
use bytes::Bytes;
use calamine::{Data, Reader, Xlsx};
use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;

/// Text of a cell; `None` for an empty cell.
pub fn cell_text(cell: &Data) -> Option<String> {
    match cell {
        Data::Empty => None,
        Data::String(s) => Some(s.clone()),
        Data::Int(i) => Some(i.to_string()),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => Some((*f as i64).to_string()),
        Data::Float(f) => Some(f.to_string()),
        Data::Bool(b) => Some(b.to_string()),
        // Excel has no dates before its epoch: a negative serial in a date cell is shown as
        // `####`, and stays a number here (not a date in 1899).
        Data::DateTime(dt) if dt.as_f64() < 0.0 => Some(dt.as_f64().to_string()),
        Data::DateTime(dt) => match dt.as_datetime() {
            Some(t) if t.time() == chrono::NaiveTime::MIN => Some(t.date().format("%Y-%m-%d").to_string()),
            Some(t) => Some(t.format("%Y-%m-%dT%H:%M:%S").to_string()),
            None => Some(dt.as_f64().to_string()),
        },
        Data::DateTimeIso(s) | Data::DurationIso(s) => Some(s.clone()),
        Data::Error(e) => Some(format!("#{e:?}")),
    }
}

/// Reads the configured sheet (or, with `[[sheets]]`, the workbook's sheets: see
/// [`super::workbook`]) and sends header and batches. Runs on a blocking thread.
pub fn read_xlsx(
    file: &str,
    pipeline: &Pipeline,
    batch_rows: usize,
    limits: &LimitSettings,
    bytes: Bytes,
    tx: SourceTx,
) {
    let sent = if pipeline.sheets.is_empty() {
        send_sheet(file, &pipeline.source, batch_rows, limits, bytes, &tx)
    } else {
        super::workbook::send_workbook(file, pipeline, batch_rows, limits, bytes, &tx)
    };
    if let Err(e) = sent {
        let _ = tx.blocking_send(Err(e));
    }
}

/// Opens a workbook after checking its archive against `[limits]`.
pub fn open_checked(file: &str, bytes: Bytes, limits: &LimitSettings) -> Result<Xlsx<Cursor<Bytes>>> {
    super::limits::check_archive(file, &bytes, limits)?;
    Xlsx::new(Cursor::new(bytes)).map_err(|e| Error::source_file(file, format!("not a readable xlsx workbook: {e}")))
}

/// The cells of `sheet`, once the extent of its cells (streamed, before calamine allocates the
/// grid between them) is within `[limits]`.
pub fn checked_range(
    workbook: &mut Xlsx<Cursor<Bytes>>,
    file: &str,
    sheet: &str,
    limits: &LimitSettings,
) -> Result<calamine::Range<Data>> {
    let unreadable = |e: calamine::XlsxError| {
        let reason = super::redact::excerpt(&e.to_string());
        Error::source_file(file, format!("sheet {}: {reason}", super::redact::excerpt(sheet)))
    };
    let (mut low, mut high) = ((u32::MAX, u32::MAX), (0u32, 0u32));
    let mut cells = workbook.worksheet_cells_reader(sheet).map_err(unreadable)?;
    while let Some(cell) = cells.next_cell().map_err(unreadable)? {
        let (r, c) = cell.get_position();
        (low, high) = ((low.0.min(r), low.1.min(c)), (high.0.max(r), high.1.max(c)));
    }
    drop(cells);
    if high >= low {
        let (rows, columns) = ((high.0 - low.0) as u64 + 1, (high.1 - low.1) as u64 + 1);
        super::limits::check_grid(file, sheet, rows, columns, limits)?;
    }
    workbook.worksheet_range(sheet).map_err(unreadable)
}

fn send_sheet(
    file: &str,
    spec: &SourceSpec,
    batch_rows: usize,
    limits: &LimitSettings,
    bytes: Bytes,
    tx: &SourceTx,
) -> Result<()> {
    let mut workbook = open_checked(file, bytes, limits)?;
    let sheets = workbook.sheet_names();
    let sheet = match &spec.sheet {
        Some(name) => sheets.iter().find(|s| s.trim().eq_ignore_ascii_case(name.trim())).cloned().ok_or_else(|| {
            Error::source_file(
                file,
                format!("no sheet named '{name}' (sheets: {})", super::redact::names_joined(&sheets)),
            )
        })?,
        None => sheets.first().cloned().ok_or_else(|| Error::source_file(file, "workbook has no sheets"))?,
    };
    let range = checked_range(&mut workbook, file, &sheet, limits)?;
    let Some((row0, col0)) = range.start() else {
        return Err(Error::source_file(file, format!("sheet '{sheet}' is empty")));
    };
    let rows: Vec<&[Data]> = range.rows().collect();
    let h = &spec.header;
    let header_index: Option<usize> = if h.none {
        None
    } else if let Some(keyword) = &h.keyword {
        let found = rows.iter().take(h.scan_rows).position(|r| {
            let cells: Vec<String> = r.iter().filter_map(cell_text).collect();
            row_has_keyword(cells.iter().map(String::as_str), keyword)
        });
        Some(found.ok_or_else(|| {
            Error::source_file(
                file,
                format!("sheet '{sheet}': no header row containing '{keyword}' in the first {} rows", h.scan_rows),
            )
        })?)
    } else {
        let offset = h.offset.unwrap_or(0) as u32;
        let rel = offset
            .checked_sub(row0)
            .filter(|r| (*r as usize) < rows.len())
            .ok_or_else(|| Error::source_file(file, format!("sheet '{sheet}' has no header row at offset {offset}")))?;
        Some(rel as usize)
    };
    let width = range.width();
    let lead = col0 as usize;
    let mut title_cells = HashMap::new();
    for (i, r) in rows.iter().take(header_index.unwrap_or(0)).enumerate() {
        for (j, c) in r.iter().enumerate() {
            if let Some(t) = cell_text(c) {
                title_cells.insert((row0 + i as u32, col0 + j as u32), t);
            }
        }
    }
    let (names, data_start) = match header_index {
        // Column positions are absolute, so leading empty sheet columns are kept as unnamed.
        Some(i) => {
            let mut names = vec![String::new(); lead];
            names.extend(rows[i].iter().map(|c| cell_text(c).map(|t| t.trim().to_string()).unwrap_or_default()));
            (names, i + 1)
        }
        None => (vec![String::new(); lead + width], 0),
    };
    let header_row = header_index.map(|i| row0 as u64 + i as u64 + 1).unwrap_or(0);
    let header = SourceHeader { names, title_lines: vec![], title_cells, header_row };
    let columns = header.names.len();
    if tx.blocking_send(Ok(SourceMsg::Header(header))).is_err() {
        return Ok(());
    }
    let data = &rows[data_start.min(rows.len())..];
    let first_excel_row = row0 as u64 + data_start as u64 + 1;
    for (chunk_index, chunk) in data.chunks(batch_rows.max(1)).enumerate() {
        let mut builders: Vec<StringBuilder> =
            (0..columns).map(|_| StringBuilder::with_capacity(chunk.len(), chunk.len() * 8)).collect();
        for (i, row) in chunk.iter().enumerate() {
            for (j, b) in builders.iter_mut().enumerate() {
                match j.checked_sub(lead).and_then(|k| row.get(k)).and_then(cell_text) {
                    Some(t) if t.len() > limits.max_field_bytes => {
                        return Err(Error::SourceValue {
                            file: file.to_string(),
                            row: first_excel_row + (chunk_index * batch_rows + i) as u64,
                            column: format!("column {}", j + 1),
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
        let arrays: Vec<ArrayRef> = builders.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef).collect();
        let batch = RawBatch {
            columns: arrays,
            rows: chunk.len(),
            first_row: first_excel_row + (chunk_index * batch_rows) as u64,
        };
        if tx.blocking_send(Ok(SourceMsg::Batch(batch))).is_err() {
            return Ok(());
        }
    }
    Ok(())
}
