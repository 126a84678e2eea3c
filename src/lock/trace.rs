//! Test instrumentation of the lock (not for production use).
//!
//! With `ALLIANCE_LOCK_TRACE=<file>` set, every process appends one line per lock event to that
//! file: `<event> <run_id> <pid> <detail>`, where the event is `enter` (the lock is held from
//! now), `takeover` (a stale lock was replaced; the detail is the stale holder's run id), `lost`
//! (a renewal failed) or `leave` (written before the release, so from then on this run no longer
//! counts on the lock). Each line is one `write` to a file opened with `O_APPEND`, so lines of
//! different processes never interleave and their order in the file is the order in which they
//! happened: holders overlap iff an `enter` follows another `enter` before its `leave`.
//!
//! `ALLIANCE_LOCK_TRACE_HOLD_MS=<ms>` makes a run wait that long after taking the lock before it
//! works, so that races in tests overlap in time; `ALLIANCE_LOCK_TRACE_START_AT_MS=<Unix ms>`
//! makes it wait until that instant before it tries for the lock, so that racing processes
//! started one after another reach the lock together.

use std::io::Write;

/// The trace file, if tracing is on.
const TRACE_ENV: &str = "ALLIANCE_LOCK_TRACE";
/// Pause after taking the lock, in milliseconds.
const HOLD_ENV: &str = "ALLIANCE_LOCK_TRACE_HOLD_MS";
/// When to try for the lock, Unix milliseconds.
const START_ENV: &str = "ALLIANCE_LOCK_TRACE_START_AT_MS";

/// Appends one event to the trace file, if tracing is on. Failures to trace are ignored.
pub fn event(event: &str, run_id: &str, detail: &str) {
    let Some(path) = std::env::var_os(TRACE_ENV) else { return };
    let line = format!("{event} {run_id} {} {detail}\n", std::process::id());
    if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = file.write_all(line.as_bytes());
    }
}

/// Waits `ALLIANCE_LOCK_TRACE_HOLD_MS`, if set.
pub async fn hold() {
    if let Some(ms) = std::env::var(HOLD_ENV).ok().and_then(|v| v.parse::<u64>().ok()) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

/// Waits until `ALLIANCE_LOCK_TRACE_START_AT_MS`, if set and in the future.
pub async fn start_gate() {
    if let Some(at) = std::env::var(START_ENV).ok().and_then(|v| v.parse::<i64>().ok()) {
        let wait = at - chrono::Utc::now().timestamp_millis();
        if wait > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(wait as u64)).await;
        }
    }
}
