//! Parquet sources. The object is fetched whole (landing Parquet extracts are compressed and
//! modest) and decoded batch by batch; columns are cast to text (dates as ISO, numbers in their
//! shortest form) so that the same contract, null tokens and validations apply as for any other
//! format.

use super::source::{RawBatch, SourceHeader, SourceMsg, SourceTx};
use crate::error::{Error, Result};
use arrow::array::ArrayRef;
use arrow::compute::cast;
use arrow::datatypes::DataType;
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// Decodes a Parquet object and sends header and text batches. Runs on a blocking thread.
pub fn read_parquet(file: &str, bytes: Bytes, batch_rows: usize, tx: SourceTx) {
    if let Err(e) = send(file, bytes, batch_rows, &tx) {
        let _ = tx.blocking_send(Err(e));
    }
}

fn send(file: &str, bytes: Bytes, batch_rows: usize, tx: &SourceTx) -> Result<()> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| Error::source_file(file, format!("not a readable Parquet file: {e}")))?;
    let names = builder.schema().fields().iter().map(|f| f.name().clone()).collect();
    let reader = builder
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
            .map(|c| cast(c, &DataType::Utf8).map_err(Error::arrow(format!("casting {file} to text"))))
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
