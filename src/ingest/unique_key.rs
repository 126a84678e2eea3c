//! Unique keys checked at ingest (`load.unique_key`, `load.unique_order`).
//!
//! Rows of one file with the same values in every key column are duplicates. Of each group, the
//! latest by `unique_order` (then by source row) is kept; the others are quarantined with the
//! reason `unique_key (…): duplicate of source row N, which is later by unique_order`, so one
//! repeated identifier costs one row, not a refresh (the marts' own `unique` tests stay, as the
//! last line of defence, across files and pipelines).
//!
//! Memory stays bounded: while the file streams through, only a 64-bit hash per row is kept
//! ([`KeyHashes`]). When two hashes agree, the staged objects (in the pending area, see
//! [`super::staged`]) are read again for those keys only, the duplicates are confirmed on the
//! exact key values, and only the objects holding a duplicate are rewritten.

use super::manifest::RowCounts;
use super::normalise::RejectedValue;
use super::writer::{open_writer, QuarantineWriter};
use super::Loaded;
use crate::config::pipeline::Pipeline;
use crate::error::{Error, Result};
use crate::storage::Store;
use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type, Schema};
use arrow::row::{RowConverter, SortField};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::properties::WriterProperties;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};

/// 64-bit hashes of every row's key, in file order.
pub struct KeyHashes {
    columns: Vec<usize>,
    converter: Option<RowConverter>,
    hashes: Vec<u64>,
}

/// A fixed hasher, so that a key hashes alike in every batch.
fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().build_hasher();
    h.write(bytes);
    h.finish()
}

fn converter(schema: &Schema, columns: &[usize]) -> Result<RowConverter> {
    let fields = columns.iter().map(|i| SortField::new(schema.field(*i).data_type().clone())).collect();
    RowConverter::new(fields).map_err(Error::arrow("comparing keys"))
}

impl KeyHashes {
    /// Collects the hashes of `key` (staging column names); nothing when the key is empty.
    pub fn new(schema: &Schema, key: &[String]) -> Result<Self> {
        let columns: Vec<usize> = key.iter().filter_map(|k| schema.index_of(k).ok()).collect();
        let converter = if columns.is_empty() { None } else { Some(converter(schema, &columns)?) };
        Ok(Self { columns, converter, hashes: Vec::new() })
    }

    /// Notes the keys of one normalised batch.
    pub fn observe(&mut self, batch: &RecordBatch) -> Result<()> {
        let Some(converter) = &self.converter else { return Ok(()) };
        let arrays: Vec<ArrayRef> = self.columns.iter().map(|i| batch.column(*i).clone()).collect();
        let rows = converter.convert_columns(&arrays).map_err(Error::arrow("comparing keys"))?;
        self.hashes.extend(rows.iter().map(|r| hash_bytes(r.as_ref())));
        Ok(())
    }

    /// Hashes seen more than once.
    pub fn repeated(&mut self) -> HashSet<u64> {
        let mut hashes = std::mem::take(&mut self.hashes);
        hashes.sort_unstable();
        hashes.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]).collect()
    }
}

/// A row whose key hash was seen twice: where it is, its exact key and order.
struct Candidate {
    key: Vec<u8>,
    order: Vec<u8>,
    source_row: i64,
    object: usize,
    index: usize,
    shown: String,
}

/// Quarantines all but the latest row of each duplicated key among a staged file's objects.
pub(crate) async fn deduplicate(
    store: &Store,
    p: &Pipeline,
    pending: &str,
    file_url: &str,
    run_id: &str,
    props: &WriterProperties,
    loaded: &mut Loaded,
) -> Result<()> {
    let repeated = loaded.keys.repeated();
    if repeated.is_empty() {
        return Ok(());
    }
    let key = &p.load.unique_key;
    let mut order: Vec<String> = p.load.unique_order.clone();
    order.push("_source_row".into());
    let mut candidates = Vec::new();
    for (object, output) in loaded.outputs.iter().enumerate() {
        let batches = read_all(store, &output.path).await?;
        let mut offset = 0;
        for batch in &batches {
            let schema = batch.schema();
            let index_of = |names: &[String]| -> Result<Vec<usize>> {
                names.iter().map(|n| schema.index_of(n).map_err(Error::arrow("finding key columns"))).collect()
            };
            let (key_columns, order_columns) = (index_of(key)?, index_of(&order)?);
            let pick = |columns: &[usize]| columns.iter().map(|i| batch.column(*i).clone()).collect::<Vec<_>>();
            let keys = converter(&schema, &key_columns)?.convert_columns(&pick(&key_columns));
            let keys = keys.map_err(Error::arrow("comparing keys"))?;
            let orders = converter(&schema, &order_columns)?.convert_columns(&pick(&order_columns));
            let orders = orders.map_err(Error::arrow("ordering duplicates"))?;
            let source_rows = batch.column_by_name("_source_row").map(|c| c.as_primitive::<Int64Type>().clone());
            let shown = key_text(batch, &key_columns)?;
            for (i, shown) in shown.into_iter().enumerate() {
                let k = keys.row(i);
                if repeated.contains(&hash_bytes(k.as_ref())) {
                    candidates.push(Candidate {
                        key: k.as_ref().to_vec(),
                        order: orders.row(i).as_ref().to_vec(),
                        source_row: source_rows.as_ref().map_or(0, |s| s.value(i)),
                        object,
                        index: offset + i,
                        shown,
                    });
                }
            }
            offset += batch.num_rows();
        }
    }
    let mut groups: HashMap<Vec<u8>, Vec<Candidate>> = HashMap::new();
    for c in candidates {
        groups.entry(c.key.clone()).or_default().push(c);
    }
    let mut losers: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    let mut rejected = Vec::new();
    let key_list = key.join(", ");
    for (_, mut group) in groups.into_iter().filter(|(_, g)| g.len() > 1) {
        group.sort_by(|a, b| a.order.cmp(&b.order));
        let latest = group.pop().expect("a group of two or more");
        for loser in group {
            losers.entry(loser.object).or_default().insert(loser.index);
            rejected.push(RejectedValue {
                source_row: loser.source_row as u64,
                column: key_list.clone(),
                reason: format!(
                    "unique_key ({key_list}): duplicate of source row {}, which is later by unique_order",
                    latest.source_row
                ),
                value: Some(loser.shown),
            });
        }
    }
    if rejected.is_empty() {
        return Ok(());
    }
    rewrite_without(store, loaded, &losers, props).await?;
    rejected.sort_by_key(|r| r.source_row);
    let removed = rejected.len() as u64;
    let quarantine = format!("{pending}/quarantine.parquet");
    append_quarantine(store, &quarantine, file_url, run_id, props, loaded, rejected).await?;
    loaded.counts.rows_written -= removed;
    loaded.counts.rows_quarantined += removed;
    debug_assert!(RowCounts::balanced(&loaded.counts));
    Ok(())
}

/// The key of each row as text (`a | b`), for the quarantine's value column.
fn key_text(batch: &RecordBatch, columns: &[usize]) -> Result<Vec<String>> {
    let mut out = vec![String::new(); batch.num_rows()];
    for (n, i) in columns.iter().enumerate() {
        let text = arrow::compute::cast(batch.column(*i), &DataType::Utf8).map_err(Error::arrow("showing keys"))?;
        let text = text.as_string::<i32>();
        for (row, s) in out.iter_mut().enumerate() {
            if n > 0 {
                s.push_str(" | ");
            }
            s.push_str(if text.is_null(row) { "" } else { text.value(row) });
        }
    }
    Ok(out)
}

async fn read_all(store: &Store, path: &str) -> Result<Vec<RecordBatch>> {
    let context = || format!("reading {}", store.display(path));
    let bytes = store.get(path).await?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(Error::parquet(context()))?;
    let reader = reader.build().map_err(Error::parquet(context()))?;
    reader.collect::<std::result::Result<Vec<_>, _>>().map_err(Error::arrow(context()))
}

/// Rewrites each staged object that holds losers without them (an emptied object is deleted).
async fn rewrite_without(
    store: &Store,
    loaded: &mut Loaded,
    losers: &BTreeMap<usize, BTreeSet<usize>>,
    props: &WriterProperties,
) -> Result<()> {
    for (object, rows) in losers {
        let output = &mut loaded.outputs[*object];
        let batches = read_all(store, &output.path).await?;
        let Some(schema) = batches.first().map(|b| b.schema()) else { continue };
        let mut writer = open_writer(store, &output.path, schema, props.clone())?;
        let mut offset = 0;
        for batch in &batches {
            let keep =
                BooleanArray::from((0..batch.num_rows()).map(|i| !rows.contains(&(offset + i))).collect::<Vec<_>>());
            offset += batch.num_rows();
            let kept =
                arrow::compute::filter_record_batch(batch, &keep).map_err(Error::arrow("removing duplicates"))?;
            writer.write(&kept).await.map_err(Error::parquet(format!("rewriting {}", output.path)))?;
        }
        writer.close().await.map_err(Error::parquet(format!("rewriting {}", output.path)))?;
        output.rows -= rows.len() as u64;
    }
    for output in loaded.outputs.iter().filter(|o| o.rows == 0) {
        store.delete(&output.path).await?;
    }
    loaded.outputs.retain(|o| o.rows > 0);
    Ok(())
}

/// Adds the duplicates to the staged quarantine object (rewriting it with its earlier values).
async fn append_quarantine(
    store: &Store,
    path: &str,
    file_url: &str,
    run_id: &str,
    props: &WriterProperties,
    loaded: &mut Loaded,
    duplicates: Vec<RejectedValue>,
) -> Result<()> {
    let mut values = Vec::new();
    if loaded.quarantine.is_some() {
        for batch in read_all(store, path).await? {
            let text = |name: &str| batch.column_by_name(name).map(|c| c.as_string::<i32>().clone());
            let (Some(column), Some(reason), Some(value)) = (text("column"), text("reason"), text("value")) else {
                continue;
            };
            let rows = batch.column_by_name("source_row").map(|c| c.as_primitive::<Int64Type>().clone());
            for i in 0..batch.num_rows() {
                values.push(RejectedValue {
                    source_row: rows.as_ref().map_or(0, |r| r.value(i)) as u64,
                    column: column.value(i).to_string(),
                    reason: reason.value(i).to_string(),
                    value: value.is_valid(i).then(|| value.value(i).to_string()),
                });
            }
        }
    }
    values.extend(duplicates);
    let mut writer =
        QuarantineWriter::new(store.clone(), path.to_string(), run_id.to_string(), file_url.to_string(), props.clone());
    writer.write(&values).await?;
    loaded.quarantine = writer.finish().await?;
    Ok(())
}
