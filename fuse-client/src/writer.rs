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

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use tokio::task::JoinSet;

use crate::error::FsError;
use crate::s3::{ObjectInfo, Source, S3};
use crate::staging::Staging;

/// Part size: equal to the router's chunk size, so a copied part is whole
/// chunks by reference and a changed byte re-uploads one chunk.
pub const PART: u64 = 8 << 20;
/// S3's limit on parts per upload.
const MAX_PARTS: u64 = 10_000;
/// Parts uploading in the background at once (each holds `PART` bytes).
const IN_FLIGHT: usize = 4;

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
    /// Bumped by every change, so a background upload of older bytes is ignored.
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
    /// The pending multipart upload and the metadata it was created with.
    upload: Option<(String, HashMap<String, String>)>,
    uploads: JoinSet<(usize, u64, Result<String, FsError>)>,
    /// Metadata changed since the last commit.
    meta_changed: bool,
}

fn part_count(size: u64) -> usize {
    size.div_ceil(PART) as usize
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
            upload: None,
            uploads: JoinSet::new(),
            meta_changed: false,
        })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Something must be committed: data or metadata changed.
    pub fn dirty(&self) -> bool {
        self.meta_changed || self.base.is_none() || self.parts.iter().any(|p| p.remote != Remote::Base)
    }

    /// Metadata (mode, owner, times) changed and must be committed.
    pub fn touch_metadata(&mut self) {
        self.meta_changed = true;
    }

    /// The file was renamed to `key`: commits go there, and the base object
    /// moved with it.
    pub fn renamed(&mut self, key: &str) {
        self.key = key.to_string();
        if let Some(base) = &mut self.base {
            base.key = key.to_string();
        }
    }

    fn range(&self, i: usize) -> (u64, u64) {
        let start = i as u64 * PART;
        (start, (start + PART).min(self.size))
    }

    /// Brings part `i` into the staging file from the base object.
    async fn load(&mut self, s3: &S3, i: usize) -> Result<(), FsError> {
        if self.parts[i].local {
            return Ok(());
        }
        let (start, end) = self.range(i);
        let valid_end = end.min(self.base_len);
        if let Some(base) = &self.base {
            if valid_end > start {
                let data = s3.get_range(base, start, valid_end - start).await?;
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
        let part = &mut self.parts[i];
        part.remote = Remote::Stale;
        part.generation += 1;
    }

    /// Reads `len` bytes at `offset`: `Ok(None)` for each span the caller
    /// must read from the base object, in order.
    pub fn read_spans(&self, offset: u64, len: u64) -> Result<Vec<Span>, FsError> {
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
        s3: &Arc<S3>,
        meta: &HashMap<String, String>,
        offset: u64,
        data: &[u8],
    ) -> Result<(), FsError> {
        let end = offset + data.len() as u64;
        if end > MAX_PARTS * PART {
            return Err(FsError::TooBig);
        }
        if end > self.size {
            self.resize(s3, end).await?;
        }
        let first = (offset / PART) as usize;
        let last = ((end.max(1) - 1) / PART) as usize;
        for i in first..=last.min(self.parts.len().saturating_sub(1)) {
            let (start, stop) = self.range(i);
            let covered = offset <= start && end >= stop;
            if !covered {
                self.load(s3, i).await?;
            }
            self.parts[i].local = true;
            self.change(i);
        }
        self.staging.write_all_at(data, offset)?;
        // Parts the writer has moved past stream out now.
        for i in first..=last {
            if end >= (i as u64 + 1) * PART && self.parts.get(i).is_some_and(|p| p.remote == Remote::Stale) {
                self.start_upload(s3, meta, i).await?;
            }
        }
        Ok(())
    }

    /// Truncates or extends to `size` (new bytes read as zeros).
    pub async fn resize(&mut self, s3: &S3, size: u64) -> Result<(), FsError> {
        if size > MAX_PARTS * PART {
            return Err(FsError::TooBig);
        }
        if size < self.size {
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
            // The old last part gains bytes the base does not have.
            if !self.size.is_multiple_of(PART) {
                let i = self.parts.len() - 1;
                self.load(s3, i).await?;
                self.change(i);
            }
            self.base_len = self.base_len.min(self.size);
            self.staging.set_len(size)?;
            let fresh = Part {
                local: true,
                remote: Remote::Stale,
                generation: 1,
            };
            self.parts.resize(part_count(size), fresh);
        }
        self.size = size;
        Ok(())
    }

    /// Keeps the file readable after its object is deleted: every part local.
    pub async fn detach(&mut self, s3: &S3) -> Result<(), FsError> {
        for i in 0..self.parts.len() {
            self.load(s3, i).await?;
        }
        self.base = None;
        Ok(())
    }

    async fn ensure_upload(&mut self, s3: &S3, meta: &HashMap<String, String>) -> Result<String, FsError> {
        if let Some((id, _)) = &self.upload {
            return Ok(id.clone());
        }
        let id = s3.create_upload(&self.key, meta).await?;
        self.upload = Some((id.clone(), meta.clone()));
        Ok(id)
    }

    fn part_bytes(&self, i: usize) -> Result<Bytes, FsError> {
        let (start, end) = self.range(i);
        let mut buf = vec![0; (end - start) as usize];
        self.staging.read_exact_at(&mut buf, start)?;
        Ok(Bytes::from(buf))
    }

    async fn start_upload(
        &mut self,
        s3: &Arc<S3>,
        meta: &HashMap<String, String>,
        i: usize,
    ) -> Result<(), FsError> {
        while self.uploads.len() >= IN_FLIGHT {
            self.reap_one().await?;
        }
        let upload = self.ensure_upload(s3, meta).await?;
        let body = self.part_bytes(i)?;
        let generation = self.parts[i].generation;
        self.parts[i].remote = Remote::Uploading;
        let (s3, key) = (s3.clone(), self.key.clone());
        self.uploads.spawn(async move {
            let result = s3.upload_part(&key, &upload, i as u32 + 1, body).await;
            (i, generation, result)
        });
        Ok(())
    }

    /// Waits for one background upload and records it.
    async fn reap_one(&mut self) -> Result<(), FsError> {
        let Some(joined) = self.uploads.join_next().await else {
            return Ok(());
        };
        let (i, generation, result) = joined.map_err(|e| FsError::Io(e.to_string()))?;
        let Some(part) = self.parts.get_mut(i) else {
            return Ok(());
        };
        if part.generation != generation {
            return Ok(());
        }
        match result {
            Ok(etag) => part.remote = Remote::Uploaded(etag),
            Err(e) => {
                part.remote = Remote::Stale;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Commits the file as a new version of its object with `meta`; a
    /// `background` commit of a small file may wait to share a batch call.
    pub async fn commit(
        &mut self,
        s3: &Arc<S3>,
        meta: &HashMap<String, String>,
        background: bool,
    ) -> Result<ObjectInfo, FsError> {
        while !self.uploads.is_empty() {
            self.reap_one().await?;
        }
        let mut info = if self.upload.is_none() && self.parts.len() <= 1 {
            if !self.parts.is_empty() {
                self.load(s3, 0).await?;
            }
            let body = if self.parts.is_empty() {
                Bytes::new()
            } else {
                self.part_bytes(0)?
            };
            match background {
                true => s3.put_batched(&self.key, body, meta).await?,
                false => s3.put(&self.key, body, meta).await?,
            }
        } else if self.parts.len() <= 1 {
            // Shrunk to one part after streaming began: a plain PUT is simpler.
            if let Some((id, _)) = self.upload.take() {
                s3.abort_upload(&self.key, &id).await;
            }
            return Box::pin(self.commit(s3, meta, background)).await;
        } else {
            self.commit_multipart(s3, meta).await?
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
        self.meta_changed = false;
        Ok(info)
    }

    async fn commit_multipart(
        &mut self,
        s3: &Arc<S3>,
        meta: &HashMap<String, String>,
    ) -> Result<ObjectInfo, FsError> {
        let upload = self.ensure_upload(s3, meta).await?;
        let mut tasks: JoinSet<(usize, Result<String, FsError>)> = JoinSet::new();
        let mut etags = vec![String::new(); self.parts.len()];
        for i in 0..self.parts.len() {
            while tasks.len() >= 2 * IN_FLIGHT {
                let (j, etag) = tasks
                    .join_next()
                    .await
                    .expect("tasks")
                    .map_err(|e| FsError::Io(e.to_string()))?;
                etags[j] = etag?;
            }
            let (start, end) = self.range(i);
            let (s3, key, upload) = (s3.clone(), self.key.clone(), upload.clone());
            let number = i as u32 + 1;
            match self.parts[i].remote.clone() {
                Remote::Uploaded(etag) => etags[i] = etag,
                Remote::Base if end <= self.base_len => {
                    let base = self
                        .base
                        .clone()
                        .ok_or(FsError::Io("no base to copy from".into()))?;
                    tasks.spawn(async move {
                        (
                            i,
                            s3.upload_part_copy(&key, &upload, number, &base, start, end)
                                .await,
                        )
                    });
                }
                _ => {
                    self.load(&s3, i).await?;
                    let body = self.part_bytes(i)?;
                    tasks.spawn(async move { (i, s3.upload_part(&key, &upload, number, body).await) });
                }
            }
        }
        while let Some(joined) = tasks.join_next().await {
            let (j, etag) = joined.map_err(|e| FsError::Io(e.to_string()))?;
            etags[j] = etag?;
        }
        let (_, created_with) = self.upload.take().expect("upload exists");
        let mut info = s3.complete_upload(&self.key, &upload, &etags).await?;
        if created_with != *meta {
            // Attributes changed while the upload was pending.
            let source = Source {
                key: self.key.clone(),
                version_id: info.version_id.clone(),
                etag: info.etag.clone(),
            };
            info.etag = s3.set_metadata(&source, meta).await?;
            info.version_id = None;
        }
        Ok(info)
    }

    /// Drops a pending multipart upload (the file was deleted, or the
    /// daemon gives up on it).
    pub async fn abandon(&mut self, s3: &S3) {
        self.uploads.abort_all();
        if let Some((id, _)) = self.upload.take() {
            s3.abort_upload(&self.key, &id).await;
        }
    }
}

/// A piece of a read: bytes from the staging file, or a range of the base
/// object for the caller to read through the cache.
pub enum Span {
    Local(Bytes),
    Base(u64, u64),
}
