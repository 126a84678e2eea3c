//! Values that parse but cannot be true (issue 14), through the shipped pipeline files: dates in
//! 1850 or 2200, ages of −5 and 1234, the NHS number 0000000000, negative denominators and
//! coverage above 100 % are quarantined with the rule's name; negative Excel serials are not
//! dates.

mod common;

use alliance_warehouse::ingest::FileOutcome;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use common::{only, pipeline, text, Workspace};

/// Quarantined values of a pipeline: (source row, column, reason, value).
async fn quarantined(ws: &Workspace, pipeline: &str) -> Vec<(i64, String, String, Option<String>)> {
    let mut out = Vec::new();
    for (_, batches) in ws.read_parquet(&format!("quarantine/{pipeline}/")).await {
        for b in batches {
            let rows = b.column_by_name("source_row").unwrap().as_primitive::<Int64Type>().clone();
            for i in 0..b.num_rows() {
                let cell = |c: &str| text(&b, c, i);
                out.push((rows.value(i), cell("column").unwrap(), cell("reason").unwrap(), cell("value")));
            }
        }
    }
    out.sort();
    out
}

const RAL_HEADER: &str = "Pathway ID,NHS Number,Provider Code,Commissioner Code,Referral Date,Referral Route,\
Suspected Cancer,First Seen Date,FDS Date,FDS Outcome,DTT Date,Treatment Date,Treatment Modality,Treating Provider,\
Stage,Age,Sex,Ethnicity,LSOA";

fn ral_row(id: &str, nhs: &str, referral: &str, age: &str) -> String {
    format!(
        "{id},{nhs},RAL,93C,{referral},URGENT SUSPECTED CANCER,Breast,20/01/2024,30/01/2024,RULED OUT,,,,,,{age},F,A,E01000001"
    )
}

#[tokio::test]
async fn implausible_dates_ages_and_nhs_numbers_are_quarantined_with_the_rule() {
    let ws = Workspace::local();
    let rows = [
        ral_row("P1", "9434765919", "15/01/2024", "60"),
        ral_row("P2", "9434765919", "01/01/1850", "60"),
        ral_row("P3", "9434765919", "01/01/2200", "60"),
        ral_row("P4", "9434765919", "15/01/2024", "-5"),
        ral_row("P5", "9434765919", "15/01/2024", "1234"),
        ral_row("P6", "0000000000", "15/01/2024", "60"),
        ral_row("P7", "4010232137", "15/01/2024", "120"),
    ];
    let csv = format!("{RAL_HEADER}\n{}\n", rows.join("\n"));
    ws.land("trusts/RAL/RAL_cancer_pathways_2024-01.csv", csv).await;
    let reports = ws.ingest(&only(&["trust_pathways_ral"])).await;
    let f = &reports[0].files[0];
    assert_eq!(f.outcome, FileOutcome::Loaded, "{:?}", f.outcome);
    // Ages are optional attributes (`on_invalid = "null_value"`): an implausible age is
    // quarantined as a value and its row written with a null age.
    assert_eq!((f.counts.rows_in, f.counts.rows_written, f.counts.rows_quarantined), (7, 4, 3));
    assert_eq!(f.counts.values_nulled, 2);
    let q = quarantined(&ws, "trust_pathways_ral").await;
    let shown: Vec<(i64, &str, &str)> = q.iter().map(|(r, c, reason, _)| (*r, c.as_str(), reason.as_str())).collect();
    assert_eq!(shown.len(), 5, "{shown:#?}");
    assert_eq!((shown[0].0, shown[0].1), (3, "referral_date"));
    assert!(shown[0].2.starts_with("min_date = 2000-01-01"), "{}", shown[0].2);
    assert_eq!((shown[1].0, shown[1].1), (4, "referral_date"));
    assert!(shown[1].2.starts_with("max_date = today+1y"), "{}", shown[1].2);
    assert_eq!(shown[2], (5, "age", "min = 0: below the minimum"));
    assert_eq!(shown[3], (6, "age", "max = 120: above the maximum"));
    assert_eq!((shown[4].0, shown[4].1), (7, "patient_pseudonym"));
    assert!(shown[4].2.contains("one digit repeated"), "{}", shown[4].2);
    assert_eq!(q[4].3, None, "an NHS number is never kept, even a placeholder");
    assert_eq!(q[0].3.as_deref(), Some("01/01/1850"), "other values are kept as sent");
    let staged: Vec<RecordBatch> = ws.table("trust_pathways_ral").await;
    let ids: Vec<String> =
        staged.iter().flat_map(|b| (0..b.num_rows()).map(move |i| text(b, "pathway_id", i).unwrap())).collect();
    assert_eq!(ids, ["P1", "P4", "P5", "P7"]);
    let ages: Vec<Option<String>> =
        staged.iter().flat_map(|b| (0..b.num_rows()).map(move |i| text(b, "age", i))).collect();
    assert_eq!(ages, [Some("60".into()), None, None, Some("120".into())]);
}

/// A UTF-16LE export with a title line, as NHS Futures writes it.
fn futures_export(rows: &[&str]) -> Vec<u8> {
    let text = format!(
        "Cancer screening coverage\r\nOrganisation Code\tOrganisation Name\tProgramme\tMonth of Date\tCohort Age Range\t\
         Cohort Description\tDenominator Name\tDenominator\tNumerator\tPerformance\tAcceptable\tAchievable\r\n{}\r\n",
        rows.join("\r\n")
    );
    let mut bytes = vec![0xFF, 0xFE];
    text.encode_utf16().for_each(|u| bytes.extend(u.to_le_bytes()));
    bytes
}

#[tokio::test]
async fn negative_denominators_and_coverage_above_100_percent_are_quarantined() {
    let ws = Workspace::local();
    let row = |org: &str, month: &str, denominator: &str, numerator: &str, performance: &str| {
        format!("{org}\tPractice\tBreast\t{month}\t50-70\tWomen\tEligible\t{denominator}\t{numerator}\t{performance}\t70%\t80%")
    };
    let rows = [
        row("F84001", "January 2024", "1,000", "723", "72.3%"),
        row("F84002", "January 2024", "-100", "50", "50%"),
        row("F84003", "January 2024", "100", "120", "120.5%"),
        row("F84004", "January 1850", "100", "50", "50%"),
        row("F84005", "January 2024", "100", "-1", "10%"),
    ];
    let refs: Vec<&str> = rows.iter().map(String::as_str).collect();
    ws.land("screening/coverage_2024-01.tsv", futures_export(&refs)).await;
    let reports = ws.ingest(&only(&["screening_coverage"])).await;
    let f = &reports[0].files[0];
    assert_eq!(f.outcome, FileOutcome::Loaded, "{:?}", f.outcome);
    assert_eq!((f.counts.rows_written, f.counts.rows_quarantined), (1, 4));
    let q = quarantined(&ws, "screening_coverage").await;
    let shown: Vec<(&str, &str)> = q.iter().map(|(_, c, r, _)| (c.as_str(), r.as_str())).collect();
    assert!(shown.contains(&("denominator", "min = 0: below the minimum")), "{shown:?}");
    assert!(shown.contains(&("performance", "max = 1: above the maximum")), "{shown:?}");
    assert!(shown.contains(&("numerator", "min = 0: below the minimum")), "{shown:?}");
    assert!(shown.iter().any(|(c, r)| *c == "month" && r.starts_with("min_date = 2000-01-01")), "{shown:?}");
}

const SERIALS: &str = r#"
[source]
glob = "serials/*.csv"
format = "csv"

[load]
mode = "append"

[[columns]]
name = "id"
type = "string"

[[columns]]
name = "seen"
type = "date"
formats = ["excel_serial"]
"#;

#[tokio::test]
async fn negative_excel_serials_are_not_dates() {
    let ws = Workspace::local();
    let p = pipeline(&ws, "serials", SERIALS);
    ws.land("serials/a.csv", "id,seen\na,45322\nb,-5\nc,-45322.5\nd,0\n").await;
    let reports = ws.ingest(&[p]).await;
    assert_eq!(reports[0].files[0].counts.rows_written, 1);
    let q = quarantined(&ws, "serials").await;
    assert_eq!(
        q.iter().map(|(r, c, _, _)| (*r, c.as_str())).collect::<Vec<_>>(),
        [(3, "seen"), (4, "seen"), (5, "seen")]
    );
    assert!(q.iter().all(|(_, _, reason, _)| reason.starts_with("not a date")), "{q:?}");
}

#[tokio::test]
async fn negative_excel_serials_in_date_cells_are_not_dates() {
    let ws = Workspace::local();
    let p =
        pipeline(&ws, "serials", &SERIALS.replace("serials/*.csv", "serials/*.xlsx").replace("\"csv\"", "\"xlsx\""));
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let date = rust_xlsxwriter::Format::new().set_num_format("dd/mm/yyyy");
    let sheet = workbook.add_worksheet();
    sheet.write_string(0, 0, "id").unwrap();
    sheet.write_string(0, 1, "seen").unwrap();
    for (row, (id, serial)) in [("a", 45322.0), ("b", -5.0), ("c", -45322.0)].iter().enumerate() {
        sheet.write_string(row as u32 + 1, 0, *id).unwrap();
        sheet.write_number_with_format(row as u32 + 1, 1, *serial, &date).unwrap();
    }
    ws.land("serials/a.xlsx", workbook.save_to_buffer().unwrap()).await;
    let reports = ws.ingest(&[p]).await;
    let f = &reports[0].files[0];
    assert_eq!((f.counts.rows_written, f.counts.rows_quarantined), (1, 2), "{:?}", quarantined(&ws, "serials").await);
    let staged = ws.table("serials").await;
    assert!(staged.iter().all(|b| b.column_by_name("seen").unwrap().null_count() == 0));
}
