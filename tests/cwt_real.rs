//! The real NHS England CWT CRS extracts (`../shared/data/cwt`, `../shared/data/cwt-extracts`),
//! read as published, through staging and `mart_cwt_performance` on both bases.
//!
//! Expected figures were computed independently from the same workbooks with openpyxl (Python)
//! and agree with NHS England's published national series (e.g. 28-day FDS April 2023: 215,274
//! told, 153,593 within, 71.3%; February 2025: 80.2%; March 2025: FDS 78.9%, 62-day 71.4%).

mod common;

use alliance_warehouse::ingest::FileOutcome;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Date32Type;
use common::{build, load_reference, only, repo, shared, sum_f64, text, Workspace};
use std::collections::HashMap;

const PROVIDER: &str = "CWT-CRS-Apr-2023-to-Sep-2023-Data-Extract-Provider-Provisional.xlsx";
const COMMISSIONER: &str = "CWT-CRS-Apr-23-to-Oct-23-Data-Extract-ICB-Sub-Location.xlsx";
const PROVIDER_2024: &str = "CWT-CRS-Apr-2024-to-Sep-2024-Data-Extract-Provider-Final.xlsx";
const PROVIDER_2025: &str = "CWT-CRS-Oct-2024-to-Mar-2025-Data-Extract-Provider.xlsx";
const STANDARDS: [&str; 3] = ["28-day FDS", "31-day Combined", "62-day Combined"];

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

/// A total row of `mart_cwt_performance` (route and cancer type 'ALL').
#[derive(Debug, Clone, Copy, PartialEq)]
struct Total {
    total: f64,
    within: f64,
    threshold: Option<f64>,
    ambition: Option<f64>,
}

/// The published mart's total rows by (basis, level, org_code, month, standard).
async fn mart_totals(ws: &Workspace) -> HashMap<(String, String, String, String, String), Total> {
    let bytes = ws.stores.warehouse.get("marts/mart_cwt_performance.parquet").await.expect("the mart is published");
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap().build().unwrap();
    let number = |b: &RecordBatch, column: &str, i: usize| text(b, column, i).map(|v| v.parse::<f64>().unwrap());
    let mut out = HashMap::new();
    for b in reader {
        let b = b.unwrap();
        for i in 0..b.num_rows() {
            if text(&b, "route", i).as_deref() != Some("ALL") || text(&b, "cancer_type", i).as_deref() != Some("ALL") {
                continue;
            }
            let key = ["basis", "level", "org_code", "month", "standard"].map(|c| text(&b, c, i).unwrap());
            let row = Total {
                total: number(&b, "total", i).unwrap(),
                within: number(&b, "within_standard", i).unwrap(),
                threshold: number(&b, "standard_threshold", i),
                ambition: number(&b, "interim_ambition", i),
            };
            let [basis, level, org, month, standard] = key;
            assert!(out.insert((basis, level, org, month, standard), row).is_none(), "one total row per key");
        }
    }
    out
}

fn key(basis: &str, level: &str, org: &str, month: &str, standard: &str) -> (String, String, String, String, String) {
    (basis.into(), level.into(), org.into(), month.into(), standard.into())
}

fn percent(t: &Total) -> f64 {
    (1000.0 * t.within / t.total).round() / 10.0
}

/// April–October 2023, the last months of the standards before October 2023. The provider
/// extract of those months is NHS England's re-cut on the new standards (28-day FDS, 31- and
/// 62-day Combined; no 2WW or 62-day GP rows), so its months carry the FDS standard in force
/// (75%, since October 2021) and no threshold for the combined standards, which start in October
/// 2023. The commissioner basis, by where patients live, gives North East (QMF) and North
/// Central London (QMJ) every month and reconciles with the provider basis for England: every
/// patient has both a treating provider and a commissioner (UNKNOWN included), so the two
/// England totals of a month and standard are the same patients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_months_of_the_old_standards_on_both_bases() {
    let ws = Workspace::local();
    load_reference(&ws).await; // seeds landing with ../shared/data/cwt: both extracts
    ws.ingest(&only(&["cwt_provider", "cwt_commissioner"])).await;
    let report = build(&ws, &repo().join("sql"), Some("+mart_cwt_performance")).await;
    assert!(report.succeeded(), "{:#?}", report.models);
    let mart = mart_totals(&ws).await;

    // England on the provider basis: NHS England's national series (FDS all rows, 31/62-day
    // ALL MODALITIES rows), independently computed from the extract.
    let published: [(&str, [(f64, f64); 3]); 6] = [
        ("2023-04-01", [(215274.0, 153593.0), (43806.0, 39227.0), (19514.0, 12613.0)]),
        ("2023-05-01", [(246948.0, 176082.0), (51282.0, 45680.0), (22999.0, 14350.0)]),
        ("2023-06-01", [(259629.0, 190807.0), (52981.0, 47884.0), (23870.0, 14989.0)]),
        ("2023-07-01", [(252133.0, 186879.0), (49834.0, 45339.0), (22511.0, 14684.0)]),
        ("2023-08-01", [(264533.0, 189443.0), (50767.0, 45857.0), (23351.0, 15370.0)]),
        ("2023-09-01", [(258858.0, 180534.0), (49290.0, 44086.0), (22747.5, 14403.5)]),
    ];
    for (month, figures) in published {
        for (standard, (total, within)) in STANDARDS.into_iter().zip(figures) {
            let provider = mart[&key("provider", "england", "ENG", month, standard)];
            assert_eq!((provider.total, provider.within), (total, within), "{month} {standard}");
            let in_force = (standard == "28-day FDS").then_some(0.75);
            assert_eq!(provider.threshold, in_force, "{month} {standard}: the standard then in force");
            // Reconciliation: the commissioner basis counts the same patients for England.
            let commissioner = mart[&key("commissioner", "england", "ENG", month, standard)];
            assert_eq!((commissioner.total, commissioner.within), (total, within), "{month} {standard}");
        }
    }
    assert_eq!(percent(&mart[&key("provider", "england", "ENG", "2023-04-01", "28-day FDS")]), 71.3);

    // October 2023, the first month of the combined standards: commissioner extract only.
    let october = [(271402.0, 192880.0, 0.75), (52449.0, 46911.0, 0.96), (24371.5, 15375.5, 0.85)];
    for (standard, (total, within, threshold)) in STANDARDS.into_iter().zip(october) {
        let england = mart[&key("commissioner", "england", "ENG", "2023-10-01", standard)];
        assert_eq!((england.total, england.within, england.threshold), (total, within, Some(threshold)), "{standard}");
        assert!(!mart.contains_key(&key("provider", "england", "ENG", "2023-10-01", standard)));
    }

    // ICBs of residence, every month of the commissioner extract, on their ICB codes; figures
    // independently summed from the extract's sub-ICB rows (A3A8R → QMF, 93C → QMJ).
    let months = ["2023-04-01", "2023-05-01", "2023-06-01", "2023-07-01", "2023-08-01", "2023-09-01", "2023-10-01"];
    for month in months {
        for standard in STANDARDS {
            for (icb, alliance) in [("QMF", "North East London"), ("QMJ", "North Central London")] {
                let row = mart.get(&key("commissioner", "icb", icb, month, standard));
                let row = row.unwrap_or_else(|| panic!("{icb} {month} {standard}"));
                assert!(row.total > 0.0);
                assert_eq!(Some(row), mart.get(&key("commissioner", "alliance", alliance, month, standard)));
            }
        }
    }
    let icb = |org: &str, month: &str, standard: &str| {
        let t = mart[&key("commissioner", "icb", org, month, standard)];
        (t.total, t.within)
    };
    assert_eq!(icb("QMF", "2023-04-01", "28-day FDS"), (5527.0, 3953.0));
    assert_eq!(icb("QMJ", "2023-04-01", "28-day FDS"), (5674.0, 3955.0));
    assert_eq!(icb("QMF", "2023-10-01", "31-day Combined"), (1011.0, 955.0));
    assert_eq!(icb("QMJ", "2023-10-01", "31-day Combined"), (930.0, 784.0));
    assert_eq!(icb("QMF", "2023-10-01", "62-day Combined"), (478.0, 287.0));
    assert_eq!(icb("QMJ", "2023-09-01", "62-day Combined"), (474.0, 269.0));
    assert_eq!(mart[&key("commissioner", "sub_icb", "A3A8R", "2023-10-01", "28-day FDS")].total, 6935.0);
}

/// April 2024 – March 2025 (the combined standards and their interim ambitions): England per
/// month and standard equals NHS England's national series, and the headline figures NHS England
/// announced (FDS February 2025 80.2%, March 2025 78.9%; 62-day March 2025 71.4%).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn combined_standards_era_matches_the_national_series() {
    let ws = Workspace::local();
    load_reference(&ws).await;
    // `seed` lands both (cwt-extracts/) beside the April–September 2023 extract (cwt/).
    for file in [PROVIDER_2024, PROVIDER_2025] {
        assert!(ws.stores.landing.get_opt(&format!("cwt-extracts/{file}")).await.unwrap().is_some(), "{file} seeded");
    }
    let reports = ws.ingest(&only(&["cwt_provider"])).await;
    // Every row of both.
    let rows: Vec<(u64, u64)> = reports[0]
        .files
        .iter()
        .filter(|f| f.path.contains("2024-to-"))
        .map(|f| (f.counts.rows_in, f.counts.rows_written))
        .collect();
    assert_eq!(rows, [(61_780, 61_780), (61_649, 61_649)], "every row of both extracts");
    let report = build(&ws, &repo().join("sql"), Some("+mart_cwt_performance")).await;
    assert!(report.succeeded(), "{:#?}", report.models);
    let mart = mart_totals(&ws).await;
    let published: [(&str, [(f64, f64); 3]); 12] = [
        ("2024-04-01", [(269798.0, 197882.0), (55968.0, 49997.0), (27199.0, 18236.0)]),
        ("2024-05-01", [(279276.0, 212902.0), (57221.0, 52549.0), (28060.0, 18574.0)]),
        ("2024-06-01", [(266876.0, 203375.0), (53354.0, 48496.0), (26547.0, 18013.0)]),
        ("2024-07-01", [(294616.0, 224491.0), (60665.0, 55789.0), (29924.0, 20361.0)]),
        ("2024-08-01", [(262448.0, 198214.0), (54551.0, 50046.0), (27156.0, 18869.0)]),
        ("2024-09-01", [(264312.0, 197899.0), (54863.0, 49695.0), (26685.0, 17991.0)]),
        ("2024-10-01", [(289035.0, 222888.0), (59694.0, 54627.0), (28704.0, 19564.0)]),
        ("2024-11-01", [(265161.0, 205136.0), (54312.0, 49408.0), (26689.0, 18534.0)]),
        ("2024-12-01", [(244078.0, 190571.0), (50696.0, 46401.0), (25594.0, 18256.0)]),
        ("2025-01-01", [(266289.0, 195366.0), (58622.0, 52058.0), (28219.0, 18992.0)]),
        ("2025-02-01", [(253556.0, 203371.0), (52833.0, 48475.0), (25753.0, 17244.0)]),
        ("2025-03-01", [(275403.0, 217366.0), (55153.0, 50423.0), (27162.5, 19389.5)]),
    ];
    for (month, figures) in published {
        for (standard, (total, within)) in STANDARDS.into_iter().zip(figures) {
            let england = mart[&key("provider", "england", "ENG", month, standard)];
            assert_eq!((england.total, england.within), (total, within), "{month} {standard}");
            let threshold = [0.75, 0.96, 0.85][STANDARDS.iter().position(|s| *s == standard).unwrap()];
            assert_eq!(england.threshold, Some(threshold), "{month} {standard}: the standard in force");
            // The planning-guidance ambitions for March 2025: FDS 77%, 62-day 70%.
            let ambition = match (month, standard) {
                ("2025-03-01", "28-day FDS") => Some(0.77),
                ("2025-03-01", "62-day Combined") => Some(0.70),
                _ => None,
            };
            assert_eq!(england.ambition, ambition, "{month} {standard}");
        }
    }
    let pct = |month: &str, standard: &str| percent(&mart[&key("provider", "england", "ENG", month, standard)]);
    assert_eq!(pct("2025-02-01", "28-day FDS"), 80.2);
    assert_eq!(pct("2025-03-01", "28-day FDS"), 78.9);
    assert_eq!(pct("2025-03-01", "62-day Combined"), 71.4);
    // North Middlesex (RAP) joined the Royal Free (RAL) in January 2025: no RAP rows, one series.
    assert!(!mart.keys().any(|k| k.2 == "RAP"));
    assert!(mart.contains_key(&key("provider", "provider", "RAL", "2025-03-01", "62-day Combined")));
}
