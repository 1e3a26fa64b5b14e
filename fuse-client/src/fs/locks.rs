//! Locks between mounts (`crate::file_locks`; the store holds them): F_GETLK,
//! F_SETLK and F_SETLKW, OFD locks and flock, on the file's key. Taking a
//! lock revalidates the file and applies the change feed up to that moment
//! (names another mount made or removed under the lock, such as SQLite's
//! journal), and releasing one commits its writes first (the NFS rule), so
//! programs that lock before they read and write see each other's changes
//! across mounts with the default TTLs.

use std::time::{Duration, Instant};

use super::{Fs, Kind};
use crate::error::FsError;
use crate::names::dir_prefix;
use crate::store::{LockAnswer, LockKind, LockRange};
use bucketfs_common::file_locks::LOCK_END;

/// The longest pause between tries of a blocked F_SETLKW.
const MOST_PAUSE: Duration = Duration::from_millis(100);

impl Fs {
    /// The key a file's locks are kept under (a directory's is its prefix).
    fn lock_key(&self, ino: u64) -> Result<String, FsError> {
        let node = self.node(ino)?;
        Ok(match node.kind {
            Kind::Dir if node.path.is_empty() => "/".to_string(),
            Kind::Dir => dir_prefix(&node.path),
            _ => node.path,
        })
    }

    /// F_GETLK: the lock in the way of `want`, or `want` as an unlock.
    pub async fn getlk(&self, ino: u64, owner: u64, want: LockRange) -> Result<LockRange, FsError> {
        let key = self.lock_key(ino)?;
        match self
            .store
            .test_lock(&key, &self.locks.session, owner, &want)
            .await
        {
            Ok(Some(blocking)) => Ok(blocking),
            Ok(None) => Ok(LockRange {
                kind: LockKind::Unlock,
                ..want
            }),
            Err(FsError::NotSupported) => Err(FsError::NoLocks),
            Err(e) => Err(e),
        }
    }

    /// F_SETLK (`wait` false: EAGAIN when another owner is in the way) or
    /// F_SETLKW (retried until granted, or until the owner gives up).
    pub async fn setlk(&self, ino: u64, owner: u64, change: LockRange, wait: bool) -> Result<(), FsError> {
        let key = self.lock_key(ino)?;
        if change.kind == LockKind::Unlock {
            // What was written under the lock is stored before another
            // mount can take it.
            self.flush_inode(ino).await?;
            if change.start == 0 && change.end >= LOCK_END {
                self.locks.cancel(ino, owner);
            }
            self.change_lock(&key, owner, &change).await?;
            return Ok(());
        }
        let woken = wait.then(|| self.locks.wait(ino, owner));
        let mut pause = Duration::from_millis(5);
        let granted = loop {
            match self.change_lock(&key, owner, &change).await {
                Ok(LockAnswer::Granted(etag)) => break Ok(etag),
                Ok(LockAnswer::Blocked(_)) if woken.is_none() => break Err(FsError::WouldBlock),
                Ok(LockAnswer::Blocked(_)) => {}
                Err(e) => break Err(e),
            }
            let woken = woken.as_ref().expect("waiting");
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = woken.notified() => break Err(FsError::Interrupted),
            }
            pause = (pause * 2).min(MOST_PAUSE);
        };
        if wait {
            self.locks.done_waiting(ino, owner);
        }
        let etag = granted?;
        self.catch_up().await;
        self.revalidate(ino, etag).await
    }

    /// Releases every lock `owner` holds on `ino`: a close ends its
    /// process's POSIX locks of the file (the kernel's own unlock at close
    /// is lost when the process was killed; its flush is not) and, at the
    /// last close, a flock. Free when `owner` took no lock of it.
    pub async fn unlock_all(&self, ino: u64, owner: u64) -> Result<(), FsError> {
        // Every close comes here: no node lookup unless this mount locks.
        if !self.locks.any_held() || !self.locks.may_hold(&self.lock_key(ino)?, owner) {
            return Ok(());
        }
        let everything = LockRange {
            kind: LockKind::Unlock,
            start: 0,
            end: LOCK_END,
            pid: 0,
        };
        match self.setlk(ino, owner, everything, false).await {
            Err(FsError::NoLocks) => Ok(()),
            done => done,
        }
    }

    async fn change_lock(&self, key: &str, owner: u64, change: &LockRange) -> Result<LockAnswer, FsError> {
        match self.store.lock(key, &self.locks.session, owner, change).await {
            Ok(LockAnswer::Granted(etag)) => {
                self.locks.granted(&self.store, key, owner, change);
                Ok(LockAnswer::Granted(etag))
            }
            Err(FsError::NotSupported) => Err(FsError::NoLocks),
            other => other,
        }
    }

    /// After a lock is taken: this mount's view of the file (attributes,
    /// the version an open file reads, the kernel's pages) becomes the
    /// store's, unless this mount has unsaved writes to it. `etag`, the
    /// store's when the lock was granted, spares a HEAD when unchanged.
    async fn revalidate(&self, ino: u64, etag: Option<String>) -> Result<(), FsError> {
        self.flush_inode(ino).await?;
        let node = self.node(ino)?;
        if node.local || node.kind != Kind::File {
            return Ok(());
        }
        if etag.is_some_and(|e| e == node.etag) {
            self.update(ino, |n| n.fetched = Instant::now());
            return Ok(());
        }
        let Some(info) = self.store.head(&node.path, None).await? else {
            return Ok(());
        };
        if info.etag == node.etag {
            self.update(ino, |n| n.fetched = Instant::now());
            return Ok(());
        }
        if let Some(state) = self.open_file(ino) {
            let mut file = state.lock().await;
            if file.writer.as_ref().is_some_and(|w| w.dirty()) {
                return Ok(());
            }
            if let Some(mut writer) = file.writer.take() {
                writer.abandon(&self.store).await;
            }
            file.copy_of = None;
        }
        let fresh = self.object_node(&node.path, info, true);
        self.update(ino, |n| {
            n.size = fresh.size;
            n.etag = fresh.etag.clone();
            n.version_id = fresh.version_id.clone();
            n.posix = fresh.posix.clone();
            n.links = fresh.links;
            n.fetched = Instant::now();
            n.cached_etag.clear();
        });
        self.invalidate_kernel(ino).await;
        Ok(())
    }
}
