//! A corpus of malformed files: each is rejected whole with a clear reason (recorded in
//! quarantine and the manifest) or has its bad rows quarantined; the run goes on with the other
//! files, and every row read is accounted for.

mod common;

use alliance_warehouse::ingest::FileOutcome;
use common::{pipeline, Workspace};

const CONTRACT: &str = r#"
[load]
mode = "replace_by_period"
period = "month"
scope = ["sender"]

[[columns]]
name = "org"
type = "code"
nullable = false

[[columns]]
name = "month"
type = "month"
nullable = false

[[columns]]
name = "total"
type = "count"
nullable = false

[[derived]]
name = "sender"
from = "file_name"
pattern = "^(?P<value>[a-z0-9_]+)\\."
type = "string"
"#;

#[tokio::test]
async fn malformed_text_files_are_rejected_with_reasons_and_the_rest_loads() {
    let ws = Workspace::local();
    let p = pipeline(&ws, "corpus", &format!("[source]\nglob = \"corpus/*.csv\"\nformat = \"csv\"\n{CONTRACT}"));
    let corpus: &[(&str, &[u8], &str)] = &[
        ("good.csv", b"org,month,total\nR1H,2024-01,5\nRAL,2024-01,7\n", ""),
        ("empty.csv", b"", "empty"),
        ("header_only.csv", b"org,month,total\n", "no data rows"),
        ("missing_column.csv", b"org,month\nR1H,2024-01\n", "missing required column(s) 'total'"),
        ("wrong_delimiter.csv", b"org;month;total\nR1H;2024-01;5\n", "missing required column"),
        ("ragged.csv", b"org,month,total\nR1H,2024-01,5,extra,fields\n", "row 2"),
        ("not_utf8.csv", b"org,month,total\nR\xe9H,2024-01,5\n", "UTF-8"),
        ("duplicate_header.csv", b"org,ORG,month,total\nR1H,R1H,2024-01,5\n", "matches several headers"),
        ("binary.csv", b"\x00\x01\x02PK\x03\x04garbage\xff\xfe", ""),
    ];
    for (name, bytes, _) in corpus {
        ws.land(&format!("corpus/{name}"), bytes.to_vec()).await;
    }
    let reports = ws.ingest(std::slice::from_ref(&p)).await;
    let files = &reports[0].files;
    assert_eq!(files.len(), corpus.len(), "every file is reported");
    for (name, _, expected) in corpus {
        let f = files.iter().find(|f| f.path.ends_with(name)).unwrap();
        match (&f.outcome, *expected) {
            (FileOutcome::Loaded, "") if *name == "good.csv" => assert_eq!(f.counts.rows_written, 2),
            (FileOutcome::Rejected(reason), expected) => {
                assert!(reason.contains(expected), "{name}: reason '{reason}' should mention '{expected}'");
                assert!(reason.contains(name), "{name}: the reason names the file: {reason}");
                let note = ws.stores.warehouse.list("quarantine/corpus/").await.unwrap();
                assert!(note
                    .iter()
                    .any(|m| m.location.as_ref().contains(name) && m.location.as_ref().ends_with(".rejected.json")));
            }
            (FileOutcome::Loaded, _) if *name == "binary.csv" => {
                panic!("binary.csv cannot load: {:?}", f.counts)
            }
            (other, _) => panic!("{name}: unexpected {other:?}"),
        }
        assert!(f.counts.balanced(), "{name}: {:?}", f.counts);
    }
    assert_eq!(ws.rows("corpus").await, 2, "only the good file's rows reach staging");

    // A rejected file stays rejected until it changes; once fixed it loads.
    ws.land("corpus/missing_column.csv", b"org,month,total\nRQX,2024-01,3\n".to_vec()).await;
    let reports = ws.ingest(&[p]).await;
    let fixed = reports[0].files.iter().find(|f| f.path.ends_with("missing_column.csv")).unwrap();
    assert_eq!(fixed.outcome, FileOutcome::Loaded);
    let still = reports[0].files.iter().filter(|f| matches!(f.outcome, FileOutcome::Rejected(_))).count();
    assert_eq!(still, corpus.len() - 2, "unchanged rejected files are still reported as rejected");
    assert_eq!(ws.rows("corpus").await, 3);
}

#[tokio::test]
async fn fixing_the_pipeline_re_reads_files_it_rejected() {
    let ws = Workspace::local();
    let strict = format!("[source]\nglob = \"corpus/*.csv\"\nformat = \"csv\"\n{CONTRACT}");
    let p = pipeline(&ws, "corpus", &strict);
    ws.land("corpus/renamed.csv", b"org,month,patients\nR1H,2024-01,5\n".to_vec()).await;
    let reports = ws.ingest(&[p]).await;
    assert!(matches!(&reports[0].files[0].outcome, FileOutcome::Rejected(r) if r.contains("'total'")));
    // The engineer adds the new header as an alias: the same landing file now loads.
    let fixed = strict.replace("name = \"total\"\n", "name = \"total\"\naliases = [\"patients\"]\n");
    let p = pipeline(&ws, "corpus", &fixed);
    let reports = ws.ingest(std::slice::from_ref(&p)).await;
    assert_eq!(reports[0].files[0].outcome, FileOutcome::Loaded);
    assert_eq!(ws.rows("corpus").await, 1);
    let reports = ws.ingest(&[p]).await;
    assert_eq!(reports[0].files[0].outcome, FileOutcome::Unchanged);
}

#[tokio::test]
async fn malformed_workbooks_and_parquet_are_rejected() {
    let ws = Workspace::local();
    let xlsx = pipeline(
        &ws,
        "books",
        &format!("[source]\nglob = \"books/*.xlsx\"\nformat = \"xlsx\"\nsheet = \"Data\"\nheader = {{ keyword = \"org\" }}\n{CONTRACT}"),
    );
    let parquet =
        pipeline(&ws, "tables", &format!("[source]\nglob = \"tables/*.parquet\"\nformat = \"parquet\"\n{CONTRACT}"));
    let mut book = rust_xlsxwriter::Workbook::new();
    book.add_worksheet().set_name("Other").unwrap().write_string(0, 0, "org").unwrap();
    let wrong_sheet = book.save_to_buffer().unwrap();
    let mut book = rust_xlsxwriter::Workbook::new();
    book.add_worksheet().set_name("Data").unwrap().write_string(0, 0, "nothing here").unwrap();
    let no_header = book.save_to_buffer().unwrap();
    ws.land("books/truncated.xlsx", wrong_sheet[..wrong_sheet.len() / 2].to_vec()).await;
    ws.land("books/wrong_sheet.xlsx", wrong_sheet).await;
    ws.land("books/no_header.xlsx", no_header).await;
    ws.land("tables/garbage.parquet", b"PAR1 this is not parquet PAR1".to_vec()).await;
    let reports = ws.ingest(&[xlsx, parquet]).await;
    let reason = |path: &str| {
        let f = reports.iter().flat_map(|r| &r.files).find(|f| f.path.ends_with(path)).unwrap();
        match &f.outcome {
            FileOutcome::Rejected(r) => r.clone(),
            other => panic!("{path}: {other:?}"),
        }
    };
    assert!(reason("truncated.xlsx").contains("not a readable xlsx"), "{}", reason("truncated.xlsx"));
    assert!(reason("wrong_sheet.xlsx").contains("no sheet named 'Data' (sheets: Other)"));
    assert!(reason("no_header.xlsx").contains("no header row containing 'org'"));
    assert!(reason("garbage.parquet").contains("not a readable Parquet"));
    assert!(ws.read_parquet("staging/").await.is_empty(), "nothing from rejected files is written");
}

#[tokio::test]
async fn a_file_name_that_does_not_give_the_derived_value_is_rejected() {
    let ws = Workspace::local();
    let p = pipeline(&ws, "corpus", &format!("[source]\nglob = \"corpus/*.csv\"\nformat = \"csv\"\n{CONTRACT}"));
    ws.land("corpus/UPPER CASE.csv", b"org,month,total\nR1H,2024-01,5\n".to_vec()).await;
    let reports = ws.ingest(&[p]).await;
    match &reports[0].files[0].outcome {
        FileOutcome::Rejected(r) => assert!(r.contains("derived column 'sender'"), "{r}"),
        other => panic!("{other:?}"),
    }
}
