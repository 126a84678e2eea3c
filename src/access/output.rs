//! Streaming query output for `alliance query` and `alliance shell`: results are written batch by
//! batch as DataFusion produces them (`execute_stream`), never collected, so memory does not grow
//! with the size of a result.
//!
//! Bounds ([`OutputLimits`], from the environment's `[limits]`):
//!
//! - CSV, JSON lines and Parquet stop with [`Error::QueryLimit`] once a statement has produced
//!   more than `max_query_rows` rows or written more than `max_query_bytes` bytes. What was
//!   written to a file is removed (the file is written beside its name and renamed at the end),
//!   so an `--output` file is the whole result or nothing.
//! - The `table` format is for reading: it shows the first `max_table_rows` rows and a note
//!   saying the result went on, then stops reading.

use super::query::{neutralise_csv, CsvCells, OutputFormat};
use crate::config::environment::LimitSettings;
use crate::error::{Error, Result};
use datafusion::arrow::array::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use std::io::Write;
use std::path::Path;

/// Bounds on one statement's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimits {
    pub max_rows: u64,
    pub max_bytes: u64,
    pub max_table_rows: usize,
}

impl From<&LimitSettings> for OutputLimits {
    fn from(l: &LimitSettings) -> Self {
        Self { max_rows: l.max_query_rows, max_bytes: l.max_query_bytes, max_table_rows: l.max_table_rows }
    }
}

impl Default for OutputLimits {
    fn default() -> Self {
        (&LimitSettings::default()).into()
    }
}

/// What was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    pub rows: u64,
    pub bytes: u64,
}

/// A writer that counts the bytes through it and refuses to pass `max` bytes.
struct Counting<W> {
    inner: W,
    bytes: u64,
    max: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes + buf.len() as u64 > self.max {
            return Err(std::io::Error::other(LIMIT_MARKER));
        }
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

const LIMIT_MARKER: &str = "alliance output limit reached";

/// Writes the stream to `out` in `format`, batch by batch, within `limits`.
pub async fn write_stream(
    mut stream: SendableRecordBatchStream,
    format: OutputFormat,
    cells: CsvCells,
    out: impl Write + Send,
    limits: OutputLimits,
) -> Result<Written> {
    use datafusion::arrow::{csv, json};
    let mut out = Counting { inner: out, bytes: 0, max: limits.max_bytes };
    let mut rows = 0u64;
    let too_many = |rows: u64| Error::QueryLimit { setting: "max_query_rows", limit: limits.max_rows, reached: rows };
    let io = |e: std::io::Error, bytes: u64| match e.to_string().contains(LIMIT_MARKER) {
        true => Error::QueryLimit { setting: "max_query_bytes", limit: limits.max_bytes, reached: bytes },
        false => Error::Query { reason: format!("writing the result: {e}") },
    };
    let next = |b: Option<datafusion::error::Result<RecordBatch>>| -> Result<Option<RecordBatch>> {
        b.transpose().map_err(|e| Error::Query { reason: e.to_string() })
    };
    match format {
        OutputFormat::Table => {
            let mut shown: Vec<RecordBatch> = Vec::new();
            let mut more = false;
            while let Some(batch) = next(stream.next().await)? {
                let room = limits.max_table_rows - rows as usize;
                if batch.num_rows() > room {
                    shown.push(batch.slice(0, room));
                    rows += room as u64;
                    more = true;
                    break;
                }
                rows += batch.num_rows() as u64;
                shown.push(batch);
            }
            drop(stream);
            let table = datafusion::arrow::util::pretty::pretty_format_batches(&shown)
                .map_err(Error::arrow("formatting the result"))?;
            let note = if more {
                format!("(first {} rows shown: the result goes on; --format csv|json|parquet --output FILE writes it all)\n", limits.max_table_rows)
            } else {
                String::new()
            };
            let bytes = out.bytes;
            write!(out, "{table}\n{note}").map_err(|e| io(e, bytes))?;
        }
        OutputFormat::Csv => {
            let mut w = csv::WriterBuilder::new().with_header(true).build(&mut out);
            while let Some(batch) = next(stream.next().await)? {
                rows += batch.num_rows() as u64;
                if rows > limits.max_rows {
                    return Err(too_many(rows));
                }
                let batch = match cells {
                    CsvCells::Safe => neutralise_csv(&batch)?,
                    CsvCells::Raw => batch,
                };
                w.write(&batch).map_err(|e| arrow_error(e, "writing CSV", limits))?;
            }
        }
        OutputFormat::Json => {
            let mut w = json::LineDelimitedWriter::new(&mut out);
            while let Some(batch) = next(stream.next().await)? {
                rows += batch.num_rows() as u64;
                if rows > limits.max_rows {
                    return Err(too_many(rows));
                }
                w.write(&batch).map_err(|e| arrow_error(e, "writing JSON", limits))?;
            }
            w.finish().map_err(|e| arrow_error(e, "writing JSON", limits))?;
        }
        OutputFormat::Parquet => {
            let props = crate::ingest::writer::writer_properties(&Default::default(), &[])?;
            let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, stream.schema(), Some(props))
                .map_err(Error::parquet("writing the result"))?;
            while let Some(batch) = next(stream.next().await)? {
                rows += batch.num_rows() as u64;
                if rows > limits.max_rows {
                    return Err(too_many(rows));
                }
                w.write(&batch).map_err(|e| parquet_error(e, limits))?;
            }
            w.close().map_err(|e| parquet_error(e, limits))?;
        }
    }
    out.flush().map_err(|e| Error::Query { reason: format!("writing the result: {e}") })?;
    Ok(Written { rows, bytes: out.bytes })
}

fn arrow_error(e: datafusion::arrow::error::ArrowError, context: &str, limits: OutputLimits) -> Error {
    if e.to_string().contains(LIMIT_MARKER) {
        return Error::QueryLimit { setting: "max_query_bytes", limit: limits.max_bytes, reached: limits.max_bytes };
    }
    Error::arrow(context)(e)
}

fn parquet_error(e: parquet::errors::ParquetError, limits: OutputLimits) -> Error {
    if e.to_string().contains(LIMIT_MARKER) {
        return Error::QueryLimit { setting: "max_query_bytes", limit: limits.max_bytes, reached: limits.max_bytes };
    }
    Error::parquet("writing the result")(e)
}

/// Writes the stream to the file `path`: beside it first, renamed into place when complete;
/// on failure (a limit included) nothing is left at `path`.
pub async fn write_file(
    stream: SendableRecordBatchStream,
    format: OutputFormat,
    cells: CsvCells,
    path: &Path,
    limits: OutputLimits,
) -> Result<Written> {
    // Special files (`/dev/null`, a pipe) are written in place.
    let regular = !path.exists() || path.is_file();
    let partial = match (regular, path.file_name()) {
        (true, Some(name)) => path.with_file_name(format!("{}.partial", name.to_string_lossy())),
        _ => path.to_path_buf(),
    };
    let file = std::fs::File::create(&partial).map_err(Error::io(&partial))?;
    let result = write_stream(stream, format, cells, std::io::BufWriter::new(file), limits).await;
    match &result {
        Ok(_) if regular => std::fs::rename(&partial, path).map_err(Error::io(path))?,
        Err(_) if regular => {
            let _ = std::fs::remove_file(&partial);
        }
        _ => {}
    }
    result
}
