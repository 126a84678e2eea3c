//! Dictionary-encoded Parquet column chunks for string columns with few distinct values, built
//! without interning every value through the Arrow writer.
//!
//! The Arrow writer adds each value of a dictionary-encoded string column to its dictionary one at
//! a time: a hash of the bytes, a table probe and a byte comparison (a `memcmp` call) per value,
//! which on the pathway extracts was a fifth of ingest's CPU. [`encode_chunk`] writes the chunk
//! the Arrow writer would write for the same properties, by the same rules: a PLAIN dictionary
//! page, then data pages (version 1) of RLE definition levels and RLE/bit-packed dictionary
//! indices, each page zstd-compressed; chunk statistics (exact minimum, maximum and null count),
//! the offset index and, when statistics are kept per page, the column index. Only the interning
//! differs: a value of up to 15 bytes is a 128-bit key held in a register (no byte comparison), a
//! longer one is hashed from its ends, and a value equal to the previous one is not looked up.
//!
//! It declines (returns `None`, and the Arrow writer encodes the chunk) whenever the result could
//! differ in kind: a dictionary larger than the dictionary page limit (the Arrow writer would
//! fall back to plain pages), a value longer than a statistics truncation length, a codec other
//! than zstd, a bloom filter, or format version 2 pages. Pages hold at most the properties' row
//! count limit of rows.

use arrow::array::{Array, StringArray};
use bytes::Bytes;
use parquet::basic::{BoundaryOrder, Compression, Encoding, EncodingMask, PageType, Type};
use parquet::column::page::{CompressedPage, Page, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::data_type::ByteArray;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{ColumnChunkMetaData, ColumnIndexBuilder, OffsetIndexBuilder, PageEncodingStats};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::statistics::Statistics;
use parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use parquet::schema::types::ColumnDescPtr;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// An encoded column chunk and what the row group needs to splice it in.
pub struct DictionaryChunk {
    pub bytes: Bytes,
    pub close: ColumnCloseResult,
}

/// Whether chunks of this column may be written here: a flat, dictionary-encoded string column
/// compressed with zstd, without a bloom filter, in version 1 pages.
pub fn applies(props: &WriterProperties, descr: &ColumnDescPtr) -> bool {
    let path = descr.path();
    descr.physical_type() == Type::BYTE_ARRAY
        && descr.max_rep_level() == 0
        && descr.max_def_level() <= 1
        && props.dictionary_enabled(path)
        && matches!(props.compression(path), Compression::ZSTD(_))
        && props.bloom_filter_properties(path).is_none()
        && props.writer_version() == WriterVersion::PARQUET_1_0
}

/// Multiplicative hasher for the interner's keys (already well spread 128-bit words, or the
/// ends and length of a long value).
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
    fn write(&mut self, bytes: &[u8]) {
        let head = pack(bytes, 0, bytes.len().min(16));
        let tail = pack(bytes, bytes.len().saturating_sub(16), bytes.len().min(16));
        self.write_u128(head ^ tail.rotate_left(64));
    }
    fn write_u128(&mut self, key: u128) {
        let folded = (key as u64) ^ ((key >> 64) as u64).rotate_left(29) ^ self.0;
        self.0 = folded.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u128(n as u128);
    }
}

type Keyed<K> = HashMap<K, u32, BuildHasherDefault<KeyHasher>>;

/// `LOW_BYTES[n]` keeps the low `n` bytes of a `u128`.
const LOW_BYTES: [u128; 17] = {
    let mut masks = [0u128; 17];
    let mut n = 1;
    while n <= 16 {
        masks[n] = u128::MAX >> (128 - 8 * n);
        n += 1;
    }
    masks
};

/// The first `len` (at most 16) bytes of `data` from `start`, little-endian in a `u128`.
#[inline]
fn pack(data: &[u8], start: usize, len: usize) -> u128 {
    let word = match data.get(start..start + 16) {
        Some(block) => u128::from_le_bytes(block.try_into().expect("16 bytes")),
        None => {
            let mut block = [0u8; 16];
            block[..len].copy_from_slice(&data[start..start + len]);
            u128::from_le_bytes(block)
        }
    };
    word & LOW_BYTES[len]
}

/// Slots of the direct-mapped cache in front of the short values' map.
const CACHE_SLOTS: usize = 4096;

/// A cache slot that holds nothing: no short value's key has every bit set.
const EMPTY_SLOT: (u128, u32) = (u128::MAX, 0);

/// The chunk's distinct values in order of first appearance, and each present value's index.
struct Dictionary<'a> {
    /// Short values by key, behind a direct-mapped cache (a code column's few values stay in it).
    cache: Box<[(u128, u32); CACHE_SLOTS]>,
    short: Keyed<u128>,
    long: Keyed<&'a [u8]>,
    values: Vec<&'a [u8]>,
    /// PLAIN size of the dictionary page.
    page_bytes: usize,
    indices: Vec<u32>,
}

impl<'a> Dictionary<'a> {
    fn new() -> Self {
        Self {
            cache: Box::new([EMPTY_SLOT; CACHE_SLOTS]),
            short: Keyed::default(),
            long: Keyed::default(),
            values: Vec::new(),
            page_bytes: 0,
            indices: Vec::new(),
        }
    }

    fn add_array(&mut self, array: &'a StringArray) {
        let data = array.value_data();
        let offsets = array.value_offsets();
        let mut previous: Option<(u128, &'a [u8], u32)> = None;
        let nulls = array.nulls().filter(|n| n.null_count() > 0);
        for row in 0..array.len() {
            if nulls.is_some_and(|n| n.is_null(row)) {
                continue;
            }
            let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
            let value = &data[start..end];
            let index = if value.len() < 16 {
                // The length in the top byte keeps "A" and "A\0" apart.
                let key = pack(data, start, value.len()) | ((value.len() as u128) << 120);
                match previous {
                    Some((k, _, index)) if k == key => index,
                    _ => {
                        let index = self.intern_short(key, value);
                        previous = Some((key, value, index));
                        index
                    }
                }
            } else {
                match previous {
                    Some((_, v, index)) if v == value => index,
                    _ => {
                        let index = self.intern_long(value);
                        previous = Some((u128::MAX, value, index));
                        index
                    }
                }
            };
            self.indices.push(index);
        }
    }

    #[inline]
    fn intern_short(&mut self, key: u128, value: &'a [u8]) -> u32 {
        let slot =
            (((key as u64) ^ ((key >> 64) as u64).rotate_left(23)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52) as usize;
        let (cached, index) = self.cache[slot];
        if cached == key {
            return index;
        }
        let next = self.values.len() as u32;
        let index = *self.short.entry(key).or_insert(next);
        if index == next {
            self.push(value);
        }
        self.cache[slot] = (key, index);
        index
    }

    fn intern_long(&mut self, value: &'a [u8]) -> u32 {
        let next = self.values.len() as u32;
        let index = *self.long.entry(value).or_insert(next);
        if index == next {
            self.push(value);
        }
        index
    }

    fn push(&mut self, value: &'a [u8]) {
        self.values.push(value);
        self.page_bytes += 4 + value.len();
    }

    /// Bits per index, as the Arrow writer chooses them.
    fn bit_width(&self) -> u8 {
        let largest = self.values.len().saturating_sub(1) as u64;
        (64 - largest.leading_zeros()) as u8
    }
}

fn write_uleb(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Values of at most `width` bits in the RLE/bit-packing hybrid encoding: runs of eight or more
/// equal values as RLE runs, the rest bit-packed in groups of eight (at most 63 groups a run,
/// the last group padded with zeros).
fn encode_hybrid(values: &[u32], width: u8, out: &mut Vec<u8>) {
    let run_at = |i: usize| values[i..].iter().take_while(|v| **v == values[i]).count();
    let value_bytes = (width as usize).div_ceil(8);
    let mut i = 0;
    while i < values.len() {
        let run = run_at(i);
        if run >= 8 {
            write_uleb(out, (run as u64) << 1);
            out.extend_from_slice(&values[i].to_le_bytes()[..value_bytes]);
            i += run;
            continue;
        }
        let start = i;
        let mut groups = 0u64;
        while i < values.len() && groups < 63 && (i == start || run_at(i) < 8) {
            i += 8;
            groups += 1;
        }
        let end = i.min(values.len());
        write_uleb(out, (groups << 1) | 1);
        let (mut acc, mut bits) = (0u64, 0u32);
        for k in 0..groups as usize * 8 {
            let v = if start + k < end { values[start + k] } else { 0 };
            acc |= (v as u64) << bits;
            bits += width as u32;
            while bits >= 8 {
                out.push(acc as u8);
                acc >>= 8;
                bits -= 8;
            }
        }
        i = end;
    }
}

/// Encodes one column chunk from the row group's arrays (see the module documentation); `None`
/// when the Arrow writer must do it.
pub fn encode_chunk(
    descr: &ColumnDescPtr,
    props: &WriterProperties,
    arrays: &[&StringArray],
) -> Result<Option<DictionaryChunk>> {
    let path = descr.path();
    let Compression::ZSTD(level) = props.compression(path) else { return Ok(None) };
    let nullable = descr.max_def_level() > 0;
    if !nullable && arrays.iter().any(|a| a.null_count() > 0) {
        // Nulls in a required column: the Arrow writer reports it.
        return Ok(None);
    }
    let mut dictionary = Dictionary::new();
    for array in arrays {
        dictionary.add_array(array);
        if dictionary.page_bytes > props.dictionary_page_size_limit() {
            return Ok(None);
        }
    }
    let statistics = props.statistics_enabled(path);
    let longest = dictionary.values.iter().map(|v| v.len()).max().unwrap_or(0);
    let truncated = |limit: Option<usize>| limit.is_some_and(|l| longest > l);
    if statistics != EnabledStatistics::None
        && (truncated(props.statistics_truncate_length()) || truncated(props.column_index_truncate_length()))
    {
        return Ok(None);
    }
    let rows: usize = arrays.iter().map(|a| a.len()).sum();
    let external = |e: std::io::Error| ParquetError::External(Box::new(e));
    let mut compressor = zstd::bulk::Compressor::new(level.compression_level()).map_err(external)?;
    let mut compress = |raw: &[u8]| -> Result<Bytes> { compressor.compress(raw).map(Bytes::from).map_err(external) };
    // Rank of each dictionary value in byte order, for minimum and maximum.
    let mut order: Vec<u32> = (0..dictionary.values.len() as u32).collect();
    order.sort_unstable_by(|a, b| dictionary.values[*a as usize].cmp(dictionary.values[*b as usize]));
    let mut rank = vec![0u32; order.len()];
    for (r, index) in order.iter().enumerate() {
        rank[*index as usize] = r as u32;
    }

    let mut sink = TrackedWrite::new(Vec::new());
    let mut specs = Vec::new();
    let mut page_writer = SerializedPageWriter::new(&mut sink);
    let mut plain = Vec::with_capacity(dictionary.page_bytes);
    for value in &dictionary.values {
        plain.extend_from_slice(&(value.len() as u32).to_le_bytes());
        plain.extend_from_slice(value);
    }
    let dictionary_encoding = props.dictionary_page_encoding();
    let page = Page::DictionaryPage {
        buf: compress(&plain)?,
        num_values: dictionary.values.len() as u32,
        encoding: dictionary_encoding,
        is_sorted: false,
    };
    specs.push(page_writer.write_page(CompressedPage::new(page, plain.len()))?);

    // Data pages of at most `page_rows` rows; `present` walks the present values' indices.
    let page_rows = props.data_page_row_count_limit().max(1);
    let data_encoding = props.dictionary_data_page_encoding();
    let width = dictionary.bit_width();
    // Definition levels, 1 for a present value (not built when no array has a null).
    let any_null = arrays.iter().any(|a| a.null_count() > 0);
    let mut levels: Vec<u32> = Vec::with_capacity(if any_null { rows } else { 0 });
    for array in arrays.iter().filter(|_| any_null) {
        levels.extend((0..array.len()).map(|row| array.is_valid(row) as u32));
    }
    let mut page_stats: Vec<PageSummary> = Vec::new();
    let (mut present, mut raw) = (0usize, Vec::new());
    for first in (0..rows).step_by(page_rows) {
        let end = (first + page_rows).min(rows);
        let page_levels = if any_null { &levels[first..end] } else { &[][..] };
        let nulls = page_levels.iter().filter(|l| **l == 0).count();
        let indices = &dictionary.indices[present..present + (end - first) - nulls];
        present += indices.len();
        raw.clear();
        if nullable {
            let mut encoded = Vec::new();
            match any_null {
                true => encode_hybrid(page_levels, 1, &mut encoded),
                // One RLE run of ones.
                false => {
                    write_uleb(&mut encoded, ((end - first) as u64) << 1);
                    encoded.push(1);
                }
            }
            raw.extend_from_slice(&(encoded.len() as u32).to_le_bytes());
            raw.extend_from_slice(&encoded);
        }
        raw.push(width);
        encode_hybrid(indices, width, &mut raw);
        // Page minimum and maximum, for the column index only.
        let bounds = (statistics == EnabledStatistics::Page)
            .then(|| {
                let ranks = indices.iter().map(|i| rank[*i as usize]);
                ranks.fold(None, |b: Option<(u32, u32)>, r| Some(b.map_or((r, r), |(lo, hi)| (lo.min(r), hi.max(r)))))
            })
            .flatten();
        page_stats.push(PageSummary { rows: end - first, nulls, bounds });
        let page = Page::DataPage {
            buf: compress(&raw)?,
            num_values: (end - first) as u32,
            encoding: data_encoding,
            def_level_encoding: Encoding::RLE,
            rep_level_encoding: Encoding::RLE,
            statistics: None,
        };
        specs.push(page_writer.write_page(CompressedPage::new(page, raw.len()))?);
    }
    page_writer.close()?;

    let value_of = |r: u32| dictionary.values[order[r as usize] as usize];
    let nulls = rows - dictionary.indices.len();
    let data_specs = &specs[1..];
    let mut builder = ColumnChunkMetaData::builder(descr.clone())
        .set_compression(Compression::ZSTD(level))
        .set_encodings_mask(EncodingMask::new_from_encodings(
            [dictionary_encoding, Encoding::RLE, data_encoding].iter(),
        ))
        .set_page_encoding_stats(vec![
            PageEncodingStats { page_type: PageType::DICTIONARY_PAGE, encoding: dictionary_encoding, count: 1 },
            PageEncodingStats {
                page_type: PageType::DATA_PAGE,
                encoding: data_encoding,
                count: data_specs.len() as i32,
            },
        ])
        .set_total_compressed_size(specs.iter().map(|s| s.compressed_size as i64).sum())
        .set_total_uncompressed_size(specs.iter().map(|s| s.uncompressed_size as i64).sum())
        .set_num_values(rows as i64)
        .set_data_page_offset(data_specs.first().map_or(0, |s| s.offset as i64))
        .set_dictionary_page_offset(Some(specs[0].offset as i64));
    if statistics != EnabledStatistics::None {
        let bounds = (!order.is_empty()).then(|| (value_of(0), value_of(order.len() as u32 - 1)));
        let to_bytes = |v: &[u8]| ByteArray::from(v.to_vec());
        builder = builder
            .set_statistics(Statistics::byte_array(
                bounds.map(|(min, _)| to_bytes(min)),
                bounds.map(|(_, max)| to_bytes(max)),
                None,
                Some(nulls as u64),
                false,
            ))
            .set_unencoded_byte_array_data_bytes(Some(arrays.iter().map(|a| present_bytes(a)).sum()));
    }
    let metadata = builder.build()?;

    let offset_index = (!props.offset_index_disabled() || statistics == EnabledStatistics::Page).then(|| {
        let mut index = OffsetIndexBuilder::new();
        for (spec, page) in data_specs.iter().zip(&page_stats) {
            index.append_offset_and_size(spec.offset as i64, spec.compressed_size as i32);
            index.append_row_count(page.rows as i64);
        }
        index.build()
    });
    let column_index = match statistics {
        EnabledStatistics::Page => {
            let mut index = ColumnIndexBuilder::new(Type::BYTE_ARRAY);
            // Ascending (or descending) when each page's minimum and maximum are at least (at
            // most) the previous page's, over the pages holding values; ranks order as values do.
            let bounds: Vec<(u32, u32)> = page_stats.iter().filter_map(|p| p.bounds).collect();
            let pairs = || bounds.windows(2).map(|w| (w[0], w[1]));
            index.set_boundary_order(if pairs().all(|(a, b)| a.0 <= b.0 && a.1 <= b.1) {
                BoundaryOrder::ASCENDING
            } else if pairs().all(|(a, b)| a.0 >= b.0 && a.1 >= b.1) {
                BoundaryOrder::DESCENDING
            } else {
                BoundaryOrder::UNORDERED
            });
            for page in &page_stats {
                match page.bounds {
                    Some((lo, hi)) => {
                        index.append(false, value_of(lo).to_vec(), value_of(hi).to_vec(), page.nulls as i64)
                    }
                    None => index.append(true, vec![], vec![], page.nulls as i64),
                }
            }
            Some(index.build()?)
        }
        _ => None,
    };
    let bytes = Bytes::from(sink.into_inner()?);
    let close = ColumnCloseResult {
        bytes_written: bytes.len() as u64,
        rows_written: rows as u64,
        metadata,
        bloom_filter: None,
        column_index,
        offset_index,
    };
    Ok(Some(DictionaryChunk { bytes, close }))
}

/// One data page's rows, nulls, and lowest and highest rank of its values (`None` if all null).
struct PageSummary {
    rows: usize,
    nulls: usize,
    bounds: Option<(u32, u32)>,
}

/// Bytes of the present values of an array.
fn present_bytes(array: &StringArray) -> i64 {
    let offsets = array.value_offsets();
    match array.nulls() {
        None => (offsets[array.len()] - offsets[0]) as i64,
        Some(nulls) => nulls.valid_indices().map(|row| (offsets[row + 1] - offsets[row]) as i64).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes the RLE/bit-packing hybrid (a reference for the encoder).
    fn decode_hybrid(mut data: &[u8], width: u8, n: usize) -> Vec<u32> {
        let mut out = Vec::new();
        let uleb = |data: &mut &[u8]| {
            let (mut value, mut shift) = (0u64, 0);
            loop {
                let b = data[0];
                *data = &data[1..];
                value |= ((b & 0x7f) as u64) << shift;
                shift += 7;
                if b < 0x80 {
                    return value;
                }
            }
        };
        while out.len() < n {
            let header = uleb(&mut data);
            if header & 1 == 0 {
                let bytes = (width as usize).div_ceil(8);
                let mut v = [0u8; 4];
                v[..bytes].copy_from_slice(&data[..bytes]);
                data = &data[bytes..];
                out.extend(std::iter::repeat_n(u32::from_le_bytes(v), (header >> 1) as usize));
            } else {
                let count = (header >> 1) as usize * 8;
                let (mut acc, mut bits, mut used) = (0u64, 0u32, 0);
                for _ in 0..count {
                    while bits < width as u32 {
                        acc |= (data[used] as u64) << bits;
                        used += 1;
                        bits += 8;
                    }
                    out.push((acc & ((1u64 << width) - 1)) as u32);
                    acc >>= width;
                    bits -= width as u32;
                }
                data = &data[used..];
            }
        }
        out.truncate(n);
        out
    }

    #[test]
    fn hybrid_round_trips() {
        let mut rng = crate::generate::rng::Rng::new(1, "hybrid");
        let mut next = |n: u64| rng.below(n);
        for _ in 0..500 {
            let width = next(12) as u8;
            let mut values = Vec::new();
            for _ in 0..next(40) {
                let v = if width == 0 { 0 } else { next(1 << width) as u32 };
                values.extend(std::iter::repeat_n(v, 1 + next(20) as usize));
            }
            let mut out = Vec::new();
            encode_hybrid(&values, width, &mut out);
            assert_eq!(decode_hybrid(&out, width, values.len()), values, "width {width}");
        }
        let levels: Vec<u32> = std::iter::repeat_n(1, 200).chain(std::iter::repeat_n(0, 300)).collect();
        let mut out = Vec::new();
        encode_hybrid(&levels, 1, &mut out);
        assert_eq!(decode_hybrid(&out, 1, 500), levels);
    }
}
