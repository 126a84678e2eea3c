//! Object-store servers the tests start on 127.0.0.1: s3s-fs (S3) and Azurite (Azure Blob), both
//! installed by `make tools` / `.ci/run`, each over a temporary folder and killed on drop.

use base64::Engine;
use hmac::{Hmac, Mac};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running s3s-fs server over a temporary folder; killed on drop.
pub struct S3Server {
    child: Child,
    pub port: u16,
    pub root: tempfile::TempDir,
}

impl S3Server {
    pub fn start(access_key: &str, secret_key: &str) -> Self {
        let root = tempfile::tempdir().unwrap();
        for bucket in ["landing", "warehouse"] {
            std::fs::create_dir_all(root.path().join(bucket)).unwrap();
        }
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Self::spawn(root.path(), port, access_key, secret_key);
        Self { child, port, root }
    }

    /// Stops the server (as a crash would).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port and data.
    pub fn restart(&mut self, access_key: &str, secret_key: &str) {
        self.child = Self::spawn(self.root.path(), self.port, access_key, secret_key);
    }

    fn spawn(root: &std::path::Path, port: u16, access_key: &str, secret_key: &str) -> Child {
        let child = Command::new("s3s-fs")
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--access-key",
                access_key,
                "--secret-key",
                secret_key,
            ])
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs, the S3-compatible test server, is installed (make tools)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not start listening on 127.0.0.1:{port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Azurite's well-known development account.
pub const ACCOUNT: &str = "devstoreaccount1";
pub const KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

pub struct Azurite {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Azurite {
    pub fn start() -> Self {
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
    pub fn create_container(&self, name: &str) {
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
        // Azurite can accept connections a moment before it serves them (a reset while starting
        // under load): the request is retried for up to ten seconds.
        let send = || -> std::io::Result<String> {
            let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
            stream.write_all(request.as_bytes())?;
            let mut response = String::new();
            stream.read_to_string(&mut response)?;
            Ok(response)
        };
        let mut attempts = 0;
        let response = loop {
            match send() {
                Ok(response) => break response,
                Err(e) if attempts < 50 => {
                    attempts += 1;
                    eprintln!("creating container {name}: {e}; retrying");
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
                Err(e) => panic!("creating container {name}: {e}"),
            }
        };
        assert!(response.starts_with("HTTP/1.1 201"), "creating container {name}: {response}");
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
