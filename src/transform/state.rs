//! Build state: a fingerprint per model, so that a model whose inputs have not changed is not
//! rebuilt (re-running on the same landing files changes nothing and costs almost nothing).
//!
//! A model's fingerprint covers the build identity of the code it depends on
//! ([`crate::code_identity`]), its SQL, its sidecar (tests, disclosure), the
//! fingerprints of the models it reads and, for the staging tables it reads, the manifest entries
//! of the files loaded into them (path, content hash or ETag, loading run). It is stored in
//! `_state/models/<model>.json` once the model has been built and, for a mart, published, with
//! the seal of the object written.

use super::graph::Graph;
use super::model::{Layer, Model};
use crate::code_identity::{calls_any, statistical_functions, CodeIdentity};
use crate::config::Pipeline;
use crate::error::{Error, Result};
use crate::ingest::manifest::{FileStatus, Manifest};
use crate::storage::Store;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the last successful build of a model recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelState {
    pub fingerprint: String,
    pub run_id: String,
    pub rows: Option<u64>,
    /// The materialised object as written (intermediate models and published marts), checked by
    /// every build, `status` and `verify` ([`crate::integrity`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<crate::integrity::Seal>,
}

fn location(model: &str) -> String {
    format!("_state/models/{model}.json")
}

/// The recorded state of a model, if any.
pub async fn load(warehouse: &Store, model: &str) -> Result<Option<ModelState>> {
    let Some(bytes) = warehouse.get_opt(&location(model)).await? else { return Ok(None) };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::State { location: warehouse.display(&location(model)), reason: e.to_string() })
}

/// Records a successful build.
pub async fn save(warehouse: &Store, model: &str, state: &ModelState) -> Result<()> {
    let json = serde_json::to_vec_pretty(state)
        .map_err(|e| Error::State { location: location(model), reason: e.to_string() })?;
    warehouse.put(&location(model), json).await
}

/// The recorded state of every model that has one.
pub async fn load_all(warehouse: &Store) -> Result<BTreeMap<String, ModelState>> {
    let mut out = BTreeMap::new();
    for meta in warehouse.list("_state/models/").await? {
        let location = meta.location.as_ref();
        let Some(model) = location.strip_prefix("_state/models/").and_then(|n| n.strip_suffix(".json")) else {
            continue;
        };
        if let Some(state) = load(warehouse, model).await? {
            out.insert(model.to_string(), state);
        }
    }
    Ok(out)
}

/// Forgets a model's state (its output changed without a successful build).
pub async fn clear(warehouse: &Store, model: &str) -> Result<()> {
    warehouse.delete(&location(model)).await
}

/// Fingerprint of each pipeline's staging table, from its manifest.
pub async fn source_fingerprints(warehouse: &Store, pipelines: &[Pipeline]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for p in pipelines {
        let manifest = Manifest::load(warehouse, &p.name).await?;
        let mut hasher = blake3::Hasher::new();
        hasher.update(manifest.pipeline_fingerprint.as_deref().unwrap_or("").as_bytes());
        for (path, record) in manifest.files.iter().filter(|(_, r)| r.status == FileStatus::Loaded) {
            let identity = record.content_hash.as_deref().or(record.e_tag.as_deref()).unwrap_or("");
            for part in [path.as_str(), identity, record.run_id.as_str()] {
                hasher.update(part.as_bytes());
                hasher.update(&[0]);
            }
        }
        out.insert(p.table.clone(), hasher.finalize().to_hex().to_string());
    }
    Ok(out)
}

/// Fingerprints of every model, in graph order, for the code of `code`.
pub fn model_fingerprints(
    graph: &Graph,
    sources: &BTreeMap<String, String>,
    code: &CodeIdentity,
) -> BTreeMap<String, String> {
    let functions = statistical_functions();
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for m in &graph.models {
        let fingerprint = fingerprint(m, graph, &out, sources, code, &functions);
        out.insert(m.name.clone(), fingerprint);
    }
    out
}

fn fingerprint(
    m: &Model,
    graph: &Graph,
    models: &BTreeMap<String, String>,
    sources: &BTreeMap<String, String>,
    code: &CodeIdentity,
    functions: &[String],
) -> String {
    let mut hasher = blake3::Hasher::new();
    if m.layer != Layer::Staging {
        hasher.update(b"models:");
        hasher.update(code.models.as_bytes());
    }
    if calls_any(&m.sql, functions) {
        hasher.update(b"stats:");
        hasher.update(code.stats.as_bytes());
    }
    if m.spec.disclosure.is_some() {
        hasher.update(b"disclosure:");
        hasher.update(code.disclosure.as_bytes());
    }
    hasher.update(m.sql.as_bytes());
    if let Ok(sidecar) = std::fs::read(m.path.with_extension("toml")) {
        hasher.update(&sidecar);
    }
    for up in &graph.upstream[&m.name] {
        hasher.update(up.as_bytes());
        hasher.update(models.get(up).map(String::as_str).unwrap_or("").as_bytes());
    }
    for table in &graph.sources[&m.name] {
        hasher.update(table.as_bytes());
        hasher.update(sources.get(table).map(String::as_str).unwrap_or("").as_bytes());
    }
    hasher.finalize().to_hex().to_string()
}
