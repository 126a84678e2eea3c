//! The four trusts' synthetic pathway extracts (xlsx, csv, Windows-1252 tsv, Parquet) and the
//! UTF-16LE screening export, end to end: every deliberate fault is quarantined and nothing else;
//! re-runs change nothing; a revised month replaces only its trust's month; no raw NHS number
//! reaches any warehouse object.

mod common;

use alliance_warehouse::generate::{self, GenerateArgs};
use alliance_warehouse::ingest::FileOutcome;
use arrow::array::{Array, AsArray, RecordBatch};
use common::{only, text, Workspace};
use std::collections::BTreeMap;

const TRUST_PIPELINES: [&str; 5] =
    ["trust_pathways_r1h", "trust_pathways_ral", "trust_pathways_rqx", "trust_pathways_rrv", "screening_coverage"];

fn args(rows: u64, months: u32, fault_rate: f64) -> GenerateArgs {
    GenerateArgs { rows, months, fault_rate, start: "2024-01".into(), ..GenerateArgs::default() }
}

/// Every object under the warehouse, path → bytes.
async fn snapshot(ws: &Workspace) -> BTreeMap<String, (u64, Option<String>)> {
    let mut out = BTreeMap::new();
    for m in ws.stores.warehouse.list("").await.unwrap() {
        let path = m.location.to_string();
        if !path.starts_with("_state/runs/") {
            out.insert(path, (m.size, m.e_tag));
        }
    }
    out
}

#[tokio::test]
async fn every_fault_is_quarantined_and_every_row_accounted_for() {
    let ws = Workspace::local();
    let summary = generate::run(&args(8_000, 2, 0.01), &ws.stores.landing).await.unwrap();
    let pipelines = only(&TRUST_PIPELINES);
    let reports = ws.ingest(&pipelines).await;
    let prefix = |p: &str| match p {
        "trust_pathways_r1h" => "trusts/R1H/",
        "trust_pathways_ral" => "trusts/RAL/",
        "trust_pathways_rqx" => "trusts/RQX/",
        "trust_pathways_rrv" => "trusts/RRV/",
        _ => "screening/",
    };
    for r in &reports {
        let (rows, faults) = summary.totals(prefix(&r.pipeline));
        let t = r.totals();
        assert!(faults > 0, "{}: the generator injected faults", r.pipeline);
        assert!(r.files.iter().all(|f| f.outcome == FileOutcome::Loaded), "{}: {:?}", r.pipeline, r.files);
        // An invalid stage is an optional attribute: its value is quarantined and its row kept
        // (`on_invalid = "null_value"`); every other fault rejects its row.
        let value_faults = summary.value_faults(prefix(&r.pipeline));
        if r.pipeline != "screening_coverage" {
            assert!(value_faults > 0, "{}: the generator spoilt some stages", r.pipeline);
        }
        assert_eq!(
            t.rows_quarantined,
            faults - value_faults,
            "{}: exactly the spoilt rows are quarantined",
            r.pipeline
        );
        assert_eq!(t.values_nulled, value_faults, "{}: exactly the spoilt stages are nulled", r.pipeline);
        assert_eq!(t.rows_written + t.rows_quarantined, rows, "{}: nothing lost", r.pipeline);
        assert!(t.balanced());
        // Totals rows (Barts' TOTAL, the screening export's Total) are dropped by declared rules.
        let expected_dropped =
            if matches!(r.pipeline.as_str(), "trust_pathways_r1h" | "screening_coverage") { 2 } else { 0 };
        assert_eq!(t.rows_dropped, expected_dropped, "{}", r.pipeline);
        assert_eq!(ws.rows(&r.table).await as u64, t.rows_written, "{}", r.pipeline);
    }
    // Each trust's staging has one object per extract month.
    let ral = ws.read_parquet("staging/trust_pathways_ral/").await;
    let names: Vec<&str> = ral.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        names,
        ["staging/trust_pathways_ral/2024-01/RAL.parquet", "staging/trust_pathways_ral/2024-02/RAL.parquet"]
    );
    // The four shapes normalise to the same values: routes, outcomes and sex recoded.
    for table in ["trust_pathways_r1h", "trust_pathways_rqx", "trust_pathways_rrv"] {
        let b = &ws.table(table).await[0];
        for i in 0..b.num_rows() {
            let route = text(b, "referral_route", i).unwrap();
            assert!(generate::pathways::ROUTES.contains(&route.as_str()), "{table}: {route}");
            assert!(matches!(text(b, "sex", i).as_deref(), Some("M" | "F")));
            assert!(matches!(text(b, "fds_outcome", i).as_deref(), None | Some("CONFIRMED" | "RULED OUT")));
        }
    }
    // Homerton's "Head and Neck – upper aerodigestive" (a Windows-1252 en dash) is decoded and
    // mapped to the national tumour group; no site of any trust is left unmapped.
    let rqx = &ws.table("trust_pathways_rqx").await[0];
    let sites: Vec<String> = (0..rqx.num_rows()).filter_map(|i| text(rqx, "suspected_cancer", i)).collect();
    assert!(sites.iter().any(|s| s == "Head & Neck"), "Windows-1252 en dash decoded and mapped");
    assert_eq!(sites.len(), rqx.num_rows(), "every Homerton site maps");
}

#[tokio::test]
async fn rerun_changes_nothing_and_a_revised_month_replaces_only_its_trust_month() {
    let ws = Workspace::local();
    let summary = generate::run(&args(4_000, 2, 0.0), &ws.stores.landing).await.unwrap();
    let pipelines = only(&TRUST_PIPELINES);
    ws.ingest(&pipelines).await;
    let before = snapshot(&ws).await;

    // Same landing files: nothing is re-read or rewritten.
    let reports = ws.ingest(&pipelines).await;
    assert!(reports.iter().flat_map(|r| &r.files).all(|f| f.outcome == FileOutcome::Unchanged));
    assert_eq!(snapshot(&ws).await, before, "a re-run changes no warehouse object");

    // Touched but identical (copied again): recognised by content, still nothing rewritten.
    let ral_jan = "trusts/RAL/RAL_cancer_pathways_2024-01.csv";
    let bytes = ws.stores.landing.get(ral_jan).await.unwrap();
    ws.land(ral_jan, bytes.to_vec()).await;
    let reports = ws.ingest(&only(&["trust_pathways_ral"])).await;
    assert!(reports[0].files.iter().all(|f| f.outcome == FileOutcome::Unchanged));
    let staged = |s: &BTreeMap<String, (u64, Option<String>)>| {
        s.iter().filter(|(k, _)| k.starts_with("staging/")).map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>()
    };
    assert_eq!(staged(&snapshot(&ws).await), staged(&before));

    // A revised January from Royal Free (fewer rows, though not so few that the revision guard
    // holds it): January of RAL is replaced whole; February and the other trusts stay as they
    // were.
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let revised: String = text.lines().take(301).map(|l| format!("{l}\n")).collect();
    ws.land(ral_jan, revised.into_bytes()).await;
    let reports = ws.ingest(&pipelines).await;
    let loaded: Vec<&str> = reports
        .iter()
        .flat_map(|r| &r.files)
        .filter(|f| f.outcome == FileOutcome::Loaded)
        .map(|f| f.path.as_str())
        .collect();
    assert_eq!(loaded, [ral_jan]);
    let ral = ws.read_parquet("staging/trust_pathways_ral/").await;
    let rows: Vec<(String, usize)> =
        ral.iter().map(|(p, b)| (p.clone(), b.iter().map(|x| x.num_rows()).sum())).collect();
    assert_eq!(rows[0], ("staging/trust_pathways_ral/2024-01/RAL.parquet".to_string(), 300));
    // February's snapshot: RAL's 500 February referrals and its January pathways still open.
    let february = summary.files.iter().find(|f| f.path == "trusts/RAL/RAL_cancer_pathways_2024-02.csv").unwrap();
    assert!(february.rows > 500);
    assert_eq!(rows[1].1 as u64, february.rows, "February untouched");
    let after = snapshot(&ws).await;
    for (path, meta) in &before {
        if path.starts_with("staging/") && !path.contains("trust_pathways_ral/2024-01") {
            assert_eq!(after.get(path), Some(meta), "{path} untouched by RAL's revision");
        }
    }
}

#[tokio::test]
async fn no_raw_nhs_number_reaches_the_warehouse() {
    let ws = Workspace::local();
    generate::run(&args(2_000, 1, 0.02), &ws.stores.landing).await.unwrap();
    // Collect every NHS number the extracts carry (RAL's CSV and RQX's spaced form).
    let mut numbers = Vec::new();
    for path in ["trusts/RAL/RAL_cancer_pathways_2024-01.csv", "trusts/RQX/Homerton_cancer_JAN-24.tsv"] {
        let bytes = ws.stores.landing.get(path).await.unwrap();
        let content = String::from_utf8_lossy(&bytes);
        let sep = if path.ends_with(".csv") { ',' } else { '\t' };
        numbers.extend(content.lines().skip(1).filter_map(|l| l.split(sep).nth(1)).map(|n| n.replace(' ', "")));
    }
    assert!(numbers.len() > 900 && numbers.iter().all(|n| n.len() == 10));
    let reports = ws.ingest(&only(&TRUST_PIPELINES)).await;
    assert!(reports.iter().all(|r| r.totals().rows_quarantined > 0 || r.pipeline == "screening_coverage"));

    // Decode every Parquet object of the warehouse (staging and quarantine) and every state
    // file, and look for any of the numbers in any text, spaced or not.
    let mut texts = Vec::new();
    for (path, batches) in ws.read_parquet("").await {
        for b in batches {
            for col in b.columns() {
                if let Ok(s) = arrow::compute::cast(col, &arrow::datatypes::DataType::Utf8) {
                    let s = s.as_string::<i32>();
                    texts.extend((0..s.len()).filter(|i| !s.is_null(*i)).map(|i| s.value(i).replace(' ', "")));
                }
            }
        }
        texts.push(path);
    }
    for m in ws.stores.warehouse.list("").await.unwrap() {
        if !m.location.as_ref().ends_with(".parquet") {
            let bytes = ws.stores.warehouse.get(m.location.as_ref()).await.unwrap();
            texts.push(String::from_utf8_lossy(&bytes).replace(' ', ""));
        }
    }
    // Every ten-digit window of every run of digits in any text.
    let mut windows = std::collections::HashSet::new();
    for t in &texts {
        let bytes = t.as_bytes();
        let mut start = 0;
        while start < bytes.len() {
            let run = bytes[start..].iter().take_while(|b| b.is_ascii_digit()).count();
            for w in bytes[start..start + run].windows(10) {
                windows.insert(w.to_vec());
            }
            start += run.max(1);
        }
    }
    let leaked: Vec<&String> = numbers.iter().filter(|n| windows.contains(n.as_bytes())).collect();
    assert!(leaked.is_empty(), "{} raw NHS numbers found in the warehouse", leaked.len());

    // Pseudonyms are 16 bytes and stable: the same key gives the same pseudonym.
    let tables = ws.table("trust_pathways_ral").await;
    let column = |b: &RecordBatch| b.column_by_name("patient_pseudonym").unwrap().as_fixed_size_binary().clone();
    assert_eq!(column(&tables[0]).value_length(), 16);
    let p = alliance_warehouse::ingest::nhs::Pseudonymiser::new(common::TEST_KEY.as_bytes());
    let first = alliance_warehouse::ingest::nhs::validate(&numbers[0]).unwrap();
    let all: Vec<[u8; 16]> = tables
        .iter()
        .flat_map(|b| column(b).iter().map(|v| v.unwrap().try_into().unwrap()).collect::<Vec<_>>())
        .collect();
    assert!(all.contains(&p.pseudonym(&first)), "the pseudonym is the keyed HMAC of the number");
    // The quarantine notes an invalid NHS number without its value.
    let q = ws.read_parquet("quarantine/trust_pathways_ral/").await;
    let rows = q.iter().flat_map(|(_, b)| b).flat_map(|b| (0..b.num_rows()).map(move |i| (b, i)));
    let nhs_rejects: Vec<_> =
        rows.filter(|(b, i)| text(b, "column", *i).as_deref() == Some("patient_pseudonym")).collect();
    assert!(!nhs_rejects.is_empty());
    assert!(nhs_rejects.iter().all(|(b, i)| b.column_by_name("value").unwrap().is_null(*i)));
}

#[tokio::test]
async fn generation_is_deterministic_for_a_seed() {
    let a = Workspace::local();
    let b = Workspace::local();
    let s1 = generate::run(&args(3_000, 2, 0.01), &a.stores.landing).await.unwrap();
    let s2 = generate::run(&args(3_000, 2, 0.01), &b.stores.landing).await.unwrap();
    assert_eq!(s1.files.len(), s2.files.len());
    for f in &s1.files {
        let x = a.stores.landing.get(&f.path).await.unwrap();
        let y = b.stores.landing.get(&f.path).await.unwrap();
        assert!(x == y, "{} differs between two runs with the same seed", f.path);
    }
    let c = Workspace::local();
    let other = GenerateArgs { seed: 7, ..args(3_000, 2, 0.01) };
    generate::run(&other, &c.stores.landing).await.unwrap();
    let path = "trusts/RAL/RAL_cancer_pathways_2024-01.csv";
    assert_ne!(a.stores.landing.get(path).await.unwrap(), c.stores.landing.get(path).await.unwrap());
}

#[tokio::test]
async fn a_missing_pseudonymisation_key_is_a_clear_error() {
    let mut ws = Workspace::local();
    ws.env.pseudonymisation.key_env = "ALLIANCE_TEST_KEY_THAT_IS_NOT_SET".into();
    generate::run(&args(100, 1, 0.0), &ws.stores.landing).await.unwrap();
    let err = ws.try_ingest(&only(&["trust_pathways_ral"]), false).await.unwrap_err().to_string();
    assert!(err.contains("ALLIANCE_TEST_KEY_THAT_IS_NOT_SET"), "{err}");
    assert!(ws.read_parquet("staging/").await.is_empty());
}
