//! Delimited records to text columns in one pass.
//!
//! [`RecordDecoder`] turns UTF-8 text into per-column value buffers one record at a time, and a
//! full batch into one Arrow `StringArray` per column (the buffers are handed over, not copied).
//! A plain line — no quote, no carriage return but a final one — is split at its delimiters with
//! SIMD searches and its fields copied straight from the input; any other record goes through
//! `csv_core` (quoting, escaped quotes, embedded line breaks) into a small scratch buffer and is
//! scattered from there while still in cache. Either way every byte is touched once, in order,
//! where tokenising a whole batch row-major and then gathering each column would walk it twice.
//!
//! Semantics, as Arrow's CSV reader with every column as text: an empty field is a null; a record
//! with fewer fields than the header is padded with nulls; a record with more is an error naming
//! its source row. Source rows are counted per record (a quoted field may span lines), starting
//! from the row given for the first record. Each column must be valid UTF-8: an invalid byte is
//! an error naming the row and field. A batch ends at `batch_rows` records, or earlier once it
//! holds [`MAX_BATCH_BYTES`] of field data (a bound on memory per batch in flight).
//!
//! Limits and truncation ([`RecordDecoder::with_limits`]): a field longer than `max_field` or a
//! record longer than `max_line` bytes is an error as soon as it is seen (a record is never
//! buffered beyond the limit). At the end of the text, a last record without a line end that is
//! shorter than the header, or that ends inside a quoted field, is an error: the file was cut.

use arrow::array::{ArrayRef, StringArray};
use arrow::buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use csv_core::{ReadRecordResult, Reader, ReaderBuilder};
use std::sync::Arc;

/// Field bytes after which a batch is cut short.
pub const MAX_BATCH_BYTES: usize = 64 << 20;

/// Bytes of input the fast path searches at a time (so a long input is searched once, not once
/// per batch).
const PLAIN_WINDOW: usize = 1 << 20;

/// Why records could not be decoded, and the 1-based source row.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordError {
    pub row: u64,
    pub reason: String,
}

/// Fields of at most this many bytes are copied as a block of this size.
const SHORT_FIELD: usize = 32;

/// One column's share of the batch: value bytes and offsets (an empty field is a null, so the
/// validity follows from the offsets when the batch is handed over).
#[derive(Debug)]
struct ColumnBuffer {
    values: Vec<u8>,
    offsets: Vec<i32>,
}

impl ColumnBuffer {
    fn new(rows: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Self { values: Vec::with_capacity(bytes), offsets }
    }

    /// Appends one field.
    #[inline]
    fn push(&mut self, field: &[u8]) {
        self.values.extend_from_slice(field);
        self.offsets.push(self.values.len() as i32);
    }

    /// Appends `text[start..end]`. A short field is copied as a fixed `SHORT_FIELD` bytes when
    /// `text` has that many from `start` (a few vector moves, where a copy of the field's own
    /// length is a call into `memcpy`); only the field's bytes are kept.
    #[inline]
    fn push_from(&mut self, text: &[u8], start: usize, end: usize) {
        let len = end - start;
        if len <= SHORT_FIELD && text.len() - start >= SHORT_FIELD {
            self.values.reserve(SHORT_FIELD);
            let kept = self.values.len();
            // SAFETY: `SHORT_FIELD` bytes are readable from `text[start..]` (checked above) and
            // writable after the values' length (reserved); the length grows only by `len`, so
            // just the field's bytes, now initialised, become part of the values.
            unsafe {
                let to = self.values.as_mut_ptr().add(kept);
                std::ptr::copy_nonoverlapping(text.as_ptr().add(start), to, SHORT_FIELD);
                self.values.set_len(kept + len);
            }
        } else {
            self.values.extend_from_slice(&text[start..end]);
        }
        self.offsets.push(self.values.len() as i32);
    }
}

/// Push decoder from UTF-8 delimited text to batches of text columns.
#[derive(Debug)]
pub struct RecordDecoder {
    reader: Reader,
    delimiter: u8,
    width: usize,
    batch_rows: usize,
    /// The record being read: its field bytes (`record_len` in use) and field ends.
    record: Vec<u8>,
    record_len: usize,
    ends: Vec<usize>,
    fields: usize,
    /// True while csv_core holds part of a record.
    in_record: bool,
    /// Whether plain lines take the fast path (always, but for tests comparing both paths).
    plain_lines: bool,
    columns: Vec<ColumnBuffer>,
    rows: usize,
    bytes: usize,
    /// Source row number of the next record to complete.
    next_row: u64,
    /// Whether the batch's text may hold a byte outside ASCII (then its columns are checked as
    /// UTF-8 when handed over; ASCII text is valid UTF-8 however it is cut).
    non_ascii: bool,
    /// Longest field and record, in bytes.
    max_field: usize,
    max_line: usize,
    /// Quoting state of the record csv_core is reading (to tell a cut quote at the end).
    quote: Quote,
}

/// Where csv_core is within a record, as far as quoting goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quote {
    FieldStart,
    Unquoted,
    Quoted,
    /// A quote inside a quoted field: its end, or the first half of an escaped `""`.
    MaybeClosed,
}

impl Quote {
    fn feed(mut self, bytes: &[u8], delimiter: u8) -> Self {
        for &b in bytes {
            let separator = b == delimiter || b == b'\n' || b == b'\r';
            self = match (self, b) {
                (Quote::Quoted, b'"') => Quote::MaybeClosed,
                (Quote::Quoted, _) => Quote::Quoted,
                (Quote::MaybeClosed, b'"') | (Quote::FieldStart, b'"') => Quote::Quoted,
                _ if separator => Quote::FieldStart,
                _ => Quote::Unquoted,
            };
        }
        self
    }
}

impl RecordDecoder {
    /// A decoder for records of `width` fields, `batch_rows` per batch, the first of them at
    /// source row `first_row`.
    pub fn new(delimiter: u8, width: usize, batch_rows: usize, first_row: u64) -> Self {
        let width = width.max(1);
        let batch_rows = batch_rows.max(1);
        Self {
            reader: ReaderBuilder::new().delimiter(delimiter).build(),
            delimiter,
            width,
            batch_rows,
            record: vec![0; 4096],
            record_len: 0,
            // One slot more than the header, so that a record with one field too many is seen.
            ends: vec![0; width + 1],
            fields: 0,
            in_record: false,
            plain_lines: true,
            columns: (0..width).map(|_| ColumnBuffer::new(batch_rows, batch_rows * 8)).collect(),
            rows: 0,
            bytes: 0,
            next_row: first_row,
            non_ascii: false,
            max_field: usize::MAX,
            max_line: usize::MAX,
            quote: Quote::FieldStart,
        }
    }

    /// The same decoder with a longest field and record, in bytes.
    pub fn with_limits(mut self, max_field: usize, max_line: usize) -> Self {
        (self.max_field, self.max_line) = (max_field.max(1), max_line.max(1));
        self
    }

    /// True when the batch is complete: [`flush`](Self::flush) it before decoding on.
    pub fn is_full(&self) -> bool {
        self.rows == self.batch_rows || self.bytes >= MAX_BATCH_BYTES
    }

    /// Decodes records from `input` until the batch is full or the input is used up; returns the
    /// bytes consumed. A record cut at the end of `input` is completed by the next call; an empty
    /// `input` marks the end of the text (completing a last record without a line end).
    pub fn decode(&mut self, input: &[u8]) -> Result<usize, RecordError> {
        let mut consumed = 0;
        let end_of_text = input.is_empty();
        if end_of_text && self.in_record && self.quote == Quote::Quoted {
            return Err(RecordError {
                row: self.next_row,
                reason: "the file ends inside a quoted field (an unterminated quote): it looks truncated".into(),
            });
        }
        while !self.is_full() {
            if !self.in_record && self.plain_lines {
                consumed += self.split_plain_lines(&input[consumed..])?;
                if self.is_full() || (consumed == input.len() && !input.is_empty()) {
                    break;
                }
            }
            // One record through csv_core: quoted, with a lone carriage return, or cut by the end
            // of the input.
            if self.record.len() - self.record_len < 256 {
                self.record.resize(self.record.len() * 2, 0);
            }
            let (result, read, written, ends) = self.reader.read_record(
                &input[consumed..],
                &mut self.record[self.record_len..],
                &mut self.ends[self.fields..],
            );
            self.quote = self.quote.feed(&input[consumed..consumed + read], self.delimiter);
            consumed += read;
            self.record_len += written;
            self.fields += ends;
            if self.record_len > self.max_line {
                return Err(self.too_long("record", self.max_line, "max_line_bytes"));
            }
            match result {
                ReadRecordResult::InputEmpty | ReadRecordResult::End => {
                    self.in_record |= read > 0;
                    return Ok(consumed);
                }
                ReadRecordResult::OutputFull => self.in_record = true,
                ReadRecordResult::OutputEndsFull => return Err(self.wrong_width(format!("more than {}", self.fields))),
                ReadRecordResult::Record => {
                    if self.fields > self.width {
                        return Err(self.wrong_width(self.fields.to_string()));
                    }
                    let blank = self.record[..self.record_len].iter().all(u8::is_ascii_whitespace);
                    if end_of_text && self.in_record && self.fields < self.width && !blank {
                        return Err(RecordError {
                            row: self.next_row,
                            reason: format!(
                                "the last record has {} of {} fields and no line end: the file looks truncated",
                                self.fields, self.width
                            ),
                        });
                    }
                    self.check_fields()?;
                    self.scatter();
                    self.in_record = false;
                    self.quote = Quote::FieldStart;
                    // csv_core takes an empty input as the end of the text: stop at the end of
                    // this one instead.
                    if consumed == input.len() && !input.is_empty() {
                        return Ok(consumed);
                    }
                }
            }
        }
        Ok(consumed)
    }

    /// The fast path: whole lines at the start of `input` that hold no quote and no carriage
    /// return other than a final one, taken a window at a time. Each window is searched once for
    /// quotes and carriage returns, then once for delimiters and line ends, and each field goes
    /// straight from the input to its column: the same fields `csv_core` would give (an empty
    /// line is skipped, as `csv_core` skips it). Stops at the first line it may not take, at the
    /// last whole line, or when the batch is full; returns the bytes taken.
    fn split_plain_lines(&mut self, input: &[u8]) -> Result<usize, RecordError> {
        let mut taken = 0;
        while !self.is_full() {
            let rest = &input[taken..];
            let end = rest.len().min(PLAIN_WINDOW);
            let Some(last_line_end) = memchr::memrchr(b'\n', &rest[..end]) else { break };
            let mut limit = last_line_end + 1;
            if let Some(quote) = memchr::memchr(b'"', &rest[..limit]) {
                limit = memchr::memrchr(b'\n', &rest[..quote]).map_or(0, |p| p + 1);
            }
            let lone_cr = memchr::memchr_iter(b'\r', &rest[..limit]).find(|cr| rest.get(cr + 1) != Some(&b'\n'));
            if let Some(cr) = lone_cr {
                limit = memchr::memrchr(b'\n', &rest[..cr]).map_or(0, |p| p + 1);
            }
            let window = &rest[..limit];
            let split = self.split_window(window)?;
            taken += split;
            if split < window.len() || limit <= last_line_end || split == 0 {
                break;
            }
        }
        Ok(taken)
    }

    /// Splits whole plain lines of `window` into the columns until the batch is full; returns
    /// the bytes taken.
    fn split_window(&mut self, window: &[u8]) -> Result<usize, RecordError> {
        let (mut line_start, mut field_start, mut column) = (0, 0, 0);
        let mut separators = Separators::new(window, self.delimiter);
        for at in separators.by_ref() {
            if at - field_start > self.max_field {
                return Err(self.too_long("field", self.max_field, "max_field_bytes"));
            }
            if window[at] != b'\n' {
                if column + 1 == self.width {
                    let line_end = line_start + memchr::memchr(b'\n', &window[line_start..]).unwrap_or(0);
                    let fields = memchr::memchr_iter(self.delimiter, &window[line_start..line_end]).count() + 1;
                    return Err(self.wrong_width(fields.to_string()));
                }
                self.columns[column].push_from(window, field_start, at);
                column += 1;
                field_start = at + 1;
                continue;
            }
            if at - line_start > self.max_line {
                return Err(self.too_long("record", self.max_line, "max_line_bytes"));
            }
            let field_end = if at > field_start && window[at - 1] == b'\r' { at - 1 } else { at };
            if column > 0 || field_end > line_start {
                self.columns[column].push_from(window, field_start, field_end);
                for rest in &mut self.columns[column + 1..] {
                    rest.push(&[]);
                }
                self.end_record(field_end - line_start);
            }
            (line_start, field_start, column) = (at + 1, at + 1, 0);
            if self.is_full() {
                break;
            }
        }
        self.non_ascii |= separators.non_ascii_in(&window[..line_start]);
        Ok(line_start)
    }

    /// Appends the completed record's fields to their columns (missing trailing fields as nulls).
    fn scatter(&mut self) {
        self.non_ascii |= !self.record[..self.record_len].is_ascii();
        let mut start = 0;
        for (c, column) in self.columns.iter_mut().enumerate() {
            let end = if c < self.fields { self.ends[c] } else { start };
            column.push(&self.record[start..end]);
            start = end;
        }
        let bytes = std::mem::take(&mut self.record_len);
        self.fields = 0;
        self.end_record(bytes);
    }

    /// Counts a completed record holding `bytes` of field data, whichever path read it.
    fn end_record(&mut self, bytes: usize) {
        self.bytes += bytes;
        self.rows += 1;
        self.next_row += 1;
    }

    /// Checks the field lengths of the record csv_core completed.
    fn check_fields(&self) -> Result<(), RecordError> {
        let mut start = 0;
        for &end in &self.ends[..self.fields.min(self.width)] {
            if end - start > self.max_field {
                return Err(self.too_long("field", self.max_field, "max_field_bytes"));
            }
            start = end;
        }
        Ok(())
    }

    fn too_long(&self, what: &str, limit: usize, setting: &str) -> RecordError {
        RecordError { row: self.next_row, reason: format!("a {what} is longer than {limit} bytes (limits.{setting})") }
    }

    fn wrong_width(&self, got: String) -> RecordError {
        RecordError {
            row: self.next_row,
            reason: format!("the record has {got} fields where the header has {}", self.width),
        }
    }

    /// Hands over the batch as one `StringArray` per column, with the source row of its first
    /// record (`None` if there are no records). Call between records: when the batch is full, or
    /// after the end of the text.
    pub fn flush(&mut self) -> Result<Option<(Vec<ArrayRef>, u64)>, RecordError> {
        if self.rows == 0 {
            return Ok(None);
        }
        let first_row = self.next_row - self.rows as u64;
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.width);
        for (c, column) in self.columns.iter_mut().enumerate() {
            let bytes = column.values.len();
            let done = std::mem::replace(column, ColumnBuffer::new(self.batch_rows, bytes + bytes / 8));
            let offsets = &done.offsets;
            let nulls = NullBuffer::new(BooleanBuffer::collect_bool(self.rows, |i| offsets[i + 1] > offsets[i]));
            let nulls = (nulls.null_count() > 0).then_some(nulls);
            let offsets = OffsetBuffer::new(ScalarBuffer::from(done.offsets));
            let values = Buffer::from_vec(done.values);
            if !self.non_ascii {
                // SAFETY: the offsets start at 0 and rise to the values' length, as `push` wrote
                // them, and every value byte is ASCII, so each value is valid UTF-8.
                arrays.push(Arc::new(unsafe { StringArray::new_unchecked(offsets, values, nulls) }));
                continue;
            }
            let array = StringArray::try_new(offsets.clone(), values.clone(), nulls).map_err(|e| {
                // Only text that is not UTF-8 fails here: name its row and field.
                let Some(at) = std::str::from_utf8(values.as_slice()).err().map(|e| e.valid_up_to()) else {
                    return RecordError { row: first_row, reason: format!("field {}: {e}", c + 1) };
                };
                let row = offsets.partition_point(|o| (*o as usize) <= at).saturating_sub(1);
                RecordError {
                    row: first_row + row as u64,
                    reason: format!(
                        "field {} is not valid UTF-8; declare source.encoding (utf16le, windows-1252) in the pipeline",
                        c + 1
                    ),
                }
            })?;
            arrays.push(Arc::new(array));
        }
        self.rows = 0;
        self.bytes = 0;
        self.non_ascii = false;
        Ok(Some((arrays, first_row)))
    }
}

/// Positions of the delimiter and of `\n` in a window, in order. On x86-64 each 16 bytes are
/// compared with both at once (SSE2, always present there) and the matches read off a bit mask,
/// so a line's twenty-odd separators cost one pass rather than one search each; elsewhere, and
/// for a NUL delimiter, `memchr`'s two-byte search.
struct Separators<'a> {
    window: &'a [u8],
    #[cfg(target_arch = "x86_64")]
    simd: Option<SseSeparators>,
    fallback: memchr::Memchr2<'a>,
}

#[cfg(target_arch = "x86_64")]
struct SseSeparators {
    delimiter: std::arch::x86_64::__m128i,
    newline: std::arch::x86_64::__m128i,
    /// Start of the block `mask` describes, and where the next block starts.
    base: usize,
    next: usize,
    mask: u32,
    /// The high bits of every byte of the blocks read so far.
    high: u32,
}

impl<'a> Separators<'a> {
    fn new(window: &'a [u8], delimiter: u8) -> Self {
        #[cfg(target_arch = "x86_64")]
        let simd = (delimiter != 0).then(|| {
            use std::arch::x86_64::_mm_set1_epi8;
            // SAFETY: SSE2 is part of the x86-64 baseline.
            let (delimiter, newline) = unsafe { (_mm_set1_epi8(delimiter as i8), _mm_set1_epi8(b'\n' as i8)) };
            SseSeparators { delimiter, newline, base: 0, next: 0, mask: 0, high: 0 }
        });
        Self {
            window,
            #[cfg(target_arch = "x86_64")]
            simd,
            fallback: memchr::memchr2_iter(delimiter, b'\n', window),
        }
    }

    /// Whether `taken`, a start of the window that ends at a separator already returned, may
    /// hold a byte outside ASCII. The vector path has seen every byte of it; the other path
    /// checks it.
    fn non_ascii_in(&self, taken: &[u8]) -> bool {
        #[cfg(target_arch = "x86_64")]
        if let Some(sse) = &self.simd {
            return sse.high != 0;
        }
        !taken.is_ascii()
    }
}

impl Iterator for Separators<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        #[cfg(target_arch = "x86_64")]
        if let Some(sse) = &mut self.simd {
            use std::arch::x86_64::*;
            while sse.mask == 0 {
                if sse.next >= self.window.len() {
                    return None;
                }
                sse.base = sse.next;
                sse.next += 16;
                let mut block = [0u8; 16];
                let bytes = match self.window.get(sse.base..sse.next) {
                    Some(full) => full,
                    None => {
                        // The last, short block, padded with NULs (which match neither byte).
                        let tail = &self.window[sse.base..];
                        block[..tail.len()].copy_from_slice(tail);
                        &block
                    }
                };
                // SAFETY: an unaligned 16-byte load from a 16-byte slice; SSE2 is part of the
                // x86-64 baseline.
                sse.mask = unsafe {
                    let v = _mm_loadu_si128(bytes.as_ptr() as *const __m128i);
                    sse.high |= _mm_movemask_epi8(v) as u32;
                    let hits = _mm_or_si128(_mm_cmpeq_epi8(v, sse.delimiter), _mm_cmpeq_epi8(v, sse.newline));
                    _mm_movemask_epi8(hits) as u32
                };
            }
            let bit = sse.mask.trailing_zeros() as usize;
            sse.mask &= sse.mask - 1;
            return Some(sse.base + bit);
        }
        self.fallback.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};

    type Rows = Vec<Vec<Option<String>>>;

    /// Decodes `text` fed in chunks of `chunk` bytes; returns every batch's rows.
    fn decode(text: &[u8], width: usize, batch_rows: usize, chunk: usize) -> Result<Vec<Rows>, RecordError> {
        decode_with(text, width, batch_rows, chunk, true)
    }

    fn decode_with(
        text: &[u8],
        width: usize,
        batch_rows: usize,
        chunk: usize,
        plain_lines: bool,
    ) -> Result<Vec<Rows>, RecordError> {
        let mut decoder = RecordDecoder::new(b',', width, batch_rows, 2);
        decoder.plain_lines = plain_lines;
        let mut batches: Vec<Rows> = Vec::new();
        let take = |decoder: &mut RecordDecoder, batches: &mut Vec<Rows>| -> Result<(), RecordError> {
            if let Some((columns, first_row)) = decoder.flush()? {
                assert_eq!(first_row, 2 + batches.iter().map(Vec::len).sum::<usize>() as u64);
                let rows = (0..columns[0].len()).map(|row| {
                    columns
                        .iter()
                        .map(|c| c.as_string::<i32>())
                        .map(move |c| c.is_valid(row).then(|| c.value(row).to_string()))
                });
                batches.push(rows.map(Iterator::collect).collect());
            }
            Ok(())
        };
        for piece in text.chunks(chunk) {
            let mut offset = 0;
            while offset < piece.len() {
                offset += decoder.decode(&piece[offset..])?;
                if decoder.is_full() {
                    take(&mut decoder, &mut batches)?;
                }
            }
        }
        decoder.decode(&[])?;
        take(&mut decoder, &mut batches)?;
        Ok(batches)
    }

    fn row(fields: &[Option<&str>]) -> Vec<Option<String>> {
        fields.iter().map(|f| f.map(str::to_string)).collect()
    }

    #[test]
    fn quoted_fields_short_records_and_any_chunking() {
        let text = "a,\"b, with comma\",c\r\n\"multi\nline\",\"say \"\"hi\"\"\",\nshort\nlast,no,newlin\u{e9}";
        let want = vec![
            row(&[Some("a"), Some("b, with comma"), Some("c")]),
            row(&[Some("multi\nline"), Some("say \"hi\""), None]),
            row(&[Some("short"), None, None]),
            row(&[Some("last"), Some("no"), Some("newlin\u{e9}")]),
        ];
        for chunk in [1, 2, 3, 7, 1000] {
            for batch_rows in [1, 3, 100] {
                let batches = decode(text.as_bytes(), 3, batch_rows, chunk).unwrap();
                assert_eq!(batches.concat(), want, "chunks of {chunk}, batches of {batch_rows}");
                assert!(batches.iter().all(|b| b.len() <= batch_rows));
            }
        }
    }

    #[test]
    fn a_long_record_is_an_error_at_its_row() {
        let err = decode(b"a,b\nc,d,e\n", 2, 10, 1000).unwrap_err();
        assert_eq!(err, RecordError { row: 3, reason: "the record has 3 fields where the header has 2".into() });
        let many = format!("a,b\n{}\n", vec!["x"; 50].join(","));
        let err = decode(many.as_bytes(), 2, 1, 1000).unwrap_err();
        assert_eq!((err.row, err.reason.as_str()), (3, "the record has 50 fields where the header has 2"));
        // Quoted, so csv_core reads it: it stops counting once the record is too long.
        let quoted = format!("a,b\n{}\n", vec!["\"x\""; 50].join(","));
        let err = decode(quoted.as_bytes(), 2, 1, 1000).unwrap_err();
        assert_eq!(err.row, 3);
        assert!(err.reason.contains("more than 3 fields"), "{}", err.reason);
    }

    #[test]
    fn line_ends_split_as_csv_core_splits_them() {
        // CRLF, a lone CR (a record end to csv_core), a space-only line, a blank line (skipped).
        let text = b"a,1\r\nb,2\r\nc,3\rd,4\n \n\ne,\r\n";
        let want = vec![
            row(&[Some("a"), Some("1")]),
            row(&[Some("b"), Some("2")]),
            row(&[Some("c"), Some("3")]),
            row(&[Some("d"), Some("4")]),
            row(&[Some(" "), None]),
            row(&[Some("e"), None]),
        ];
        for chunk in 1..=9 {
            assert_eq!(decode(text, 2, 4, chunk).unwrap().concat(), want, "chunks of {chunk}");
        }
    }

    #[test]
    fn invalid_utf8_names_row_and_field() {
        let err = decode(b"ok,fine\nalso,fine\nbad,caf\xE9\n", 2, 10, 1000).unwrap_err();
        assert_eq!(err.row, 4);
        assert!(err.reason.starts_with("field 2 is not valid UTF-8"), "{}", err.reason);
        // Whichever path reads the bad byte, in whichever batch, and however the text is cut.
        for (text, row, field) in [
            (&b"a,b\nok,fine\nbad,\xE9x\n"[..], 4, 2),
            (&b"a,b\nok,fine\n\"b\xE9d\",x\n"[..], 4, 1),
            (&b"a,b\nok,caf\xC3\xA9\n\xFF,x\n"[..], 4, 1),
        ] {
            for (batch_rows, chunk) in [(1, 1000), (10, 3), (2, 1)] {
                for plain in [true, false] {
                    let err = decode_with(text, 2, batch_rows, chunk, plain).unwrap_err();
                    assert_eq!(err.row, row, "{text:?}");
                    assert!(err.reason.starts_with(&format!("field {field} is not valid UTF-8")), "{}", err.reason);
                }
            }
        }
        // Text outside ASCII that is valid UTF-8 is kept as it is.
        let rows = decode(b"caf\xC3\xA9,na\xC3\xAFve\n\"z\xC3\xB6e\",x\n", 2, 1, 5).unwrap().concat();
        assert_eq!(rows, vec![row(&[Some("café"), Some("naïve")]), row(&[Some("zöe"), Some("x")])]);
    }

    #[test]
    fn the_fast_path_gives_what_csv_core_gives() {
        let mut rng = crate::generate::rng::Rng::new(1, "records");
        let mut next = |n: u64| rng.below(n);
        let pieces = ["a", "bb", "", " ", "\"q,uoted\"", "\"multi\nline\"", "\"esc\"\"aped\"", "café", "\"naïve,\""];
        for _ in 0..300 {
            let mut text = String::new();
            for _ in 0..next(12) {
                let fields = 1 + next(4);
                let line: Vec<&str> = (0..fields).map(|_| pieces[next(pieces.len() as u64) as usize]).collect();
                text.push_str(&line.join(","));
                text.push_str(["\n", "\r\n", "\r", "\n\n"][next(4) as usize]);
            }
            if next(2) == 0 {
                text.push_str("tail,end");
            }
            let (chunk, batch_rows) = (1 + next(40) as usize, 1 + next(5) as usize);
            let fast = decode_with(text.as_bytes(), 4, batch_rows, chunk, true).map(|b| b.concat());
            let slow = decode_with(text.as_bytes(), 4, batch_rows, chunk, false).map(|b| b.concat());
            assert_eq!(fast, slow, "{text:?} in chunks of {chunk}");
        }
    }

    #[test]
    fn separators_are_found_in_order_in_any_window() {
        for len in 0..70 {
            let window: Vec<u8> = (0..len).map(|i| [b'a', b',', b'\n', b'x', b'\t'][(i * 7 + i / 3) % 5]).collect();
            for delimiter in [b',', b'\t', 0] {
                let want: Vec<usize> = (0..len).filter(|i| [delimiter, b'\n'].contains(&window[*i])).collect();
                assert_eq!(Separators::new(&window, delimiter).collect::<Vec<_>>(), want, "{len} bytes");
            }
        }
    }

    #[test]
    fn a_cut_last_record_is_an_error_a_whole_one_is_not() {
        for chunk in [1, 3, 1000] {
            // Cut mid-row: fewer fields than the header and no line end.
            let err = decode(b"a,1,x\nb,2", 3, 10, chunk).unwrap_err();
            assert_eq!(err.row, 3);
            assert!(err.reason.contains("2 of 3 fields and no line end"), "{}", err.reason);
            // Cut inside a quoted field, on either path.
            for plain in [true, false] {
                let err = decode_with(b"a,1,x\nb,2,\"open quo", 3, 10, chunk, plain).unwrap_err();
                assert!(err.reason.contains("unterminated quote"), "{}", err.reason);
            }
            // A whole last record without a line end, a short row with one, a quote closed at
            // the end and escaped quotes are fine; so is trailing blank space.
            assert_eq!(decode(b"a,1,x\nb,2,y", 3, 10, chunk).unwrap().concat().len(), 2);
            assert_eq!(decode(b"a,1\nb,2,y\n", 3, 10, chunk).unwrap().concat().len(), 2);
            assert_eq!(decode(b"a,1,\"q \"\"x\"\"\"", 3, 10, chunk).unwrap().concat().len(), 1);
            assert_eq!(decode(b"a,1,x\n  ", 3, 10, chunk).unwrap().concat().len(), 2);
        }
    }

    #[test]
    fn fields_and_records_over_the_limits_are_errors_when_seen() {
        let limited = |text: &[u8], chunk: usize, plain: bool| {
            let mut decoder = RecordDecoder::new(b',', 2, 100, 2).with_limits(8, 32);
            decoder.plain_lines = plain;
            let mut result: Result<(), RecordError> = Ok(());
            for piece in text.chunks(chunk) {
                let mut offset = 0;
                while offset < piece.len() && result.is_ok() {
                    result = decoder.decode(&piece[offset..]).map(|n| offset += n);
                    if decoder.is_full() {
                        decoder.flush().unwrap();
                    }
                }
            }
            result.and_then(|_| decoder.decode(&[]).map(|_| ()))
        };
        for plain in [true, false] {
            for chunk in [1, 7, 1000] {
                let err = limited(b"ok,fine\nx,123456789\n", chunk, plain).unwrap_err();
                assert_eq!(err.row, 3);
                assert!(err.reason.contains("field is longer than 8 bytes"), "{}", err.reason);
                let line = format!("a,b\n\"{}\",y\n", "x".repeat(100));
                let err = limited(line.as_bytes(), chunk, plain).unwrap_err();
                assert!(err.reason.contains("longer than"), "{}", err.reason);
                limited(b"ok,fine\n12345678,x\n", chunk, plain).unwrap();
            }
        }
        // A line without any line end is stopped at the limit, not read whole.
        let endless = vec![b'x'; 10_000];
        let err = limited(&endless, 1000, true).unwrap_err();
        assert!(err.reason.contains("max_line_bytes"), "{}", err.reason);
    }

    #[test]
    fn long_fields_grow_the_record_buffer() {
        let long = "x".repeat(100_000);
        let text = format!("{long},1\nshort,2\n");
        let rows = decode(text.as_bytes(), 2, 10, 4096).unwrap().concat();
        assert_eq!(rows, vec![row(&[Some(&long), Some("1")]), row(&[Some("short"), Some("2")])]);
    }
}
