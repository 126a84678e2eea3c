//! Delimited text sources (csv, tsv) in any supported encoding, streamed.
//!
//! Bytes arrive in chunks from the object store; a transcoder turns them into UTF-8 (UTF-8 BOM
//! stripped; UTF-16LE/BE and Windows-1252 decoded), the lines before the header are kept as title
//! lines, the header row is found by offset or keyword, and the rest goes to the
//! [`RecordDecoder`](super::records::RecordDecoder), which turns records into batches of text
//! columns. Short rows are padded with nulls; a row with more fields than the header, or text that
//! is not UTF-8, is a structural error for the whole file.
//!
//! Hostile or broken files are rejected whole, while reading: bytes that are not valid in the
//! declared encoding (an odd byte count or a lone surrogate in UTF-16, invalid UTF-8) name their
//! byte offset and are never replaced; a line or field over the environment's `[limits]`
//! (`max_line_bytes`, `max_field_bytes`) is rejected as soon as it is seen, so it is never held
//! whole; and a file whose last record is cut short (no line end after a short row, or an
//! unterminated quote) is taken for a truncated upload.

use super::records::{RecordDecoder, RecordError};
use super::source::{delimiter, row_has_keyword, split_record, RawBatch, SourceHeader, SourceMsg, SourceTx};
use crate::config::environment::LimitSettings;
use crate::config::pipeline::{Encoding, SourceSpec};
use crate::error::{Error, Result};
use bytes::Bytes;
use tokio::sync::mpsc;

/// Bytes that are not valid in the source's encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Offset of the first invalid byte in the file.
    pub offset: u64,
    /// The encoding the file was decoded as.
    pub encoding: &'static str,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "bytes at offset {} are not valid {} (a cut or corrupt file, or the wrong source.encoding)",
            self.offset, self.encoding
        )
    }
}

/// Streaming transcoder to UTF-8. Invalid input is an error naming its byte offset, never a
/// replacement character.
pub struct Transcoder {
    declared: Encoding,
    decoder: Option<encoding_rs::Decoder>,
    sniffed: bool,
    pending: Vec<u8>,
    /// Bytes of the file handed to the decoder so far.
    decoded: u64,
}

impl Transcoder {
    pub fn new(declared: Encoding) -> Self {
        Self { declared, decoder: None, sniffed: false, pending: Vec::new(), decoded: 0 }
    }

    /// True once the input is known to be UTF-8: later chunks are used as they are.
    pub fn passes_through(&self) -> bool {
        self.sniffed && self.decoder.is_none()
    }

    /// Transcodes a chunk; `last` marks the end of the input.
    pub fn push(&mut self, chunk: &[u8], last: bool, out: &mut Vec<u8>) -> Result<(), DecodeError> {
        if !self.sniffed {
            self.pending.extend_from_slice(chunk);
            if self.pending.len() < 3 && !last {
                return Ok(());
            }
            self.sniffed = true;
            let bom = encoding_rs::Encoding::for_bom(&self.pending).map(|(e, _)| e);
            let encoding = match (self.declared, bom) {
                (Encoding::Utf16le, _) => Some(encoding_rs::UTF_16LE),
                (Encoding::Windows1252, _) => Some(encoding_rs::WINDOWS_1252),
                (_, Some(e)) if e != encoding_rs::UTF_8 => Some(e),
                _ => None,
            };
            // `new_decoder_with_bom_removal` strips a BOM of the chosen encoding.
            self.decoder = Some(match encoding {
                Some(e) => e.new_decoder_with_bom_removal(),
                None => encoding_rs::UTF_8.new_decoder_with_bom_removal(),
            });
            let utf8 = encoding.is_none();
            let pending = std::mem::take(&mut self.pending);
            if utf8 {
                // UTF-8 passes through untouched (Arrow validates it); only a BOM is removed.
                let body = pending.strip_prefix(&[0xEF, 0xBB, 0xBF][..]).unwrap_or(&pending);
                out.extend_from_slice(body);
                self.decoder = None;
                return Ok(());
            }
            return self.decode(&pending, last, out);
        }
        match self.decoder.is_some() {
            true => self.decode(chunk, last, out),
            false => {
                out.extend_from_slice(chunk);
                Ok(())
            }
        }
    }

    fn decode(&mut self, input: &[u8], last: bool, out: &mut Vec<u8>) -> Result<(), DecodeError> {
        use encoding_rs::DecoderResult;
        let decoder = self.decoder.as_mut().expect("decoder chosen");
        let mut input = input;
        loop {
            let need = decoder.max_utf8_buffer_length_without_replacement(input.len()).unwrap_or(input.len() * 3 + 16);
            let start = out.len();
            out.resize(start + need, 0);
            let (result, read, written) = decoder.decode_to_utf8_without_replacement(input, &mut out[start..], last);
            out.truncate(start + written);
            input = &input[read..];
            self.decoded += read as u64;
            match result {
                DecoderResult::InputEmpty => return Ok(()),
                DecoderResult::OutputFull => {}
                DecoderResult::Malformed(bad, after) => {
                    let offset = self.decoded.saturating_sub(bad as u64 + after as u64);
                    return Err(DecodeError { offset, encoding: decoder.encoding().name() });
                }
            }
        }
    }
}

/// Reads a text source from a channel of byte chunks and sends header and batches to `tx`.
/// Runs on a blocking thread.
pub fn read_text(
    file: &str,
    spec: &SourceSpec,
    batch_rows: usize,
    limits: &LimitSettings,
    mut chunks: mpsc::Receiver<Result<Bytes>>,
    tx: SourceTx,
) {
    let result = (|| -> Result<()> {
        let mut transcoder = Transcoder::new(spec.encoding);
        let mut utf8 = Vec::with_capacity(1 << 20);
        let mut fresh = Vec::with_capacity(1 << 20);
        let mut blank_lines = BlankLineMarker::default();
        let delim = delimiter(spec);
        let mut decoder: Option<RecordDecoder> = None;
        let mut done = false;
        while !done {
            let chunk = match chunks.blocking_recv() {
                Some(c) => c?,
                None => {
                    done = true;
                    Bytes::new()
                }
            };
            // A UTF-8 chunk without blank lines is decoded where it is, once the text before it is.
            let mut in_place = false;
            let invalid = |e: DecodeError| Error::source_file(file, e.to_string());
            if decoder.is_none() {
                transcoder.push(&chunk, done, &mut utf8).map_err(invalid)?;
            } else if transcoder.passes_through() {
                in_place = utf8.is_empty() && blank_lines.pass(&chunk);
                if !in_place {
                    blank_lines.mark(&chunk, &mut utf8);
                }
            } else {
                fresh.clear();
                transcoder.push(&chunk, done, &mut fresh).map_err(invalid)?;
                blank_lines.mark(&fresh, &mut utf8);
            }
            if decoder.is_none() {
                match find_header(file, spec, &utf8, done, limits.max_line_bytes)? {
                    None => continue,
                    Some((h, consumed)) => {
                        decoder = Some(
                            RecordDecoder::new(delim, h.names.len(), batch_rows, h.header_row + 1)
                                .with_limits(limits.max_field_bytes, limits.max_line_bytes),
                        );
                        let rest = utf8.split_off(consumed);
                        utf8.clear();
                        blank_lines.mark(&rest, &mut utf8);
                        if tx.blocking_send(Ok(SourceMsg::Header(h))).is_err() {
                            return Ok(());
                        }
                    }
                }
            }
            let Some(decoder) = decoder.as_mut() else { continue };
            let emit = |decoder: &mut RecordDecoder| -> Result<bool> {
                let Some((columns, first_row)) = decoder.flush().map_err(|e| structure_error(file, e))? else {
                    return Ok(true);
                };
                let rows = columns.first().map_or(0, |c| c.len());
                let raw = RawBatch { columns, rows, first_row };
                Ok(tx.blocking_send(Ok(SourceMsg::Batch(raw))).is_ok())
            };
            // Decodes all it can of `text`, handing over each full batch; returns the bytes
            // decoded, or `None` when the reader has gone.
            let feed = |decoder: &mut RecordDecoder, text: &[u8]| -> Result<Option<usize>> {
                let mut offset = 0;
                while offset < text.len() {
                    let consumed = decoder.decode(&text[offset..]).map_err(|e| structure_error(file, e))?;
                    offset += consumed;
                    if decoder.is_full() {
                        if !emit(decoder)? {
                            return Ok(None);
                        }
                    } else if consumed == 0 {
                        break;
                    }
                }
                Ok(Some(offset))
            };
            let Some(offset) = feed(decoder, &utf8)? else { return Ok(()) };
            utf8.drain(..offset);
            if in_place {
                let Some(offset) = feed(decoder, &chunk)? else { return Ok(()) };
                utf8.extend_from_slice(&chunk[offset..]);
            }
            if done {
                // An empty slice tells the decoder the input has ended (completing a last line
                // without a newline).
                loop {
                    decoder.decode(&[]).map_err(|e| structure_error(file, e))?;
                    let full = decoder.is_full();
                    if !emit(decoder)? {
                        return Ok(());
                    }
                    if !full {
                        break;
                    }
                }
            }
        }
        if decoder.is_none() {
            return Err(Error::source_file(file, "file is empty"));
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = tx.blocking_send(Err(e));
    }
}

/// Keeps blank lines as records so that source row numbers stay true.
///
/// Arrow's CSV decoder skips empty lines, which would shift the row number of every later
/// record. The marker turns each blank line outside quotes into a line holding one space: a record
/// whose fields are all blank, which normalisation skips as blank (it is not counted as a row in)
/// but which keeps its place in the numbering. Whether a newline is inside quotes is the parity of
/// the quote characters before it (an escaped `""` counts twice), tracked across chunks. Chunks
/// without a blank line take a fast path that only counts quotes.
#[derive(Debug)]
struct BlankLineMarker {
    in_quotes: bool,
    at_line_start: bool,
}

impl Default for BlankLineMarker {
    fn default() -> Self {
        Self { in_quotes: false, at_line_start: true }
    }
}

impl BlankLineMarker {
    /// True if `input` holds no blank line, so needs no marking: the state then moves past it.
    /// False (the state unchanged) if it must go through [`mark`](Self::mark).
    fn pass(&mut self, input: &[u8]) -> bool {
        if input.is_empty() {
            return true;
        }
        let starts_blank = self.at_line_start && matches!(input[0], b'\n' | b'\r');
        if starts_blank
            || memchr::memmem::find(input, b"\n\n").is_some()
            || memchr::memmem::find(input, b"\n\r\n").is_some()
        {
            return false;
        }
        let quotes = memchr::memchr_iter(b'"', input).count();
        self.in_quotes ^= quotes % 2 == 1;
        // As `mark` would leave it: carriage returns change nothing, and a line starts after a
        // newline outside quotes (nothing but carriage returns can follow that newline here).
        match input.iter().rev().find(|b| **b != b'\r') {
            None => {}
            Some(b'\n') => self.at_line_start = !self.in_quotes,
            Some(_) => self.at_line_start = false,
        }
        true
    }

    /// Appends `input` to `out` with each blank line outside quotes given a space.
    fn mark(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if self.pass(input) {
            out.extend_from_slice(input);
            return;
        }
        out.reserve(input.len() + 16);
        for (i, &b) in input.iter().enumerate() {
            match b {
                b'"' => self.in_quotes = !self.in_quotes,
                b'\n' if self.at_line_start && !self.in_quotes => {
                    // A blank CRLF line gets its space before the `\r`.
                    match out.last() {
                        Some(b'\r') if i > 0 => out.insert(out.len() - 1, b' '),
                        _ => out.push(b' '),
                    }
                }
                _ => {}
            }
            out.push(b);
            if b == b'\n' && !self.in_quotes {
                self.at_line_start = true;
            } else if b != b'\r' {
                self.at_line_start = false;
            }
        }
    }
}

fn structure_error(file: &str, e: RecordError) -> Error {
    Error::SourceValue { file: file.to_string(), row: e.row, column: "(row structure)".into(), reason: e.reason }
}

/// Looks for the header in the decoded prefix. Returns the header and how many bytes of `text`
/// it and the title lines occupy, or `None` if more input is needed.
fn find_header(
    file: &str,
    spec: &SourceSpec,
    text: &[u8],
    eof: bool,
    max_line: usize,
) -> Result<Option<(SourceHeader, usize)>> {
    let h = &spec.header;
    let delim = delimiter(spec);
    if eof && text.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::source_file(file, "file is empty"));
    }
    let mut lines: Vec<&[u8]> = Vec::new();
    let mut ends: Vec<usize> = Vec::new();
    let mut start = 0;
    for (i, b) in text.iter().enumerate() {
        if *b == b'\n' {
            lines.push(&text[start..i]);
            ends.push(i + 1);
            start = i + 1;
        }
    }
    if eof && start < text.len() {
        lines.push(&text[start..]);
        ends.push(text.len());
    }
    // A line over the limit is rejected before it is held whole (or split into names).
    let long = lines.iter().position(|l| l.len() > max_line);
    if long.is_some() || text.len() - start > max_line {
        let line = long.unwrap_or(lines.len()) + 1;
        return Err(Error::source_file(
            file,
            format!("line {line} is longer than {max_line} bytes (limits.max_line_bytes): not a delimited text file?"),
        ));
    }
    let line_offset = |l: &[u8]| l.as_ptr() as usize - text.as_ptr() as usize;
    let as_str = |l: &[u8]| -> Result<String> {
        std::str::from_utf8(l).map(|s| s.trim_end_matches('\r').to_string()).map_err(|e| {
            let offset = line_offset(l) + e.valid_up_to();
            Error::source_file(
                file,
                format!("text at offset {offset} is not valid UTF-8; declare source.encoding in the pipeline"),
            )
        })
    };
    if h.none {
        let Some(first) = lines.first() else {
            return if eof { Err(Error::source_file(file, "file is empty")) } else { Ok(None) };
        };
        let width = split_record(&as_str(first)?, delim).len();
        let header = SourceHeader { names: vec![String::new(); width], header_row: 0, ..Default::default() };
        return Ok(Some((header, 0)));
    }
    let index = match (&h.keyword, h.offset) {
        (Some(keyword), _) => {
            let mut found = None;
            for (i, line) in lines.iter().enumerate().take(h.scan_rows) {
                let cells = split_record(&as_str(line)?, delim);
                if row_has_keyword(cells.iter().map(String::as_str), keyword) {
                    found = Some(i);
                    break;
                }
            }
            match found {
                Some(i) => i,
                None if eof || lines.len() >= h.scan_rows => {
                    return Err(Error::source_file(
                        file,
                        format!("no header row containing '{keyword}' in the first {} lines", h.scan_rows),
                    ))
                }
                None => return Ok(None),
            }
        }
        (None, offset) => {
            let offset = offset.unwrap_or(0);
            if lines.len() <= offset {
                return if eof {
                    Err(Error::source_file(file, format!("file has no header line at offset {offset}")))
                } else {
                    Ok(None)
                };
            }
            offset
        }
    };
    let names = split_record(&as_str(lines[index])?, delim);
    let title_lines = lines[..index].iter().map(|l| as_str(l)).collect::<Result<Vec<_>>>()?;
    let header = SourceHeader { names, title_lines, header_row: index as u64 + 1, ..Default::default() };
    Ok(Some((header, ends[index])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};

    fn transcode(encoding: Encoding, bytes: &[u8], chunk: usize) -> String {
        let mut t = Transcoder::new(encoding);
        let mut out = Vec::new();
        let chunks: Vec<&[u8]> = bytes.chunks(chunk).collect();
        for (i, c) in chunks.iter().enumerate() {
            t.push(c, i + 1 == chunks.len(), &mut out).unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn utf16le_with_bom_in_odd_chunks() {
        let mut bytes = vec![0xFF, 0xFE];
        for u in "Organisation Code\tNumerator\nA81001\t1,234\n".encode_utf16() {
            bytes.extend_from_slice(&u.to_le_bytes());
        }
        for chunk in [1, 3, 7, 1000] {
            assert_eq!(transcode(Encoding::Auto, &bytes, chunk), "Organisation Code\tNumerator\nA81001\t1,234\n");
        }
    }

    #[test]
    fn invalid_utf16_is_an_error_at_its_offset_never_a_replacement() {
        let mut bytes = vec![0xFF, 0xFE];
        for u in "a,b\n1,2\n".encode_utf16() {
            bytes.extend_from_slice(&u.to_le_bytes());
        }
        let push_all = |bytes: &[u8], chunk: usize| {
            let mut t = Transcoder::new(Encoding::Auto);
            let mut out = Vec::new();
            let chunks: Vec<&[u8]> = bytes.chunks(chunk).collect();
            chunks.iter().enumerate().try_for_each(|(i, c)| t.push(c, i + 1 == chunks.len(), &mut out)).map(|_| out)
        };
        for chunk in [1, 2, 3, 1000] {
            let mut odd = bytes.clone();
            odd.push(b'x');
            assert_eq!(push_all(&odd, chunk).unwrap_err().offset, bytes.len() as u64, "odd byte count");
            let mut lone = bytes.clone();
            lone.splice(4..6, [0x00, 0xD8]); // a high surrogate with no low one after it
            let e = push_all(&lone, chunk).unwrap_err();
            assert_eq!((e.offset, e.encoding), (4, "UTF-16LE"), "lone surrogate");
            assert!(push_all(&bytes, chunk).is_ok());
        }
    }

    fn marked(chunks: &[&str]) -> String {
        let mut m = BlankLineMarker::default();
        let mut out = Vec::new();
        for c in chunks {
            m.mark(c.as_bytes(), &mut out);
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn blank_lines_keep_their_place_outside_quotes_only() {
        assert_eq!(marked(&["a,b\n", "\nc,d\n"]), "a,b\n \nc,d\n");
        assert_eq!(marked(&["\r\na\r\n\r\nb\r\n"]), " \r\na\r\n \r\nb\r\n");
        assert_eq!(marked(&["x,\"multi\n\nline\"\n\n"]), "x,\"multi\n\nline\"\n \n");
        assert_eq!(marked(&["x,\"open\n", "\nstill\"\n"]), "x,\"open\n\nstill\"\n");
        assert_eq!(marked(&["no,blank\n", "lines,here\n"]), "no,blank\nlines,here\n");
        // A blank CRLF line cut after its carriage return (the space goes after the CR, already
        // handed on: a lone CR ends an empty record, which is skipped, then the space's line),
        // and a newline inside quotes at a cut.
        assert_eq!(marked(&["a\n\r", "\nb\n"]), "a\n\r \nb\n");
        assert_eq!(marked(&["x,\"q\n", "\n\"\n"]), "x,\"q\n\n\"\n");
    }

    /// Runs `read_text` over `text` cut into chunks of `chunk` bytes; returns each row as its
    /// source row number and fields.
    fn read_rows(text: &[u8], chunk: usize, batch_rows: usize) -> Vec<(u64, Vec<Option<String>>)> {
        let spec: SourceSpec = toml::from_str("glob = \"*.csv\"\nformat = \"csv\"").unwrap();
        let (chunk_tx, chunk_rx) = mpsc::channel(text.len() / chunk + 2);
        for piece in text.chunks(chunk) {
            chunk_tx.try_send(Ok(Bytes::copy_from_slice(piece))).unwrap();
        }
        drop(chunk_tx);
        let (tx, mut rx) = mpsc::channel(4);
        let limits = LimitSettings::default();
        let reader = std::thread::spawn(move || read_text("t.csv", &spec, batch_rows, &limits, chunk_rx, tx));
        let mut rows = Vec::new();
        while let Some(msg) = rx.blocking_recv() {
            if let SourceMsg::Batch(b) = msg.unwrap() {
                for r in 0..b.rows {
                    let fields = b
                        .columns
                        .iter()
                        .map(|c| c.as_string::<i32>())
                        .map(|c| (!c.is_null(r)).then(|| c.value(r).to_string()));
                    rows.push((b.first_row + r as u64, fields.collect()));
                }
            }
        }
        reader.join().unwrap();
        rows
    }

    #[test]
    fn chunks_decoded_in_place_or_marked_give_the_same_rows() {
        let text = b"id,name\n1,alpha\n2,\"be\nta\"\n\n3,gamma\r\n4,\n\r\n5,caf\xC3\xA9\n6,last";
        let some = |v: &str| Some(v.to_string());
        let want = vec![
            (2, vec![some("1"), some("alpha")]),
            (3, vec![some("2"), some("be\nta")]),
            (4, vec![some(" "), None]),
            (5, vec![some("3"), some("gamma")]),
            (6, vec![some("4"), None]),
            (7, vec![some(" "), None]),
            (8, vec![some("5"), some("café")]),
            (9, vec![some("6"), some("last")]),
        ];
        for chunk in [1, 2, 3, 5, 8, 13, 1000] {
            for batch_rows in [1, 2, 100] {
                assert_eq!(read_rows(text, chunk, batch_rows), want, "chunks of {chunk}, batches of {batch_rows}");
            }
        }
    }

    #[test]
    fn utf8_bom_and_windows_1252() {
        assert_eq!(transcode(Encoding::Auto, b"\xEF\xBB\xBFa,b\n", 2), "a,b\n");
        assert_eq!(transcode(Encoding::Windows1252, b"caf\xE9 \x80\n", 4), "café €\n");
    }
}
