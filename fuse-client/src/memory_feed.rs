//! The in-memory store's change feed, when switched on: every change of a
//! key's current version, in order, as the router's feed records it (a
//! commit, a delete, both ends of a rename). A test decides how far a
//! follower may read (`release_feed`), so it can hold a mount's echoes of
//! its own changes back and let them arrive at any later moment.

use tokio::sync::watch;

use super::MemoryStore;
use crate::error::FsError;
use crate::store::{ChangeEntry, ChangePage};

/// How far the feed may be read: changes up to this sequence number.
pub(super) struct Released(watch::Sender<u64>);

impl Released {
    /// Everything recorded is readable at once.
    pub(super) fn all() -> Self {
        Self(watch::Sender::new(u64::MAX))
    }
}

/// Records that `key`'s current version is now the one with `etag`
/// (`None`: it has none).
pub(super) fn record(changes: &mut Vec<ChangeEntry>, key: &str, etag: Option<&str>) {
    changes.push(ChangeEntry {
        seq: changes.len() as u64 + 1,
        key: key.to_string(),
        etag: etag.map(str::to_string),
    });
}

impl MemoryStore {
    /// Changes recorded so far (the last one's sequence number).
    pub fn feed_len(&self) -> u64 {
        self.state.lock().unwrap().changes.len() as u64
    }

    /// Lets followers read the feed up to change `upto`, no further (until
    /// called again); `u64::MAX`: all of it, as it comes.
    pub fn release_feed(&self, upto: u64) {
        if let Some(released) = &self.feed {
            released.0.send_replace(upto);
        }
    }

    /// The feed after `after`, as far as released; with `wait`, waits for
    /// a change when there is none yet.
    pub(super) async fn feed_page(&self, after: Option<u64>, wait: bool) -> Result<ChangePage, FsError> {
        let released = self.feed.as_ref().ok_or(FsError::NotSupported)?;
        let Some(after) = after else {
            return Ok(ChangePage {
                next: self.feed_len(),
                ..ChangePage::default()
            });
        };
        let mut readable = released.0.subscribe();
        loop {
            // Listening before looking: a change made meanwhile still wakes.
            let recorded = self.recorded.notified();
            tokio::pin!(recorded);
            recorded.as_mut().enable();
            let upto = *readable.borrow_and_update();
            let changes: Vec<ChangeEntry> = {
                let state = self.state.lock().unwrap();
                let end = state
                    .changes
                    .len()
                    .min(usize::try_from(upto).unwrap_or(usize::MAX));
                let start = usize::try_from(after).unwrap_or(usize::MAX).min(end);
                state.changes[start..end].to_vec()
            };
            if !changes.is_empty() || !wait {
                let next = changes.last().map_or(after, |c| c.seq);
                return Ok(ChangePage {
                    changes,
                    next,
                    reset: false,
                });
            }
            // A change recorded but not yet released waits for the release;
            // one not yet made waits for both.
            tokio::select! {
                _ = readable.changed() => {}
                _ = recorded => {}
            }
        }
    }
}
