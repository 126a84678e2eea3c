//! Write-audit-publish for marts.
//!
//! A mart is first written whole to `marts/_staging/<mart>/<run_id>.parquet` (audited there by
//! its data tests). Publishing then keeps the current `marts/<mart>.parquet` as
//! `marts/_history/<mart>/<run_id-of-replacement>.parquet` and replaces it with the staged object
//! by an atomic copy (server-side copy, or hard link and rename on the local store): a reader sees
//! the previous mart or the new one, never a mix. The newest [`HISTORY_KEPT`] versions are kept.

use crate::error::Result;
use crate::storage::Store;

/// Previous versions kept per mart.
pub const HISTORY_KEPT: usize = 10;

/// Where a run stages a mart before its tests pass.
pub fn staged_path(mart: &str, run_id: &str) -> String {
    format!("marts/_staging/{mart}/{run_id}.parquet")
}

/// Where analysts read a mart.
pub fn published_path(mart: &str) -> String {
    format!("marts/{mart}.parquet")
}

/// Publishes a staged mart; returns the published path.
pub async fn publish(store: &Store, mart: &str, run_id: &str) -> Result<String> {
    let staged = staged_path(mart, run_id);
    let published = published_path(mart);
    if store.head(&published).await?.is_some() {
        store.copy(&published, &format!("marts/_history/{mart}/{run_id}.parquet")).await?;
    }
    store.copy(&staged, &published).await?;
    store.delete(&staged).await?;
    prune_history(store, mart).await?;
    Ok(published)
}

/// Removes a staged mart that failed its tests (nothing was published).
pub async fn discard(store: &Store, mart: &str, run_id: &str) -> Result<()> {
    store.delete(&staged_path(mart, run_id)).await
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
