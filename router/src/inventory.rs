//! The worker's inventory of each live node: what the node holds, against
//! what Postgres records it holds.
//!
//! - A replica recorded on the node whose file the node does not have (its
//!   disk was wiped, or the file quarantined) loses its row, so repair makes
//!   a new copy elsewhere.
//! - A file the node has that no row records there (a router killed
//!   mid-PUT, a node that was down while its chunk was collected, a delete
//!   that failed), older than `--orphan-grace-secs`, is removed.
//!
//! The recorded replicas are read before the node is asked: a replica is
//! recorded only after its file is written, so a file missing from the
//! answer was missing after its row existed. An orphan's removal is claimed
//! in Postgres first (`Meta::claim_orphans`): a chunk with no row at all is
//! tombstoned so that a write stalled past the grace can never record it
//! afterwards (migration 0019).

use std::time::Duration;

use crate::chunks::ChunkIo;
use crate::error::Result;
use crate::meta::Meta;
use crate::metrics::Metrics;

/// What one node's inventory changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reconciled {
    pub stale_rows: usize,
    pub orphans: usize,
}

/// Tombstones of swept chunks are kept this long.
const TOMBSTONE_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Takes the inventory of every live node.
pub async fn pass(meta: &Meta, io: &ChunkIo, metrics: &Metrics, orphan_grace: Duration) -> Result<()> {
    for node in io.membership().live_ids() {
        match reconcile(meta, io, &node, orphan_grace).await {
            Ok(done) => {
                metrics.stale_replica_rows.inc_by(done.stale_rows as u64);
                metrics.orphans_removed.inc_by(done.orphans as u64);
                if done != Reconciled::default() {
                    tracing::info!(%node, stale_rows = done.stale_rows, orphans = done.orphans, "inventory reconciled");
                }
            }
            Err(e) => tracing::warn!(%node, error = %e, "inventory failed"),
        }
    }
    meta.prune_swept(TOMBSTONE_AGE.as_secs_f64()).await?;
    Ok(())
}

async fn reconcile(meta: &Meta, io: &ChunkIo, node: &str, orphan_grace: Duration) -> Result<Reconciled> {
    let recorded = meta.replicas_on(node).await?;
    let held = io.inventory(node).await?;
    let mut done = Reconciled::default();
    let on_disk: std::collections::HashSet<&str> = held.iter().map(|(id, _)| id.as_str()).collect();
    for id in recorded.iter().filter(|id| !on_disk.contains(id.as_str())) {
        meta.drop_replica(id, node).await?;
        tracing::warn!(chunk = %id, %node, "replica recorded but missing on its node: row dropped for repair");
        done.stale_rows += 1;
    }
    let candidates: Vec<String> = held
        .into_iter()
        .filter(|(id, age)| *age >= orphan_grace.as_secs() && !recorded.contains(id))
        .map(|(id, _)| id)
        .collect();
    if candidates.is_empty() {
        return Ok(done);
    }
    for id in meta.claim_orphans(node, &candidates).await? {
        io.delete_file(node, &id).await;
        done.orphans += 1;
    }
    Ok(done)
}
