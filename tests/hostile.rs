//! Hostile and broken landing files (issue 14), generated here beside the demo's good extracts:
//! files without a header, with CR-only lines, cut mid-row or inside a quote, a 200 MiB line,
//! overlong fields, invalid UTF-16, XLSX zip bombs, a sparse-grid workbook, Parquet with a
//! nested column, names of 250 bytes or with a newline, symbolic links to the key file, loops,
//! a pipe, near-miss names and a file whose every row is quarantined.
//!
//! Each is the file's own outcome: rejected with a reason (or skipped, never opened, for entries
//! that are not regular files), while every good file loads and, through the binary, the marts
//! are built and published with exit code 0. No NHS number from the inputs and no key material
//! appears in any warehouse object, state file or the log; the run's peak memory stays under
//! 1 GiB with the default limits.

mod common;

use alliance_warehouse::generate::{self, GenerateArgs};
use alliance_warehouse::ingest::{FileOutcome, PipelineReport};
use arrow::array::{Array, AsArray};
use common::{only, Workspace};
use std::io::Write;
use std::path::Path;

const PIPELINES: [&str; 5] =
    ["trust_pathways_r1h", "trust_pathways_ral", "trust_pathways_rqx", "trust_pathways_rrv", "screening_coverage"];

/// What a hostile entry must come to.
#[derive(Debug, Clone)]
enum Expect {
    /// Rejected, the reason mentioning this.
    Rejected(&'static str),
    /// Skipped without being opened, the reason mentioning this.
    Skipped(&'static str),
    /// Loaded (a file that is odd but readable).
    Loaded,
    /// Loaded with every row quarantined (logged at WARN).
    AllQuarantined,
    /// Not read, reported as a near miss of a pipeline.
    NearMiss,
}

struct Case {
    path: String,
    expect: Expect,
}

/// The key file beside landing (as `make` keeps `.local/pseudo.key`), and its hex key.
const KEY_HEX: &str = "5f1c0ffee0ddba11c0de5eed5a1ad0b5e55ed1e5cafef00dfacadebeadedbabe";

fn file(root: &Path, path: &str, bytes: impl AsRef<[u8]>) {
    let at = root.join(path);
    std::fs::create_dir_all(at.parent().unwrap()).unwrap();
    std::fs::write(at, bytes).unwrap();
}

fn read_only_file(root: &Path, prefix: &str) -> (String, Vec<u8>) {
    let dir = root.join(prefix);
    let entry = std::fs::read_dir(&dir).unwrap().flatten().find(|e| e.file_type().unwrap().is_file()).unwrap();
    (format!("{prefix}/{}", entry.file_name().to_str().unwrap()), std::fs::read(entry.path()).unwrap())
}

/// Writes the hostile corpus into the landing folder `root` (which already holds the generated
/// good extracts, read here as material); returns what each entry must come to.
fn land_corpus(root: &Path, key_file: &Path) -> Vec<Case> {
    let (_, ral) = read_only_file(root, "trusts/RAL");
    let (_, rqx) = read_only_file(root, "trusts/RQX");
    let (rrv_path, rrv) = read_only_file(root, "trusts/RRV");
    let (_, screening) = read_only_file(root, "screening");
    let ral_text = String::from_utf8(ral.clone()).unwrap();
    let ral_lines: Vec<&str> = ral_text.lines().collect();
    let (header, rows) = (ral_lines[0], &ral_lines[1..]);
    let mut cases = Vec::new();
    let add = |cases: &mut Vec<Case>, path: String, bytes: Option<Vec<u8>>, expect: Expect| {
        if let Some(bytes) = bytes {
            file(root, &path, bytes);
        }
        cases.push(Case { path, expect });
    };
    let ral_name = |tag: &str| format!("trusts/RAL/RAL_cancer_pathways_{tag}_2023-01.csv");
    use Expect::*;

    // Leaks: data where the header should be.
    add(&mut cases, ral_name("noheader"), Some(rows.join("\n").into_bytes()), Rejected("missing required column"));
    add(&mut cases, ral_name("cronly"), Some(ral_text.replace('\n', "\r").into_bytes()), Rejected("RAL_cancer"));
    let numbers_as_header = format!("{}\n{}\n", rows[0], rows[1]);
    add(&mut cases, ral_name("dataheader"), Some(numbers_as_header.into_bytes()), Rejected("not shown"));
    // A 200 MiB line without a newline, and an overlong field and record after the header.
    add(&mut cases, ral_name("hugeline"), Some(vec![b'9'; 200 << 20]), Rejected("max_line_bytes"));
    let long_field = format!("{header}\n{}{}\n", "x".repeat(2 << 20), &rows[0][rows[0].find(',').unwrap()..]);
    add(&mut cases, ral_name("longfield"), Some(long_field.into_bytes()), Rejected("max_field_bytes"));
    let quoted_record = format!("{header}\n\"{}\n", "y".repeat(6 << 20));
    add(&mut cases, ral_name("longquote"), Some(quoted_record.into_bytes()), Rejected("max_line_bytes"));
    // Truncated uploads: cut mid-row at several places, and inside an open quote.
    for (i, row) in rows.iter().enumerate().skip(3).step_by(37).take(12) {
        let cut = row.match_indices(',').nth(1 + i % 10).map(|(at, _)| at).unwrap();
        let text = format!("{header}\n{}\n{}", rows[..i].join("\n"), &row[..cut]);
        add(&mut cases, ral_name(&format!("cut{i}")), Some(text.into_bytes()), Rejected("looks truncated"));
    }
    let open_quote =
        format!("{header}\n{}\n{},\"Head and Neck, upper", rows[0], rows[1].rsplitn(8, ',').last().unwrap());
    add(&mut cases, ral_name("openquote"), Some(open_quote.into_bytes()), Rejected("unterminated quote"));
    // Broken structure and encodings.
    add(&mut cases, ral_name("ragged"), Some(format!("{header}\n{},x,y\n", rows[0]).into_bytes()), Rejected("fields"));
    let mut latin1 = format!("{header}\n{}\n", rows[0]).into_bytes();
    let n = latin1.len();
    latin1[n - 3] = 0xE9;
    add(&mut cases, ral_name("latin1"), Some(latin1), Rejected("UTF-8"));
    add(&mut cases, ral_name("empty"), Some(vec![]), Rejected("empty"));
    add(&mut cases, ral_name("headeronly"), Some(format!("{header}\n").into_bytes()), Rejected("no data rows"));
    for i in 0..10u64 {
        let mut rng = alliance_warehouse::generate::rng::Rng::new(i, "garbage");
        let bytes: Vec<u8> = (0..4096 + i * 1000).map(|_| rng.below(256) as u8).collect();
        add(&mut cases, ral_name(&format!("garbage{i}")), Some(bytes), Rejected("RAL_cancer"));
    }
    // Every row quarantined: the NHS numbers are all invalid.
    let bad_numbers: Vec<String> = rows[..20]
        .iter()
        .map(|r| {
            let mut f: Vec<&str> = r.split(',').collect();
            f[1] = "0000000001";
            f.join(",")
        })
        .collect();
    let all_bad = format!("{header}\n{}\n", bad_numbers.join("\n"));
    add(&mut cases, "trusts/RAL/RAL_cancer_pathways_2023-02.csv".into(), Some(all_bad.into_bytes()), AllQuarantined);
    // Names: 250 bytes, unicode and spaces, a newline; near misses.
    let long_name = format!("trusts/RAL/RAL_cancer_pathways_{}_2023-03.csv", "n".repeat(250 - 32));
    add(&mut cases, long_name, Some(format!("{header}\n").into_bytes()), Rejected("no data rows"));
    add(&mut cases, ral_name("ünï cödé ☃"), Some(format!("{header}\n").into_bytes()), Rejected("no data rows"));
    add(&mut cases, ral_name("new\nline"), Some(ral.clone()), Skipped("control characters"));
    add(&mut cases, "trusts/RAL/RAL_cancer_pathways_2023-04.CSV".into(), Some(ral.clone()), NearMiss);
    add(&mut cases, "trusts/RAL_cancer_pathways_2023-04.csv".into(), Some(ral.clone()), NearMiss);
    // Links and special files: never followed, never opened.
    let link = |cases: &mut Vec<Case>, path: String, target: &Path| {
        std::os::unix::fs::symlink(target, root.join(&path)).unwrap();
        cases.push(Case { path, expect: Skipped("symbolic link") });
    };
    link(&mut cases, ral_name("keylink"), key_file);
    link(&mut cases, ral_name("etc"), Path::new("/etc/passwd"));
    link(&mut cases, ral_name("inside"), &root.join(read_only_file(root, "trusts/RAL").0));
    link(&mut cases, ral_name("dangling"), &root.join("nowhere.csv"));
    link(&mut cases, ral_name("loopa"), &root.join(ral_name("loopb")));
    link(&mut cases, ral_name("loopb"), &root.join(ral_name("loopa")));
    link(&mut cases, "trusts/RQX/Homerton_cancer_KEY-23.tsv".into(), key_file);
    let fifo = ral_name("fifo");
    let made = std::process::Command::new("mkfifo").arg(root.join(&fifo)).status().unwrap();
    assert!(made.success());
    cases.push(Case { path: fifo, expect: Skipped("not a regular file") });

    // Windows-1252 TSV: cut, headerless, garbage.
    let rqx_text: Vec<&[u8]> = rqx.split(|b| *b == b'\n').collect();
    let rqx_cut = [&rqx[..rqx.len() - rqx_text[rqx_text.len() - 2].len() / 2 - 1]].concat();
    add(&mut cases, "trusts/RQX/Homerton_cancer_JAN-23.tsv".into(), Some(rqx_cut), Rejected("looks truncated"));
    add(
        &mut cases,
        "trusts/RQX/Homerton_cancer_FEB-23.tsv".into(),
        Some(rqx_text[1..].join(&b'\n')),
        Rejected("missing required column"),
    );
    add(&mut cases, "trusts/RQX/Homerton_cancer_MAR-23.tsv".into(), Some(vec![0u8; 5000]), Rejected("Homerton"));

    // UTF-16 screening exports: an odd byte count, a lone surrogate, a cut in the middle.
    let screening_name = |tag: &str| format!("screening/screening_coverage_{tag}_2023-01.tsv");
    let mut odd = screening.clone();
    odd.push(0x41);
    add(&mut cases, screening_name("odd"), Some(odd), Rejected("not valid UTF-16LE"));
    let mut lone = screening.clone();
    let at = (lone.len() / 2) & !1;
    lone.splice(at..at + 2, [0x00, 0xDC]);
    add(&mut cases, screening_name("surrogate"), Some(lone), Rejected("not valid UTF-16LE"));
    let cut = screening[..(screening.len() * 2 / 3) | 1].to_vec();
    add(&mut cases, screening_name("cut"), Some(cut), Rejected("UTF-16LE"));

    // Workbooks: zip bombs (size and ratio), a sparse grid, truncated, not a zip.
    let r1h = |tag: &str| format!("trusts/R1H/Barts_PTL_{tag}.xlsx");
    add(&mut cases, r1h("bomb"), Some(zip_of("xl/worksheets/sheet1.xml", 900 << 20)), Rejected("max_xlsx_sheet_bytes"));
    add(&mut cases, r1h("ratio"), Some(deflated("xl/sharedStrings.xml", 8 << 20)), Rejected("max_xlsx_zip_ratio"));
    add(&mut cases, r1h("grid"), Some(sparse_grid()), Rejected("spans 1048576 rows"));
    let (_, book) = read_only_file(root, "trusts/R1H");
    add(&mut cases, r1h("half"), Some(book[..book.len() / 2].to_vec()), Rejected("not a readable xlsx"));
    add(&mut cases, r1h("text"), Some(b"not,a,workbook\n".to_vec()), Rejected("not a readable xlsx"));

    // Parquet: a nested column beside the good ones loads (the nested column is left out);
    // truncated or garbage is rejected.
    let nested_name = rrv_path.replace("uclh_pathways_", "uclh_pathways_nested_");
    add(&mut cases, nested_name, Some(with_struct_column(&rrv)), Loaded);
    add(
        &mut cases,
        "trusts/RRV/uclh_pathways_half_2023-01.parquet".into(),
        Some(rrv[..rrv.len() / 2].to_vec()),
        Rejected("Parquet"),
    );
    add(
        &mut cases,
        "trusts/RRV/uclh_pathways_junk_2023-01.parquet".into(),
        Some(b"PAR1 junk PAR1".to_vec()),
        Rejected("Parquet"),
    );
    cases
}

/// A valid zip archive whose one part is `size` spaces, deflated by hand (a fixed-Huffman block:
/// one literal, then matches of 258 bytes at distance 1): a bomb of a few MiB built in
/// milliseconds, where a debug-built deflater takes a minute.
fn zip_of(part: &str, size: usize) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u64,
        n: u32,
    }
    impl Bits {
        fn put(&mut self, value: u64, bits: u32) {
            self.acc |= value << self.n;
            self.n += bits;
            while self.n >= 8 {
                self.out.push(self.acc as u8);
                (self.acc, self.n) = (self.acc >> 8, self.n - 8);
            }
        }
        /// A Huffman code, most significant bit first.
        fn code(&mut self, code: u64, bits: u32) {
            (0..bits).rev().for_each(|i| self.put((code >> i) & 1, 1));
        }
    }
    let mut b = Bits { out: Vec::with_capacity(size / 150), acc: 0, n: 0 };
    b.put(1, 1); // the last block
    b.put(1, 2); // fixed Huffman codes
    b.code(0x30 + b' ' as u64, 8);
    let (matches, rest) = ((size - 1) / 258, (size - 1) % 258);
    for _ in 0..matches {
        b.code(0xC5, 8); // length 258 (symbol 285)
        b.code(0, 5); // distance 1
    }
    (0..rest).for_each(|_| b.code(0x30 + b' ' as u64, 8));
    b.code(0, 7); // end of block
    b.put(0, 7);
    let data = b.out;
    let mut crc = crc32fast::Hasher::new();
    let mib = {
        let mut h = crc32fast::Hasher::new();
        h.update(&vec![b' '; 1 << 20]);
        h
    };
    (0..size >> 20).for_each(|_| crc.combine(&mib));
    crc.update(&vec![b' '; size & ((1 << 20) - 1)]);
    let crc = crc.finalize();
    let name = part.as_bytes();
    let mut z: Vec<u8> = Vec::new();
    let fixed = |z: &mut Vec<u8>| {
        z.extend(20u16.to_le_bytes()); // version needed
        z.extend(0u16.to_le_bytes()); // flags
        z.extend(8u16.to_le_bytes()); // deflated
        z.extend([0, 0, 0x21, 0]); // 1980-01-01 00:00
        z.extend(crc.to_le_bytes());
        z.extend((data.len() as u32).to_le_bytes());
        z.extend((size as u32).to_le_bytes());
        z.extend((name.len() as u16).to_le_bytes());
        z.extend(0u16.to_le_bytes()); // extra field
    };
    z.extend(0x04034b50u32.to_le_bytes());
    fixed(&mut z);
    z.extend(name);
    z.extend(&data);
    let directory = z.len();
    z.extend(0x02014b50u32.to_le_bytes());
    z.extend(20u16.to_le_bytes()); // made by
    fixed(&mut z);
    z.extend([0u8; 12]); // comment, disk, internal and external attributes
    z.extend(0u32.to_le_bytes()); // the local header's offset
    z.extend(name);
    let directory_len = z.len() - directory;
    z.extend(0x06054b50u32.to_le_bytes());
    z.extend([0, 0, 0, 0, 1, 0, 1, 0]);
    z.extend((directory_len as u32).to_le_bytes());
    z.extend((directory as u32).to_le_bytes());
    z.extend(0u16.to_le_bytes());
    z
}

/// A zip archive with one part of `size` spaces, deflated by the zip crate (about 1000-fold).
fn deflated(part: &str, size: usize) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    w.start_file(part, options).unwrap();
    w.write_all(&vec![b' '; size]).unwrap();
    w.finish().unwrap().into_inner()
}

/// A real workbook whose PTL sheet has a cell at A1 and one at the last row and column.
fn sparse_grid() -> Vec<u8> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet().set_name("PTL").unwrap();
    sheet.write_string(0, 0, "Pathway ID").unwrap();
    sheet.write_string(1_048_575, 16_383, "far").unwrap();
    book.save_to_buffer().unwrap()
}

/// The Parquet file with a struct column added.
fn with_struct_column(bytes: &[u8]) -> Vec<u8> {
    use arrow::array::{ArrayRef, Int64Array, RecordBatch, StructArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes.to_vec()))
            .unwrap()
            .build()
            .unwrap();
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
    let inner = Field::new("x", DataType::Int64, true);
    let mut fields: Vec<Field> = batches[0].schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("extra", DataType::Struct(vec![inner.clone()].into()), true));
    let schema = Arc::new(Schema::new(fields));
    let mut out = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, schema.clone(), None).unwrap();
    for b in &batches {
        let x: ArrayRef = Arc::new(Int64Array::from_iter_values(0..b.num_rows() as i64));
        let s: ArrayRef = Arc::new(StructArray::from(vec![(Arc::new(inner.clone()), x)]));
        let mut columns = b.columns().to_vec();
        columns.push(s);
        w.write(&RecordBatch::try_new(schema.clone(), columns).unwrap()).unwrap();
    }
    w.close().unwrap();
    out
}

/// Checks every case against the reports.
fn check_outcomes(cases: &[Case], reports: &[PipelineReport]) {
    let files: Vec<_> = reports.iter().flat_map(|r| &r.files).collect();
    let shown = |path: &str| alliance_warehouse::ingest::redact::name(path);
    for case in cases {
        let found = files.iter().find(|f| f.path == case.path || f.path == shown(&case.path));
        match (&case.expect, found.map(|f| &f.outcome)) {
            (Expect::Rejected(why), Some(FileOutcome::Rejected(reason)))
            | (Expect::Skipped(why), Some(FileOutcome::Skipped(reason))) => {
                assert!(reason.contains(why), "{}: reason '{reason}' should mention '{why}'", case.path)
            }
            (Expect::Loaded, Some(FileOutcome::Loaded)) => {}
            (Expect::AllQuarantined, Some(FileOutcome::Loaded)) => {
                let c = found.unwrap().counts;
                assert!(c.rows_written == 0 && c.rows_quarantined == 20, "{}: {c:?}", case.path);
            }
            (Expect::NearMiss, None) => {
                let miss = reports.iter().flat_map(|r| &r.near_misses).any(|m| m.path == case.path);
                assert!(miss, "{} is reported as a near miss", case.path);
            }
            (expect, got) => panic!("{}: expected {expect:?}, got {got:?}", case.path),
        }
    }
}

/// Every ten-digit run in text (spaces removed), as NHS numbers would appear.
fn ten_digit_windows(text: &str, out: &mut std::collections::HashSet<String>) {
    let compact: String = text.chars().filter(|c| *c != ' ').collect();
    let bytes = compact.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        let run = bytes[start..].iter().take_while(|b| b.is_ascii_digit()).count();
        for w in bytes[start..start + run].windows(10) {
            out.insert(String::from_utf8(w.to_vec()).unwrap());
        }
        start += run.max(1);
    }
}

/// Folders of landing that `seed` fills with NHS England's and OHID's published aggregates: no
/// patient is in them, and their long decimals (OHID's `74.1300381784972`) hold ten-digit runs
/// that the staged values rightly repeat, so they are not where NHS numbers come from.
const PUBLISHED: [&str; 5] = ["cwt/", "cwt-extracts/", "cwt-workbooks/", "reference/", "screening/ohid/"];

/// The valid NHS numbers in the landing files: text in any encoding, the cells of workbooks and
/// Parquet files (the hostile bombs and the published aggregates excepted).
fn input_nhs_numbers(root: &Path) -> std::collections::HashSet<String> {
    let mut windows = std::collections::HashSet::new();
    for entry in walk(root) {
        let relative = entry.strip_prefix(root).unwrap_or(&entry).to_string_lossy().replace('\\', "/");
        if PUBLISHED.iter().any(|p| relative.starts_with(p)) {
            continue;
        }
        let Ok(bytes) = std::fs::read(&entry) else { continue };
        let name = entry.display().to_string();
        if bytes.len() > 50 << 20 || ["bomb", "ratio", "grid"].iter().any(|b| name.contains(b)) {
            continue;
        }
        if name.ends_with(".parquet") {
            for t in parquet_texts(bytes) {
                ten_digit_windows(&t, &mut windows);
            }
            continue;
        }
        if name.ends_with(".xlsx") {
            use calamine::Reader;
            let Ok(mut book) = calamine::Xlsx::new(std::io::Cursor::new(bytes)) else { continue };
            for sheet in book.sheet_names() {
                let Ok(range) = book.worksheet_range(&sheet) else { continue };
                for cell in range.used_cells() {
                    ten_digit_windows(&cell.2.to_string(), &mut windows);
                }
            }
            continue;
        }
        let text = if bytes.starts_with(&[0xFF, 0xFE]) {
            let units: Vec<u16> = bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
            String::from_utf16_lossy(&units)
        } else {
            String::from_utf8_lossy(&bytes).into_owned()
        };
        ten_digit_windows(&text, &mut windows);
    }
    windows.retain(|n| alliance_warehouse::ingest::nhs::validate(n).is_ok());
    windows
}

fn walk(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                dirs.push(e.path());
            } else if t.is_file() {
                out.push(e.path());
            }
        }
    }
    out
}

/// Every text the warehouse holds: Parquet cells cast to text, other objects as bytes.
fn warehouse_texts(root: &Path) -> Vec<String> {
    let mut texts = Vec::new();
    for path in walk(root) {
        let bytes = std::fs::read(&path).unwrap();
        texts.push(path.display().to_string());
        if path.extension().is_some_and(|e| e == "parquet") {
            texts.extend(parquet_texts(bytes));
        } else {
            texts.push(String::from_utf8_lossy(&bytes).into_owned());
        }
    }
    texts
}

/// Every cell of a Parquet file as text (none if it is not readable Parquet).
fn parquet_texts(bytes: Vec<u8>) -> Vec<String> {
    let mut texts = Vec::new();
    let Ok(builder) = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
    else {
        return texts;
    };
    for batch in builder.build().unwrap().flatten() {
        for col in batch.columns() {
            if let Ok(s) = arrow::compute::cast(col, &arrow::datatypes::DataType::Utf8) {
                let s = s.as_string::<i32>();
                texts.extend((0..s.len()).filter(|i| !s.is_null(*i)).map(|i| s.value(i).to_string()));
            }
        }
    }
    texts
}

/// Asserts no input NHS number and no key material is in any of `texts`.
fn assert_nothing_leaked(texts: &[String], numbers: &std::collections::HashSet<String>, key_file: &[u8]) {
    let mut windows = std::collections::HashSet::new();
    for t in texts {
        ten_digit_windows(t, &mut windows);
    }
    let leaked: Vec<&String> = numbers.iter().filter(|n| windows.contains(*n)).collect();
    assert!(leaked.is_empty(), "{} input NHS numbers found, e.g. {:?}", leaked.len(), leaked.first());
    let key_text = String::from_utf8_lossy(key_file);
    for t in texts {
        assert!(!t.contains(KEY_HEX) && !t.contains(key_text.trim()), "key material found");
    }
}

#[tokio::test]
async fn each_hostile_file_is_its_own_outcome_and_nothing_leaks() {
    let ws = Workspace::local();
    let args = GenerateArgs { rows: 2_000, months: 1, start: "2024-01".into(), ..GenerateArgs::default() };
    generate::run(&args, &ws.stores.landing).await.unwrap();
    let key_file = ws.dir.path().join(".local/pseudo.key");
    file(ws.dir.path(), ".local/pseudo.key", KEY_HEX);
    let t = std::time::Instant::now();
    let cases = land_corpus(&ws.landing_dir(), &key_file);
    eprintln!("corpus landed in {:?}", t.elapsed());
    assert!(cases.len() >= 60, "{} hostile entries", cases.len());
    let numbers = input_nhs_numbers(&ws.landing_dir());
    assert!(numbers.len() > 1000, "the inputs carry NHS numbers: {}", numbers.len());

    let pipelines = only(&PIPELINES);
    let t = std::time::Instant::now();
    let reports = ws.try_ingest(&pipelines, false).await.expect("one bad file never stops the run");
    eprintln!("ingested in {:?}", t.elapsed());
    check_outcomes(&cases, &reports);
    // Every good extract loaded.
    for r in &reports {
        let good = r.files.iter().filter(|f| !f.path.contains("2023") && !f.path.contains("nested"));
        for f in good.filter(|f| !cases.iter().any(|c| c.path == f.path)) {
            assert_eq!(f.outcome, FileOutcome::Loaded, "{}: {}", r.pipeline, f.path);
        }
    }
    // Reasons and state are small: nothing of the 200 MiB line was copied.
    let state = walk(&ws.warehouse_dir().join("_state"));
    for path in &state {
        assert!(std::fs::metadata(path).unwrap().len() < 1 << 20, "{} is small", path.display());
    }
    let mut texts = warehouse_texts(&ws.warehouse_dir());
    texts.push(serde_json::to_string(&reports).unwrap());
    assert_nothing_leaked(&texts, &numbers, KEY_HEX.as_bytes());

    // The next run reads nothing new and fails on nothing.
    let again = ws.try_ingest(&pipelines, false).await.expect("a second run goes through too");
    assert!(again.iter().flat_map(|r| &r.files).all(|f| !matches!(f.outcome, FileOutcome::Loaded)));
}

#[test]
fn the_hand_made_bomb_is_a_valid_archive() {
    let bytes = zip_of("xl/sharedStrings.xml", (3 << 20) + 77);
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut part = archive.by_index(0).unwrap();
    let mut all = Vec::new();
    std::io::Read::read_to_end(&mut part, &mut all).unwrap();
    assert!(all.len() == (3 << 20) + 77 && all.iter().all(|b| *b == b' '), "inflates to what it declares");
}

/// The binary under test: `ALLIANCE_TEST_BIN` when set (a copy taken right after building, where
/// other worktrees share the target folder and rebuild `alliance` under a running test), else
/// Cargo's.
fn binary() -> std::path::PathBuf {
    std::env::var_os("ALLIANCE_TEST_BIN").map(Into::into).unwrap_or_else(|| env!("CARGO_BIN_EXE_alliance").into())
}

/// Peak resident memory of a finished child, from `/usr/bin/time -v`, in KiB.
fn peak_rss_kib(stderr: &str) -> u64 {
    let line = stderr.lines().find(|l| l.contains("Maximum resident set size")).expect("time -v output");
    line.rsplit(':').next().unwrap().trim().parse().unwrap()
}

#[test]
fn one_run_over_the_corpus_publishes_the_marts_and_exits_0() {
    let dir = common::workdir();
    let shared = common::shared();
    common::alliance_ok(dir.path(), &["seed", "--from", shared.to_str().unwrap()]);
    common::alliance_ok(dir.path(), &["generate", "--rows", "2000", "--start", "2024-01", "--months", "1"]);
    let key_file = dir.path().join(".local/pseudo.key");
    file(dir.path(), ".local/pseudo.key", KEY_HEX);
    let landing = dir.path().join("landing");
    let cases = land_corpus(&landing, &key_file);
    assert!(cases.len() >= 60);
    let numbers = input_nhs_numbers(&landing);

    let time = Path::new("/usr/bin/time");
    assert!(time.exists(), "GNU time measures the run's peak memory");
    let out = std::process::Command::new(time)
        .arg("-v")
        .arg(binary())
        .args(["--config-dir", "config", "--pipelines-dir", "pipelines", "--env", "test", "run"])
        .current_dir(dir.path())
        .env(common::TEST_KEY_ENV, KEY_HEX)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "exit 0: marts published, bad files recorded\n{stdout}\n{log}");
    let peak = peak_rss_kib(&log);
    eprintln!("peak RSS of the corpus run: {} MiB", peak / 1024);
    assert!(peak < 1 << 20, "peak RSS {peak} KiB is under 1 GiB");

    // The marts were published from what loaded.
    let marts: Vec<_> = std::fs::read_dir(dir.path().join("warehouse/marts"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "parquet"))
        .collect();
    assert!(!marts.is_empty(), "marts published\n{stdout}");
    // The run record has every bad file with its reason.
    let runs = walk(&dir.path().join("warehouse/_state/runs"));
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(&runs[0]).unwrap()).unwrap();
    assert!(record["error"].is_null(), "{}", record["error"]);
    let pipelines = record["pipelines"].as_array().expect("pipelines are recorded");
    let files: Vec<&serde_json::Value> = pipelines.iter().flat_map(|p| p["files"].as_array().unwrap()).collect();
    for case in &cases {
        let shown = alliance_warehouse::ingest::redact::name(&case.path);
        let found = files.iter().find(|f| f["path"] == case.path.as_str() || f["path"] == shown.as_str());
        match (&case.expect, found) {
            (Expect::Rejected(_) | Expect::Skipped(_), Some(f)) => {
                assert!(f["reason"].as_str().is_some_and(|r| !r.is_empty()), "{}: {f}", case.path)
            }
            (Expect::Loaded | Expect::AllQuarantined, Some(f)) => assert_eq!(f["outcome"], "loaded", "{}", case.path),
            (Expect::NearMiss, None) => {
                let misses = pipelines.iter().flat_map(|p| p["near_misses"].as_array().cloned().unwrap_or_default());
                assert!(misses.into_iter().any(|m| m["path"] == case.path.as_str()), "{}", case.path);
                assert!(log.contains("near miss"), "near misses are warned about");
            }
            (expect, got) => panic!("{}: expected {expect:?}, got {got:?}", case.path),
        }
    }
    assert!(log.contains("WARN") && log.contains("every row was quarantined"), "all-quarantined files warn");
    // Nothing personal or secret anywhere: warehouse objects, state, the log, the summary.
    let mut texts = warehouse_texts(&dir.path().join("warehouse"));
    texts.push(log.clone());
    texts.push(stdout.clone());
    assert_nothing_leaked(&texts, &numbers, KEY_HEX.as_bytes());
    // Later runs and status are quick and fine.
    let status = std::process::Command::new(binary())
        .args(["--config-dir", "config", "--pipelines-dir", "pipelines", "--env", "test", "status"])
        .current_dir(dir.path())
        .env(common::TEST_KEY_ENV, KEY_HEX)
        .output()
        .unwrap();
    assert_eq!(status.status.code(), Some(0), "{}", String::from_utf8_lossy(&status.stderr));
    let shown = String::from_utf8_lossy(&status.stdout);
    assert!(
        shown.contains("RAL_cancer_pathways_2023-04.CSV (pipeline trust_pathways_ral"),
        "near misses in status:\n{shown}"
    );
    assert!(shown.contains("symbolic link"), "skipped entries in status:\n{shown}");
}
