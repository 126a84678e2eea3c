//! One run at a time per warehouse: a lock object `_state/lock.json` with an expiry.
//!
//! # Invariant
//!
//! At every moment at most one run holds the lock. Every change of `lock.json` is a single atomic
//! step that succeeds only if the object is still exactly what the writer last saw:
//!
//! * **Taking a free lock** is a conditional create (`PutMode::Create`: `If-None-Match: *` on S3
//!   and Azure, a hard link that fails if the name exists on the local file system). Of N runs
//!   racing, exactly one succeeds.
//! * **Taking over a stale lock** (past its expiry, released, or held by a process of this host
//!   that no longer exists, e.g. after a kill) replaces the stale record in one conditional step:
//!   - on S3, Azure, GCS and in memory, a conditional update on the stale record's ETag/version
//!     (`PutMode::Update`); of N runs that read the same stale record, one update succeeds and
//!     the others fail their precondition;
//!   - on the local file system, which has no conditional update, by a *takeover token* (see
//!     [`tokens`]): the right to change `lock.json` away from content `S` is the conditional
//!     create of `_state/lock.takeover/<hash of S>`. Only the creator of that token may replace or
//!     delete `lock.json` while it holds `S`; nobody else can change it (a create fails because
//!     the object exists, and any other change needs the same token). So of N runs that read the
//!     same stale `S`, exactly one replaces it. Records never repeat (run id, acquisition time
//!     and renewal count differ), so a token is never needed twice.
//!     The old scheme — delete the stale file, then create — let two runs both "win": the second
//!     deleted the first's fresh lock and created its own.
//! * **Renewal** is the same conditional step from the holder's own last record (update on its
//!   version, or its own token): it fails if the lock was taken over meanwhile.
//! * **Release** is conditional too: on the local store the holder claims its own record's token
//!   and deletes the object; elsewhere (no conditional delete in object_store) it rewrites the
//!   record as `released` with a conditional update, which later runs treat as free.
//!
//! # A run that loses its lock
//!
//! [`LockKeeper`] renews the lock every third of its time to live. A renewal that fails (the
//! lock was taken over, or the store refused) marks the run's [`LockHealth`] lost; the health
//! also counts as lost once less than a third of the time to live remains without a renewal.
//! Ingest and build check the health before every step that publishes or commits (staging
//! objects, manifests, marts, model state) and stop with [`Error::LockLost`]; the run record
//! says so. A check that passes means the lock is ours and at least a third of its time to live
//! remains, so no other run can take it over during the step that follows (clocks of the hosts
//! sharing a warehouse are assumed to agree to well within that margin).
//!
//! Stores with no conditional writes at all fall back to write-then-read-back, which narrows but
//! does not close the race; the log says so.
//!
//! `ALLIANCE_LOCK_TRACE` (test instrumentation, see [`trace`]) appends every entry into and exit
//! from the lock to a file, so tests can check that holders never overlap.

mod keeper;
pub mod tokens;
pub mod trace;

pub use keeper::{LockHealth, LockKeeper};

use crate::error::{Error, Result};
use crate::storage::Store;
use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};
use std::time::Instant;
use tracing::{info, warn};

/// Where the lock lives in the warehouse.
pub const LOCK_PATH: &str = "_state/lock.json";

/// Attempts at taking a lock that keeps changing under us before reporting it as held.
const ATTEMPTS: usize = 4;

/// What the lock object says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LockRecord {
    pub run_id: String,
    pub command: String,
    pub host: String,
    pub pid: u32,
    pub acquired_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Renewals so far: every version of a run's record differs from the others.
    #[serde(default)]
    pub renewals: u64,
    /// The holder let it go (stores where a release rewrites the record instead of deleting it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub released: bool,
}

impl LockRecord {
    /// Released, expired, or held by a process of this host that has gone.
    pub fn is_stale(&self, now: DateTime<Utc>) -> bool {
        self.released || self.expires_at < now || (self.host == hostname() && !process_alive(self.pid))
    }

    fn to_bytes(&self) -> Bytes {
        Bytes::from(serde_json::to_vec_pretty(self).expect("lock record serialises"))
    }

    fn describe(&self) -> String {
        format!("run {} ({}) of pid {} on {}", self.run_id, self.command, self.pid, self.host)
    }
}

/// How this run proves the lock is still its own when it next changes it.
#[derive(Debug, Clone)]
enum Hold {
    /// Conditional update on the version of this run's last write.
    Versioned(UpdateVersion),
    /// Takeover token of the exact bytes of this run's last write (local file system).
    Token(Bytes),
    /// No conditional writes: read back and compare.
    BestEffort,
}

/// How a store supports the lock.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scheme {
    Versioned,
    Token,
}

/// A held lock; release it with [`WarehouseLock::release`].
#[derive(Debug)]
pub struct WarehouseLock {
    store: Store,
    record: LockRecord,
    hold: Hold,
    ttl: Duration,
}

/// This machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn process_alive(pid: u32) -> bool {
    // Linux: a running process has a /proc entry. Elsewhere, assume alive (expiry still applies).
    !std::path::Path::new("/proc/self").exists() || std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn version_of(result: &object_store::PutResult) -> UpdateVersion {
    UpdateVersion { e_tag: result.e_tag.clone(), version: result.version.clone() }
}

fn lock_error(store: &Store, op: &'static str) -> impl FnOnce(object_store::Error) -> Error {
    Error::store(op, store.display(LOCK_PATH))
}

/// The current lock object: its bytes, version and when it was read; `None` if absent.
async fn read(store: &Store) -> Result<Option<(Bytes, UpdateVersion, Instant)>> {
    let read_at = Instant::now();
    match store.object_store().get(&ObjectPath::from(LOCK_PATH)).await {
        Ok(r) => {
            let version = UpdateVersion { e_tag: r.meta.e_tag.clone(), version: r.meta.version.clone() };
            let bytes = r.bytes().await.map_err(lock_error(store, "read lock"))?;
            Ok(Some((bytes, version, read_at)))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(lock_error(store, "read lock")(e)),
    }
}

async fn put(store: &Store, body: Bytes, mode: PutMode) -> object_store::Result<object_store::PutResult> {
    let options = PutOptions { mode, ..Default::default() };
    store.object_store().put_opts(&ObjectPath::from(LOCK_PATH), PutPayload::from(body), options).await
}

impl WarehouseLock {
    /// Takes the warehouse lock for `ttl`, or fails with [`Error::Locked`] naming the holder.
    pub async fn acquire(store: &Store, run_id: &str, command: &str, ttl: Duration) -> Result<Self> {
        let scheme = if store.local_file(LOCK_PATH).is_some() { Scheme::Token } else { Scheme::Versioned };
        Self::acquire_with(store, scheme, run_id, command, ttl).await
    }

    async fn acquire_with(store: &Store, scheme: Scheme, run_id: &str, command: &str, ttl: Duration) -> Result<Self> {
        let now = Utc::now();
        let record = LockRecord {
            run_id: run_id.to_string(),
            command: command.to_string(),
            host: hostname(),
            pid: std::process::id(),
            acquired_at: now,
            expires_at: now + ttl,
            renewals: 0,
            released: false,
        };
        let body = record.to_bytes();
        let lock = |hold| Self { store: store.clone(), record: record.clone(), hold, ttl };
        for _ in 0..ATTEMPTS {
            match put(store, body.clone(), PutMode::Create).await {
                Ok(r) => {
                    let hold = match scheme {
                        Scheme::Versioned => Hold::Versioned(version_of(&r)),
                        Scheme::Token => Hold::Token(body.clone()),
                    };
                    return Ok(lock(hold).entered(None));
                }
                Err(object_store::Error::AlreadyExists { .. }) => {}
                Err(object_store::Error::NotImplemented { .. }) => {
                    return Self::acquire_unconditionally(store, record, ttl).await
                }
                Err(e) => return Err(lock_error(store, "lock")(e)),
            }
            // Held, or stale: read what is there (it may have been released meanwhile).
            let Some((seen, version, read_at)) = read(store).await? else { continue };
            let holder: Option<LockRecord> = serde_json::from_slice(&seen).ok();
            if let Some(h) = holder.as_ref().filter(|h| !h.is_stale(Utc::now())) {
                return Err(Error::Locked { holder: h.describe(), until: h.expires_at.to_rfc3339() });
            }
            let previous = holder.as_ref().map_or("unreadable".to_string(), |h| h.run_id.clone());
            let taken = match scheme {
                Scheme::Versioned => match put(store, body.clone(), PutMode::Update(version)).await {
                    Ok(r) => Some(Hold::Versioned(version_of(&r))),
                    Err(object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. }) => None,
                    Err(e) => return Err(lock_error(store, "take over lock")(e)),
                },
                Scheme::Token => {
                    if tokens::claim(store, &seen, read_at, run_id).await? {
                        store.put(LOCK_PATH, body.clone()).await?;
                        Some(Hold::Token(body.clone()))
                    } else {
                        None
                    }
                }
            };
            let Some(hold) = taken else {
                return Err(Error::Locked {
                    holder: "another run that took over the stale lock first".into(),
                    until: (now + ttl).to_rfc3339(),
                });
            };
            if let Some(h) = holder.filter(|h| !h.released) {
                warn!(previous = %h.run_id, host = %h.host, pid = h.pid, "took over a stale warehouse lock");
            }
            return Ok(lock(hold).entered(Some(&previous)));
        }
        Err(Error::Locked { holder: "runs that keep taking and releasing it".into(), until: (now + ttl).to_rfc3339() })
    }

    /// Records the entry in the test trace and collects old takeover tokens.
    fn entered(self, took_over: Option<&str>) -> Self {
        if let Some(previous) = took_over {
            trace::event("takeover", &self.record.run_id, previous);
        }
        trace::event("enter", &self.record.run_id, "");
        self
    }

    async fn acquire_unconditionally(store: &Store, record: LockRecord, ttl: Duration) -> Result<Self> {
        warn!("the object store has no conditional writes: the warehouse lock is best effort");
        if let Some(h) = holder(store).await? {
            if !h.is_stale(Utc::now()) {
                return Err(Error::Locked { holder: h.describe(), until: h.expires_at.to_rfc3339() });
            }
        }
        store.put(LOCK_PATH, record.to_bytes()).await?;
        let back: Option<LockRecord> = store.get_opt(LOCK_PATH).await?.and_then(|b| serde_json::from_slice(&b).ok());
        if back.as_ref() != Some(&record) {
            return Err(Error::Locked { holder: "a concurrent run".into(), until: record.expires_at.to_rfc3339() });
        }
        Ok(Self { store: store.clone(), record, hold: Hold::BestEffort, ttl }.entered(None))
    }

    /// The run holding the lock.
    pub fn record(&self) -> &LockRecord {
        &self.record
    }

    /// Extends the expiry in one conditional step; fails with [`Error::LockLost`] if the lock was
    /// taken over meanwhile.
    pub async fn renew(&mut self) -> Result<()> {
        let mut record = self.record.clone();
        record.expires_at = Utc::now() + self.ttl;
        record.renewals += 1;
        let body = record.to_bytes();
        let lost = |reason: &str| Error::LockLost { reason: reason.to_string() };
        self.hold = match &self.hold {
            Hold::Versioned(version) => match put(&self.store, body, PutMode::Update(version.clone())).await {
                Ok(r) => Hold::Versioned(version_of(&r)),
                Err(object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. }) => {
                    return Err(lost("another run took it over"))
                }
                Err(e) => return Err(lock_error(&self.store, "renew lock")(e)),
            },
            Hold::Token(ours) => {
                match read(&self.store).await? {
                    Some((seen, _, read_at)) if seen == ours => {
                        if !tokens::claim(&self.store, &seen, read_at, &record.run_id).await? {
                            return Err(lost("another run took it over"));
                        }
                    }
                    _ => return Err(lost("another run took it over")),
                }
                self.store.put(LOCK_PATH, body.clone()).await?;
                Hold::Token(body)
            }
            Hold::BestEffort => {
                if holder(&self.store).await?.map(|c| c.run_id) != Some(self.record.run_id.clone()) {
                    return Err(lost("another run took it over"));
                }
                self.store.put(LOCK_PATH, body).await?;
                Hold::BestEffort
            }
        };
        self.record = record;
        Ok(())
    }

    /// Releases the lock if it is still this run's (a conditional step; a lock taken over by
    /// another run is left alone).
    pub async fn release(self) -> Result<()> {
        let run = &self.record.run_id;
        // Logged first: from here on this run no longer counts on holding the lock.
        trace::event("leave", run, "");
        let released = match &self.hold {
            Hold::Versioned(version) => {
                let mut record = self.record.clone();
                record.released = true;
                record.expires_at = Utc::now();
                match put(&self.store, record.to_bytes(), PutMode::Update(version.clone())).await {
                    Ok(_) => true,
                    Err(object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. }) => false,
                    Err(e) => return Err(lock_error(&self.store, "release lock")(e)),
                }
            }
            Hold::Token(ours) => match read(&self.store).await? {
                Some((seen, _, read_at)) if seen == ours => {
                    let claimed = tokens::claim(&self.store, &seen, read_at, run).await?;
                    if claimed {
                        self.store.delete(LOCK_PATH).await?;
                    }
                    claimed
                }
                _ => false,
            },
            Hold::BestEffort => {
                let ours = holder(&self.store).await?.is_some_and(|c| &c.run_id == run);
                if ours {
                    self.store.delete(LOCK_PATH).await?;
                }
                ours
            }
        };
        if released {
            info!(run = %run, "released the warehouse lock");
            if matches!(self.hold, Hold::Token(_)) {
                tokens::collect_garbage(&self.store).await?;
            }
        } else {
            warn!(run = %run, "the warehouse lock was no longer this run's: left to its holder");
        }
        Ok(())
    }
}

/// The current holder, if the warehouse is locked (a released record is no holder).
pub async fn holder(store: &Store) -> Result<Option<LockRecord>> {
    let record: Option<LockRecord> = store.get_opt(LOCK_PATH).await?.and_then(|b| serde_json::from_slice(&b).ok());
    Ok(record.filter(|r| !r.released))
}

#[cfg(test)]
mod tests;
