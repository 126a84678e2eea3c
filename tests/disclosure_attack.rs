//! Disclosure control against an attacker that sees only the published Parquet files
//! (`tests/attacker`): over the demo's data and over generated data at 2,000, 20,000 and 200,000
//! pathways with three seeds each, no withheld count of any mart built from patient-level data can
//! be placed in an interval narrower than 5, no published count is between 1 and 4, and a row
//! publishes the whole of each identity or none of it.

mod attacker;
mod common;

use alliance_warehouse::generate::{self, GenerateArgs};
use alliance_warehouse::transform::{self, ModelStatus};
use attacker::{Attack, Published};
use common::{pipelines, repo, shared, Workspace};

/// A protected mart: its name, its counts and the counts of each complete row identity.
type Protected = (&'static str, &'static [&'static str], &'static [&'static [&'static str]]);

/// The marts built from patient-level data, with their counts and complete row identities.
const PROTECTED: [Protected; 7] = [
    ("mart_waits_by_group", &["total", "within_standard", "breaches"], &[&["total", "within_standard", "breaches"]]),
    ("mart_early_diagnosis", &["staged", "early", "late"], &[&["staged", "early", "late"]]),
    ("mart_referral_rates", &["referrals"], &[]),
    (
        "mart_screening_coverage",
        &["eligible", "screened", "not_screened"],
        &[&["eligible", "screened", "not_screened"]],
    ),
    (
        "mart_backlog",
        &["open_pathways", "backlog_over_62_days", "waiting_63_to_103_days", "waiting_104_days_or_more"],
        &[&["backlog_over_62_days", "waiting_63_to_103_days", "waiting_104_days_or_more"]],
    ),
    ("mart_activity_recovery", &["activity", "activity_2019"], &[]),
    ("mart_independent_sector", &["treatments", "modality_first_treatments"], &[]),
];

const PROTECTION: f64 = 5.0;

/// Generates, ingests and builds every mart that reads patient-level or screening data (the seeded
/// OHID screening files included).
async fn build(ws: &Workspace, current: GenerateArgs, baseline: GenerateArgs) {
    generate::seed(&shared(), &repo().join("config/reference"), &ws.stores.landing).await.unwrap();
    generate::run(&current, &ws.stores.landing).await.unwrap();
    generate::run(&baseline, &ws.stores.landing).await.unwrap();
    let wanted: Vec<_> = pipelines()
        .into_iter()
        .filter(|p| {
            p.name.starts_with("ref_") || p.name.starts_with("trust_pathways") || p.name.starts_with("screening_")
        })
        .collect();
    ws.ingest(&wanted).await;
    let graph = transform::load_graph(&repo().join("sql"), &pipelines()).unwrap();
    let select =
        PROTECTED.iter().map(|(m, _, _)| format!("+{m}")).collect::<Vec<_>>().join(",") + ",+mart_inequality_gaps";
    let options = transform::BuildOptions { select: Some(select), ..Default::default() };
    let props = parquet::file::properties::WriterProperties::builder().build();
    let report = transform::build(&ws.stores.warehouse, &wanted, &graph, &options, "attack", props).await.unwrap();
    for m in &report.models {
        assert_eq!(m.status, ModelStatus::Ok, "{}: {:?} {:#?}", m.model, m.error, m.tests);
    }
}

/// Everything the attacker can see, and what it can work out.
fn attack(ws: &Workspace, scenario: &str) -> (usize, f64) {
    let published = Published::read(&ws.warehouse_dir().join("marts"));
    let mut withheld = 0;
    for (mart, counts, identities) in PROTECTED {
        assert!(published.rows(mart) > 0, "{scenario}: {mart} is published");
        for row in 0..published.rows(mart) {
            for c in counts {
                let v = published.num(mart, row, c);
                assert!(v.is_none_or(|v| v == 0.0 || v >= 5.0), "{scenario}: {mart} row {row} publishes {c} = {v:?}");
                withheld += (v.is_none() && published.suppressed(mart, row)) as usize;
            }
            for identity in identities {
                let nulls = identity.iter().filter(|c| published.num(mart, row, c).is_none()).count();
                assert!(
                    nulls == 0 || nulls == identity.len(),
                    "{scenario}: {mart} row {row} publishes part of {identity:?}"
                );
            }
        }
    }
    let mut a = Attack::default();
    attacker::knowledge::everything(&published, &mut a);
    let exposures = a.run();
    let mut narrowest = f64::INFINITY;
    for e in &exposures {
        let width = e.upper - e.lower;
        assert!(width >= PROTECTION - 1e-6, "{scenario}: {} is known to lie in [{}, {}]", e.cell, e.lower, e.upper);
        narrowest = narrowest.min(width);
    }
    assert_eq!(exposures.len(), withheld, "{scenario}: every withheld count was attacked");
    (withheld, narrowest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_withheld_count_can_be_narrowed_on_generated_data() {
    let mut small_run_withheld_most = false;
    for rows in [2_000u64, 20_000, 200_000] {
        for seed in [1u64, 2, 3] {
            let ws = Workspace::local();
            let current = GenerateArgs { rows, months: 6, seed, fault_rate: 0.001, ..GenerateArgs::default() };
            let baseline = GenerateArgs {
                rows: rows / 2,
                months: 3,
                start: "2019-01".into(),
                seed: seed + 2019,
                no_screening: true,
                ..GenerateArgs::default()
            };
            build(&ws, current, baseline).await;
            let scenario = format!("{rows} rows, seed {seed}");
            let (withheld, narrowest) = attack(&ws, &scenario);
            eprintln!("{scenario}: {withheld} counts withheld, narrowest range {narrowest}");
            assert!(withheld > 0, "{scenario}: the data is thin enough to need suppression");
            small_run_withheld_most |= rows == 2_000 && withheld > 100;
        }
    }
    assert!(small_run_withheld_most, "the smallest runs withhold many cells");
}

/// The demo's data: `make demo` generates 60,000 pathways with faults and a 2019 baseline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_withheld_count_can_be_narrowed_on_the_demo_data() {
    let ws = Workspace::local();
    let current = GenerateArgs { rows: 60_000, fault_rate: 0.001, ..GenerateArgs::default() };
    let baseline = GenerateArgs {
        rows: 60_000,
        start: "2019-01".into(),
        months: 6,
        no_screening: true,
        seed: 2019,
        ..GenerateArgs::default()
    };
    build(&ws, current, baseline).await;
    let (withheld, narrowest) = attack(&ws, "demo");
    eprintln!("demo: {withheld} counts withheld, narrowest range {narrowest}");
    assert!(withheld > 0);
}
