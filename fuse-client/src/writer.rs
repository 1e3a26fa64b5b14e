//! Writes to one open file: staged in memory while small, else in an
//! unlinked local file (so memory stays bounded whatever the file's size;
//! see `staging.rs`), and committed as one new object version.
//!
//! The file is cut into parts of `PART` bytes, the multipart part size. A
//! part either still equals the committed object (`Remote::Base`, committed
//! again with UploadPartCopy, by reference: no bytes move), has been uploaded
//! as a part of the pending multipart upload, or is stale and must be
//! uploaded from the staging file. Large sequential writes upload each part
//! as soon as the writer moves past it, so a long copy streams out while it
//! is being written and the commit only has the tail left to send.
//!
//! An append past the first part collects in memory (`Tail`) until its part
//! is full; the full part is uploaded from memory and copied to the staging
//! file in the background. Writing each megabyte to the staging file and
//! reading the part back had been most of a sequential write's latency. Any
//! other operation first settles: the tail and the background copies land
//! in the staging file before anything reads or rewrites it.

use std::path::Path;

use bytes::Bytes;
use tokio::task::JoinSet;

use bucketfs_common::extension::PATCH_MAX_RANGES;

use crate::dirty::Dirty;
use crate::error::FsError;
use crate::parts::PartBuf;
use crate::staging::Staging;
use crate::store::{Metadata, ObjectInfo, Source, Store};

/// Part size: equal to the router's chunk size, so a copied part is whole
/// chunks by reference and a changed byte re-uploads one chunk.
pub const PART: u64 = bucketfs_common::extension::CHUNK_SIZE as u64;
/// S3's limit on parts per upload.
const MAX_PARTS: u64 = 10_000;
/// Parts uploading in the background at once (each holds `PART` bytes).
const IN_FLIGHT: usize = 4;
/// Sealed tail parts being copied to the staging file at once (each holds
/// `PART` bytes). Unbounded, a disk slower than the writer let the copies
/// pile up: the daemon's RSS reached 309 MiB writing 4 GiB on a CI host
/// whose disk was busy (93 MiB here).
const STAGING_COPIES: usize = 2;
/// Files smaller than this are committed whole (one small PUT, batched in
/// write-back), never patched.
const PATCH_MIN_SIZE: u64 = 128 << 10;
/// A patch is sent when its bytes are at most 1/this of the file.
const PATCH_MAX_SHARE: u64 = 4;

#[derive(Debug, Clone, PartialEq)]
enum Remote {
    /// Equal to the same range of the base object.
    Base,
    /// Uploaded to the pending multipart upload with this ETag.
    Uploaded(String),
    /// Being uploaded in the background.
    Uploading,
    /// Changed since: must be uploaded.
    Stale,
}

#[derive(Debug, Clone)]
struct Part {
    /// The staging file holds this part's bytes.
    local: bool,
    remote: Remote,
    /// Set anew (from the writer's counter) by every change, so a
    /// background upload of older bytes is ignored, even one of a part
    /// that a truncation dropped and a later write made again.
    generation: u64,
}

pub struct Writer {
    key: String,
    staging: Staging,
    size: u64,
    parts: Vec<Part>,
    /// The committed object that `Remote::Base` parts equal.
    base: Option<Source>,
    /// Bytes of `base` still valid (a truncation invalidates the rest).
    base_len: u64,
    /// The size of `base`: a file cut shorter must be committed even when
    /// every part left equals the base.
    base_size: u64,
    /// The pending multipart upload and the metadata it was created with.
    upload: Option<(String, Metadata)>,
    uploads: JoinSet<(usize, u64, Result<String, FsError>)>,
    /// The part of each upload in `uploads`: a part is never uploaded twice
    /// at once, or the older bytes could land last and replace the newer.
    uploading: Vec<usize>,
    /// The part being appended to, not yet in the staging file.
    tail: Option<Tail>,
    /// Full parts being copied to the staging file: a failed copy hands its
    /// bytes back to be written again in the foreground.
    staging_copies: JoinSet<StagingCopy>,
    /// Metadata changed since the last commit.
    meta_changed: bool,
    /// Bytes changed since the last commit, for a patch.
    dirty: Dirty,
    /// The last generation handed to a part.
    generations: u64,
    /// Writes and resizes so far (the write-back journal's mark).
    edits: u64,
}

/// A background copy's offset, and its bytes back if it failed.
type StagingCopy = (u64, Result<(), (Bytes, std::io::Error)>);

/// Bytes appended to part `part` from its start, held in memory.
struct Tail {
    part: usize,
    bytes: PartBuf,
}

fn part_count(size: u64) -> usize {
    size.div_ceil(PART) as usize
}

/// What a multipart commit does with one part.
#[derive(Debug, Clone, PartialEq)]
enum PartPlan {
    /// Already uploaded with this ETag.
    Keep(String),
    /// Copied by reference from bytes `start..end` of the base object.
    Copy { start: u64, end: u64 },
    /// Uploaded from the staging file.
    Upload,
}

/// The plan of a multipart commit of a file of `size` bytes whose parts
/// stand as `parts` say, over a base object whose first `base_len` bytes
/// are still valid: a part equal to the base is copied by reference, one
/// uploaded already is kept, and everything else is uploaded.
fn plan_parts(parts: &[Remote], size: u64, base_len: u64) -> Vec<PartPlan> {
    parts
        .iter()
        .enumerate()
        .map(|(i, remote)| {
            let start = i as u64 * PART;
            let end = (start + PART).min(size);
            match remote {
                Remote::Uploaded(etag) => PartPlan::Keep(etag.clone()),
                Remote::Base if end <= base_len => PartPlan::Copy { start, end },
                _ => PartPlan::Upload,
            }
        })
        .collect()
}

impl Writer {
    /// A writer over `base` (the object as committed, `size` bytes), or over
    /// a new empty file when `base` is `None`.
    pub fn new(dir: &Path, key: &str, base: Option<Source>, size: u64) -> Result<Self, FsError> {
        let mut staging = Staging::new(dir);
        let (size, base_len) = if base.is_some() { (size, size) } else { (0, 0) };
        staging.set_len(size)?;
        Ok(Self {
            key: key.to_string(),
            staging,
            size,
            parts: vec![
                Part {
                    local: false,
                    remote: Remote::Base,
                    generation: 0,
                };
                part_count(size)
            ],
            base,
            base_len,
            base_size: base_len,
            upload: None,
            uploads: JoinSet::new(),
            uploading: Vec::new(),
            tail: None,
            staging_copies: JoinSet::new(),
            meta_changed: false,
            dirty: Dirty::default(),
            generations: 0,
            edits: 0,
        })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Something must be committed: data or metadata changed.
    pub fn dirty(&self) -> bool {
        self.meta_changed
            || self.base.is_none()
            || self.base_len != self.base_size
            || self.parts.iter().any(|p| p.remote != Remote::Base)
    }

    /// Counts writes and resizes: equal counts, equal bytes.
    pub fn edits(&self) -> u64 {
        self.edits
    }

    /// The whole file, for the write-back journal; `None` when it is more
    /// than one part (its close commits it instead).
    pub async fn whole(&mut self, store: &Store) -> Result<Option<Bytes>, FsError> {
        self.settle().await?;
        if self.upload.is_some() || self.parts.len() > 1 {
            return Ok(None);
        }
        if self.parts.is_empty() {
            return Ok(Some(Bytes::new()));
        }
        self.load(store, 0).await?;
        self.part_bytes(0).map(Some)
    }

    /// Metadata (mode, owner, times) changed and must be committed.
    pub fn touch_metadata(&mut self) {
        self.meta_changed = true;
    }

    /// The file was renamed to `key`: commits go there, and the base object
    /// moved with it (a new version there, with the same ETag). A pending
    /// multipart upload belongs to the old key and cannot complete under
    /// the new one: its parts are sent again (their bytes are all in the
    /// staging file), and the old key and upload id are answered, for the
    /// caller to abort.
    pub fn renamed(&mut self, key: &str) -> Option<(String, String)> {
        let old = std::mem::replace(&mut self.key, key.to_string());
        if let Some(base) = &mut self.base {
            base.key = key.to_string();
            base.version_id = None;
        }
        let (upload, _) = self.upload.take()?;
        for i in 0..self.parts.len() {
            if matches!(self.parts[i].remote, Remote::Uploaded(_) | Remote::Uploading) {
                // Uploads still in flight land in the old upload: ignored.
                self.change(i);
            }
        }
        Some((old, upload))
    }

    fn range(&self, i: usize) -> (u64, u64) {
        let start = i as u64 * PART;
        (start, (start + PART).min(self.size))
    }

    /// Brings part `i` into the staging file from the base object.
    async fn load(&mut self, store: &Store, i: usize) -> Result<(), FsError> {
        if self.parts[i].local {
            return Ok(());
        }
        let (start, end) = self.range(i);
        let valid_end = end.min(self.base_len);
        if let Some(base) = &self.base {
            if valid_end > start {
                let data = store.get_range(base, start, valid_end - start).await?;
                if (data.len() as u64) != valid_end - start {
                    return Err(FsError::Io(format!("short read of {}", base.key)));
                }
                self.staging.write_all_at(&data, start)?;
            }
        }
        self.parts[i].local = true;
        Ok(())
    }

    fn change(&mut self, i: usize) {
        let generation = self.next_generation();
        let part = &mut self.parts[i];
        part.remote = Remote::Stale;
        part.generation = generation;
    }

    fn next_generation(&mut self) -> u64 {
        self.generations += 1;
        self.generations
    }

    /// Reads `len` bytes at `offset`: `Ok(None)` for each span the caller
    /// must read from the base object, in order.
    pub async fn read_spans(&mut self, offset: u64, len: u64) -> Result<Vec<Span>, FsError> {
        self.settle().await?;
        let end = (offset + len).min(self.size);
        let mut spans = Vec::new();
        let mut at = offset;
        while at < end {
            let i = (at / PART) as usize;
            let span_end = ((i as u64 + 1) * PART).min(end);
            if self.parts[i].local {
                let mut buf = vec![0; (span_end - at) as usize];
                self.staging.read_exact_at(&mut buf, at)?;
                spans.push(Span::Local(Bytes::from(buf)));
            } else {
                spans.push(Span::Base(at, span_end - at));
            }
            at = span_end;
        }
        Ok(spans)
    }

    pub fn base(&self) -> Option<&Source> {
        self.base.as_ref()
    }

    pub async fn write(
        &mut self,
        store: &Store,
        meta: &Metadata,
        offset: u64,
        data: &[u8],
    ) -> Result<(), FsError> {
        let end = offset + data.len() as u64;
        if end > MAX_PARTS * PART {
            return Err(FsError::TooBig);
        }
        if data.is_empty() {
            return Ok(());
        }
        self.edits += 1;
        self.dirty.insert(offset, end);
        if self.append_to_tail(offset, data) {
            self.size = end;
            if self.tail.as_ref().is_some_and(|t| t.bytes.len() as u64 == PART) {
                self.seal_tail(store, meta).await?;
            }
            return Ok(());
        }
        self.settle().await?;
        if end > self.size {
            self.resize(store, end).await?;
        }
        let first = (offset / PART) as usize;
        let last = ((end.max(1) - 1) / PART) as usize;
        for i in first..=last.min(self.parts.len().saturating_sub(1)) {
            let (start, stop) = self.range(i);
            let covered = offset <= start && end >= stop;
            if !covered {
                self.load(store, i).await?;
            }
            self.parts[i].local = true;
            self.change(i);
        }
        self.staging.write_all_at(data, offset)?;
        // Parts the writer has moved past, having rewritten them whole (a
        // sequential write), stream out now. A random write that merely
        // ends at a part's end does not: the part may still go as a patch.
        for i in first..=last {
            let (start, stop) = (i as u64 * PART, (i as u64 + 1) * PART);
            if end >= stop
                && self.parts.get(i).is_some_and(|p| p.remote == Remote::Stale)
                && self.dirty.covers(start, stop)
            {
                self.start_upload(store, meta, i).await?;
            }
        }
        Ok(())
    }

    /// Takes `data` at `offset` into the tail when it appends to the file
    /// past its first part without crossing a part boundary.
    fn append_to_tail(&mut self, offset: u64, data: &[u8]) -> bool {
        let i = (offset / PART) as usize;
        let end = offset + data.len() as u64;
        if i == 0 || offset != self.size || end > (i as u64 + 1) * PART {
            return false;
        }
        match &mut self.tail {
            Some(tail) if tail.part == i => tail.bytes.extend_from_slice(data),
            None if offset == i as u64 * PART && self.parts.len() == i => {
                let mut bytes = PartBuf::new();
                bytes.extend_from_slice(data);
                self.tail = Some(Tail { part: i, bytes });
                let generation = self.next_generation();
                self.parts.push(Part {
                    local: true,
                    remote: Remote::Stale,
                    generation,
                });
            }
            _ => return false,
        }
        self.change(i);
        true
    }

    /// Uploads the full tail part and copies it to the staging file, both
    /// in the background.
    async fn seal_tail(&mut self, store: &Store, meta: &Metadata) -> Result<(), FsError> {
        let Some(tail) = self.tail.take() else {
            return Ok(());
        };
        let bytes = tail.bytes.freeze();
        let start = tail.part as u64 * PART;
        match self.staging.shared_file()? {
            Some(file) => {
                while self.staging_copies.len() >= STAGING_COPIES {
                    self.join_staging_copy().await?;
                }
                let copy = bytes.clone();
                self.staging_copies.spawn_blocking(move || {
                    let written = std::os::unix::fs::FileExt::write_all_at(&file, &copy, start);
                    (start, written.map_err(|e| (copy, e)))
                });
            }
            None => self.staging.write_all_at(&bytes, start)?,
        }
        self.start_upload_of(store, meta, tail.part, bytes).await
    }

    /// Puts the tail and the background copies into the staging file, so it
    /// holds every byte written.
    async fn settle(&mut self) -> Result<(), FsError> {
        if let Some(tail) = self.tail.take() {
            self.staging
                .write_all_at(tail.bytes.as_ref(), tail.part as u64 * PART)?;
        }
        while !self.staging_copies.is_empty() {
            self.join_staging_copy().await?;
        }
        Ok(())
    }

    /// Waits for one background staging copy (there is one); one that
    /// failed is written again here.
    async fn join_staging_copy(&mut self) -> Result<(), FsError> {
        let Some(joined) = self.staging_copies.join_next().await else {
            return Ok(());
        };
        let (start, written) = joined.map_err(|e| FsError::Io(e.to_string()))?;
        if let Err((bytes, e)) = written {
            tracing::warn!(key = %self.key, error = %e, "background staging copy failed; writing again");
            self.staging.write_all_at(&bytes, start)?;
        }
        Ok(())
    }

    /// Truncates or extends to `size` (new bytes read as zeros).
    pub async fn resize(&mut self, store: &Store, size: u64) -> Result<(), FsError> {
        if size > MAX_PARTS * PART {
            return Err(FsError::TooBig);
        }
        self.settle().await?;
        self.edits += 1;
        if size < self.size {
            self.dirty.truncate(size);
            self.staging.set_len(size)?;
            self.base_len = self.base_len.min(size);
            self.parts.truncate(part_count(size));
            if !size.is_multiple_of(PART) {
                let i = self.parts.len() - 1;
                if self.parts[i].remote != Remote::Base {
                    self.change(i);
                }
            }
        } else if size > self.size {
            self.dirty.insert(self.size, size);
            // The old last part gains bytes the base does not have.
            if !self.size.is_multiple_of(PART) {
                let i = self.parts.len() - 1;
                self.load(store, i).await?;
                self.change(i);
            }
            self.base_len = self.base_len.min(self.size);
            self.staging.set_len(size)?;
            let fresh = Part {
                local: true,
                remote: Remote::Stale,
                generation: self.next_generation(),
            };
            self.parts.resize(part_count(size), fresh);
        }
        self.size = size;
        Ok(())
    }

    /// Keeps the file readable after its object is deleted: every part local.
    pub async fn detach(&mut self, store: &Store) -> Result<(), FsError> {
        self.settle().await?;
        for i in 0..self.parts.len() {
            self.load(store, i).await?;
        }
        self.base = None;
        Ok(())
    }

    async fn ensure_upload(&mut self, store: &Store, meta: &Metadata) -> Result<String, FsError> {
        if let Some((id, _)) = &self.upload {
            return Ok(id.clone());
        }
        let id = store.create_upload(&self.key, meta).await?;
        self.upload = Some((id.clone(), meta.clone()));
        Ok(id)
    }

    fn part_bytes(&self, i: usize) -> Result<Bytes, FsError> {
        let (start, end) = self.range(i);
        let mut buf = PartBuf::zeroed((end - start) as usize);
        self.staging.read_exact_at(buf.as_mut_slice(), start)?;
        Ok(buf.freeze())
    }

    async fn start_upload(&mut self, store: &Store, meta: &Metadata, i: usize) -> Result<(), FsError> {
        let body = self.part_bytes(i)?;
        self.start_upload_of(store, meta, i, body).await
    }

    async fn start_upload_of(
        &mut self,
        store: &Store,
        meta: &Metadata,
        i: usize,
        body: Bytes,
    ) -> Result<(), FsError> {
        let busy = |w: &Self| w.uploads.len() >= IN_FLIGHT || w.uploading.contains(&i);
        while busy(self) && !self.uploads.is_empty() {
            self.reap_one().await;
        }
        let upload = self.ensure_upload(store, meta).await?;
        let generation = self.parts[i].generation;
        self.parts[i].remote = Remote::Uploading;
        self.uploading.push(i);
        let (store, key) = (store.clone(), self.key.clone());
        self.uploads.spawn(async move {
            let result = store.upload_part(&key, &upload, i as u32 + 1, body).await;
            (i, generation, result)
        });
        Ok(())
    }

    /// Waits for one background upload and records it. A part whose
    /// upload failed is stale again, and the commit sends it itself: no
    /// caller fails for it (the store's own retries are spent by then).
    async fn reap_one(&mut self) {
        let Some(joined) = self.uploads.join_next().await else {
            return;
        };
        let (i, generation, result) = match joined {
            Ok(done) => done,
            Err(e) => {
                tracing::warn!(key = %self.key, error = %e, "a part upload task ended; the commit sends its part");
                return;
            }
        };
        if let Some(at) = self.uploading.iter().position(|&j| j == i) {
            self.uploading.swap_remove(at);
        }
        let Some(part) = self.parts.get_mut(i).filter(|p| p.generation == generation) else {
            return;
        };
        match result {
            Ok(etag) => part.remote = Remote::Uploaded(etag),
            Err(e) => {
                part.remote = Remote::Stale;
                tracing::warn!(key = %self.key, error = %e, "a part upload failed; the commit sends it again");
            }
        }
    }

    /// Commits the file as a new version of its object with `meta`; a
    /// `background` commit of a small file may wait to share a batch call.
    pub async fn commit(
        &mut self,
        store: &Store,
        meta: &Metadata,
        background: bool,
    ) -> Result<ObjectInfo, FsError> {
        self.settle().await?;
        while !self.uploads.is_empty() {
            self.reap_one().await;
        }
        let mut info = if let Some(info) = self.try_patch(store, meta).await? {
            info
        } else if self.upload.is_none() && self.parts.len() <= 1 {
            if !self.parts.is_empty() {
                self.load(store, 0).await?;
            }
            let body = if self.parts.is_empty() {
                Bytes::new()
            } else {
                self.part_bytes(0)?
            };
            match background {
                true => store.put_batched(&self.key, body, meta).await?,
                false => store.put(&self.key, body, meta).await?,
            }
        } else if self.parts.len() <= 1 {
            // Shrunk to one part after streaming began: a plain PUT is simpler.
            if let Some((id, _)) = self.upload.take() {
                store.abort_upload(&self.key, &id).await;
            }
            return Box::pin(self.commit(store, meta, background)).await;
        } else {
            self.commit_multipart(store, meta).await?
        };
        info.size = self.size;
        info.metadata = meta.clone();
        for part in &mut self.parts {
            part.remote = Remote::Base;
        }
        self.base = Some(Source {
            key: self.key.clone(),
            version_id: info.version_id.clone(),
            etag: info.etag.clone(),
        });
        self.base_len = self.size;
        self.base_size = self.size;
        self.meta_changed = false;
        self.dirty.clear();
        Ok(info)
    }

    /// Commits the changed ranges alone, when they are few against the
    /// file's size and its base is the current version: a few KiB changed
    /// in a large file cost a few KiB, not their 8 MiB parts. `None` when
    /// a whole upload is the better (or the only) way; a patch refused
    /// because someone else wrote the key meanwhile also falls back to it,
    /// which then succeeds only if this file's bytes are all here (last
    /// writer wins, as with any PUT) and fails with `Stale` otherwise.
    async fn try_patch(&mut self, store: &Store, meta: &Metadata) -> Result<Option<ObjectInfo>, FsError> {
        let Some(base) = self.base.clone() else {
            return Ok(None);
        };
        if self.upload.is_some() || base.etag.is_empty() || self.size < PATCH_MIN_SIZE {
            return Ok(None);
        }
        let ranges = self.dirty.patch_ranges(self.size, PATCH_MAX_RANGES);
        let bytes: u64 = ranges.iter().map(|r| r.1).sum();
        if bytes.saturating_mul(PATCH_MAX_SHARE) > self.size {
            return Ok(None);
        }
        let mut body = Vec::with_capacity(bytes as usize);
        for &(offset, len) in &ranges {
            let (first, last) = ((offset / PART) as usize, ((offset + len - 1) / PART) as usize);
            if !(first..=last).all(|i| self.parts.get(i).is_some_and(|p| p.local)) {
                tracing::warn!(key = %self.key, offset, "changed bytes not staged; uploading whole parts");
                return Ok(None);
            }
            let at = body.len();
            body.resize(at + len as usize, 0);
            self.staging.read_exact_at(&mut body[at..], offset)?;
        }
        match store
            .patch(&base, self.size, &ranges, Bytes::from(body), meta)
            .await
        {
            Ok(info) => Ok(Some(info)),
            Err(FsError::NotSupported) => Ok(None),
            Err(FsError::Stale) => {
                tracing::warn!(key = %self.key, "the object changed since it was opened; committing the whole file");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    async fn commit_multipart(&mut self, store: &Store, meta: &Metadata) -> Result<ObjectInfo, FsError> {
        let upload = self.ensure_upload(store, meta).await?;
        let mut tasks: JoinSet<(usize, Result<String, FsError>)> = JoinSet::new();
        let mut etags = vec![String::new(); self.parts.len()];
        let remotes: Vec<Remote> = self.parts.iter().map(|p| p.remote.clone()).collect();
        let plan = plan_parts(&remotes, self.size, self.base_len);
        for (i, step) in plan.into_iter().enumerate() {
            while tasks.len() >= 2 * IN_FLIGHT {
                let (j, etag) = tasks
                    .join_next()
                    .await
                    .expect("tasks")
                    .map_err(|e| FsError::Io(e.to_string()))?;
                etags[j] = etag?;
            }
            let (store, key, upload) = (store.clone(), self.key.clone(), upload.clone());
            let number = i as u32 + 1;
            match step {
                PartPlan::Keep(etag) => etags[i] = etag,
                PartPlan::Copy { start, end } => {
                    let base = self
                        .base
                        .clone()
                        .ok_or(FsError::Io("no base to copy from".into()))?;
                    tasks.spawn(async move {
                        (
                            i,
                            store
                                .upload_part_copy(&key, &upload, number, &base, start, end)
                                .await,
                        )
                    });
                }
                PartPlan::Upload => {
                    self.load(&store, i).await?;
                    let body = self.part_bytes(i)?;
                    tasks.spawn(async move { (i, store.upload_part(&key, &upload, number, body).await) });
                }
            }
        }
        while let Some(joined) = tasks.join_next().await {
            let (j, etag) = joined.map_err(|e| FsError::Io(e.to_string()))?;
            etags[j] = etag?;
        }
        let (_, created_with) = self.upload.take().expect("upload exists");
        let mut info = store.complete_upload(&self.key, &upload, &etags).await?;
        if created_with != *meta {
            // Attributes changed while the upload was pending.
            let source = Source {
                key: self.key.clone(),
                version_id: info.version_id.clone(),
                etag: info.etag.clone(),
            };
            info.etag = store.set_metadata(&source, meta).await?;
            info.version_id = None;
        }
        Ok(info)
    }

    /// Drops a pending multipart upload (the file was deleted, or the
    /// daemon gives up on it).
    pub async fn abandon(&mut self, store: &Store) {
        self.uploads.abort_all();
        self.uploading.clear();
        self.tail = None;
        if let Some((id, _)) = self.upload.take() {
            store.abort_upload(&self.key, &id).await;
        }
    }
}

/// A piece of a read: bytes from the staging file, or a range of the base
/// object for the caller to read through the cache.
pub enum Span {
    Local(Bytes),
    Base(u64, u64),
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
