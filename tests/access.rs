//! Analysts read and never write (SPEC §9): `alliance query` and the shell refuse everything but
//! queries, never read a file path as a table, show each role only its tables, and export CSV
//! that spreadsheets do not run. Every refusal leaves the warehouse byte-identical.

mod common;

use alliance_warehouse::access::query::OutputFormat;
use alliance_warehouse::access::{shell, AccessSession, Role};
use alliance_warehouse::jobs::JobContext;
use alliance_warehouse::Error;
use common::{alliance, alliance_ok as ok, workdir};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// Statements that would write or read outside the warehouse, with the statement each error names.
const WRITES: &[(&str, &str)] = &[
    ("COPY (SELECT * FROM mart_backlog LIMIT 1) TO 'warehouse/marts/mart_backlog.parquet' STORED AS PARQUET", "COPY"),
    ("COPY (SELECT * FROM mart_backlog) TO 'exported.csv' STORED AS CSV", "COPY"),
    ("CREATE TABLE x AS SELECT 1", "CREATE TABLE"),
    ("INSERT INTO mart_backlog SELECT * FROM mart_backlog", "INSERT"),
    ("CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/'", "CREATE EXTERNAL TABLE"),
    ("SET datafusion.execution.batch_size = 1", "SET"),
];

/// Tables only engineers read: a pipeline staging table (patient-level), an intermediate model
/// (patient-level), a staging view and a reference table.
const ENGINEER_ONLY: &[&str] = &["trust_pathways_ral", "int_pathways", "stg_trust_pathways", "ref_lsoa_imd"];

/// Every file under `dir` with the SHA-256 of its bytes.
fn hashes(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let digest = hex::encode(Sha256::digest(std::fs::read(&path).unwrap()));
                out.insert(path.strip_prefix(dir).unwrap().display().to_string(), digest);
            }
        }
    }
    out
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A warehouse with published marts, models and staging tables, built through the binary.
fn built() -> tempfile::TempDir {
    let dir = workdir();
    ok(dir.path(), &["seed", "--from", common::shared().to_str().unwrap()]);
    ok(dir.path(), &["generate", "--rows", "2000", "--months", "2"]);
    ok(dir.path(), &["run"]);
    assert!(dir.path().join("warehouse/marts/mart_backlog.parquet").is_file());
    dir
}

/// The session a surface opens, from the library, over the warehouse of `dir`.
async fn session(dir: &Path, role: Role, tool: &'static str) -> AccessSession {
    let config = dir.join("config");
    let root = dir.display();
    let toml =
        std::fs::read_to_string(config.join("test.toml")).unwrap().replace("file://./", &format!("file://{root}/"));
    std::fs::write(config.join("absolute.toml"), toml).unwrap();
    std::env::set_var(common::TEST_KEY_ENV, common::TEST_KEY);
    let env = alliance_warehouse::config::Environment::load(&config, "absolute").unwrap();
    let job = JobContext {
        stores: alliance_warehouse::storage::Stores::open(&env.storage).unwrap(),
        env,
        pipelines: alliance_warehouse::config::load_pipelines(&dir.join("pipelines")).unwrap(),
        sql_dir: dir.join("sql"),
    };
    AccessSession::open(&job, role, tool).await.unwrap()
}

#[test]
fn queries_that_write_or_read_files_fail_and_change_nothing() {
    let dir = built();
    let warehouse = dir.path().join("warehouse");
    let before = hashes(&warehouse);
    // The analyst role is the default: no flag.
    for role in [&[][..], &["--role", "engineer"][..]] {
        let query = |sql: &str| alliance(dir.path(), &[&["query"][..], role, &[sql]].concat());
        for (sql, statement) in WRITES {
            let out = query(sql);
            assert_eq!(out.status.code(), Some(2), "{sql}: {}", stderr(&out));
            let expected = format!("alliance query is read-only: {statement} is not allowed");
            assert!(stderr(&out).contains(&expected), "{sql}: {}", stderr(&out));
        }
        let out = query("select * from '/etc/passwd'");
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains("'/etc/passwd' is a file path, not a table"), "{}", stderr(&out));
        assert!(!stderr(&out).contains("root:"), "nothing of the file is shown");
    }
    assert!(!dir.path().join("exported.csv").exists() && !dir.path().join("x").exists());
    assert_eq!(hashes(&warehouse), before, "the warehouse is byte-identical");

    // The shell's statement path, through the library: the same refusals, typed.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let analyst = session(dir.path(), Role::Analyst, "alliance shell").await;
        for (sql, statement) in WRITES {
            match shell::statement(&analyst, &format!("{sql};"), OutputFormat::Table).await {
                Err(Error::ReadOnly { tool: "alliance shell", statement: named }) => assert_eq!(named, *statement),
                other => panic!("{sql}: {:?}", other.map(|b| String::from_utf8_lossy(&b).into_owned())),
            }
        }
        let passwd = shell::statement(&analyst, "select * from '/etc/passwd';", OutputFormat::Csv).await;
        assert!(matches!(passwd, Err(Error::NotATable { .. })), "{passwd:?}");
        let rows = shell::statement(&analyst, "select count(*) AS n from mart_backlog;", OutputFormat::Csv).await;
        assert!(String::from_utf8(rows.unwrap()).unwrap().starts_with("n\n"));

        // Defence in depth, below the statement check: DataFusion's URL tables are off, and the
        // session's own options refuse what writes.
        let ctx = analyst.context();
        let url_table = ctx.sql("select * from '/etc/passwd'").await.map(|_| ()).unwrap_err().to_string();
        assert!(url_table.contains("not found"), "{url_table}");
        let options = alliance_warehouse::access::session::read_only_options();
        for (sql, _) in WRITES {
            assert!(ctx.sql_with_options(sql, options).await.is_err(), "{sql}");
        }
    });
    assert_eq!(hashes(&warehouse), before, "the warehouse is byte-identical");
}

#[test]
fn analysts_see_marts_runs_and_catalogue_and_engineers_see_everything() {
    let dir = built();
    let tables = |role: &str| ok(dir.path(), &["query", "--role", role, "--format", "csv", "SHOW TABLES"]);
    let (analyst, engineer) = (tables("analyst"), tables("engineer"));
    for name in ["mart_backlog", "mart_cwt_performance", "runs", "catalogue"] {
        assert!(analyst.contains(name) && engineer.contains(name), "{name}");
    }
    for name in ENGINEER_ONLY {
        assert!(!analyst.contains(name), "{name} listed for analysts:\n{analyst}");
        assert!(engineer.contains(name), "{name} not listed for engineers");
        let sql = format!("select * from {name} limit 1");
        let out = alliance(dir.path(), &["query", &sql]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        assert!(stderr(&out).contains(&format!("table '{name}'")), "{}", stderr(&out));
        assert!(stderr(&out).contains("needs the engineer role (--role engineer)"), "{}", stderr(&out));
        let rows = ok(dir.path(), &["query", "--role", "engineer", "--format", "csv", &sql]);
        assert_eq!(rows.lines().count(), 2, "{name} has rows for engineers");
    }
    // Hidden inside a join, a CTE or behind a schema name: still refused.
    for sql in [
        "select count(*) from mart_backlog b join int_pathways p on true",
        "with p as (select * from alliance.public.trust_pathways_ral) select count(*) from p",
    ] {
        let out = alliance(dir.path(), &["query", sql]);
        assert!(stderr(&out).contains("needs the engineer role"), "{sql}: {}", stderr(&out));
    }
    let runs = ok(dir.path(), &["query", "--format", "csv", "select count(*) AS n from runs"]);
    assert_eq!(runs, "n\n1\n");
    let catalogue = ok(dir.path(), &["query", "--format", "csv", "select distinct table_name from catalogue"]);
    assert!(catalogue.contains("mart_backlog") && !catalogue.contains("int_pathways"), "{catalogue}");

    // The shell lists only what the role sees.
    let shell = |role: &str| {
        let mut child = common::alliance_command(dir.path(), &["shell", "--role", role])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b".tables\nselect count(*) from int_pathways;\n.quit\n").unwrap();
        let out = child.wait_with_output().unwrap();
        (String::from_utf8_lossy(&out.stdout).into_owned(), stderr(&out))
    };
    let (listed, errors) = shell("analyst");
    assert!(listed.contains("mart_backlog") && !listed.contains("trust_pathways_ral"), "{listed}");
    assert!(errors.contains("table 'int_pathways' (intermediate model) needs the engineer role"), "{errors}");
    let (listed, errors) = shell("engineer");
    assert!(listed.contains("trust_pathways_ral") && listed.contains("int_pathways"), "{listed}");
    assert!(errors.is_empty(), "{errors}");

    // The library refuses `.schema` of a table the role does not see, naming the role it needs.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let analyst = session(dir.path(), Role::Analyst, "alliance shell").await;
        assert!(!analyst.context().table_exist("int_pathways").unwrap(), "not even registered");
        let mut format = OutputFormat::Table;
        match shell::dot_command(&analyst, ".schema int_pathways", &mut format).await {
            Err(Error::Forbidden { needs: Role::Engineer, .. }) => {}
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn csv_export_neutralises_formulas_unless_raw() {
    let dir = workdir();
    let sql = "SELECT '=HYPERLINK(\"http://x\",\"y\")' AS a, '+1' AS b, '-1' AS c, '@SUM(A1)' AS d, \
               chr(9) || 'tab' AS e, chr(13) || 'cr' AS f, 'a=b' AS g, -1 AS n";
    let safe = ok(dir.path(), &["query", "--format", "csv", sql]);
    assert_eq!(
        safe,
        "a,b,c,d,e,f,g,n\n\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",'+1,'-1,'@SUM(A1),'\ttab,\"'\rcr\",a=b,-1\n"
    );
    let raw = ok(dir.path(), &["query", "--format", "csv", "--raw", sql]);
    assert_eq!(
        raw,
        "a,b,c,d,e,f,g,n\n\"=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",+1,-1,@SUM(A1),\ttab,\"\rcr\",a=b,-1\n"
    );
}
