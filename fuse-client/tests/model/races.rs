//! Interleavings the random sequences reach only by luck, played out on
//! purpose: a store answer that arrives late while a write-back commit
//! lands in between.

use std::sync::Arc;
use std::time::Duration;

use bucketfs::error::FsError;
use bucketfs::fs::{Fs, ROOT};
use bucketfs::memory::{Fault, MemoryStore};

use crate::driver::{config, Settings};

/// A directory whose only child is being committed in the background is
/// not empty, even when the listing rmdir reads was made before the
/// commit landed and the commit lands before rmdir looks at what is local.
pub async fn rmdir_beside_a_landing_commit_is_refused() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Arc::new(MemoryStore::new(false));
    let mut config = config(
        Settings {
            write_back: 4,
            versioned: false,
        },
        dir.path(),
    );
    // Nothing trusted from the table: rmdir asks the store, as with --attr-ttl 0.
    config.attr_ttl = Duration::ZERO;
    let fs = Arc::new(Fs::new(store.clone(), config).expect("an Fs"));

    let parent = fs.mkdir(ROOT, "d", 0o755, 0, 0).await.expect("mkdir d");
    let (_, fh) = fs
        .create(parent.ino, "f", 0o644, 0, 0, libc::O_WRONLY)
        .await
        .expect("create d/f");
    fs.write(fh, 0, b"bytes").await.expect("write d/f");
    fs.flush(fh).await.expect("close d/f");
    fs.release(fh).await.expect("release d/f");

    // The next store call is rmdir's listing: made now, before the queued
    // commit of d/f, and answered after that commit has landed.
    store.fault_at(1, Fault::Late(Duration::from_secs(1)));
    let removed = fs.rmdir(ROOT, "d").await;
    assert!(matches!(removed, Err(FsError::NotEmpty)), "rmdir d: {removed:?}");
    fs.sync_all().await.expect("sync");
    assert_eq!(store.contents("d/f").as_deref(), Some(&b"bytes"[..]));
}
