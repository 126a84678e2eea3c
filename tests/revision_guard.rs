//! Hostile revisions of `replace_by_period` pipelines (issue 14): a one-row "revision" of a month
//! of the real CWT provider extract is held, leaving staging and the national figures as they
//! were, until `--accept-revision` names it; a revision losing an organisation is held too; an
//! identical copy under another name is recognised by its hash and not re-read.

mod common;

use alliance_warehouse::ingest::manifest::{FileStatus, Manifest};
use alliance_warehouse::ingest::{FileOutcome, IngestOptions, Ingestor};
use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Date32Type;
use common::{alliance, only, pipeline, shared, sum_f64, text, workdir, Workspace};

const PROVIDER: &str = "CWT-CRS-Apr-2023-to-Sep-2023-Data-Extract-Provider-Provisional.xlsx";

fn in_month(b: &RecordBatch, row: usize, period: &str) -> bool {
    let days = b.column_by_name("period").unwrap().as_primitive::<Date32Type>().value(row);
    alliance_warehouse::ingest::dates::month_key(days) == period
}

/// Rows of April 2023 and England's April 2023 28-day FDS total.
async fn april(ws: &Workspace) -> (usize, f64) {
    let batches = ws.table("cwt_provider").await;
    let rows = batches.iter().map(|b| (0..b.num_rows()).filter(|i| in_month(b, *i, "2023-04")).count()).sum();
    let fds = sum_f64(&batches, "total", |b, i| {
        in_month(b, i, "2023-04") && text(b, "standard", i).as_deref() == Some("28-day FDS")
    });
    (rows, fds)
}

/// A provider extract holding one row of April 2023, in the published shape.
fn one_row_revision() -> Vec<u8> {
    common::one_row_provider_extract("2023-04-01", "2023/24", "APR", "Breast", [200.0, 150.0, 50.0])
}

async fn ingest(ws: &Workspace, accept: &[&str]) -> Vec<alliance_warehouse::ingest::PipelineReport> {
    let ingestor = Ingestor::new(ws.env.clone(), ws.stores.clone(), alliance_warehouse::runs::new_run_id());
    let options =
        IngestOptions { accept_revisions: accept.iter().map(|s| s.to_string()).collect(), ..Default::default() };
    ingestor.run(&only(&["cwt_provider"]), &options).await.expect("ingest runs")
}

#[tokio::test]
async fn a_one_row_revision_of_a_real_month_is_held_until_accepted() {
    let ws = Workspace::local();
    ws.land_file(&shared().join("cwt").join(PROVIDER), &format!("cwt/{PROVIDER}")).await;
    ingest(&ws, &[]).await;
    let before = april(&ws).await;
    assert_eq!(before, (8_465, 215_274.0), "April 2023 as published");

    let revision = "cwt/CWT-CRS-Apr-2023-Provider-Revised.xlsx";
    ws.land(revision, one_row_revision()).await;
    for attempt in 0..2 {
        let reports = ingest(&ws, &[]).await;
        let file = reports[0].files.iter().find(|f| f.path == revision).unwrap();
        let FileOutcome::Held(reason) = &file.outcome else { panic!("not held: {:?}", file.outcome) };
        assert!(reason.contains("2023-04 would go from 8465 rows to 1"), "{reason}");
        assert!(reason.contains("--accept-revision cwt/CWT-CRS-Apr-2023-Provider-Revised.xlsx"), "{reason}");
        assert_eq!(april(&ws).await, before, "staging and the England FDS total unchanged (attempt {attempt})");
        let manifest = Manifest::load(&ws.stores.warehouse, "cwt_provider").await.unwrap();
        assert_eq!(manifest.files[revision].status, FileStatus::Held, "held, not loaded: reconsidered next run");
        assert!(file.quarantine.as_deref().unwrap().ends_with(".held.json"));
    }
    assert!(ws.read_parquet("_state/pending/").await.is_empty(), "nothing left in the pending area");

    let reports = ingest(&ws, &["CWT-CRS-Apr-2023-Provider-Revised.xlsx"]).await;
    let file = reports[0].files.iter().find(|f| f.path == revision).unwrap();
    assert_eq!(file.outcome, FileOutcome::Loaded);
    assert!(file.revision_accepted.as_deref().unwrap().contains("would go from 8465 rows to 1"));
    assert_eq!(april(&ws).await, (1, 200.0), "accepted: the revision replaces April");
    let batches = ws.table("cwt_provider").await;
    let may = batches.iter().map(|b| (0..b.num_rows()).filter(|i| in_month(b, *i, "2023-05")).count()).sum::<usize>();
    assert!(may > 8_000, "other months untouched");
}

#[test]
fn the_cli_holds_and_accepts_a_revision_and_records_the_acceptance() {
    let dir = workdir();
    let landing = dir.path().join("landing/cwt");
    std::fs::create_dir_all(&landing).unwrap();
    std::fs::copy(shared().join("cwt").join(PROVIDER), landing.join(PROVIDER)).unwrap();
    let ok = |args: &[&str]| {
        let out = alliance(dir.path(), args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok(&["ingest", "--pipeline", "cwt_provider"]);
    std::fs::write(landing.join("CWT-Provider-Revised.xlsx"), one_row_revision()).unwrap();
    let held = alliance(dir.path(), &["ingest", "--pipeline", "cwt_provider", "--fail-on-reject"]);
    let out = String::from_utf8_lossy(&held.stdout);
    assert_eq!(held.status.code(), Some(3), "held counts as rejected for --fail-on-reject: {out}");
    assert!(out.contains("held cwt/CWT-Provider-Revised.xlsx: revision guard"), "{out}");
    let status = ok(&["status"]);
    assert!(
        status.contains("revisions held by the revision guard")
            && status.contains("cwt/CWT-Provider-Revised.xlsx: revision guard"),
        "{status}"
    );
    let out = ok(&["ingest", "--pipeline", "cwt_provider", "--accept-revision", "cwt/CWT-Provider-Revised.xlsx"]);
    assert!(out.contains("accepted revision cwt/CWT-Provider-Revised.xlsx"), "{out}");
    let runs: Vec<serde_json::Value> = std::fs::read_dir(dir.path().join("warehouse/_state/runs"))
        .unwrap()
        .flatten()
        .map(|e| serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap())
        .collect();
    let accepted: Vec<&serde_json::Value> = runs.iter().filter(|r| r.get("accepted_revisions").is_some()).collect();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0]["accepted_revisions"], serde_json::json!(["cwt/CWT-Provider-Revised.xlsx"]));
}

const SCREENING_LIKE: &str = r#"
[source]
glob = "counts/*.csv"
format = "csv"

[load]
mode = "replace_by_period"
period = "month"

[load.revision_guard]
max_row_loss = 0.2
organisation_column = "org_code"

[[columns]]
name = "org_code"
type = "code"
nullable = false

[[columns]]
name = "month"
type = "month"
nullable = false

[[columns]]
name = "patients"
type = "integer"
"#;

fn csv(orgs: &[&str], per_org: usize) -> String {
    let mut text = String::from("org_code,month,patients\n");
    for org in orgs {
        for i in 0..per_org {
            text.push_str(&format!("{org},2024-01,{i}\n"));
        }
    }
    text
}

#[tokio::test]
async fn a_revision_losing_an_organisation_or_more_than_the_declared_share_is_held() {
    let ws = Workspace::local();
    let p = pipeline(&ws, "counts", SCREENING_LIKE);
    ws.land("counts/jan.csv", csv(&["A01", "B02", "C03", "D04", "E05"], 10)).await;
    ws.ingest(std::slice::from_ref(&p)).await;
    assert_eq!(ws.rows("counts").await, 50);

    // One practice fewer, more rows overall: the organisation rule holds it.
    ws.land("counts/jan-revised.csv", csv(&["A01", "B02", "C03", "D04"], 20)).await;
    let reports = ws.ingest(std::slice::from_ref(&p)).await;
    let FileOutcome::Held(reason) = &reports[0].files[1].outcome else { panic!("{:?}", reports[0].files[1]) };
    assert!(reason.contains("lose 1 org_code value(s) present before (E05)"), "{reason}");
    assert_eq!(ws.rows("counts").await, 50);

    // Every practice, a quarter of the rows lost: more than max_row_loss = 0.2.
    ws.land("counts/jan-revised.csv", csv(&["A01", "B02", "C03", "D04", "E05"], 7)).await;
    let reports = ws.ingest(std::slice::from_ref(&p)).await;
    let FileOutcome::Held(reason) = &reports[0].files[1].outcome else { panic!("{:?}", reports[0].files[1]) };
    assert!(reason.contains("50 rows to 35") && reason.contains("max_row_loss = 0.2"), "{reason}");

    // A plausible revision (every practice, a tenth fewer rows) replaces the month.
    ws.land("counts/jan-revised.csv", csv(&["A01", "B02", "C03", "D04", "E05"], 9)).await;
    let reports = ws.ingest(std::slice::from_ref(&p)).await;
    assert_eq!(reports[0].files[1].outcome, FileOutcome::Loaded);
    assert_eq!(ws.rows("counts").await, 45);
}

#[tokio::test]
async fn an_identical_copy_under_another_name_is_recognised_by_its_hash() {
    let ws = Workspace::local();
    let p = pipeline(
        &ws,
        "counts",
        SCREENING_LIKE.replace("[load.revision_guard]", "[load.revision_guard]\nenabled = true").as_str(),
    );
    let bytes = csv(&["A01", "B02"], 3);
    ws.land("counts/jan.csv", bytes.clone()).await;
    ws.ingest(std::slice::from_ref(&p)).await;
    let staged = ws.read_parquet("staging/counts/").await;
    ws.land("counts/jan (copy).csv", bytes).await;
    let reports = ws.ingest(std::slice::from_ref(&p)).await;
    let copy = reports[0].files.iter().find(|f| f.path == "counts/jan (copy).csv").unwrap();
    assert_eq!(copy.outcome, FileOutcome::Duplicate("counts/jan.csv".into()));
    assert_eq!(copy.counts.rows_in, 0, "not read");
    assert_eq!(ws.read_parquet("staging/counts/").await, staged, "staging untouched");
    let manifest = Manifest::load(&ws.stores.warehouse, "counts").await.unwrap();
    assert_eq!(manifest.files["counts/jan (copy).csv"].status, FileStatus::Duplicate);
    // Later runs skip it like any unchanged file.
    let reports = ws.ingest(std::slice::from_ref(&p)).await;
    assert!(reports[0].files.iter().all(|f| matches!(f.outcome, FileOutcome::Unchanged | FileOutcome::Duplicate(_))));
}

#[test]
fn the_published_marts_keep_their_figures_when_a_revision_is_held_or_a_copy_lands() {
    let dir = workdir();
    let ok = |args: &[&str]| {
        let out = alliance(dir.path(), args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let england_fds_april = || {
        ok(&[
            "query",
            "--format",
            "csv",
            "select total from mart_cwt_performance where level = 'england' and standard = '28-day FDS' \
             and basis = 'provider' and route = 'ALL' and cancer_type = 'ALL' and month = DATE '2023-04-01'",
        ])
    };
    let last_run_published =
        || ok(&["query", "--format", "csv", "select marts_published from runs order by run_id desc limit 1"]);
    ok(&["seed", "--from", shared().to_str().unwrap()]);
    ok(&["run"]);
    assert_eq!(england_fds_april(), "total\n215274.0\n");

    let landing = dir.path().join("landing/cwt");
    std::fs::write(landing.join("CWT-Provider-Revised.xlsx"), one_row_revision()).unwrap();
    let out = ok(&["run"]);
    assert!(out.contains("held cwt/CWT-Provider-Revised.xlsx"), "{out}");
    assert_eq!(england_fds_april(), "total\n215274.0\n", "the held revision changes nothing");
    assert_eq!(last_run_published(), "marts_published\n0\n");

    std::fs::copy(landing.join(PROVIDER), landing.join("Copy-of-Provider-extract.xlsx")).unwrap();
    let out = ok(&["run"]);
    assert!(out.contains("duplicate cwt/Copy-of-Provider-extract.xlsx of cwt/"), "{out}");
    assert_eq!(last_run_published(), "marts_published\n0\n", "a copy republishes nothing");

    ok(&["run", "--accept-revision", "CWT-Provider-Revised.xlsx"]);
    assert_eq!(england_fds_april(), "total\n200.0\n", "accepted: the revision is April now");
}
