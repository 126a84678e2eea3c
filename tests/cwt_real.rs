//! The real NHS England CWT CRS extracts (`../shared/data/cwt`), read as published.
//!
//! Expected figures were computed independently from the same workbooks with openpyxl (Python)
//! and agree with NHS England's published national series (e.g. 28-day FDS April 2023: 215,274
//! told, 153,593 within, 71.3%).

mod common;

use alliance_warehouse::ingest::FileOutcome;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Date32Type;
use common::{only, shared, sum_f64, text, Workspace};

const PROVIDER: &str = "CWT-CRS-Apr-2023-to-Sep-2023-Data-Extract-Provider-Provisional.xlsx";
const COMMISSIONER: &str = "CWT-CRS-Apr-23-to-Oct-23-Data-Extract-ICB-Sub-Location.xlsx";

fn month(b: &RecordBatch, row: usize) -> String {
    let days = b.column_by_name("period").unwrap().as_primitive::<Date32Type>().value(row);
    alliance_warehouse::ingest::dates::month_key(days)
}

/// (total, within, breaches) for a month and standard, with the CWT summing rule: FDS sums
/// every row, 31- and 62-day sum only `ALL MODALITIES` rows.
fn national(batches: &[RecordBatch], period: &str, standard: &str) -> (f64, f64, f64) {
    let keep = |b: &RecordBatch, i: usize| {
        month(b, i) == period
            && text(b, "standard", i).as_deref() == Some(standard)
            && (standard == "28-day FDS" || text(b, "treatment_modality", i).as_deref() == Some("ALL MODALITIES"))
    };
    (sum_f64(batches, "total", keep), sum_f64(batches, "within_standard", keep), sum_f64(batches, "breaches", keep))
}

#[tokio::test]
async fn provider_extract_loads_every_row_with_national_totals() {
    let ws = Workspace::local();
    ws.land_file(&shared().join("cwt").join(PROVIDER), &format!("cwt/{PROVIDER}")).await;
    let reports = ws.ingest(&only(&["cwt_provider"])).await;
    let file = &reports[0].files[0];
    assert_eq!(file.outcome, FileOutcome::Loaded);
    assert_eq!(file.counts.rows_in, 51_509);
    assert_eq!(file.counts.rows_written, 51_509);
    assert_eq!(file.counts.rows_quarantined + file.counts.rows_dropped, 0);
    // One staging object per month, Apr–Sep 2023.
    let periods: Vec<&str> = file.outputs.iter().map(|o| o.period.as_str()).collect();
    assert_eq!(periods, ["2023-04", "2023-05", "2023-06", "2023-07", "2023-08", "2023-09"]);

    let batches = ws.table("cwt_provider").await;
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 51_509);
    assert_eq!(national(&batches, "2023-04", "28-day FDS"), (215_274.0, 153_593.0, 61_681.0));
    assert_eq!(national(&batches, "2023-04", "31-day Combined"), (43_806.0, 39_227.0, 4_579.0));
    assert_eq!(national(&batches, "2023-04", "62-day Combined"), (19_514.0, 12_613.0, 6_901.0));
    // Half counts survive (shared 62-day patients).
    assert_eq!(national(&batches, "2023-09", "62-day Combined"), (22_747.5, 14_403.5, 8_344.0));
    assert_eq!(national(&batches, "2023-09", "28-day FDS"), (258_858.0, 180_534.0, 78_324.0));

    // Typed values: financial year normalised, codes upper-case, FDS rows have no modality.
    let b = &batches[0];
    assert_eq!(text(b, "financial_year", 0).as_deref(), Some("2023/24"));
    let fds_modality_nulls = batches
        .iter()
        .flat_map(|b| (0..b.num_rows()).map(move |i| (b, i)))
        .filter(|(b, i)| text(b, "standard", *i).as_deref() == Some("28-day FDS"))
        .all(|(b, i)| b.column_by_name("treatment_modality").unwrap().is_null(i));
    assert!(fds_modality_nulls, "FDS rows carry no treatment modality");
}

#[tokio::test]
async fn commissioner_extract_reconciles_with_provider_basis() {
    let ws = Workspace::local();
    ws.land_file(&shared().join("cwt").join(COMMISSIONER), &format!("cwt/{COMMISSIONER}")).await;
    let reports = ws.ingest(&only(&["cwt_commissioner"])).await;
    let file = &reports[0].files[0];
    assert_eq!(file.outcome, FileOutcome::Loaded);
    assert_eq!((file.counts.rows_in, file.counts.rows_written), (7_127, 7_127));
    assert_eq!(file.outputs.len(), 7, "Apr–Oct 2023");
    let batches = ws.table("cwt_commissioner").await;
    // The commissioner basis sums every row; April 2023 matches the provider basis exactly.
    let all = |period: &'static str, standard: &'static str| {
        move |b: &RecordBatch, i: usize| month(b, i) == period && text(b, "standard", i).as_deref() == Some(standard)
    };
    assert_eq!(sum_f64(&batches, "total", all("2023-04", "28-day FDS")), 215_274.0);
    assert_eq!(sum_f64(&batches, "within_standard", all("2023-04", "31-day Combined")), 39_227.0);
    assert_eq!(sum_f64(&batches, "breaches", all("2023-04", "62-day Combined")), 6_901.0);
}

#[tokio::test]
async fn a_final_extract_replaces_the_provisional_months_it_covers() {
    let ws = Workspace::local();
    let bytes = std::fs::read(shared().join("cwt").join(PROVIDER)).unwrap();
    ws.land("cwt/CWT-CRS-Provider-Provisional.xlsx", bytes.clone()).await;
    ws.ingest(&only(&["cwt_provider"])).await;
    assert_eq!(ws.rows("cwt_provider").await, 51_509);
    // The "final" revision of the same months arrives as a second file (other bytes, the same
    // figures): the months are replaced, not appended, so national totals do not double.
    ws.land("cwt/CWT-CRS-Provider-Final.xlsx", with_zip_comment(bytes)).await;
    let reports = ws.ingest(&only(&["cwt_provider"])).await;
    let outcomes: Vec<&FileOutcome> = reports[0].files.iter().map(|f| &f.outcome).collect();
    assert_eq!(outcomes, [&FileOutcome::Unchanged, &FileOutcome::Loaded]);
    assert_eq!(ws.rows("cwt_provider").await, 51_509);
    let batches = ws.table("cwt_provider").await;
    assert_eq!(national(&batches, "2023-04", "28-day FDS").0, 215_274.0);
}

/// The workbook with a comment in its zip directory: other bytes (so not an identical copy,
/// which is recognised by its hash), the same sheets.
fn with_zip_comment(mut bytes: Vec<u8>) -> Vec<u8> {
    let end = bytes.len() - 22;
    assert_eq!(&bytes[end..end + 4], b"PK\x05\x06", "end of central directory without a comment");
    let comment = b"final revision";
    bytes[end + 20..end + 22].copy_from_slice(&(comment.len() as u16).to_le_bytes());
    bytes.extend_from_slice(comment);
    bytes
}
