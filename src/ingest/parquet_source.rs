//! Parquet sources. The object is fetched whole (landing Parquet extracts are compressed and
//! modest) and decoded batch by batch; columns are cast to text (dates as ISO, numbers in their
//! shortest form) so that the same contract, null tokens and validations apply as for any other
//! format.
//!
//! Columns that cannot be read as text (nested: structs, lists, maps, unions) are left out, with
//! a warning naming them: the contract cannot name them anyway, and a required column left out
//! is reported missing as for any file. A value that fails its cast rejects the file with the
//! column's name, never the value.

use super::source::{RawBatch, SourceHeader, SourceMsg, SourceTx};
use crate::error::{Error, Result};
use arrow::array::ArrayRef;
use arrow::compute::cast;
use arrow::datatypes::DataType;
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

/// Decodes a Parquet object and sends header and text batches. Runs on a blocking thread.
pub fn read_parquet(file: &str, bytes: Bytes, batch_rows: usize, tx: SourceTx) {
    if let Err(e) = send(file, bytes, batch_rows, &tx) {
        let _ = tx.blocking_send(Err(e));
    }
}

fn send(file: &str, bytes: Bytes, batch_rows: usize, tx: &SourceTx) -> Result<()> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| Error::source_file(file, format!("not a readable Parquet file: {e}")))?;
    let (mut kept, mut names, mut left_out) = (Vec::new(), Vec::new(), Vec::new());
    for (i, f) in builder.schema().fields().iter().enumerate() {
        if readable_as_text(f.data_type()) {
            kept.push(i);
            names.push(f.name().clone());
        } else {
            left_out.push(f.name().clone());
        }
    }
    if !left_out.is_empty() {
        let left_out = super::redact::header_names(&left_out);
        tracing::warn!(columns = %left_out, "Parquet columns that cannot be read as text are left out");
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), kept);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(batch_rows)
        .build()
        .map_err(|e| Error::source_file(file, format!("cannot read Parquet: {e}")))?;
    let header = SourceHeader { names, header_row: 0, ..Default::default() };
    if tx.blocking_send(Ok(SourceMsg::Header(header))).is_err() {
        return Ok(());
    }
    let mut next_row = 1u64;
    for batch in reader {
        let batch = batch.map_err(|e| Error::source_file(file, format!("Parquet data near row {next_row}: {e}")))?;
        let columns = batch
            .columns()
            .iter()
            .zip(batch.schema().fields())
            .map(|(c, f)| {
                cast(c, &DataType::Utf8).map_err(|_| {
                    let column = super::redact::excerpt(f.name());
                    Error::source_file(file, format!("column {column} near row {next_row} cannot be read as text"))
                })
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        let rows = batch.num_rows();
        let raw = RawBatch { columns, rows, first_row: next_row };
        next_row += rows as u64;
        if tx.blocking_send(Ok(SourceMsg::Batch(raw))).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// True for column types read as text: every flat type Arrow casts to a string.
fn readable_as_text(t: &DataType) -> bool {
    !t.is_nested() && arrow::compute::can_cast_types(t, &DataType::Utf8)
}
