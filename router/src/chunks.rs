//! Chunk I/O against storage nodes: quorum writes and verified reads.
//!
//! A write sends the chunk to the three most preferred live nodes (rendezvous
//! order) at once, moving down the ranking when one fails. It returns once two
//! copies are durable and recorded in Postgres; the third finishes in the
//! background and is recorded when it lands (a chunk left with fewer replicas is
//! the repair worker's business). The third node is asked not to fsync: the
//! quorum's two copies are the durability promise, and the third reaches the
//! disk with the kernel's writeback instead of taking a third of the disk's
//! bandwidth from the write in progress. A read tries the recorded replicas, live ones
//! first, and falls back to the next on any error, including a checksum
//! failure reported by the node or found here.

use std::sync::Arc;
use std::time::Duration;

use bucketfs_common::background::Background;
use bucketfs_common::chunk_api::{self, ErrorCode, CRC32C_HEADER, ERROR_HEADER};
use bucketfs_common::{placement, ChunkId, Fsync, FSYNC_HEADER};
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};

use crate::error::{Error, Result};
use crate::membership::Membership;
use crate::meta::{ChunkReplicas, Meta, Piece, PieceLocation};
use crate::metrics::Metrics;

/// Replicas placed for every chunk.
pub const REPLICAS: usize = 3;
/// The longest a write waits past its quorum for the remaining replicas.
const THIRD_REPLICA_GRACE: Duration = Duration::from_millis(5);
/// Replicas that must be durable before a write is acknowledged.
pub const WRITE_QUORUM: usize = 2;
/// How long the collector waits on one replica's delete.
const REPLICA_DELETE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct ChunkIo {
    http: reqwest::Client,
    /// Where the replicas beyond the write quorum finish.
    background: Background,
    membership: Membership,
    meta: Meta,
    metrics: Arc<Metrics>,
}

impl ChunkIo {
    pub fn new(membership: Membership, meta: Meta, metrics: Arc<Metrics>, background: Background) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .build()
            .expect("http client builds");
        Self {
            http,
            background,
            membership,
            meta,
            metrics,
        }
    }

    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// Stores `data` as a new chunk on a write quorum and records it.
    pub async fn write(&self, data: Bytes) -> Result<Piece> {
        let id = ChunkId::random();
        let crc = crc32c::crc32c(&data);
        let live = self.membership.live_ids();
        let ranked: Vec<String> = placement::rank(&id, live.iter().map(String::as_str))
            .into_iter()
            .map(str::to_string)
            .collect();
        let mut candidates = ranked.into_iter();
        let mut in_flight = FuturesUnordered::new();
        for (rank, node) in candidates.by_ref().take(REPLICAS).enumerate() {
            let fsync = if rank < WRITE_QUORUM {
                Fsync::Now
            } else {
                Fsync::Deferred
            };
            in_flight.push(self.put_replica(node, id, crc, data.clone(), fsync));
        }
        let started = std::time::Instant::now();
        let (mut durable, mut deferred) = (Vec::new(), Vec::new());
        while durable.len() < WRITE_QUORUM {
            match in_flight.next().await {
                Some((node, Fsync::Now, Ok(()))) => durable.push(node),
                Some((node, Fsync::Deferred, Ok(()))) => deferred.push(node),
                Some((node, _, Err(e))) => {
                    tracing::warn!(%node, chunk = %id, error = %e, "replica write failed");
                    if let Some(next) = candidates.next() {
                        in_flight.push(self.put_replica(next, id, crc, data.clone(), Fsync::Now));
                    }
                }
                // Out of candidates: a node holding a deferred copy makes it durable.
                None => match deferred.pop() {
                    Some(node) => in_flight.push(self.put_replica(node, id, crc, data.clone(), Fsync::Now)),
                    None => {
                        return Err(Error::InsufficientReplicas {
                            live: durable.len(),
                            needed: WRITE_QUORUM,
                        });
                    }
                },
            }
        }
        durable.append(&mut deferred);
        let quorum = started.elapsed();
        // The last replica usually lands a moment after the quorum: waiting
        // that moment records it in the same statement, not another commit.
        let grace = tokio::time::sleep((quorum / 2).min(THIRD_REPLICA_GRACE));
        tokio::pin!(grace);
        while !in_flight.is_empty() {
            tokio::select! {
                done = in_flight.next() => match done {
                    Some((node, _, Ok(()))) => durable.push(node),
                    Some((node, _, Err(e))) => {
                        tracing::warn!(%node, chunk = %id, error = %e, "last replica failed; left for repair")
                    }
                    None => break,
                },
                _ = &mut grace => break,
            }
        }
        self.meta
            .record_chunk(&id.to_string(), data.len() as i64, crc, &durable)
            .await?;
        tracing::debug!(
            chunk = %id,
            bytes = data.len(),
            quorum_ms = quorum.as_secs_f64() * 1e3,
            recorded_ms = started.elapsed().as_secs_f64() * 1e3,
            "chunk written"
        );
        if !in_flight.is_empty() {
            let meta = self.meta.clone();
            self.background.task(async move {
                while let Some((node, _, result)) = in_flight.next().await {
                    match result {
                        Ok(()) => {
                            if let Err(e) = meta.add_replica(&id.to_string(), &node).await {
                                tracing::warn!(%node, chunk = %id, error = %e, "could not record third replica");
                            }
                        }
                        Err(e) => {
                            tracing::warn!(%node, chunk = %id, error = %e, "third replica failed; left for repair")
                        }
                    }
                }
            });
        }
        Ok(Piece {
            chunk_id: id.to_string(),
            chunk_offset: 0,
            length: data.len() as i64,
        })
    }

    fn put_replica(
        &self,
        node: String,
        id: ChunkId,
        crc: u32,
        data: Bytes,
        fsync: Fsync,
    ) -> impl std::future::Future<Output = (String, Fsync, Result<()>)> + Send + 'static {
        let http = self.http.clone();
        let addr = self.membership.addr(&node);
        async move {
            let result = put_to(&http, &node, addr, id, crc, data, fsync).await;
            (node, fsync, result)
        }
    }

    /// Reads bytes `[start, end)` of a piece's chunk range, trying each
    /// replica. The bytes come as the frames the node's response arrived in,
    /// checked but never joined: a GET streams them on as they are.
    pub async fn read(&self, piece: &PieceLocation, start: u64, end: u64) -> Result<Frames> {
        let mut replicas = piece.replicas.clone();
        replicas.sort_by_key(|n| !self.membership.is_live(n));
        let chunk_start = piece.chunk_offset as u64 + start;
        let chunk_end = piece.chunk_offset as u64 + end;
        let whole = chunk_start == 0 && chunk_end == piece.chunk_size as u64;
        for node in replicas {
            let Some(addr) = self.membership.addr(&node) else {
                continue;
            };
            let url = format!(
                "http://{addr}{}",
                chunk_api::range_path(&piece.chunk_id, chunk_start, chunk_end)
            );
            match self.fetch(&url).await {
                Ok(frames) if frames.len() as u64 != chunk_end - chunk_start => {
                    tracing::warn!(%node, chunk = %piece.chunk_id, "replica returned a short read");
                }
                Ok(frames) if whole && i64::from(frames.crc32c()) != piece.crc32c => {
                    Metrics::inc(&self.metrics.checksum_failures);
                    tracing::error!(%node, chunk = %piece.chunk_id, "chunk checksum mismatch; trying another replica");
                }
                Ok(frames) => return Ok(frames),
                Err(FetchError::Corrupt) => {
                    Metrics::inc(&self.metrics.checksum_failures);
                    tracing::error!(%node, chunk = %piece.chunk_id, "replica failed its checksum; trying another");
                    self.forget_replica(&piece.chunk_id, &node).await;
                }
                Err(FetchError::Missing) => {
                    tracing::warn!(%node, chunk = %piece.chunk_id, "replica missing; trying another");
                    self.forget_replica(&piece.chunk_id, &node).await;
                }
                Err(FetchError::Other(e)) => {
                    tracing::warn!(%node, chunk = %piece.chunk_id, error = %e, "replica read failed; trying another");
                }
            }
            Metrics::inc(&self.metrics.replica_read_fallbacks);
        }
        Err(Error::ChunkUnavailable(piece.chunk_id.clone()))
    }

    /// Copies a verified replica of `chunk` to nodes that lack one until it has
    /// `REPLICAS` live copies (or no live node is left to take one). Returns
    /// how many replicas were added.
    pub async fn repair(&self, chunk: &ChunkReplicas) -> Result<usize> {
        let id: ChunkId = chunk
            .id
            .parse()
            .map_err(|_| Error::Internal(format!("bad chunk id {}", chunk.id)))?;
        let source = PieceLocation {
            object_offset: 0,
            chunk_id: chunk.id.clone(),
            chunk_offset: 0,
            length: chunk.size,
            chunk_size: chunk.size,
            crc32c: chunk.crc32c,
            replicas: chunk.replicas.clone(),
        };
        let data = self.read(&source, 0, chunk.size as u64).await?.concat();
        let live = self.membership.live_ids();
        let targets: Vec<String> = placement::rank(&id, live.iter().map(String::as_str))
            .into_iter()
            .filter(|n| !chunk.replicas.iter().any(|r| r == n))
            .map(str::to_string)
            .collect();
        let mut needed = REPLICAS.saturating_sub(chunk.replicas.len());
        let mut added = 0;
        for node in targets {
            if needed == 0 {
                break;
            }
            let (node, _, result) = self
                .put_replica(node, id, chunk.crc32c as u32, data.clone(), Fsync::Now)
                .await;
            match result {
                Ok(()) => {
                    self.meta.add_replica(&chunk.id, &node).await?;
                    tracing::info!(chunk = %chunk.id, %node, "replica repaired");
                    needed -= 1;
                    added += 1;
                }
                Err(e) => tracing::warn!(chunk = %chunk.id, %node, error = %e, "repair write failed"),
            }
        }
        Ok(added)
    }

    /// Deletes the files of a collected chunk from the nodes holding them.
    /// Best effort: a node that is down keeps an orphan file.
    pub async fn delete_replicas(&self, chunk: &ChunkReplicas) {
        for node in &chunk.replicas {
            let Some(addr) = self.membership.addr(node) else {
                continue;
            };
            let url = format!("http://{addr}{}", chunk_api::chunk_path(&chunk.id));
            // Short: a node that died a moment ago is still listed, and its
            // port may already belong to something that never answers.
            if let Err(e) = self
                .http
                .delete(&url)
                .timeout(REPLICA_DELETE_TIMEOUT)
                .send()
                .await
                .and_then(|r| r.error_for_status())
            {
                tracing::warn!(chunk = %chunk.id, %node, error = %e, "could not delete a collected chunk");
            }
        }
    }

    async fn forget_replica(&self, chunk_id: &str, node: &str) {
        if let Err(e) = self.meta.drop_replica(chunk_id, node).await {
            tracing::warn!(error = %e, "could not drop a bad replica record");
        }
    }

    async fn fetch(&self, url: &str) -> Result<Frames, FetchError> {
        let mut resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| FetchError::Other(e.to_string()))?;
        let status = resp.status();
        if status.is_success() {
            let mut frames = Frames::default();
            while let Some(frame) = resp.chunk().await.map_err(|e| FetchError::Other(e.to_string()))? {
                frames.push(frame);
            }
            return Ok(frames);
        }
        let kind = resp
            .headers()
            .get(ERROR_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(ErrorCode::parse);
        Err(match (status.as_u16(), kind) {
            (_, Some(ErrorCode::Corrupt)) => FetchError::Corrupt,
            (404, _) => FetchError::Missing,
            _ => FetchError::Other(format!("status {status}")),
        })
    }
}

/// A body kept as the buffers it was received in, so that passing it on
/// copies nothing.
#[derive(Debug, Default)]
pub struct Frames(Vec<Bytes>);

impl Frames {
    fn push(&mut self, frame: Bytes) {
        if !frame.is_empty() {
            self.0.push(frame);
        }
    }

    pub fn len(&self) -> usize {
        self.0.iter().map(Bytes::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn crc32c(&self) -> u32 {
        self.0.iter().fold(0, |crc, f| crc32c::crc32c_append(crc, f))
    }

    /// One contiguous buffer (copied only when there is more than one frame).
    pub fn concat(self) -> Bytes {
        match self.0.len() {
            0 => Bytes::new(),
            1 => self.0.into_iter().next().unwrap_or_default(),
            _ => self.0.concat().into(),
        }
    }

    pub fn into_frames(self) -> Vec<Bytes> {
        self.0
    }
}

async fn put_to(
    http: &reqwest::Client,
    node: &str,
    addr: Option<String>,
    id: ChunkId,
    crc: u32,
    data: Bytes,
    fsync: Fsync,
) -> Result<()> {
    let addr = addr.ok_or_else(|| Error::Internal(format!("no address for {node}")))?;
    let resp = http
        .put(format!("http://{addr}{}", chunk_api::chunk_path(&id)))
        .header(CRC32C_HEADER, chunk_api::crc32c_value(crc))
        .header(FSYNC_HEADER, fsync.header_value())
        .body(data)
        .send()
        .await
        .map_err(|e| Error::Internal(format!("{node}: {e}")))?;
    if !resp.status().is_success() {
        return Err(Error::Internal(format!("{node} answered {}", resp.status())));
    }
    Ok(())
}

enum FetchError {
    Corrupt,
    Missing,
    Other(String),
}
