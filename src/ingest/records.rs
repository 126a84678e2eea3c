//! Delimited records kept as the CSV tokenizer leaves them, and read in place.
//!
//! [`RecordDecoder`] drives `csv_core` over UTF-8 text: each batch of records becomes one
//! [`DelimitedRecords`], row-major — one buffer holding every field's unescaped bytes one after
//! the other, and the end offset of each field. Nothing is copied into per-column arrays at this
//! stage: normalisation reads each contract column through a [`FieldColumn`], so dates, numbers
//! and NHS numbers are parsed straight from the buffer, and only text columns are gathered into
//! an Arrow `StringArray` (one copy of their bytes).
//!
//! Structure: a record with fewer fields than the header is padded with empty fields (an empty
//! field is a missing value); a record with more is an error naming its source row. Source rows
//! are counted per record (a quoted field may span lines), the header row being the row before
//! the first record. The buffer must be valid UTF-8: an invalid byte is an error naming the row
//! and field.

use arrow::array::{StringArray, StringBuilder};
use csv_core::{ReadRecordResult, Reader, ReaderBuilder};

/// Why a batch of records could not be decoded, and the 1-based source row.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordError {
    pub row: u64,
    pub reason: String,
}

/// Push decoder from UTF-8 delimited text to batches of [`DelimitedRecords`].
#[derive(Debug)]
pub struct RecordDecoder {
    reader: Reader,
    width: usize,
    batch_rows: usize,
    /// Field bytes: the buffered records, then the record being read; `data_len` are in use.
    data: Vec<u8>,
    data_len: usize,
    /// `ends[0] = 0`, then each field's end, relative to its record's start until `flush`.
    ends: Vec<usize>,
    ends_len: usize,
    /// Fields read so far of the record being read.
    current_field: usize,
    rows: usize,
    /// Source row number of the next record to complete.
    next_row: u64,
}

impl RecordDecoder {
    /// A decoder for records of `width` fields, `batch_rows` per batch, the first of them at
    /// source row `first_row`.
    pub fn new(delimiter: u8, width: usize, batch_rows: usize, first_row: u64) -> Self {
        let width = width.max(1);
        Self {
            reader: ReaderBuilder::new().delimiter(delimiter).build(),
            width,
            batch_rows: batch_rows.max(1),
            data: Vec::new(),
            data_len: 0,
            ends: vec![0],
            ends_len: 1,
            current_field: 0,
            rows: 0,
            next_row: first_row,
        }
    }

    /// True when the batch holds `batch_rows` records: [`flush`](Self::flush) it before decoding on.
    pub fn is_full(&self) -> bool {
        self.rows == self.batch_rows
    }

    /// Decodes records from `input` until the batch is full or the input is used up; returns the
    /// bytes consumed. A record cut at the end of `input` is completed by the next call; an empty
    /// `input` marks the end of the text (completing a last record without a line end).
    pub fn decode(&mut self, input: &[u8]) -> Result<usize, RecordError> {
        let mut consumed = 0;
        while !self.is_full() {
            // Room for the rest of the batch's fields, and one more so that a record with too
            // many fields is seen whole.
            let want_ends = self.ends_len + (self.batch_rows - self.rows + 1) * self.width;
            if self.ends.len() < want_ends {
                self.ends.resize(want_ends, 0);
            }
            if self.data.len() - self.data_len < 1024 {
                let target = (self.data.len() * 2).max(self.data.capacity()).max(64 * 1024);
                self.data.resize(target, 0);
            }
            let (result, read, written, fields) = self.reader.read_record(
                &input[consumed..],
                &mut self.data[self.data_len..],
                &mut self.ends[self.ends_len..],
            );
            consumed += read;
            self.data_len += written;
            self.ends_len += fields;
            self.current_field += fields;
            match result {
                ReadRecordResult::InputEmpty | ReadRecordResult::End => return Ok(consumed),
                ReadRecordResult::OutputFull => continue,
                ReadRecordResult::OutputEndsFull => {
                    return Err(self.wrong_width(format!("more than {}", self.current_field)));
                }
                ReadRecordResult::Record => {
                    if self.current_field > self.width {
                        return Err(self.wrong_width(self.current_field.to_string()));
                    }
                    // Short records: the missing fields end where the last one did.
                    let last = self.ends[self.ends_len - 1];
                    let missing = self.width - self.current_field;
                    self.ends[self.ends_len..self.ends_len + missing].fill(last);
                    self.ends_len += missing;
                    self.current_field = 0;
                    self.rows += 1;
                    self.next_row += 1;
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

    fn wrong_width(&self, got: String) -> RecordError {
        RecordError {
            row: self.next_row,
            reason: format!("the record has {got} fields where the header has {}", self.width),
        }
    }

    /// Hands over the buffered records (`None` if there are none). Call between records: when
    /// the batch is full, or after the end of the text.
    pub fn flush(&mut self) -> Result<Option<DelimitedRecords>, RecordError> {
        if self.rows == 0 {
            return Ok(None);
        }
        debug_assert_eq!(self.current_field, 0, "flushed between records");
        let first_row = self.next_row - self.rows as u64;
        let mut ends = self.ends[..self.ends_len].to_vec();
        let mut record_start = 0;
        for record in ends[1..].chunks_exact_mut(self.width) {
            for end in record.iter_mut() {
                *end += record_start;
            }
            record_start = record[self.width - 1];
        }
        let mut data = std::mem::take(&mut self.data);
        data.truncate(self.data_len);
        let data = String::from_utf8(data).map_err(|e| {
            let bad = e.utf8_error().valid_up_to();
            let field = ends.partition_point(|end| *end <= bad).saturating_sub(1).min(ends.len() - 2);
            RecordError {
                row: first_row + (field / self.width) as u64,
                reason: format!(
                    "field {} is not valid UTF-8; declare source.encoding (utf16le, windows-1252) in the pipeline",
                    field % self.width + 1
                ),
            }
        })?;
        let rows = self.rows;
        self.data = Vec::with_capacity(data.len() + data.len() / 8);
        self.data_len = 0;
        self.ends_len = 1;
        self.rows = 0;
        Ok(Some(DelimitedRecords { data, ends, width: self.width, rows, first_row }))
    }
}

/// A batch of delimited records, row-major; see the module documentation.
#[derive(Debug, Clone)]
pub struct DelimitedRecords {
    data: String,
    /// `rows * width + 1` offsets into `data`: field `k` is `data[ends[k]..ends[k + 1]]`.
    ends: Vec<usize>,
    width: usize,
    rows: usize,
    first_row: u64,
}

impl DelimitedRecords {
    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn width(&self) -> usize {
        self.width
    }

    /// 1-based source row of the first record.
    pub fn first_row(&self) -> u64 {
        self.first_row
    }

    /// The text of one field, as the file spells it (quotes removed, escapes resolved).
    #[inline]
    pub fn field(&self, row: usize, column: usize) -> &str {
        let k = row * self.width + column;
        &self.data[self.ends[k]..self.ends[k + 1]]
    }

    /// True if every field of the record is empty or white space.
    pub fn is_blank(&self, row: usize) -> bool {
        let start = self.ends[row * self.width];
        let end = self.ends[(row + 1) * self.width];
        self.data[start..end].trim().is_empty()
    }
}

/// Values of one text column, whatever holds them: `""` stands for a missing value.
pub trait TextValues {
    /// Number of values.
    fn rows(&self) -> usize;
    /// Value `i`.
    fn text(&self, i: usize) -> &str;
}

impl TextValues for StringArray {
    fn rows(&self) -> usize {
        arrow::array::Array::len(self)
    }

    #[inline]
    fn text(&self, i: usize) -> &str {
        match arrow::array::Array::is_null(self, i) {
            true => "",
            false => self.value(i),
        }
    }
}

/// One column of a [`DelimitedRecords`] batch, over a selection of its records.
#[derive(Debug, Clone, Copy)]
pub struct FieldColumn<'a> {
    records: &'a DelimitedRecords,
    column: usize,
    rows: &'a [usize],
}

impl<'a> FieldColumn<'a> {
    /// Column `column` of `records`, at the records `rows` (in that order).
    pub fn new(records: &'a DelimitedRecords, column: usize, rows: &'a [usize]) -> Self {
        Self { records, column, rows }
    }

    /// The values gathered into a `StringArray` (empty fields as empty strings, no nulls).
    pub fn to_string_array(&self) -> StringArray {
        let bytes = self.rows.iter().map(|r| self.records.field(*r, self.column).len()).sum();
        let mut builder = StringBuilder::with_capacity(self.rows.len(), bytes);
        for r in self.rows {
            builder.append_value(self.records.field(*r, self.column));
        }
        builder.finish()
    }
}

impl TextValues for FieldColumn<'_> {
    fn rows(&self) -> usize {
        self.rows.len()
    }

    #[inline]
    fn text(&self, i: usize) -> &str {
        self.records.field(self.rows[i], self.column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `text` fed in chunks of `chunk` bytes; returns every batch's fields by row.
    fn decode(text: &str, width: usize, batch_rows: usize, chunk: usize) -> Result<Vec<Vec<Vec<String>>>, RecordError> {
        let mut decoder = RecordDecoder::new(b',', width, batch_rows, 2);
        let mut batches = Vec::new();
        type Batches = Vec<Vec<Vec<String>>>;
        let take = |decoder: &mut RecordDecoder, batches: &mut Batches| -> Result<(), RecordError> {
            if let Some(r) = decoder.flush()? {
                assert_eq!(r.first_row(), 2 + batches.iter().map(Vec::len).sum::<usize>() as u64);
                let rows = (0..r.rows()).map(|row| (0..r.width()).map(|c| r.field(row, c).to_string()).collect());
                batches.push(rows.collect());
            }
            Ok(())
        };
        for piece in text.as_bytes().chunks(chunk) {
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

    fn rows(batches: &[Vec<Vec<String>>]) -> Vec<Vec<String>> {
        batches.concat()
    }

    #[test]
    fn quoted_fields_short_records_and_any_chunking() {
        let text = "a,\"b, with comma\",c\r\n\"multi\nline\",\"say \"\"hi\"\"\",\nshort\nlast,no,newline";
        let want: Vec<Vec<String>> = vec![
            vec!["a".into(), "b, with comma".into(), "c".into()],
            vec!["multi\nline".into(), "say \"hi\"".into(), "".into()],
            vec!["short".into(), "".into(), "".into()],
            vec!["last".into(), "no".into(), "newline".into()],
        ];
        for chunk in [1, 2, 3, 7, 1000] {
            for batch_rows in [1, 3, 100] {
                let batches = decode(text, 3, batch_rows, chunk).unwrap();
                assert_eq!(rows(&batches), want, "chunks of {chunk}, batches of {batch_rows}");
                assert!(batches.iter().all(|b| b.len() <= batch_rows));
            }
        }
    }

    #[test]
    fn a_long_record_is_an_error_at_its_row() {
        let err = decode("a,b\nc,d,e\n", 2, 10, 1000).unwrap_err();
        assert_eq!(err, RecordError { row: 3, reason: "the record has 3 fields where the header has 2".into() });
        let many = format!("a,b\n{}\n", vec!["x"; 50].join(","));
        let err = decode(&many, 2, 1, 1000).unwrap_err();
        assert_eq!(err.row, 3);
        assert!(err.reason.contains("more than"), "{}", err.reason);
    }

    #[test]
    fn invalid_utf8_names_row_and_field() {
        let mut decoder = RecordDecoder::new(b',', 2, 10, 5);
        decoder.decode(b"ok,fine\nbad,caf\xE9\n").unwrap();
        decoder.decode(&[]).unwrap();
        let err = decoder.flush().unwrap_err();
        assert_eq!(err.row, 6);
        assert!(err.reason.starts_with("field 2 is not valid UTF-8"), "{}", err.reason);
    }

    #[test]
    fn columns_read_in_place_and_gathered() {
        let mut decoder = RecordDecoder::new(b'\t', 2, 10, 1);
        decoder.decode("x\t1\n \t \ny\t3\n".as_bytes()).unwrap();
        let records = decoder.flush().unwrap().unwrap();
        assert_eq!((records.rows(), records.is_blank(0), records.is_blank(1)), (3, false, true));
        let rows = [2, 0];
        let column = FieldColumn::new(&records, 1, &rows);
        assert_eq!((column.rows(), column.text(0), column.text(1)), (2, "3", "1"));
        assert_eq!(FieldColumn::new(&records, 0, &rows).to_string_array(), StringArray::from(vec!["y", "x"]));
        let array = StringArray::from(vec![Some("a"), None]);
        assert_eq!((array.text(0), array.text(1)), ("a", ""));
    }
}
