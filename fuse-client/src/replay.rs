//! Replays what write-back journals left owed (see `journal.rs`) before a
//! mount serves anything. Each write is made only if the store still holds
//! what the daemon saw when it wrote the record: a change another client
//! made since came after the lost one, and wins, as it would have had the
//! daemon lived (the lost change is logged, not written over it). A write
//! the store has already taken (the daemon died after its upload, before
//! its `Done`) fails the same check and is skipped.

use futures::StreamExt;

use std::path::Path;

use crate::error::FsError;
use crate::journal::{self, Journal, Owed};
use crate::store::Store;

/// Writes replayed at once.
const PARALLEL: usize = 8;

/// What a replay did, for the log and the tests.
#[derive(Debug, Default, PartialEq)]
pub struct Replayed {
    /// Writes and deletes the store took.
    pub made: usize,
    /// Changes skipped: the key changed since (or already had them).
    pub superseded: usize,
    /// What the store did not take (kept for the next mount).
    pub failed: Vec<(String, Owed)>,
}

/// Replays what the journals of earlier mounts of the bucket (named `name`
/// under `cache_dir`) still owe, then opens this mount's journal.
pub async fn open_journal(store: &Store, cache_dir: &Path, name: &str) -> std::io::Result<Journal> {
    let mut leftovers = journal::leftovers(cache_dir, name)?;
    let owed = std::mem::take(&mut leftovers.owed);
    if !owed.is_empty() {
        let replayed = replay(store, owed).await;
        tracing::info!(
            made = replayed.made,
            superseded = replayed.superseded,
            failed = replayed.failed.len(),
            "replayed the write-back journal of an earlier mount"
        );
        return Journal::open(cache_dir, name, leftovers, &replayed.failed);
    }
    Journal::open(cache_dir, name, leftovers, &[])
}

/// Replays `owed`, in order per key (each key appears once).
pub async fn replay(store: &Store, owed: Vec<(String, Owed)>) -> Replayed {
    let results: Vec<_> = futures::stream::iter(owed)
        .map(|(key, owed)| async move {
            let result = replay_one(store, &key, &owed).await;
            (key, owed, result)
        })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    let mut replayed = Replayed::default();
    for (key, owed, result) in results {
        match result {
            Ok(true) => replayed.made += 1,
            Ok(false) => {
                tracing::warn!(%key, "a change lost with a daemon was made over since; the later change stays");
                replayed.superseded += 1;
            }
            Err(e) => {
                tracing::error!(%key, error = %e, "replaying a journaled change failed; the next mount tries again");
                replayed.failed.push((key, owed));
            }
        }
    }
    replayed
}

/// Makes one owed change; `false` when the key no longer holds what the
/// change was made over.
async fn replay_one(store: &Store, key: &str, owed: &Owed) -> Result<bool, FsError> {
    let (body, meta, bases) = match owed {
        Owed::Put { meta, bases, body } => (body.clone(), meta, bases),
        Owed::Dir { meta, bases } => (bytes::Bytes::new(), meta, bases),
        Owed::Delete { etag } => return replay_delete(store, key, etag.as_deref()).await,
    };
    for base in bases {
        match store.put_if(key, body.clone(), meta, base.as_deref()).await {
            Ok(_) => return Ok(true),
            Err(FsError::Stale) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// A delete, made if `key` still holds `etag` (`None`: it never did).
async fn replay_delete(store: &Store, key: &str, etag: Option<&str>) -> Result<bool, FsError> {
    let Some(etag) = etag else {
        return Ok(true);
    };
    match store.head(key, None).await? {
        Some(info) if info.etag == etag => store.delete(key).await.map(|()| true),
        Some(_) => Ok(false),
        None => Ok(true),
    }
}
