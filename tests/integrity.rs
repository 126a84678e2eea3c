//! What the pipeline publishes can be trusted: intermediate models are audited before anyone
//! reads them, marts that read the same inputs fail and hold together, and a mart or model
//! changed, truncated or deleted by hand is seen by `status` and `verify` and put right by the
//! next run.

mod common;

use alliance_warehouse::transform::{self, ModelStatus};
use common::{build, load_reference, pipelines, repo, Workspace, TEST_KEY, TEST_KEY_ENV};
use std::collections::BTreeMap;
use std::path::Path;

fn write(dir: &Path, file: &str, text: &str) {
    let path = dir.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// An intermediate model with a test, two marts that read it, one mart that reads only a
/// reference table.
fn project(sql: &Path, int_sql: &str, mart_a_test: &str) {
    write(sql, "staging/stg_trusts.sql", "SELECT org_code, alliance FROM ref_alliance_trusts");
    write(sql, "intermediate/int_trusts.sql", int_sql);
    write(
        sql,
        "intermediate/int_trusts.toml",
        "[[tests]]\nkind = \"assert\"\nname = \"codes_present\"\ncondition = \"org_code IS NOT NULL\"\n",
    );
    write(sql, "marts/mart_a.sql", "SELECT alliance, count(*) AS trusts FROM int_trusts GROUP BY alliance");
    write(
        sql,
        "marts/mart_a.toml",
        &format!("[[tests]]\nkind = \"assert\"\nname = \"a_test\"\ncondition = \"{mart_a_test}\"\n"),
    );
    write(sql, "marts/mart_b.sql", "SELECT count(*) AS trusts FROM int_trusts");
    write(sql, "marts/mart_c.sql", "SELECT count(DISTINCT alliance) AS alliances FROM stg_trusts");
}

fn statuses(report: &transform::BuildReport) -> BTreeMap<String, ModelStatus> {
    report.models.iter().map(|m| (m.model.clone(), m.status.clone())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_intermediate_is_never_read_and_marts_on_its_inputs_hold_together() {
    let ws = Workspace::local();
    load_reference(&ws).await;
    let sql = ws.dir.path().join("sql");
    let good_int = "SELECT org_code, alliance FROM stg_trusts";
    project(&sql, good_int, "trusts <= 10");
    assert!(build(&ws, &sql, None).await.succeeded());
    let store = &ws.stores.warehouse;
    let good = store.get("models/int_trusts/data.parquet").await.unwrap();

    // The intermediate now fails its test: its output is never promoted, nothing reads it.
    project(&sql, "SELECT CAST(NULL AS VARCHAR) AS org_code, alliance FROM stg_trusts", "trusts <= 10");
    let report = build(&ws, &sql, None).await;
    let s = statuses(&report);
    assert_eq!(s["int_trusts"], ModelStatus::TestsFailed);
    assert_eq!((&s["mart_a"], &s["mart_b"]), (&ModelStatus::Skipped, &ModelStatus::Skipped));
    assert_eq!(store.get("models/int_trusts/data.parquet").await.unwrap(), good, "the last good output stays");
    assert!(store.list("models/int_trusts/_staging/").await.unwrap().is_empty(), "nothing staged is left");
    // A later run of a mart alone attaches the last good intermediate, not the failed one.
    write(&sql, "marts/mart_b.sql", "SELECT count(*) AS trusts, count(org_code) AS with_code FROM int_trusts");
    let alone = build(&ws, &sql, Some("mart_b")).await;
    assert_eq!(statuses(&alone)["mart_b"], ModelStatus::Ok, "{:#?}", alone.models);
    let ctx = datafusion::prelude::SessionContext::new();
    let published = store.get("marts/mart_b.parquet").await.unwrap();
    let path = ws.dir.path().join("mart_b.parquet");
    std::fs::write(&path, &published).unwrap();
    let df = ctx.read_parquet(path.to_str().unwrap(), Default::default()).await.unwrap();
    let rows = df.collect().await.unwrap();
    let counts = arrow::compute::cast(rows[0].column(1), &arrow::datatypes::DataType::Int64).unwrap();
    let with_code = counts.as_any().downcast_ref::<arrow::array::Int64Array>().unwrap().value(0);
    assert!(with_code > 0, "mart_b read the failed intermediate (no codes)");

    // mart_a fails its own test on the (good) intermediate: mart_b, which reads the same
    // intermediate, is held back; mart_c, which shares only a reference table, publishes.
    project(&sql, good_int, "trusts > 1000");
    write(&sql, "marts/mart_b.sql", "SELECT count(*) AS trusts, 2 AS version FROM int_trusts");
    write(&sql, "marts/mart_c.sql", "SELECT count(DISTINCT alliance) AS alliances, 2 AS version FROM stg_trusts");
    let before_b = store.get("marts/mart_b.parquet").await.unwrap();
    let report = build(&ws, &sql, None).await;
    let s = statuses(&report);
    assert_eq!(s["mart_a"], ModelStatus::TestsFailed);
    assert_eq!(s["mart_b"], ModelStatus::Held, "{:#?}", report.models);
    assert_eq!(s["mart_c"], ModelStatus::Ok);
    let reason = report.models.iter().find(|m| m.model == "mart_b").unwrap().error.clone().unwrap();
    assert!(reason.contains("int_trusts") && reason.contains("mart_a"), "{reason}");
    assert_eq!(store.get("marts/mart_b.parquet").await.unwrap(), before_b, "a held mart is not republished");
    assert!(store.list("marts/_staging/").await.unwrap().is_empty());
    // Failed and held marts keep their last good version, which is still what the records say.
    let all = pipelines();
    let graph = transform::load_graph(&sql, &all).unwrap();
    let verified = alliance_warehouse::verify::verify(store, &all, &graph).await.unwrap();
    assert!(verified.clean(), "{:#?}", verified.findings);
    assert!(verified.objects_checked >= 4, "{verified:?}");
    // Held is not done: the next run tries again.
    project(&sql, good_int, "trusts <= 10");
    let fixed = build(&ws, &sql, None).await;
    assert_eq!(statuses(&fixed)["mart_b"], ModelStatus::Ok);
}

fn cli(ws: &Workspace, sql: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_alliance"))
        .current_dir(ws.dir.path())
        .args(["--config-dir", "config", "--env", "test", "--pipelines-dir"])
        .arg(repo().join("pipelines"))
        .arg("--sql-dir")
        .arg(sql)
        .args(args)
        .env(TEST_KEY_ENV, TEST_KEY)
        .env("RUST_LOG", "warn")
        .output()
        .expect("alliance runs")
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marts_changed_by_hand_are_seen_by_status_and_verify_and_restored_by_the_next_run() {
    let ws = Workspace::local();
    load_reference(&ws).await;
    let sql = ws.dir.path().join("sql");
    project(&sql, "SELECT org_code, alliance FROM stg_trusts", "trusts <= 10");
    let built = cli(&ws, &sql, &["build"]);
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    let verified = cli(&ws, &sql, &["verify"]);
    assert_eq!(verified.status.code(), Some(0), "{}{}", stdout(&verified), String::from_utf8_lossy(&verified.stderr));
    assert!(stdout(&verified).contains("all as recorded"));

    let dir = ws.warehouse_dir();
    let originals: BTreeMap<&str, Vec<u8>> = ["marts/mart_a.parquet", "marts/mart_b.parquet", "marts/mart_c.parquet"]
        .into_iter()
        .map(|p| (p, std::fs::read(dir.join(p)).unwrap()))
        .collect();
    // Modified (same size, one byte flipped), truncated, deleted; and an intermediate deleted.
    let mut flipped = originals["marts/mart_a.parquet"].clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0xff;
    std::fs::write(dir.join("marts/mart_a.parquet"), flipped).unwrap();
    std::fs::write(dir.join("marts/mart_b.parquet"), &originals["marts/mart_b.parquet"][..100]).unwrap();
    std::fs::remove_file(dir.join("marts/mart_c.parquet")).unwrap();
    std::fs::remove_file(dir.join("models/int_trusts/data.parquet")).unwrap();

    let status = stdout(&cli(&ws, &sql, &["status"]));
    assert!(status.contains("4 differ"), "{status}");
    let verified = cli(&ws, &sql, &["verify"]);
    assert_eq!(verified.status.code(), Some(6), "verify exits non-zero on a difference");
    let report = stdout(&verified);
    for object in
        ["marts/mart_a.parquet", "marts/mart_b.parquet", "marts/mart_c.parquet", "models/int_trusts/data.parquet"]
    {
        assert!(report.lines().any(|l| l.starts_with("DIFFERS") && l.contains(object)), "{object}: {report}");
    }
    assert!(report.contains("content hash differs") && report.contains("missing"), "{report}");

    let rebuilt = cli(&ws, &sql, &["build"]);
    assert!(rebuilt.status.success(), "{}", String::from_utf8_lossy(&rebuilt.stderr));
    for (path, bytes) in &originals {
        assert_eq!(&std::fs::read(dir.join(path)).unwrap(), bytes, "{path} is restored byte for byte");
    }
    assert_eq!(cli(&ws, &sql, &["verify"]).status.code(), Some(0));
    // The run record says what was found and done.
    let runs = ws.stores.warehouse.list("_state/runs/").await.unwrap();
    let last = ws.stores.warehouse.get(runs.last().unwrap().location.as_ref()).await.unwrap();
    let record: serde_json::Value = serde_json::from_slice(&last).unwrap();
    let tampered = record["build"]["tampered"].as_array().expect("the run record lists tampered objects");
    let actions: BTreeMap<String, String> = tampered
        .iter()
        .map(|t| (t["model"].as_str().unwrap().to_string(), t["action"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(actions.len(), 4, "{tampered:#?}");
    assert!(actions["mart_a"].starts_with("restored from marts/_history/mart_a/"), "{actions:?}");
    assert!(actions["mart_c"].starts_with("restored from"), "{actions:?}");
    assert_eq!(actions["int_trusts"], "rebuilt");
    // A staging object changed by hand is re-read from its landing file.
    let staged = ws.stores.warehouse.list("staging/ref_alliance_trusts/").await.unwrap();
    let object = dir.join(staged[0].location.as_ref());
    let good = std::fs::read(&object).unwrap();
    std::fs::write(&object, b"not parquet").unwrap();
    assert_eq!(cli(&ws, &sql, &["verify"]).status.code(), Some(6));
    let ran = cli(&ws, &sql, &["ingest", "--pipeline", "ref_alliance_trusts"]);
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
    let after = std::fs::read(&object).unwrap();
    assert_eq!(after.len(), good.len(), "the staging object is rewritten from landing");
    let verified = cli(&ws, &sql, &["verify"]);
    assert_eq!(verified.status.code(), Some(0), "{}", stdout(&verified));
}
