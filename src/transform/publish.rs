//! Write-audit-publish for materialised models.
//!
//! A mart is first written whole to `marts/_staging/<mart>/<run_id>.parquet`, and an
//! intermediate model to `models/<model>/_staging/<run_id>.parquet`; its data tests read it
//! there. Only when they pass is it promoted by an atomic copy (server-side copy, or hard link
//! and rename on the local store) to where it is read — `marts/<mart>.parquet`,
//! `models/<model>/data.parquet` — so a reader, or a later run attaching the model, sees the last
//! good version or the new one, never a failed or partial one.
//!
//! Each published mart is also kept, as an independent copy, in
//! `marts/_history/<mart>/<run_id>.parquet` (the run that built it; the newest [`HISTORY_KEPT`]
//! are kept), so a published mart changed or deleted
//! outside the pipeline can be restored from the copy its recorded seal names.

use crate::error::Result;
use crate::integrity::{self, Seal};
use crate::storage::Store;

/// Versions kept per mart in `_history`, the current one included.
pub const HISTORY_KEPT: usize = 10;

/// Where a run stages a mart before its tests pass.
pub fn staged_path(mart: &str, run_id: &str) -> String {
    format!("marts/_staging/{mart}/{run_id}.parquet")
}

/// Where analysts read a mart.
pub fn published_path(mart: &str) -> String {
    format!("marts/{mart}.parquet")
}

/// The copy of the mart that `run_id` built.
pub fn history_path(mart: &str, run_id: &str) -> String {
    format!("marts/_history/{mart}/{run_id}.parquet")
}

/// Where a run stages an intermediate model before its tests pass.
pub fn staged_model_path(model: &str, run_id: &str) -> String {
    format!("models/{model}/_staging/{run_id}.parquet")
}

/// Where an intermediate model is read from.
pub fn model_path(model: &str) -> String {
    format!("models/{model}/data.parquet")
}

/// Publishes a staged mart: keeps it in `_history` and replaces the published object. Returns
/// the published object's seal.
pub async fn publish(store: &Store, mart: &str, run_id: &str) -> Result<Seal> {
    let staged = staged_path(mart, run_id);
    let (size, blake3) = integrity::hash_object(store, &staged).await?;
    copy_bytes(store, &staged, &history_path(mart, run_id)).await?;
    let seal = promote(store, &staged, &published_path(mart), size, blake3).await?;
    prune_history(store, mart).await?;
    Ok(seal)
}

/// Promotes a staged intermediate model whose tests passed; returns its seal.
pub async fn promote_model(store: &Store, model: &str, run_id: &str, size: u64, blake3: String) -> Result<Seal> {
    promote(store, &staged_model_path(model, run_id), &model_path(model), size, blake3).await
}

async fn promote(store: &Store, staged: &str, target: &str, size: u64, blake3: String) -> Result<Seal> {
    store.copy(staged, target).await?;
    store.delete(staged).await?;
    integrity::seal_with_hash(store, target, size, blake3).await
}

/// Removes a staged object that failed its tests (nothing was published).
pub async fn discard(store: &Store, staged: &str) -> Result<()> {
    store.delete(staged).await
}

/// Puts back the published mart that `run_id` built, if `_history` still holds it unchanged.
/// Returns the new seal, or `None` when there is no good copy (the mart must be rebuilt).
pub async fn restore(store: &Store, mart: &str, run_id: &str, recorded: &Seal) -> Result<Option<Seal>> {
    let kept = history_path(mart, run_id);
    if store.head(&kept).await?.is_none() {
        return Ok(None);
    }
    let (size, blake3) = integrity::hash_object(store, &kept).await?;
    if size != recorded.size || blake3 != recorded.blake3 {
        return Ok(None);
    }
    copy_bytes(store, &kept, &recorded.path).await?;
    Ok(Some(integrity::seal_with_hash(store, &recorded.path, size, blake3).await?))
}

/// A copy that shares nothing with its source. (The local store's `copy` is a hard link: a
/// published mart rewritten in place would rewrite its kept copy too.) Marts are small.
async fn copy_bytes(store: &Store, from: &str, to: &str) -> Result<()> {
    let bytes = store.get(from).await?;
    store.put(to, bytes).await
}

async fn prune_history(store: &Store, mart: &str) -> Result<()> {
    let mut versions = store.list(&format!("marts/_history/{mart}/")).await?;
    // Run ids start with their UTC start time, so names sort by age.
    versions.sort_by(|a, b| b.location.cmp(&a.location));
    for old in versions.iter().skip(HISTORY_KEPT) {
        store.delete(old.location.as_ref()).await?;
    }
    Ok(())
}
