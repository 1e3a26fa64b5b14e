//! The compaction queue and the swap of a compacted chunk map.

use super::sql::{map_owner_of_1, piece_from_row};
use super::*;
use crate::error::Result;

impl Meta {
    /// Queues a version whose map patches have fragmented.
    pub async fn queue_compaction(&self, version: i64) -> Result<()> {
        sqlx::query("INSERT INTO compaction_queue (version) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(version)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Up to `limit` queued versions that are current and were queued more
    /// than `quiet_secs` ago. Queued versions no longer current leave the
    /// queue: a newer version replaced them, and is queued itself if
    /// fragmented.
    pub async fn compaction_candidates(&self, quiet_secs: f64, limit: i64) -> Result<Vec<i64>> {
        sqlx::query(
            "DELETE FROM compaction_queue q
             WHERE NOT EXISTS (SELECT 1 FROM current_versions c WHERE c.version = q.version)",
        )
        .execute(&self.pool)
        .await?;
        Ok(sqlx::query_scalar(
            "SELECT version FROM compaction_queue
             WHERE queued_at < now() - make_interval(secs => $1)
             ORDER BY queued_at LIMIT $2",
        )
        .bind(quiet_secs)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Replaces the map of `version`, if it is still `old`, with `new` (the
    /// same bytes), and leaves the queue. The chunks only the old map named
    /// get a fresh lease of `lease_secs`, so a GET or patch that loaded the
    /// old map just before finishes before the collector takes them.
    /// Answers whether the swap happened.
    pub async fn replace_map(
        &self,
        version: i64,
        old: &[Piece],
        new: &[Piece],
        lease_secs: f64,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        // The rows are the map's owner's (the version itself, or the one it
        // shares them with); locked, it cannot be deleted, nor its map
        // handed on, under the swap.
        let owner: Option<i64> = sqlx::query_scalar(concat!(
            "SELECT id FROM versions WHERE id = ",
            map_owner_of_1!(),
            " FOR UPDATE"
        ))
        .bind(version)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(owner) = owner else {
            return Ok(false);
        };
        let rows = sqlx::query(
            "SELECT chunk_id, chunk_offset, length FROM version_chunks WHERE version = $1 ORDER BY idx",
        )
        .bind(owner)
        .fetch_all(&mut *tx)
        .await?;
        let current: Vec<Piece> = rows.iter().map(piece_from_row).collect();
        if current != old {
            return Ok(false);
        }
        let old_ids: Vec<&str> = old.iter().map(|p| p.chunk_id.as_str()).collect();
        sqlx::query("UPDATE chunks SET lease_until = now() + make_interval(secs => $2) WHERE id = ANY($1)")
            .bind(&old_ids)
            .bind(lease_secs)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM version_chunks WHERE version = $1")
            .bind(owner)
            .execute(&mut *tx)
            .await?;
        let mut offsets = Vec::with_capacity(new.len());
        let mut at = 0i64;
        for piece in new {
            offsets.push(at);
            at += piece.length;
        }
        let ids: Vec<&str> = new.iter().map(|p| p.chunk_id.as_str()).collect();
        let chunk_offsets: Vec<i32> = new.iter().map(|p| p.chunk_offset as i32).collect();
        let lengths: Vec<i32> = new.iter().map(|p| p.length as i32).collect();
        sqlx::query(
            "INSERT INTO version_chunks (version, idx, object_offset, chunk_id, chunk_offset, length)
             SELECT $1, (u.ord - 1)::integer, u.o, u.c, u.co, u.l
             FROM unnest($2::bigint[], $3::text[], $4::integer[], $5::integer[]) WITH ORDINALITY AS u(o, c, co, l, ord)",
        )
        .bind(owner)
        .bind(&offsets)
        .bind(&ids)
        .bind(&chunk_offsets)
        .bind(&lengths)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM compaction_queue WHERE version = $1")
            .bind(version)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}
