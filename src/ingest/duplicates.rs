//! Identical content under another name.
//!
//! A landing file the manifest does not know (or whose bytes changed) is compared with the files
//! the pipeline has loaded: when one of them has the same size and the same content hash (the
//! manifest's BLAKE3 of the bytes), the new name is recorded as a duplicate of it (manifest
//! status `duplicate`, report outcome `duplicate`) and nothing is read, written or rebuilt. Only
//! a file whose size matches a loaded file's is hashed, streamed, so this costs nothing for new
//! extracts. The duplicate is remembered by size and ETag like any file, so later runs skip it.

use super::manifest::{FileStatus, Manifest};
use crate::error::{Error, Result};
use crate::storage::Store;
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStoreExt};

/// The BLAKE3 of an object, streamed (the same hash the manifest keeps).
pub async fn content_hash(store: &Store, path: &str) -> Result<String> {
    let location = ObjectPath::from(path);
    let mut stream =
        store.object_store().get(&location).await.map_err(Error::store("get", store.display(path)))?.into_stream();
    let mut hasher = blake3::Hasher::new();
    while let Some(piece) = stream.next().await {
        hasher.update(&piece.map_err(Error::store("read", store.display(path)))?);
    }
    Ok(hasher.finalize().to_hex().to_string())
}

/// The loaded landing file `meta` is a byte-for-byte copy of, with the content hash, if any.
pub async fn original_of(landing: &Store, manifest: &Manifest, meta: &ObjectMeta) -> Result<Option<(String, String)>> {
    let path = meta.location.as_ref();
    let same_size = |(other, r): &(&String, &super::manifest::FileRecord)| {
        other.as_str() != path && r.status == FileStatus::Loaded && r.size == meta.size && r.content_hash.is_some()
    };
    if !manifest.files.iter().any(|entry| same_size(&entry)) {
        return Ok(None);
    }
    let hash = content_hash(landing, path).await?;
    Ok(manifest
        .files
        .iter()
        .filter(same_size)
        .find(|(_, r)| r.content_hash.as_deref() == Some(hash.as_str()))
        .map(|(other, _)| (other.clone(), hash)))
}
