use super::*;
use object_store::memory::InMemory;
use std::sync::Arc;

fn memory() -> Store {
    Store::from_object_store("memory://warehouse", Arc::new(InMemory::new()))
}

fn local(dir: &std::path::Path) -> Store {
    let settings: crate::config::StorageSettings = toml::from_str("landing = 'l'\nwarehouse = 'w'").unwrap();
    Store::open(&format!("file://{}", dir.display()), &settings).unwrap()
}

fn expired() -> LockRecord {
    LockRecord {
        run_id: "crashed".into(),
        command: "run".into(),
        host: "elsewhere".into(),
        pid: 1,
        acquired_at: Utc::now() - Duration::hours(2),
        expires_at: Utc::now() - Duration::hours(1),
        renewals: 0,
        released: false,
    }
}

const TTL: Duration = Duration::minutes(5);

#[tokio::test]
async fn one_holder_at_a_time_and_release_frees_it() {
    let dir = tempfile::tempdir().unwrap();
    for s in [memory(), local(dir.path())] {
        let a = WarehouseLock::acquire(&s, "run-a", "ingest", TTL).await.unwrap();
        let err = WarehouseLock::acquire(&s, "run-b", "build", TTL).await.unwrap_err();
        assert!(err.to_string().contains("run-a"), "{err}");
        a.release().await.unwrap();
        assert!(holder(&s).await.unwrap().is_none(), "released: free");
        let b = WarehouseLock::acquire(&s, "run-b", "build", TTL).await.unwrap();
        assert_eq!(holder(&s).await.unwrap().unwrap().run_id, "run-b");
        b.release().await.unwrap();
        assert!(holder(&s).await.unwrap().is_none());
    }
    assert!(!dir.path().join(LOCK_PATH).exists(), "the local store deletes a released lock");
}

#[tokio::test]
async fn an_expired_or_orphaned_lock_is_taken_over_and_renewed() {
    let dir = tempfile::tempdir().unwrap();
    for s in [memory(), local(dir.path())] {
        s.put(LOCK_PATH, serde_json::to_vec(&expired()).unwrap()).await.unwrap();
        let mut taken = WarehouseLock::acquire(&s, "next", "run", TTL).await.unwrap();
        taken.renew().await.unwrap();
        taken.renew().await.unwrap();
        let now = holder(&s).await.unwrap().unwrap();
        assert_eq!((now.run_id.as_str(), now.renewals), ("next", 2));
        taken.release().await.unwrap();
    }
    // A process of this host that no longer exists holds no lock.
    let orphan =
        LockRecord { host: hostname(), pid: u32::MAX - 7, expires_at: Utc::now() + Duration::hours(1), ..expired() };
    assert!(orphan.is_stale(Utc::now()));
}

/// Many tasks race to take over the same stale lock: exactly one wins, on both schemes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_many_racers_exactly_one_takes_over_a_stale_lock() {
    let dir = tempfile::tempdir().unwrap();
    for s in [memory(), local(dir.path())] {
        for round in 0..5 {
            s.put(
                LOCK_PATH,
                serde_json::to_vec(&LockRecord { run_id: format!("crashed-{round}"), ..expired() }).unwrap(),
            )
            .await
            .unwrap();
            let racers: Vec<_> = (0..16)
                .map(|i| {
                    let s = s.clone();
                    tokio::spawn(async move { WarehouseLock::acquire(&s, &format!("racer-{i}"), "run", TTL).await })
                })
                .collect();
            let mut winners = Vec::new();
            for r in racers {
                match r.await.unwrap() {
                    Ok(lock) => winners.push(lock),
                    Err(Error::Locked { .. }) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!(winners.len(), 1, "{} round {round}", s.url());
            let winner = winners.pop().unwrap();
            assert_eq!(holder(&s).await.unwrap().unwrap().run_id, winner.record().run_id);
            winner.release().await.unwrap();
        }
    }
}

#[tokio::test]
async fn a_lock_taken_over_cannot_be_renewed_or_released_by_its_old_holder() {
    let dir = tempfile::tempdir().unwrap();
    for s in [memory(), local(dir.path())] {
        let mut old = WarehouseLock::acquire(&s, "old", "run", TTL).await.unwrap();
        // The old holder stalled past its expiry; another run takes over.
        let mut record = old.record().clone();
        record.expires_at = Utc::now() - Duration::seconds(1);
        match &mut old.hold {
            Hold::Token(bytes) => {
                *bytes = record.to_bytes();
                s.put(LOCK_PATH, bytes.clone()).await.unwrap();
            }
            Hold::Versioned(version) => {
                *version = version_of(&put(&s, record.to_bytes(), PutMode::Update(version.clone())).await.unwrap());
            }
            Hold::BestEffort => unreachable!(),
        }
        let new = WarehouseLock::acquire(&s, "new", "run", TTL).await.unwrap();
        let err = old.renew().await.unwrap_err();
        assert!(matches!(err, Error::LockLost { .. }), "{err}");
        old.release().await.unwrap();
        assert_eq!(holder(&s).await.unwrap().unwrap().run_id, "new", "the old holder's release left it alone");
        new.release().await.unwrap();
    }
}

#[tokio::test]
async fn a_released_record_is_free_and_old_tokens_are_collected() {
    let s = memory();
    let released = LockRecord { released: true, expires_at: Utc::now() + Duration::hours(1), ..expired() };
    s.put(LOCK_PATH, serde_json::to_vec(&released).unwrap()).await.unwrap();
    assert!(holder(&s).await.unwrap().is_none());
    WarehouseLock::acquire(&s, "next", "run", TTL).await.unwrap().release().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let s = local(dir.path());
    s.put(&format!("{}/old", tokens::TOKEN_DIR), "{}").await.unwrap();
    let old = dir.path().join(tokens::TOKEN_DIR).join("old");
    let two_days_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 86_400);
    std::fs::File::options().write(true).open(&old).unwrap().set_modified(two_days_ago).unwrap();
    let mut lock = WarehouseLock::acquire(&s, "next", "run", TTL).await.unwrap();
    lock.renew().await.unwrap();
    lock.release().await.unwrap();
    assert!(!old.exists(), "a day-old token is collected");
    assert_eq!(std::fs::read_dir(dir.path().join(tokens::TOKEN_DIR)).unwrap().count(), 2, "recent tokens are kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keeper_reports_a_lost_lock_to_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let s = local(dir.path());
    let lock = WarehouseLock::acquire(&s, "mine", "run", Duration::milliseconds(600)).await.unwrap();
    let keeper = LockKeeper::keep(lock);
    let health = keeper.health();
    tokio::time::sleep(std::time::Duration::from_millis(450)).await;
    assert!(health.check().is_ok(), "renewed while ours: {:?}", health.lost());
    // Another run rewrites the lock (as a takeover after a stall would).
    let theirs = LockRecord { run_id: "theirs".into(), expires_at: Utc::now() + Duration::hours(1), ..expired() };
    s.put(LOCK_PATH, serde_json::to_vec(&theirs).unwrap()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(450)).await;
    let err = health.check().unwrap_err();
    assert!(err.to_string().contains("another run took it over"), "{err}");
    keeper.release().await.unwrap();
    assert_eq!(holder(&s).await.unwrap().unwrap().run_id, "theirs");

    // Unguarded work (no lock) always passes.
    assert!(LockHealth::default().check().is_ok());
}
