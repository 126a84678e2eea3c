//! The whole job against Azure Blob Storage as emulated by Azurite (npm, installed by
//! `make tools` / `.ci/run`), started here on 127.0.0.1: seed, generate, ingest, build and publish
//! the marts into `az://` containers, re-run idempotently, and query the marts back.

mod common;

use base64::Engine;
use common::{alliance_command, workdir_with};
use hmac::{Hmac, Mac};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Azurite's well-known development account.
const ACCOUNT: &str = "devstoreaccount1";
const KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

struct Azurite {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Azurite {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("azurite-blob")
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string(), "--silent", "--skipApiVersionCheck"])
            .arg("--location")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("azurite-blob, the Azure Blob emulator, is installed (make tools)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "Azurite did not start on 127.0.0.1:{port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { child, port, _dir: dir }
    }

    /// Creates a container with a SharedKey-signed request (object stores cannot create one).
    fn create_container(&self, name: &str) {
        let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let version = "2021-08-06";
        let to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{ACCOUNT}/{ACCOUNT}/{name}\nrestype:container"
        );
        let key = base64::engine::general_purpose::STANDARD.decode(KEY).unwrap();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        mac.update(to_sign.as_bytes());
        let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let request = format!(
            "PUT /{ACCOUNT}/{name}?restype=container HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nx-ms-date: {date}\r\n\
             x-ms-version: {version}\r\nAuthorization: SharedKey {ACCOUNT}:{signature}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n",
            self.port
        );
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 201"), "creating container {name}: {response}");
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
    assert!(first.contains("cwt_provider") && first.contains("51509"), "{first}");
    // Idempotent on Azure too: nothing loaded, nothing rebuilt.
    let second = run(&["run"]);
    assert!(second.lines().filter(|l| l.starts_with("mart_")).all(|l| l.contains("unchanged")), "{second}");
    // Analysts query the published marts over the same store.
    let answer = run(&["query", "SELECT total FROM mart_cwt_performance WHERE level = 'england' AND cancer_type = 'ALL' AND standard = '28-day FDS' AND month = DATE '2023-04-01'"]);
    assert!(answer.contains("215274"), "{answer}");
    let runs = run(&["query", "SELECT count(*) AS runs FROM runs"]);
    assert!(runs.contains("| 2 "), "{runs}");
}
