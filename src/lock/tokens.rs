//! Takeover tokens: compare-and-swap for stores with a conditional create but no conditional
//! update (the local file system).
//!
//! The right to change `lock.json` away from the content `S` it had when read is the conditional
//! create (`PutMode::Create`; on the local file system a hard link, which fails if the name
//! exists) of `_state/lock.takeover/<hash of S>`. Why that makes every change a single atomic
//! step:
//!
//! 1. Every writer of `lock.json` other than a creator of a free lock first claims the token of
//!    the exact bytes it read: a takeover, a renewal and a release alike. A free-lock create
//!    fails while the object exists.
//! 2. So while `lock.json` holds `S`, only the one run that created token(`S`) can change it:
//!    of N runs that read the same `S`, one creates the token and the others get
//!    `AlreadyExists` and back off. A run that read `S` and claims token(`S`) therefore finds
//!    `lock.json` still holding `S` (changing it would have needed the same token) and replaces
//!    it (an atomic rename) or deletes it.
//! 3. A content never comes back (run id, pid, acquisition time and renewal count are in it), so
//!    no token is needed twice, and no "ABA" is possible.
//!
//! Tokens older than [`TOKEN_KEPT`] are deleted by the next release. Deleting token(`S`) is safe
//! once nobody can still act on a reading of `S`: a claim refuses a reading older than
//! [`CLAIM_WITHIN`], so this holds unless a process stalls for a day between that check and its
//! create.

use crate::error::{Error, Result};
use crate::storage::Store;
use chrono::Utc;
use object_store::path::Path as ObjectPath;
use object_store::{PutMode, PutOptions, PutPayload};
use std::time::{Duration, Instant};

/// Folder of the takeover tokens in the warehouse.
pub const TOKEN_DIR: &str = "_state/lock.takeover";

/// A claim must follow its reading of the lock within this time, or it is refused.
pub const CLAIM_WITHIN: Duration = Duration::from_secs(60);

/// How long tokens are kept before the next release deletes them.
pub const TOKEN_KEPT: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// The token of one content of `lock.json`.
pub fn token_path(seen: &[u8]) -> String {
    format!("{TOKEN_DIR}/{}", &blake3::hash(seen).to_hex()[..32])
}

/// Claims the sole right to change `lock.json` away from `seen`, read at `read_at`. `false`: another
/// run claimed it first (or the reading is too old to act on).
pub async fn claim(store: &Store, seen: &[u8], read_at: Instant, run_id: &str) -> Result<bool> {
    if read_at.elapsed() > CLAIM_WITHIN {
        return Ok(false);
    }
    let path = token_path(seen);
    let note = serde_json::json!({ "run_id": run_id, "at": Utc::now() });
    let create = PutOptions { mode: PutMode::Create, ..Default::default() };
    let body = PutPayload::from(note.to_string().into_bytes());
    match store.object_store().put_opts(&ObjectPath::from(path.as_str()), body, create).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
        Err(e) => Err(Error::store("claim lock takeover", store.display(&path))(e)),
    }
}

/// Deletes tokens older than [`TOKEN_KEPT`].
pub async fn collect_garbage(store: &Store) -> Result<()> {
    let cutoff = Utc::now() - TOKEN_KEPT;
    for token in store.list(&format!("{TOKEN_DIR}/")).await? {
        if token.last_modified < cutoff {
            store.delete(token.location.as_ref()).await?;
        }
    }
    Ok(())
}
