//! Tamper evidence: what the pipeline wrote, recorded so that a change made outside it is seen.
//!
//! Every object the pipeline writes and later relies on — staging objects (in the manifests),
//! intermediate models and published marts (in `_state/models/`) — is recorded as a [`Seal`]:
//! its size, the store's ETag and version, and the BLAKE3 hash of its bytes.
//!
//! [`check`] compares an object with its seal. The quick check (`run`, `status`) reads metadata
//! only and hashes the bytes only when the size matches but the ETag differs (a local file that
//! was touched or rewritten); the deep check (`verify`) always hashes. An object whose hash
//! matches is intact whatever its ETag says. This module sits just above storage: ingest and
//! transform record seals through it, and `alliance verify` ([`crate::verify`]) reads them.

use crate::error::{Error, Result};
use crate::storage::Store;
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

/// What the pipeline recorded of an object it wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    /// Object path in the warehouse.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// The store's ETag when the object was written (absent on stores without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e_tag: Option<String>,
    /// The store's object version, where versioning is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// BLAKE3 of the bytes (hex).
    pub blake3: String,
}

/// How an object compares with its seal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "reason")]
pub enum SealState {
    Intact,
    /// The object is there but not what the pipeline wrote.
    Changed(String),
    Missing,
}

impl SealState {
    pub fn is_intact(&self) -> bool {
        matches!(self, SealState::Intact)
    }

    /// One line for logs and listings.
    pub fn describe(&self) -> String {
        match self {
            SealState::Intact => "intact".into(),
            SealState::Changed(reason) => format!("changed outside the pipeline ({reason})"),
            SealState::Missing => "missing (deleted outside the pipeline)".into(),
        }
    }
}

/// How hard [`check`] looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Metadata; the bytes only when the ETag changed but the size did not.
    Quick,
    /// Always the bytes.
    Deep,
}

/// BLAKE3 of an object's bytes, streamed.
pub async fn hash_object(store: &Store, path: &str) -> Result<(u64, String)> {
    let inner = store.object_store();
    let location = ObjectPath::from(path);
    let got = inner.get(&location).await.map_err(Error::store("get", store.display(path)))?;
    let mut stream = got.into_stream();
    let mut hasher = blake3::Hasher::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(Error::store("read", store.display(path)))?;
        size += chunk.len() as u64;
        hasher.update(&chunk);
    }
    Ok((size, hasher.finalize().to_hex().to_string()))
}

/// Seals an object as it is now, hashing its bytes.
pub async fn seal(store: &Store, path: &str) -> Result<Seal> {
    let (size, blake3) = hash_object(store, path).await?;
    seal_with_hash(store, path, size, blake3).await
}

/// Seals an object whose bytes' hash is already known (it was computed while writing them).
pub async fn seal_with_hash(store: &Store, path: &str, size: u64, blake3: String) -> Result<Seal> {
    let meta = store.head(path).await?.ok_or_else(|| Error::State {
        location: store.display(path),
        reason: "object vanished after writing".into(),
    })?;
    if meta.size != size {
        return Err(Error::State {
            location: store.display(path),
            reason: format!("{} bytes written but {} stored", size, meta.size),
        });
    }
    Ok(Seal { path: path.to_string(), size, e_tag: meta.e_tag, version: meta.version, blake3 })
}

/// Compares an object with its seal.
pub async fn check(store: &Store, seal: &Seal, depth: Depth) -> Result<SealState> {
    let meta = store.head(&seal.path).await?;
    compare(store, seal, meta.as_ref(), depth).await
}

/// Compares an object, whose metadata was already read (`None`: absent), with its seal.
pub async fn compare(
    store: &Store,
    seal: &Seal,
    meta: Option<&object_store::ObjectMeta>,
    depth: Depth,
) -> Result<SealState> {
    let Some(meta) = meta else { return Ok(SealState::Missing) };
    if meta.size != seal.size {
        return Ok(SealState::Changed(format!("{} bytes, {} recorded", meta.size, seal.size)));
    }
    let same_tag = meta.e_tag.is_some() && meta.e_tag == seal.e_tag && meta.version == seal.version;
    if depth == Depth::Quick && same_tag {
        return Ok(SealState::Intact);
    }
    let (_, blake3) = hash_object(store, &seal.path).await?;
    Ok(match blake3 == seal.blake3 {
        true => SealState::Intact,
        false => SealState::Changed("content hash differs".into()),
    })
}
