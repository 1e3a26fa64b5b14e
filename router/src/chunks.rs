//! Chunk I/O against storage nodes: quorum writes and verified reads, with
//! the replication rules of [`crate::quorum`] run over the chunk client.
//!
//! A write returns once two copies are durable and recorded in Postgres; the
//! third finishes in the background and is recorded when it lands (a chunk
//! left with fewer replicas is the repair worker's business). The third node
//! is asked not to fsync: the quorum's two copies are the durability promise,
//! and the third reaches the disk with the kernel's writeback instead of
//! taking a third of the disk's bandwidth from the write in progress. A read
//! tries the recorded replicas, live ones first, and falls back to the next
//! on any error, including a checksum failure reported by the node or found
//! here.

use std::sync::Arc;

use bucketfs_common::background::Background;
pub use bucketfs_common::chunk_client::Frames;
use bucketfs_common::chunk_client::{ChunkClient, ChunkError};
use bucketfs_common::peer_auth::{self, ClusterSecret};
use bucketfs_common::{placement, ChunkId, Fsync};
use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt};
use futures::stream::StreamExt;

use crate::error::{Error, Result};
use crate::lease::Leases;
use crate::membership::Membership;
use crate::meta::{ChunkReplicas, Meta, NewChunk, Piece, PieceLocation};
use crate::metrics::Metrics;
use crate::quorum::{self, PutReplica, ReadPlan, Shortfall, WholeChunk, REPLICAS, WRITE_QUORUM};

#[derive(Clone)]
pub struct ChunkIo {
    client: ChunkClient,
    /// Where the replicas beyond the write quorum finish.
    background: Background,
    membership: Membership,
    meta: Meta,
    metrics: Arc<Metrics>,
    /// How long a new chunk is leased to its writer (`--gc-grace-secs`).
    lease_secs: f64,
}

impl ChunkIo {
    pub fn new(
        membership: Membership,
        meta: Meta,
        metrics: Arc<Metrics>,
        background: Background,
        secret: ClusterSecret,
        lease_secs: f64,
    ) -> Self {
        Self {
            client: ChunkClient::new(secret).observed_by(metrics.node_requests.clone()),
            background,
            membership,
            meta,
            metrics,
            lease_secs,
        }
    }

    /// Leases for the chunks of one request, renewed until it commits them.
    pub fn leases(&self) -> Leases {
        Leases::new(self.meta.clone(), self.lease_secs)
    }

    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// Stores `data` as a new chunk on a write quorum and records it.
    pub async fn write(&self, data: Bytes) -> Result<Piece> {
        let written = self.write_unrecorded(data).await?;
        record(&self.meta, written.chunk()).await?;
        Ok(written.recorded())
    }

    /// Stores `data` as a new chunk on a write quorum; the caller records it
    /// (with the version that names it, say) and says so, else it is
    /// recorded as garbage when the value drops (see `Unrecorded`).
    pub async fn write_unrecorded(&self, data: Bytes) -> Result<Unrecorded> {
        let id = ChunkId::random();
        let crc = crc32c::crc32c(&data);
        let hash: Arc<str> = peer_auth::content_hash(&data).into();
        let live = self.membership.placement_ids();
        let ranked = placement::rank(&id, live.iter().map(String::as_str))
            .into_iter()
            .map(str::to_string)
            .collect();
        let written = quorum::write(ranked, |node, fsync| {
            self.put_replica(node, id, (crc, hash.clone()), data.clone(), fsync)
        })
        .await
        .map_err(|Shortfall { durable }| Error::InsufficientReplicas {
            live: durable,
            needed: WRITE_QUORUM,
        })?;
        tracing::debug!(
            chunk = %id,
            bytes = data.len(),
            quorum_ms = written.quorum_time.as_secs_f64() * 1e3,
            "chunk written"
        );
        let (recorded, is_recorded) = tokio::sync::oneshot::channel();
        let mut pending = written.pending;
        if !pending.is_empty() {
            let meta = self.meta.clone();
            self.background.task(async move {
                // Its row must exist before a replica can be added to it.
                let mut is_recorded = Some(is_recorded);
                while let Some((node, _, result)) = pending.next().await {
                    if let Some(wait) = is_recorded.take() {
                        if wait.await.is_err() {
                            return;
                        }
                    }
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
        Ok(Unrecorded {
            chunk: NewChunk {
                id: id.to_string(),
                size: data.len() as i64,
                crc32c: crc,
                content_hash: hash,
                replicas: written.stored,
                lease_secs: self.lease_secs,
            },
            meta: self.meta.clone(),
            background: self.background.clone(),
            recorded: Some(recorded),
        })
    }

    /// Sends one replica; `sums` are the chunk's crc32c and content hash.
    fn put_replica(
        &self,
        node: String,
        id: ChunkId,
        sums: (u32, Arc<str>),
        data: Bytes,
        fsync: Fsync,
    ) -> PutReplica {
        let client = self.client.clone();
        let addr = self.membership.addr(&node);
        async move {
            let (crc, hash) = sums;
            let result = match addr {
                Some(addr) => client.put(&addr, &id, crc, &hash, data, fsync).await,
                None => Err(ChunkError::Failed(format!("no address for {node}"))),
            };
            (node, fsync, result)
        }
        .boxed()
    }

    /// Reads bytes `[start, end)` of a piece's chunk range, trying each
    /// replica. The bytes come as the frames the node's response arrived in,
    /// checked but never joined: a GET streams them on as they are.
    pub async fn read(&self, piece: &PieceLocation, start: u64, end: u64) -> Result<Frames> {
        let chunk_start = piece.chunk_offset as u64 + start;
        let chunk_end = piece.chunk_offset as u64 + end;
        let whole = chunk_start == 0 && chunk_end == piece.chunk_size as u64;
        let plan = ReadPlan {
            replicas: quorum::read_order(piece.replicas.clone(), |n| self.membership.is_live(n)),
            length: chunk_end - chunk_start,
            whole: whole.then(|| WholeChunk {
                crc32c: piece.crc32c as u32,
                content_hash: piece.content_hash.clone(),
            }),
        };
        let (frames, report) = quorum::read(plan, self.fetch(&piece.chunk_id, chunk_start, chunk_end)).await;
        for _ in 0..report.checksum_failures {
            self.metrics.checksum_failures.inc();
        }
        for _ in 0..report.fallbacks {
            self.metrics.replica_read_fallbacks.inc();
        }
        self.metrics.replica_read_hedges.inc_by(report.hedges as u64);
        for node in &report.lost {
            if let Err(e) = self.meta.drop_replica(&piece.chunk_id, node).await {
                tracing::warn!(chunk = %piece.chunk_id, %node, error = %e, "could not drop a bad replica record");
            }
        }
        frames.ok_or_else(|| Error::ChunkUnavailable(piece.chunk_id.clone()))
    }

    /// Copies a verified replica of `chunk` to nodes that lack one until it has
    /// `REPLICAS` live copies (or no live node is left to take one). Returns
    /// how many replicas were added.
    pub async fn repair(&self, chunk: &ChunkReplicas) -> Result<usize> {
        let id: ChunkId = chunk
            .id
            .parse()
            .map_err(|_| Error::Internal(format!("bad chunk id {}", chunk.id)))?;
        let source = whole_chunk(chunk);
        let (data, sums) = self.verified_bytes(&source, chunk).await?;
        let live = self.membership.placement_ids();
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
                .put_replica(node, id, sums.clone(), data.clone(), Fsync::Now)
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

    /// The whole of `chunk` (whose replicas `source` lists), read from a
    /// replica and verified against its recorded hash (or, a chunk from
    /// before hashes were recorded, its crc32c only), with its sums.
    async fn verified_bytes(
        &self,
        source: &PieceLocation,
        chunk: &ChunkReplicas,
    ) -> Result<(Bytes, (u32, Arc<str>))> {
        let data = self.read(source, 0, chunk.size as u64).await?.concat();
        let sums: (u32, Arc<str>) = match &chunk.content_hash {
            Some(hash) => (chunk.crc32c as u32, hash.as_str().into()),
            None => (chunk.crc32c as u32, peer_auth::content_hash(&data).into()),
        };
        Ok((data, sums))
    }

    /// Moves `chunk`'s replica from node `from` to node `to`: a verified
    /// copy is made durable on `to` and recorded before `from`'s row and
    /// file go, so the chunk never has fewer replicas than before.
    pub async fn move_replica(&self, chunk: &ChunkReplicas, from: &str, to: &str) -> Result<()> {
        let id: ChunkId = chunk
            .id
            .parse()
            .map_err(|_| Error::Internal(format!("bad chunk id {}", chunk.id)))?;
        let source = whole_chunk(chunk);
        let (data, sums) = self.verified_bytes(&source, chunk).await?;
        let (_, _, result) = self.put_replica(to.to_string(), id, sums, data, Fsync::Now).await;
        result.map_err(|e| Error::Internal(format!("moving chunk {} to {to}: {e}", chunk.id)))?;
        self.meta.add_replica(&chunk.id, to).await?;
        self.meta.drop_replica(&chunk.id, from).await?;
        self.delete_file(from, &chunk.id).await;
        Ok(())
    }

    /// Removes the replicas of `chunk` past `REPLICAS` (a node came back
    /// after its replicas were made again elsewhere): the holders that rank
    /// last for the chunk lose theirs, so placement converges on its
    /// ranking. Only once every replica kept has answered a whole read that
    /// matched the chunk's checksums: the copies kept are good ones, and a
    /// bad one leaves the surplus in place for repair to sort out. Returns
    /// how many replicas went.
    pub async fn trim(&self, chunk: &ChunkReplicas) -> Result<usize> {
        let id: ChunkId = chunk
            .id
            .parse()
            .map_err(|_| Error::Internal(format!("bad chunk id {}", chunk.id)))?;
        let mut ranked = placement::rank(&id, chunk.replicas.iter().map(String::as_str));
        // A draining node's replica is the first to go.
        ranked.sort_by_key(|node| self.membership.is_draining(node));
        if ranked.len() <= REPLICAS {
            return Ok(0);
        }
        let (keep, surplus) = ranked.split_at(REPLICAS);
        for node in keep {
            if !self.verified_on(chunk, node).await {
                tracing::warn!(chunk = %chunk.id, %node, "a replica to keep failed its check: surplus kept");
                return Ok(0);
            }
        }
        for node in surplus {
            self.meta.drop_replica(&chunk.id, node).await?;
            if let Some(addr) = self.membership.addr(node) {
                if let Err(e) = self.client.delete(&addr, &chunk.id).await {
                    tracing::warn!(chunk = %chunk.id, %node, error = %e, "could not delete a surplus replica's file");
                }
            }
            tracing::info!(chunk = %chunk.id, %node, "surplus replica removed");
        }
        Ok(surplus.len())
    }

    /// Reads bytes `[start, end)` of chunk `id` from a node, for `quorum::read`.
    fn fetch(
        &self,
        id: &str,
        start: u64,
        end: u64,
    ) -> impl Fn(String) -> BoxFuture<'static, Result<Frames, ChunkError>> + '_ {
        let id = id.to_string();
        move |node| {
            let client = self.client.clone();
            let addr = self.membership.addr(&node);
            let id = id.clone();
            async move {
                let addr = addr.ok_or_else(|| ChunkError::Failed(format!("no address for {node}")))?;
                client.get(&addr, &id, start, end).await
            }
            .boxed()
        }
    }

    /// Does `node` hold the whole of `chunk`, matching its checksums?
    async fn verified_on(&self, chunk: &ChunkReplicas, node: &str) -> bool {
        let plan = ReadPlan {
            replicas: vec![node.to_string()],
            length: chunk.size as u64,
            whole: Some(WholeChunk {
                crc32c: chunk.crc32c as u32,
                content_hash: chunk.content_hash.clone(),
            }),
        };
        let (frames, _) = quorum::read(plan, self.fetch(&chunk.id, 0, chunk.size as u64)).await;
        frames.is_some()
    }

    /// What `node` holds: chunk ids and their files' ages in seconds.
    pub async fn inventory(&self, node: &str) -> Result<Vec<(String, u64)>> {
        let addr = self
            .membership
            .addr(node)
            .ok_or_else(|| Error::Internal(format!("no address for {node}")))?;
        self.client
            .inventory(&addr)
            .await
            .map_err(|e| Error::Internal(format!("inventory of {node}: {e}")))
    }

    /// Removes chunk `id`'s file from `node`; best effort (logged).
    pub async fn delete_file(&self, node: &str, id: &str) {
        let Some(addr) = self.membership.addr(node) else {
            return;
        };
        if let Err(e) = self.client.delete(&addr, id).await {
            tracing::warn!(chunk = %id, %node, error = %e, "could not delete a chunk file");
        }
    }

    /// Deletes the files of a collected chunk from the nodes holding them.
    /// Best effort: a node that is down keeps an orphan file.
    pub async fn delete_replicas(&self, chunk: &ChunkReplicas) {
        for node in &chunk.replicas {
            let Some(addr) = self.membership.addr(node) else {
                continue;
            };
            if let Err(e) = self.client.delete(&addr, &chunk.id).await {
                tracing::warn!(chunk = %chunk.id, %node, error = %e, "could not delete a collected chunk");
            }
        }
    }
}

/// A chunk on a write quorum whose row is not written yet. Whoever records
/// it says so with `recorded`; dropped unrecorded (its commit failed, or the
/// request was cancelled), it is recorded in the background as leased
/// garbage, so the collector frees its files as it frees any other. Replicas
/// past the quorum are recorded only after the chunk is.
pub struct Unrecorded {
    chunk: NewChunk,
    meta: Meta,
    background: Background,
    recorded: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Unrecorded {
    pub fn chunk(&self) -> &NewChunk {
        &self.chunk
    }

    /// The whole chunk as a piece of an object.
    pub fn piece(&self) -> Piece {
        Piece {
            chunk_id: self.chunk.id.clone(),
            chunk_offset: 0,
            length: self.chunk.size,
        }
    }

    /// The chunk's row is written (a commit recorded it).
    pub fn recorded(mut self) -> Piece {
        if let Some(recorded) = self.recorded.take() {
            let _ = recorded.send(());
        }
        self.piece()
    }
}

impl Drop for Unrecorded {
    fn drop(&mut self) {
        let Some(recorded) = self.recorded.take() else {
            return;
        };
        let (meta, c) = (self.meta.clone(), self.chunk.clone());
        self.background.task(async move {
            match record(&meta, &c).await {
                Ok(()) => {
                    let _ = recorded.send(());
                }
                Err(e) => tracing::warn!(chunk = %c.id, error = %e, "could not record an uncommitted chunk"),
            }
        });
    }
}

/// Writes the row of chunk `c` and its replicas, leased.
async fn record(meta: &Meta, c: &NewChunk) -> Result<()> {
    let sums = (c.crc32c, &*c.content_hash);
    meta.record_chunk(&c.id, c.size, sums, &c.replicas, c.lease_secs)
        .await
}

/// A whole chunk, as a piece to read from its replicas.
fn whole_chunk(chunk: &ChunkReplicas) -> PieceLocation {
    PieceLocation {
        object_offset: 0,
        chunk_id: chunk.id.clone(),
        chunk_offset: 0,
        length: chunk.size,
        chunk_size: chunk.size,
        crc32c: chunk.crc32c,
        content_hash: chunk.content_hash.clone(),
        replicas: chunk.replicas.clone(),
    }
}
