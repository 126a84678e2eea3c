//! Unique keys checked at ingest (issue 14): a repeated `pathway_id` is quarantined (all but the
//! latest row), so the pathway marts still publish instead of failing their `unique` test.

mod common;

use alliance_warehouse::ingest::FileOutcome;
use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use common::{alliance, only, shared, text, workdir, Workspace};

const RAL_HEADER: &str = "Pathway ID,NHS Number,Provider Code,Commissioner Code,Referral Date,Referral Route,\
Suspected Cancer,First Seen Date,FDS Date,FDS Outcome,DTT Date,Treatment Date,Treatment Modality,Treating Provider,\
Stage,Age,Sex,Ethnicity,LSOA";

fn ral_row(id: &str, age: u32) -> String {
    format!("{id},9434765919,RAL,93C,15/01/2024,URGENT SUSPECTED CANCER,Breast,20/01/2024,30/01/2024,RULED OUT,,,,,,{age},F,A,E01000001")
}

#[tokio::test]
async fn repeated_keys_keep_the_latest_row_and_quarantine_the_rest() {
    let ws = Workspace::local();
    let rows = [ral_row("P1", 50), ral_row("P2", 60), ral_row("P1", 51), ral_row("P3", 70), ral_row("P1", 52)];
    let csv = format!("{RAL_HEADER}\n{}\n", rows.join("\n"));
    ws.land("trusts/RAL/RAL_cancer_pathways_2024-01.csv", csv).await;
    let reports = ws.ingest(&only(&["trust_pathways_ral"])).await;
    let f = &reports[0].files[0];
    assert_eq!(f.outcome, FileOutcome::Loaded, "{:?}", f.outcome);
    assert_eq!((f.counts.rows_in, f.counts.rows_written, f.counts.rows_quarantined), (5, 3, 2));
    assert_eq!(f.outputs.iter().map(|o| o.rows).sum::<u64>(), 3, "the manifest counts what staging holds");
    let staged = ws.table("trust_pathways_ral").await;
    let mut kept: Vec<(String, i64)> = staged
        .iter()
        .flat_map(|b| {
            let ages = b.column_by_name("age").unwrap().as_primitive::<Int64Type>().clone();
            (0..b.num_rows()).map(move |i| (text(b, "pathway_id", i).unwrap(), ages.value(i)))
        })
        .collect();
    kept.sort();
    assert_eq!(kept, [("P1".to_string(), 52), ("P2".into(), 60), ("P3".into(), 70)], "the latest P1 is kept");
    let quarantine = ws.read_parquet("quarantine/trust_pathways_ral/").await;
    let batches: Vec<_> = quarantine.into_iter().flat_map(|(_, b)| b).collect();
    let reasons: Vec<(String, String, String)> = batches
        .iter()
        .flat_map(|b| {
            (0..b.num_rows()).map(move |i| {
                (text(b, "source_row", i).unwrap(), text(b, "reason", i).unwrap(), text(b, "value", i).unwrap())
            })
        })
        .collect();
    let expected = "unique_key (pathway_id): duplicate of source row 6, which is later by unique_order";
    assert_eq!(
        reasons,
        [("2".to_string(), expected.to_string(), "P1".to_string()), ("4".into(), expected.into(), "P1".into())]
    );
    // Seals follow the objects copied into place: the next run re-reads nothing.
    let reports = ws.ingest(&only(&["trust_pathways_ral"])).await;
    assert_eq!(reports[0].files[0].outcome, FileOutcome::Unchanged);
    // Re-reading the same file (a changed definition, --force) gives the same staging.
    ws.try_ingest(&only(&["trust_pathways_ral"]), true).await.unwrap();
    assert_eq!(ws.rows("trust_pathways_ral").await, 3);
}

#[test]
fn one_duplicate_pathway_no_longer_holds_back_the_pathway_marts() {
    let dir = workdir();
    let ok = |args: &[&str]| {
        let out = alliance(dir.path(), args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok(&["seed", "--from", shared().to_str().unwrap()]);
    ok(&["generate", "--rows", "2000", "--start", "2024-01", "--months", "1"]);
    // The Royal Free extract repeats its first pathway at the end.
    let file = dir.path().join("landing/trusts/RAL/RAL_cancer_pathways_2024-01.csv");
    let text = std::fs::read_to_string(&file).unwrap();
    let first = text.lines().nth(1).unwrap().to_string();
    std::fs::write(&file, format!("{text}{first}\n")).unwrap();
    let out = ok(&["run"]);
    assert!(!out.contains("failed"), "{out}");
    let marts = std::fs::read_dir(dir.path().join("warehouse/marts"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "parquet"))
        .count();
    assert_eq!(marts, 10, "every mart published: {out}");
    let repeated = ok(&[
        "query",
        "--role",
        "engineer",
        "--format",
        "csv",
        "select count(*) - count(distinct pathway_id) as repeated from int_pathways",
    ]);
    assert_eq!(repeated.trim(), "repeated\n0", "no pathway twice");
}

const UPDATES: &str = r#"
[source]
glob = "updates/*.csv"
format = "csv"

[load]
mode = "append"
period = "month"
unique_key = ["id"]
unique_order = ["updated"]

[[columns]]
name = "id"
type = "string"

[[columns]]
name = "month"
type = "month"
nullable = false

[[columns]]
name = "updated"
type = "date"
formats = ["yyyy_mm_dd"]
"#;

#[tokio::test]
async fn across_the_files_of_one_month_the_latest_row_of_a_key_is_kept() {
    let ws = Workspace::local();
    let p = common::pipeline(&ws, "updates", UPDATES);
    let ingest = || ws.ingest(std::slice::from_ref(&p));
    ws.land("updates/a.csv", "id,month,updated\n1,2024-01,2024-01-05\n2,2024-01,2024-01-20\n3,2024-02,2024-02-01\n")
        .await;
    ingest().await;
    // b.csv updates id 1 (later): a.csv's row 2 is quarantined; id 3 is in another month of a.csv.
    ws.land("updates/b.csv", "id,month,updated\n1,2024-01,2024-01-10\n3,2024-02,2024-01-31\n").await;
    let reports = ingest().await;
    let b = reports[0].files.iter().find(|f| f.path == "updates/b.csv").unwrap();
    assert_eq!((b.counts.rows_written, b.counts.rows_quarantined), (1, 1), "b's id 3 is older than a's");
    // c.csv repeats id 2 with an older date: c's row is quarantined.
    ws.land("updates/c.csv", "id,month,updated\n2,2024-01,2024-01-02\n4,2024-01,2024-01-03\n").await;
    ingest().await;
    let staged = ws.table("updates").await;
    let mut rows: Vec<(String, String)> = staged
        .iter()
        .flat_map(|b| (0..b.num_rows()).map(move |i| (text(b, "id", i).unwrap(), text(b, "_source_file", i).unwrap())))
        .collect();
    rows.sort();
    let rows: Vec<(&str, &str)> = rows.iter().map(|(id, f)| (id.as_str(), f.rsplit('/').next().unwrap())).collect();
    assert_eq!(rows, [("1", "b.csv"), ("2", "a.csv"), ("3", "a.csv"), ("4", "c.csv")], "one row per key");
    let manifest = alliance_warehouse::ingest::manifest::Manifest::load(&ws.stores.warehouse, "updates").await.unwrap();
    let a = &manifest.files["updates/a.csv"];
    assert_eq!(
        (a.counts.rows_in, a.counts.rows_written, a.counts.rows_quarantined),
        (3, 2, 1),
        "a's record counts its loss"
    );
    assert_eq!(a.outputs.iter().map(|o| o.rows).sum::<u64>(), 2);
    let quarantine = ws.read_parquet("quarantine/updates/").await;
    let reasons: Vec<String> = quarantine
        .iter()
        .flat_map(|(_, b)| b.iter().flat_map(|b| (0..b.num_rows()).map(move |i| text(b, "reason", i).unwrap())))
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("duplicate of source row 2 of b.csv")), "{reasons:?}");
    // The rewritten object carries a fresh seal: the next run finds nothing to repair or re-read.
    let reports = ingest().await;
    assert!(reports[0].files.iter().all(|f| f.outcome == FileOutcome::Unchanged), "{:?}", reports[0].files);
}
