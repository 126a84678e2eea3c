//! Command-line interface. `anyhow` is used only here, at the top; the library returns typed
//! errors.
//!
//! Exit codes: 0 success (also when some files were rejected or skipped: each is the file's
//! outcome, recorded with its reason, and the marts are built from what loaded); 1 the run failed
//! (I/O, object store, internal); 2 configuration or validation error; 3 the run finished but
//! rejected or skipped files (only with `--fail-on-reject`);
//! 4 a model failed or its data tests failed (nothing of it was published); 5 another run holds
//! the warehouse lock, or took it from this run (which stopped before publishing further).

use crate::access::AccessSession;
use crate::config::{load_pipelines, Environment};
use crate::ingest::{FileOutcome, IngestOptions, PipelineReport};
use crate::jobs::{run_job, JobContext, JobOutcome, JobSpec};
use crate::logging::{self, LogFormat};
use crate::storage::Stores;
use crate::Error;
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
    /// Folder of SQL models (`staging/`, `intermediate/`, `marts/`).
    #[arg(long, global = true, env = "ALLIANCE_SQL_DIR", default_value = "sql")]
    pub sql_dir: PathBuf,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "human")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check every pipeline, SQL model and data test and the environment without running anything.
    Validate {
        /// Print the models as JSON on stdout (layer, tables read, and each data test with the
        /// SQL that selects its failing rows), for tools that replay or audit the tests.
        #[arg(long)]
        json: bool,
    },
    /// Run the SQL models (staging → intermediate → marts), test and publish the marts.
    Build {
        /// Models to run: `name`, `name+` (and downstream), `+name` (and upstream), a layer
        /// (`staging`, `intermediate`, `marts`); comma-separated. Default: all.
        #[arg(long)]
        select: Option<String>,
        /// Rebuild models whose inputs have not changed.
        #[arg(long)]
        force: bool,
        /// Print the build report as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Run one read-only query over the tables your role reads (marts and `runs` for analysts).
    #[command(after_help = WHO_SEES_WHAT)]
    Query {
        /// The query (SELECT, WITH, EXPLAIN, DESCRIBE or SHOW; nothing that writes).
        sql: String,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: crate::access::query::OutputFormat,
        /// Write the result to this file instead of stdout (required for parquet).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Whose view of the warehouse: analyst (published marts) or engineer (all tables).
        #[arg(long, value_enum, default_value = "analyst")]
        role: crate::access::Role,
        /// CSV: write text cells exactly as stored, without the `'` before cells starting with
        /// = + - @ tab or CR that keeps spreadsheets from running them as formulas.
        #[arg(long)]
        raw: bool,
    },
    /// An interactive read-only SQL shell over the same tables, with history and tab completion.
    #[command(after_help = WHO_SEES_WHAT)]
    Shell {
        /// Whose view of the warehouse: analyst (published marts) or engineer (all tables).
        #[arg(long, value_enum, default_value = "analyst")]
        role: crate::access::Role,
    },
    /// Serve the warehouse read-only over Arrow Flight SQL (ADBC, JDBC, ODBC clients), to holders
    /// of the bearer tokens in ALLIANCE_SERVE_TOKENS, each token with its role.
    #[command(after_help = SERVE_HELP)]
    Serve {
        /// Address to listen on (port 0 picks a free port; the address is printed at startup).
        #[arg(long, default_value = "127.0.0.1:50051")]
        listen: std::net::SocketAddr,
        /// TLS certificate chain (PEM); with --tls-key, clients connect with grpc+tls://.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// TLS private key (PEM).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Most rows one result sends; a larger result stops with an error.
        #[arg(long, default_value_t = crate::access::server::DEFAULT_MAX_ROWS)]
        max_rows: u64,
        /// Most bytes (Arrow IPC) one result sends; a larger result stops with an error.
        #[arg(long, default_value_t = crate::access::server::DEFAULT_MAX_BYTES)]
        max_bytes: u64,
        /// Seconds a query may take (planning and sending); a slower one is cancelled.
        #[arg(long, default_value_t = crate::access::server::DEFAULT_QUERY_TIMEOUT_SECS)]
        query_timeout: u64,
    },
    /// Write the catalogue (pipelines, models, marts, columns, tests, lineage, last runs) as HTML.
    Docs {
        /// Output file.
        #[arg(long, default_value = "site/catalogue.html")]
        out: PathBuf,
    },
    /// Write the working group's report (charts from the published marts) as HTML.
    Report {
        /// Output file.
        #[arg(long, default_value = "site/report.html")]
        out: PathBuf,
    },
    /// Check every manifest, staging object, intermediate model and published mart against the
    /// sizes and content hashes recorded when the pipeline wrote them (like `git fsck`). Exit
    /// code 6 on any difference.
    Verify {
        /// Print the report as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Show the last runs, the lock, pending landing files and when each pipeline is due.
    Status {
        /// How many recent runs to show.
        #[arg(long, default_value_t = 10)]
        runs: usize,
    },
    /// Run pipelines on their cron schedules and when new landing files appear, until stopped
    /// (SIGINT/SIGTERM end it after the current run).
    Schedule {
        /// Check once, run what is due or pending, and exit.
        #[arg(long)]
        once: bool,
    },
    /// Ingest, then build every model: the whole job.
    Run {
        /// Exit with code 3 if any file was rejected, skipped or held (otherwise 0: rejections are recorded, not failures).
        #[arg(long)]
        fail_on_reject: bool,
        /// Load this landing file (path or file name) even if the revision guard holds it as an
        /// implausible revision; repeat for several. Recorded in the run record.
        #[arg(long = "accept-revision", value_name = "FILE")]
        accept_revision: Vec<String>,
    },
    /// Ingest landing extracts into staging Parquet.
    Ingest {
        /// Only this pipeline (repeat for several).
        #[arg(long)]
        pipeline: Vec<String>,
        /// Re-ingest files even if unchanged.
        #[arg(long)]
        force: bool,
        /// Exit with code 3 if any file was rejected, skipped or held (otherwise 0: rejections are recorded, not failures).
        #[arg(long)]
        fail_on_reject: bool,
        /// Load this landing file (path or file name) even if the revision guard holds it as an
        /// implausible revision; repeat for several. Recorded in the run record.
        #[arg(long = "accept-revision", value_name = "FILE")]
        accept_revision: Vec<String>,
        /// Print the run report as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Run a Ballista scheduler over the environment's warehouse, for builds with `[engine]
    /// kind = "ballista"` (needs the `ballista` feature; see the README's cluster section).
    #[cfg(feature = "ballista")]
    Scheduler(crate::cluster::commands::SchedulerArgs),
    /// Run a Ballista executor over the environment's warehouse, with the statistical functions;
    /// start one or more per cluster.
    #[cfg(feature = "ballista")]
    Executor(crate::cluster::commands::ExecutorArgs),
    /// Write synthetic extracts (trust pathways, screening) into landing.
    Generate(crate::generate::GenerateArgs),
    /// Copy the real published extracts and reference data into landing.
    Seed {
        /// Folder holding `cwt/` and `reference/` (the shared data set).
        #[arg(long, default_value = "../shared/data")]
        from: PathBuf,
    },
}

/// Who sees what, for `query --help` and `shell --help` (SPEC §9).
const WHO_SEES_WHAT: &str = "\
Who sees what (read-only for everyone: no COPY, CREATE, INSERT, SET or file paths as tables):
  --role analyst   (default) published marts (mart_*), runs (run history), catalogue
                   (documented marts and columns), information_schema
  --role engineer  also staging views (stg_*), intermediate models (int_*), reference tables
                   (ref_*) and pipeline staging tables (trust_pathways_*, cwt_*, screening_*),
                   some of them patient-level
CSV output (query --format csv, shell .format csv) prefixes text cells starting with = + - @
tab or CR with ' so spreadsheets do not run them as formulas (query --raw turns this off).";

/// Tokens and clients, for `serve --help`.
const SERVE_HELP: &str = "\
Tokens: ALLIANCE_SERVE_TOKENS=\"analyst=TOKEN1,engineer=TOKEN2\" (one role per token, several tokens
per role allowed, each at least 16 characters). Clients send 'authorization: Bearer TOKEN', or basic
auth with any user name and the token as password. Each token's role sees what `alliance query
--role ROLE` sees, read-only.
Python: adbc_driver_flightsql.dbapi.connect(\"grpc://127.0.0.1:50051\",
        db_kwargs={\"adbc.flight.sql.authorization_header\": \"Bearer TOKEN\"})
JDBC:   jdbc:arrow-flight-sql://127.0.0.1:50051/?useEncryption=false&token=TOKEN";

/// Stack of each runtime thread: deep query plans are planned, serialised (the `ballista`
/// engine) and optimised recursively, which overflows the default 2 MiB in unoptimised builds.
pub const THREAD_STACK_BYTES: usize = 16 << 20;

/// Entry point used by the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().thread_stack_size(THREAD_STACK_BYTES).enable_all().build() {
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
                    Some(
                        Error::Config { .. }
                            | Error::MissingSecret { .. }
                            | Error::StorageUrl { .. }
                            | Error::Query { .. }
                            | Error::ReadOnly { .. }
                            | Error::NotATable { .. }
                            | Error::Forbidden { .. }
                            | Error::QueryLimit { .. }
                    )
                )
            });
            let locked = e
                .chain()
                .any(|c| matches!(c.downcast_ref::<Error>(), Some(Error::Locked { .. } | Error::LockLost { .. })));
            ExitCode::from(if config {
                2
            } else if locked {
                5
            } else {
                1
            })
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let env = Environment::load(&cli.config_dir, &cli.env)?;
    crate::transform::session::set_memory_limit(env.limits.memory_limit_bytes);
    match &cli.command {
        Command::Validate { json } => {
            let pipelines = load_pipelines(&cli.pipelines_dir)?;
            let graph = crate::transform::load_graph(&cli.sql_dir, &pipelines)?;
            let models = crate::transform::validate(&graph, &pipelines).await?;
            if *json {
                let described: Vec<serde_json::Value> = graph
                    .models
                    .iter()
                    .map(|m| {
                        let tests: Vec<serde_json::Value> = m
                            .spec
                            .tests
                            .iter()
                            .map(|t| serde_json::json!({"name": t.name(), "failing_rows_sql": t.failing_rows_sql(&m.name)}))
                            .collect();
                        serde_json::json!({"model": m.name, "layer": m.layer, "reads": m.reads, "tests": tests})
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&described)?);
                return Ok(ExitCode::SUCCESS);
            }
            for p in &pipelines {
                println!("ok  pipeline {:<28} {:?} {} → staging/{}", p.name, p.source.format, p.source.glob, p.table);
            }
            for m in &graph.models {
                println!("ok  model    {:<28} {:?}, reads {}", m.name, m.layer, m.reads.join(", "));
            }
            println!("{} pipelines and {models} models valid; environment '{}' ok", pipelines.len(), env.name);
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest { pipeline, force, fail_on_reject, accept_revision, json } => {
            let ingest =
                IngestOptions { pipelines: pipeline.clone(), force: *force, accept_revisions: accept_revision.clone() };
            let spec =
                JobSpec { trigger: "manual".into(), command: "ingest".into(), ingest: Some(ingest), build: None };
            let mut outcome = run_job(&job_context(&cli, &env)?, &spec).await?;
            let rejected = report_ingest(&mut outcome, *json)?;
            Ok(if rejected && *fail_on_reject { ExitCode::from(3) } else { ExitCode::SUCCESS })
        }
        Command::Build { select, force, json } => {
            let build = crate::transform::BuildOptions { select: select.clone(), force: *force, ..Default::default() };
            let spec = JobSpec { trigger: "manual".into(), command: "build".into(), ingest: None, build: Some(build) };
            let mut outcome = run_job(&job_context(&cli, &env)?, &spec).await?;
            Ok(if report_build(&mut outcome, *json)? { ExitCode::SUCCESS } else { ExitCode::from(4) })
        }
        Command::Run { fail_on_reject, accept_revision } => {
            let spec = JobSpec {
                trigger: "manual".into(),
                command: "run".into(),
                ingest: Some(IngestOptions { accept_revisions: accept_revision.clone(), ..Default::default() }),
                build: Some(crate::transform::BuildOptions::default()),
            };
            let mut outcome = run_job(&job_context(&cli, &env)?, &spec).await?;
            let rejected = report_ingest(&mut outcome, false)?;
            let ok = report_build(&mut outcome, false)?;
            Ok(match (ok, rejected && *fail_on_reject) {
                (false, _) => ExitCode::from(4),
                (true, true) => ExitCode::from(3),
                (true, false) => ExitCode::SUCCESS,
            })
        }
        Command::Verify { json } => {
            let ctx = job_context(&cli, &env)?;
            let graph = crate::transform::load_graph(&ctx.sql_dir, &ctx.pipelines)?;
            let report = crate::verify::verify(&ctx.stores.warehouse, &ctx.pipelines, &graph).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for f in &report.findings {
                    println!("DIFFERS  {}: {}", f.object, f.problem);
                }
                println!(
                    "{} manifests, {} objects checked byte for byte ({} without a recorded seal: presence only): {}",
                    report.manifests_checked,
                    report.objects_checked,
                    report.objects_unsealed,
                    if report.clean() {
                        "all as recorded".to_string()
                    } else {
                        format!("{} differences", report.findings.len())
                    }
                );
            }
            Ok(if report.clean() { ExitCode::SUCCESS } else { ExitCode::from(6) })
        }
        Command::Status { runs } => {
            let ctx = job_context(&cli, &env)?;
            print!("{}", crate::schedule::status(&ctx, *runs).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Schedule { once } => {
            let ctx = job_context(&cli, &env)?;
            crate::schedule::serve(ctx, *once).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Query { sql, format, output, role, raw } => {
            use crate::access::output::{write_file, write_stream};
            use crate::access::query::{CsvCells, OutputFormat};
            if *format == OutputFormat::Parquet && output.is_none() {
                anyhow::bail!(Error::config("--format parquet", "needs --output FILE"));
            }
            let session = AccessSession::open(&job_context(&cli, &env)?, *role, "alliance query").await?;
            let stream = session.stream(sql).await?;
            let cells = if *raw { CsvCells::Raw } else { CsvCells::Safe };
            match output {
                Some(path) => write_file(stream, *format, cells, path, session.limits()).await?,
                None => {
                    let stdout = std::io::BufWriter::new(std::io::stdout());
                    write_stream(stream, *format, cells, stdout, session.limits()).await?
                }
            };
            Ok(ExitCode::SUCCESS)
        }
        Command::Shell { role } => {
            let session = AccessSession::open(&job_context(&cli, &env)?, *role, "alliance shell").await?;
            crate::access::shell::run_shell(session).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { listen, tls_cert, tls_key, max_rows, max_bytes, query_timeout } => {
            use crate::access::server::{serve, Limits, ServeOptions, TlsFiles, Tokens};
            let tokens = Tokens::from_env()?;
            let tls = match (tls_cert, tls_key) {
                (Some(cert), Some(key)) => Some(TlsFiles { cert: cert.clone(), key: key.clone() }),
                _ => None,
            };
            let limits = Limits {
                max_rows: *max_rows,
                max_bytes: *max_bytes,
                query_timeout: std::time::Duration::from_secs(*query_timeout),
            };
            serve(job_context(&cli, &env)?, ServeOptions { listen: *listen, tls, limits, tokens }).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Docs { out } => {
            let ctx = job_context(&cli, &env)?;
            let graph = crate::transform::load_graph(&ctx.sql_dir, &ctx.pipelines)?;
            let session = crate::access::session::warehouse_context(&ctx, &graph).await?;
            write_page(out, &crate::pages::catalogue::catalogue(&ctx, &graph, &session).await?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Report { out } => {
            // The report joins the published marts with reference tables (alliance membership).
            let ctx = job_context(&cli, &env)?;
            let graph = crate::transform::load_graph(&ctx.sql_dir, &ctx.pipelines)?;
            let session = crate::access::session::warehouse_context(&ctx, &graph).await?;
            write_page(out, &crate::pages::report::report(&session).await?)?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "ballista")]
        Command::Scheduler(args) => {
            crate::cluster::commands::scheduler(args, &env).await?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "ballista")]
        Command::Executor(args) => {
            crate::cluster::commands::executor(args, &env).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Generate(args) => {
            let stores = Stores::open(&env.storage)?;
            let summary = crate::generate::run(args, &stores.landing).await?;
            println!("{summary}");
            println!("written under {}", stores.landing.url());
            Ok(ExitCode::SUCCESS)
        }
        Command::Seed { from } => {
            let stores = Stores::open(&env.storage)?;
            let copied = crate::generate::seed(from, &cli.config_dir.join("reference"), &stores.landing).await?;
            println!("copied {copied} published files from {} into {}", from.display(), stores.landing.url());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn write_page(out: &std::path::Path, html: &str) -> anyhow::Result<()> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    }
    std::fs::write(out, html).map_err(Error::io(out))?;
    println!("wrote {}", out.display());
    Ok(())
}

fn job_context(cli: &Cli, env: &Environment) -> anyhow::Result<JobContext> {
    Ok(JobContext {
        env: env.clone(),
        stores: Stores::open(&env.storage)?,
        pipelines: load_pipelines(&cli.pipelines_dir)?,
        sql_dir: cli.sql_dir.clone(),
    })
}

/// Prints the ingest part of a job; returns whether any file was rejected.
fn report_ingest(outcome: &mut JobOutcome, json: bool) -> anyhow::Result<bool> {
    let Some(result) = outcome.ingest.take() else { return Ok(false) };
    let reports = result?;
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        print_summary(&outcome.record.run_id, &reports, outcome.record.seconds);
    }
    Ok(reports.iter().flat_map(|r| &r.files).any(|f| f.outcome.is_refused()))
}

/// Prints the build part of a job; returns whether it succeeded.
fn report_build(outcome: &mut JobOutcome, json: bool) -> anyhow::Result<bool> {
    let Some(result) = outcome.build.take() else { return Ok(true) };
    let report = result?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_build(&report);
    }
    Ok(report.succeeded())
}

/// Prints a per-model table of a build, with failing tests and their sample rows.
pub fn print_build(report: &crate::transform::BuildReport) {
    println!("{:<34} {:<13} {:<13} {:>9} {:>7} {:>8}", "model", "layer", "status", "rows", "tests", "seconds");
    for m in &report.models {
        let passed = m.tests.iter().filter(|t| t.passed).count();
        println!(
            "{:<34} {:<13} {:<13} {:>9} {:>7} {:>8.2}",
            m.model,
            format!("{:?}", m.layer).to_lowercase(),
            format!("{:?}", m.status).to_lowercase(),
            m.rows.map(|r| r.to_string()).unwrap_or_else(|| "view".into()),
            format!("{passed}/{}", m.tests.len()),
            m.seconds
        );
        if let Some(e) = &m.error {
            println!("    error: {e}");
        }
        for t in m.tests.iter().filter(|t| !t.passed) {
            println!("    test {} failed on {} rows, e.g.:\n{}", t.test, t.failing_rows, t.sample);
        }
    }
    for t in &report.tampered {
        println!("{} {}: {}; {}", t.model, t.object, t.found.describe(), t.action);
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
            count(|o| matches!(o, FileOutcome::Unchanged | FileOutcome::Duplicate(_))),
            count(FileOutcome::is_refused),
            t.rows_in,
            t.rows_written,
            t.rows_quarantined,
            t.rows_dropped
        );
        for f in &r.files {
            match &f.outcome {
                FileOutcome::Rejected(reason) => println!("    rejected {}: {reason}", f.path),
                FileOutcome::Skipped(reason) => println!("    skipped {}: {reason}", f.path),
                FileOutcome::Held(reason) => println!("    held {}: {reason}", f.path),
                FileOutcome::Duplicate(original) => println!("    duplicate {} of {original}: not re-read", f.path),
                _ => {}
            }
            if let Some(reason) = &f.revision_accepted {
                println!("    accepted revision {}: {reason}", f.path);
            }
        }
        for m in &r.near_misses {
            println!("    not read {}: {}", m.path, m.reason);
        }
    }
}
