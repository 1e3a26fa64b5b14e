//! Write-back: closes that return before their upload, the queue of
//! commits and directory attribute writes behind them, and `sync_all`,
//! which waits for everything.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::handles::{OpenFile, Shared};
use super::Fs;
use crate::error::FsError;
use crate::journal::Record;
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
    /// waits here for a free one, which bounds the staged files. The file
    /// goes to the journal first, so a daemon killed before the upload
    /// loses nothing; one the journal cannot take (over one part) commits
    /// now.
    pub(super) async fn queue_commit(
        self: &Arc<Self>,
        ino: u64,
        state: &Shared<OpenFile>,
    ) -> Result<(), FsError> {
        let Some(slots) = self.write_back.clone() else {
            return Ok(());
        };
        {
            let mut file = state.lock().await;
            let dirty = file.writer.as_ref().is_some_and(Writer::dirty);
            if file.orphan || !dirty {
                return Ok(());
            }
            if !self.journal_file(ino, &mut file).await? {
                return self.commit(ino, &mut file, false).await;
            }
            if file.queued {
                return Ok(());
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
        Ok(())
    }

    /// Writes the file, as it stands, to the journal (unless it is there
    /// already); false when the journal cannot hold it.
    pub(super) async fn journal_file(&self, ino: u64, file: &mut OpenFile) -> Result<bool, FsError> {
        let (Some(journal), Some(writer)) = (&self.journal, file.writer.as_mut()) else {
            return Ok(true);
        };
        if file.journaled == Some(writer.edits()) {
            return Ok(true);
        }
        let Some(body) = writer.whole(&self.store).await? else {
            return Ok(false);
        };
        let node = self.node(ino)?;
        let record = Record::Put {
            key: node.path.clone(),
            meta: node.posix.to_metadata(),
            base: writer.base().map(|b| b.etag.clone()).filter(|e| !e.is_empty()),
        };
        match journal.append(record, &body) {
            Ok(_) => {
                file.journaled = Some(writer.edits());
                Ok(true)
            }
            Err(e) => {
                tracing::warn!(path = %node.path, error = %e, "cannot journal a close; committing it now");
                Ok(false)
            }
        }
    }

    /// The store has what the journal held for `key`, up to `upto`.
    pub(super) fn journal_done(&self, key: &str, upto: Option<u64>) {
        if let (Some(journal), Some(upto)) = (&self.journal, upto) {
            journal.done(vec![(key.to_string(), upto)]);
        }
    }

    /// The journal owes `key` nothing of what it holds so far (the change
    /// was dropped, or landed otherwise).
    pub(super) fn journal_forget(&self, key: &str) {
        self.journal_done(key, self.journal_seq());
    }

    /// The journal's position now (`None` without a journal).
    pub(super) fn journal_seq(&self) -> Option<u64> {
        self.journal.as_ref().map(|j| j.seq())
    }

    /// Appends `record` to the journal, if there is one.
    pub(super) fn journal_note(&self, record: Record) {
        if let Some(journal) = &self.journal {
            journal.note(record);
        }
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
        self.journal_dir(ino);
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
                // Journaled again over the ETag a write of it just left.
                let upto = self.journal_dir(ino);
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
                            self.journal_done(&key, upto);
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

    /// Journals the marker of directory `ino` with its attributes now.
    fn journal_dir(&self, ino: u64) -> Option<u64> {
        let (journal, node) = (self.journal.as_ref()?, self.node(ino).ok()?);
        let record = Record::Dir {
            key: dir_prefix(&node.path),
            meta: node.posix.to_metadata(),
            base: Some(node.etag).filter(|e| !e.is_empty()),
        };
        journal.append(record, &[]).ok()
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
            if let Some(journal) = &self.journal {
                journal.tidy();
            }
            Ok(())
        } else {
            Err(FsError::Io(format!("write-back failed for {}", lost.join(", "))))
        }
    }
}
