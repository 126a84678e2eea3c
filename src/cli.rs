//! Command-line interface. `anyhow` is used only here, at the top; the library returns typed
//! errors.
//!
//! Exit codes: 0 success; 1 the run failed (I/O, object store, internal); 2 configuration or
//! validation error; 3 the run finished but rejected files (only with `--fail-on-reject`).

use crate::config::{load_pipelines, Environment};
use crate::ingest::{FileOutcome, IngestOptions, Ingestor, PipelineReport};
use crate::logging::{self, LogFormat};
use crate::runs::{new_run_id, RunRecord};
use crate::storage::Stores;
use crate::Error;
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "alliance", version, about = "Cancer Alliance data warehouse: ingest, transform, publish")]
pub struct Cli {
    /// Environment file `config/<env>.toml` (local, s3, azure, ...).
    #[arg(long, global = true, env = "ALLIANCE_ENV", default_value = "local")]
    pub env: String,
    /// Folder of environment files.
    #[arg(long, global = true, env = "ALLIANCE_CONFIG_DIR", default_value = "config")]
    pub config_dir: PathBuf,
    /// Folder of pipeline files.
    #[arg(long, global = true, env = "ALLIANCE_PIPELINES_DIR", default_value = "pipelines")]
    pub pipelines_dir: PathBuf,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "human")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check every pipeline and the environment without running anything.
    Validate,
    /// Ingest landing extracts into staging Parquet.
    Ingest {
        /// Only this pipeline.
        #[arg(long)]
        pipeline: Option<String>,
        /// Re-ingest files even if unchanged.
        #[arg(long)]
        force: bool,
        /// Exit with code 3 if any file was rejected.
        #[arg(long)]
        fail_on_reject: bool,
        /// Print the run report as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Write synthetic extracts (trust pathways, screening) into landing.
    Generate(crate::generate::GenerateArgs),
    /// Copy the real published extracts and reference data into landing.
    Seed {
        /// Folder holding `cwt/` and `reference/` (the shared data set).
        #[arg(long, default_value = "../shared/data")]
        from: PathBuf,
    },
}

/// Entry point used by the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            let config = e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<Error>(),
                    Some(Error::Config { .. } | Error::MissingSecret { .. } | Error::StorageUrl { .. })
                )
            });
            ExitCode::from(if config { 2 } else { 1 })
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let env = Environment::load(&cli.config_dir, &cli.env)?;
    match cli.command {
        Command::Validate => {
            let pipelines = load_pipelines(&cli.pipelines_dir)?;
            for p in &pipelines {
                println!("ok  pipeline {:<28} {:?} {} → staging/{}", p.name, p.source.format, p.source.glob, p.table);
            }
            println!("{} pipelines valid; environment '{}' ok", pipelines.len(), env.name);
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest { pipeline, force, fail_on_reject, json } => {
            let pipelines = load_pipelines(&cli.pipelines_dir)?;
            let stores = Stores::open(&env.storage)?;
            let run_id = new_run_id();
            let started = chrono::Utc::now();
            let ingestor = Ingestor::new(env.clone(), stores.clone(), run_id.clone());
            let result = ingestor.run(&pipelines, &IngestOptions { pipeline, force }).await;
            let finished = chrono::Utc::now();
            let record = RunRecord {
                run_id: run_id.clone(),
                trigger: "manual".into(),
                command: "ingest".into(),
                environment: env.name.clone(),
                started_at: started,
                finished_at: finished,
                seconds: (finished - started).num_milliseconds() as f64 / 1000.0,
                pipelines: result.as_ref().map(|r| RunRecord::pipelines_json(r)).unwrap_or_default(),
                error: result.as_ref().err().map(|e| e.to_string()),
            };
            record.save(&stores.warehouse).await.context("saving the run record")?;
            let reports = result?;
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            } else {
                print_summary(&run_id, &reports, record.seconds);
            }
            let rejected = reports.iter().flat_map(|r| &r.files).any(|f| matches!(f.outcome, FileOutcome::Rejected(_)));
            Ok(if rejected && fail_on_reject { ExitCode::from(3) } else { ExitCode::SUCCESS })
        }
        Command::Generate(args) => {
            let stores = Stores::open(&env.storage)?;
            let summary = crate::generate::run(&args, &stores.landing).await?;
            println!("{summary}");
            println!("written under {}", stores.landing.url());
            Ok(ExitCode::SUCCESS)
        }
        Command::Seed { from } => {
            let stores = Stores::open(&env.storage)?;
            let copied = crate::generate::seed(&from, &cli.config_dir.join("reference"), &stores.landing).await?;
            println!("copied {copied} published files from {} into {}", from.display(), stores.landing.url());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Prints a per-pipeline table of the run.
pub fn print_summary(run_id: &str, reports: &[PipelineReport], seconds: f64) {
    println!("run {run_id} ({seconds:.1} s)");
    println!(
        "{:<26} {:>5} {:>5} {:>5} {:>5} {:>11} {:>11} {:>9} {:>8}",
        "pipeline", "files", "new", "same", "rej", "rows in", "written", "quarant.", "dropped"
    );
    for r in reports {
        let t = r.totals();
        let count = |f: fn(&FileOutcome) -> bool| r.files.iter().filter(|x| f(&x.outcome)).count();
        println!(
            "{:<26} {:>5} {:>5} {:>5} {:>5} {:>11} {:>11} {:>9} {:>8}",
            r.pipeline,
            r.files.len(),
            count(|o| *o == FileOutcome::Loaded),
            count(|o| *o == FileOutcome::Unchanged),
            count(|o| matches!(o, FileOutcome::Rejected(_))),
            t.rows_in,
            t.rows_written,
            t.rows_quarantined,
            t.rows_dropped
        );
        for f in &r.files {
            if let FileOutcome::Rejected(reason) = &f.outcome {
                println!("    rejected {}: {reason}", f.path);
            }
        }
    }
}
