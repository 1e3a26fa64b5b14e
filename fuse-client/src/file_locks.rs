//! This mount's side of locks between mounts: its session (a random id the
//! store keeps its locks under), the renewal of their lease while any may
//! be held, and the blocked F_SETLKW calls a close cancels.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bucketfs_common::file_locks::{LockKind, LockRange, LOCK_END, LOCK_LEASE_SECS};
use rand::Rng;

use crate::store::Store;

pub struct Locks {
    pub session: String,
    /// (key, owner) pairs that may hold a lock: renewed while not empty.
    held: Mutex<HashSet<(String, u64)>>,
    /// Blocked F_SETLKW calls by (inode, owner), woken to give up.
    waiting: Mutex<HashMap<(u64, u64), Arc<tokio::sync::Notify>>>,
    renewing: std::sync::atomic::AtomicBool,
}

impl Default for Locks {
    fn default() -> Self {
        let mut rng = rand::thread_rng();
        Self {
            session: (0..32)
                .map(|_| char::from(b"0123456789abcdef"[rng.gen_range(0..16)]))
                .collect(),
            held: Mutex::default(),
            waiting: Mutex::default(),
            renewing: Default::default(),
        }
    }
}

impl Locks {
    /// Notes what a granted `change` leaves held, and starts renewing.
    pub fn granted(self: &Arc<Self>, store: &Store, key: &str, owner: u64, change: &LockRange) {
        let everything = change.start == 0 && change.end >= LOCK_END;
        {
            let mut held = self.held.lock().unwrap();
            if change.kind == LockKind::Unlock && everything {
                held.remove(&(key.to_string(), owner));
            } else if change.kind != LockKind::Unlock {
                held.insert((key.to_string(), owner));
            }
        }
        if !self.renewing.swap(true, std::sync::atomic::Ordering::SeqCst) {
            tokio::spawn(renew(Arc::downgrade(self), store.clone()));
        }
    }

    /// Whether `owner` may hold a lock of `key` (took one, and has not
    /// released the whole file since).
    pub fn may_hold(&self, key: &str, owner: u64) -> bool {
        self.held.lock().unwrap().contains(&(key.to_string(), owner))
    }

    /// Whether this mount may hold any lock at all.
    pub fn any_held(&self) -> bool {
        !self.held.lock().unwrap().is_empty()
    }

    /// A blocked lock call of `owner` on `ino` starts waiting: the
    /// `Notify` wakes it to give up.
    pub fn wait(&self, ino: u64, owner: u64) -> Arc<tokio::sync::Notify> {
        self.waiting
            .lock()
            .unwrap()
            .entry((ino, owner))
            .or_default()
            .clone()
    }

    pub fn done_waiting(&self, ino: u64, owner: u64) {
        self.waiting.lock().unwrap().remove(&(ino, owner));
    }

    /// `owner` released all of `ino` (its process closed the file, or
    /// died): a call of its still blocked gives up (EINTR).
    pub fn cancel(&self, ino: u64, owner: u64) {
        if let Some(waiter) = self.waiting.lock().unwrap().get(&(ino, owner)) {
            // A permit, should the waiter be between two tries.
            waiter.notify_one();
        }
    }
}

/// Renews the session's locks every third of the lease while any may be
/// held, until the mount ends.
async fn renew(locks: Weak<Locks>, store: Store) {
    let every = Duration::from_secs(LOCK_LEASE_SECS) / 3;
    loop {
        tokio::time::sleep(every).await;
        let Some(locks) = locks.upgrade() else {
            return;
        };
        if locks.held.lock().unwrap().is_empty() {
            continue;
        }
        if let Err(e) = store.renew_locks(&locks.session, false).await {
            tracing::warn!(error = %e, "could not renew this mount's locks; they lapse unless a later renewal gets through");
        }
    }
}
