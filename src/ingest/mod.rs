//! Ingestion: landing extracts → normalised staging Parquet, per pipeline.
//!
//! For each pipeline the landing objects matching its glob are compared with the manifest:
//! unchanged files (same size and ETag, or same SHA-256) are skipped; new and changed files are
//! streamed through three overlapping stages — read/decode, normalise (Arrow kernels), Parquet
//! encode/upload — with bounded channels between them, so memory does not grow with file size.
//!
//! A file that cannot be read as declared (wrong shape, missing columns, malformed structure) is
//! rejected whole: nothing from it is written, the reason goes to
//! `quarantine/<pipeline>/<slug>.rejected.json` and the manifest, and data from earlier versions
//! stays. Any other failure while reading, normalising or writing one file (an unreadable
//! column type, a writer error that is not the store's) is also that file's rejection: the other
//! files and pipelines go on. Every reason passes through [`redact::reason`] first, so no data
//! from the file reaches the log or the state. Transient object-store failures are not
//! rejections: they fail the run, to be retried. Landing entries that are not regular files
//! (links, devices) are skipped, never read ([`landing`]).

pub mod dates;
pub mod duplicates;
pub mod fetch;
pub mod landing;
pub mod limits;
pub mod manifest;
pub mod nhs;
pub mod normalise;
pub mod parallel;
pub mod parquet_source;
pub mod parse;
pub mod plausibility;
pub mod records;
pub mod redact;
pub mod repair;
pub mod revision_guard;
pub mod source;
mod staged;
pub mod text;
pub mod unique_key;
pub mod workbook;
pub mod writer;
pub mod xlsx;

use crate::config::pipeline::{ColumnType, Format, LoadMode, Pipeline};
use crate::config::Environment;
use crate::error::{Error, Result};
use crate::lock::LockHealth;
use crate::storage::Stores;
use chrono::Utc;
use manifest::{FileRecord, FileStatus, Manifest, RowCounts};
use normalise::Normaliser;
use object_store::ObjectMeta;
use serde::Serialize;
use sha2::{Digest, Sha256};
use source::{SourceMsg, CHANNEL_DEPTH};
use staged::pending_root;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use tracing::{info, info_span, warn, Instrument};
use writer::{OutputObject, PartitionedWriter, QuarantineWriter};

/// What happened to one landing file in a run.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "reason")]
pub enum FileOutcome {
    Unchanged,
    Loaded,
    Rejected(String),
    /// A `replace_by_period` revision held by the revision guard (the reason); nothing written.
    Held(String),
    /// A byte-for-byte copy of the loaded landing file named; nothing read or written.
    Duplicate(String),
    /// A landing entry matching the pipeline that is not a file ingestion may read (a symbolic
    /// link, a device, a name the store cannot represent); never opened, not in the manifest.
    Skipped(String),
}

impl FileOutcome {
    /// True for a file that was not loaded for a reason (rejected, skipped or held).
    pub fn is_refused(&self) -> bool {
        matches!(self, FileOutcome::Rejected(_) | FileOutcome::Skipped(_) | FileOutcome::Held(_))
    }
}

/// Report of one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub path: String,
    pub bytes: u64,
    #[serde(flatten)]
    pub outcome: FileOutcome,
    pub counts: RowCounts,
    pub outputs: Vec<OutputObject>,
    pub quarantine: Option<String>,
    pub seconds: f64,
    /// The revision guard's reason, when `--accept-revision` loaded the file anyway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision_accepted: Option<String>,
}

/// Report of one pipeline.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineReport {
    pub pipeline: String,
    pub table: String,
    pub files: Vec<FileReport>,
    /// Landing files this pipeline nearly matches but does not read (wrong case, wrong folder).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub near_misses: Vec<landing::NearMiss>,
}

impl PipelineReport {
    pub fn totals(&self) -> RowCounts {
        let mut t = RowCounts::default();
        self.files.iter().for_each(|f| t.add(&f.counts));
        t
    }
}

/// Options of `alliance ingest`.
#[derive(Debug, Clone, Default)]
pub struct IngestOptions {
    /// Only these pipelines (all when empty).
    pub pipelines: Vec<String>,
    /// Re-ingest files even when unchanged.
    pub force: bool,
    /// Landing files (path or file name) whose revision is loaded even if the revision guard
    /// holds it (`--accept-revision FILE`).
    pub accept_revisions: Vec<String>,
}

/// Everything ingestion needs.
pub struct Ingestor {
    pub env: Environment,
    pub stores: Stores,
    pub run_id: String,
    /// Checked before every step that makes data visible or commits the manifest.
    pub lock: LockHealth,
}

impl Ingestor {
    pub fn new(env: Environment, stores: Stores, run_id: String) -> Self {
        Self { env, stores, run_id, lock: LockHealth::default() }
    }

    /// Stops at the next publish or commit with [`Error::LockLost`] once `lock` is lost.
    pub fn guarded_by(self, lock: LockHealth) -> Self {
        Self { lock, ..self }
    }

    /// Runs the selected pipelines in order.
    pub async fn run(&self, pipelines: &[Pipeline], options: &IngestOptions) -> Result<Vec<PipelineReport>> {
        let known: Vec<&str> = pipelines.iter().map(|p| p.name.as_str()).collect();
        if let Some(unknown) = options.pipelines.iter().find(|n| !known.contains(&n.as_str())) {
            return Err(Error::config(
                "pipelines",
                format!("no pipeline named '{unknown}' (known: {})", known.join(", ")),
            ));
        }
        let selected: Vec<&Pipeline> =
            pipelines.iter().filter(|p| options.pipelines.is_empty() || options.pipelines.contains(&p.name)).collect();
        let near = self.near_misses(pipelines).await?;
        let mut reports = Vec::with_capacity(selected.len());
        for p in selected {
            let span = info_span!("pipeline", pipeline = %p.name);
            let mut report = self.run_pipeline(p, options).instrument(span).await?;
            report.near_misses = near.iter().filter(|m| m.pipeline == p.name).cloned().collect();
            reports.push(report);
        }
        Ok(reports)
    }

    /// Landing files no pipeline reads but one nearly would, each warned about.
    async fn near_misses(&self, pipelines: &[Pipeline]) -> Result<Vec<landing::NearMiss>> {
        let listing = landing::list(&self.stores.landing, "").await?;
        landing::warn_skipped(&listing.skipped);
        let paths: Vec<String> = listing.files.iter().map(|m| m.location.to_string()).collect();
        let misses = landing::near_misses(&paths, pipelines);
        for m in &misses {
            warn!(file = %m.path, pipeline = %m.pipeline, reason = %m.reason, "landing file not read: near miss");
        }
        Ok(misses)
    }

    async fn run_pipeline(&self, p: &Pipeline, options: &IngestOptions) -> Result<PipelineReport> {
        let (candidates, skipped) = landing_listing(&self.stores.landing, p).await?;
        let mut manifest = Manifest::load(&self.stores.warehouse, &p.name).await?;
        let pseudonymiser = if p.columns.iter().any(|c| c.kind == ColumnType::NhsNumber) {
            Some(Arc::new(nhs::Pseudonymiser::new(&self.env.pseudonymisation_key()?)))
        } else {
            None
        };
        // A changed pipeline definition (contract, parsing, load rules) makes every file's
        // staging data stale, and may make a rejected file loadable: all files are re-read.
        let fingerprint = pipeline_fingerprint(p);
        let definition_changed = manifest.files.values().next().is_some()
            && manifest.pipeline_fingerprint.as_deref() != Some(fingerprint.as_str());
        if definition_changed {
            info!("pipeline definition changed since the last run: re-reading every file");
        }
        let force = options.force || definition_changed;
        let damaged = repair::damaged_files(&self.stores.warehouse, &p.table, &manifest).await?;
        info!(files = candidates.len(), "pipeline start");
        let mut files = Vec::with_capacity(candidates.len());
        let bar = crate::logging::progress(candidates.len() as u64, &p.name);
        for meta in candidates {
            let path = meta.location.to_string();
            bar.set_message(path.clone());
            let span = info_span!("file", file = %path);
            let accept = options.accept_revisions.iter().any(|a| revision_guard::names_file(a, &path));
            let reread = force || damaged.contains(&path);
            let report =
                self.file(p, &meta, &mut manifest, reread, accept, pseudonymiser.clone()).instrument(span).await?;
            files.push(report);
            bar.inc(1);
        }
        bar.finish_and_clear();
        for s in skipped {
            files.push(FileReport {
                path: s.path,
                bytes: 0,
                outcome: FileOutcome::Skipped(s.reason),
                counts: RowCounts::default(),
                outputs: vec![],
                quarantine: None,
                seconds: 0.0,
                revision_accepted: None,
            });
        }
        self.lock.check()?;
        if manifest.pipeline_fingerprint.as_deref() != Some(fingerprint.as_str()) {
            manifest.pipeline_fingerprint = Some(fingerprint);
            manifest.save(&self.stores.warehouse).await?;
        }
        self.collect_garbage(p, &manifest).await?;
        Ok(PipelineReport { pipeline: p.name.clone(), table: p.table.clone(), files, near_misses: vec![] })
    }

    async fn file(
        &self,
        p: &Pipeline,
        meta: &ObjectMeta,
        manifest: &mut Manifest,
        force: bool,
        accept_revision: bool,
        pseudonymiser: Option<Arc<nhs::Pseudonymiser>>,
    ) -> Result<FileReport> {
        let started = Instant::now();
        let path = meta.location.to_string();
        let landing = &self.stores.landing;
        let mut report = FileReport {
            path: path.clone(),
            bytes: meta.size,
            outcome: FileOutcome::Unchanged,
            counts: RowCounts::default(),
            outputs: vec![],
            quarantine: None,
            seconds: 0.0,
            revision_accepted: None,
        };
        // A held revision is reconsidered every run (staging may have changed, or it may now be
        // accepted); everything else is skipped when its bytes are the ones last seen.
        let held = manifest.files.get(&path).is_some_and(|r| r.status == FileStatus::Held);
        if !force && !held {
            if let Some(record) = manifest.files.get(&path) {
                let same_tag = record.size == meta.size && record.e_tag.is_some() && record.e_tag == meta.e_tag;
                let same_content = !same_tag
                    && record.size == meta.size
                    && record.content_hash.is_some()
                    && record.content_hash == Some(fetch::content_hash(&landing.get(&path).await?));
                if same_tag || same_content {
                    report.counts = record.counts;
                    if record.status == FileStatus::Rejected {
                        // Same bytes, same pipeline: the same rejection; reported, not re-read.
                        report.outcome =
                            FileOutcome::Rejected(redact::reason(record.error.as_deref().unwrap_or_default()));
                        report.quarantine = Some(format!("quarantine/{}/{}.rejected.json", p.name, slug(&path)));
                    }
                    if record.status == FileStatus::Duplicate {
                        report.outcome = FileOutcome::Duplicate(record.error.clone().unwrap_or_default());
                    }
                    if same_content {
                        // Touched or copied but identical: remember the new identity.
                        if let Some(record) = manifest.files.get_mut(&path) {
                            record.e_tag = meta.e_tag.clone();
                            record.last_modified = meta.last_modified;
                        }
                        self.lock.check()?;
                        manifest.save(&self.stores.warehouse).await?;
                    }
                    info!("unchanged, skipped");
                    return Ok(report);
                }
            }
        }
        let now = Utc::now();
        if let Some((original, hash)) = duplicates::original_of(landing, manifest, meta).await? {
            info!(%original, "identical to a loaded file: recorded as a duplicate, not re-read");
            let previous = manifest.files.get(&path).map(|r| (r.outputs.clone(), r.quarantine.clone()));
            let (outputs, quarantine) = previous.unwrap_or_default();
            manifest.files.insert(
                path.clone(),
                FileRecord {
                    size: meta.size,
                    e_tag: meta.e_tag.clone(),
                    last_modified: meta.last_modified,
                    content_hash: Some(hash),
                    run_id: self.run_id.clone(),
                    ingested_at: now,
                    status: FileStatus::Duplicate,
                    error: Some(original.clone()),
                    counts: RowCounts::default(),
                    outputs,
                    quarantine,
                },
            );
            self.lock.check()?;
            manifest.save(&self.stores.warehouse).await?;
            report.outcome = FileOutcome::Duplicate(original);
            return Ok(report);
        }
        let file_url = landing.display(&path);
        let pending = self.pending_prefix(p, &path);
        self.lock.check()?;
        let outcome = self.load_file(p, meta, &file_url, pseudonymiser, pending.as_deref()).await;
        // Loading made staging objects visible; what follows commits them (or the rejection).
        self.lock.check()?;
        report.seconds = started.elapsed().as_secs_f64();
        let outcome = match (outcome, &pending) {
            (Ok(loaded), Some(pending)) => {
                match self.settle(p, &path, manifest, pending, loaded, accept_revision).await? {
                    Settled::Commit(loaded, accepted) => {
                        report.revision_accepted = accepted;
                        Ok(*loaded)
                    }
                    Settled::Held(reason, content_hash) => {
                        return self.hold(p, meta, manifest, report, &file_url, reason, content_hash).await;
                    }
                }
            }
            (other, _) => other,
        };
        let outcome = match outcome {
            Ok(loaded) if !loaded.counts.balanced() => {
                Err(Error::source_file(&file_url, format!("row accounting does not balance: {:?}", loaded.counts)))
            }
            other => other,
        };
        match outcome {
            Ok(loaded) => self.record_loaded(p, meta, manifest, &mut report, loaded).await?,
            // The store failing is not the file's fault: the run fails, to be retried.
            Err(e) if e.is_transient() || matches!(e, Error::Interrupted(_)) => return Err(e),
            Err(e) => self.record_rejected(p, meta, manifest, &mut report, &file_url, &e).await?,
        }
        self.lock.check()?;
        manifest.save(&self.stores.warehouse).await?;
        Ok(report)
    }

    /// Records a loaded file: its objects replace the ones it owned, its quarantine replaces the
    /// old one, and any earlier rejection note goes.
    async fn record_loaded(
        &self,
        p: &Pipeline,
        meta: &ObjectMeta,
        manifest: &mut Manifest,
        report: &mut FileReport,
        loaded: Loaded,
    ) -> Result<()> {
        let path = meta.location.to_string();
        let stale = manifest.take_ownership(&path, &loaded.outputs);
        for object in stale {
            self.stores.warehouse.delete(&object).await?;
        }
        let old_quarantine = manifest.files.get(&path).and_then(|r| r.quarantine.clone());
        if let Some(old) = old_quarantine.filter(|old| Some(old) != loaded.quarantine.as_ref()) {
            self.stores.warehouse.delete(&old).await?;
        }
        self.stores.warehouse.delete(&format!("quarantine/{}/{}.rejected.json", p.name, slug(&path))).await?;
        self.stores.warehouse.delete(&format!("quarantine/{}/{}.held.json", p.name, slug(&path))).await?;
        let c = loaded.counts;
        if c.rows_written == 0 && c.rows_quarantined > 0 {
            warn!(
                rows_in = c.rows_in,
                quarantined = c.rows_quarantined,
                dropped = c.rows_dropped,
                seconds = report.seconds,
                "loaded, but every row was quarantined"
            );
        } else {
            info!(
                rows_in = c.rows_in,
                written = c.rows_written,
                quarantined = c.rows_quarantined,
                dropped = c.rows_dropped,
                objects = loaded.outputs.len(),
                seconds = report.seconds,
                "loaded"
            );
        }
        manifest.files.insert(
            path,
            FileRecord {
                size: meta.size,
                e_tag: meta.e_tag.clone(),
                last_modified: meta.last_modified,
                content_hash: loaded.content_hash,
                run_id: self.run_id.clone(),
                ingested_at: Utc::now(),
                status: FileStatus::Loaded,
                error: None,
                counts: loaded.counts,
                outputs: loaded.outputs.clone(),
                quarantine: loaded.quarantine.clone(),
            },
        );
        report.outcome = FileOutcome::Loaded;
        report.counts = loaded.counts;
        report.outputs = loaded.outputs;
        report.quarantine = loaded.quarantine;
        Ok(())
    }

    /// Records a rejected file: a note in quarantine and the manifest, with the reason redacted;
    /// the data of its earlier version stays.
    async fn record_rejected(
        &self,
        p: &Pipeline,
        meta: &ObjectMeta,
        manifest: &mut Manifest,
        report: &mut FileReport,
        file_url: &str,
        error: &Error,
    ) -> Result<()> {
        let path = meta.location.to_string();
        let reason = redact::reason(&error.to_string());
        warn!(%reason, "file rejected");
        let now = Utc::now();
        let note = serde_json::json!({
            "source_file": redact::name(file_url), "run_id": self.run_id, "at": now, "reason": reason,
        });
        let location = format!("quarantine/{}/{}.rejected.json", p.name, slug(&path));
        self.stores.warehouse.put(&location, serde_json::to_vec_pretty(&note).unwrap_or_default()).await?;
        let previous = manifest.files.get(&path).map(|r| (r.outputs.clone(), r.quarantine.clone()));
        let (outputs, quarantine) = previous.unwrap_or_default();
        manifest.files.insert(
            path,
            FileRecord {
                size: meta.size,
                e_tag: meta.e_tag.clone(),
                last_modified: meta.last_modified,
                content_hash: None,
                run_id: self.run_id.clone(),
                ingested_at: now,
                status: FileStatus::Rejected,
                error: Some(reason.clone()),
                counts: RowCounts::default(),
                outputs,
                quarantine,
            },
        );
        report.outcome = FileOutcome::Rejected(reason);
        report.quarantine = Some(location);
        Ok(())
    }

    /// Streams one file through read → normalise → write.
    async fn load_file(
        &self,
        p: &Pipeline,
        meta: &ObjectMeta,
        file_url: &str,
        pseudonymiser: Option<Arc<nhs::Pseudonymiser>>,
        pending: Option<&str>,
    ) -> Result<Loaded> {
        let path = meta.location.to_string();
        let batch_rows = self.env.ingest.batch_rows;
        let (tx, mut rx) = mpsc::channel::<Result<SourceMsg>>(CHANNEL_DEPTH);
        let mut hasher_task = None;
        let mut content_hash = None;
        match p.source.format {
            Format::Csv | Format::Tsv => {
                let (chunk_tx, chunk_rx) = mpsc::channel(fetch::CHUNK_DEPTH);
                let store = self.stores.landing.object_store();
                let (location, url) = (meta.location.clone(), file_url.to_string());
                hasher_task = Some(match self.stores.landing.local_file(&path) {
                    Some(file) => tokio::task::spawn_blocking(move || fetch::read_local_hashed(&file, &url, chunk_tx)),
                    None => tokio::spawn(fetch::stream_hashed(store, location, url, chunk_tx)),
                });
                let (file, spec, limits) = (file_url.to_string(), p.source.clone(), self.env.limits.clone());
                tokio::task::spawn_blocking(move || text::read_text(&file, &spec, batch_rows, &limits, chunk_rx, tx));
            }
            Format::Xlsx => {
                let bytes = self.stores.landing.get(&path).await?;
                content_hash = Some(fetch::content_hash(&bytes));
                let (file, pipeline, limits) = (file_url.to_string(), p.clone(), self.env.limits.clone());
                tokio::task::spawn_blocking(move || xlsx::read_xlsx(&file, &pipeline, batch_rows, &limits, bytes, tx));
            }
            Format::Parquet => {
                let bytes = self.stores.landing.get(&path).await?;
                content_hash = Some(fetch::content_hash(&bytes));
                let file = file_url.to_string();
                tokio::task::spawn_blocking(move || parquet_source::read_parquet(&file, bytes, batch_rows, tx));
            }
        }
        let header = match rx.recv().await {
            Some(Ok(SourceMsg::Header(h))) => h,
            Some(Err(e)) => return Err(e),
            Some(Ok(SourceMsg::Batch(_))) | None => {
                return Err(Error::source_file(file_url, "source produced no header"))
            }
        };
        let normaliser = Normaliser::new(p, file_url, &header, pseudonymiser)?;
        let schema = normaliser.schema();
        let slot = match p.load.mode {
            LoadMode::Append => slug(&path),
            LoadMode::FullReplace => "data".to_string(),
            LoadMode::ReplaceByPeriod | LoadMode::Merge if p.load.scope.is_empty() => "data".to_string(),
            LoadMode::ReplaceByPeriod | LoadMode::Merge => normaliser.scope_slot(&p.load.scope)?,
        };
        let period = match p.load.mode {
            LoadMode::FullReplace => None,
            _ => p.load.period.as_deref(),
        };
        let props = writer::writer_properties(&self.env.ingest, &p.undictionaried_columns())?;
        let mut organisations = revision_guard::PeriodOrganisations::new(
            &schema,
            period,
            p.load.revision_guard.organisation_column.as_deref(),
        );
        let mut keys = unique_key::KeyHashes::new(&schema, &p.load.unique_key)?;
        let mut staging = PartitionedWriter::new(
            self.stores.warehouse.clone(),
            match pending {
                Some(pending) => format!("{pending}/staging"),
                None => format!("staging/{}", p.table),
            },
            slot,
            schema,
            props.clone(),
            period,
            parallel::default_workers(),
        );
        let mut quarantine = QuarantineWriter::new(
            self.stores.warehouse.clone(),
            match pending {
                Some(pending) => format!("{pending}/quarantine.parquet"),
                None => format!("quarantine/{}/{}.parquet", p.name, slug(&path)),
            },
            self.run_id.clone(),
            file_url.to_string(),
            props,
        );
        let workers = self.env.ingest.workers.unwrap_or_else(parallel::default_workers);
        let (mut nrx, tokens) = parallel::spawn(normaliser, rx, workers, workers + 1);
        let mut order = parallel::Reorder::default();
        let mut counts = RowCounts::default();
        while let Some(numbered) = nrx.recv().await {
            for n in order.push(numbered) {
                let n = n?;
                counts.add(&RowCounts {
                    rows_in: n.rows_in,
                    rows_written: n.batch.num_rows() as u64,
                    rows_quarantined: n.rows_quarantined,
                    rows_dropped: n.rows_dropped,
                    values_nulled: n.values_nulled,
                });
                organisations.observe(&n.batch)?;
                keys.observe(&n.batch)?;
                staging.write(&n.batch).await?;
                quarantine.write(&n.rejected).await?;
                tokens.release();
            }
        }
        if let Some(task) = hasher_task {
            content_hash = task.await.ok().flatten();
        }
        if counts.rows_in == 0 {
            return Err(Error::source_file(file_url, "no data rows below the header"));
        }
        // Completing the uploads makes the staging objects visible.
        self.lock.check()?;
        let outputs = staging.finish().await?;
        let quarantine = quarantine.finish().await?;
        Ok(Loaded { counts, outputs, quarantine, content_hash, organisations, keys })
    }

    /// Deletes staging objects of the table that no manifest entry owns (left by a file that was
    /// interrupted and whose source then disappeared).
    async fn collect_garbage(&self, p: &Pipeline, manifest: &Manifest) -> Result<()> {
        let live: std::collections::HashSet<&str> = manifest.live_objects().iter().map(|o| o.path.as_str()).collect();
        for object in self.stores.warehouse.list(&format!("{}/", pending_root(p))).await? {
            self.stores.warehouse.delete(object.location.as_ref()).await?;
        }
        let prefix = format!("staging/{}/", p.table);
        for object in self.stores.warehouse.list(&prefix).await? {
            let path = object.location.to_string();
            if !live.contains(path.as_str()) {
                warn!(object = %path, "removing staging object no landing file owns");
                self.stores.warehouse.delete(&path).await?;
            }
        }
        Ok(())
    }
}

/// What one file wrote (to the pending area first for staged pipelines).
pub(crate) struct Loaded {
    pub(crate) counts: RowCounts,
    pub(crate) outputs: Vec<OutputObject>,
    pub(crate) quarantine: Option<String>,
    pub(crate) content_hash: Option<String>,
    /// Organisations per month, for the revision guard.
    pub(crate) organisations: revision_guard::PeriodOrganisations,
    /// Key hashes, for the unique key.
    pub(crate) keys: unique_key::KeyHashes,
}

/// What becomes of a staged file: its objects replace staging (with the guard's reason when
/// `--accept-revision` overrode it), or it is held.
pub(crate) enum Settled {
    Commit(Box<Loaded>, Option<String>),
    Held(String, Option<String>),
}

/// What staging holds for a given definition; changed whenever that changes, so that every
/// pipeline re-reads its files once after an upgrade. 2: pseudonyms stored as 16 bytes (were 32
/// hex characters).
const STAGING_FORMAT: &str = "2";

/// Identity of a pipeline's definition: the SHA-256 of its file (or of its parsed form when it
/// was not read from a file) and of its vocabulary mapping table (a changed mapping re-reads the
/// files), plus the build identity of the ingest code, whose parsing rules it relies on
/// ([`crate::code_identity`]), and the [`STAGING_FORMAT`].
pub fn pipeline_fingerprint(p: &Pipeline) -> String {
    let definition = std::fs::read(&p.file).unwrap_or_else(|_| format!("{p:?}").into_bytes());
    let mut hasher = Sha256::new();
    hasher.update(crate::code_identity::CodeIdentity::compiled().ingest.as_bytes());
    hasher.update(STAGING_FORMAT.as_bytes());
    hasher.update(&definition);
    if let Some(table) = &p.vocabulary_table {
        hasher.update(b"\0vocabularies\0");
        hasher.update(&table.bytes);
    }
    hex::encode(hasher.finalize())
}

/// The landing objects matching a pipeline's glob, oldest first.
pub async fn landing_files(landing: &crate::storage::Store, p: &Pipeline) -> Result<Vec<ObjectMeta>> {
    Ok(landing_listing(landing, p).await?.0)
}

/// The landing objects matching a pipeline's glob, oldest first, and the entries matching it
/// that are skipped (links, devices, odd names).
pub async fn landing_listing(
    landing: &crate::storage::Store,
    p: &Pipeline,
) -> Result<(Vec<ObjectMeta>, Vec<landing::Skipped>)> {
    let matcher = landing::matcher(p)?;
    let listing = landing::list(landing, &literal_prefix(&p.source.glob)).await?;
    let mut candidates: Vec<ObjectMeta> =
        listing.files.into_iter().filter(|m| matcher.is_match(m.location.as_ref())).collect();
    candidates.sort_by(|a, b| (a.last_modified, a.location.as_ref()).cmp(&(b.last_modified, b.location.as_ref())));
    let skipped = listing.skipped.into_iter().filter(|s| s.matches(&matcher)).collect();
    Ok((candidates, skipped))
}

/// Landing files of a pipeline that are new or changed since the manifest saw them (size and
/// ETag only: nothing is read), or all of them if the pipeline definition changed.
pub async fn pending_files(stores: &Stores, p: &Pipeline) -> Result<Vec<String>> {
    let manifest = Manifest::load(&stores.warehouse, &p.name).await?;
    let changed_definition = !manifest.files.is_empty()
        && manifest.pipeline_fingerprint.as_deref() != Some(pipeline_fingerprint(p).as_str());
    Ok(landing_files(&stores.landing, p)
        .await?
        .into_iter()
        .filter(|m| {
            changed_definition
                || manifest
                    .files
                    .get(m.location.as_ref())
                    .is_none_or(|r| r.size != m.size || r.e_tag.is_none() || r.e_tag != m.e_tag)
        })
        .map(|m| m.location.to_string())
        .collect())
}

/// SHA-256 of bytes, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Characters of a file name kept in a [`slug`]: with the hash and the longest suffix
/// (`.rejected.json`) an object name stays well under the 255 bytes file systems allow.
pub const SLUG_STEM_CHARS: usize = 120;

/// A file-system and URL safe name for a landing path, unique per path: the file name with
/// anything but ASCII letters, digits, `-`, `_` and `.` as `_`, cut to [`SLUG_STEM_CHARS`], then
/// `-` and the first 8 hex digits of the path's SHA-256.
pub fn slug(path: &str) -> String {
    let stem: String = path
        .rsplit('/')
        .next()
        .unwrap_or(path)
        .chars()
        .take(SLUG_STEM_CHARS)
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '_' })
        .collect();
    format!("{}-{}", stem, &sha256_hex(path.as_bytes())[..8])
}

/// The folder part of a glob before its first wildcard (to narrow the listing).
fn literal_prefix(glob: &str) -> String {
    let end = glob.find(['*', '?', '[', '{']).unwrap_or(glob.len());
    match glob[..end].rfind('/') {
        Some(i) => glob[..i].to_string(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_slugs() {
        assert_eq!(literal_prefix("cwt/*Provider*.xlsx"), "cwt");
        assert_eq!(literal_prefix("trusts/ral/**/*.csv"), "trusts/ral");
        assert_eq!(literal_prefix("*.csv"), "");
        let s = slug("trusts/RAL 2024-01.csv");
        assert!(s.starts_with("RAL_2024-01.csv-") && s.len() == "RAL_2024-01.csv-".len() + 8);
        assert_ne!(slug("a/x.csv"), slug("b/x.csv"));
        let long = format!("trusts/{}.csv", "é".repeat(200));
        assert!(slug(&long).len() <= SLUG_STEM_CHARS + 9);
        assert_ne!(slug(&long), slug(&long.replace(".csv", "x.csv")), "cut names stay distinct");
    }
}
