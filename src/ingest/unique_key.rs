//! Unique keys checked at ingest (`load.unique_key`, `load.unique_order`).
//!
//! Rows of one file, or of the live staging objects of one month (other files' included), with
//! the same values in every key column are duplicates. Of each group, the latest by
//! `unique_order`, then the file being loaded (it came last), then the later source row, is kept;
//! the others are quarantined with the reason `unique_key (…): duplicate of source row N [of
//! FILE], which is later by unique_order`, so one repeated identifier costs one row, not a
//! refresh (the marts' own `unique` tests stay, as the last line of defence, across months and
//! pipelines). An earlier file's losing row is removed by rewriting its staging object in place
//! (an atomic replace), and its manifest record and quarantine count it.
//!
//! Memory stays bounded: while the file streams through, only a 64-bit hash per row is kept
//! ([`KeyHashes`]). When two hashes agree, the staged objects (in the pending area, see
//! [`super::staged`]) are read again for those keys only, the duplicates are confirmed on the
//! exact key values, and only the objects holding a duplicate are rewritten.

use super::manifest::Manifest;
use super::manifest::RowCounts;
use super::normalise::{QuarantineLevel, RejectedValue};
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
}

/// Where a candidate row is: an object of the file being loaded, or a live staging object of
/// another file of the same period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    Other(usize),
    New(usize),
}

/// A row whose key hash was seen twice: where it is, its exact key and order.
struct Candidate {
    key: Vec<u8>,
    /// Declared order, then the file (the one being loaded is later than those loaded before),
    /// then the source row.
    order: (Vec<u8>, u8, i64),
    place: Place,
    index: usize,
    /// The row's `_source_file`.
    file: String,
    shown: String,
}

/// Rows of `batches` (one object) whose key hash `wanted` accepts, as candidates.
fn candidates_of(
    batches: &[RecordBatch],
    p: &Pipeline,
    place: Place,
    wanted: impl Fn(u64) -> bool,
    out: &mut Vec<Candidate>,
) -> Result<()> {
    let mut offset = 0;
    for batch in batches {
        let schema = batch.schema();
        let index_of = |names: &[String]| -> Result<Vec<usize>> {
            names.iter().map(|n| schema.index_of(n).map_err(Error::arrow("finding key columns"))).collect()
        };
        let (key_columns, order_columns) = (index_of(&p.load.unique_key)?, index_of(&p.load.unique_order)?);
        let pick = |columns: &[usize]| columns.iter().map(|i| batch.column(*i).clone()).collect::<Vec<_>>();
        let keys = converter(&schema, &key_columns)?.convert_columns(&pick(&key_columns));
        let keys = keys.map_err(Error::arrow("comparing keys"))?;
        let orders = match order_columns.is_empty() {
            true => None,
            false => {
                let rows = converter(&schema, &order_columns)?.convert_columns(&pick(&order_columns));
                Some(rows.map_err(Error::arrow("ordering duplicates"))?)
            }
        };
        let source_rows = batch.column_by_name("_source_row").map(|c| c.as_primitive::<Int64Type>().clone());
        let files = batch.column_by_name("_source_file").map(|c| c.as_string::<i32>().clone());
        let shown = key_text(batch, &key_columns)?;
        for (i, shown) in shown.into_iter().enumerate() {
            let k = keys.row(i);
            if !wanted(hash_bytes(k.as_ref())) {
                continue;
            }
            let declared = orders.as_ref().map(|o| o.row(i).as_ref().to_vec()).unwrap_or_default();
            let source_row = source_rows.as_ref().map_or(0, |s| s.value(i));
            out.push(Candidate {
                key: k.as_ref().to_vec(),
                order: (declared, matches!(place, Place::New(_)) as u8, source_row),
                place,
                index: offset + i,
                file: files.as_ref().map(|f| f.value(i).to_string()).unwrap_or_default(),
                shown,
            });
        }
        offset += batch.num_rows();
    }
    Ok(())
}

/// Quarantines all but the latest row of each duplicated key among a staged file's objects and
/// the live staging objects of other files of the same months (which `manifest` records).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn deduplicate(
    store: &Store,
    p: &Pipeline,
    pending: &str,
    file_url: &str,
    run_id: &str,
    props: &WriterProperties,
    loaded: &mut Loaded,
    manifest: &mut Manifest,
) -> Result<()> {
    let mut hashes = std::mem::take(&mut loaded.keys.hashes);
    hashes.sort_unstable();
    let mut wanted: HashSet<u64> = hashes.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]).collect();
    // Other files' objects of the same months (not the ones this file replaces).
    let staged_prefix = format!("{pending}/staging/");
    let targets: HashSet<String> = loaded
        .outputs
        .iter()
        .map(|o| format!("staging/{}/{}", p.table, o.path.strip_prefix(&staged_prefix).unwrap_or(&o.path)))
        .collect();
    let periods: BTreeSet<&str> = loaded.outputs.iter().map(|o| o.period.as_str()).collect();
    let others: Vec<String> = manifest
        .live_objects()
        .into_iter()
        .filter(|o| periods.contains(o.period.as_str()) && !targets.contains(&o.path))
        .map(|o| o.path.clone())
        .collect();
    let mut candidates = Vec::new();
    for (i, path) in others.iter().enumerate() {
        let seen = |h: u64| hashes.binary_search(&h).is_ok();
        candidates_of(&read_all(store, path).await?, p, Place::Other(i), seen, &mut candidates)?;
    }
    wanted.extend(candidates.iter().map(|c| hash_bytes(&c.key)));
    if wanted.is_empty() {
        return Ok(());
    }
    for (i, output) in loaded.outputs.iter().enumerate() {
        let want = |h: u64| wanted.contains(&h);
        candidates_of(&read_all(store, &output.path).await?, p, Place::New(i), want, &mut candidates)?;
    }
    let mut groups: HashMap<Vec<u8>, Vec<Candidate>> = HashMap::new();
    for c in candidates {
        groups.entry(c.key.clone()).or_default().push(c);
    }
    let key_list = p.load.unique_key.join(", ");
    type Losers = (BTreeSet<usize>, Vec<RejectedValue>, String);
    let mut losers: BTreeMap<Place, Losers> = BTreeMap::new();
    for (_, mut group) in groups.into_iter().filter(|(_, g)| g.len() > 1) {
        group.sort_by(|a, b| a.order.cmp(&b.order));
        let latest = group.pop().expect("a group of two or more");
        for loser in group {
            let name = latest.file.rsplit('/').next().unwrap_or_default();
            let of = if loser.file == latest.file { String::new() } else { format!(" of {name}") };
            let entry = losers.entry(loser.place).or_default();
            entry.0.insert(loser.index);
            entry.2 = loser.file.clone();
            entry.1.push(RejectedValue {
                source_row: loser.order.2 as u64,
                column: key_list.clone(),
                reason: format!(
                    "unique_key ({key_list}): duplicate of source row {}{of}, which is later by unique_order",
                    latest.order.2
                ),
                value: Some(loser.shown),
                level: QuarantineLevel::Row,
            });
        }
    }
    for (place, (rows, mut rejected, url)) in losers {
        rejected.sort_by_key(|r| r.source_row);
        let removed = rejected.len() as u64;
        match place {
            Place::New(i) => {
                rewrite_without(store, &loaded.outputs[i].path, &rows, props).await?;
                loaded.outputs[i].rows -= removed;
                loaded.outputs[i].seal = Some(crate::integrity::seal(store, &loaded.outputs[i].path).await?);
                let quarantine = format!("{pending}/quarantine.parquet");
                let existing = loaded.quarantine.take();
                loaded.quarantine =
                    append_quarantine(store, &quarantine, existing.is_some(), file_url, run_id, props, rejected)
                        .await?;
                loaded.counts.rows_written -= removed;
                loaded.counts.rows_quarantined += removed;
            }
            Place::Other(i) => {
                // The earlier file loses its row: its object is rewritten in place (atomically)
                // and its record counts the row as quarantined.
                let path = &others[i];
                rewrite_without(store, path, &rows, props).await?;
                let Some((landing_path, record)) =
                    manifest.files.iter_mut().find(|(_, r)| r.outputs.iter().any(|o| &o.path == path))
                else {
                    continue;
                };
                let quarantine = record
                    .quarantine
                    .clone()
                    .unwrap_or_else(|| format!("quarantine/{}/{}.parquet", p.name, super::slug(landing_path)));
                let had = record.quarantine.is_some();
                record.quarantine = append_quarantine(store, &quarantine, had, &url, run_id, props, rejected).await?;
                let seal = crate::integrity::seal(store, path).await?;
                for o in record.outputs.iter_mut().filter(|o| &o.path == path) {
                    o.rows -= removed;
                    o.seal = Some(seal.clone());
                }
                record.counts.rows_written -= removed;
                record.counts.rows_quarantined += removed;
                if record.outputs.iter().any(|o| &o.path == path && o.rows == 0) {
                    store.delete(path).await?;
                    record.outputs.retain(|o| &o.path != path);
                }
            }
        }
    }
    for o in loaded.outputs.iter().filter(|o| o.rows == 0) {
        store.delete(&o.path).await?;
    }
    loaded.outputs.retain(|o| o.rows > 0);
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

/// Rewrites the object at `path` without the rows at `rows` (indices in the object's order).
async fn rewrite_without(store: &Store, path: &str, rows: &BTreeSet<usize>, props: &WriterProperties) -> Result<()> {
    let batches = read_all(store, path).await?;
    let Some(schema) = batches.first().map(|b| b.schema()) else { return Ok(()) };
    let mut writer = open_writer(store, path, schema, props.clone())?;
    let mut offset = 0;
    for batch in &batches {
        let keep = BooleanArray::from((0..batch.num_rows()).map(|i| !rows.contains(&(offset + i))).collect::<Vec<_>>());
        offset += batch.num_rows();
        let kept = arrow::compute::filter_record_batch(batch, &keep).map_err(Error::arrow("removing duplicates"))?;
        writer.write(&kept).await.map_err(Error::parquet(format!("rewriting {path}")))?;
    }
    writer.close().await.map_err(Error::parquet(format!("rewriting {path}")))?;
    Ok(())
}

/// Adds the duplicates to the staged quarantine object (rewriting it with its earlier values).
async fn append_quarantine(
    store: &Store,
    path: &str,
    existing: bool,
    file_url: &str,
    run_id: &str,
    props: &WriterProperties,
    duplicates: Vec<RejectedValue>,
) -> Result<Option<String>> {
    let mut values = Vec::new();
    if existing {
        for batch in read_all(store, path).await? {
            let text = |name: &str| batch.column_by_name(name).map(|c| c.as_string::<i32>().clone());
            let (Some(column), Some(reason), Some(value)) = (text("column"), text("reason"), text("value")) else {
                continue;
            };
            let rows = batch.column_by_name("source_row").map(|c| c.as_primitive::<Int64Type>().clone());
            let level = text("level");
            for i in 0..batch.num_rows() {
                values.push(RejectedValue {
                    source_row: rows.as_ref().map_or(0, |r| r.value(i)) as u64,
                    column: column.value(i).to_string(),
                    reason: reason.value(i).to_string(),
                    value: value.is_valid(i).then(|| value.value(i).to_string()),
                    level: level.as_ref().map_or(QuarantineLevel::Row, |l| QuarantineLevel::parse(l.value(i))),
                });
            }
        }
    }
    values.extend(duplicates);
    let mut writer =
        QuarantineWriter::new(store.clone(), path.to_string(), run_id.to_string(), file_url.to_string(), props.clone());
    writer.write(&values).await?;
    writer.finish().await
}
