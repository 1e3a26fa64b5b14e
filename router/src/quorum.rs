//! The replication rules of chunk I/O, apart from the wire: which nodes a
//! write goes to and when it is acknowledged, and how a read walks the
//! replicas. [`crate::chunks::ChunkIo`] runs them over the chunk client;
//! the tests here run them over scripted nodes.
//!
//! A write sends the chunk to the first [`REPLICAS`] nodes of its ranking at
//! once: the first [`WRITE_QUORUM`] with an fsync, the rest deferred (the
//! quorum's copies are the durability promise). A failed copy is replaced by
//! the next node of the ranking, asked to fsync. With no node left, a node
//! that holds a deferred copy is asked again, to fsync it. The write is
//! acknowledged once [`WRITE_QUORUM`] copies are durable. A copy that is
//! merely slow (a stopped node never answers) is not waited for past
//! [`SLOW_COPY`] after the first durable one: another copy is made durable.
//!
//! A read asks one replica at a time, and the next as well when one has not
//! answered within [`HEDGE_AFTER`].

use std::time::Duration;

use bucketfs_common::chunk_client::{ChunkError, Frames};
use bucketfs_common::Fsync;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;

/// Replicas placed for every chunk.
pub const REPLICAS: usize = 3;
/// Replicas that must be durable before a write is acknowledged.
pub const WRITE_QUORUM: usize = 2;
/// The longest a write waits past its quorum for the remaining replicas.
const LAST_REPLICA_GRACE: Duration = Duration::from_millis(5);
/// How long after a write's first durable copy the second may take before
/// another node is asked to make one (the deferred copy's holder, else the
/// next of the ranking): at least this, or ten times the first copy's time.
pub const SLOW_COPY: Duration = Duration::from_secs(1);
/// How long a replica may take to answer a read before the next replica is
/// asked as well. A healthy node reads an 8 MiB chunk in tens of
/// milliseconds; a stopped one never answers (its kernel still accepts the
/// connection), and the request timeout is a minute.
pub const HEDGE_AFTER: Duration = Duration::from_millis(500);

/// One replica's write as it lands: the node, how it was asked to sync,
/// and how it went.
pub type Landing = (String, Fsync, Result<(), ChunkError>);
/// A replica's write in flight.
pub type PutReplica = BoxFuture<'static, Landing>;

/// A write that reached its quorum.
pub struct Acknowledged {
    /// The nodes holding a copy now: every durable one, then the deferred.
    pub stored: Vec<String>,
    /// Writes still in flight when the write was acknowledged.
    pub pending: FuturesUnordered<PutReplica>,
    /// How long the quorum took.
    pub quorum_time: Duration,
}

/// A write that could not make [`WRITE_QUORUM`] copies durable.
#[derive(Debug, PartialEq, Eq)]
pub struct Shortfall {
    pub durable: usize,
}

/// Writes a chunk to the nodes of `ranked` (most preferred first) with
/// `put`, by the rules above. After the quorum it waits a moment (half the
/// quorum's time, at most [`LAST_REPLICA_GRACE`]) for the other copies, so
/// that one that lands right behind is recorded with the rest.
pub async fn write<P>(ranked: Vec<String>, put: P) -> Result<Acknowledged, Shortfall>
where
    P: Fn(String, Fsync) -> PutReplica,
{
    let mut candidates = ranked.into_iter();
    let mut in_flight = FuturesUnordered::new();
    for (rank, node) in candidates.by_ref().take(REPLICAS).enumerate() {
        let fsync = if rank < WRITE_QUORUM {
            Fsync::Now
        } else {
            Fsync::Deferred
        };
        in_flight.push(put(node, fsync));
    }
    let started = Instant::now();
    let (mut durable, mut deferred) = (Vec::new(), Vec::new());
    // Armed when the first durable copy lands: a copy still out long after
    // it (a stopped node) is not waited for; see `SLOW_COPY`.
    let slow = tokio::time::sleep(Duration::MAX / 4);
    tokio::pin!(slow);
    let (mut armed, mut moved_on) = (false, false);
    while durable.len() < WRITE_QUORUM {
        let landed = tokio::select! {
            landed = in_flight.next() => landed,
            _ = &mut slow, if armed && !moved_on => {
                moved_on = true;
                // Once per write, so a merely busy node costs at most one
                // surplus copy (trimmed later).
                let node = deferred.pop().or_else(|| candidates.next());
                if let Some(node) = node {
                    tracing::warn!(%node, "a replica is slow to land; making another copy durable");
                    in_flight.push(put(node, Fsync::Now));
                }
                continue;
            }
        };
        match landed {
            Some((node, Fsync::Now, Ok(()))) => {
                if !armed {
                    armed = true;
                    let wait = SLOW_COPY.max(started.elapsed() * 10);
                    slow.as_mut().reset(Instant::now() + wait);
                }
                durable.push(node)
            }
            Some((node, Fsync::Deferred, Ok(()))) => deferred.push(node),
            Some((node, _, Err(e))) => {
                tracing::warn!(%node, error = %e, "replica write failed");
                if let Some(next) = candidates.next() {
                    in_flight.push(put(next, Fsync::Now));
                }
            }
            // Out of candidates: a node holding a deferred copy makes it durable.
            None => match deferred.pop() {
                Some(node) => in_flight.push(put(node, Fsync::Now)),
                None => {
                    return Err(Shortfall {
                        durable: durable.len(),
                    })
                }
            },
        }
    }
    let quorum_time = started.elapsed();
    let mut stored = durable;
    stored.append(&mut deferred);
    let grace = tokio::time::sleep((quorum_time / 2).min(LAST_REPLICA_GRACE));
    tokio::pin!(grace);
    while !in_flight.is_empty() {
        tokio::select! {
            landed = in_flight.next() => match landed {
                Some((node, _, Ok(()))) => stored.push(node),
                Some((node, _, Err(e))) => tracing::warn!(%node, error = %e, "last replica failed; left for repair"),
                None => break,
            },
            _ = &mut grace => break,
        }
    }
    Ok(Acknowledged {
        stored,
        pending: in_flight,
        quorum_time,
    })
}

/// What a read found on the replicas it passed over.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReadReport {
    /// Replicas whose bytes failed a checksum, at the node or here.
    pub checksum_failures: usize,
    /// Replicas whose node answered that its copy is corrupt or gone, or
    /// sent bytes that match the chunk's crc32c but not its cryptographic
    /// hash (no accident does that: the node is lying). Their records are
    /// dropped, so that repair places a new copy. (A crc32c mismatch found
    /// here is only counted: the bytes may have been damaged on the way,
    /// and the node's scrubber judges its own disk.)
    pub lost: Vec<String>,
    /// Replicas tried and passed over for any reason.
    pub fallbacks: usize,
    /// Replicas asked because the one before was slow to answer.
    pub hedges: usize,
}

/// Which bytes a read asks of a chunk and how to check them.
pub struct ReadPlan {
    /// The chunk's replicas, in the order to try them.
    pub replicas: Vec<String>,
    /// The number of bytes the answer must hold.
    pub length: u64,
    /// The chunk's checksums, when the read covers the whole chunk.
    pub whole: Option<WholeChunk>,
}

/// What the bytes of a whole chunk must hash to.
pub struct WholeChunk {
    pub crc32c: u32,
    /// BLAKE3 (hex), for chunks recorded with one.
    pub content_hash: Option<String>,
}

/// Orders replicas for a read: live nodes first, ties in recorded order.
pub fn read_order(mut replicas: Vec<String>, is_live: impl Fn(&str) -> bool) -> Vec<String> {
    replicas.sort_by_key(|n| !is_live(n));
    replicas
}

/// Reads the chunk from its replicas in `plan`'s order until one answers
/// with the right bytes. A replica that has not answered within
/// [`HEDGE_AFTER`] (a node stopped or stalled: its kernel still accepts the
/// connection) does not hold the read up: the next replica is asked too,
/// and the first good answer wins; the slower request is dropped.
pub async fn read<F>(plan: ReadPlan, fetch: F) -> (Option<Frames>, ReadReport)
where
    F: Fn(String) -> BoxFuture<'static, Result<Frames, ChunkError>>,
{
    let mut report = ReadReport::default();
    let mut waiting = plan.replicas.into_iter();
    let mut asked = FuturesUnordered::new();
    let ask = |node: String| {
        let answer = fetch(node.clone());
        async move { (node, answer.await) }
    };
    if let Some(node) = waiting.next() {
        asked.push(ask(node));
    }
    let mut hedge = Box::pin(tokio::time::sleep(HEDGE_AFTER));
    loop {
        let (node, answer) = tokio::select! {
            Some(landed) = asked.next() => landed,
            _ = &mut hedge, if waiting.len() > 0 => {
                if let Some(node) = waiting.next() {
                    tracing::warn!(%node, "a replica is slow to answer; asking the next one too");
                    report.hedges += 1;
                    asked.push(ask(node));
                }
                hedge.as_mut().reset(Instant::now() + HEDGE_AFTER);
                continue;
            }
            else => return (None, report),
        };
        match answer {
            Ok(frames) if frames.len() as u64 != plan.length => {
                tracing::warn!(%node, got = frames.len(), want = plan.length, "replica returned a short read");
            }
            Ok(frames) if plan.whole.as_ref().is_some_and(|w| frames.crc32c() != w.crc32c) => {
                tracing::error!(%node, "chunk checksum mismatch; trying another replica");
                report.checksum_failures += 1;
            }
            Ok(frames)
                if plan
                    .whole
                    .as_ref()
                    .and_then(|w| w.content_hash.as_ref())
                    .is_some_and(|hash| frames.content_hash() != *hash) =>
            {
                tracing::error!(%node, "replica sent altered bytes under a matching crc32c; quarantined");
                report.checksum_failures += 1;
                report.lost.push(node);
            }
            Ok(frames) => return (Some(frames), report),
            Err(ChunkError::Corrupt) => {
                tracing::error!(%node, "replica failed its checksum; trying another");
                report.checksum_failures += 1;
                report.lost.push(node);
            }
            Err(ChunkError::Missing) => {
                tracing::warn!(%node, "replica missing; trying another");
                report.lost.push(node);
            }
            Err(ChunkError::Failed(e)) => {
                tracing::warn!(%node, error = %e, "replica read failed; trying another");
            }
        }
        report.fallbacks += 1;
        // A failed answer asks the next replica at once (unless a hedge
        // already did and is still on its way).
        if asked.is_empty() {
            match waiting.next() {
                Some(node) => asked.push(ask(node)),
                None => return (None, report),
            }
            hedge.as_mut().reset(Instant::now() + HEDGE_AFTER);
        }
    }
}

#[cfg(test)]
#[path = "quorum_tests.rs"]
mod tests;
