//! The pending area of staged files: a file of a pipeline with a revision guard or a unique key
//! is written under `_state/pending/<pipeline>/<slug>/` (its staging objects and quarantine),
//! checked there, and only then committed: each object copied to its place in `staging/` and
//! `quarantine/` (an atomic replace) and the pending copy deleted, or, when the revision guard
//! holds it, deleted without touching staging. Whatever a killed run leaves in the pending area
//! is deleted at the end of the pipeline's next run.

use super::manifest::{FileRecord, FileStatus, Manifest, RowCounts};
use super::revision_guard::{object_values, verdict, Replaced};
use super::{slug, FileOutcome, FileReport, Ingestor, Loaded, Settled};
use crate::config::pipeline::Pipeline;
use crate::error::Result;
use chrono::Utc;
use object_store::ObjectMeta;
use tracing::warn;

/// Root of a pipeline's pending area.
pub fn pending_root(p: &Pipeline) -> String {
    format!("_state/pending/{}", p.name)
}

impl Ingestor {
    /// The pending folder of a file when its pipeline stages loads (a revision guard on a
    /// `replace_by_period` or `merge` pipeline, or a unique key); `None` when it writes in place.
    pub(crate) fn pending_prefix(&self, p: &Pipeline, path: &str) -> Option<String> {
        let guarded = p.load.mode.by_period() && p.load.revision_guard.enabled;
        (guarded || !p.load.unique_key.is_empty()).then(|| format!("{}/{}", pending_root(p), slug(path)))
    }

    /// Checks a staged file and commits it, or deletes its pending objects if the revision guard
    /// holds it and `accept` does not override.
    pub(crate) async fn settle(
        &self,
        p: &Pipeline,
        path: &str,
        manifest: &mut Manifest,
        pending: &str,
        mut loaded: Loaded,
        accept: bool,
    ) -> Result<Settled> {
        let warehouse = &self.stores.warehouse;
        if !p.load.unique_key.is_empty() {
            let props = super::writer::writer_properties(&self.env.ingest, &p.undictionaried_columns())?;
            let url = self.stores.landing.display(path);
            super::unique_key::deduplicate(warehouse, p, pending, &url, &self.run_id, &props, &mut loaded, manifest)
                .await?;
        }
        let staged_prefix = format!("{pending}/staging/");
        let final_path = |staged: &str| format!("staging/{}/{}", p.table, &staged[staged_prefix.len()..]);
        let mut reason = None;
        if p.load.mode.by_period() && p.load.revision_guard.enabled {
            let spec = &p.load.revision_guard;
            let mut replaced = Vec::new();
            for o in &loaded.outputs {
                let target = final_path(&o.path);
                let old_rows = manifest.files.values().flat_map(|r| &r.outputs).find(|x| x.path == target);
                let Some(old_rows) = old_rows.map(|x| x.rows) else { continue };
                let missing_organisations = match &spec.organisation_column {
                    Some(column) => {
                        let now = loaded.organisations.of(&o.period);
                        object_values(warehouse, &target, column).await?.difference(&now).cloned().collect()
                    }
                    None => vec![],
                };
                replaced.push(Replaced { period: o.period.clone(), old_rows, new_rows: o.rows, missing_organisations });
            }
            reason = verdict(spec, &replaced);
        }
        if let Some(reason) = &reason {
            if !accept {
                for o in &loaded.outputs {
                    warehouse.delete(&o.path).await?;
                }
                if let Some(q) = &loaded.quarantine {
                    warehouse.delete(q).await?;
                }
                return Ok(Settled::Held(reason.clone(), loaded.content_hash.clone()));
            }
            warn!(%reason, "revision accepted with --accept-revision");
        }
        for o in &mut loaded.outputs {
            let target = final_path(&o.path);
            warehouse.copy(&o.path, &target).await?;
            warehouse.delete(&o.path).await?;
            // The seal names the object where it stays: same bytes, its own path and ETag.
            o.seal = Some(match o.seal.take() {
                Some(s) => crate::integrity::seal_with_hash(warehouse, &target, s.size, s.blake3).await?,
                None => crate::integrity::seal(warehouse, &target).await?,
            });
            o.path = target;
        }
        if let Some(q) = loaded.quarantine.take() {
            let target = format!("quarantine/{}/{}.parquet", p.name, slug(path));
            warehouse.copy(&q, &target).await?;
            warehouse.delete(&q).await?;
            loaded.quarantine = Some(target);
        }
        Ok(Settled::Commit(Box::new(loaded), reason))
    }

    /// Records a held revision: the reason in `quarantine/<pipeline>/<slug>.held.json`, the
    /// manifest (status `held`, earlier outputs kept) and the report.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn hold(
        &self,
        p: &Pipeline,
        meta: &ObjectMeta,
        manifest: &mut Manifest,
        mut report: FileReport,
        file_url: &str,
        reason: String,
        content_hash: Option<String>,
    ) -> Result<FileReport> {
        let path = meta.location.to_string();
        let now = Utc::now();
        warn!(%reason, "revision held: pass --accept-revision to load it");
        let reason = format!("{reason}; to load it anyway: --accept-revision {path}");
        let note = serde_json::json!({
            "source_file": file_url, "run_id": self.run_id, "at": now, "reason": reason,
        });
        let location = format!("quarantine/{}/{}.held.json", p.name, slug(&path));
        self.stores.warehouse.put(&location, serde_json::to_vec_pretty(&note).unwrap_or_default()).await?;
        let previous = manifest.files.get(&path).map(|r| (r.outputs.clone(), r.quarantine.clone()));
        let (outputs, quarantine) = previous.unwrap_or_default();
        manifest.files.insert(
            path,
            FileRecord {
                size: meta.size,
                e_tag: meta.e_tag.clone(),
                last_modified: meta.last_modified,
                content_hash,
                run_id: self.run_id.clone(),
                ingested_at: now,
                status: FileStatus::Held,
                error: Some(reason.clone()),
                counts: RowCounts::default(),
                outputs,
                quarantine,
            },
        );
        manifest.save(&self.stores.warehouse).await?;
        report.outcome = FileOutcome::Held(reason);
        report.quarantine = Some(location);
        Ok(report)
    }
}
