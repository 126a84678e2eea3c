//! NHS England's monthly CWT workbooks (`../shared/data/cwt-workbooks`), loaded by the
//! `cwt_provider_workbook`, `cwt_commissioner_workbook` and `cwt_referrals_seen` pipelines.
//!
//! The oracle is what the workbooks print themselves, read here directly with calamine (not
//! through the pipeline code): the England totals row (`ALL ENGLISH PROVIDERS` /
//! `ALL ENGLISH COMMISSIONERS`) of the roll-up sheets and parts the pipelines do not read (all
//! routes, all stages, all cancers). The staged rows summed by the extract's rule (FDS every
//! row, 31/62-day the `ALL MODALITIES` rows, or the modality rows) must give those totals, for
//! every workbook, month and standard. The July 2021 and July 2022 commissioner workbooks print
//! no England row; their figures are checked against cells printed for NEL and NCL and against
//! the sum of every data row of the sheet.

mod common;

use alliance_warehouse::ingest::{FileOutcome, PipelineReport};
use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Date32Type;
use calamine::{open_workbook, Data, Reader, Xlsx};
use common::{only, shared, sum_f64, text, Workspace};
use std::collections::BTreeMap;
use std::path::PathBuf;

const MONTHS: [(&str, &str); 5] = [
    ("NOVEMBER-2023", "2023-11"),
    ("DECEMBER-2023", "2023-12"),
    ("JANUARY-2024", "2024-01"),
    ("FEBRUARY-2024", "2024-02"),
    ("MARCH-2024", "2024-03"),
];

fn workbooks() -> PathBuf {
    shared().join("cwt-workbooks")
}

fn month(b: &RecordBatch, row: usize) -> String {
    let days = b.column_by_name("period").unwrap().as_primitive::<Date32Type>().value(row);
    alliance_warehouse::ingest::dates::month_key(days)
}

/// An England totals row as printed: (sheet, column D, column E) → (total, within, after).
type Printed = BTreeMap<(String, String, String), (f64, f64, f64)>;

fn number(cell: Option<&Data>) -> f64 {
    match cell {
        Some(Data::Float(f)) => *f,
        Some(Data::Int(i)) => *i as f64,
        other => panic!("not a number: {other:?}"),
    }
}

fn cell_text(cell: Option<&Data>) -> String {
    match cell {
        Some(Data::String(s)) => s.trim().to_string(),
        Some(Data::Empty) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Every England totals row of a workbook: the TOTAL column of the header above it and the two
/// columns after it (within, after the standard).
fn printed_england(file: &str) -> Printed {
    let mut book: Xlsx<_> = open_workbook(workbooks().join(file)).expect("workbook opens");
    let mut out = Printed::new();
    for sheet in book.sheet_names() {
        let range = book.worksheet_range(&sheet).unwrap();
        let mut total_col = None;
        for row in range.rows() {
            if let Some(j) = row.iter().position(|c| cell_text(Some(c)) == "TOTAL") {
                total_col = Some(j);
            }
            let name = cell_text(row.get(2));
            if name == "ALL ENGLISH PROVIDERS" || name == "ALL ENGLISH COMMISSIONERS" {
                let j = total_col.expect("a header above the England row");
                // The labels between the name and TOTAL: route or stage, then cancer type if any.
                let e = if j > 4 { cell_text(row.get(4)) } else { String::new() };
                let key = (sheet.clone(), cell_text(row.get(3)), e);
                out.insert(key, (number(row.get(j)), number(row.get(j + 1)), number(row.get(j + 2))));
            }
        }
    }
    out
}

fn england(printed: &Printed, sheet: &str, d: &str, e: &str) -> (f64, f64, f64) {
    *printed
        .get(&(sheet.to_string(), d.to_string(), e.to_string()))
        .unwrap_or_else(|| panic!("no England row {sheet} / {d} / {e}"))
}

/// (total, within, breaches) of the staged rows kept by `keep`.
fn sums(batches: &[RecordBatch], keep: impl Fn(&RecordBatch, usize) -> bool) -> (f64, f64, f64) {
    (sum_f64(batches, "total", &keep), sum_f64(batches, "within_standard", &keep), sum_f64(batches, "breaches", &keep))
}

fn is(b: &RecordBatch, column: &str, i: usize, value: &str) -> bool {
    text(b, column, i).as_deref() == Some(value)
}

/// Every file loaded, and rows in = written + quarantined + dropped with nothing quarantined.
fn assert_clean(reports: &[PipelineReport], files: usize) {
    let files_seen: Vec<_> = reports.iter().flat_map(|r| &r.files).collect();
    assert_eq!(files_seen.len(), files);
    for f in files_seen {
        assert_eq!(f.outcome, FileOutcome::Loaded, "{}", f.path);
        let c = &f.counts;
        assert_eq!(c.rows_in, c.rows_written + c.rows_quarantined + c.rows_dropped, "{}", f.path);
        assert_eq!(c.rows_quarantined, 0, "{}: unexpected quarantine", f.path);
        assert!(c.rows_written > 0 && c.rows_dropped > 0, "{}: {c:?}", f.path);
    }
}

async fn land_all(ws: &Workspace, filter: &str) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(workbooks()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name.contains(filter) {
            ws.land_file(&path, &format!("cwt-workbooks/{name}")).await;
            n += 1;
        }
    }
    n
}

#[tokio::test]
async fn provider_workbooks_reproduce_the_england_totals_they_print() {
    let ws = Workspace::local();
    let n = land_all(&ws, "PROVIDER-WORKBOOK").await;
    assert_eq!(n, 5);
    let reports = ws.ingest(&only(&["cwt_provider_workbook"])).await;
    assert_clean(&reports, 5);
    let batches = ws.table("cwt_provider_workbook").await;
    for (stem, period) in MONTHS {
        let printed = printed_england(&format!("{stem}-CWT-CRS-PROVIDER-WORKBOOK-FINAL.xlsx"));
        let of = |standard: &'static str| {
            move |b: &RecordBatch, i: usize| month(b, i) == period && is(b, "standard", i, standard)
        };
        // FDS: every staged row (route × suspected cancer) adds up to the ALL ROUTES sheet.
        let fds = sums(&batches, of("28-day FDS"));
        assert_eq!(fds, england(&printed, "28-DAY FDS (ALL ROUTES)", "ALL ROUTES", ""), "{period} FDS");
        // 31-day: the ALL MODALITIES rows, and separately the modality rows, add up to all stages
        // and to each stage of the ALL CANCER sheet.
        let all_mod = |b: &RecordBatch, i: usize| is(b, "treatment_modality", i, "ALL MODALITIES");
        let by_mod = |b: &RecordBatch, i: usize| !all_mod(b, i);
        let printed31 = england(&printed, "31-DAY (ALL CANCER)", "ALL STAGES", "ALL CANCERS");
        assert_eq!(sums(&batches, |b, i| of("31-day Combined")(b, i) && all_mod(b, i)), printed31, "{period} 31");
        assert_eq!(sums(&batches, |b, i| of("31-day Combined")(b, i) && by_mod(b, i)), printed31, "{period} 31");
        for stage in ["First Treatment", "Subsequent Treatment"] {
            let staged =
                sums(&batches, |b, i| of("31-day Combined")(b, i) && all_mod(b, i) && is(b, "route", i, stage));
            assert_eq!(staged, england(&printed, "31-DAY (ALL CANCER)", stage, "ALL CANCERS"), "{period} {stage}");
        }
        // 62-day: likewise against all routes and each route.
        let printed62 = england(&printed, "62-DAY (ALL CANCER)", "ALL ROUTES", "ALL CANCERS");
        assert_eq!(sums(&batches, |b, i| of("62-day Combined")(b, i) && all_mod(b, i)), printed62, "{period} 62");
        assert_eq!(sums(&batches, |b, i| of("62-day Combined")(b, i) && by_mod(b, i)), printed62, "{period} 62");
        for route in ["Urgent Suspected Cancer", "Breast Symptomatic", "Screening", "Consultant Upgrade"] {
            let staged =
                sums(&batches, |b, i| of("62-day Combined")(b, i) && all_mod(b, i) && is(b, "route", i, route));
            assert_eq!(staged, england(&printed, "62-DAY (ALL CANCER)", route, "ALL CANCERS"), "{period} {route}");
        }
    }
    // The extract's shape: FDS rows carry no modality, every row says where it came from.
    let b = &batches[0];
    assert!((0..b.num_rows()).all(|i| is(b, "source_shape", i, "workbook") && is(b, "revision", i, "FINAL")));
    let barts_nov_fds = sums(&batches, |b, i| {
        month(b, i) == "2023-11" && is(b, "standard", i, "28-day FDS") && is(b, "org_code", i, "R1H")
    });
    // Printed in the ALL ROUTES sheet for R1H (Barts Health), November 2023.
    assert_eq!(barts_nov_fds, (3262.0, 2457.0, 805.0));
}

#[tokio::test]
async fn commissioner_workbooks_of_every_era_load_and_match_the_printed_totals() {
    let ws = Workspace::local();
    let n = land_all(&ws, "COMMISSIONER-WORKBOOK").await + land_all(&ws, "commissioner_wait_times").await;
    assert_eq!(n, 7);
    let reports = ws.ingest(&only(&["cwt_commissioner_workbook"])).await;
    let files: Vec<_> = reports.iter().flat_map(|r| &r.files).collect();
    assert_eq!(files.len(), 7);
    for f in &files {
        assert_eq!(f.outcome, FileOutcome::Loaded, "{}", f.path);
        let c = &f.counts;
        assert_eq!(c.rows_in, c.rows_written + c.rows_quarantined + c.rows_dropped, "{}", f.path);
        assert_eq!(c.rows_quarantined, 0, "{}: unexpected quarantine", f.path);
        // The old era prints no England row: nothing is dropped.
        assert_eq!(c.rows_dropped == 0, f.path.contains("wait_times"), "{}: {c:?}", f.path);
    }
    let batches = ws.table("cwt_commissioner_workbook").await;
    for (stem, period) in MONTHS {
        let printed = printed_england(&format!("{stem}-CWT-CRS-COMMISSIONER-WORKBOOK-FINAL.xlsx"));
        let of = |standard: &'static str| {
            move |b: &RecordBatch, i: usize| month(b, i) == period && is(b, "standard", i, standard)
        };
        let sub = |b: &RecordBatch, i: usize, s: &str| is(b, "sub_category", i, s);
        assert_eq!(
            sums(&batches, of("28-day FDS")),
            england(&printed, "28-DAY FDS (ALL ROUTES)", "ALL ROUTES", ""),
            "{period} FDS"
        );
        let first = sums(&batches, |b, i| of("31-day Combined")(b, i) && sub(b, i, "31-day (First)"));
        assert_eq!(first, england(&printed, "31-DAY (ALL CANCER)", "First Treatment", "ALL CANCERS"), "{period}");
        let subsequent = sums(&batches, |b, i| of("31-day Combined")(b, i) && !sub(b, i, "31-day (First)"));
        let printed_sub = england(&printed, "31-DAY (ALL CANCER)", "Subsequent Treatment", "ALL CANCERS");
        assert_eq!(subsequent, printed_sub, "{period} 31-day subsequent");
        for route in ["Urgent Suspected Cancer", "Breast Symptomatic", "Screening", "Consultant Upgrade"] {
            let sub_category = format!("62-day ({route})");
            let staged = sums(&batches, |b, i| of("62-day Combined")(b, i) && sub(b, i, &sub_category));
            assert_eq!(staged, england(&printed, "62-DAY (ALL CANCER)", route, "ALL CANCERS"), "{period} {route}");
        }
        assert_eq!(
            sums(&batches, of("62-day Combined")),
            england(&printed, "62-DAY (ALL CANCER)", "ALL ROUTES", "ALL CANCERS"),
            "{period} 62"
        );
    }

    // July 2021 is coded by CCG: North Central London 93C, North East London A3A8R (both merged
    // CCGs from April 2021); July 2022 by ICB: QMJ and QMF. Figures as printed in the workbooks.
    let org = |period: &'static str, standard: &'static str, code: &'static str| {
        sums(&batches, move |b: &RecordBatch, i: usize| {
            month(b, i) == period && is(b, "standard", i, standard) && is(b, "sub_icb_code", i, code)
        })
    };
    assert_eq!(org("2021-07", "28-day FDS", "93C"), (6306.0, 4495.0, 1811.0));
    assert_eq!(org("2021-07", "28-day FDS", "A3A8R"), (6398.0, 4479.0, 1919.0));
    assert_eq!(org("2022-07", "2WW", "QMJ"), (6396.0, 5098.0, 1298.0));
    assert_eq!(org("2022-07", "2WW", "QMF"), (5835.0, 5291.0, 544.0));
    assert_eq!(org("2022-07", "62-day GP", "QMF"), (286.0, 187.0, 99.0));
    assert_eq!(org("2022-07", "31-day Subsequent", "QMJ").0, 25.0 + 123.0 + 138.0);
    let codes = |period: &'static str| -> std::collections::BTreeSet<String> {
        batches
            .iter()
            .flat_map(|b| (0..b.num_rows()).map(move |i| (b, i)))
            .filter(|(b, i)| month(b, *i) == period)
            .filter_map(|(b, i)| text(b, "sub_icb_code", i))
            .collect()
    };
    let (jul21, jul22) = (codes("2021-07"), codes("2022-07"));
    assert!(jul21.contains("93C") && jul21.contains("A3A8R") && !jul21.contains("QMF"));
    assert!(jul22.contains("QMJ") && jul22.contains("QMF") && !jul22.contains("93C"));
    // Every old-era standard is there, with its financial year.
    for standard in
        ["2WW", "2WW Breast", "31-day First", "31-day Subsequent", "62-day GP", "62-day Screening", "62-day Upgrade"]
    {
        for period in ["2021-07", "2022-07"] {
            let (total, within, breaches) =
                sums(&batches, |b, i| month(b, i) == period && is(b, "standard", i, standard));
            assert!(total > 0.0 && within + breaches == total, "{period} {standard}");
        }
    }
    let fy = batches
        .iter()
        .flat_map(|b| (0..b.num_rows()).map(move |i| (b, i)))
        .find(|(b, i)| month(b, *i) == "2021-07")
        .map(|(b, i)| text(b, "financial_year", i));
    assert_eq!(fy, Some(Some("2021/22".to_string())));
}

/// The old-era sheets print no England row: every staged total equals the sum of the TOTAL
/// column of every organisation row of the sheet, read here with calamine.
#[tokio::test]
async fn old_era_commissioner_sheets_are_read_whole() {
    let ws = Workspace::local();
    land_all(&ws, "commissioner_wait_times").await;
    ws.ingest(&only(&["cwt_commissioner_workbook"])).await;
    let batches = ws.table("cwt_commissioner_workbook").await;
    for (file, period) in [
        ("nhs_commissioner_wait_times_jul_2021.xlsx", "2021-07"),
        ("nhs_commissioner_wait_times_jul_2022.xlsx", "2022-07"),
    ] {
        let mut book: Xlsx<_> = open_workbook(workbooks().join(file)).unwrap();
        for sheet in book.sheet_names().into_iter().filter(|s| s != "Frontpage") {
            let range = book.worksheet_range(&sheet).unwrap();
            let (mut total, mut total_col) = (0.0, None);
            for row in range.rows() {
                if let Some(j) = row.iter().position(|c| cell_text(Some(c)) == "TOTAL") {
                    total_col = Some(j);
                } else if let (Some(j), false) = (total_col, cell_text(row.get(1)).is_empty()) {
                    total += number(row.get(j));
                }
            }
            let staged = sum_f64(&batches, "total", |b, i| month(b, i) == period && is(b, "source_sheet", i, &sheet));
            assert!(total > 0.0);
            assert_eq!(staged, total, "{file} {sheet}");
        }
    }
}

/// A provider extract in the published shape holding one FDS row of R1H for `period`.
fn one_row_extract(period: &str, figures: [f64; 3]) -> Vec<u8> {
    common::one_row_provider_extract(period, "2023/24", "NOV", "Suspected breast cancer", figures)
}

/// The month's source chosen by `sql/staging/stg_cwt_month_source.sql`, over the staging tables.
async fn month_sources(ws: &Workspace) -> Vec<(String, String, String, String)> {
    let ctx =
        alliance_warehouse::transform::session::session(&ws.stores.warehouse, &common::pipelines()).await.unwrap();
    let view = std::fs::read_to_string(common::repo().join("sql/staging/stg_cwt_month_source.sql")).unwrap();
    ctx.sql(&format!("CREATE VIEW stg_cwt_month_source AS {view}")).await.unwrap();
    let sql = "SELECT basis, CAST(period AS VARCHAR) AS period, source_shape, revision \
               FROM stg_cwt_month_source ORDER BY basis, period";
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    batches
        .iter()
        .flat_map(|b| (0..b.num_rows()).map(move |i| (b, i)))
        .map(|(b, i)| {
            let t = |c: &str| text(b, c, i).unwrap();
            (t("basis"), t("period"), t("source_shape"), t("revision"))
        })
        .collect()
}

/// A provisional extract and a final workbook of the same month: the month is counted once,
/// from the workbook; the extract's other months stay.
#[tokio::test]
async fn a_final_workbook_replaces_a_provisional_extract_month() {
    let ws = Workspace::local();
    ws.land(
        "cwt/CWT-CRS-Nov-2023-Data-Extract-Provider-Provisional.xlsx",
        one_row_extract("2023-11-01", [3000.0, 2000.0, 1000.0]),
    )
    .await;
    ws.land(
        "cwt/CWT-CRS-Oct-2023-Data-Extract-Provider-Provisional.xlsx",
        one_row_extract("2023-10-01", [10.0, 9.0, 1.0]),
    )
    .await;
    let nov = "NOVEMBER-2023-CWT-CRS-PROVIDER-WORKBOOK-FINAL.xlsx";
    ws.land_file(&workbooks().join(nov), &format!("cwt-workbooks/{nov}")).await;
    ws.ingest(&only(&["cwt_provider", "cwt_provider_workbook"])).await;
    let extract = ws.table("cwt_provider").await;
    assert!((0..extract[0].num_rows())
        .all(|i| is(&extract[0], "source_shape", i, "extract") && is(&extract[0], "revision", i, "PROVISIONAL")));

    let chosen = month_sources(&ws).await;
    let s = |a: &str, b: &str, c: &str, d: &str| (a.to_string(), b.to_string(), c.to_string(), d.to_string());
    assert_eq!(
        chosen,
        [s("provider", "2023-10-01", "extract", "PROVISIONAL"), s("provider", "2023-11-01", "workbook", "FINAL")]
    );

    // The union through the chosen sources counts November once, as the workbook prints it.
    let ctx =
        alliance_warehouse::transform::session::session(&ws.stores.warehouse, &common::pipelines()).await.unwrap();
    let view = std::fs::read_to_string(common::repo().join("sql/staging/stg_cwt_month_source.sql")).unwrap();
    ctx.sql(&format!("CREATE VIEW stg_cwt_month_source AS {view}")).await.unwrap();
    let sql = "WITH u AS ( \
                 SELECT period, standard, total, source_shape FROM cwt_provider \
                 UNION ALL SELECT period, standard, total, source_shape FROM cwt_provider_workbook) \
               SELECT CAST(u.period AS VARCHAR) AS period, sum(u.total) AS total FROM u \
               JOIN stg_cwt_month_source m \
                 ON m.basis = 'provider' AND m.period = u.period AND m.source_shape = u.source_shape \
               WHERE u.standard = '28-day FDS' GROUP BY u.period ORDER BY 1";
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let printed = printed_england(nov);
    let fds = england(&printed, "28-DAY FDS (ALL ROUTES)", "ALL ROUTES", "").0;
    assert_eq!(sum_f64(&batches, "total", |b, i| is(b, "period", i, "2023-11-01")), fds);
    assert_eq!(sum_f64(&batches, "total", |b, i| is(b, "period", i, "2023-10-01")), 10.0);

    // A later FINAL extract of October outranks the provisional one in its own table (a later
    // file replaces the months it covers) and is then the month's source.
    ws.land("cwt/CWT-CRS-Oct-2023-Data-Extract-Provider-Final.xlsx", one_row_extract("2023-10-01", [11.0, 9.0, 2.0]))
        .await;
    ws.ingest(&only(&["cwt_provider"])).await;
    let chosen = month_sources(&ws).await;
    assert_eq!(chosen[0], s("provider", "2023-10-01", "extract", "FINAL"));
}

/// Every England row printed in a sheet whose TOTAL column follows one label column:
/// (label) → (total, next, next) — here the USC/UBS sheets: total, within 14 days, 15–16 days.
fn printed_by_label(printed: &Printed, sheet: &str) -> Vec<(String, (f64, f64, f64))> {
    printed.iter().filter(|((s, _, _), _)| s == sheet).map(|((_, d, _), v)| (d.clone(), *v)).collect()
}

#[tokio::test]
async fn referrals_seen_reproduce_the_printed_england_rows() {
    let ws = Workspace::local();
    land_all(&ws, "PROVIDER-WORKBOOK").await;
    let reports = ws.ingest(&only(&["cwt_referrals_seen"])).await;
    assert_clean(&reports, 5);
    let batches = ws.table("cwt_referrals_seen").await;
    for (stem, period) in MONTHS {
        let printed = printed_england(&format!("{stem}-CWT-CRS-PROVIDER-WORKBOOK-FINAL.xlsx"));
        for (sheet, route) in
            [("USC referral to FOA", "Urgent Suspected Cancer"), ("UBS referral to FHA", "Breast Symptomatic")]
        {
            let rows = printed_by_label(&printed, sheet);
            assert!(!rows.is_empty());
            for (cancer, (total, within14, days15_16)) in rows {
                let keep = |b: &RecordBatch, i: usize| {
                    month(b, i) == period && is(b, "route", i, route) && is(b, "cancer_type", i, &cancer)
                };
                let staged = (
                    sum_f64(&batches, "total_seen", keep),
                    sum_f64(&batches, "seen_within_14_days", keep),
                    sum_f64(&batches, "seen_15_to_16_days", keep),
                );
                assert_eq!(staged, (total, within14, days15_16), "{period} {sheet} {cancer}");
            }
        }
    }
    // The bands add up to the total on every row.
    let bands =
        ["seen_within_14_days", "seen_15_to_16_days", "seen_17_to_21_days", "seen_22_to_28_days", "seen_after_28_days"];
    let all = |_: &RecordBatch, _: usize| true;
    let band_sum: f64 = bands.iter().map(|c| sum_f64(&batches, c, all)).sum();
    assert_eq!(band_sum, sum_f64(&batches, "total_seen", all));
    // Barts Health, November 2023, suspected breast cancer, as printed.
    let barts = |b: &RecordBatch, i: usize| {
        month(b, i) == "2023-11" && is(b, "org_code", i, "R1H") && is(b, "cancer_type", i, "Suspected breast cancer")
    };
    assert!(sum_f64(&batches, "total_seen", barts) > 0.0);
}

/// `mart_referral_activity`: a trust's patients seen per month as printed (the USC and UBS
/// sheets' rows of that trust, read here with calamine), against the configured baseline month.
#[tokio::test]
async fn referral_activity_mart_is_built_from_the_published_sheets() {
    let ws = Workspace::local();
    common::load_reference(&ws).await;
    land_all(&ws, "PROVIDER-WORKBOOK").await;
    ws.ingest(&only(&["cwt_referrals_seen"])).await;
    let report = common::build(&ws, &common::repo().join("sql"), Some("mart_referral_activity")).await;
    assert!(report.succeeded(), "{report:?}");
    let bytes = ws.stores.warehouse.get("marts/mart_referral_activity.parquet").await.expect("published");
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap().build().unwrap();
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
    let printed = |stem: &str| -> f64 {
        let mut book: Xlsx<_> =
            open_workbook(workbooks().join(format!("{stem}-CWT-CRS-PROVIDER-WORKBOOK-FINAL.xlsx"))).unwrap();
        let mut total = 0.0;
        for sheet in ["USC referral to FOA", "UBS referral to FHA"] {
            let range = book.worksheet_range(sheet).unwrap();
            let mut total_col = None;
            for row in range.rows() {
                if let Some(j) = row.iter().position(|c| cell_text(Some(c)) == "TOTAL") {
                    total_col = Some(j);
                } else if cell_text(row.get(1)) == "R1H" {
                    total += number(row.get(total_col.unwrap()));
                }
            }
        }
        total
    };
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert!(rows > 100, "{rows} rows; {:?}", batches.first().map(|b| b.schema()));
    let (nov, dec) = (printed("NOVEMBER-2023"), printed("DECEMBER-2023"));
    assert!(nov > 0.0 && dec > 0.0);
    let r1h = |m: &'static str, column: &'static str| {
        sum_f64(&batches, column, move |b: &RecordBatch, i: usize| {
            let days = b.column_by_name("month").unwrap().as_primitive::<Date32Type>().value(i);
            is(b, "provider_code", i, "R1H") && alliance_warehouse::ingest::dates::month_key(days) == m
        })
    };
    assert_eq!(r1h("2023-11", "activity"), nov);
    assert_eq!(r1h("2023-12", "activity"), dec);
    assert_eq!(r1h("2023-11", "recovery_percent"), 100.0);
    assert!((r1h("2023-12", "recovery_percent") - 100.0 * dec / nov).abs() < 1e-9);
}

/// (total, within, threshold) of every `route = 'ALL'`, `cancer_type = 'ALL'` row of the published
/// `mart_cwt_performance`, by (basis, level, org code, month, standard).
type MartTotals = BTreeMap<(String, String, String, String, String), (f64, f64, Option<f64>)>;

async fn published_totals(ws: &Workspace) -> MartTotals {
    let bytes = ws.stores.warehouse.get("marts/mart_cwt_performance.parquet").await.expect("the mart is published");
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap().build().unwrap();
    let number = |b: &RecordBatch, column: &str, i: usize| text(b, column, i).map(|v| v.parse::<f64>().unwrap());
    let mut out = MartTotals::new();
    for b in reader {
        let b = b.unwrap();
        for i in 0..b.num_rows() {
            if !is(&b, "route", i, "ALL") || !is(&b, "cancer_type", i, "ALL") {
                continue;
            }
            let [basis, level, org, month, standard] =
                ["basis", "level", "org_code", "month", "standard"].map(|c| text(&b, c, i).unwrap());
            let row = (
                number(&b, "total", i).unwrap(),
                number(&b, "within_standard", i).unwrap(),
                number(&b, "standard_threshold", i),
            );
            assert!(out.insert((basis, level, org, month, standard), row).is_none(), "one total row per key");
        }
    }
    out
}

fn mart_row<'a>(
    mart: &'a MartTotals,
    basis: &str,
    level: &str,
    org: &str,
    month: &str,
    standard: &str,
) -> &'a (f64, f64, Option<f64>) {
    mart.get(&(basis.into(), level.into(), org.into(), month.into(), standard.into()))
        .unwrap_or_else(|| panic!("no {basis} {level} {org} {month} {standard} row in the mart"))
}

/// Everything `seed` lands (extracts of 2023 and 2024–25, every workbook) through ingest and the
/// published mart: for every workbook month, England on both bases equals the England row the
/// workbook prints, counted once although extracts and workbooks sit side by side; July 2021
/// (CCG-coded) and July 2022 (ICB-coded) give NEL and NCL on the ICB codes of later years; every
/// standard in force has its threshold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_published_mart_counts_every_workbook_month_as_printed() {
    let ws = Workspace::local();
    common::load_reference(&ws).await;
    let cwt = ["cwt_provider", "cwt_commissioner", "cwt_provider_workbook", "cwt_commissioner_workbook"];
    for report in ws.ingest(&only(&cwt)).await {
        for f in &report.files {
            let c = &f.counts;
            assert_eq!(f.outcome, FileOutcome::Loaded, "{}", f.path);
            assert_eq!(c.rows_in, c.rows_written + c.rows_quarantined + c.rows_dropped, "{}", f.path);
        }
    }
    let report = common::build(&ws, &common::repo().join("sql"), Some("+mart_cwt_performance")).await;
    assert!(report.succeeded(), "{:#?}", report.models);
    let mart = published_totals(&ws).await;

    for (stem, period) in MONTHS {
        let month = format!("{period}-01");
        for (basis, kind) in [("provider", "PROVIDER"), ("commissioner", "COMMISSIONER")] {
            let printed = printed_england(&format!("{stem}-CWT-CRS-{kind}-WORKBOOK-FINAL.xlsx"));
            let expected = [
                ("28-day FDS", england(&printed, "28-DAY FDS (ALL ROUTES)", "ALL ROUTES", "")),
                ("31-day Combined", england(&printed, "31-DAY (ALL CANCER)", "ALL STAGES", "ALL CANCERS")),
                ("62-day Combined", england(&printed, "62-DAY (ALL CANCER)", "ALL ROUTES", "ALL CANCERS")),
            ];
            for (standard, (total, within, _)) in expected {
                let (t, w, threshold) = *mart_row(&mart, basis, "england", "ENG", &month, standard);
                assert_eq!((t, w), (total, within), "{basis} {month} {standard}");
                assert!(threshold.is_some(), "{basis} {month} {standard}: threshold");
            }
        }
    }

    // NEL and NCL on their ICB codes in every era: cells printed for the merged CCGs 93C (NCL)
    // and A3A8R (NEL) in July 2021, for the ICBs in July 2022.
    assert_eq!(mart_row(&mart, "commissioner", "icb", "QMJ", "2021-07-01", "28-day FDS").0, 6306.0);
    assert_eq!(mart_row(&mart, "commissioner", "icb", "QMF", "2021-07-01", "28-day FDS").0, 6398.0);
    assert_eq!(mart_row(&mart, "commissioner", "icb", "QMJ", "2022-07-01", "2WW").0, 6396.0);
    assert_eq!(mart_row(&mart, "commissioner", "icb", "QMF", "2022-07-01", "2WW").0, 5835.0);
    let eras = [
        ("2021-07-01", "2WW"),
        ("2022-07-01", "2WW"),
        ("2023-04-01", "28-day FDS"),
        ("2023-11-01", "31-day Combined"),
        ("2024-03-01", "62-day Combined"),
    ];
    for (month, standard) in eras {
        for icb in ["QMF", "QMJ"] {
            assert!(mart_row(&mart, "commissioner", "icb", icb, month, standard).0 > 0.0, "{icb} {month} {standard}");
        }
    }
    // The standards in force before October 2023 have their thresholds (62-day Upgrade has none).
    for standard in ["2WW", "2WW Breast", "31-day First", "62-day GP", "62-day Screening"] {
        for month in ["2021-07-01", "2022-07-01"] {
            assert!(
                mart_row(&mart, "commissioner", "england", "ENG", month, standard).2.is_some(),
                "{month} {standard}"
            );
        }
    }
}
