//! Turning a request body into chunks.
//!
//! The body is cut into `CHUNK_SIZE` chunks as it arrives; up to
//! `WRITES_IN_FLIGHT` chunks replicate in parallel while the next ones are
//! read, so memory per request stays bounded (a few chunks) however large the
//! object. The MD5 of the whole body is computed on the way for the ETag and
//! Content-MD5 check, unless the client asks for an ETag that names the
//! chunks instead (`ETAG_FROM_CHUNKS`) and sends no Content-MD5: MD5 was a
//! tenth of all the CPU a large write cost.

use std::collections::VecDeque;

use bytes::BytesMut;
use futures::StreamExt;
use http::HeaderMap;
use md5::{Digest, Md5};
use s3s::dto::StreamingBlob;
use s3s::TrailingHeaders;
use tokio::task::JoinHandle;

use super::checksum::{Algorithm, Claim, Hasher};
use crate::chunks::{ChunkIo, Unrecorded};
use crate::error::{Error, Result};
use crate::lease::Leases;
use crate::meta::Piece;
use crate::metrics::Metrics;

/// Largest chunk the router writes: one 8 MiB chunk per default-sized part.
pub use bucketfs_common::extension::CHUNK_SIZE;
use bucketfs_common::extension::{ETAG_FROM_CHUNKS, ETAG_HEADER};
const WRITES_IN_FLIGHT: usize = 4;
/// S3's limit for one PUT body or one part.
pub const MAX_BODY_BYTES: u64 = 5 * 1024 * 1024 * 1024;

pub struct Ingested {
    pub pieces: Vec<Piece>,
    pub size: i64,
    /// The body's MD5, unless the client asked for an ETag from the chunks.
    pub md5: Option<[u8; 16]>,
    /// The verified flexible checksum, when the client sent one.
    pub checksum: Option<(Algorithm, String)>,
    /// Keeps the pieces' chunks from the collector until this is dropped,
    /// after the commit that names them.
    pub leases: Leases,
    /// The body's one chunk, when the caller records it with its commit
    /// (`Recording::WithCommit`).
    pub unrecorded: Option<Unrecorded>,
}

/// Who records a body's chunks.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Recording {
    /// Each chunk as soon as it is on a write quorum (parts, whose commit
    /// comes later, and bodies of many chunks, leased as they arrive).
    Now,
    /// A body of one chunk is recorded by the caller's commit, in the same
    /// transaction as its version: a small PUT's one Postgres commit.
    WithCommit,
}

impl Ingested {
    pub fn etag(&self) -> String {
        match self.md5 {
            Some(md5) => hex::encode(md5),
            None => {
                let mut ids = Md5::new();
                for piece in &self.pieces {
                    ids.update(piece.chunk_id.as_bytes());
                }
                hex::encode(ids.finalize())
            }
        }
    }

    /// The checksum as the `(crc32, crc32c, sha1, sha256)` fields of a response.
    pub fn checksum_fields(&self) -> ChecksumFields {
        let mut fields = ChecksumFields::default();
        if let Some((algorithm, value)) = &self.checksum {
            let slot = match algorithm {
                Algorithm::Crc32 => &mut fields.crc32,
                Algorithm::Crc32c => &mut fields.crc32c,
                Algorithm::Sha1 => &mut fields.sha1,
                Algorithm::Sha256 => &mut fields.sha256,
            };
            *slot = Some(value.clone());
        }
        fields
    }
}

#[derive(Default)]
pub struct ChecksumFields {
    pub crc32: Option<String>,
    pub crc32c: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
}

/// A request body and what the client claims about it.
pub struct Body<'a> {
    pub blob: Option<StreamingBlob>,
    /// Content-Length, when sent.
    pub declared: Option<i64>,
    /// Content-MD5 (base64), when sent.
    pub content_md5: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub trailers: Option<&'a TrailingHeaders>,
}

/// Reads a body of at most `MAX_BODY_BYTES` into replicated chunks, checking
/// its length, Content-MD5 and flexible checksum on the way. Any failure
/// leaves only unreferenced chunks (garbage), never a version.
pub async fn ingest(
    io: &ChunkIo,
    metrics: &Metrics,
    body: Body<'_>,
    recording: Recording,
) -> Result<Ingested> {
    if body.declared.is_some_and(|n| n as u64 > MAX_BODY_BYTES) {
        return Err(Error::EntityTooLarge(MAX_BODY_BYTES));
    }
    let claim = Claim::from_headers(body.headers);
    let mut hasher = claim.as_ref().map(|c| Hasher::new(c.algorithm));
    let etag_from_chunks = body.content_md5.is_none()
        && body
            .headers
            .get(ETAG_HEADER)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(ETAG_FROM_CHUNKS.as_bytes()));
    let mut md5 = (!etag_from_chunks).then(Md5::new);
    let mut size = 0i64;
    let mut buf = BytesMut::new();
    let mut writes = Writes {
        io: io.clone(),
        pending: VecDeque::new(),
        done: Vec::new(),
        leases: io.leases(),
    };
    if let Some(mut blob) = body.blob {
        while let Some(next) = blob.next().await {
            let mut bytes = next.map_err(|e| Error::IncompleteBody(e.to_string()))?;
            if let Some(md5) = md5.as_mut() {
                md5.update(&bytes);
            }
            if let Some(h) = hasher.as_mut() {
                h.update(&bytes);
            }
            size += bytes.len() as i64;
            if size as u64 > MAX_BODY_BYTES {
                return Err(Error::EntityTooLarge(MAX_BODY_BYTES));
            }
            metrics.bytes_in.inc_by(bytes.len() as u64);
            while !bytes.is_empty() {
                if buf.capacity() == 0 {
                    // A small body gets a small buffer, not a whole chunk's.
                    let left = body
                        .declared
                        .map_or(CHUNK_SIZE, |n| (n - size).max(0) as usize + bytes.len());
                    buf.reserve(left.clamp(1, CHUNK_SIZE));
                }
                let take = (CHUNK_SIZE - buf.len()).min(bytes.len());
                buf.extend_from_slice(&bytes.split_to(take));
                if buf.len() == CHUNK_SIZE {
                    writes.push(buf.split().freeze()).await?;
                    metrics.chunks_written.inc();
                }
            }
        }
    }
    let mut unrecorded = None;
    if !buf.is_empty() {
        if recording == Recording::WithCommit && writes.is_empty() {
            unrecorded = Some(io.write_unrecorded(buf.freeze()).await?);
        } else {
            writes.push(buf.freeze()).await?;
        }
        metrics.chunks_written.inc();
    }
    if let Some(declared) = body.declared {
        if declared != size {
            return Err(Error::IncompleteBody(format!("got {size} of {declared} bytes")));
        }
    }
    let md5: Option<[u8; 16]> = md5.map(|m| m.finalize().into());
    if let Some(md5) = &md5 {
        check_content_md5(body.content_md5, md5)?;
    }
    let checksum = match (claim, hasher) {
        (Some(claim), Some(hasher)) => {
            let actual = hasher.finish();
            let header = claim.algorithm.header();
            let expected = claim.value.or_else(|| {
                body.trailers
                    .and_then(|t| t.read(|h| h.get(header).and_then(|v| v.to_str().ok()).map(str::to_string)))
                    .flatten()
            });
            match expected {
                Some(expected) if expected.trim() != actual => {
                    return Err(Error::BadChecksum {
                        header,
                        expected,
                        actual,
                    });
                }
                Some(_) => Some((claim.algorithm, actual)),
                None => {
                    return Err(Error::InvalidArgument(format!(
                        "{header} was announced but not sent"
                    )))
                }
            }
        }
        _ => None,
    };
    let (mut pieces, leases) = writes.finish().await?;
    pieces.extend(unrecorded.as_ref().map(Unrecorded::piece));
    Ok(Ingested {
        pieces,
        size,
        md5,
        checksum,
        leases,
        unrecorded,
    })
}

/// Chunk writes in flight, completed in order.
struct Writes {
    io: ChunkIo,
    pending: VecDeque<JoinHandle<Result<Piece>>>,
    done: Vec<Piece>,
    leases: Leases,
}

impl Writes {
    /// No chunk written or in flight yet.
    fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.done.is_empty()
    }

    async fn push(&mut self, data: bytes::Bytes) -> Result<()> {
        if self.pending.len() >= WRITES_IN_FLIGHT {
            self.wait_oldest().await?;
        }
        let (io, leases) = (self.io.clone(), self.leases.clone());
        self.pending
            .push_back(tokio::spawn(bucketfs_common::request_id::inherit(async move {
                let piece = io.write(data).await?;
                // Leased from the moment it is recorded, however long the rest
                // of the body takes to arrive.
                leases.hold(piece.chunk_id.clone());
                Ok(piece)
            })));
        Ok(())
    }

    async fn wait_oldest(&mut self) -> Result<()> {
        if let Some(handle) = self.pending.pop_front() {
            let piece = handle.await.map_err(|e| Error::Internal(e.to_string()))??;
            self.done.push(piece);
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<(Vec<Piece>, Leases)> {
        while !self.pending.is_empty() {
            self.wait_oldest().await?;
        }
        Ok((self.done, self.leases))
    }
}

/// Checks a Content-MD5 header (base64) against the body's MD5.
pub(super) fn check_content_md5(header: Option<&str>, md5: &[u8; 16]) -> Result<()> {
    use base64::Engine;
    let Some(header) = header else { return Ok(()) };
    let want = base64::engine::general_purpose::STANDARD
        .decode(header.trim())
        .map_err(|_| Error::InvalidDigest)?;
    if want.len() != 16 {
        return Err(Error::InvalidDigest);
    }
    if want != md5 {
        return Err(Error::BadDigest);
    }
    Ok(())
}
