//! Compaction: patches leave a version's chunk map in many small pieces;
//! the worker rewrites each fragmented 8 MiB part of a current, quiet
//! version as one new chunk and swaps the map (`Meta::replace_map`), so
//! reads fetch whole chunks again and the small chunks become garbage. The
//! bytes and the version a client sees do not change. Parts with at most
//! two pieces are kept by reference.

use crate::chunk_map;
use crate::chunks::ChunkIo;
use crate::error::Result;
use crate::meta::{Meta, Piece};
use crate::metrics::Metrics;

/// A part is rewritten when it has more pieces than this.
pub const MAX_PIECES_PER_PART: usize = 2;
/// Versions compacted per worker pass.
const PER_PASS: i64 = 16;
/// A queued version is left alone until it has been current this long
/// (seconds): a file still being patched would be compacted for nothing.
const QUIET_SECS: f64 = 5.0;

/// The part size compaction works in: the chunk size.
const PART: u64 = bucketfs_common::extension::CHUNK_SIZE as u64;

/// Whether patches have left `map` fragmented enough to compact.
pub fn fragmented(map: &[Piece]) -> bool {
    chunk_map::most_pieces_per_part(map, PART) > MAX_PIECES_PER_PART
}

/// Compacts the queued versions that are due.
pub async fn pass(meta: &Meta, io: &ChunkIo, metrics: &Metrics, lease_secs: f64) -> Result<()> {
    for version in meta.compaction_candidates(QUIET_SECS, PER_PASS).await? {
        match compact(meta, io, version, lease_secs).await {
            Ok(rewritten) => {
                metrics.versions_compacted.inc();
                metrics.bytes_compacted.inc_by(rewritten);
            }
            Err(e) => tracing::warn!(version, error = %e, "compaction failed"),
        }
    }
    Ok(())
}

/// Rewrites the fragmented parts of `version`; answers the bytes rewritten.
async fn compact(meta: &Meta, io: &ChunkIo, version: i64, lease_secs: f64) -> Result<u64> {
    let old = meta.piece_refs(version).await?;
    let size = chunk_map::len(&old);
    let mut new = Vec::new();
    let mut rewritten = 0;
    let leases = io.leases();
    for start in (0..size).step_by(PART as usize) {
        let end = (start + PART).min(size);
        let part = chunk_map::slice(&old, start, end);
        if part.len() <= MAX_PIECES_PER_PART {
            new.extend(part);
            continue;
        }
        let mut bytes = Vec::with_capacity((end - start) as usize);
        for piece in meta.pieces(version, start, end).await? {
            let at = piece.object_offset as u64;
            let from = start.saturating_sub(at);
            let to = (end - at).min(piece.length as u64);
            bytes.extend_from_slice(&io.read(&piece, from, to).await?.concat());
        }
        let written = io.write(bytes.into()).await?;
        leases.hold(written.chunk_id.clone());
        rewritten += written.length as u64;
        new.push(written);
    }
    let new = chunk_map::coalesce(new);
    if !meta.replace_map(version, &old, &new, lease_secs).await? {
        tracing::info!(version, "map changed during compaction; left for another pass");
    }
    drop(leases);
    Ok(rewritten)
}
