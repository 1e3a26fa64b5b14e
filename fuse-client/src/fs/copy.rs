//! `copy_file_range` inside the mount (what `cp` uses): a whole file copied
//! into an empty one becomes a CopyObject, which bucketfs's router does by
//! reference, so no bytes move however large the file. Any other range is
//! answered "not supported" and the kernel copies it through the page
//! cache itself (splice), as it would on a filesystem without the call.

use std::time::{Instant, SystemTime};

use super::{Fs, Kind};
use crate::error::FsError;

/// S3's limit on a CopyObject source. bucketfs's router has none (a copy
/// is by reference), so a larger copy is tried; refused, the kernel copies.
const COPY_OBJECT_MAX: u64 = 5 << 30;

impl Fs {
    /// Copies up to `len` bytes of `fh_in` at `offset` to `fh_out` at the
    /// same offset; answers how many were copied (0 at the source's end).
    pub async fn copy_file_range(
        &self,
        fh_in: u64,
        offset_in: u64,
        fh_out: u64,
        offset_out: u64,
        len: u64,
    ) -> Result<u64, FsError> {
        let (from, to) = (self.handle(fh_in)?, self.handle(fh_out)?);
        if !to.writable {
            return Err(FsError::BadHandle);
        }
        if from.ino == to.ino || offset_in != offset_out {
            return Err(FsError::NotSupported);
        }
        // The source as committed: bytes still local to this mount are not
        // in the object a copy would take.
        if from.state.lock().await.writer.as_ref().is_some_and(|w| w.dirty()) {
            return Err(FsError::NotSupported);
        }
        let source_node = self.node(from.ino)?;
        if source_node.kind != Kind::File || source_node.local || source_node.etag.is_empty() {
            return Err(FsError::NotSupported);
        }
        let size = source_node.size;
        if offset_in >= size {
            return Ok(0);
        }
        let copied = len.min(size - offset_in);
        let source = Self::source_of(&source_node);

        let mut file = to.state.lock().await;
        let target = self.node(to.ino)?;
        let unchanged = file.writer.as_ref().is_none_or(|w| !w.dirty());
        if file.copy_of.as_ref() == Some(&source) && unchanged && target.size == size {
            // The rest of a whole copy made by an earlier call (the kernel
            // passes at most 4 GiB per call).
            return Ok(copied);
        }
        let empty = target.size == 0 && file.writer.as_ref().is_none_or(|w| w.size() == 0);
        if offset_in != 0 || !empty || file.orphan {
            return Err(FsError::NotSupported);
        }
        self.writable(&[to.ino])?;
        let mut posix = target.posix.clone();
        posix.mtime = SystemTime::now();
        posix.ctime = posix.mtime;
        self.deletes.settled(&target.path).await;
        let etag = match self.store.copy(&source, &target.path, &posix.to_metadata()).await {
            Err(e) if size > COPY_OBJECT_MAX && !matches!(e, FsError::Stale) => {
                tracing::debug!(error = %e, size, "the store refused a large CopyObject; the kernel copies");
                return Err(FsError::NotSupported);
            }
            copied => copied?,
        };
        // The target is that new object now: drop what its writer held.
        if let Some(mut writer) = file.writer.take() {
            writer.abandon(&self.store).await;
        }
        if file.journaled.take().is_some() {
            self.journal_forget(&target.path);
        }
        file.copy_of = Some(source);
        self.update(to.ino, |n| {
            n.size = size;
            n.posix = posix;
            n.etag = etag;
            n.version_id = None;
            n.local = false;
            n.fetched = Instant::now();
        });
        Ok(copied)
    }
}
