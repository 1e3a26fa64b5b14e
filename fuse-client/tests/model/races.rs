//! Interleavings the random sequences reach only by luck, played out on
//! purpose: a store answer that arrives late while a write-back commit
//! lands in between.

use std::sync::Arc;
use std::time::Duration;

use bucketfs::error::FsError;
use bucketfs::fs::{Fs, ROOT};
use bucketfs::memory::{Fault, MemoryStore};

use crate::driver::{config, Settings};

/// An `Fs` over a new unversioned memory store that trusts nothing cached
/// (`--attr-ttl 0`), with `write_back` files uploading after close.
fn uncached_fs(write_back: usize, dir: &std::path::Path) -> (Arc<MemoryStore>, Arc<Fs>) {
    let store = Arc::new(MemoryStore::new(false));
    let mut config = config(
        Settings {
            write_back,
            versioned: false,
            feed: false,
        },
        dir,
    );
    config.attr_ttl = Duration::ZERO;
    let fs = Arc::new(Fs::new(store.clone(), config).expect("an Fs"));
    (store, fs)
}

/// A directory whose only child is being committed in the background is
/// not empty, even when the listing rmdir reads was made before the
/// commit landed and the commit lands before rmdir looks at what is local.
pub async fn rmdir_beside_a_landing_commit_is_refused() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // Nothing trusted from the table: rmdir asks the store, as with --attr-ttl 0.
    let (store, fs) = uncached_fs(4, dir.path());

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

/// A file streaming out as a multipart upload when its directory is
/// renamed: the upload belongs to the old key, so the commit sends the
/// parts again under the new one, and the old upload is aborted.
pub async fn a_directory_rename_under_a_streaming_upload_commits_under_the_new_name() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Arc::new(MemoryStore::new(false));
    let config = config(
        Settings {
            write_back: 0,
            versioned: false,
            feed: false,
        },
        dir.path(),
    );
    let fs = Arc::new(Fs::new(store.clone(), config).expect("an Fs"));

    let parent = fs.mkdir(ROOT, "d", 0o755, 0, 0).await.expect("mkdir d");
    let (attr, fh) = fs
        .create(parent.ino, "f", 0o644, 0, 0, libc::O_RDWR)
        .await
        .expect("create d/f");
    let part = bucketfs_common::extension::CHUNK_SIZE;
    let data: Vec<u8> = (0..part * 2 + 100).map(|i| (i % 251) as u8).collect();
    for (i, chunk) in data.chunks(1 << 20).enumerate() {
        fs.write(fh, (i << 20) as u64, chunk).await.expect("write d/f");
    }
    assert_eq!(store.open_uploads(), 1, "the first parts stream out as they fill");

    fs.rename(ROOT, "d", ROOT, "e", false).await.expect("rename d e");
    fs.flush(fh).await.expect("close e/f");
    fs.release(fh).await.expect("release e/f");
    assert_eq!(store.contents("e/f").as_deref(), Some(&data[..]));
    assert_eq!(store.contents("d/f"), None);
    assert_eq!(store.open_uploads(), 0, "the old key's upload is aborted");
    assert_eq!(
        fs.getattr(attr.ino).await.expect("getattr").size,
        data.len() as u64
    );
}

/// A name that another client took out of its link group (a plain PUT)
/// shows its own object, though its former inode is open here under its
/// other name.
pub async fn a_name_leaving_its_link_group_is_its_own_file_though_the_group_is_open() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (store, fs) = uncached_fs(0, dir.path());
    let (a, fh) = fs
        .create(ROOT, "a", 0o644, 0, 0, libc::O_RDWR)
        .await
        .expect("create a");
    fs.write(fh, 0, b"shared").await.expect("write a");
    fs.flush(fh).await.expect("flush a");
    let b = fs.link(a.ino, ROOT, "b").await.expect("ln a b");
    assert_eq!((b.ino, b.nlink), (a.ino, 2));

    store.put_plain("b", b"another client's b");
    let b = fs.lookup(ROOT, "b").await.expect("lookup b");
    assert_ne!(b.ino, a.ino, "b is still a's inode");
    assert_eq!((b.size, b.nlink), (18, 1));
    let (fh_b, _) = fs.open(b.ino, libc::O_RDONLY).await.expect("open b");
    assert_eq!(
        &fs.read(fh_b, 0, 64).await.expect("read b")[..],
        b"another client's b"
    );
    assert_eq!(&fs.read(fh, 0, 64).await.expect("read a")[..], b"shared");
}

/// A listing sent before this mount removed a directory and rewrote a file,
/// and answered after: it brings neither the directory back (mkdir of it
/// again works) nor the file's old version (its new bytes show).
pub async fn a_late_listing_brings_back_nothing_changed_since_it_was_sent() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Arc::new(MemoryStore::new(false));
    let settings = Settings {
        write_back: 0,
        versioned: false,
        feed: false,
    };
    let fs = Arc::new(Fs::new(store.clone(), config(settings, dir.path())).expect("an Fs"));
    fs.mkdir(ROOT, "d", 0o755, 0, 0).await.expect("mkdir d");
    let (f, fh) = fs
        .create(ROOT, "f", 0o644, 0, 0, libc::O_RDWR)
        .await
        .expect("create f");
    fs.write(fh, 0, b"old").await.expect("write f");
    fs.flush(fh).await.expect("close f");

    // The next store call is the readdir's listing: made now, answered
    // after the rmdir and the rewrite below.
    store.fault_at(1, Fault::Late(Duration::from_secs(1)));
    let listing = {
        let fs = fs.clone();
        tokio::spawn(async move {
            let dh = fs.opendir(ROOT).await?;
            fs.readdir(ROOT, dh, 0).await
        })
    };
    tokio::task::yield_now().await;
    fs.rmdir(ROOT, "d").await.expect("rmdir d");
    fs.write(fh, 0, b"new bytes!").await.expect("rewrite f");
    fs.flush(fh).await.expect("close f again");
    fs.release(fh).await.expect("release f");
    let entries = listing.await.expect("the readdir task").expect("readdir");
    assert!(
        entries.iter().all(|e| e.name != "d"),
        "the late listing shows the removed d"
    );

    let looked_up = fs.lookup(ROOT, "d").await;
    assert!(
        matches!(looked_up, Err(FsError::NotFound)),
        "lookup d: {looked_up:?}"
    );
    fs.mkdir(ROOT, "d", 0o755, 0, 0).await.expect("mkdir d again");
    assert_eq!(fs.getattr(f.ino).await.expect("getattr f").size, 10);
    let (fh, _) = fs.open(f.ino, libc::O_RDONLY).await.expect("open f");
    assert_eq!(&fs.read(fh, 0, 64).await.expect("read f")[..], b"new bytes!");
}
