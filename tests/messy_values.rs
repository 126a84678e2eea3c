//! Every messy value form the spec lists, each encoding, header by keyword and offset, title
//! cells, totals rows and null tokens, through the real ingestion path.

mod common;

use alliance_warehouse::ingest::dates::days_from_civil;
use alliance_warehouse::ingest::FileOutcome;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Float64Type, Int64Type};
use common::{pipeline, text, Workspace};

const MESSY: &str = r#"
[source]
glob = "messy/*.csv"
format = "csv"
header = { keyword = "Org" }

[load]
mode = "append"

[[columns]]
name = "org"
type = "code"
nullable = false

[[columns]]
name = "count"
aliases = ["Count (patients)"]
type = "count"

[[columns]]
name = "pct"
aliases = ["Performance"]
type = "percent"

[[columns]]
name = "amount"
type = "number"

[[columns]]
name = "seen"
type = "date"
formats = ["dd_mm_yyyy", "excel_serial", "dd_mon_yyyy", "yyyymmdd"]

[[columns]]
name = "month"
type = "month"

[[columns]]
name = "fy"
type = "financial_year"

[[columns]]
name = "flag"
type = "boolean"

[[drop_rows]]
column = "org"
values = ["Total", "ALL ROUTES"]
reason = "totals"
"#;

fn day(y: i32, m: u32, d: u32) -> i32 {
    days_from_civil(y, m, d).unwrap()
}

#[tokio::test]
async fn each_messy_form_parses_to_its_type() {
    let ws = Workspace::local();
    let p = pipeline(&ws, "messy", MESSY);
    let csv = "Extract produced 01/02/2024\n\
               \n\
               Org,Count (patients),Performance,Amount,Seen,Month,FY,Flag\n\
               r1h,\"1,234\",72.3%,\"1,234.5\",31/01/2024,January 2024,2023/24,Y\n\
               RAL,0.5,72.3,-3,45322,JAN-24,2023-24,no\n\
               rqx,6.5,100 %,1e3,31-Jan-2024,2024-01,2023/2024,TRUE\n\
               RRV,*,-,[E],20240131,Jan 2024,202324,0\n\
               \n\
               RF4,[DS],.., ,2024-01-31,2024-01-17,2023/24,n\n\
               Total,\"8,000\",70%,0,,,,\n\
               ALL ROUTES,1,1%,0,,,,\n";
    ws.land("messy/a.csv", csv).await;
    let reports = ws.ingest(&[p]).await;
    let f = &reports[0].files[0];
    assert_eq!(f.outcome, FileOutcome::Loaded, "{:?}", f.outcome);
    assert_eq!(
        (f.counts.rows_in, f.counts.rows_written, f.counts.rows_dropped, f.counts.rows_quarantined),
        (7, 5, 2, 0)
    );
    let b: RecordBatch = ws.table("messy").await.remove(0);
    let f64s = |c: &str| b.column_by_name(c).unwrap().as_primitive::<Float64Type>().clone();
    let count = f64s("count");
    assert_eq!((count.value(0), count.value(1), count.value(2)), (1234.0, 0.5, 6.5));
    assert!(count.is_null(3) && count.is_null(4), "* and [DS] are nulls");
    let pct = f64s("pct");
    assert!((pct.value(0) - 0.723).abs() < 1e-12 && (pct.value(1) - 0.723).abs() < 1e-12);
    assert_eq!(pct.value(2), 1.0);
    assert!(pct.is_null(3) && pct.is_null(4));
    let amount = f64s("amount");
    assert_eq!((amount.value(0), amount.value(1), amount.value(2)), (1234.5, -3.0, 1000.0));
    assert!(amount.is_null(3) && amount.is_null(4));
    let seen = b.column_by_name("seen").unwrap().as_primitive::<Date32Type>();
    assert!((0..5).all(|i| seen.value(i) == day(2024, 1, 31)), "dd/mm/yyyy, Excel serial, dd-Mon-yyyy, yyyymmdd, ISO");
    let month = b.column_by_name("month").unwrap().as_primitive::<Date32Type>();
    assert!((0..5).all(|i| month.value(i) == day(2024, 1, 1)), "Month YYYY, MON-YY, YYYY-MM, Mon YYYY, a date");
    assert!((0..5).all(|i| text(&b, "fy", i).as_deref() == Some("2023/24")));
    let flag = b.column_by_name("flag").unwrap().as_boolean();
    assert_eq!((0..5).map(|i| flag.value(i)).collect::<Vec<_>>(), [true, false, true, false, false]);
    assert_eq!(text(&b, "org", 0).as_deref(), Some("R1H"), "codes are upper-cased");
    // Provenance: source row numbers as an editor shows them (header is line 3).
    let rows = b.column_by_name("_source_row").unwrap().as_primitive::<Int64Type>();
    assert_eq!((0..5).map(|i| rows.value(i)).collect::<Vec<_>>(), [4, 5, 6, 7, 9]);
}

#[tokio::test]
async fn bad_values_are_quarantined_with_row_column_and_reason() {
    let ws = Workspace::local();
    let p = pipeline(&ws, "messy", MESSY);
    let csv = "Org,Count (patients),Performance,Amount,Seen,Month,FY,Flag\n\
               R1H,0.3,72.3%,1,31/01/2024,January 2024,2023/24,Y\n\
               ,1,1%,1,31/01/2024,January 2024,2023/24,Y\n\
               RAL,1,abc%,\"12,34\",31/02/2024,Smarch 2024,2023/25,maybe\n\
               RQX,1,1%,1,31/01/2024,January 2024,2023/24,Y\n";
    ws.land("messy/bad.csv", csv).await;
    let reports = ws.ingest(&[p]).await;
    let f = &reports[0].files[0];
    assert_eq!((f.counts.rows_in, f.counts.rows_written, f.counts.rows_quarantined), (4, 1, 3));
    let quarantine = ws.read_parquet("quarantine/messy/").await;
    assert_eq!(quarantine.len(), 1);
    let q = &quarantine[0].1[0];
    let reasons: Vec<(i64, String, String)> = (0..q.num_rows())
        .map(|i| {
            let row = q.column_by_name("source_row").unwrap().as_primitive::<Int64Type>().value(i);
            (row, text(q, "column", i).unwrap(), text(q, "reason", i).unwrap())
        })
        .collect();
    let has = |row: i64, column: &str, words: &str| {
        reasons.iter().any(|(r, c, why)| *r == row && c == column && why.contains(words))
    };
    assert!(has(2, "count", "halves"), "{reasons:?}");
    assert!(has(3, "org", "required value is missing"), "{reasons:?}");
    assert!(has(4, "pct", "not a percentage"));
    assert!(has(4, "amount", "not a number"));
    assert!(has(4, "seen", "not a date"));
    assert!(has(4, "month", "not a date"));
    assert!(has(4, "fy", "financial year"));
    assert!(has(4, "flag", "yes/no"));
    assert!(text(q, "source_file", 0).unwrap().ends_with("messy/bad.csv"));
    // The bad raw value is kept for the analyst to see.
    assert!((0..q.num_rows()).any(|i| text(q, "value", i).as_deref() == Some("Smarch 2024")));
}

const SCREENING_LIKE: &str = r#"
[source]
glob = "enc/*.tsv"
format = "tsv"
encoding = "ENCODING"
header = { offset = 1 }

[load]
mode = "full_replace"

[[columns]]
name = "org"
aliases = ["Organisation Code"]
type = "code"
nullable = false

[[columns]]
name = "name"
aliases = ["Organisation Name"]
type = "string"

[[columns]]
name = "numerator"
aliases = ["Numerator"]
type = "integer"

[[derived]]
name = "title"
from = "title_cell"
line = 0
pattern = "export (?P<value>\\d{4}-\\d{2})"
type = "month"
"#;

async fn ingest_encoded(encoding: &str, bytes: Vec<u8>) -> (Workspace, RecordBatch) {
    let ws = Workspace::local();
    let p = pipeline(&ws, "enc", &SCREENING_LIKE.replace("ENCODING", encoding));
    ws.land("enc/file.tsv", bytes).await;
    let reports = ws.ingest(&[p]).await;
    assert_eq!(reports[0].files[0].outcome, FileOutcome::Loaded, "{encoding}: {:?}", reports[0].files[0].outcome);
    let b = ws.table("enc").await.remove(0);
    (ws, b)
}

const TEXT: &str = "Coverage export 2024-03 \u{2013} practices\r\nOrganisation Code\tOrganisation Name\tNumerator\r\nF84001\tSt Jude\u{2019}s Café\t1,234\r\nF84002\tNaïve Health\t-\r\n";

#[tokio::test]
async fn utf16le_with_bom_and_a_title_line() {
    let mut bytes = vec![0xFF, 0xFE];
    TEXT.encode_utf16().for_each(|u| bytes.extend_from_slice(&u.to_le_bytes()));
    for encoding in ["utf16le", "auto"] {
        let (_ws, b) = ingest_encoded(encoding, bytes.clone()).await;
        assert_eq!(b.num_rows(), 2);
        assert_eq!(text(&b, "name", 0).as_deref(), Some("St Jude\u{2019}s Café"));
        assert_eq!(b.column_by_name("numerator").unwrap().as_primitive::<Int64Type>().value(0), 1234);
        let title = b.column_by_name("title").unwrap().as_primitive::<Date32Type>().value(0);
        assert_eq!(title, day(2024, 3, 1), "month derived from the title line");
    }
}

#[tokio::test]
async fn utf16le_without_bom_when_declared() {
    let bytes: Vec<u8> = TEXT.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    let (_ws, b) = ingest_encoded("utf16le", bytes).await;
    assert_eq!(text(&b, "name", 1).as_deref(), Some("Naïve Health"));
}

#[tokio::test]
async fn utf8_bom_and_windows_1252() {
    let mut bom = vec![0xEF, 0xBB, 0xBF];
    bom.extend_from_slice(TEXT.as_bytes());
    let (_ws, b) = ingest_encoded("auto", bom).await;
    assert_eq!(text(&b, "org", 0).as_deref(), Some("F84001"), "BOM is not part of the first header");
    let (cp1252, _, unmappable) = encoding_rs::WINDOWS_1252.encode(TEXT);
    assert!(!unmappable);
    let (_ws, b) = ingest_encoded("windows-1252", cp1252.into_owned()).await;
    assert_eq!(text(&b, "name", 0).as_deref(), Some("St Jude\u{2019}s Café"));
}

#[tokio::test]
async fn column_aliases_match_across_revisions() {
    let ws = Workspace::local();
    let p = pipeline(&ws, "enc", &SCREENING_LIKE.replace("ENCODING", "utf8"));
    // A later revision renamed a column (matched case- and space-insensitively, `_` as space).
    ws.land("enc/file.tsv", "t export 2024-04\nORGANISATION_CODE\t  organisation   name \tNUMERATOR\nA1\tx\t5\n").await;
    let reports = ws.ingest(&[p]).await;
    assert_eq!(reports[0].files[0].outcome, FileOutcome::Loaded, "{:?}", reports[0].files[0].outcome);
    assert_eq!(ws.rows("enc").await, 1);
}
