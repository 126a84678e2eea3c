//! The `alliance` binary as a data engineer uses it: validate, seed, generate, ingest, exit codes
//! and messages.

mod common;

use common::{alliance, workdir};
use std::process::{Command, Output};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn validate_accepts_the_repository_and_names_the_broken_file_and_line() {
    let dir = workdir();
    let ok = alliance(dir.path(), &["validate"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    let count = std::fs::read_dir(common::repo().join("pipelines")).unwrap().count();
    let models = ["staging", "intermediate", "marts"]
        .iter()
        .flat_map(|l| std::fs::read_dir(common::repo().join("sql").join(l)).unwrap().flatten())
        .filter(|e| e.path().extension().is_some_and(|x| x == "sql"))
        .count();
    assert!(stdout(&ok).contains(&format!("{count} pipelines and {models} models valid")), "{}", stdout(&ok));

    // The JSON form lists every model with the SQL of each data test, as the build runs it.
    let json = alliance(dir.path(), &["validate", "--json"]);
    assert!(json.status.success(), "{}", stderr(&json));
    let listed: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), models);
    let int = listed.iter().find(|m| m["model"] == "int_pathways").unwrap();
    assert_eq!(int["layer"], "intermediate");
    let unique = int["tests"].as_array().unwrap().iter().find(|t| t["name"] == "unique(pathway_id)").unwrap();
    assert_eq!(
        unique["failing_rows_sql"],
        r#"SELECT "pathway_id", count(*) AS duplicates FROM "int_pathways" GROUP BY "pathway_id" HAVING count(*) > 1"#
    );

    // A model reading a table that does not exist is caught without running anything.
    let bad_model = dir.path().join("sql/marts/mart_typo.sql");
    std::fs::write(&bad_model, "SELECT * FROM int_pathway").unwrap();
    let out = alliance(dir.path(), &["validate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("mart_typo.sql") && stderr(&out).contains("reads 'int_pathway'"), "{}", stderr(&out));
    std::fs::write(&bad_model, "SELECT no_such_column FROM int_pathways").unwrap();
    let out = alliance(dir.path(), &["validate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("does not plan") && stderr(&out).contains("no_such_column"), "{}", stderr(&out));
    std::fs::remove_file(&bad_model).unwrap();

    let broken = dir.path().join("pipelines/trust_pathways_ral.toml");
    let text = std::fs::read_to_string(&broken).unwrap().replace("type = \"date\"", "type = \"datee\"");
    std::fs::write(&broken, text).unwrap();
    let bad = alliance(dir.path(), &["validate"]);
    assert_eq!(bad.status.code(), Some(2), "configuration errors exit with 2");
    let message = stderr(&bad);
    assert!(
        message.contains("trust_pathways_ral.toml") && message.contains("datee") && message.contains("line"),
        "{message}"
    );
}

#[test]
fn seed_generate_ingest_and_rerun_from_the_command_line() {
    let dir = workdir();
    let shared = common::shared();
    let seed = alliance(dir.path(), &["seed", "--from", shared.to_str().unwrap()]);
    assert!(seed.status.success(), "{}", stderr(&seed));
    let generate = alliance(dir.path(), &["generate", "--rows", "2000", "--months", "2", "--fault-rate", "0.01"]);
    assert!(generate.status.success(), "{}", stderr(&generate));
    assert!(stdout(&generate).contains("deliberate faults"));

    let first = alliance(dir.path(), &["ingest", "--json"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let reports: serde_json::Value = serde_json::from_slice(&first.stdout).expect("--json prints JSON");
    let pipelines = reports.as_array().unwrap();
    assert_eq!(pipelines.len(), std::fs::read_dir(common::repo().join("pipelines")).unwrap().count());
    let loaded =
        |p: &serde_json::Value| p["files"].as_array().unwrap().iter().filter(|f| f["outcome"] == "loaded").count();
    assert!(pipelines.iter().all(|p| loaded(p) >= 1), "every pipeline loaded its files");

    let second = alliance(dir.path(), &["ingest"]);
    assert!(second.status.success());
    let summary = stdout(&second);
    assert!(summary.contains("trust_pathways_ral") && summary.contains("cwt_provider"), "{summary}");
    // The "new" column is 0 on every pipeline line of the second run.
    for line in summary.lines().skip(2) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() == 9 {
            assert_eq!(cols[2], "0", "re-run loads nothing: {line}");
        }
    }
    let runs = std::fs::read_dir(dir.path().join("warehouse/_state/runs")).unwrap().count();
    assert_eq!(runs, 2, "each run leaves a record");

    let unknown = alliance(dir.path(), &["ingest", "--pipeline", "no_such_pipeline"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("no pipeline named 'no_such_pipeline'"));
}

#[test]
fn fail_on_reject_exits_3_when_a_file_is_rejected() {
    let dir = workdir();
    let landing = dir.path().join("landing/trusts/RAL");
    std::fs::create_dir_all(&landing).unwrap();
    std::fs::write(landing.join("RAL_cancer_pathways_2024-01.csv"), "not,the,right,columns\n1,2,3,4\n").unwrap();
    let out = alliance(dir.path(), &["ingest", "--pipeline", "trust_pathways_ral", "--fail-on-reject"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stdout(&out).contains("missing required column"), "{}", stdout(&out));
}

#[test]
fn a_missing_key_is_reported_without_running() {
    let dir = workdir();
    let out = Command::new(env!("CARGO_BIN_EXE_alliance"))
        .current_dir(dir.path())
        .args(["--env", "test", "generate", "--rows", "10", "--months", "1", "--trusts", "RAL", "--no-screening"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = Command::new(env!("CARGO_BIN_EXE_alliance"))
        .current_dir(dir.path())
        .args(["--env", "test", "ingest", "--pipeline", "trust_pathways_ral"])
        .env_remove(common::TEST_KEY_ENV)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(common::TEST_KEY_ENV), "{}", stderr(&out));
}
