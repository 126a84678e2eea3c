//! Trust extracts as PTL snapshots (load mode `merge`), end to end through ingest and the marts:
//! two hand-built monthly snapshots of Royal Free, and the demo's data (2024 and the 2019
//! baseline). The expected figures come from the hand-built files and from the generated landing
//! files read here as text, not from the warehouse's own rules.

mod common;

use alliance_warehouse::generate::{self, pathways::nhs_number, rng::Rng, GenerateArgs};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Float64Type};
use common::{build, load_reference, only, pipelines, repo, shared, Workspace};
use std::collections::BTreeMap;

const RAL_HEADER: &str = "Pathway ID,NHS Number,Provider Code,Commissioner Code,Referral Date,Referral Route,Suspected Cancer,First Seen Date,FDS Date,FDS Outcome,DTT Date,Treatment Date,Treatment Modality,Treating Provider,Stage,Age,Sex,Ethnicity,LSOA\n";

/// One RAL CSV row; dates `dd/mm/yyyy` or empty.
fn ral_row(id: &str, nhs: &str, referral: &str, fds: &str, dtt: &str, treatment: &str) -> String {
    let (outcome, modality, treating, stage) = match (fds.is_empty(), treatment.is_empty()) {
        (true, _) => ("", "", "", ""),
        (false, true) => ("CONFIRMED", "", "", "2"),
        (false, false) => ("CONFIRMED", "Surgery", "RAL", "2"),
    };
    format!(
        "{id},{nhs},RAL,93C,{referral},URGENT SUSPECTED CANCER,Breast,{referral},{fds},{outcome},{dtt},{treatment},{modality},{treating},{stage},60,F,A,E01000001\n"
    )
}

/// Rows of `batches` as (column → text) maps.
fn rows(batches: &[RecordBatch], columns: &[&str]) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    for b in batches {
        for i in 0..b.num_rows() {
            let mut row = BTreeMap::new();
            for c in columns {
                let col =
                    arrow::compute::cast(b.column_by_name(c).unwrap(), &arrow::datatypes::DataType::Utf8).unwrap();
                let col = col.as_string::<i32>();
                row.insert(c.to_string(), if col.is_null(i) { String::new() } else { col.value(i).to_string() });
            }
            out.push(row);
        }
    }
    out
}

async fn mart(ws: &Workspace, name: &str) -> Vec<RecordBatch> {
    let path = format!("marts/{name}.parquet");
    ws.read_parquet("marts/").await.into_iter().filter(|(p, _)| *p == path).flat_map(|(_, b)| b).collect()
}

#[tokio::test]
async fn a_pathway_open_in_january_and_treated_in_february_is_in_januarys_backlog_only() {
    let ws = Workspace::local();
    load_reference(&ws).await;
    let mut rng = Rng::new(17, "snapshots");
    let mut nhs = || String::from_utf8(nhs_number(&mut rng).to_vec()).unwrap();
    // A1–A5: open at the end of January, treated on 10 February. B1–B5: open in both months.
    // E1–E5: open in January, absent from February's snapshot (closed by absence).
    // C1–C7: referred in February, open. B1 is repeated within February's snapshot.
    let (a, b, e, c): (Vec<String>, Vec<String>, Vec<String>, Vec<String>) = (
        (0..5).map(|_| nhs()).collect(),
        (0..5).map(|_| nhs()).collect(),
        (0..5).map(|_| nhs()).collect(),
        (0..7).map(|_| nhs()).collect(),
    );
    let mut jan = RAL_HEADER.to_string();
    let mut feb = RAL_HEADER.to_string();
    for i in 0..5 {
        jan += &ral_row(&format!("A{i}"), &a[i], "05/01/2024", "20/01/2024", "25/01/2024", "");
        feb += &ral_row(&format!("A{i}"), &a[i], "05/01/2024", "20/01/2024", "25/01/2024", "10/02/2024");
        jan += &ral_row(&format!("B{i}"), &b[i], "10/01/2024", "", "", "");
        feb += &ral_row(&format!("B{i}"), &b[i], "10/01/2024", "", "", "");
        jan += &ral_row(&format!("E{i}"), &e[i], "15/01/2024", "", "", "");
    }
    feb += &ral_row("B0", &b[0], "10/01/2024", "", "", "");
    for (i, n) in c.iter().enumerate() {
        feb += &ral_row(&format!("C{i}"), n, "05/02/2024", "", "", "");
    }
    ws.land("trusts/RAL/RAL_cancer_pathways_2024-01.csv", jan).await;
    ws.land("trusts/RAL/RAL_cancer_pathways_2024-02.csv", feb).await;
    let reports = ws.ingest(&only(&["trust_pathways_ral"])).await;
    // A pathway reported again by February's snapshot is not a duplicate; B0 twice in February is.
    let quarantined: Vec<(String, u64)> = reports[0]
        .files
        .iter()
        .map(|f| (f.path.rsplit('/').next().unwrap().to_string(), f.counts.rows_quarantined))
        .collect();
    assert_eq!(
        quarantined,
        [("RAL_cancer_pathways_2024-01.csv".to_string(), 0), ("RAL_cancer_pathways_2024-02.csv".to_string(), 1)]
    );

    let report = build(&ws, &repo().join("sql"), Some("+mart_backlog,+int_pathways")).await;
    for m in &report.models {
        assert_eq!(
            m.status,
            alliance_warehouse::transform::ModelStatus::Ok,
            "{}: {:?} {:#?}",
            m.model,
            m.error,
            m.tests
        );
    }
    let backlog = rows(
        &mart(&ws, "mart_backlog").await,
        &["month_end", "provider_code", "open_pathways", "backlog_over_62_days"],
    );
    let open: Vec<(String, String, String)> = backlog
        .iter()
        .map(|r| (r["month_end"].clone(), r["provider_code"].clone(), r["open_pathways"].clone()))
        .collect();
    // January: A, B, E (15). February: B and C (12); A was treated, E is absent.
    assert_eq!(
        open,
        [
            ("2024-01-31".to_string(), "RAL".to_string(), "15.0".to_string()),
            ("2024-02-29".to_string(), "RAL".to_string(), "12.0".to_string())
        ]
    );
    assert!(backlog.iter().all(|r| r["backlog_over_62_days"] == "0.0"));

    // The merged pathway table: each pathway once, A0 with February's values.
    let pathways = ws.read_parquet("models/int_pathways/").await;
    let pathways: Vec<RecordBatch> =
        pathways.into_iter().filter(|(p, _)| p.ends_with("/data.parquet")).flat_map(|(_, b)| b).collect();
    let all = rows(&pathways, &["pathway_id", "first_treatment_date", "treatment_modality", "extract_month"]);
    assert_eq!(all.len(), 5 + 5 + 5 + 7, "one row per pathway");
    let a0: Vec<_> = all.iter().filter(|r| r["pathway_id"] == "A0").collect();
    assert_eq!(a0.len(), 1);
    assert_eq!(
        (a0[0]["first_treatment_date"].as_str(), a0[0]["treatment_modality"].as_str(), a0[0]["extract_month"].as_str()),
        ("2024-02-10", "Surgery", "2024-02-01")
    );
    let e0: Vec<_> = all.iter().filter(|r| r["pathway_id"] == "E0").collect();
    assert_eq!(e0[0]["extract_month"], "2024-01-01", "E0 as January last reported it");
}

/// Day number of `dd/mm/yyyy`.
fn dmy(s: &str) -> Option<i32> {
    let mut it = s.split('/');
    let (d, m, y) = (it.next()?.parse().ok()?, it.next()?.parse().ok()?, it.next()?.parse().ok()?);
    alliance_warehouse::ingest::dates::days_from_civil(y, m, d)
}

#[tokio::test]
async fn the_demos_2024_backlog_holds_no_2019_pathway() {
    let ws = Workspace::local();
    generate::seed(&shared(), &repo().join("config/reference"), &ws.stores.landing).await.unwrap();
    let current = GenerateArgs { rows: 60_000, fault_rate: 0.001, ..GenerateArgs::default() };
    let summary = generate::run(&current, &ws.stores.landing).await.unwrap();
    let baseline = GenerateArgs {
        rows: 60_000,
        start: "2019-01".into(),
        seed: 2019,
        no_screening: true,
        ..GenerateArgs::default()
    };
    generate::run(&baseline, &ws.stores.landing).await.unwrap();
    let wanted: Vec<_> = pipelines()
        .into_iter()
        .filter(|p| p.name.starts_with("ref_") || p.name.starts_with("trust_pathways"))
        .collect();
    ws.ingest(&wanted).await;
    let report = build(&ws, &repo().join("sql"), Some("+mart_backlog")).await;
    assert!(report.models.iter().all(|m| m.status == alliance_warehouse::transform::ModelStatus::Ok));

    let batches = mart(&ws, "mart_backlog").await;
    let jan_first = alliance_warehouse::ingest::dates::days_from_civil(2024, 1, 1).unwrap();
    let mut checked = 0;
    for b in &batches {
        let month_end = b.column_by_name("month_end").unwrap().as_primitive::<Date32Type>();
        let provider = b.column_by_name("provider_code").unwrap().as_string::<i32>();
        let count = |c: &str, i: usize| {
            let col = b.column_by_name(c).unwrap().as_primitive::<Float64Type>();
            col.is_valid(i).then(|| col.value(i))
        };
        for i in 0..b.num_rows() {
            let end = month_end.value(i);
            if end < jan_first {
                continue;
            }
            checked += 1;
            // Every 2024 referral is on or after 1 January 2024 (the generator's first month), so
            // at a 2024 month end nobody can have waited longer than since then; a 2019 pathway
            // would have waited over 1,600 days.
            let longest = end - jan_first;
            if longest <= 62 {
                assert_eq!(count("backlog_over_62_days", i), Some(0.0), "{} at day {end}", provider.value(i));
            }
            if longest < 104 {
                assert_eq!(count("waiting_104_days_or_more", i), Some(0.0), "{} at day {end}", provider.value(i));
            }
            // Open pathways cannot outnumber the trust's 2024 referrals so far (2,500 a month:
            // 60,000 over 4 trusts and 6 months).
            let months = alliance_warehouse::ingest::dates::civil_from_days(end).1 as f64;
            let open = count("open_pathways", i).expect("open pathways are never small here");
            assert!(open <= 2500.0 * months, "{}: {open} open at day {end}", provider.value(i));
        }
    }
    assert_eq!(checked, 24, "six 2024 month ends × four trusts");

    // Royal Free's open pathways at each 2024 month end, counted from its own month's CSV read as
    // text: referred by then, not treated and not ruled out by then. Rows spoilt by the generator
    // are quarantined, so the figures may differ by at most the file's faults.
    let ral = rows(&batches, &["month_end", "provider_code", "open_pathways"]);
    for month in 1..=6u32 {
        let path = format!("trusts/RAL/RAL_cancer_pathways_2024-{month:02}.csv");
        let text = String::from_utf8(ws.stores.landing.get(&path).await.unwrap().to_vec()).unwrap();
        let next = alliance_warehouse::ingest::dates::days_from_civil(2024, month + 1, 1)
            .unwrap_or_else(|| alliance_warehouse::ingest::dates::days_from_civil(2025, 1, 1).unwrap());
        let end = next - 1;
        let mut open = 0i64;
        for line in text.lines().skip(1).filter(|l| !l.is_empty()) {
            let f: Vec<&str> = line.split(',').collect();
            let (referral, fds, outcome, treatment) = (dmy(f[4]), dmy(f[8]), f[9], dmy(f[11]));
            let treated = treatment.is_some_and(|t| t <= end);
            let ruled_out = outcome == "RULED OUT" && fds.is_some_and(|d| d <= end);
            if referral.is_some_and(|r| r <= end) && !treated && !ruled_out {
                open += 1;
            }
        }
        let faults = summary.files.iter().find(|f| f.path == path).unwrap().faults as i64;
        let (y, m, d) = alliance_warehouse::ingest::dates::civil_from_days(end);
        let key = format!("{y:04}-{m:02}-{d:02}");
        let row = ral.iter().find(|r| r["month_end"] == key && r["provider_code"] == "RAL").expect("RAL row");
        let published: f64 = row["open_pathways"].parse().unwrap();
        assert!((published as i64 - open).abs() <= faults, "RAL {key}: {published} published, {open} in the file");
    }
}
