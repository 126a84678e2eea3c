//! Parquet objects written with their columns encoded in parallel.
//!
//! [`ParquetSink`] buffers record batches until a row group is full (the writer properties'
//! `max_row_group_row_count`, 1,048,576 rows when unset; byte limits and content-defined chunking
//! are not applied), then encodes and compresses that row group's columns on several threads at
//! once (each thread takes the next column not yet taken), appends the column chunks to the file
//! in schema order and hands the bytes to the object store's buffered upload. Without zstd, and
//! apart from the dictionary choice below, the file is byte for byte the one `ArrowWriter` writes
//! with the same properties, Arrow schema in the footer included (a test checks this). With zstd,
//! flat dictionary-encoded string columns are written by [`parquet_dictionary`], which skips the
//! Arrow writer's per-value interning: the same pages, statistics and indexes, except that pages
//! are cut at exactly the properties' row limit (a test compares both writers' statistics and
//! reads the data back). The object becomes visible when [`ParquetSink::close`] completes the
//! upload (a multipart upload completed, or the local store's write-then-rename), so a reader
//! sees the previous object or the new one, never a partial one; after any error the upload is
//! aborted and the sink refuses further work.
//!
//! Two choices are made per string column from the first row group's values. A column whose
//! values are mostly distinct (identifiers, pseudonyms) is written plain, since a dictionary would
//! only be built to be abandoned. A column whose values are scattered (changing from row to row in
//! no order: sex, stage, ethnicity in an extract ordered by pathway) is written without min/max
//! statistics: every row group would span nearly all its values, so they would prune nothing, and
//! computing them costs two comparisons per value. Constant, clustered and sorted columns keep
//! their statistics, and other columns keep the properties' settings.
//!
//! Memory: one row group of Arrow data plus its encoded form, whatever the number of rows (per
//! object: a writer with several objects open holds one row group for each).

use crate::error::{Error, Result};
use crate::parquet_dictionary::{self, DictionaryChunk};
use crate::storage::Store;
use arrow::array::{AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, SchemaRef};
use bytes::Bytes;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use parquet::arrow::arrow_writer::{
    compute_leaves, ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory, ArrowWriter,
};
use parquet::arrow::async_writer::AsyncFileWriter;
use parquet::errors::ParquetError;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{ColumnDescPtr, ColumnPath};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Rows per row group when the properties set no limit.
const DEFAULT_ROW_GROUP_ROWS: usize = 1 << 20;

/// Values sampled per string column to choose its dictionary and statistics.
const ENCODING_SAMPLE: usize = 8192;

/// Fewest sampled values on which a choice is made.
const MIN_SAMPLE: usize = 1024;

/// The file writer, created when the first row group is encoded.
struct OpenFile {
    file: SerializedFileWriter<Vec<u8>>,
    factory: ArrowRowGroupWriterFactory,
    /// Per leaf column, the descriptor of a top-level string column whose dictionary chunks are
    /// written by [`parquet_dictionary`].
    dictionary_leaves: Arc<Vec<Option<ColumnDescPtr>>>,
    props: Arc<WriterProperties>,
}

/// One encoded column chunk.
enum Chunk {
    Arrow(ArrowColumnChunk),
    Dictionary(DictionaryChunk),
}

/// A Parquet object being written; see the module documentation.
pub struct ParquetSink {
    path: String,
    shown: String,
    schema: SchemaRef,
    props: Option<WriterProperties>,
    open: Option<OpenFile>,
    upload: BufWriter,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    row_group_rows: usize,
    row_groups: usize,
    threads: usize,
    rows: u64,
    failed: bool,
    /// The upload's completion has begun: it can no longer be aborted.
    completing: bool,
    /// BLAKE3 and length of the bytes uploaded so far (the object's seal, see [`crate::integrity`]).
    hasher: blake3::Hasher,
    bytes: u64,
}

/// What a completed object holds: rows, bytes and the BLAKE3 of those bytes (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub rows: u64,
    pub bytes: u64,
    pub blake3: String,
}

impl ParquetSink {
    /// Opens an upload of `path` in `store`; columns are encoded on `threads` threads.
    pub fn open(store: &Store, path: &str, schema: SchemaRef, props: WriterProperties, threads: usize) -> Result<Self> {
        let shown = store.display(path);
        let row_group_rows = props.max_row_group_row_count().unwrap_or(DEFAULT_ROW_GROUP_ROWS).max(1);
        let upload = BufWriter::new(store.object_store(), ObjectPath::from(path));
        Ok(Self {
            path: path.to_string(),
            shown,
            schema,
            props: Some(props),
            open: None,
            upload,
            pending: Vec::new(),
            pending_rows: 0,
            row_group_rows,
            row_groups: 0,
            threads: threads.max(1),
            rows: 0,
            failed: false,
            completing: false,
            hasher: blake3::Hasher::new(),
            bytes: 0,
        })
    }

    /// The object's path in its store.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Adds a batch; encodes a row group whenever one is full.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.refuse_after_failure()?;
        let result = self.write_inner(batch).await;
        self.abort_on_error(result).await
    }

    async fn write_inner(&mut self, batch: &RecordBatch) -> Result<()> {
        let differing = match batch.num_columns() == self.schema.fields().len() {
            false => Some(format!("{} columns, the file has {}", batch.num_columns(), self.schema.fields().len())),
            true => batch
                .columns()
                .iter()
                .zip(self.schema.fields())
                .find(|(c, f)| c.data_type() != f.data_type())
                .map(|(c, f)| format!("column {} is {}, the file's is {}", f.name(), c.data_type(), f.data_type())),
        };
        if let Some(differing) = differing {
            return Err(Error::parquet(format!("writing {}", self.shown))(ParquetError::General(format!(
                "batch column types differ from the file's schema: {differing}"
            ))));
        }
        self.rows += batch.num_rows() as u64;
        let mut offset = 0;
        while offset < batch.num_rows() {
            let take = (self.row_group_rows - self.pending_rows).min(batch.num_rows() - offset);
            self.pending.push(batch.slice(offset, take));
            self.pending_rows += take;
            offset += take;
            if self.pending_rows == self.row_group_rows {
                self.flush_row_group().await?;
            }
        }
        Ok(())
    }

    /// Encodes the buffered rows as one row group and uploads its bytes.
    async fn flush_row_group(&mut self) -> Result<()> {
        if self.pending_rows == 0 {
            return Ok(());
        }
        self.open_file()?;
        let shown = self.shown.clone();
        let context = || format!("writing {shown}");
        let open = self.open.as_mut().expect("opened");
        let writers = open.factory.create_column_writers(self.row_groups).map_err(Error::parquet(context()))?;
        let batches = std::mem::take(&mut self.pending);
        self.pending_rows = 0;
        self.row_groups += 1;
        let (schema, threads) = (self.schema.clone(), self.threads);
        let (dictionary_leaves, props) = (open.dictionary_leaves.clone(), open.props.clone());
        let chunks = tokio::task::spawn_blocking(move || {
            encode_row_group(writers, &schema, &batches, threads, &dictionary_leaves, &props)
        })
        .await
        .map_err(|e| Error::parquet(context())(ParquetError::External(Box::new(e))))?
        .map_err(Error::parquet(context()))?;
        let open = self.open.as_mut().expect("opened");
        let mut row_group = open.file.next_row_group().map_err(Error::parquet(context()))?;
        for chunk in chunks {
            match chunk {
                Chunk::Arrow(chunk) => chunk.append_to_row_group(&mut row_group),
                Chunk::Dictionary(chunk) => row_group.append_column(&chunk.bytes, chunk.close),
            }
            .map_err(Error::parquet(context()))?;
        }
        row_group.close().map_err(Error::parquet(context()))?;
        self.upload_buffered().await
    }

    /// Creates the file writer, with dictionaries chosen from the buffered rows.
    fn open_file(&mut self) -> Result<()> {
        let Some(props) = self.props.take() else { return Ok(()) };
        let props = choose_encodings(props, &self.schema, &self.pending);
        let (file, factory) = ArrowWriter::try_new(Vec::new(), self.schema.clone(), Some(props.clone()))
            .and_then(ArrowWriter::into_serialized_writer)
            .map_err(Error::parquet(format!("opening {}", self.shown)))?;
        let mut dictionary_leaves = Vec::new();
        for field in self.schema.fields() {
            let leaves = leaf_count(field.data_type());
            for _ in 0..leaves {
                let descr = file.schema_descr().column(dictionary_leaves.len());
                let flat_string = leaves == 1 && field.data_type() == &DataType::Utf8;
                dictionary_leaves.push((flat_string && parquet_dictionary::applies(&props, &descr)).then_some(descr));
            }
        }
        self.open =
            Some(OpenFile { file, factory, dictionary_leaves: Arc::new(dictionary_leaves), props: Arc::new(props) });
        Ok(())
    }

    async fn upload_buffered(&mut self) -> Result<()> {
        let Some(open) = self.open.as_mut() else { return Ok(()) };
        let bytes = std::mem::take(open.file.inner_mut());
        if bytes.is_empty() {
            return Ok(());
        }
        self.hasher.update(&bytes);
        self.bytes += bytes.len() as u64;
        AsyncFileWriter::write(&mut self.upload, Bytes::from(bytes))
            .await
            .map_err(Error::parquet(format!("uploading {}", self.shown)))
    }

    fn refuse_after_failure(&self) -> Result<()> {
        match self.failed {
            true => Err(Error::parquet(format!("writing {}", self.shown))(ParquetError::General(
                "an earlier write to this object failed".into(),
            ))),
            false => Ok(()),
        }
    }

    /// After an error nothing more is written: the upload is aborted (an incomplete multipart
    /// upload is removed, a local temporary file deleted) unless its completion had begun (the
    /// store then holds the previous object or none), and the sink refuses further work.
    async fn abort_on_error<T>(&mut self, result: Result<T>) -> Result<T> {
        if result.is_err() {
            self.failed = true;
            if !self.completing {
                let _ = self.upload.abort().await;
            }
        }
        result
    }

    /// Writes the last row group and the footer and completes the upload; returns the rows.
    pub async fn close(self) -> Result<u64> {
        Ok(self.close_written().await?.rows)
    }

    /// [`Self::close`], returning the rows, bytes and content hash of the object.
    pub async fn close_written(mut self) -> Result<Written> {
        self.refuse_after_failure()?;
        let result = self.close_inner().await;
        let rows = self.abort_on_error(result).await?;
        Ok(Written { rows, bytes: self.bytes, blake3: self.hasher.finalize().to_hex().to_string() })
    }

    async fn close_inner(&mut self) -> Result<u64> {
        self.flush_row_group().await?;
        // An object without rows still gets a valid file (schema, no row groups).
        self.open_file()?;
        let open = self.open.as_mut().expect("opened");
        open.file.finish().map_err(Error::parquet(format!("completing {}", self.shown)))?;
        self.upload_buffered().await?;
        self.completing = true;
        AsyncFileWriter::complete(&mut self.upload)
            .await
            .map_err(Error::parquet(format!("completing {}", self.shown)))?;
        Ok(self.rows)
    }
}

/// What the sampled values of one string column say about its encoding.
#[derive(Debug, Default, PartialEq)]
struct StringSample {
    sampled: usize,
    distinct: usize,
    /// Adjacent sampled values that differ, and of those the ones going up and down.
    changes: usize,
    ascents: usize,
    descents: usize,
}

impl StringSample {
    /// Samples up to [`ENCODING_SAMPLE`] non-null values of a string column.
    fn of<'a>(values: impl Iterator<Item = Option<&'a str>>) -> Self {
        let mut seen = std::collections::HashSet::new();
        let mut sample = Self::default();
        let mut previous: Option<&str> = None;
        for value in values.flatten().take(ENCODING_SAMPLE) {
            seen.insert(value);
            sample.sampled += 1;
            if let Some(p) = previous.filter(|p| *p != value) {
                sample.changes += 1;
                match p < value {
                    true => sample.ascents += 1,
                    false => sample.descents += 1,
                }
            }
            previous = Some(value);
        }
        sample.distinct = seen.len();
        sample
    }

    /// Too few values to judge: the properties' settings stand.
    fn judgeable(&self) -> bool {
        self.sampled >= MIN_SAMPLE
    }

    /// More than half the values distinct: a dictionary would be built only to be abandoned.
    fn mostly_distinct(&self) -> bool {
        self.judgeable() && self.distinct * 2 > self.sampled
    }

    /// Values neither in long runs (changing on more than one row in eight) nor in order: each
    /// row group's minimum and maximum then span nearly every value, so they prune nothing.
    fn scattered(&self) -> bool {
        self.judgeable() && self.changes * 8 > self.sampled && self.ascents > 0 && self.descents > 0
    }
}

/// Chooses, per top-level string column, from its first [`ENCODING_SAMPLE`] non-null values (at
/// least [`MIN_SAMPLE`]): no dictionary for mostly distinct values, and no statistics for
/// scattered ones (see [`StringSample`]); sorted, clustered and constant columns keep theirs, as
/// does every other column and every column with too few values to judge.
fn choose_encodings(props: WriterProperties, schema: &SchemaRef, batches: &[RecordBatch]) -> WriterProperties {
    let mut plain = Vec::new();
    let mut unmeasured = Vec::new();
    for (index, field) in schema.fields().iter().enumerate() {
        let path = ColumnPath::from(field.name().as_str());
        if !matches!(field.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) {
            continue;
        }
        let values = batches.iter().flat_map(|batch| -> Box<dyn Iterator<Item = Option<&str>>> {
            let column = batch.column(index);
            match column.data_type() {
                DataType::Utf8 => Box::new(column.as_string::<i32>().iter()),
                DataType::LargeUtf8 => Box::new(column.as_string::<i64>().iter()),
                _ => Box::new(column.as_string_view().iter()),
            }
        });
        let sample = StringSample::of(values);
        if sample.mostly_distinct() && props.dictionary_enabled(&path) {
            plain.push(path.clone());
        }
        if sample.scattered() && props.statistics_enabled(&path) != EnabledStatistics::None {
            unmeasured.push(path);
        }
    }
    if plain.is_empty() && unmeasured.is_empty() {
        return props;
    }
    let mut builder = props.into_builder();
    for path in plain {
        builder = builder.set_column_dictionary_enabled(path, false);
    }
    for path in unmeasured {
        builder = builder.set_column_statistics_enabled(path, EnabledStatistics::None);
    }
    builder.build()
}

/// Number of Parquet leaf columns an Arrow field is written as.
fn leaf_count(data_type: &DataType) -> usize {
    match data_type {
        DataType::Struct(fields) => fields.iter().map(|f| leaf_count(f.data_type())).sum(),
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::LargeListView(f)
        | DataType::FixedSizeList(f, _)
        | DataType::Map(f, _) => leaf_count(f.data_type()),
        DataType::Dictionary(_, value) => leaf_count(value),
        DataType::RunEndEncoded(_, values) => leaf_count(values.data_type()),
        _ => 1,
    }
}

/// Encodes one row group: every field's leaves, fields shared out among `threads` threads.
/// A leaf with a descriptor in `dictionary_leaves` is written by [`parquet_dictionary`] unless it
/// declines. Returns the column chunks in leaf order.
fn encode_row_group(
    writers: Vec<ArrowColumnWriter>,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    threads: usize,
    dictionary_leaves: &[Option<ColumnDescPtr>],
    props: &WriterProperties,
) -> std::result::Result<Vec<Chunk>, ParquetError> {
    let mut ranges = Vec::with_capacity(schema.fields().len());
    let mut start = 0;
    for field in schema.fields() {
        let n = leaf_count(field.data_type());
        ranges.push(start..start + n);
        start += n;
    }
    if start != writers.len() {
        return Err(ParquetError::General(format!("{} leaf columns but {} column writers", start, writers.len())));
    }
    let slots: Vec<Mutex<Option<ArrowColumnWriter>>> = writers.into_iter().map(|w| Mutex::new(Some(w))).collect();
    let chunks: Vec<Mutex<Option<Chunk>>> = (0..start).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<ParquetError>> = Mutex::new(None);
    let encode_field = |index: usize, field: &Field| -> std::result::Result<(), ParquetError> {
        let range = ranges[index].clone();
        if let Some(descr) = dictionary_leaves.get(range.start).and_then(Option::as_ref) {
            let arrays: Vec<&StringArray> = batches.iter().map(|b| b.column(index).as_string::<i32>()).collect();
            if let Some(chunk) = parquet_dictionary::encode_chunk(descr, props, &arrays)? {
                if let Ok(mut slot) = chunks[range.start].lock() {
                    *slot = Some(Chunk::Dictionary(chunk));
                }
                return Ok(());
            }
        }
        let mut leaf_writers: Vec<ArrowColumnWriter> =
            range.clone().filter_map(|i| slots[i].lock().ok().and_then(|mut s| s.take())).collect();
        for batch in batches {
            let leaves = compute_leaves(field, batch.column(index))?;
            for (writer, leaf) in leaf_writers.iter_mut().zip(leaves) {
                writer.write(&leaf)?;
            }
        }
        for (i, writer) in range.zip(leaf_writers) {
            let chunk = writer.close()?;
            if let Ok(mut slot) = chunks[i].lock() {
                *slot = Some(Chunk::Arrow(chunk));
            }
        }
        Ok(())
    };
    let fields = schema.fields();
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, fields.len().max(1)) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= fields.len() {
                    return;
                }
                if let Err(e) = encode_field(index, &fields[index]) {
                    if let Ok(mut f) = failure.lock() {
                        f.get_or_insert(e);
                    }
                    return;
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e);
    }
    chunks
        .into_iter()
        .map(|c| c.into_inner().ok().flatten().ok_or_else(|| ParquetError::General("a column was not encoded".into())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        Array, Int32Builder, Int64Array, Int64Builder, ListBuilder, MapBuilder, StringArray, StringBuilder,
        StructBuilder,
    };
    use arrow::datatypes::Schema;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use std::sync::Arc;

    /// Rows with a nullable string, a list of two-leaf structs and a map (five leaf columns).
    fn batch(start: i64, n: usize) -> RecordBatch {
        let ids = Int64Array::from_iter_values(start..start + n as i64);
        let names = StringArray::from_iter((0..n).map(|i| (i % 7 != 0).then(|| format!("name {}", start + i as i64))));
        let fields = vec![Field::new("a", DataType::Int32, true), Field::new("b", DataType::Utf8, true)];
        let mut list = ListBuilder::new(StructBuilder::from_fields(fields, n));
        let mut map = MapBuilder::new(None, StringBuilder::new(), Int64Builder::new());
        for i in 0..n {
            let row = start + i as i64;
            for k in 0..(row % 3) {
                let s = list.values();
                s.field_builder::<Int32Builder>(0).unwrap().append_value((row + k) as i32);
                s.field_builder::<StringBuilder>(1).unwrap().append_option((k % 2 == 0).then(|| format!("v{row}")));
                s.append(true);
            }
            list.append(row % 5 != 0);
            for k in 0..(row % 2) {
                map.keys().append_value(format!("k{k}"));
                map.values().append_value(row);
            }
            map.append(true).unwrap();
        }
        let (list, map) = (list.finish(), map.finish());
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("list", list.data_type().clone(), true),
            Field::new("map", map.data_type().clone(), false),
        ]));
        RecordBatch::try_new(schema, vec![Arc::new(ids), Arc::new(names), Arc::new(list), Arc::new(map)]).unwrap()
    }

    fn local_store(dir: &std::path::Path) -> Store {
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir).unwrap();
        Store::from_object_store(format!("file://{}", dir.display()), Arc::new(fs))
    }

    #[tokio::test]
    async fn parallel_row_groups_are_the_file_arrow_writer_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = local_store(dir.path());
        let schema = batch(0, 1).schema();
        let props = WriterProperties::builder().set_max_row_group_row_count(Some(1000)).build();
        let mut sink = ParquetSink::open(&store, "t/data.parquet", schema.clone(), props.clone(), 3).unwrap();
        let mut reference = ArrowWriter::try_new(Vec::new(), schema, Some(props)).unwrap();
        let mut expected = Vec::new();
        let mut start = 0;
        for n in [10, 2500, 1, 999, 490] {
            let b = batch(start, n);
            sink.write(&b).await.unwrap();
            reference.write(&b).unwrap();
            expected.push(b);
            start += n as i64;
        }
        assert_eq!(sink.close().await.unwrap(), 4000);
        let bytes = std::fs::read(dir.path().join("t/data.parquet")).unwrap();
        assert!(bytes == reference.into_inner().unwrap(), "same bytes as ArrowWriter");
        let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes)).unwrap();
        let groups: Vec<i64> = reader.metadata().row_groups().iter().map(|g| g.num_rows()).collect();
        assert_eq!(groups, [1000, 1000, 1000, 1000]);
        let got: Vec<RecordBatch> = reader.build().unwrap().map(|b| b.unwrap()).collect();
        let got = arrow::compute::concat_batches(&got[0].schema(), &got).unwrap();
        let want = arrow::compute::concat_batches(&expected[0].schema(), &expected).unwrap();
        assert_eq!(got, want);
    }

    /// Low-cardinality string columns: constant, few values with nulls, a page of nulls only,
    /// long values (hashed by their ends), values differing only by a trailing NUL or a last
    /// byte, and a column with too many distinct values for the dictionary page limit.
    fn coded(start: usize, n: usize) -> RecordBatch {
        let long = |i: usize| format!("a long value of more than sixteen bytes, number {}", i % 5);
        let column = |f: &dyn Fn(usize) -> Option<String>| {
            Arc::new(StringArray::from_iter((start..start + n).map(f))) as arrow::array::ArrayRef
        };
        RecordBatch::try_from_iter_with_nullable([
            ("constant", column(&|_| Some("trusts/RAL/RAL_cancer_pathways_2024-01.csv".into())), false),
            ("few", column(&|i| (i % 5 != 0).then(|| ["A", "B", "A\0", "Z", "AB"][i % 5].into())), true),
            ("gappy", column(&|i| (!(700..1900).contains(&i)).then(|| ["x", "y"][(i / 37) % 2].into())), true),
            ("long", column(&|i| (i % 3 != 0).then(|| long(i / 7))), true),
            ("many", column(&|i| Some(format!("value {:08}", (i * 7919) % 4000))), true),
        ])
        .unwrap()
    }

    #[tokio::test]
    async fn dictionary_chunks_read_back_and_match_arrow_writer_statistics() {
        let dir = tempfile::tempdir().unwrap();
        let store = local_store(dir.path());
        let schema = coded(0, 1).schema();
        let props = WriterProperties::builder()
            .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
            .set_max_row_group_row_count(Some(2500))
            .set_data_page_row_count_limit(500)
            .set_write_batch_size(500)
            .set_dictionary_page_size_limit(4000 * 8)
            .build();
        let mut sink = ParquetSink::open(&store, "t/data.parquet", schema.clone(), props.clone(), 2).unwrap();
        let mut reference = ArrowWriter::try_new(Vec::new(), schema, Some(props)).unwrap();
        let mut expected = Vec::new();
        let mut start = 0;
        for n in [1, 2999, 3000, 37] {
            let b = coded(start, n);
            sink.write(&b).await.unwrap();
            reference.write(&b).unwrap();
            expected.push(b);
            start += n;
        }
        sink.close().await.unwrap();
        let ours = Bytes::from(std::fs::read(dir.path().join("t/data.parquet")).unwrap());
        let theirs = Bytes::from(reference.into_inner().unwrap());
        let options = parquet::arrow::arrow_reader::ArrowReaderOptions::new()
            .with_page_index_policy(parquet::file::metadata::PageIndexPolicy::Required);
        let read = |bytes: &Bytes| {
            let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(bytes.clone(), options.clone()).unwrap();
            let metadata = reader.metadata().clone();
            let batches: Vec<RecordBatch> = reader.build().unwrap().map(|b| b.unwrap()).collect();
            (metadata, arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap())
        };
        let (ours_meta, ours_rows) = read(&ours);
        let (theirs_meta, theirs_rows) = read(&theirs);
        let want = arrow::compute::concat_batches(&expected[0].schema(), &expected).unwrap();
        assert_eq!(ours_rows, want);
        assert_eq!(theirs_rows, want);
        assert_eq!(ours_meta.num_row_groups(), 3);
        for (g, (ours, theirs)) in ours_meta.row_groups().iter().zip(theirs_meta.row_groups()).enumerate() {
            for (c, (a, b)) in ours.columns().iter().zip(theirs.columns()).enumerate() {
                let at = format!("row group {g}, column {c}");
                // The sink leaves statistics out for scattered columns ("few", "long", "many").
                if a.statistics().is_none() {
                    assert!([1, 3, 4].contains(&c), "{at}");
                    continue;
                }
                assert_eq!(a.statistics(), b.statistics(), "{at}");
                assert_eq!(a.num_values(), b.num_values(), "{at}");
                assert_eq!(a.dictionary_page_offset().is_some(), b.dictionary_page_offset().is_some(), "{at}");
                assert_eq!(a.page_encoding_stats(), b.page_encoding_stats(), "{at}");
                assert_eq!(a.unencoded_byte_array_data_bytes(), b.unencoded_byte_array_data_bytes(), "{at}");
                // Page boundaries may differ from the Arrow writer's (it cuts pages after whole
                // write batches); each page's entry must describe the page's own rows.
                let first_rows: Vec<usize> = ours_meta.offset_index().unwrap()[g][c]
                    .page_locations()
                    .iter()
                    .map(|p| p.first_row_index as usize)
                    .collect();
                let index = match &ours_meta.column_index().unwrap()[g][c] {
                    parquet::file::page_index::column_index::ColumnIndexMetaData::BYTE_ARRAY(index) => index,
                    other => panic!("{at}: {other:?}"),
                };
                let group_rows = ours.num_rows() as usize;
                let values = want.column(c).as_string::<i32>().slice(g * 2500, group_rows);
                for (p, first) in first_rows.iter().enumerate() {
                    let end = first_rows.get(p + 1).copied().unwrap_or(group_rows);
                    let present: Vec<&str> =
                        (*first..end).filter(|r| values.is_valid(*r)).map(|r| values.value(r)).collect();
                    let nulls = (end - first - present.len()) as i64;
                    assert_eq!(index.null_count(p), Some(nulls), "{at}, page {p}");
                    assert_eq!(index.is_null_page(p), present.is_empty(), "{at}, page {p}");
                    let bytes = |v: Option<&&str>| v.map(|s| s.as_bytes().to_vec());
                    assert_eq!(index.min_value(p).map(<[u8]>::to_vec), bytes(present.iter().min()), "{at}, page {p}");
                    assert_eq!(index.max_value(p).map(<[u8]>::to_vec), bytes(present.iter().max()), "{at}, page {p}");
                }
            }
        }
        // Chunks written here cut pages at exactly 500 rows; the Arrow writer, which the column
        // past the dictionary page limit falls back to, cut its first after 501 (a batch of one,
        // then one of 500). Both use dictionary pages where the dictionary fits.
        let meta = &ours_meta;
        let column = |name: &str| meta.row_group(0).columns().iter().position(|c| c.column_path().string() == name);
        let second_page =
            |name: &str| meta.offset_index().unwrap()[0][column(name).unwrap()].page_locations()[1].first_row_index;
        let encodings = |name: &str| meta.row_group(0).column(column(name).unwrap()).encodings().collect::<Vec<_>>();
        for name in ["constant", "few", "gappy", "long"] {
            assert_eq!(second_page(name), 500, "{name}");
            assert!(encodings(name).contains(&parquet::basic::Encoding::RLE_DICTIONARY), "{name}");
        }
        assert_eq!(second_page("many"), 501);
        assert!(!encodings("many").contains(&parquet::basic::Encoding::RLE_DICTIONARY));
        assert!(ours.len() < theirs.len() + theirs.len() / 20, "{} bytes against {}", ours.len(), theirs.len());
    }

    #[tokio::test]
    async fn after_an_error_the_upload_is_abandoned() {
        let dir = tempfile::tempdir().unwrap();
        let store = local_store(dir.path());
        let schema = batch(0, 1).schema();
        let mut sink = ParquetSink::open(&store, "t/data.parquet", schema, WriterProperties::default(), 2).unwrap();
        sink.write(&batch(0, 100)).await.unwrap();
        let wrong = RecordBatch::try_from_iter([("id", Arc::new(StringArray::from(vec!["x"])) as _)]).unwrap();
        assert!(sink.write(&wrong).await.unwrap_err().to_string().contains("differ"));
        assert!(sink.write(&batch(100, 1)).await.unwrap_err().to_string().contains("earlier write"));
        assert!(sink.close().await.is_err());
        assert!(store.head("t/data.parquet").await.unwrap().is_none(), "nothing published");
    }

    #[test]
    fn dictionaries_and_statistics_follow_the_sampled_values() {
        let n = 5000;
        let names = ["id", "code", "sparse", "few", "constant", "clustered", "descending"];
        let schema =
            Arc::new(Schema::new(names.iter().map(|name| Field::new(*name, DataType::Utf8, true)).collect::<Vec<_>>()));
        let columns: Vec<Arc<dyn Array>> = vec![
            // Distinct and ascending: plain, statistics kept (row groups hold ranges of ids).
            Arc::new(StringArray::from_iter_values((0..n).map(|i| format!("P{i:08}")))),
            // Three values in turn: dictionary kept, statistics dropped.
            Arc::new(StringArray::from_iter_values((0..n).map(|i| ["A", "C", "B"][i % 3]))),
            // Distinct and scattered but only 500 non-null values: too few to judge.
            Arc::new(StringArray::from_iter((0..n).map(|i| (i % 10 == 0).then(|| format!("S{}", i * 7919 % n))))),
            Arc::new(StringArray::from_iter((0..n).map(|i| (i < 1000).then(|| format!("F{i}"))))),
            Arc::new(StringArray::from_iter_values((0..n).map(|_| "trusts/RAL/extract.csv"))),
            // Runs of 100 in no order: clustered, statistics kept.
            Arc::new(StringArray::from_iter_values((0..n).map(|i| ["X", "Z", "Y"][i / 100 % 3]))),
            Arc::new(StringArray::from_iter_values((0..n).map(|i| format!("D{:08}", n - i)))),
        ];
        let b = RecordBatch::try_new(schema.clone(), columns).unwrap();
        let props = choose_encodings(WriterProperties::default(), &schema, &[b.slice(0, 3000), b.slice(3000, 2000)]);
        let dictionary: Vec<bool> = names.iter().map(|c| props.dictionary_enabled(&ColumnPath::from(*c))).collect();
        assert_eq!(dictionary, [false, true, true, true, true, true, false]);
        let statistics: Vec<bool> =
            names.iter().map(|c| props.statistics_enabled(&ColumnPath::from(*c)) != EnabledStatistics::None).collect();
        assert_eq!(statistics, [true, false, true, true, true, true, true]);
        let sample = StringSample::of(b.column(1).as_string::<i32>().iter());
        let want = StringSample { sampled: 5000, distinct: 3, changes: 4999, ascents: 1667, descents: 3332 };
        assert_eq!(sample, want);
    }

    #[test]
    fn leaf_counts_match_the_column_writers() {
        let schema = batch(0, 1).schema();
        let (_, factory) = ArrowWriter::try_new(Vec::new(), schema.clone(), None)
            .and_then(ArrowWriter::into_serialized_writer)
            .unwrap();
        let leaves: usize = schema.fields().iter().map(|f| leaf_count(f.data_type())).sum();
        assert_eq!(leaves, 6);
        assert_eq!(factory.create_column_writers(0).unwrap().len(), leaves);
    }
}
