//! What the cluster's status is read from in Postgres: the nodes ever seen
//! with the replicas recorded on each, chunks' replication against the live
//! nodes, and the background worker's progress (which it writes here).

use super::chunks::HOLDERS;
use super::*;
use crate::error::Result;

/// A storage node as last mirrored from ZooKeeper.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NodeRow {
    pub id: String,
    pub addr: String,
    pub capacity: i64,
    pub free: i64,
    pub chunk_disk_bytes: i64,
    pub quarantined: i64,
    /// Seconds since its record was last mirrored.
    pub seen_secs_ago: f64,
    /// Replicas recorded on it.
    pub replicas: i64,
    /// Being drained (`router drain`).
    pub draining: bool,
}

/// Chunks against the live nodes.
#[derive(Debug, Clone, Copy, Default, sqlx::FromRow)]
pub struct ChunkHealth {
    pub chunks: i64,
    /// With fewer replicas on live nodes than wanted.
    pub under_replicated: i64,
    /// With none on a live node: unreadable until a node comes back.
    pub unavailable: i64,
}

/// The background worker's last pass.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WorkerProgress {
    pub leader: String,
    pub started_secs_ago: f64,
    /// None while the first pass of this leader runs.
    pub finished_secs_ago: Option<f64>,
    pub passes: i64,
    pub repaired: i64,
    pub repair_left: i64,
    pub collected: i64,
    pub last_error: Option<String>,
}

/// What one finished pass did.
#[derive(Debug, Clone, Default)]
pub struct PassReport {
    pub repaired: i64,
    pub repair_left: i64,
    pub collected: i64,
    pub error: Option<String>,
}

impl Meta {
    /// Every node ever seen, with the replicas recorded on it (its running total).
    pub async fn node_rows(&self) -> Result<Vec<NodeRow>> {
        Ok(sqlx::query_as(
            "SELECT n.id, n.addr, n.capacity, n.free, n.chunk_disk_bytes, n.quarantined,
                    extract(epoch FROM now() - n.last_seen)::float8 AS seen_secs_ago,
                    COALESCE(r.replicas, 0)::bigint AS replicas, n.draining
             FROM nodes n
             LEFT JOIN (SELECT subject, sum(items) AS replicas FROM tallies WHERE kind = 'node'
                        GROUP BY subject) r ON r.subject = n.id
             ORDER BY n.id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Chunks with fewer than `want` replicas on the `live` nodes. Only
    /// chunks the work list names or with a replica off the live nodes can
    /// be short (see `under_replicated`), so only those are grouped; the
    /// total is the running one.
    pub async fn chunk_health(&self, live: &[String], want: i64) -> Result<ChunkHealth> {
        Ok(sqlx::query_as(&format!(
            "WITH RECURSIVE {HOLDERS},
             candidates AS (
                 SELECT chunk_id FROM chunk_checks
                 UNION
                 SELECT r.chunk_id FROM chunk_replicas r
                 WHERE r.node_id IN (SELECT node_id FROM holders WHERE node_id <> ALL($1))),
             counted AS (
                 SELECT count(r.node_id) FILTER (WHERE r.node_id = ANY($1)) AS live
                 FROM candidates k JOIN chunks c ON c.id = k.chunk_id
                      LEFT JOIN chunk_replicas r ON r.chunk_id = c.id
                 GROUP BY c.id)
             SELECT (SELECT COALESCE(sum(items), 0)::bigint FROM tallies WHERE kind = 'chunks') AS chunks,
                    count(*) FILTER (WHERE live < $2) AS under_replicated,
                    count(*) FILTER (WHERE live = 0) AS unavailable
             FROM counted"
        ))
        .bind(live)
        .bind(want)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Records that `leader` started a pass.
    pub async fn worker_pass_started(&self, leader: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO worker_status (leader, pass_started) VALUES ($1, now())
             ON CONFLICT (one) DO UPDATE SET
                 pass_started = now(),
                 pass_finished = CASE WHEN worker_status.leader = $1 THEN worker_status.pass_finished END,
                 passes = CASE WHEN worker_status.leader = $1 THEN worker_status.passes ELSE 0 END,
                 leader = $1",
        )
        .bind(leader)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records what `leader`'s pass did.
    pub async fn worker_pass_finished(&self, leader: &str, report: &PassReport) -> Result<()> {
        sqlx::query(
            "UPDATE worker_status SET pass_finished = now(), passes = passes + 1,
                 repaired = $2, repair_left = $3, collected = $4, last_error = $5
             WHERE leader = $1",
        )
        .bind(leader)
        .bind(report.repaired)
        .bind(report.repair_left)
        .bind(report.collected)
        .bind(&report.error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The worker's last pass, if one ever ran.
    pub async fn worker_progress(&self) -> Result<Option<WorkerProgress>> {
        Ok(sqlx::query_as(
            "SELECT leader,
                    extract(epoch FROM now() - pass_started)::float8 AS started_secs_ago,
                    extract(epoch FROM now() - pass_finished)::float8 AS finished_secs_ago,
                    passes, repaired, repair_left, collected, last_error
             FROM worker_status",
        )
        .fetch_optional(&self.pool)
        .await?)
    }
}
