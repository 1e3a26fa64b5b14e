//! Chunks, their replicas and the storage nodes: what repair, garbage
//! collection and placement read and record.

use std::collections::HashMap;

use sqlx::Row;

use super::*;
use crate::error::Result;

impl Meta {
    /// Records a chunk durably stored on `replicas`, with its crc32c and
    /// BLAKE3 `content_hash` (hex).
    pub async fn record_chunk(
        &self,
        id: &str,
        size: i64,
        crc: u32,
        content_hash: &str,
        replicas: &[String],
    ) -> Result<()> {
        // One statement, so one round trip and atomic without BEGIN/COMMIT.
        sqlx::query(
            "WITH chunk AS (INSERT INTO chunks (id, size, crc32c, content_hash) VALUES ($1, $2, $3, $4) RETURNING id)
             INSERT INTO chunk_replicas (chunk_id, node_id) SELECT chunk.id, unnest($5::text[]) FROM chunk",
        )
        .bind(id)
        .bind(size as i32)
        .bind(i64::from(crc))
        .bind(content_hash)
        .bind(replicas)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records one more replica of a chunk that already exists.
    pub async fn add_replica(&self, chunk_id: &str, node_id: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO chunk_replicas (chunk_id, node_id) SELECT id, $2 FROM chunks WHERE id = $1
             ON CONFLICT DO NOTHING",
        )
        .bind(chunk_id)
        .bind(node_id)
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
    /// (a node that restarts should not trigger a full re-replication).
    pub async fn under_replicated(
        &self,
        live: &[String],
        want: i64,
        min_age_secs: f64,
        absent_grace_secs: f64,
        limit: i64,
    ) -> Result<Vec<ChunkReplicas>> {
        Ok(sqlx::query_as(
            "WITH counted AS (
                 SELECT unnest($1::text[]) AS id
                 UNION SELECT id FROM nodes WHERE last_seen > now() - make_interval(secs => $4))
             SELECT c.id, c.size, c.crc32c, c.content_hash,
                    COALESCE(array_agg(r.node_id) FILTER (WHERE r.node_id IN (SELECT id FROM counted)), '{}') AS replicas
             FROM chunks c LEFT JOIN chunk_replicas r ON r.chunk_id = c.id
             WHERE c.created_at < now() - make_interval(secs => $3)
             GROUP BY c.id
             HAVING count(r.node_id) FILTER (WHERE r.node_id IN (SELECT id FROM counted)) < $2
             LIMIT $5",
        )
        .bind(live)
        .bind(want)
        .bind(min_age_secs)
        .bind(absent_grace_secs)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Deletes up to `limit` chunk rows that no version or upload part
    /// references and that are older than `grace_secs`; returns them with the
    /// nodes holding their replicas, whose files the caller then deletes.
    ///
    /// Safe against a concurrent commit: rows locked by a committing
    /// transaction (its foreign-key check) are skipped, and a commit that
    /// loses the race fails on its foreign key instead of referencing a
    /// deleted chunk.
    pub async fn collect_garbage(&self, grace_secs: f64, limit: i64) -> Result<Vec<ChunkReplicas>> {
        let mut tx = self.pool.begin().await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM chunks c
             WHERE c.created_at < now() - make_interval(secs => $1)
               AND NOT EXISTS (SELECT 1 FROM version_chunks v WHERE v.chunk_id = c.id)
               AND NOT EXISTS (SELECT 1 FROM part_chunks p WHERE p.chunk_id = c.id)
             LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(grace_secs)
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
        sqlx::query("DELETE FROM chunks WHERE id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(garbage)
    }

    // ---- nodes -------------------------------------------------------------

    pub async fn upsert_node(&self, id: &str, addr: &str, capacity: u64, free: u64) -> Result<()> {
        sqlx::query(
            "INSERT INTO nodes (id, addr, capacity, free, last_seen) VALUES ($1, $2, $3, $4, now())
             ON CONFLICT (id) DO UPDATE SET addr = $2, capacity = $3, free = $4, last_seen = now()",
        )
        .bind(id)
        .bind(addr)
        .bind(capacity as i64)
        .bind(free as i64)
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
