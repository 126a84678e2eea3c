//! Parquet writers for staging and quarantine.
//!
//! Staging objects are `staging/<table>/<YYYY-MM>/<slot>.parquet` (`all` instead of a month for
//! tables without a period), written by [`ParquetSink`] (columns encoded in parallel). Each
//! object is uploaded whole (multipart upload completed at the
//! end, or the local store's write-then-rename), so a reader sees the previous object or the new
//! one, never a partial one. Every object holds its `period` column too, so plain globs
//! (`staging/<table>/*/*.parquet`) read the table in DuckDB, Polars or pandas.

use super::dates::month_key;
use super::normalise::RejectedValue;
use crate::config::environment::IngestSettings;
use crate::error::{Error, Result};
use crate::parquet_sink::ParquetSink;
use crate::storage::Store;
use arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray, UInt32Array};
use arrow::datatypes::{DataType, Date32Type, Field, Schema, SchemaRef};
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use parquet::arrow::async_writer::AsyncArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One staging object written for a source file.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OutputObject {
    pub path: String,
    /// `YYYY-MM`, or `all`.
    pub period: String,
    pub rows: u64,
    /// Size, ETag and content hash as written, checked by `alliance verify` (absent in
    /// manifests written before seals were recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<crate::integrity::Seal>,
}

/// Rows per step of the Parquet column encoders.
pub const WRITE_BATCH_ROWS: usize = 8192;

/// Parquet writer properties for the warehouse.
/// Columns in `undictionaried` are written without a dictionary.
pub fn writer_properties(settings: &IngestSettings, undictionaried: &[String]) -> Result<WriterProperties> {
    let level = ZstdLevel::try_new(settings.zstd_level).map_err(Error::parquet("choosing the zstd level"))?;
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(settings.row_group_rows))
        // Values handed to the column encoders at a time: fewer, larger steps than the default
        // 1,024 (pages may overrun their 1 MiB target by up to one step).
        .set_write_batch_size(WRITE_BATCH_ROWS)
        .set_created_by(format!("alliance-warehouse {}", env!("CARGO_PKG_VERSION")));
    for column in undictionaried {
        let path = ColumnPath::from(column.as_str());
        builder = builder.set_column_dictionary_enabled(path.clone(), false);
        // Min/max of identifiers and pseudonyms prune nothing and cost a comparison per value.
        // Source row numbers ascend by one: delta encoding stores them in a few bits each.
        if column == "_source_row" {
            builder = builder.set_column_encoding(path, Encoding::DELTA_BINARY_PACKED);
        } else {
            builder = builder.set_column_statistics_enabled(path, EnabledStatistics::None);
        }
    }
    Ok(builder.build())
}

/// Opens an atomic Parquet upload.
pub fn open_writer(
    store: &Store,
    path: &str,
    schema: SchemaRef,
    props: WriterProperties,
) -> Result<AsyncArrowWriter<BufWriter>> {
    let writer = BufWriter::new(store.object_store(), ObjectPath::from(path));
    AsyncArrowWriter::try_new(writer, schema, Some(props))
        .map_err(Error::parquet(format!("opening {}", store.display(path))))
}

/// Writes normalised batches into one object per period.
pub struct PartitionedWriter {
    store: Store,
    prefix: String,
    slot: String,
    schema: SchemaRef,
    props: WriterProperties,
    period_index: Option<usize>,
    threads: usize,
    open: BTreeMap<String, ParquetSink>,
}

impl PartitionedWriter {
    /// `prefix` is `staging/<table>`; `slot` names the object within each period folder. Each
    /// object's columns are encoded on `threads` threads ([`ParquetSink`]).
    pub fn new(
        store: Store,
        prefix: String,
        slot: String,
        schema: SchemaRef,
        props: WriterProperties,
        period_column: Option<&str>,
        threads: usize,
    ) -> Self {
        let period_index = period_column.and_then(|c| schema.index_of(c).ok());
        Self { store, prefix, slot, schema, props, period_index, threads, open: BTreeMap::new() }
    }

    /// Writes a batch, splitting it by month of the period column.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let Some(index) = self.period_index else {
            return self.write_to("all".into(), batch).await;
        };
        let periods = batch.column(index).as_primitive::<Date32Type>();
        let keys: Vec<i32> = periods.iter().map(|d| d.map(month_index).unwrap_or(i32::MIN)).collect();
        if keys.iter().all(|k| *k == keys[0]) {
            return self.write_to(key_name(keys[0], periods), batch).await;
        }
        let mut groups: BTreeMap<i32, Vec<u32>> = BTreeMap::new();
        for (row, key) in keys.iter().enumerate() {
            groups.entry(*key).or_default().push(row as u32);
        }
        for (key, rows) in groups {
            let indices = UInt32Array::from(rows);
            let part =
                arrow::compute::take_record_batch(batch, &indices).map_err(Error::arrow("splitting by period"))?;
            self.write_to(key_name(key, periods), &part).await?;
        }
        Ok(())
    }

    async fn write_to(&mut self, period: String, batch: &RecordBatch) -> Result<()> {
        if !self.open.contains_key(&period) {
            let path = format!("{}/{}/{}.parquet", self.prefix, period, self.slot);
            let sink = ParquetSink::open(&self.store, &path, self.schema.clone(), self.props.clone(), self.threads)?;
            self.open.insert(period.clone(), sink);
        }
        self.open.get_mut(&period).expect("just opened").write(batch).await
    }

    /// Completes every upload; the objects become visible one by one, each whole.
    pub async fn finish(self) -> Result<Vec<OutputObject>> {
        let mut out = Vec::with_capacity(self.open.len());
        for (period, sink) in self.open {
            let path = sink.path().to_string();
            let written = sink.close_written().await?;
            let seal = crate::integrity::seal_with_hash(&self.store, &path, written.bytes, written.blake3).await?;
            out.push(OutputObject { path, period, rows: written.rows, seal: Some(seal) });
        }
        Ok(out)
    }
}

fn month_index(days: i32) -> i32 {
    let (y, m, _) = super::dates::civil_from_days(days);
    y * 12 + m as i32 - 1
}

fn key_name(index: i32, periods: &arrow::array::Date32Array) -> String {
    if index == i32::MIN {
        // Only reachable for a nullable period column in append mode.
        let _ = periods;
        return "unknown".into();
    }
    let days = super::dates::days_from_civil(index.div_euclid(12), (index.rem_euclid(12) + 1) as u32, 1).unwrap_or(0);
    month_key(days)
}

/// Schema of quarantine objects.
pub fn quarantine_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("source_file", DataType::Utf8, false),
        Field::new("source_row", DataType::Int64, false),
        Field::new("column", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, true),
        // `row`: the row was quarantined; `value`: the value alone, its row written with a null.
        Field::new("level", DataType::Utf8, false),
    ]))
}

/// Streams rejected values of one source file to `quarantine/<pipeline>/<slug>.parquet`,
/// opening the object only when there is something to write.
pub struct QuarantineWriter {
    store: Store,
    path: String,
    run_id: String,
    file: String,
    props: WriterProperties,
    writer: Option<AsyncArrowWriter<BufWriter>>,
    pub values: u64,
}

impl QuarantineWriter {
    pub fn new(store: Store, path: String, run_id: String, file: String, props: WriterProperties) -> Self {
        Self { store, path, run_id, file, props, writer: None, values: 0 }
    }

    pub async fn write(&mut self, rejected: &[RejectedValue]) -> Result<()> {
        if rejected.is_empty() {
            return Ok(());
        }
        if self.writer.is_none() {
            self.writer = Some(open_writer(&self.store, &self.path, quarantine_schema(), self.props.clone())?);
        }
        let n = rejected.len();
        let batch = RecordBatch::try_new(
            quarantine_schema(),
            vec![
                Arc::new(StringArray::from_iter_values(std::iter::repeat_n(self.run_id.as_str(), n))),
                Arc::new(StringArray::from_iter_values(std::iter::repeat_n(self.file.as_str(), n))),
                Arc::new(Int64Array::from_iter_values(rejected.iter().map(|r| r.source_row as i64))),
                Arc::new(StringArray::from_iter_values(rejected.iter().map(|r| r.column.as_str()))),
                Arc::new(StringArray::from_iter_values(rejected.iter().map(|r| r.reason.as_str()))),
                Arc::new(StringArray::from_iter(rejected.iter().map(|r| r.value.as_deref()))),
                Arc::new(StringArray::from_iter_values(rejected.iter().map(|r| r.level.as_str()))),
            ],
        )
        .map_err(Error::arrow("assembling quarantine rows"))?;
        let w = self.writer.as_mut().expect("opened");
        w.write(&batch).await.map_err(Error::parquet(format!("writing {}", self.path)))?;
        self.values += n as u64;
        Ok(())
    }

    /// Completes the upload; returns its path if anything was written.
    pub async fn finish(self) -> Result<Option<String>> {
        match self.writer {
            Some(w) => {
                w.close().await.map_err(Error::parquet(format!("completing {}", self.path)))?;
                Ok(Some(self.path))
            }
            None => Ok(None),
        }
    }
}

/// True if a column is entirely null (used in checks).
pub fn all_null(a: &dyn Array) -> bool {
    a.null_count() == a.len()
}
