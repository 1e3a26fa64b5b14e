//! Write-back: closes that return before their upload, the queue of
//! commits and directory attribute writes behind them, and `sync_all`,
//! which waits for everything.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::handles::{OpenFile, Shared};
use super::Fs;
use crate::error::FsError;
use crate::names::dir_prefix;
use crate::writer::Writer;

/// A failed write-back commit is tried again this many times, after 0.5 s,
/// 1 s, 2 s... (about 30 s in all) before its changes are given up.
const WRITE_BACK_RETRIES: u32 = 6;
/// How long a write-back commit waits before it starts.
const WRITE_BACK_DELAY: Duration = Duration::from_millis(20);

impl Fs {
    /// Write-back: the file's commit runs in the background, holding the
    /// file open (so this mount keeps reading and listing what was written)
    /// until it is in the store. At most `write_back` run at once; a close
    /// waits here for a free one, which bounds the staged files.
    pub(super) async fn queue_commit(self: &Arc<Self>, ino: u64, state: &Shared<OpenFile>) {
        let Some(slots) = self.write_back.clone() else {
            return;
        };
        {
            let mut file = state.lock().await;
            let dirty = file.writer.as_ref().is_some_and(Writer::dirty);
            if file.orphan || file.queued || !dirty {
                return;
            }
            file.queued = true;
        }
        let slot = slots
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        // The caller's handle keeps the state alive, so this is the same one.
        let pinned = self.acquire(ino);
        self.pending.send_modify(|n| *n += 1);
        let fs = self.clone();
        tokio::spawn(async move {
            fs.write_back(ino, pinned).await;
            drop(slot);
            fs.pending.send_modify(|n| *n -= 1);
        });
    }

    pub(super) async fn write_back(&self, ino: u64, state: Shared<OpenFile>) {
        // Tools set times, mode and owner right after close (tar, cp -p,
        // rsync): let those land in the same commit.
        tokio::time::sleep(WRITE_BACK_DELAY).await;
        let mut file = state.lock().await;
        // Writes from here on need another commit, so another queueing.
        file.queued = false;
        let mut failed = None;
        for attempt in 0..=WRITE_BACK_RETRIES {
            match self.commit(ino, &mut file, true).await {
                Ok(()) => {
                    failed = None;
                    break;
                }
                Err(e) => {
                    tracing::warn!(ino, attempt, error = %e, "write-back commit failed");
                    failed = Some(e);
                    if attempt < WRITE_BACK_RETRIES {
                        tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
                    }
                }
            }
        }
        let path = self.node(ino).map(|n| n.path).unwrap_or_default();
        // The last user tries once more; any other user's close commits.
        if let (Some(e), Err(_)) = (failed, self.put_file(ino, &mut file).await) {
            tracing::error!(%path, error = %e, "write-back failed: the file's last changes are lost");
            self.lost.lock().unwrap().push(path);
        }
    }

    /// Queues a write of the marker of directory `ino` with its attributes.
    pub(super) fn write_back_dir_attributes(self: &Arc<Self>, ino: u64) {
        if self.dir_writes.changed(ino) {
            self.pending.send_modify(|n| *n += 1);
            let fs = self.clone();
            tokio::spawn(async move { fs.write_back_dir(ino).await });
        }
    }

    /// Write-back of a directory's attributes: rewrites its marker with
    /// the attributes it has when the write starts, again if they change
    /// meanwhile (see `dir_writes.rs`).
    pub(super) async fn write_back_dir(&self, ino: u64) {
        loop {
            tokio::time::sleep(WRITE_BACK_DELAY).await;
            let moves = self.dir_moves.read().await;
            self.dir_writes.writing(ino);
            // Gone: removed here, or by another client.
            if let Ok(node) = self.node(ino) {
                let (key, meta) = (dir_prefix(&node.path), node.posix.to_metadata());
                let mut failed = None;
                for attempt in 0..=WRITE_BACK_RETRIES {
                    match self.store.put_batched(&key, Bytes::new(), &meta).await {
                        Ok(info) => {
                            self.update(ino, |n| {
                                n.etag = info.etag;
                                n.version_id = None;
                                n.fetched = Instant::now();
                                n.local = false;
                            });
                            failed = None;
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(%key, attempt, error = %e, "directory attribute write failed");
                            failed = Some(e);
                            if attempt < WRITE_BACK_RETRIES {
                                tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
                            }
                        }
                    }
                }
                if let Some(e) = failed {
                    tracing::error!(%key, error = %e, "write-back failed: the directory's attributes are lost");
                    self.lost.lock().unwrap().push(node.path);
                }
            }
            drop(moves);
            if !self.dir_writes.written(ino) {
                break;
            }
        }
        self.pending.send_modify(|n| *n -= 1);
    }

    /// Write-back commits queued or running, and deletes on their way to
    /// the store (the metrics' queue gauges).
    pub fn queued(&self) -> (usize, usize) {
        (*self.pending.borrow(), self.deletes.pending_under(""))
    }

    /// Waits for every queued write-back commit and delete (fsync of a
    /// directory, unmount); fails if one was given up since the last call.
    pub async fn sync_all(&self) -> Result<(), FsError> {
        let mut pending = self.pending.subscribe();
        let _ = pending.wait_for(|n| *n == 0).await;
        let undeleted = self.deletes.drain().await;
        let mut lost = std::mem::take(&mut *self.lost.lock().unwrap());
        lost.extend(undeleted.into_iter().map(|key| format!("{key} (delete)")));
        if lost.is_empty() {
            Ok(())
        } else {
            Err(FsError::Io(format!("write-back failed for {}", lost.join(", "))))
        }
    }
}
