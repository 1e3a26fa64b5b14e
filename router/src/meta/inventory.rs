//! What the worker's inventory of a node (`crate::inventory`) reads and
//! changes: the replicas recorded on a node, and the claim that lets it
//! remove files nothing records (see migration 0019 for why a tombstone
//! comes first).

use std::collections::HashSet;

use super::*;
use crate::error::Result;

/// Ids claimed per transaction: each takes an advisory lock.
const CLAIM_BATCH: usize = 500;

impl Meta {
    /// The chunks recorded as having a replica on `node`.
    pub async fn replicas_on(&self, node: &str) -> Result<HashSet<String>> {
        let ids: Vec<String> = sqlx::query_scalar("SELECT chunk_id FROM chunk_replicas WHERE node_id = $1")
            .bind(node)
            .fetch_all(&self.pool)
            .await?;
        Ok(ids.into_iter().collect())
    }

    /// Of `ids` (files on `node` old enough and unrecorded there when the
    /// inventory began), those still recorded on `node` by no row, whose
    /// files may go. A chunk with no row at all gets its tombstone in the
    /// same transaction, under the lock its first recording would take, so
    /// it can never be recorded after its files are gone.
    pub async fn claim_orphans(&self, node: &str, ids: &[String]) -> Result<Vec<String>> {
        let mut claimed = Vec::new();
        let mut sorted = ids.to_vec();
        sorted.sort();
        for batch in sorted.chunks(CLAIM_BATCH) {
            let mut tx = self.pool.begin().await?;
            sqlx::query(
                "SELECT pg_advisory_xact_lock(hashtextextended('chunk:' || u.id, 0))
                 FROM unnest($1::text[]) AS u(id) ORDER BY u.id",
            )
            .bind(batch)
            .execute(&mut *tx)
            .await?;
            let orphans: Vec<String> = sqlx::query_scalar(
                "SELECT u.id FROM unnest($1::text[]) AS u(id)
                 WHERE NOT EXISTS (SELECT 1 FROM chunk_replicas r WHERE r.chunk_id = u.id AND r.node_id = $2)",
            )
            .bind(batch)
            .bind(node)
            .fetch_all(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO swept_chunks (id)
                 SELECT u.id FROM unnest($1::text[]) AS u(id)
                 WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.id = u.id)
                 ON CONFLICT DO NOTHING",
            )
            .bind(&orphans)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            claimed.extend(orphans);
        }
        Ok(claimed)
    }

    /// Forgets tombstones older than `secs`: no write stalls that long.
    pub async fn prune_swept(&self, secs: f64) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM swept_chunks WHERE swept_at < now() - make_interval(secs => $1)")
                .bind(secs)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }
}
