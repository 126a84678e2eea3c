//! One vocabulary across trusts and value-level quarantine (issue 17): the four trusts send
//! modalities and sites in their own spelling (`SURGERY`, `Head and Neck – upper aerodigestive`),
//! the pipelines map them at ingest to the national values, and an invalid optional attribute
//! (stage `5`, an unmapped modality or site) is quarantined as a value while its pathway stays.
//!
//! The national lists come from NHS England's published CWT extract, read here with calamine
//! (not through the pipeline or the mapping table).

mod common;

use alliance_warehouse::generate::{self, GenerateArgs};
use alliance_warehouse::transform;
use arrow::array::{AsArray, RecordBatch};
use common::{build, load_reference, only, pipelines, repo, shared, text, Workspace};
use std::collections::{BTreeMap, BTreeSet};

const TRUSTS: [&str; 4] = ["trust_pathways_r1h", "trust_pathways_ral", "trust_pathways_rqx", "trust_pathways_rrv"];

/// Distinct values of a column of the published CWT provider extract, on rows whose `STANDARD`
/// satisfies `standard`.
fn cwt_values(column: &str, standard: impl Fn(&str) -> bool) -> BTreeSet<String> {
    use calamine::{open_workbook_auto, Reader};
    let path = shared().join("cwt/CWT-CRS-Apr-2023-to-Sep-2023-Data-Extract-Provider-Provisional.xlsx");
    let mut book = open_workbook_auto(&path).expect("the CWT extract opens");
    let range = book.worksheet_range_at(0).expect("a sheet").expect("readable");
    let mut rows = range.rows();
    let header: Vec<String> = rows
        .by_ref()
        .map(|r| r.iter().map(|c| c.to_string()).collect::<Vec<_>>())
        .find(|r| r.iter().any(|c| c == column))
        .unwrap();
    let at = |name: &str| header.iter().position(|c| c == name).unwrap();
    let (col, std_col) = (at(column), at("STANDARD"));
    rows.filter(|r| standard(&r[std_col].to_string())).map(|r| r[col].to_string()).filter(|v| !v.is_empty()).collect()
}

/// `SELECT … GROUP BY` over a built model, as (value, count).
async fn group_by(ws: &Workspace, model: &str, column: &str) -> BTreeMap<Option<String>, i64> {
    let ctx = transform::session::session(&ws.stores.warehouse, &pipelines()).await.unwrap();
    transform::session::register_parquet(&ctx, model, &format!("models/{model}/data.parquet"), None).await.unwrap();
    let sql = format!("SELECT {column} AS v, count(*) AS n FROM {model} GROUP BY 1");
    let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
    let mut out = BTreeMap::new();
    for b in &batches {
        let n = b.column(1).as_primitive::<arrow::datatypes::Int64Type>();
        for i in 0..b.num_rows() {
            out.insert(text(b, "v", i), n.value(i));
        }
    }
    out
}

/// Quarantine entries of a pipeline: (source file, row, column, reason, value, level).
type Entry = (String, i64, String, String, Option<String>, String);
async fn quarantine(ws: &Workspace, pipeline: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for (_, batches) in ws.read_parquet(&format!("quarantine/{pipeline}/")).await {
        for b in batches {
            for i in 0..b.num_rows() {
                let cell = |c: &str| text(&b, c, i);
                out.push((
                    cell("source_file").unwrap(),
                    cell("source_row").unwrap().parse().unwrap(),
                    cell("column").unwrap(),
                    cell("reason").unwrap(),
                    cell("value"),
                    cell("level").unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_trust_group_by_modality_gives_one_group_per_national_modality() {
    let ws = Workspace::local();
    load_reference(&ws).await;
    let args = GenerateArgs { rows: 8_000, months: 2, fault_rate: 0.01, no_screening: true, ..Default::default() };
    generate::run(&args, &ws.stores.landing).await.unwrap();
    let reports = ws.ingest(&only(&TRUSTS)).await;
    // Every value the trusts send for modality and site maps: nothing of theirs is quarantined.
    for r in &reports {
        for (_, _, column, reason, _, _) in quarantine(&ws, &r.pipeline).await {
            assert!(
                !["treatment_modality", "suspected_cancer", "ethnic_category"].contains(&column.as_str()),
                "{}: {column}: {reason}",
                r.pipeline
            );
        }
    }
    let report = build(&ws, &repo().join("sql"), Some("+int_pathways")).await;
    assert!(report.succeeded(), "{report:?}");

    // National modalities: those of NHS England's CWT extract, without its total row.
    let national = cwt_values("TREATMENT MODALITY", |_| true);
    let national: BTreeSet<String> = national.into_iter().filter(|m| m != "ALL MODALITIES").collect();
    assert_eq!(national.len(), 4, "{national:?}");
    let groups = group_by(&ws, "int_pathways", "treatment_modality").await;
    let modalities: BTreeSet<String> = groups.keys().flatten().cloned().collect();
    assert_eq!(modalities, national, "one group per national modality: {groups:?}");

    // Sites: the tumour groups of the 31- and 62-day standards in the same extract.
    let tumour_groups = cwt_values("CANCER TYPE", |s| s.contains("31") || s.contains("62"));
    let sites = group_by(&ws, "int_pathways", "suspected_cancer").await;
    assert!(!sites.contains_key(&None), "every generated site maps: {sites:?}");
    let sites: BTreeSet<String> = sites.keys().flatten().cloned().collect();
    assert_eq!(sites.len(), 10, "the generator's ten sites stay ten groups across trusts: {sites:?}");
    assert!(sites.is_subset(&tumour_groups), "{:?} not in {tumour_groups:?}", sites.difference(&tumour_groups));
}

const RAL_HEADER: &str = "Pathway ID,NHS Number,Provider Code,Commissioner Code,Referral Date,Referral Route,\
Suspected Cancer,First Seen Date,FDS Date,FDS Outcome,DTT Date,Treatment Date,Treatment Modality,Treating Provider,\
Stage,Age,Sex,Ethnicity,LSOA";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_stage_or_unmapped_value_is_quarantined_and_its_pathway_kept() {
    let ws = Workspace::local();
    load_reference(&ws).await;
    // Rows 2–7 of the file. P2 and P4 have stage 5; P3 an unmapped modality, site and ethnicity;
    // P4 and P5 are still open at the end of January.
    let rows = [
        "P1,9434765919,RAL,93C,05/01/2024,URGENT SUSPECTED CANCER,Breast,08/01/2024,20/01/2024,CONFIRMED,22/01/2024,25/01/2024,SURGERY,RAL,2,60,F,A,E01000001",
        "P2,9434765919,RAL,93C,05/01/2024,URGENT SUSPECTED CANCER,Breast,08/01/2024,20/01/2024,CONFIRMED,22/01/2024,25/01/2024,Surgery,RAL,5,61,F,A,E01000001",
        "P3,4010232137,RAL,93C,06/01/2024,CONSULTANT UPGRADE,Suspected cancer - non-specific symptoms,08/01/2024,20/01/2024,CONFIRMED,22/01/2024,26/01/2024,Proton beam therapy,RAL,3,70,M,Q,E01000001",
        "P4,4010232137,RAL,93C,02/01/2024,URGENT SUSPECTED CANCER,Lung,08/01/2024,20/01/2024,CONFIRMED,,,,,5,72,M,A,E01000001",
        "P5,9434765919,RAL,93C,03/01/2024,URGENT SUSPECTED CANCER,Lung,08/01/2024,20/01/2024,CONFIRMED,,,,,X,73,F,A,E01000001",
        // An NHS number failing its check digit rejects the row: its stage 5 goes with it.
        "P6,9434765918,RAL,93C,03/01/2024,URGENT SUSPECTED CANCER,Lung,08/01/2024,20/01/2024,CONFIRMED,,,,,5,73,F,A,E01000001",
    ];
    let path = "trusts/RAL/RAL_cancer_pathways_2024-01.csv";
    ws.land(path, format!("{RAL_HEADER}\n{}\n", rows.join("\n"))).await;
    let reports = ws.ingest(&only(&["trust_pathways_ral"])).await;
    let c = reports[0].files[0].counts;
    assert_eq!((c.rows_in, c.rows_written, c.rows_quarantined, c.values_nulled), (6, 5, 1, 5), "{c:?}");
    assert!(c.balanced());

    // Each bad value is in quarantine with its file, row, column and reason, as a value.
    let q = quarantine(&ws, "trust_pathways_ral").await;
    let shown: Vec<(i64, &str, Option<&str>, &str)> = q
        .iter()
        .map(|(_, row, column, _, value, level)| (*row, column.as_str(), value.as_deref(), level.as_str()))
        .collect();
    assert_eq!(
        shown,
        [
            (3, "stage", Some("5"), "value"),
            (4, "ethnic_category", Some("Q"), "value"),
            (4, "suspected_cancer", Some("Suspected cancer - non-specific symptoms"), "value"),
            (4, "treatment_modality", Some("Proton beam therapy"), "value"),
            (5, "stage", Some("5"), "value"),
            (7, "patient_pseudonym", None, "row"),
            (7, "stage", Some("5"), "row"),
        ]
    );
    assert!(q.iter().all(|e| e.0.ends_with(path)), "{q:?}");
    assert!(
        q.iter().filter(|e| e.5 == "value").all(|e| e.3.starts_with(&format!("vocabulary {}: no mapping for", e.2))),
        "{q:?}"
    );

    // Staging keeps every pathway, with nulls where the values were, and national values.
    let staged: Vec<RecordBatch> = ws.table("trust_pathways_ral").await;
    let b = &staged[0];
    let by_id: BTreeMap<String, usize> = (0..b.num_rows()).map(|i| (text(b, "pathway_id", i).unwrap(), i)).collect();
    let cell = |id: &str, column: &str| text(b, column, by_id[id]);
    assert_eq!(cell("P1", "treatment_modality").as_deref(), Some("Surgery"), "SURGERY is the national Surgery");
    assert_eq!(cell("P2", "stage"), None);
    assert_eq!(cell("P3", "treatment_modality"), None);
    assert_eq!(cell("P3", "suspected_cancer"), None);
    assert_eq!(cell("P3", "ethnic_category"), None);
    assert_eq!(cell("P3", "stage").as_deref(), Some("3"), "the row's valid values stay");

    // The pathways stay in the model every pathway mart counts, with their waits.
    let report = build(&ws, &repo().join("sql"), Some("+int_pathways")).await;
    assert!(report.succeeded(), "{report:?}");
    let ctx = transform::session::session(&ws.stores.warehouse, &pipelines()).await.unwrap();
    transform::session::register_parquet(&ctx, "int_pathways", "models/int_pathways/data.parquet", None).await.unwrap();
    let sql = "SELECT pathway_id, referral_month, fds_within, within_62, within_31, stage FROM int_pathways ORDER BY 1";
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let shown = arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string();
    let lines: Vec<&str> = shown.lines().filter(|l| l.starts_with("| P")).collect();
    assert_eq!(
        lines,
        [
            "| P1         | 2024-01-01     | true       | true      | true      | 2     |",
            "| P2         | 2024-01-01     | true       | true      | true      |       |",
            "| P3         | 2024-01-01     |            | true      | true      | 3     |",
            "| P4         | 2024-01-01     | true       |           |           |       |",
            "| P5         | 2024-01-01     | true       |           |           | X     |",
        ],
        "{shown}"
    );
    // The backlog at the end of January counts the two open pathways, P4 (stage 5) among them:
    // the backlog mart's own SQL, before disclosure control.
    let snapshots = std::fs::read_to_string(repo().join("sql/staging/stg_trust_pathway_snapshots.sql")).unwrap();
    ctx.sql(&format!("CREATE VIEW stg_trust_pathway_snapshots AS {snapshots}")).await.unwrap();
    let backlog = std::fs::read_to_string(repo().join("sql/marts/mart_backlog.sql")).unwrap();
    let batches = ctx.sql(&backlog).await.unwrap().collect().await.unwrap();
    let mut open = BTreeMap::new();
    for b in &batches {
        for i in 0..b.num_rows() {
            let n = b.column_by_name("open_pathways").unwrap().as_primitive::<arrow::datatypes::Float64Type>();
            open.insert(text(b, "month_end", i).unwrap(), n.value(i));
        }
    }
    assert_eq!(open.get("2024-01-31"), Some(&2.0), "{open:?}");
}
