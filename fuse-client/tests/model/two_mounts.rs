//! Two mounts over one store: locks between them, and what taking a lock
//! makes the second see of the first's writes.

use std::sync::Arc;
use std::time::Duration;

use bucketfs::error::FsError;
use bucketfs::fs::{Fs, ROOT};
use bucketfs::memory::MemoryStore;
use bucketfs::store::{LockKind, LockRange};
use bucketfs_common::file_locks::LOCK_END;

use crate::driver::{config, Settings};

fn whole(kind: LockKind) -> LockRange {
    LockRange {
        kind,
        start: 0,
        end: LOCK_END,
        pid: 7,
    }
}

/// Contention resolves in order, F_SETLKW waits for the release, and the
/// lock's taker reads what the holder wrote under it, though its own file
/// was open (and read) since before that write and its attributes cached
/// for a minute.
pub async fn locks_order_two_mounts_and_show_the_holders_writes() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Arc::new(MemoryStore::new(false));
    let mount = || {
        let settings = Settings {
            write_back: 0,
            versioned: false,
            feed: false,
        };
        let mut config = config(settings, dir.path());
        config.attr_ttl = Duration::from_secs(60);
        Arc::new(Fs::new(store.clone(), config).expect("an Fs"))
    };
    let (a, b) = (mount(), mount());

    let (file_a, fh_a) = a
        .create(ROOT, "db", 0o644, 0, 0, libc::O_RDWR)
        .await
        .expect("create on A");
    a.write(fh_a, 0, b"version 1").await.expect("write on A");
    a.flush(fh_a).await.expect("flush on A");
    let file_b = b.lookup(ROOT, "db").await.expect("lookup on B");
    let (fh_b, _) = b.open(file_b.ino, libc::O_RDWR).await.expect("open on B");
    assert_eq!(&b.read(fh_b, 0, 64).await.expect("read on B")[..], b"version 1");

    // A holds a write lock: B's F_SETLK fails, F_GETLK names A's lock.
    a.setlk(file_a.ino, 1, whole(LockKind::Write), false)
        .await
        .expect("lock on A");
    let refused = b.setlk(file_b.ino, 2, whole(LockKind::Read), false).await;
    assert!(matches!(refused, Err(FsError::WouldBlock)), "{refused:?}");
    let seen = b
        .getlk(file_b.ino, 2, whole(LockKind::Read))
        .await
        .expect("getlk on B");
    assert_eq!((seen.kind, seen.pid), (LockKind::Write, 7));

    // B waits; A writes under the lock and releases it.
    let waiter = {
        let b = b.clone();
        tokio::spawn(async move { b.setlk(file_b.ino, 2, whole(LockKind::Read), true).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !waiter.is_finished(),
        "B's F_SETLKW returned while A held the lock"
    );
    a.write(fh_a, 0, b"version 2, longer").await.expect("write on A");
    a.setlk(file_a.ino, 1, whole(LockKind::Unlock), false)
        .await
        .expect("unlock on A");
    waiter.await.expect("the waiter").expect("B's lock");

    // B, holding the lock, reads A's write.
    let attr = b.getattr(file_b.ino).await.expect("getattr on B");
    assert_eq!(attr.size, 17);
    assert_eq!(
        &b.read(fh_b, 0, 64).await.expect("read on B")[..],
        b"version 2, longer"
    );

    // A close ends its process's locks (the flush), so A can lock again.
    b.unlock_all(file_b.ino, 2).await.expect("B lets go");
    a.setlk(file_a.ino, 1, whole(LockKind::Write), false)
        .await
        .expect("A locks again");
    let refused = b.setlk(file_b.ino, 3, whole(LockKind::Write), false).await;
    assert!(matches!(refused, Err(FsError::WouldBlock)), "{refused:?}");
    a.unlock_all(file_a.ino, 1).await.expect("A's close");
    b.setlk(file_b.ino, 3, whole(LockKind::Write), false)
        .await
        .expect("B locks after A's close");
}
