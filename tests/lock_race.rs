//! The warehouse lock under real contention: eight `alliance ingest` processes started at once
//! race for it on the local file system, on S3 (s3s-fs) and on Azure (Azurite), for a free lock
//! and for stale locks (an expired one of another host; one left by a killed process).
//!
//! Every process appends its lock events to one trace file (`ALLIANCE_LOCK_TRACE`, see
//! `alliance_warehouse::lock::trace`), tries for the lock at the same instant as the others
//! (`ALLIANCE_LOCK_TRACE_START_AT_MS`) and holds it a while (`ALLIANCE_LOCK_TRACE_HOLD_MS`).
//! Appends are atomic and ordered, so the file is the history of the lock: the test checks that no
//! run enters while another holds it, and that each stale lock is taken over exactly once.
//!
//! The local test fails with the old takeover (delete the stale file, then create): of two racers
//! that read the same stale lock, the second deletes the first's fresh lock and creates its own
//! (two entries at once, or two takeovers of one stale lock), or a third creates a fresh lock in
//! the gap (no takeover at all). Checked by reverting to it: the test failed in most runs.

mod common;

use common::servers::{Azurite, S3Server};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RACERS: usize = 8;
const HOLD_MS: &str = "400";

/// How the racers reach the warehouse.
struct Target {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    /// Racers try for the lock at the same instant, or this far apart.
    stagger: Duration,
}

impl Target {
    fn new(storage_toml: &str, env: &[(&str, String)]) -> Self {
        let dir = common::workdir_with(storage_toml);
        std::fs::create_dir_all(dir.path().join("landing")).unwrap();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        Self { dir, env, stagger: Duration::ZERO }
    }

    fn staggered(self, by: Duration) -> Self {
        Self { stagger: by, ..self }
    }

    fn trace(&self) -> std::path::PathBuf {
        self.dir.path().join("lock.trace")
    }

    fn command(&self, hold_ms: &str) -> Command {
        let mut c = common::alliance_command(self.dir.path(), &["ingest"]);
        c.envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("ALLIANCE_LOCK_TRACE", self.trace())
            .env("ALLIANCE_LOCK_TRACE_HOLD_MS", hold_ms)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    }

    /// Starts the racers together; each takes the lock (exit 0) or finds it held (exit 5).
    fn race(&self) {
        // They start one after another but try for the lock at the same instant.
        let start_at = (chrono::Utc::now() + chrono::Duration::milliseconds(2500)).timestamp_millis();
        let children: Vec<_> = (0..RACERS as i64)
            .map(|i| {
                let at = start_at + i * self.stagger.as_millis() as i64;
                self.command(HOLD_MS).env("ALLIANCE_LOCK_TRACE_START_AT_MS", at.to_string()).spawn().unwrap()
            })
            .collect();
        let mut held = 0;
        for child in children {
            let out = child.wait_with_output().unwrap();
            match out.status.code() {
                Some(0) => held += 1,
                Some(5) => {}
                _ => panic!("racer failed ({:?}): {}", out.status, String::from_utf8_lossy(&out.stderr)),
            }
        }
        assert!(held >= 1, "someone got the lock");
    }

    /// A run that takes the lock and is killed (SIGKILL) while holding it: the lock it leaves
    /// names a process of this host that no longer exists. Returns its run id.
    fn killed_holder(&self) -> String {
        let before = entries(&self.trace(), "enter").len();
        let mut child = self.command("60000").spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let run = loop {
            if let Some(run) = entries(&self.trace(), "enter").get(before) {
                break run.clone();
            }
            assert!(Instant::now() < deadline, "the holder did not take the lock");
            if child.try_wait().unwrap().is_some() {
                let out = child.wait_with_output().unwrap();
                panic!("the holder exited early: {}", String::from_utf8_lossy(&out.stderr));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        child.kill().unwrap();
        child.wait().unwrap();
        append(&self.trace(), &format!("killed {run} {} \n", child.id()));
        run
    }

    /// Checks the trace: one holder at a time; returns how often each run id was taken over.
    fn check(&self) -> std::collections::BTreeMap<String, usize> {
        let text = std::fs::read_to_string(self.trace()).unwrap_or_default();
        let mut holder: Option<&str> = None;
        let mut takeovers = std::collections::BTreeMap::new();
        for line in text.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let (event, run) = (fields[0], fields[1]);
            match event {
                "enter" => {
                    assert!(holder.is_none(), "{run} entered while {holder:?} held the lock:\n{text}");
                    holder = Some(run);
                }
                "leave" | "killed" => {
                    assert_eq!(holder, Some(run), "{run} left a lock it did not hold:\n{text}");
                    holder = None;
                }
                "takeover" => *takeovers.entry(fields[3].to_string()).or_insert(0) += 1,
                other => panic!("unexpected event {other}:\n{text}"),
            }
        }
        assert!(holder.is_none(), "every racer left:\n{text}");
        if std::env::var_os("LOCK_RACE_SHOW").is_some() {
            eprintln!("{text}");
        }
        takeovers
    }

    /// A free-lock race, then `stale_rounds` takeover races of stale locks left by killed holders.
    fn all_races(&self, stale_rounds: usize) {
        self.race();
        self.check();
        for round in 0..stale_rounds {
            let stale = self.killed_holder();
            self.race();
            let takeovers = self.check();
            assert_eq!(
                takeovers.get(&stale),
                Some(&1),
                "round {round}: {stale} taken over exactly once: {takeovers:?}"
            );
        }
        let entered = entries(&self.trace(), "enter").len();
        assert!(entered > 3, "{entered} entries");
    }
}

fn entries(trace: &Path, event: &str) -> Vec<String> {
    let text = std::fs::read_to_string(trace).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.strip_prefix(&format!("{event} ")))
        .map(|r| r.split(' ').next().unwrap().to_string())
        .collect()
}

fn append(trace: &Path, line: &str) {
    use std::io::Write;
    std::fs::OpenOptions::new().append(true).open(trace).unwrap().write_all(line.as_bytes()).unwrap();
}

#[test]
fn one_holder_at_a_time_on_the_local_store() {
    let target = Target::new("[storage]\nlanding = \"file://./landing\"\nwarehouse = \"file://./warehouse\"\n", &[]);
    target.all_races(3);
    // An expired lock of another host (its process cannot be checked): exactly one takes it over.
    for round in 0..4 {
        let stale = format!("expired-elsewhere-{round}");
        let record = serde_json::json!({
            "run_id": stale, "command": "run", "host": "another-host", "pid": 1,
            "acquired_at": chrono::Utc::now() - chrono::Duration::hours(2),
            "expires_at": chrono::Utc::now() - chrono::Duration::hours(1),
        });
        std::fs::write(target.dir.path().join("warehouse/_state/lock.json"), record.to_string()).unwrap();
        target.race();
        assert_eq!(target.check().get(&stale), Some(&1), "{stale} taken over exactly once");
    }
}

/// On s3s-fs the racers try for the lock 150 ms apart rather than together: s3s-fs 0.14 checks
/// `If-None-Match` and `If-Match` before it writes, not atomically with the write, so conditional
/// writes arriving within the same milliseconds can all pass the check (a bug of the test server:
/// S3 itself decides conditional writes atomically). `s3s_fs_conditional_writes_are_not_atomic`
/// (ignored) shows it: synchronized racers both "win" there, while the same test passes on
/// Azurite and the local store. Staggered, this checks the protocol against a real S3 server:
/// conditional headers honoured, refusals handled, stale locks taken over once.
#[test]
fn one_holder_at_a_time_on_s3() {
    let (server, target) = s3_target();
    target.staggered(Duration::from_millis(150)).all_races(2);
    drop(server);
}

#[test]
#[ignore = "fails: s3s-fs 0.14 does not decide conditional writes atomically (two If-None-Match creates both succeed)"]
fn s3s_fs_conditional_writes_are_not_atomic() {
    let (server, target) = s3_target();
    target.all_races(2);
    drop(server);
}

fn s3_target() -> (S3Server, Target) {
    let (key, secret) = ("lock-key", "lock-secret-0123456789");
    let server = S3Server::start(key, secret);
    let target = Target::new(
        "[storage]\nlanding = \"file://./landing\"\nwarehouse = \"s3://warehouse\"\n\n[storage.options]\n\
         endpoint = \"env:ALLIANCE_TEST_S3_ENDPOINT\"\nregion = \"us-east-1\"\nallow_http = \"true\"\n",
        &[
            ("ALLIANCE_TEST_S3_ENDPOINT", format!("http://127.0.0.1:{}", server.port)),
            ("AWS_ACCESS_KEY_ID", key.into()),
            ("AWS_SECRET_ACCESS_KEY", secret.into()),
        ],
    );
    (server, target)
}

#[test]
fn one_holder_at_a_time_on_azure() {
    let azurite = Azurite::start();
    azurite.create_container("warehouse");
    let target = Target::new(
        "[storage]\nlanding = \"file://./landing\"\nwarehouse = \"az://warehouse\"\n\n[storage.options]\nuse_emulator = \"true\"\n",
        &[("AZURITE_BLOB_STORAGE_URL", format!("http://127.0.0.1:{}", azurite.port))],
    );
    target.all_races(2);
}
