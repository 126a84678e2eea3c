//! Round trip through a real S3-compatible server (s3s-fs, installed by `make tools` / `.ci/run`)
//! started here on 127.0.0.1: seed and generate into an S3 landing bucket, ingest into an S3
//! warehouse bucket, re-run idempotently, and read the staging Parquet back over S3.

mod common;

use alliance_warehouse::generate::{self, GenerateArgs};
use alliance_warehouse::ingest::FileOutcome;
use common::servers::S3Server;
use common::{only, shared, Workspace};
use std::process::Stdio;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_round_trip_through_a_real_s3_server() {
    // Credentials reach the store only through the environment, as in production.
    let (key, secret) = ("alliance-test", "alliance-test-secret-0123456789");
    let server = S3Server::start(key, secret);
    std::env::set_var("ALLIANCE_TEST_S3_KEY", key);
    std::env::set_var("ALLIANCE_TEST_S3_SECRET", secret);
    std::env::set_var("ALLIANCE_TEST_S3_ENDPOINT", format!("http://127.0.0.1:{}", server.port));
    let toml = r#"
[storage]
landing = "s3://landing/extracts"
warehouse = "s3://warehouse"

[storage.options]
endpoint = "env:ALLIANCE_TEST_S3_ENDPOINT"
access_key_id = "env:ALLIANCE_TEST_S3_KEY"
secret_access_key = "env:ALLIANCE_TEST_S3_SECRET"
region = "us-east-1"
allow_http = "true"
virtual_hosted_style_request = "false"

[storage.retry]
max_retries = 2
initial_backoff_ms = 50
timeout_secs = 10
"#;
    let ws = Workspace::with_toml(tempfile::tempdir().unwrap(), toml);

    // Real CWT commissioner extract plus a Royal Free extract large enough (> 10 MB) to go up as
    // a multipart upload.
    let copied = generate::seed(&shared(), &common::repo().join("config/reference"), &ws.stores.landing).await.unwrap();
    assert!(copied >= 10, "{copied}");
    let args =
        GenerateArgs { rows: 100_000, months: 1, trusts: vec!["RAL".into()], no_screening: true, ..Default::default() };
    let summary = generate::run(&args, &ws.stores.landing).await.unwrap();
    assert!(summary.files[0].bytes > 10 << 20, "{} bytes", summary.files[0].bytes);

    let pipelines = only(&["cwt_commissioner", "trust_pathways_ral", "ref_lsoa_imd"]);
    let reports = ws.ingest(&pipelines).await;
    for r in &reports {
        assert!(r.files.iter().all(|f| f.outcome == FileOutcome::Loaded), "{}: {:?}", r.pipeline, r.files);
    }
    assert_eq!(reports[0].totals().rows_written, 7_127);
    assert_eq!(reports[1].totals().rows_written, 100_000);
    assert_eq!(reports[2].totals().rows_written, 1_818);

    // The objects really live in the server's buckets.
    let on_disk = server.root.path().join("warehouse/staging/trust_pathways_ral/2024-01/RAL.parquet");
    assert!(on_disk.is_file(), "{} exists on the S3 server", on_disk.display());
    assert!(server.root.path().join("landing/extracts/cwt").is_dir(), "landing prefix honoured");

    // Reading back over S3.
    assert_eq!(ws.rows("trust_pathways_ral").await, 100_000);
    assert_eq!(ws.rows("cwt_commissioner").await, 7_127);

    // Re-run: ETags match, nothing is read or written again.
    let reports = ws.ingest(&pipelines).await;
    assert!(reports.iter().flat_map(|r| &r.files).all(|f| f.outcome == FileOutcome::Unchanged));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_fail_cleanly_without_leaking_the_secret() {
    let server = S3Server::start("right-key", "right-secret-0123456789");
    std::env::set_var("ALLIANCE_TEST_S3_BAD_ENDPOINT", format!("http://127.0.0.1:{}", server.port));
    std::env::set_var("ALLIANCE_TEST_S3_BAD_SECRET", "wrong-secret-do-not-print");
    let toml = r#"
[storage]
landing = "s3://landing"
warehouse = "s3://warehouse"

[storage.options]
endpoint = "env:ALLIANCE_TEST_S3_BAD_ENDPOINT"
access_key_id = "right-key"
secret_access_key = "env:ALLIANCE_TEST_S3_BAD_SECRET"
region = "us-east-1"
allow_http = "true"

[storage.retry]
max_retries = 1
initial_backoff_ms = 10
timeout_secs = 5
"#;
    let ws = Workspace::with_toml(tempfile::tempdir().unwrap(), toml);
    let err = ws.try_ingest(&only(&["cwt_commissioner"]), false).await.unwrap_err();
    let message = format!("{err} {err:?}");
    assert!(message.contains("list") && message.contains("s3://landing"), "{message}");
    assert!(!message.contains("wrong-secret-do-not-print"), "the secret must not appear in errors");
}

/// Published marts on the server's disk: name → bytes (each checked to be complete Parquet).
fn published(server: &S3Server) -> Vec<(String, Vec<u8>)> {
    let dir = server.root.path().join("warehouse/marts");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "parquet"))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect();
    out.sort();
    for (name, bytes) in &out {
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes.clone()))
                .unwrap_or_else(|e| panic!("{name} is not complete Parquet: {e}"));
        for batch in reader.build().unwrap() {
            batch.unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
    out
}

#[test]
fn the_server_stopping_mid_run_fails_cleanly_retries_and_damages_nothing() {
    let (key, secret) = ("ops-key", "ops-secret-0123456789");
    let mut server = S3Server::start(key, secret);
    let dir = common::workdir_with(
        "[storage]\nlanding = \"file://./landing\"\nwarehouse = \"s3://warehouse\"\n\n[storage.options]\n\
         endpoint = \"env:ALLIANCE_TEST_S3_ENDPOINT\"\nregion = \"us-east-1\"\nallow_http = \"true\"\n\n\
         [storage.retry]\nmax_retries = 1\ninitial_backoff_ms = 50\ntimeout_secs = 3\n",
    );
    let endpoint = format!("http://127.0.0.1:{}", server.port);
    let command = |args: &[&str]| {
        let mut c = common::alliance_command(dir.path(), args);
        c.env("ALLIANCE_TEST_S3_ENDPOINT", &endpoint)
            .env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", secret);
        c
    };
    let run = |args: &[&str]| {
        let out = command(args).output().unwrap();
        assert!(out.status.success(), "alliance {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&["seed", "--from", shared().to_str().unwrap()]);
    run(&["generate", "--rows", "4000", "--months", "2"]);
    run(&["run"]);
    let before = published(&server);
    let declared = common::declared_marts();
    assert_eq!(before.len(), declared, "every mart published");

    // New extracts; the server dies while the run works.
    run(&["generate", "--rows", "20000", "--start", "2024-03", "--months", "2", "--seed", "5"]);
    let child = command(&["run"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    server.stop();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "a run without its store fails");
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(
        message.contains("127.0.0.1") || message.contains("s3://warehouse"),
        "the error names the store: {message}"
    );
    assert!(!message.contains(secret), "no secret in the output");

    // The scheduler retries with backoff, then records the failure and carries on.
    let out = command(&["schedule", "--once"]).output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("retrying") && (log.contains("run failed") || log.contains("could not start")), "{log}");

    // Back up: nothing published was damaged, and the next run converges.
    server.restart(key, secret);
    let after_failure = published(&server);
    assert_eq!(after_failure, before, "a failed run publishes nothing");
    run(&["run"]);
    let converged = published(&server);
    assert_eq!(converged.len(), declared);
    assert_ne!(converged, before, "the new extracts reached the marts");
}
