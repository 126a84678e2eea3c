//! The whole job against Azure Blob Storage as emulated by Azurite (npm, installed by
//! `make tools` / `.ci/run`), started here on 127.0.0.1: seed, generate, ingest, build and publish
//! the marts into `az://` containers, re-run idempotently, and query the marts back.

mod common;

use common::servers::Azurite;
use common::{alliance_command, workdir_with};

#[test]
fn the_whole_job_runs_against_azurite() {
    let azurite = Azurite::start();
    azurite.create_container("landing");
    azurite.create_container("warehouse");
    let dir = workdir_with(
        "[storage]\nlanding = \"az://landing/alliance\"\nwarehouse = \"az://warehouse\"\n\n[storage.options]\nuse_emulator = \"true\"\n",
    );
    let url = format!("http://127.0.0.1:{}", azurite.port);
    let run = |args: &[&str]| {
        let out = alliance_command(dir.path(), args).env("AZURITE_BLOB_STORAGE_URL", &url).output().unwrap();
        assert!(out.status.success(), "alliance {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let shared = common::shared();
    run(&["seed", "--from", shared.to_str().unwrap()]);
    run(&["generate", "--rows", "3000", "--months", "2", "--fault-rate", "0.005"]);
    let first = run(&["run"]);
    for mart in ["mart_cwt_performance", "mart_waits_by_group", "mart_screening_coverage", "mart_inequality_gaps"] {
        assert!(first.lines().any(|l| l.starts_with(mart) && l.contains(" ok ")), "{mart} published:\n{first}");
    }
    // The three provider extracts seeded (April–September 2023, 2024–25 in two files), every row.
    assert!(first.lines().any(|l| l.starts_with("cwt_provider ") && l.contains("174938")), "{first}");
    // Idempotent on Azure too: nothing loaded, nothing rebuilt.
    let second = run(&["run"]);
    assert!(second.lines().filter(|l| l.starts_with("mart_")).all(|l| l.contains("unchanged")), "{second}");
    // Analysts query the published marts over the same store.
    let answer = run(&["query", "SELECT total FROM mart_cwt_performance WHERE level = 'england' AND basis = 'provider' AND route = 'ALL' AND cancer_type = 'ALL' AND standard = '28-day FDS' AND month = DATE '2023-04-01'"]);
    assert!(answer.contains("215274"), "{answer}");
    let runs = run(&["query", "SELECT count(*) AS runs FROM runs"]);
    assert!(runs.contains("| 2 "), "{runs}");
}
