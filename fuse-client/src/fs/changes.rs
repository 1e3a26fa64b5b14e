//! Following the store's change feed (`CHANGES_QUERY` on a bucketfs
//! router): each change of a key another client made drops what this mount
//! and the kernel hold of it, so another mount's close shows here within
//! the feed's delay instead of after `--attr-ttl`. Without a feed (another
//! S3 server), or while it cannot be reached, the TTLs bound staleness as
//! before; a mount that loses the feed for a while catches up from the last
//! sequence number it saw, or, when the router no longer has it, starts
//! over from what it holds.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::{Fs, Kind};
use crate::error::FsError;
use crate::names::{dir_prefix, parent_of};
use crate::store::ChangePage;

/// Where a mount stands in the feed, shared by its follower and by a lock
/// taker catching up at once (`catch_up`).
#[derive(Default)]
pub(crate) struct FeedCursor {
    /// Every change up to here is applied (`None`: not following).
    after: Option<u64>,
    /// Changes past `after` applied already (sent early, past a gap, or
    /// seen by both the follower and a catch-up): never applied twice, so
    /// a key's changes apply in order.
    applied: BTreeSet<u64>,
}

impl Fs {
    /// Follows the feed for the life of the mount.
    pub async fn follow_changes(self: Arc<Self>) {
        let mut failures = 0u32;
        loop {
            let asked = self.feed.lock().await.after;
            match self.store.changes(asked, true).await {
                Ok(page) => {
                    failures = 0;
                    let stuck = asked == Some(page.next) && !page.changes.is_empty();
                    let mut feed = self.feed.lock().await;
                    self.apply_changes(&mut feed, page).await;
                    drop(feed);
                    if stuck {
                        // A gap in the sequence the router waits out.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                Err(FsError::NotSupported) => {
                    tracing::info!(
                        "the store has no change feed: other clients' changes show after --attr-ttl"
                    );
                    return;
                }
                Err(e) => {
                    if failures == 0 {
                        tracing::warn!(error = %e, "lost the change feed; retrying (other clients' changes show after --attr-ttl meanwhile)");
                    }
                    failures += 1;
                    let pause = Duration::from_millis(100 << failures.min(6));
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }

    /// Applies every change the feed holds now, without waiting: called when
    /// a lock is taken, so that what its last holder changed on another
    /// mount (a journal it deleted, say) shows here before this mount's
    /// program looks, not a feed delay later.
    pub(super) async fn catch_up(&self) {
        let mut feed = self.feed.lock().await;
        if feed.after.is_none() {
            return;
        }
        match self.store.changes(feed.after, false).await {
            Ok(page) => {
                tracing::debug!(after = ?feed.after, changes = page.changes.len(), "catching up with the change feed");
                self.apply_changes(&mut feed, page).await
            }
            Err(e) => tracing::debug!(error = %e, "could not catch up with the change feed"),
        }
    }

    async fn apply_changes(&self, feed: &mut FeedCursor, page: ChangePage) {
        if page.reset {
            tracing::info!("the change feed moved past this mount; trusting nothing cached");
            self.distrust_everything();
        }
        let from = feed.after;
        for change in &page.changes {
            if from.is_some_and(|after| change.seq <= after) || !feed.applied.insert(change.seq) {
                continue;
            }
            self.changed(&change.key, change.etag.as_deref()).await;
        }
        let after = from.map_or(page.next, |a| a.max(page.next));
        feed.after = Some(after);
        feed.applied = feed.applied.split_off(&(after + 1));
    }

    /// `key` now has the version with `etag` (`None`: it is gone).
    ///
    /// A change may be old news by the time it arrives: the feed echoes
    /// this mount's own changes too, and a file unlinked and made again
    /// here (a lock file, say) may still be getting the echo of its first
    /// removal. So a change only ever makes this mount ask the store again:
    /// it never says a name is missing, nor that a listing is whole.
    async fn changed(&self, key: &str, etag: Option<&str>) {
        let path = key.strip_suffix('/').unwrap_or(key);
        if path.is_empty() {
            return;
        }
        let dir = parent_of(path);
        let name = &path[dir_prefix(dir).len()..];
        let (node, parent) = {
            let table = self.table.lock().unwrap();
            let node = table.by_path.get(path).and_then(|ino| {
                let n = table.nodes.get(ino)?;
                Some((*ino, n.etag.clone(), n.local, n.kind == Kind::Dir))
            });
            (node, table.by_path.get(dir).copied())
        };
        tracing::debug!(%key, ?etag, known = node.is_some(), "change from the feed");
        let mut is_dir = false;
        match node {
            // This mount is removing it: the echo of its own delete (which
            // may arrive before the removal has forgotten the name), or
            // another client's delete of it, tells nothing new.
            _ if etag.is_none() && self.deletes.is_removing(key) => return,
            // This mount's own change, or one it has already seen.
            Some((_, known, _, _)) if etag == Some(known.as_str()) => return,
            None if etag.is_none() && self.absence.is_absent(dir, path) => return,
            // Made or open here: this mount's commit is on its way (a file
            // open here shows its own version until closed anyway).
            Some((ino, _, local, _)) if local || self.is_open(ino) => return,
            Some((ino, _, _, dir_node)) => {
                self.update(ino, |n| n.loaded = false);
                self.invalidate_kernel(ino).await;
                is_dir = dir_node;
            }
            None => {}
        }
        self.absence.changed_in(dir);
        if etag.is_some() {
            self.absence.present(path);
        }
        // The kernel looks the name up again. Not a directory's: that would
        // cut it from the tree under the programs working in it (getcwd
        // fails), and its attributes, fetched again, say whether it is gone.
        if is_dir {
            return;
        }
        if let (Some(parent), Some(kernel)) = (parent, self.kernel.get().cloned()) {
            let name = name.to_string();
            let _ = tokio::task::spawn_blocking(move || kernel.invalidate_entry(parent, &name)).await;
        }
    }

    /// Everything cached may be out of date: fetch it again before use.
    fn distrust_everything(&self) {
        let mut table = self.table.lock().unwrap();
        let dirs: Vec<String> = table.nodes.values().map(|n| n.path.clone()).collect();
        for node in table.nodes.values_mut() {
            node.loaded = false;
        }
        drop(table);
        for dir in dirs {
            self.absence.changed_in(&dir);
        }
    }
}
