//! Plain-Parquet interoperability: every published mart, and a staging table written by
//! alliance's own dictionary chunks with 16-byte pseudonyms, read with DuckDB and with pyarrow
//! (pip, installed by `make tools` / `.ci/run`) gives exactly the rows `alliance query` returns;
//! and the query command's formats and errors (as an engineer: reference and staging tables).

mod common;

use common::{alliance, alliance_ok as ok, workdir};

#[test]
fn every_mart_reads_the_same_in_duckdb_pyarrow_and_alliance() {
    let dir = workdir();
    let shared = common::shared();
    ok(dir.path(), &["seed", "--from", shared.to_str().unwrap()]);
    ok(dir.path(), &["generate", "--rows", "4000", "--months", "2"]);
    ok(dir.path(), &["run"]);
    let exported = dir.path().join("exported");
    std::fs::create_dir_all(&exported).unwrap();
    let mut marts = 0;
    for entry in std::fs::read_dir(dir.path().join("warehouse/marts")).unwrap().flatten() {
        let path = entry.path();
        let Some(name) =
            path.file_stem().and_then(|n| n.to_str()).filter(|_| path.extension().is_some_and(|e| e == "parquet"))
        else {
            continue;
        };
        let json = ok(dir.path(), &["query", "--format", "json", &format!("SELECT * FROM {name}")]);
        std::fs::write(exported.join(format!("{name}.json")), json).unwrap();
        marts += 1;
    }
    let declared = common::declared_marts();
    assert_eq!(marts, declared, "every mart of sql/marts is published");
    let staging = "trust_pathways_ral";
    let json =
        ok(dir.path(), &["query", "--role", "engineer", "--format", "json", &format!("SELECT * FROM {staging}")]);
    assert!(json.lines().count() > 100, "{staging} has rows");
    std::fs::write(exported.join(format!("{staging}.json")), json).unwrap();
    let out = std::process::Command::new("python3")
        .arg(common::repo().join("tests/interop.py"))
        .arg(dir.path().join("warehouse/marts"))
        .arg(&exported)
        .arg(format!("{staging}={}", dir.path().join("warehouse/staging").join(staging).display()))
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    // Every mart and the staging table.
    assert!(stdout.contains(&format!("{} tables identical", declared + 1)), "{stdout}");
}

#[test]
fn query_formats_and_errors_that_point_at_the_sql() {
    let dir = workdir();
    ok(dir.path(), &["seed", "--from", common::shared().to_str().unwrap()]);
    ok(dir.path(), &["ingest", "--pipeline", "ref_operational_standards"]);
    let sql = "SELECT standard, threshold FROM ref_operational_standards WHERE standard = '28-day FDS' ORDER BY effective_from";
    let table = ok(dir.path(), &["query", "--role", "engineer", sql]);
    assert!(table.contains("| 28-day FDS | 0.75"), "{table}");
    let csv = ok(dir.path(), &["query", "--role", "engineer", "--format", "csv", sql]);
    assert_eq!(
        csv.lines().collect::<Vec<_>>(),
        ["standard,threshold", "28-day FDS,0.75", "28-day FDS,0.77", "28-day FDS,0.8"]
    );
    let json = ok(dir.path(), &["query", "--role", "engineer", "--format", "json", sql]);
    assert_eq!(json.lines().next().unwrap(), r#"{"standard":"28-day FDS","threshold":0.75}"#);
    let file = dir.path().join("out.parquet");
    ok(dir.path(), &["query", "--role", "engineer", "--format", "parquet", "--output", file.to_str().unwrap(), sql]);
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(
        std::fs::read(&file).unwrap(),
    ))
    .unwrap()
    .build()
    .unwrap();
    assert_eq!(reader.map(|b| b.unwrap().num_rows()).sum::<usize>(), 3);

    let out = alliance(dir.path(), &["query", "--role", "engineer", "SELECT standrd FROM ref_operational_standards"]);
    assert_eq!(out.status.code(), Some(2));
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(message.contains("standrd") && message.contains("|        ^"), "{message}");
    let out = alliance(dir.path(), &["query", "--role", "engineer", "SELECT * FROM\nref_operational_standards WHERE"]);
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(message.contains("2 | ref_operational_standards WHERE"), "{message}");

    // The shell reads statements from standard input too.
    let mut child = common::alliance_command(dir.path(), &["shell", "--role", "engineer"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b".tables\nSELECT count(*) AS n\n FROM ref_operational_standards;\n.quit\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ref_operational_standards") && text.contains("| 17 "), "{text}");
}
