//! OHID's published cervical screening coverage (`../shared/data/screening`), through the path the
//! marts use: `alliance seed` → ingest → build of `mart_screening_coverage`.
//!
//! The oracle is the published CSV itself, read here with a splitter of the test's own (not the
//! ingest reader): for every NEL and NCL borough, age band and year OHID publishes, the mart's
//! coverage equals `Value`/100 and its Wilson interval (the `wilson_lower`/`wilson_upper` SQL
//! functions over Count and Denominator) equals OHID's `Lower/Upper CI 95.0 limit` to 0.05
//! percentage points (OHID uses Wilson's score interval for proportions).

mod common;

use alliance_warehouse::generate;
use alliance_warehouse::ingest::FileOutcome;
use alliance_warehouse::transform::ModelStatus;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type};
use common::{build, pipelines, repo, shared, Workspace};
use std::collections::BTreeMap;

/// The 13 boroughs of the two alliances, as the issue names them, with their ONS codes.
const BOROUGHS: [(&str, &str); 13] = [
    ("E09000003", "Barnet"),
    ("E09000007", "Camden"),
    ("E09000010", "Enfield"),
    ("E09000014", "Haringey"),
    ("E09000019", "Islington"),
    ("E09000002", "Barking and Dagenham"),
    ("E09000001", "City of London"),
    ("E09000012", "Hackney"),
    ("E09000016", "Havering"),
    ("E09000025", "Newham"),
    ("E09000026", "Redbridge"),
    ("E09000030", "Tower Hamlets"),
    ("E09000031", "Waltham Forest"),
];

const FINGERTIPS: [&str; 2] = ["coverage_25_49.csv", "coverage_50_64.csv"];
const PRACTICES: &str = "cervicaldec2017.csv";

/// One CSV record: fields split at commas outside double quotes (`""` is a quote).
fn fields(line: &str) -> Vec<String> {
    let (mut out, mut field, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    out.push(field);
    out
}

/// The published file as header → value maps, one per data line.
fn published(name: &str) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(shared().join("screening").join(name)).expect("published file");
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = fields(lines.next().expect("a header"));
    lines
        .map(|l| {
            let row = fields(l);
            assert_eq!(row.len(), header.len(), "{name}: a line with {} fields", row.len());
            header.iter().cloned().zip(row).collect()
        })
        .collect()
}

/// A published row of the OHID export for one of our boroughs: (ONS code, age band, period) →
/// (value %, lower %, upper %, count, denominator).
type Expected = BTreeMap<(String, String, String), (f64, f64, f64, f64, f64)>;

fn expected() -> Expected {
    let mut out = Expected::new();
    for file in FINGERTIPS {
        for row in published(file) {
            let code = &row["Area Code"];
            if !BOROUGHS.iter().any(|(c, _)| c == code) || !row["Category Type"].is_empty() {
                continue;
            }
            let num = |k: &str| row[k].parse::<f64>().unwrap_or_else(|_| panic!("{file}: {k} of {code}"));
            let age = row["Age"].trim_end_matches(" yrs").to_string();
            let key = (code.clone(), age, row["Time period"].clone());
            let values = (
                num("Value"),
                num("Lower CI 95.0 limit"),
                num("Upper CI 95.0 limit"),
                num("Count"),
                num("Denominator"),
            );
            assert!(out.insert(key.clone(), values).is_none(), "{file}: {key:?} twice");
        }
    }
    out
}

fn column_f64(b: &RecordBatch, name: &str) -> Vec<Option<f64>> {
    let c = cast(b.column_by_name(name).unwrap_or_else(|| panic!("column {name}")), &DataType::Float64).unwrap();
    c.as_primitive::<Float64Type>().iter().collect()
}

fn column_text(b: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let c = cast(b.column_by_name(name).unwrap_or_else(|| panic!("column {name}")), &DataType::Utf8).unwrap();
    let c = c.as_string::<i32>();
    (0..c.len()).map(|i| c.is_valid(i).then(|| c.value(i).to_string())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ohid_cervical_coverage_reaches_the_mart_as_published() {
    let ws = Workspace::local();
    generate::seed(&shared(), &repo().join("config/reference"), &ws.stores.landing).await.unwrap();
    let wanted: Vec<_> =
        pipelines().into_iter().filter(|p| p.name.starts_with("ref_") || p.name.starts_with("screening_")).collect();
    let reports = ws.ingest(&wanted).await;

    // Every row of the three files is accounted for: written, quarantined or dropped.
    let mut files = BTreeMap::new();
    for report in reports.iter().filter(|r| r.pipeline.starts_with("screening_")) {
        for f in &report.files {
            let name = f.path.rsplit('/').next().unwrap().to_string();
            files.insert(name, (report.pipeline.clone(), f.outcome.clone(), f.counts));
        }
    }
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(names, [PRACTICES, FINGERTIPS[0], FINGERTIPS[1]], "the three files are read (and only they)");
    for (name, (pipeline, outcome, c)) in &files {
        assert_eq!(*outcome, FileOutcome::Loaded, "{name}");
        let lines = published(name).len() as u64;
        assert_eq!(c.rows_in, lines, "{name}: every data line is read");
        assert_eq!(c.rows_in, c.rows_written + c.rows_quarantined + c.rows_dropped, "{name}: {c:?}");
        let expected_pipeline = if name == PRACTICES { "screening_cervical_practices" } else { "screening_fingertips" };
        assert_eq!(pipeline, expected_pipeline, "{name}");
        // OHID's rows are all kept (aggregates typed by area type); the practice file's
        // suppression markers become empty values, not rejected rows.
        assert_eq!((c.rows_written, c.rows_quarantined, c.rows_dropped), (lines, 0, 0), "{name}");
    }
    assert_eq!(files[PRACTICES].2.rows_in, 7_569, "PROVENANCE.md: 7,569 practices");

    // The practice file's figures survive the mangled headers: Camden's practices, as published.
    let practices = ws.table("screening_cervical_practices").await;
    let mut camden = (0.0, 0.0, 0usize);
    for row in published(PRACTICES) {
        if row["CCG"] == "NHS Camden CCG" {
            camden.0 += row["Eligible25to49"].parse::<f64>().unwrap_or(0.0);
            camden.1 += row["No..of.women.screened.in.previous.42.months"].parse::<f64>().unwrap_or(0.0);
            camden.2 += 1;
        }
    }
    assert!(camden.2 > 20, "Camden CCG has its practices in the file");
    let mut staged = (0.0, 0.0, 0usize);
    for b in &practices {
        let (ccg, eligible, screened) =
            (column_text(b, "ccg_name"), column_f64(b, "eligible_25_49"), column_f64(b, "screened_25_49"));
        for i in 0..b.num_rows() {
            if ccg[i].as_deref() == Some("NHS Camden CCG") {
                staged.0 += eligible[i].unwrap_or(0.0);
                staged.1 += screened[i].unwrap_or(0.0);
                staged.2 += 1;
            }
        }
    }
    assert_eq!(staged, camden, "Camden CCG: eligible, screened, practices");

    // Build the mart over everything seeded (no synthetic export: only OHID's rows).
    let report = build(&ws, &repo().join("sql"), Some("+mart_screening_coverage")).await;
    for m in &report.models {
        assert_eq!(m.status, ModelStatus::Ok, "{}: {:?} {:#?}", m.model, m.error, m.tests);
    }
    let mart: Vec<RecordBatch> = ws
        .read_parquet("marts/")
        .await
        .into_iter()
        .filter(|(path, _)| path == "marts/mart_screening_coverage.parquet")
        .flat_map(|(_, b)| b)
        .collect();
    assert!(!mart.is_empty(), "the mart is published");

    let expected = expected();
    assert_eq!(expected.len(), 13 * 2 * 15, "the CSVs hold 13 boroughs × 2 age bands × 15 years");
    let mut compared = 0;
    let mut seen = std::collections::BTreeSet::new();
    for b in &mart {
        let (source, level, code, area, age, period, programme) = (
            column_text(b, "source"),
            column_text(b, "level"),
            column_text(b, "area_code"),
            column_text(b, "area"),
            column_text(b, "age_band"),
            column_text(b, "period"),
            column_text(b, "programme"),
        );
        let (coverage, lower, upper, screened, eligible, month) = (
            column_f64(b, "coverage"),
            column_f64(b, "coverage_lower_95"),
            column_f64(b, "coverage_upper_95"),
            column_f64(b, "screened"),
            column_f64(b, "eligible"),
            column_text(b, "month"),
        );
        for i in 0..b.num_rows() {
            assert_eq!(source[i].as_deref(), Some("ohid_fingertips"), "no practice export was landed");
            assert_eq!(level[i].as_deref(), Some("borough"));
            assert_eq!(programme[i].as_deref(), Some("Cervical"));
            assert_eq!(month[i], None, "OHID publishes a year, not a month");
            let code = code[i].clone().unwrap();
            let name = BOROUGHS.iter().find(|(c, _)| *c == code).map(|(_, n)| *n);
            assert_eq!(area[i].as_deref(), name, "{code}: the borough's name");
            let key = (code, age[i].clone().unwrap(), period[i].clone().unwrap());
            let (value, lo, hi, count, denominator) =
                *expected.get(&key).unwrap_or_else(|| panic!("{key:?} is in the mart but not in the CSV"));
            assert_eq!((screened[i], eligible[i]), (Some(count), Some(denominator)), "{key:?}: counts");
            let coverage = coverage[i].unwrap_or_else(|| panic!("{key:?}: coverage withheld"));
            assert!((coverage - value / 100.0).abs() < 1e-7, "{key:?}: coverage {coverage} vs published {value}%");
            let (lower, upper) = (lower[i].unwrap(), upper[i].unwrap());
            assert!((100.0 * lower - lo).abs() <= 0.05, "{key:?}: lower {} vs published {lo}", 100.0 * lower);
            assert!((100.0 * upper - hi).abs() <= 0.05, "{key:?}: upper {} vs published {hi}", 100.0 * upper);
            assert!(seen.insert(key), "one row per borough, age band and year");
            compared += 1;
        }
    }
    assert_eq!(compared, expected.len(), "every published borough-year is in the mart, compared");
}
