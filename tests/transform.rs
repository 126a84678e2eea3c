//! The SQL transforms over real and generated data: the CWT mart reproduces NHS England's national
//! figures for every month of the published extract; write-audit-publish keeps the last good
//! mart when tests fail; disclosure control leaves no withheld value recoverable; selection and
//! in-memory dimensions behave as documented.

mod common;

use alliance_warehouse::code_identity::CodeIdentity;
use alliance_warehouse::generate::{self, GenerateArgs};
use alliance_warehouse::transform::{self, graph::Graph, model::Layer, ModelStatus};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type};
use common::{build, load_reference, only, pipelines, props, repo, text, Workspace};
use std::collections::HashMap;
use std::path::Path;

/// Builds every model as a binary with build identity `code` would; returns the models rebuilt.
async fn rebuilt_with(ws: &Workspace, code: CodeIdentity) -> Vec<String> {
    let all = pipelines();
    let graph = transform::load_graph(&repo().join("sql"), &all).unwrap();
    let options = transform::BuildOptions { code, ..Default::default() };
    let run_id = alliance_warehouse::runs::new_run_id();
    let report = transform::build(&ws.stores.warehouse, &all, &graph, &options, &run_id, props()).await.unwrap();
    assert!(report.succeeded(), "{:#?}", report.models);
    let mut rebuilt: Vec<String> =
        report.models.into_iter().filter(|m| m.status == ModelStatus::Ok).map(|m| m.model).collect();
    rebuilt.sort();
    rebuilt
}

async fn mart(ws: &Workspace, name: &str) -> Vec<RecordBatch> {
    let bytes = ws.stores.warehouse.get(&format!("marts/{name}.parquet")).await.expect("the mart is published");
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap().build().unwrap();
    reader.collect::<Result<Vec<_>, _>>().unwrap()
}

fn f64s(b: &RecordBatch, column: &str) -> Vec<Option<f64>> {
    let c = arrow::compute::cast(b.column_by_name(column).unwrap(), &DataType::Float64).unwrap();
    c.as_primitive::<Float64Type>().iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cwt_mart_reproduces_the_national_figures_for_every_month() {
    let ws = Workspace::local();
    load_reference(&ws).await;
    ws.ingest(&only(&["cwt_provider"])).await;
    let report = build(&ws, &repo().join("sql"), Some("+mart_cwt_performance")).await;
    assert!(report.succeeded(), "{:#?}", report.models);
    let names: Vec<&str> = report.models.iter().map(|m| m.model.as_str()).collect();
    assert_eq!(
        names,
        ["stg_cwt_month_source", "stg_cwt_commissioner", "stg_cwt_provider", "int_cwt_counted", "mart_cwt_performance"]
    );
    // Independently computed from the workbook (FDS: all rows; 31/62-day: ALL MODALITIES rows).
    let expected: [(&str, [(f64, f64); 3]); 6] = [
        ("2023-04-01", [(215274.0, 153593.0), (43806.0, 39227.0), (19514.0, 12613.0)]),
        ("2023-05-01", [(246948.0, 176082.0), (51282.0, 45680.0), (22999.0, 14350.0)]),
        ("2023-06-01", [(259629.0, 190807.0), (52981.0, 47884.0), (23870.0, 14989.0)]),
        ("2023-07-01", [(252133.0, 186879.0), (49834.0, 45339.0), (22511.0, 14684.0)]),
        ("2023-08-01", [(264533.0, 189443.0), (50767.0, 45857.0), (23351.0, 15370.0)]),
        ("2023-09-01", [(258858.0, 180534.0), (49290.0, 44086.0), (22747.5, 14403.5)]),
    ];
    let mut england: HashMap<(String, String), (f64, f64, f64)> = HashMap::new();
    for b in mart(&ws, "mart_cwt_performance").await {
        let (total, within, perf) = (f64s(&b, "total"), f64s(&b, "within_standard"), f64s(&b, "performance"));
        for i in 0..b.num_rows() {
            if text(&b, "level", i).as_deref() == Some("england")
                && text(&b, "basis", i).as_deref() == Some("provider")
                && text(&b, "route", i).as_deref() == Some("ALL")
                && text(&b, "cancer_type", i).as_deref() == Some("ALL")
            {
                let key = (text(&b, "month", i).unwrap(), text(&b, "standard", i).unwrap());
                england.insert(key, (total[i].unwrap(), within[i].unwrap(), perf[i].unwrap()));
            }
        }
    }
    // `seed` also lands the 2024–25 extracts (checked in tests/cwt_real.rs); these are 2023's.
    england.retain(|(month, _), _| month.starts_with("2023-"));
    assert_eq!(england.len(), 18, "3 standards × 6 months");
    for (month, figures) in expected {
        for (standard, (total, within)) in ["28-day FDS", "31-day Combined", "62-day Combined"].iter().zip(figures) {
            let got = england[&(month.to_string(), standard.to_string())];
            assert_eq!((got.0, got.1), (total, within), "{month} {standard}");
            assert!((got.2 - within / total).abs() < 1e-12);
        }
    }
    // FDS April 2023 as NHS England published it: 71.3%.
    let april = england[&("2023-04-01".to_string(), "28-day FDS".to_string())].2;
    assert_eq!((april * 1000.0).round() / 10.0, 71.3);
}

/// A throw-away SQL project: one staging view and one mart with a test.
fn project(dir: &Path, mart_sql: &str) {
    std::fs::create_dir_all(dir.join("staging")).unwrap();
    std::fs::create_dir_all(dir.join("marts")).unwrap();
    std::fs::write(dir.join("staging/stg_trusts.sql"), "SELECT org_code, alliance FROM ref_alliance_trusts").unwrap();
    std::fs::write(dir.join("marts/mart_trust_count.sql"), mart_sql).unwrap();
    std::fs::write(
        dir.join("marts/mart_trust_count.toml"),
        "description = \"trusts per alliance\"\n[[tests]]\nkind = \"assert\"\nname = \"ten_or_fewer\"\ncondition = \"trusts <= 10\"\n",
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_tests_keep_the_last_good_mart_and_history_keeps_versions() {
    let ws = Workspace::local();
    load_reference(&ws).await;
    let sql = ws.dir.path().join("sql");
    project(&sql, "SELECT alliance, count(*) AS trusts FROM stg_trusts GROUP BY alliance");
    let first = build(&ws, &sql, None).await;
    assert!(first.succeeded(), "{:#?}", first.models);
    let published = ws.stores.warehouse.get("marts/mart_trust_count.parquet").await.unwrap();

    // A change that breaks the mart's test: nothing is published, the old mart stays.
    project(&sql, "SELECT alliance, count(*) * 100 AS trusts FROM stg_trusts GROUP BY alliance");
    let failed = build(&ws, &sql, None).await;
    let m = failed.models.iter().find(|m| m.model == "mart_trust_count").unwrap();
    assert_eq!(m.status, ModelStatus::TestsFailed);
    let t = &m.tests[0];
    assert!(!t.passed && t.failing_rows == 2 && t.sample.contains("trusts"), "{t:?}");
    assert_eq!(ws.stores.warehouse.get("marts/mart_trust_count.parquet").await.unwrap(), published);
    assert!(ws.stores.warehouse.list("marts/_staging/").await.unwrap().is_empty(), "no staged leftovers");

    // Fixed: published again; history keeps every published version (run ids sort by time),
    // the failed build's none.
    project(&sql, "SELECT alliance, count(*) AS trusts, 1 AS version FROM stg_trusts GROUP BY alliance");
    assert!(build(&ws, &sql, None).await.succeeded());
    let history = ws.stores.warehouse.list("marts/_history/mart_trust_count/").await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(ws.stores.warehouse.get(history[0].location.as_ref()).await.unwrap(), published);
    assert_eq!(
        ws.stores.warehouse.get(history[1].location.as_ref()).await.unwrap(),
        ws.stores.warehouse.get("marts/mart_trust_count.parquet").await.unwrap()
    );
    let now = mart(&ws, "mart_trust_count").await;
    assert!(now[0].column_by_name("version").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_model_skips_its_downstream_and_others_still_publish() {
    let ws = Workspace::local();
    load_reference(&ws).await;
    let sql = ws.dir.path().join("sql");
    project(&sql, "SELECT alliance, count(*) AS trusts FROM stg_trusts GROUP BY alliance");
    std::fs::create_dir_all(sql.join("intermediate")).unwrap();
    std::fs::write(sql.join("intermediate/int_broken.sql"), "SELECT no_such_column FROM stg_trusts").unwrap();
    std::fs::write(sql.join("marts/mart_on_broken.sql"), "SELECT * FROM int_broken").unwrap();
    let report = build(&ws, &sql, None).await;
    let status: HashMap<&str, &ModelStatus> = report.models.iter().map(|m| (m.model.as_str(), &m.status)).collect();
    assert_eq!(status["int_broken"], &ModelStatus::Failed);
    assert_eq!(status["mart_on_broken"], &ModelStatus::Skipped);
    assert_eq!(status["mart_trust_count"], &ModelStatus::Ok);
    let error = report.models.iter().find(|m| m.model == "int_broken").unwrap().error.clone().unwrap();
    assert!(error.contains("no_such_column"), "{error}");
}

/// An intermediate model's row, row-count and unique tests are judged on its rows as they are
/// written: a failure must still be found, counted as the SQL test counts it, sampled, and keep
/// the model unpublished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intermediate_model_failing_tests_judged_while_written_is_not_promoted() {
    let ws = Workspace::local();
    load_reference(&ws).await;
    let sql = ws.dir.path().join("sql");
    project(&sql, "SELECT alliance, count(*) AS trusts FROM stg_trusts GROUP BY alliance");
    std::fs::create_dir_all(sql.join("intermediate")).unwrap();
    // Every North East London trust twice.
    std::fs::write(
        sql.join("intermediate/int_trusts.sql"),
        "SELECT org_code, alliance FROM stg_trusts \
         UNION ALL SELECT org_code, alliance FROM stg_trusts WHERE alliance = 'North East London'",
    )
    .unwrap();
    std::fs::write(
        sql.join("intermediate/int_trusts.toml"),
        "description = \"trusts, some twice\"\n\
         [[tests]]\nkind = \"unique\"\ncolumns = [\"org_code\"]\n\
         [[tests]]\nkind = \"not_null\"\ncolumns = [\"org_code\", \"alliance\"]\n\
         [[tests]]\nkind = \"assert\"\nname = \"not_north_central\"\ncondition = \"alliance <> 'North Central London'\"\n\
         [[tests]]\nkind = \"row_count\"\nmax = 1\n",
    )
    .unwrap();
    std::fs::write(sql.join("marts/mart_on_trusts.sql"), "SELECT count(*) AS n FROM int_trusts").unwrap();
    let report = build(&ws, &sql, None).await;
    let model = |name: &str| report.models.iter().find(|m| m.model == name).unwrap();
    // The oracle: trusts per alliance counted by a mart, by SQL.
    assert_eq!(model("mart_trust_count").status, ModelStatus::Ok);
    let counts = mart(&ws, "mart_trust_count").await;
    let trusts = |alliance: &str| -> u64 {
        let b = &counts[0];
        let i = (0..b.num_rows()).find(|&i| text(b, "alliance", i).as_deref() == Some(alliance)).unwrap();
        text(b, "trusts", i).unwrap().parse().unwrap()
    };
    let (nel, ncl) = (trusts("North East London"), trusts("North Central London"));
    assert!(nel > 0 && ncl > 0);

    let int = model("int_trusts");
    assert_eq!(int.status, ModelStatus::TestsFailed);
    let failing: Vec<(bool, u64)> = int.tests.iter().map(|t| (t.passed, t.failing_rows)).collect();
    assert_eq!(failing, vec![(false, nel), (true, 0), (false, ncl), (false, 1)]);
    assert!(int.tests[0].sample.contains("duplicates"), "{}", int.tests[0].sample);
    assert!(int.tests[2].sample.contains("North Central London"), "{}", int.tests[2].sample);
    assert_ne!(model("mart_on_trusts").status, ModelStatus::Ok);
    assert!(ws.stores.warehouse.get("models/int_trusts/data.parquet").await.is_err(), "not promoted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mart_builds_on_generated_data_and_disclosure_leaves_nothing_recoverable() {
    let ws = Workspace::local();
    load_reference(&ws).await;
    let args = GenerateArgs { rows: 6_000, months: 3, start: "2024-01".into(), ..GenerateArgs::default() };
    generate::run(&args, &ws.stores.landing).await.unwrap();
    let baseline =
        GenerateArgs { rows: 3_000, months: 1, start: "2019-01".into(), no_screening: true, ..GenerateArgs::default() };
    generate::run(&baseline, &ws.stores.landing).await.unwrap();
    let all = pipelines();
    ws.ingest(&all).await;
    let report = build(&ws, &repo().join("sql"), None).await;
    for m in &report.models {
        assert_eq!(m.status, ModelStatus::Ok, "{}: {:?} {:#?}", m.model, m.error, m.tests);
    }
    let graph: Graph = transform::load_graph(&repo().join("sql"), &all).unwrap();
    let marts: Vec<_> = graph.models.iter().filter(|m| m.layer == Layer::Mart).collect();
    assert_eq!(marts.len(), 10, "the nine marts of SPEC §5 and mart_referral_activity");
    let mut checked = 0;
    for m in marts {
        let batches = mart(&ws, &m.name).await;
        assert!(batches.iter().map(|b| b.num_rows()).sum::<usize>() > 0, "{} has rows", m.name);
        let Some(d) = &m.spec.disclosure else { continue };
        let b = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        let suppressed = b.column_by_name("suppressed").unwrap().as_boolean().clone();
        for column in &d.counts {
            // No published count between 1 and 4.
            assert!(f64s(&b, column).iter().flatten().all(|v| *v == 0.0 || *v >= 5.0), "{}.{column}", m.name);
        }
        // Whole identities: a row publishes a complete identity's total and parts, or none.
        for identity in d.identities.iter().filter(|i| i.complete) {
            let cells: Vec<&String> = std::iter::once(&identity.total).chain(&identity.parts).collect();
            for i in 0..b.num_rows() {
                let withheld = cells.iter().filter(|c| b.column_by_name(c).unwrap().is_null(i)).count();
                assert!(withheld == 0 || withheld == cells.len(), "{} row {i}", m.name);
            }
        }
        // Rates and proportions go with the counts they are built on.
        for i in (0..b.num_rows()).filter(|i| suppressed.value(*i)) {
            assert!(d.dependent.iter().all(|c| b.column_by_name(c).unwrap().is_null(i)), "{} row {i}", m.name);
        }
        let audit = report.models.iter().find(|r| r.model == m.name).and_then(|r| r.disclosure.clone());
        let audit = audit.unwrap_or_else(|| panic!("{} has an audit in the run report", m.name));
        assert!(audit.min_protection_range.is_none_or(|r| r >= d.protection), "{}: {audit:?}", m.name);
        checked += 1;
    }
    assert_eq!(checked, 7, "every mart built from patient-level data carries disclosure control");
    // Re-running on the same inputs changes nothing: every model is unchanged, no mart is
    // rewritten, no history version appears.
    let before = ws.stores.warehouse.list("marts/").await.unwrap();
    let again = build(&ws, &repo().join("sql"), None).await;
    assert!(again.models.iter().all(|m| m.status == ModelStatus::Unchanged), "{:#?}", again.models);
    let after = ws.stores.warehouse.list("marts/").await.unwrap();
    let identity = |v: &Vec<object_store::ObjectMeta>| {
        v.iter().map(|m| (m.location.to_string(), m.e_tag.clone())).collect::<Vec<_>>()
    };
    assert_eq!(identity(&before), identity(&after));
    // Fingerprints follow the code: a new build of the SQL functions rebuilds the marts that call
    // them (read off the SQL files: wilson_*, dsr*, rate_*, sii/rii) and nothing else; a new build
    // of disclosure control rebuilds the marts that declare it and the gaps mart that reads them.
    let calling_stats = [
        "mart_cwt_performance",
        "mart_early_diagnosis",
        "mart_inequality_gaps",
        "mart_referral_rates",
        "mart_screening_coverage",
        "mart_waits_by_group",
    ];
    let stats = CodeIdentity { stats: "a different build of src/stats".into(), ..CodeIdentity::compiled() };
    assert_eq!(rebuilt_with(&ws, stats.clone()).await, calling_stats);
    assert_eq!(rebuilt_with(&ws, stats.clone()).await, Vec::<String>::new(), "the same code rebuilds nothing");
    let disclosure = CodeIdentity { disclosure: "another disclosure build".into(), ..stats };
    let protected = rebuilt_with(&ws, disclosure).await;
    let declared: Vec<&str> = ["activity_recovery", "backlog", "early_diagnosis", "independent_sector"]
        .into_iter()
        .chain(["inequality_gaps", "referral_rates", "screening_coverage", "waits_by_group"])
        .collect();
    assert_eq!(protected, declared.iter().map(|m| format!("mart_{m}")).collect::<Vec<_>>());
    // Back to this build: both sets, i.e. every mart, but no intermediate model.
    let mut both: Vec<String> = protected.into_iter().chain(calling_stats.map(String::from)).collect();
    both.sort();
    both.dedup();
    assert_eq!(rebuilt_with(&ws, CodeIdentity::compiled()).await, both);
    assert_eq!(rebuilt_with(&ws, CodeIdentity::compiled()).await, Vec::<String>::new());
    let after = ws.stores.warehouse.list("marts/").await.unwrap();
    assert!(after.len() > before.len(), "rebuilt marts were republished");
    // A new screening export changes only the models that read screening data.
    let more = GenerateArgs { rows: 0, months: 1, start: "2024-04".into(), trusts: vec![], ..GenerateArgs::default() };
    generate::run(&more, &ws.stores.landing).await.unwrap();
    ws.ingest(&only(&["screening_coverage"])).await;
    let partial = build(&ws, &repo().join("sql"), None).await;
    let rebuilt: Vec<&str> =
        partial.models.iter().filter(|m| m.status == ModelStatus::Ok).map(|m| m.model.as_str()).collect();
    assert_eq!(rebuilt, ["mart_screening_coverage", "mart_inequality_gaps"]);
    // The inequality data is not too thin to show suppression at work.
    let waits = mart(&ws, "mart_waits_by_group").await;
    assert!(waits.iter().any(|b| b.column_by_name("suppressed").unwrap().as_boolean().true_count() > 0));
    // Recovery against 2019: the baseline month is 100%, later months are measured against it.
    let recovery = mart(&ws, "mart_activity_recovery").await;
    let measured = recovery.iter().flat_map(|b| f64s(b, "recovery_percent")).flatten().count();
    assert!(measured > 0);
    // The statistics aggregates publish values: ESP2013 DSRs (ref_esp2013 joined) inside their
    // Dobson limits, and SIIs.
    let rates = mart(&ws, "mart_referral_rates").await;
    let (dsr, lower, upper) = (
        rates.iter().flat_map(|b| f64s(b, "dsr")).collect::<Vec<_>>(),
        rates.iter().flat_map(|b| f64s(b, "dsr_lower_95")).collect::<Vec<_>>(),
        rates.iter().flat_map(|b| f64s(b, "dsr_upper_95")).collect::<Vec<_>>(),
    );
    assert!(dsr.iter().flatten().count() > 0, "some DSRs are published");
    for ((d, l), u) in dsr.iter().zip(&lower).zip(&upper) {
        if let (Some(d), Some(l), Some(u)) = (d, l, u) {
            assert!(l < d && d < u, "{l} < {d} < {u}");
        }
    }
    let gaps = mart(&ws, "mart_inequality_gaps").await;
    assert!(gaps.iter().flat_map(|b| f64s(b, "sii")).flatten().count() > 0, "some SIIs are published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dimensions_are_in_memory_and_build_the_join_hash_table() {
    let ws = Workspace::local();
    load_reference(&ws).await;
    // More pathways than LSOAs, so that statistics make the dimension the smaller side.
    let args =
        GenerateArgs { rows: 6_000, months: 1, trusts: vec!["RAL".into()], no_screening: true, ..Default::default() };
    generate::run(&args, &ws.stores.landing).await.unwrap();
    ws.ingest(&only(&["trust_pathways_ral"])).await;
    let ctx = transform::session::session(&ws.stores.warehouse, &pipelines()).await.unwrap();
    let plan = ctx
        .sql("EXPLAIN SELECT p.pathway_id, l.imd_quintile FROM trust_pathways_ral p JOIN ref_lsoa_imd l ON l.lsoa_code = p.lsoa_code")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&plan).unwrap().to_string();
    let physical = text.split("physical_plan").nth(1).expect("a physical plan");
    let join = physical.find("HashJoinExec").expect("a hash join");
    let memory = physical.find("MemoryExec").or_else(|| physical.find("partition_sizes")).expect("an in-memory scan");
    let parquet = physical.find("ParquetExec").or_else(|| physical.find("file_type=parquet")).expect("a parquet scan");
    assert!(join < memory && memory < parquet, "the in-memory dimension is the build (left) side:\n{physical}");
}
