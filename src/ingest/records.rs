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
//! holds [`MAX_BATCH_BYTES`] of field data (Arrow's 32-bit offsets bound a column).

use arrow::array::{ArrayRef, BooleanBufferBuilder, StringArray};
use arrow::buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use csv_core::{ReadRecordResult, Reader, ReaderBuilder};
use std::sync::Arc;

/// Field bytes after which a batch is cut short.
pub const MAX_BATCH_BYTES: usize = 1 << 30;

/// Why records could not be decoded, and the 1-based source row.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordError {
    pub row: u64,
    pub reason: String,
}

/// One column's share of the batch: value bytes, offsets and validity.
#[derive(Debug)]
struct ColumnBuffer {
    values: Vec<u8>,
    offsets: Vec<i32>,
    valid: BooleanBufferBuilder,
}

impl ColumnBuffer {
    fn new(rows: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Self { values: Vec::with_capacity(bytes), offsets, valid: BooleanBufferBuilder::new(rows) }
    }

    /// Appends one field; an empty field is a null.
    #[inline]
    fn push(&mut self, field: &[u8]) {
        self.values.extend_from_slice(field);
        self.offsets.push(self.values.len() as i32);
        self.valid.append(!field.is_empty());
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
    columns: Vec<ColumnBuffer>,
    rows: usize,
    bytes: usize,
    /// Source row number of the next record to complete.
    next_row: u64,
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
            columns: (0..width).map(|_| ColumnBuffer::new(batch_rows, batch_rows * 8)).collect(),
            rows: 0,
            bytes: 0,
            next_row: first_row,
        }
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
        while !self.is_full() {
            if self.fields == 0 && self.record_len == 0 {
                if let Some(line) = self.plain_line(&input[consumed..])? {
                    consumed += line;
                    continue;
                }
            }
            if self.record.len() - self.record_len < 256 {
                self.record.resize(self.record.len() * 2, 0);
            }
            let (result, read, written, ends) = self.reader.read_record(
                &input[consumed..],
                &mut self.record[self.record_len..],
                &mut self.ends[self.fields..],
            );
            consumed += read;
            self.record_len += written;
            self.fields += ends;
            match result {
                ReadRecordResult::InputEmpty | ReadRecordResult::End => return Ok(consumed),
                ReadRecordResult::OutputFull => continue,
                ReadRecordResult::OutputEndsFull => return Err(self.wrong_width(format!("more than {}", self.fields))),
                ReadRecordResult::Record => {
                    if self.fields > self.width {
                        return Err(self.wrong_width(self.fields.to_string()));
                    }
                    self.scatter();
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

    /// The fast path for the common record: a whole line ending in `\n` (or `\r\n`), not empty,
    /// with no quote and no other `\r`. Its fields are split at the delimiters, as `csv_core`
    /// would split them, and go straight from the input to their columns. Returns the bytes
    /// taken, or `None` to leave the record to `csv_core`.
    fn plain_line(&mut self, input: &[u8]) -> Result<Option<usize>, RecordError> {
        let Some(end) = memchr::memchr(b'\n', input) else { return Ok(None) };
        let line = input[..end].strip_suffix(b"\r").unwrap_or(&input[..end]);
        if line.is_empty() || memchr::memchr2(b'"', b'\r', line).is_some() {
            return Ok(None);
        }
        let fields = memchr::memchr_iter(self.delimiter, line).count() + 1;
        if fields > self.width {
            return Err(self.wrong_width(fields.to_string()));
        }
        let mut start = 0;
        let mut columns = self.columns.iter_mut();
        for (field_end, column) in memchr::memchr_iter(self.delimiter, line).chain([line.len()]).zip(&mut columns) {
            column.push(&line[start..field_end]);
            start = field_end + 1;
        }
        for column in columns {
            column.push(&[]);
        }
        self.bytes += line.len();
        self.rows += 1;
        self.next_row += 1;
        Ok(Some(end + 1))
    }

    /// Appends the completed record's fields to their columns (missing trailing fields as nulls).
    fn scatter(&mut self) {
        let mut start = 0;
        for (c, column) in self.columns.iter_mut().enumerate() {
            let end = if c < self.fields { self.ends[c] } else { start };
            column.push(&self.record[start..end]);
            start = end;
        }
        self.bytes += self.record_len;
        self.record_len = 0;
        self.fields = 0;
        self.rows += 1;
        self.next_row += 1;
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
            let mut done = std::mem::replace(column, ColumnBuffer::new(self.batch_rows, bytes + bytes / 8));
            let nulls = NullBuffer::new(done.valid.finish());
            let nulls = (nulls.null_count() > 0).then_some(nulls);
            let offsets = OffsetBuffer::new(ScalarBuffer::from(done.offsets));
            let values = Buffer::from_vec(done.values);
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
        Ok(Some((arrays, first_row)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};

    type Rows = Vec<Vec<Option<String>>>;

    /// Decodes `text` fed in chunks of `chunk` bytes; returns every batch's rows.
    fn decode(text: &[u8], width: usize, batch_rows: usize, chunk: usize) -> Result<Vec<Rows>, RecordError> {
        let mut decoder = RecordDecoder::new(b',', width, batch_rows, 2);
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
    }

    #[test]
    fn long_fields_grow_the_record_buffer() {
        let long = "x".repeat(100_000);
        let text = format!("{long},1\nshort,2\n");
        let rows = decode(text.as_bytes(), 2, 10, 4096).unwrap().concat();
        assert_eq!(rows, vec![row(&[Some(&long), Some("1")]), row(&[Some("short"), Some("2")])]);
    }
}
