//! `alliance serve` (Arrow Flight SQL) as clients see it: the binary is started on a free port of
//! 127.0.0.1 over a built warehouse and `tests/serve_adbc.py` talks to it with the ADBC Flight SQL
//! driver (pip, installed by `make tools` / `.ci/run`; a missing module fails the test): every
//! mart row for row against its Parquet file, bearer and basic auth, wrong tokens, writes and
//! file paths refused, roles, catalog calls, result and time limits, TLS. The server's log has one
//! line per query and never a token; the warehouse is byte-identical afterwards.

mod common;

use common::{alliance_command, alliance_ok as ok, workdir};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};

const ANALYST: &str = "analyst-test-token-7d1e0c5a9b";
const ENGINEER: &str = "engineer-test-token-3f9a2b6c4e";

fn tokens() -> String {
    format!("analyst={ANALYST},engineer={ENGINEER}")
}

/// A running `alliance serve`, stopped (SIGTERM) when dropped; its log goes to a file.
struct Server {
    child: Option<Child>,
    uri: String,
    log: std::path::PathBuf,
}

impl Server {
    fn start(dir: &Path, name: &str, args: &[&str]) -> Self {
        let log = dir.join(format!("{name}.log"));
        let mut child =
            alliance_command(dir, &[&["--log-format", "json", "serve", "--listen", "127.0.0.1:0"][..], args].concat())
                .env("ALLIANCE_SERVE_TOKENS", tokens())
                .env("RUST_LOG", "info")
                .stdout(Stdio::piped())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("alliance serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let Some(uri) = line.trim().strip_prefix("alliance serve listening on ") else {
            let _ = child.kill();
            panic!("no address on stdout ({line:?}): {}", std::fs::read_to_string(&log).unwrap_or_default());
        };
        Self { uri: uri.to_string(), child: Some(child), log }
    }

    /// Stops the server with SIGTERM and returns its log, one JSON object per line (it must exit
    /// cleanly).
    fn stop(mut self) -> String {
        let mut child = self.child.take().unwrap();
        let killed = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(killed.success());
        let status = child.wait().unwrap();
        let log = std::fs::read_to_string(&self.log).unwrap();
        assert!(status.success(), "alliance serve exits 0 on SIGTERM: {status}\n{log}");
        log
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `tests/serve_adbc.py MODE URI TOKENS EXTRA` and insists every check passes.
fn adbc(mode: &str, uri: &str, extra: &[&str]) -> String {
    let out = std::process::Command::new("python3")
        .arg(common::repo().join("tests/serve_adbc.py"))
        .args([mode, uri, ANALYST, ENGINEER])
        .args(extra)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "serve_adbc.py {mode}:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.trim_end().ends_with("checks passed"), "{stdout}");
    stdout
}

/// The server's per-query log lines.
fn queries(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .filter(|v| v["message"] == "query")
        .collect()
}

fn hashes(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.display().to_string(), hex::encode(Sha256::digest(std::fs::read(&path).unwrap())));
            }
        }
    }
    out
}

#[test]
fn flight_sql_clients_read_what_their_role_reads_and_nothing_writes() {
    let dir = workdir();
    ok(dir.path(), &["seed", "--from", common::shared().to_str().unwrap()]);
    ok(dir.path(), &["generate", "--rows", "2000", "--months", "2"]);
    ok(dir.path(), &["run"]);
    let warehouse = dir.path().join("warehouse");
    let before = hashes(&warehouse);

    let server = Server::start(dir.path(), "full", &[]);
    assert!(server.uri.starts_with("grpc://127.0.0.1:"), "{}", server.uri);
    let out = adbc("full", &server.uri, &[warehouse.join("marts").to_str().unwrap()]);
    assert!(out.contains("ok  mart_cwt_performance rows"), "{out}");
    let log = server.stop();
    assert!(!log.contains(ANALYST) && !log.contains(ENGINEER), "no token is ever logged:\n{log}");
    let logged = queries(&log);
    for (role, outcome) in [("analyst", "ok"), ("analyst", "refused"), ("engineer", "ok"), ("engineer", "refused")] {
        assert!(
            logged.iter().any(|q| q["role"] == role && q["outcome"] == outcome),
            "a query of the {role} with outcome {outcome} is logged:\n{log}"
        );
    }
    let cwt = logged.iter().find(|q| q["sql"] == "SELECT * FROM mart_cwt_performance").expect("logged");
    assert!(cwt["rows"].as_u64().unwrap() > 1000 && cwt["bytes"].as_u64().unwrap() > 0, "{cwt}");
    assert!(cwt["seconds"].is_number(), "{cwt}");
    assert!(log.contains("unauthenticated"), "{log}");
    assert!(!dir.path().join("exported.csv").exists() && !dir.path().join("x").exists());
    assert_eq!(hashes(&warehouse), before, "the warehouse is byte-identical");

    let limited =
        Server::start(dir.path(), "limits", &["--max-rows", "1000", "--max-bytes", "200000", "--query-timeout", "3"]);
    adbc("limits", &limited.uri, &[]);
    let log = limited.stop();
    let outcomes: Vec<String> = queries(&log).iter().map(|q| q["outcome"].as_str().unwrap().to_string()).collect();
    assert_eq!(outcomes, ["ok", "too_large", "too_large", "timeout"], "{log}");

    // TLS with a self-signed certificate for 127.0.0.1.
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let secure =
        Server::start(dir.path(), "tls", &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]);
    assert!(secure.uri.starts_with("grpc+tls://127.0.0.1:"), "{}", secure.uri);
    adbc("tls", &secure.uri, &[cert.to_str().unwrap()]);
    secure.stop();
}

#[test]
fn serve_refuses_to_start_without_good_tokens() {
    let dir = workdir();
    for (tokens, expected) in [
        (None, "ALLIANCE_SERVE_TOKENS is not set"),
        (Some(""), "ALLIANCE_SERVE_TOKENS is not set"),
        (Some("analyst=short"), "shorter than 16 characters"),
        (Some("admin=a-long-enough-token-123"), "unknown role"),
    ] {
        let mut command = alliance_command(dir.path(), &["serve", "--listen", "127.0.0.1:0"]);
        command.env_remove("ALLIANCE_SERVE_TOKENS");
        if let Some(tokens) = tokens {
            command.env("ALLIANCE_SERVE_TOKENS", tokens);
        }
        let out = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{tokens:?}: {stderr}");
        assert!(stderr.contains(expected), "{tokens:?}: {stderr}");
        assert!(!stderr.contains("a-long-enough-token"), "the token is never shown: {stderr}");
    }
    // TLS needs both files.
    let out = alliance_command(dir.path(), &["serve", "--tls-cert", "cert.pem"])
        .env("ALLIANCE_SERVE_TOKENS", tokens())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-key"));
}
