//! Operations through the `alliance` binary: one run at a time per warehouse, the scheduler
//! (new files, graceful stop on SIGTERM), and crash safety under SIGKILL at many points of
//! ingest and publish.

mod common;

use common::{alliance, alliance_command, alliance_ok as ok, workdir};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::path::Path;
use std::time::{Duration, Instant};

fn seed_and_generate(dir: &Path, rows: &str, start: &str, months: &str) {
    let shared = common::shared();
    ok(dir, &["seed", "--from", shared.to_str().unwrap()]);
    ok(dir, &["generate", "--rows", rows, "--start", start, "--months", months]);
}

/// Every published mart, read whole: name → its rows as sorted text lines.
fn marts(dir: &Path) -> Vec<(String, Vec<String>)> {
    let folder = dir.join("warehouse/marts");
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(&folder) else { return out };
    let mut paths: Vec<_> =
        entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "parquet")).collect();
    paths.sort();
    for path in paths {
        let bytes = bytes::Bytes::from(std::fs::read(&path).unwrap());
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap_or_else(|e| panic!("{} is not readable Parquet: {e}", path.display()))
            .build()
            .unwrap();
        let batches: Vec<_> = reader.collect::<Result<_, _>>().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let text = arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string();
        let mut rows: Vec<String> = text.lines().skip(3).filter(|l| l.starts_with('|')).map(str::to_string).collect();
        rows.sort();
        out.push((path.file_name().unwrap().to_string_lossy().into_owned(), rows));
    }
    out
}

/// Rows are equal cell by cell; numbers to 1e-9 relative (parallel sums may add in another
/// order).
fn same_row(a: &str, b: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split('|').collect(), b.split('|').collect());
    a.len() == b.len()
        && a.iter().zip(&b).all(|(x, y)| match (x.trim().parse::<f64>(), y.trim().parse::<f64>()) {
            (Ok(x), Ok(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
            _ => x.trim() == y.trim(),
        })
}

#[test]
fn a_second_run_waits_for_the_lock_holder() {
    let dir = workdir();
    std::fs::create_dir_all(dir.path().join("warehouse/_state")).unwrap();
    let holder = serde_json::json!({
        "run_id": "held-by-test", "command": "run", "host": alliance_warehouse::lock::hostname(),
        "pid": std::process::id(), "acquired_at": chrono::Utc::now(),
        "expires_at": chrono::Utc::now() + chrono::Duration::hours(1),
    });
    std::fs::write(dir.path().join("warehouse/_state/lock.json"), holder.to_string()).unwrap();
    let out = alliance(dir.path(), &["run"]);
    assert_eq!(out.status.code(), Some(5), "locked runs exit with 5");
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(message.contains("locked by run held-by-test"), "{message}");
    assert!(!dir.path().join("warehouse/_state/runs").exists(), "nothing ran");
    // Status names the holder; once released, runs go ahead.
    assert!(ok(dir.path(), &["status"]).contains("held by run held-by-test"));
    std::fs::remove_file(dir.path().join("warehouse/_state/lock.json")).unwrap();
    let out = alliance(dir.path(), &["run"]);
    assert_ne!(out.status.code(), Some(5), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.path().join("warehouse/_state/runs").exists(), "the run went ahead and was recorded");
    assert!(!dir.path().join("warehouse/_state/lock.json").exists(), "the lock is released");
}

#[test]
fn a_run_that_loses_its_lock_stops_before_publishing_and_says_so() {
    let dir = workdir();
    seed_and_generate(dir.path(), "2000", "2024-01", "1");
    // A short time to live: renewed every second.
    let config = dir.path().join("config/test.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}lock_ttl_secs = 3\n")).unwrap();
    let trace = dir.path().join("lock.trace");
    let child = alliance_command(dir.path(), &["run"])
        .env("ALLIANCE_LOCK_TRACE", &trace)
        .env("ALLIANCE_LOCK_TRACE_HOLD_MS", "2500")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&trace).unwrap_or_default().starts_with("enter ") {
        assert!(Instant::now() < deadline, "the run did not take the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Another run takes the lock over (as after a stall of this one past its expiry).
    let lock = dir.path().join("warehouse/_state/lock.json");
    let theirs = serde_json::json!({
        "run_id": "the-other-run", "command": "run", "host": alliance_warehouse::lock::hostname(),
        "pid": std::process::id(), "acquired_at": chrono::Utc::now(),
        "expires_at": chrono::Utc::now() + chrono::Duration::hours(1),
    });
    std::fs::write(&lock, theirs.to_string()).unwrap();
    let out = child.wait_with_output().unwrap();
    let message = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{message}");
    assert!(message.contains("the warehouse lock was lost (another run took it over)"), "{message}");
    assert!(std::fs::read_to_string(&trace).unwrap().contains("\nlost "), "the renewal noticed");
    // Nothing was loaded or published; the record says why; the other run's lock is untouched.
    assert!(!dir.path().join("warehouse/staging").exists() && !dir.path().join("warehouse/marts").exists());
    let runs: Vec<_> = std::fs::read_dir(dir.path().join("warehouse/_state/runs")).unwrap().flatten().collect();
    assert_eq!(runs.len(), 1);
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(runs[0].path()).unwrap()).unwrap();
    assert!(record["error"].as_str().unwrap().contains("lock was lost"), "{record}");
    assert_eq!(record["lock_lost"], "another run took it over", "{record}");
    assert!(std::fs::read_to_string(&lock).unwrap().contains("the-other-run"));
}

#[test]
fn the_scheduler_runs_new_files_once_and_stops_gracefully_on_sigterm() {
    let dir = workdir();
    seed_and_generate(dir.path(), "2000", "2024-01", "1");
    ok(dir.path(), &["schedule", "--once"]);
    let runs = || std::fs::read_dir(dir.path().join("warehouse/_state/runs")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(runs(), 1);
    let record: serde_json::Value = {
        let entry = std::fs::read_dir(dir.path().join("warehouse/_state/runs")).unwrap().next().unwrap().unwrap();
        serde_json::from_slice(&std::fs::read(entry.path()).unwrap()).unwrap()
    };
    assert_eq!(record["trigger"], "new_file");
    assert!(record["error"].is_null(), "{record}");
    assert_eq!(marts(dir.path()).len(), common::declared_marts(), "every mart published");
    ok(dir.path(), &["schedule", "--once"]);
    assert_eq!(runs(), 1, "nothing new: nothing runs");

    // As a service: a new month lands, the scheduler picks it up, SIGTERM stops it cleanly.
    let mut service = alliance_command(dir.path(), &["schedule"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    ok(dir.path(), &["generate", "--rows", "800", "--start", "2024-02", "--months", "1"]);
    let deadline = Instant::now() + Duration::from_secs(90);
    while runs() < 2 || dir.path().join("warehouse/_state/lock.json").exists() {
        assert!(Instant::now() < deadline, "the scheduler did not run the new files");
        assert!(service.try_wait().unwrap().is_none(), "the scheduler exited early");
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = std::process::Command::new("kill").args(["-TERM", &service.id().to_string()]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = service.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "the scheduler did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(exit.success(), "graceful stop exits 0: {exit:?}");
}

#[test]
fn killed_runs_leave_published_marts_intact_and_the_next_run_converges() {
    let dir = workdir();
    seed_and_generate(dir.path(), "6000", "2024-01", "2");
    ok(dir.path(), &["run"]);
    let first = marts(dir.path());
    assert_eq!(first.len(), common::declared_marts());
    // New extracts arrive; runs are killed at many points of ingest and build.
    ok(dir.path(), &["generate", "--rows", "6000", "--start", "2024-03", "--months", "2", "--seed", "7"]);
    for delay_ms in [30, 120, 300, 600, 1000, 1600, 2500, 4000] {
        let mut child = alliance_command(dir.path(), &["run"]).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
        // Whatever the moment, every published mart is a complete, readable Parquet file.
        let now = marts(dir.path());
        assert_eq!(now.len(), common::declared_marts(), "killed after {delay_ms} ms");
    }
    let after_kills = ok(dir.path(), &["run"]);
    assert!(!after_kills.contains("failed"), "{after_kills}");
    let converged = marts(dir.path());

    // The same landing files run once, uninterrupted, in a fresh warehouse.
    let fresh = workdir();
    let status = std::process::Command::new("cp")
        .args(["-a", dir.path().join("landing").to_str().unwrap(), fresh.path().to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    ok(fresh.path(), &["run"]);
    let uninterrupted = marts(fresh.path());
    assert_eq!(converged.len(), uninterrupted.len());
    for ((name, rows), (_, expected)) in converged.iter().zip(&uninterrupted) {
        assert_eq!(rows.len(), expected.len(), "{name}");
        for (got, want) in rows.iter().zip(expected) {
            assert!(same_row(got, want), "{name} differs from an uninterrupted run:\n{got}\n{want}");
        }
    }
    assert_ne!(first, converged, "the new extracts changed the marts");
    assert!(
        !dir.path().join("warehouse/marts/_staging").exists()
            || std::fs::read_dir(dir.path().join("warehouse/marts/_staging"))
                .unwrap()
                .flatten()
                .all(|d| { std::fs::read_dir(d.path()).map(|mut e| e.next().is_none()).unwrap_or(true) }),
        "staged marts of killed runs are cleaned up"
    );
}
