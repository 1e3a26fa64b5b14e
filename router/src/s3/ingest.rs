//! Turning a request body into chunks.
//!
//! The body is cut into `CHUNK_SIZE` chunks as it arrives; up to
//! `WRITES_IN_FLIGHT` chunks replicate in parallel while the next ones are
//! read, so memory per request stays bounded (a few chunks) however large the
//! object. The MD5 of the whole body is computed on the way for the ETag and
//! Content-MD5 check.

use std::collections::VecDeque;

use bytes::BytesMut;
use futures::StreamExt;
use md5::{Digest, Md5};
use s3s::dto::StreamingBlob;
use tokio::task::JoinHandle;

use crate::chunks::ChunkIo;
use crate::error::{Error, Result};
use crate::meta::Piece;
use crate::metrics::Metrics;

/// Largest chunk the router writes: one 8 MiB chunk per default-sized part.
pub const CHUNK_SIZE: usize = 8 * 1024 * 1024;
const WRITES_IN_FLIGHT: usize = 4;
/// S3's limit for one PUT body or one part.
pub const MAX_BODY_BYTES: u64 = 5 * 1024 * 1024 * 1024;

pub struct Ingested {
    pub pieces: Vec<Piece>,
    pub size: i64,
    pub md5: [u8; 16],
}

impl Ingested {
    pub fn etag(&self) -> String {
        hex::encode(self.md5)
    }
}

/// Reads a body of at most `MAX_BODY_BYTES` (`declared` is its Content-Length,
/// when sent) into replicated chunks.
pub async fn ingest(
    io: &ChunkIo,
    metrics: &Metrics,
    body: Option<StreamingBlob>,
    declared: Option<i64>,
) -> Result<Ingested> {
    if declared.is_some_and(|n| n as u64 > MAX_BODY_BYTES) {
        return Err(Error::EntityTooLarge(MAX_BODY_BYTES));
    }
    let mut md5 = Md5::new();
    let mut size = 0i64;
    let mut buf = BytesMut::new();
    let mut writes = Writes {
        io: io.clone(),
        pending: VecDeque::new(),
        done: Vec::new(),
    };
    if let Some(mut body) = body {
        while let Some(next) = body.next().await {
            let mut bytes = next.map_err(|e| Error::IncompleteBody(e.to_string()))?;
            md5.update(&bytes);
            size += bytes.len() as i64;
            if size as u64 > MAX_BODY_BYTES {
                return Err(Error::EntityTooLarge(MAX_BODY_BYTES));
            }
            Metrics::add(&metrics.bytes_in, bytes.len() as u64);
            while !bytes.is_empty() {
                if buf.capacity() == 0 {
                    buf.reserve(CHUNK_SIZE);
                }
                let take = (CHUNK_SIZE - buf.len()).min(bytes.len());
                buf.extend_from_slice(&bytes.split_to(take));
                if buf.len() == CHUNK_SIZE {
                    writes.push(buf.split().freeze()).await?;
                    Metrics::inc(&metrics.chunks_written);
                }
            }
        }
    }
    if !buf.is_empty() {
        writes.push(buf.freeze()).await?;
        Metrics::inc(&metrics.chunks_written);
    }
    Ok(Ingested {
        pieces: writes.finish().await?,
        size,
        md5: md5.finalize().into(),
    })
}

/// Chunk writes in flight, completed in order.
struct Writes {
    io: ChunkIo,
    pending: VecDeque<JoinHandle<Result<Piece>>>,
    done: Vec<Piece>,
}

impl Writes {
    async fn push(&mut self, data: bytes::Bytes) -> Result<()> {
        if self.pending.len() >= WRITES_IN_FLIGHT {
            self.wait_oldest().await?;
        }
        let io = self.io.clone();
        self.pending
            .push_back(tokio::spawn(async move { io.write(data).await }));
        Ok(())
    }

    async fn wait_oldest(&mut self) -> Result<()> {
        if let Some(handle) = self.pending.pop_front() {
            let piece = handle.await.map_err(|e| Error::Internal(e.to_string()))??;
            self.done.push(piece);
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<Vec<Piece>> {
        while !self.pending.is_empty() {
            self.wait_oldest().await?;
        }
        Ok(self.done)
    }
}

/// Checks a Content-MD5 header (base64) against the body's MD5.
pub fn check_content_md5(header: Option<&str>, md5: &[u8; 16]) -> Result<()> {
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
