//! One run at a time per warehouse: a lock object `_state/lock.json` with an expiry.
//!
//! Taking the lock is a conditional create (`PutMode::Create`): of two runs racing, exactly one
//! succeeds. An expired lock (past its expiry, or held by a process of this host that no longer
//! exists, e.g. after a kill) is taken over with a conditional update on its ETag, so two runs
//! cannot both take over the same stale lock. A holder renews its lock while it works. Stores that
//! do not support conditional writes fall back to write-then-read-back, which narrows but does not
//! close the race; the log says so.

use crate::error::{Error, Result};
use crate::storage::Store;
use chrono::{DateTime, Duration, Utc};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

/// Where the lock lives in the warehouse.
pub const LOCK_PATH: &str = "_state/lock.json";

/// What the lock object says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LockRecord {
    pub run_id: String,
    pub command: String,
    pub host: String,
    pub pid: u32,
    pub acquired_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl LockRecord {
    /// Expired, or held by a process of this host that has gone.
    pub fn is_stale(&self, now: DateTime<Utc>) -> bool {
        self.expires_at < now || (self.host == hostname() && !process_alive(self.pid))
    }
}

/// A held lock; release it with [`WarehouseLock::release`].
#[derive(Debug)]
pub struct WarehouseLock {
    store: Store,
    record: LockRecord,
    version: UpdateVersion,
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

impl WarehouseLock {
    /// Takes the warehouse lock for `ttl`, or fails with [`Error::Locked`] naming the holder.
    pub async fn acquire(store: &Store, run_id: &str, command: &str, ttl: Duration) -> Result<Self> {
        let inner = store.object_store();
        let path = ObjectPath::from(LOCK_PATH);
        let now = Utc::now();
        let record = LockRecord {
            run_id: run_id.to_string(),
            command: command.to_string(),
            host: hostname(),
            pid: std::process::id(),
            acquired_at: now,
            expires_at: now + ttl,
        };
        let body = serde_json::to_vec_pretty(&record).expect("lock record serialises");
        let create = PutOptions { mode: PutMode::Create, ..Default::default() };
        match inner.put_opts(&path, PutPayload::from(body.clone()), create).await {
            Ok(r) => return Ok(Self { store: store.clone(), record, version: version_of(&r), ttl }),
            Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(object_store::Error::NotImplemented { .. }) => {
                return Self::acquire_unconditionally(store, record, ttl).await
            }
            Err(e) => return Err(Error::store("lock", store.display(LOCK_PATH))(e)),
        }
        let current = inner.get(&path).await.map_err(Error::store("read lock", store.display(LOCK_PATH)))?;
        let version = UpdateVersion { e_tag: current.meta.e_tag.clone(), version: current.meta.version.clone() };
        let bytes = current.bytes().await.map_err(Error::store("read lock", store.display(LOCK_PATH)))?;
        let holder: Option<LockRecord> = serde_json::from_slice(&bytes).ok();
        match holder {
            Some(h) if !h.is_stale(now) => Err(Error::Locked {
                holder: format!("run {} ({}) of pid {} on {}", h.run_id, h.command, h.pid, h.host),
                until: h.expires_at.to_rfc3339(),
            }),
            stale => {
                let update = PutOptions { mode: PutMode::Update(version), ..Default::default() };
                let result = match inner.put_opts(&path, PutPayload::from(body.clone()), update).await {
                    // Stores without conditional update (the local file system): remove the stale
                    // lock and create a new one; of two runs doing this, one create fails.
                    Err(object_store::Error::NotImplemented { .. }) => {
                        store.delete(LOCK_PATH).await?;
                        let create = PutOptions { mode: PutMode::Create, ..Default::default() };
                        match inner.put_opts(&path, PutPayload::from(body), create).await {
                            Err(object_store::Error::AlreadyExists { path, .. }) => {
                                Err(object_store::Error::Precondition { path, source: "taken over first".into() })
                            }
                            other => other,
                        }
                    }
                    other => other,
                };
                match result {
                    Ok(r) => {
                        if let Some(h) = stale {
                            warn!(previous = %h.run_id, host = %h.host, pid = h.pid, "took over a stale warehouse lock");
                        }
                        Ok(Self { store: store.clone(), record, version: version_of(&r), ttl })
                    }
                    Err(object_store::Error::Precondition { .. }) => Err(Error::Locked {
                        holder: "another run that took over the stale lock first".into(),
                        until: (now + ttl).to_rfc3339(),
                    }),
                    Err(e) => Err(Error::store("lock", store.display(LOCK_PATH))(e)),
                }
            }
        }
    }

    async fn acquire_unconditionally(store: &Store, record: LockRecord, ttl: Duration) -> Result<Self> {
        warn!("the object store has no conditional writes: the warehouse lock is best effort");
        if let Some(bytes) = store.get_opt(LOCK_PATH).await? {
            if let Ok(h) = serde_json::from_slice::<LockRecord>(&bytes) {
                if !h.is_stale(Utc::now()) {
                    return Err(Error::Locked {
                        holder: format!("run {} on {}", h.run_id, h.host),
                        until: h.expires_at.to_rfc3339(),
                    });
                }
            }
        }
        let body = serde_json::to_vec_pretty(&record).expect("lock record serialises");
        store.put(LOCK_PATH, body).await?;
        let back: Option<LockRecord> = store.get_opt(LOCK_PATH).await?.and_then(|b| serde_json::from_slice(&b).ok());
        if back.as_ref() != Some(&record) {
            return Err(Error::Locked { holder: "a concurrent run".into(), until: record.expires_at.to_rfc3339() });
        }
        Ok(Self { store: store.clone(), record, version: UpdateVersion { e_tag: None, version: None }, ttl })
    }

    /// The run holding the lock.
    pub fn record(&self) -> &LockRecord {
        &self.record
    }

    /// Extends the expiry; fails if the lock was taken over meanwhile.
    pub async fn renew(&mut self) -> Result<()> {
        let mut record = self.record.clone();
        record.expires_at = Utc::now() + self.ttl;
        let body = serde_json::to_vec_pretty(&record).expect("lock record serialises");
        let inner = self.store.object_store();
        let path = ObjectPath::from(LOCK_PATH);
        let mode = if self.version.e_tag.is_some() || self.version.version.is_some() {
            PutMode::Update(self.version.clone())
        } else {
            PutMode::Overwrite
        };
        let conditional = PutOptions { mode, ..Default::default() };
        let r = match inner.put_opts(&path, PutPayload::from(body.clone()), conditional).await {
            Err(object_store::Error::NotImplemented { .. }) => {
                // No conditional update: check the lock is still ours, then overwrite it.
                let current: Option<LockRecord> =
                    self.store.get_opt(LOCK_PATH).await?.and_then(|b| serde_json::from_slice(&b).ok());
                if current.map(|c| c.run_id) != Some(self.record.run_id.clone()) {
                    return Err(Error::Locked {
                        holder: "another run (this run's lock was taken over)".into(),
                        until: "-".into(),
                    });
                }
                inner.put(&path, PutPayload::from(body)).await
            }
            other => other,
        }
        .map_err(Error::store("renew lock", self.store.display(LOCK_PATH)))?;
        self.version = version_of(&r);
        self.record = record;
        Ok(())
    }

    /// Releases the lock if it is still this run's.
    pub async fn release(self) -> Result<()> {
        let current: Option<LockRecord> =
            self.store.get_opt(LOCK_PATH).await?.and_then(|b| serde_json::from_slice(&b).ok());
        if current.as_ref().map(|c| &c.run_id) == Some(&self.record.run_id) {
            self.store.delete(LOCK_PATH).await?;
            info!(run = %self.record.run_id, "released the warehouse lock");
        }
        Ok(())
    }
}

/// Keeps a lock renewed in the background until it is released.
pub struct LockKeeper {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<WarehouseLock>,
}

impl LockKeeper {
    /// Renews `lock` every third of its time to live until [`LockKeeper::release`].
    pub fn keep(mut lock: WarehouseLock) -> Self {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let every = (lock.ttl / 3).to_std().unwrap_or(std::time::Duration::from_secs(60));
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {
                        if let Err(e) = lock.renew().await {
                            warn!(error = %e, "could not renew the warehouse lock");
                        }
                    }
                    _ = &mut stopped => return lock,
                }
            }
        });
        Self { stop, task }
    }

    /// Stops renewing and releases the lock.
    pub async fn release(self) -> Result<()> {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(lock) => lock.release().await,
            Err(e) => Err(Error::Interrupted(format!("lock keeper: {e}"))),
        }
    }
}

/// The current holder, if the warehouse is locked.
pub async fn holder(store: &Store) -> Result<Option<LockRecord>> {
    Ok(store.get_opt(LOCK_PATH).await?.and_then(|b| serde_json::from_slice(&b).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use std::sync::Arc;

    fn store() -> Store {
        Store::from_object_store("memory://warehouse", Arc::new(InMemory::new()))
    }

    #[tokio::test]
    async fn one_holder_at_a_time_and_release_frees_it() {
        let s = store();
        let a = WarehouseLock::acquire(&s, "run-a", "ingest", Duration::minutes(5)).await.unwrap();
        let err = WarehouseLock::acquire(&s, "run-b", "build", Duration::minutes(5)).await.unwrap_err();
        assert!(err.to_string().contains("run-a"), "{err}");
        a.release().await.unwrap();
        let b = WarehouseLock::acquire(&s, "run-b", "build", Duration::minutes(5)).await.unwrap();
        assert_eq!(holder(&s).await.unwrap().unwrap().run_id, "run-b");
        b.release().await.unwrap();
        assert!(holder(&s).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn an_expired_or_orphaned_lock_is_taken_over_once() {
        let s = store();
        let expired = LockRecord {
            run_id: "crashed".into(),
            command: "run".into(),
            host: "elsewhere".into(),
            pid: 1,
            acquired_at: Utc::now() - Duration::hours(2),
            expires_at: Utc::now() - Duration::hours(1),
        };
        s.put(LOCK_PATH, serde_json::to_vec(&expired).unwrap()).await.unwrap();
        let mut taken = WarehouseLock::acquire(&s, "next", "run", Duration::minutes(5)).await.unwrap();
        taken.renew().await.unwrap();
        assert_eq!(holder(&s).await.unwrap().unwrap().run_id, "next");
        // A process of this host that no longer exists holds no lock.
        let orphan =
            LockRecord { host: hostname(), pid: u32::MAX - 7, expires_at: Utc::now() + Duration::hours(1), ..expired };
        assert!(orphan.is_stale(Utc::now()));
        taken.release().await.unwrap();
    }
}
