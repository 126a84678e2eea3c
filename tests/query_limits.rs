//! Bounded query output (issue 14): `alliance query` streams results instead of collecting them,
//! stops with a clear error at `[limits] max_query_rows` / `max_query_bytes`, leaves no partial
//! `--output` file, caps the table format, and DataFusion sessions draw on a memory pool of
//! `[limits] memory_limit_bytes`.

mod common;

use common::{alliance, alliance_command, workdir};
use std::path::Path;
use std::time::Duration;

/// A working copy whose environment has these `[limits]`.
fn with_limits(limits: &str) -> tempfile::TempDir {
    let dir = workdir();
    let config = dir.path().join("config/test.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}\n[limits]\n{limits}\n")).unwrap();
    dir
}

/// Runs `alliance` to the end, sampling its peak resident set size (VmHWM) from /proc.
fn run_measured(dir: &Path, args: &[&str]) -> (std::process::Output, u64) {
    let mut child = alliance_command(dir, args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    while child.try_wait().unwrap().is_none() {
        if let Ok(text) = std::fs::read_to_string(&status) {
            let hwm = text.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.split_whitespace().next());
            peak_kib = peak_kib.max(hwm.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (child.wait_with_output().unwrap(), peak_kib * 1024)
}

const CROSS_JOIN: &str = "select a.value as a, b.value as b from range(100000) a cross join range(100000) b";

#[test]
fn a_cross_join_to_dev_null_streams_in_bounded_memory_and_stops_at_the_row_limit() {
    let dir = with_limits("max_query_rows = 3000000");
    let (out, peak) = run_measured(dir.path(), &["query", "--format", "csv", "--output", "/dev/null", CROSS_JOIN]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("the result is larger than max_query_rows = 3000000"), "{stderr}");
    assert!(stderr.contains("raise [limits] max_query_rows"), "{stderr}");
    assert!(peak > 0 && peak < 1 << 30, "peak RSS {} MiB", peak >> 20);
}

#[test]
fn every_format_streams_within_the_limits_and_a_file_is_whole_or_absent() {
    let dir = with_limits("max_query_rows = 1000\nmax_query_bytes = 20000\nmax_table_rows = 5");
    let file = dir.path().join("out.csv");
    let file_arg = file.to_str().unwrap();
    // Within the limits: the whole result.
    for format in ["csv", "json", "parquet"] {
        let path = dir.path().join(format!("whole.{format}"));
        let sql = "select value from range(900) order by value";
        let out = alliance(dir.path(), &["query", "--format", format, "--output", path.to_str().unwrap(), sql]);
        assert!(out.status.success(), "{format}: {}", String::from_utf8_lossy(&out.stderr));
        let bytes = std::fs::read(&path).unwrap();
        let lines = bytes.iter().filter(|b| **b == b'\n').count();
        match format {
            "csv" => assert_eq!(lines, 901, "header and every row"),
            "json" => assert_eq!(lines, 900),
            _ => assert!(bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1")),
        }
    }
    // Past the row limit: an error, and neither the file nor a partial one is left.
    for format in ["csv", "json", "parquet"] {
        let out =
            alliance(dir.path(), &["query", "--format", format, "--output", file_arg, "select value from range(5000)"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{format}: {stderr}");
        assert!(stderr.contains("max_query_rows = 1000"), "{format}: {stderr}");
        assert!(!file.exists() && !dir.path().join("out.csv.partial").exists(), "{format}: no partial output");
    }
    // Past the byte limit (few rows, long text).
    let wide = "select repeat('x', 1000) as wide from range(500)";
    let out = alliance(dir.path(), &["query", "--format", "csv", "--output", file_arg, wide]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("max_query_bytes = 20000"), "{stderr}");
    assert!(!file.exists());
    // The table format shows its first rows and says the result goes on.
    let out = alliance(dir.path(), &["query", "select value from range(100000) order by value"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(table.lines().filter(|l| l.starts_with("| ") && !l.contains("value")).count(), 5, "{table}");
    assert!(table.contains("first 5 rows shown: the result goes on"), "{table}");
}

#[test]
fn sessions_draw_on_the_configured_memory_pool() {
    let join = "select count(*) as n from range(2000000) a join range(2000000) b on a.value = b.value";
    let dir = with_limits("memory_limit_bytes = 1048576");
    let out = alliance(dir.path(), &["query", join]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a 2M-row hash table does not fit in 1 MiB");
    assert!(stderr.contains("Resources exhausted") && stderr.contains("pool_size: 1024.0 KB"), "{stderr}");
    // The default pool (4 GiB) holds it.
    let dir = workdir();
    let out = alliance(dir.path(), &["query", "--format", "csv", join]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "n\n2000000\n");
}
