//! Staging objects changed or deleted outside the pipeline are put right by re-reading the
//! landing file that owns them.
//!
//! Before a pipeline's files are considered, its staging folder is listed once and every object
//! a file owns is compared with the seal recorded when it was written (size and ETag; the bytes
//! are hashed only when the size matches but the ETag does not). A file whose object differs or
//! is gone is re-read as if it had changed, which rewrites the same objects. Objects nobody owns
//! are removed by the pipeline's garbage collection, as before.

use super::manifest::Manifest;
use crate::error::Result;
use crate::integrity::{compare, Depth};
use crate::storage::Store;
use std::collections::{BTreeMap, BTreeSet};
use tracing::warn;

/// Landing paths whose staging objects no longer match their seals.
pub async fn damaged_files(warehouse: &Store, table: &str, manifest: &Manifest) -> Result<BTreeSet<String>> {
    let listed: BTreeMap<String, object_store::ObjectMeta> =
        warehouse.list(&format!("staging/{table}/")).await?.into_iter().map(|m| (m.location.to_string(), m)).collect();
    let mut damaged = BTreeSet::new();
    for (path, record) in &manifest.files {
        for seal in record.outputs.iter().filter_map(|o| o.seal.as_ref()) {
            let found = compare(warehouse, seal, listed.get(&seal.path), Depth::Quick).await?;
            if !found.is_intact() {
                warn!(file = %path, object = %seal.path, found = %found.describe(), "a staging object was changed outside the pipeline: re-reading its landing file");
                damaged.insert(path.clone());
            }
        }
    }
    Ok(damaged)
}
