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
    assert_eq!(marts, 9, "every mart published: {out}");
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
