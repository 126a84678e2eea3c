//! Keeping a lock while a run works, and telling the run when it has lost it.
//!
//! [`LockKeeper`] renews the lock every third of its time to live. Its [`LockHealth`] is shared
//! with the run: the first failed renewal marks it lost for good (with the reason), and it also
//! counts as lost once less than a third of the time to live remains since the last successful
//! renewal (e.g. the renewal task could not run). Work checks it with [`LockHealth::check`]
//! before every step that publishes or commits.

use super::{trace, WarehouseLock};
use crate::error::{Error, Result};
use chrono::Utc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use tracing::warn;

/// Whether the run still holds its lock. The default guards nothing (work run without a lock,
/// e.g. in tests, always passes the check).
#[derive(Debug, Clone, Default)]
pub struct LockHealth {
    shared: Option<Arc<Shared>>,
}

#[derive(Debug)]
struct Shared {
    run_id: String,
    lost: OnceLock<String>,
    /// Expiry of the last successful write of the lock, Unix milliseconds.
    expires_ms: AtomicI64,
    /// The check fails once less than this remains before the expiry.
    margin_ms: i64,
}

impl LockHealth {
    fn of(lock: &WarehouseLock) -> Self {
        Self {
            shared: Some(Arc::new(Shared {
                run_id: lock.record.run_id.clone(),
                lost: OnceLock::new(),
                expires_ms: AtomicI64::new(lock.record.expires_at.timestamp_millis()),
                margin_ms: (lock.ttl / 3).num_milliseconds(),
            })),
        }
    }

    /// `Ok` while the lock is this run's with at least a third of its time to live left;
    /// otherwise [`Error::LockLost`].
    pub fn check(&self) -> Result<()> {
        match self.lost() {
            Some(reason) => Err(Error::LockLost { reason }),
            None => Ok(()),
        }
    }

    /// Why the lock was lost, if it was.
    pub fn lost(&self) -> Option<String> {
        let shared = self.shared.as_ref()?;
        if let Some(reason) = shared.lost.get() {
            return Some(reason.clone());
        }
        let left = shared.expires_ms.load(Ordering::SeqCst) - Utc::now().timestamp_millis();
        (left < shared.margin_ms).then(|| "it was not renewed in time and is about to expire".to_string())
    }

    fn renewed(&self, lock: &WarehouseLock) {
        if let Some(shared) = &self.shared {
            shared.expires_ms.store(lock.record.expires_at.timestamp_millis(), Ordering::SeqCst);
        }
    }

    fn mark_lost(&self, reason: String) {
        if let Some(shared) = &self.shared {
            trace::event("lost", &shared.run_id, "");
            let _ = shared.lost.set(reason);
        }
    }
}

/// Keeps a lock renewed in the background until it is released.
pub struct LockKeeper {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<WarehouseLock>,
    health: LockHealth,
}

impl LockKeeper {
    /// Renews `lock` every third of its time to live until [`LockKeeper::release`]; stops renewing
    /// at the first failure, which marks the health lost.
    pub fn keep(mut lock: WarehouseLock) -> Self {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let every = (lock.ttl / 3).to_std().unwrap_or(std::time::Duration::from_secs(60));
        let health = LockHealth::of(&lock);
        let shared = health.clone();
        let task = tokio::spawn(async move {
            let mut renewing = true;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every), if renewing => match lock.renew().await {
                        Ok(()) => shared.renewed(&lock),
                        Err(e) => {
                            warn!(error = %e, "could not renew the warehouse lock: the run stops before publishing");
                            shared.mark_lost(match e {
                                Error::LockLost { reason } => reason,
                                other => format!("renewing it failed: {other}"),
                            });
                            renewing = false;
                        }
                    },
                    _ = &mut stopped => return lock,
                }
            }
        });
        Self { stop, task, health }
    }

    /// The run's view of whether it still holds the lock.
    pub fn health(&self) -> LockHealth {
        self.health.clone()
    }

    /// Stops renewing and releases the lock if it is still this run's.
    pub async fn release(self) -> Result<()> {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(lock) => lock.release().await,
            Err(e) => Err(Error::Interrupted(format!("lock keeper: {e}"))),
        }
    }
}
