//! Chunks, their replicas and the storage nodes: what repair, garbage
//! collection and placement read and record.

use std::collections::HashMap;

use bucketfs_common::membership::NodeInfo;
use sqlx::Row;

use super::sql::UNREFERENCED_CHUNK;
use super::*;
use crate::error::Result;
use crate::quorum::REPLICAS;

/// `holders(node_id)`: the nodes any replica is recorded on, found by
/// skipping through the `chunk_replicas_node` index (one probe per node,
/// not a scan of the replicas). Opens a `WITH RECURSIVE`.
pub(super) const HOLDERS: &str = "holders(node_id) AS (
        (SELECT node_id FROM chunk_replicas ORDER BY node_id LIMIT 1)
        UNION ALL
        SELECT (SELECT r.node_id FROM chunk_replicas r WHERE r.node_id > h.node_id ORDER BY r.node_id LIMIT 1)
        FROM holders h WHERE h.node_id IS NOT NULL)";

impl Meta {
    /// Records a chunk durably stored on `replicas`, with its crc32c and
    /// BLAKE3 `content_hash` (hex), leased to its writer for `lease_secs`.
    pub async fn record_chunk(
        &self,
        id: &str,
        size: i64,
        sums: (u32, &str),
        replicas: &[String],
        lease_secs: f64,
    ) -> Result<()> {
        let (crc, content_hash) = sums;
        // One statement, so one round trip and atomic without BEGIN/COMMIT.
        // Recorded with other than the replicas wanted: repair or trim
        // looks at it (`chunk_checks`).
        sqlx::query(
            "WITH chunk AS (
                 INSERT INTO chunks (id, size, crc32c, content_hash, lease_until)
                 VALUES ($1, $2, $3, $4, now() + make_interval(secs => $6)) RETURNING id),
             checked AS (
                 INSERT INTO chunk_checks (chunk_id) SELECT id FROM chunk WHERE cardinality($5::text[]) <> $7)
             INSERT INTO chunk_replicas (chunk_id, node_id) SELECT chunk.id, unnest($5::text[]) FROM chunk",
        )
        .bind(id)
        .bind(size as i32)
        .bind(i64::from(crc))
        .bind(content_hash)
        .bind(replicas)
        .bind(lease_secs)
        .bind(REPLICAS as i32)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Extends the leases of chunks a request wrote and has not committed
    /// yet; returns how many of them still exist (fewer: the collector took
    /// one whose lease had run out, and the commit will fail on its foreign key).
    pub async fn renew_leases(&self, ids: &[String], lease_secs: f64) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE chunks SET lease_until = now() + make_interval(secs => $2) WHERE id = ANY($1)",
        )
        .bind(ids)
        .bind(lease_secs)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Records one more replica of a chunk that already exists.
    pub async fn add_replica(&self, chunk_id: &str, node_id: &str) -> Result<()> {
        // One past the replicas wanted: trim looks at it. (The count is
        // of the rows before this statement's insert.)
        sqlx::query(
            "WITH added AS (
                 INSERT INTO chunk_replicas (chunk_id, node_id) SELECT id, $2 FROM chunks WHERE id = $1
                 ON CONFLICT DO NOTHING RETURNING chunk_id)
             INSERT INTO chunk_checks (chunk_id) SELECT chunk_id FROM added
             WHERE (SELECT count(*) FROM chunk_replicas r WHERE r.chunk_id = $1) >= $3
             ON CONFLICT (chunk_id) DO UPDATE SET since = now()",
        )
        .bind(chunk_id)
        .bind(node_id)
        .bind(REPLICAS as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets a replica found missing or corrupt, so repair can replace it.
    pub async fn drop_replica(&self, chunk_id: &str, node_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM chunk_replicas WHERE chunk_id = $1 AND node_id = $2")
            .bind(chunk_id)
            .bind(node_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- background work ---------------------------------------------------

    /// Chunks older than `min_age_secs` with fewer than `want` replicas on
    /// counted nodes: the live ones, plus nodes seen within `absent_grace_secs`
    /// (a node that restarts should not trigger a full re-replication);
    /// fewest replicas first.
    ///
    /// Only chunks that may be short are looked at — those in
    /// `chunk_checks` and those with a replica on a node that does not
    /// count — so a pass costs the work there is, not the store's size.
    pub async fn under_replicated(
        &self,
        live: &[String],
        want: i64,
        min_age_secs: f64,
        absent_grace_secs: f64,
        limit: i64,
    ) -> Result<Vec<ChunkReplicas>> {
        Ok(sqlx::query_as(&format!(
            "WITH RECURSIVE {HOLDERS},
             counted AS (
                 (SELECT unnest($1::text[]) AS id
                  UNION SELECT id FROM nodes WHERE last_seen > now() - make_interval(secs => $4))
                 EXCEPT SELECT id FROM nodes WHERE draining),
             candidates AS (
                 SELECT chunk_id FROM chunk_checks
                 UNION
                 SELECT r.chunk_id FROM chunk_replicas r
                 WHERE r.node_id IN (SELECT node_id FROM holders EXCEPT SELECT id FROM counted))
             SELECT c.id, c.size, c.crc32c, c.content_hash,
                    COALESCE(array_agg(r.node_id) FILTER (WHERE r.node_id IN (SELECT id FROM counted)), '{{}}') AS replicas
             FROM candidates k JOIN chunks c ON c.id = k.chunk_id
                  LEFT JOIN chunk_replicas r ON r.chunk_id = c.id
             WHERE c.created_at < now() - make_interval(secs => $3)
             GROUP BY c.id
             HAVING count(r.node_id) FILTER (WHERE r.node_id IN (SELECT id FROM counted)) < $2
             ORDER BY count(r.node_id) FILTER (WHERE r.node_id IN (SELECT id FROM counted))
             LIMIT $5"
        ))
        .bind(live)
        .bind(want)
        .bind(min_age_secs)
        .bind(absent_grace_secs)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Chunks with more than `want` replicas on the `live` nodes (a node
    /// came back after its replicas were made again elsewhere), with the
    /// live nodes holding them. Such a chunk got its extra replica through
    /// `add_replica` or `record_chunk`, which put it in `chunk_checks`.
    pub async fn over_replicated(
        &self,
        live: &[String],
        want: i64,
        limit: i64,
    ) -> Result<Vec<ChunkReplicas>> {
        Ok(sqlx::query_as(
            "SELECT c.id, c.size, c.crc32c, c.content_hash, array_agg(r.node_id) AS replicas
             FROM chunk_checks k JOIN chunks c ON c.id = k.chunk_id
                  JOIN chunk_replicas r ON r.chunk_id = c.id
             WHERE r.node_id = ANY($1)
             GROUP BY c.id
             HAVING count(*) > $2
             LIMIT $3",
        )
        .bind(live)
        .bind(want)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Adds a check for every chunk not holding exactly `want` replica
    /// rows (a full scan, run with the inventory); answers how many new.
    pub async fn check_every_chunk(&self, want: i64) -> Result<u64> {
        let done = sqlx::query(
            "INSERT INTO chunk_checks (chunk_id)
             SELECT c.id FROM chunks c LEFT JOIN chunk_replicas r ON r.chunk_id = c.id
             GROUP BY c.id HAVING count(r.node_id) <> $1
             ON CONFLICT DO NOTHING",
        )
        .bind(want)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Postgres's clock, in seconds since the epoch (times the worker
    /// compares with rows' own `now()`).
    pub async fn clock(&self) -> Result<f64> {
        Ok(
            sqlx::query_scalar("SELECT extract(epoch FROM clock_timestamp())::float8")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Forgets the checks, made before `before`, of chunks that now hold
    /// exactly `want` replicas, all on `counted` nodes (placement nodes:
    /// live and not draining). Answers how many are left.
    pub async fn settle_checks(&self, counted: &[String], want: i64, before: f64) -> Result<i64> {
        sqlx::query(
            "DELETE FROM chunk_checks k
             WHERE k.since < to_timestamp($3)
               AND (SELECT count(*) FROM chunk_replicas r WHERE r.chunk_id = k.chunk_id) = $2
               AND (SELECT count(*) FROM chunk_replicas r
                    WHERE r.chunk_id = k.chunk_id AND r.node_id = ANY($1)) = $2",
        )
        .bind(counted)
        .bind(want)
        .bind(before)
        .execute(&self.pool)
        .await?;
        Ok(sqlx::query_scalar("SELECT count(*) FROM chunk_checks")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Deletes up to `limit` chunk rows that no version or upload part
    /// references and whose lease has run out; returns them with the nodes
    /// holding their replicas, whose files the caller then deletes.
    ///
    /// Safe against a concurrent commit: rows locked by a committing
    /// transaction (its foreign-key check) are skipped, and a commit that
    /// loses the race fails on its foreign key instead of referencing a
    /// deleted chunk. A write still streaming keeps renewing its chunks'
    /// leases, so it does not lose that race.
    pub async fn collect_garbage(&self, limit: i64) -> Result<Vec<ChunkReplicas>> {
        let mut tx = self.pool.begin().await?;
        let select = format!(
            "SELECT id FROM chunks c WHERE c.lease_until < now() AND {UNREFERENCED_CHUNK}
             LIMIT $1 FOR UPDATE SKIP LOCKED"
        );
        let ids: Vec<String> = sqlx::query_scalar(&select)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let garbage: Vec<ChunkReplicas> = sqlx::query_as(
            "SELECT c.id, c.size, c.crc32c, c.content_hash,
                    COALESCE(array_agg(r.node_id) FILTER (WHERE r.node_id IS NOT NULL), '{}') AS replicas
             FROM chunks c LEFT JOIN chunk_replicas r ON r.chunk_id = c.id
             WHERE c.id = ANY($1) GROUP BY c.id",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        // Replicas first: their running totals read the chunk's size.
        sqlx::query("DELETE FROM chunk_replicas WHERE chunk_id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM chunks WHERE id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(garbage)
    }

    // ---- nodes -------------------------------------------------------------

    /// The bytes of the replicas recorded on each of `nodes` (0 for none),
    /// from the running totals.
    pub async fn replica_bytes(&self, nodes: &[String]) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT n.id, COALESCE(sum(t.bytes), 0)::bigint
             FROM unnest($1::text[]) AS n(id)
             LEFT JOIN tallies t ON t.kind = 'node' AND t.subject = n.id
             GROUP BY n.id ORDER BY n.id",
        )
        .bind(nodes)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Up to `limit` chunks with a replica on `from` and none on `to`, with
    /// their replicas: what a rebalance can move from one to the other.
    pub async fn movable_chunks(&self, from: &str, to: &str, limit: i64) -> Result<Vec<ChunkReplicas>> {
        Ok(sqlx::query_as(
            "SELECT c.id, c.size, c.crc32c, c.content_hash,
                    (SELECT array_agg(a.node_id) FROM chunk_replicas a WHERE a.chunk_id = c.id) AS replicas
             FROM chunk_replicas r JOIN chunks c ON c.id = r.chunk_id
             WHERE r.node_id = $1
               AND NOT EXISTS (SELECT 1 FROM chunk_replicas t WHERE t.chunk_id = c.id AND t.node_id = $2)
             LIMIT $3",
        )
        .bind(from)
        .bind(to)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Starts (or ends) draining `node`; false if no such node was ever seen.
    pub async fn set_draining(&self, node: &str, draining: bool) -> Result<bool> {
        let updated = sqlx::query("UPDATE nodes SET draining = $2 WHERE id = $1")
            .bind(node)
            .bind(draining)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(updated > 0)
    }

    /// The nodes being drained.
    pub async fn draining_nodes(&self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT id FROM nodes WHERE draining ORDER BY id")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// How many replicas Postgres records on `node`.
    pub async fn replica_count(&self, node: &str) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM chunk_replicas WHERE node_id = $1")
                .bind(node)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Mirrors a node's ZooKeeper record.
    pub async fn upsert_node(&self, node: &NodeInfo) -> Result<()> {
        sqlx::query(
            "INSERT INTO nodes (id, addr, capacity, free, chunk_disk_bytes, quarantined, last_seen)
             VALUES ($1, $2, $3, $4, $5, $6, now())
             ON CONFLICT (id) DO UPDATE SET addr = $2, capacity = $3, free = $4, chunk_disk_bytes = $5,
                 quarantined = $6, last_seen = now()",
        )
        .bind(&node.id)
        .bind(&node.addr)
        .bind(node.capacity_bytes as i64)
        .bind(node.free_bytes as i64)
        .bind(node.chunk_disk_bytes as i64)
        .bind(node.quarantined_chunks as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn node_addrs(&self) -> Result<HashMap<String, String>> {
        let rows = sqlx::query("SELECT id, addr FROM nodes")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| (r.get("id"), r.get("addr"))).collect())
    }
}
