//! Space accounting: the logical bytes versions hold against the bytes
//! their chunks take, recorded and on the nodes' disks, so amplification
//! (replicas, garbage awaiting collection, patches, file-system rounding)
//! is visible. Chunk and replica figures come from running totals
//! (`tallies`, kept by triggers, folded by the worker).

use super::sql::UNREFERENCED_CHUNK;
use super::*;
use crate::error::Result;

/// One bucket's logical bytes.
#[derive(Debug, sqlx::FromRow)]
pub struct BucketSpace {
    pub name: String,
    /// Objects and bytes of current versions (what a listing shows).
    pub objects: i64,
    pub current_bytes: i64,
    /// Bytes of every version kept, current or not.
    pub all_bytes: i64,
}

/// The cluster's figures.
#[derive(Debug, Default)]
pub struct Space {
    pub buckets: Vec<BucketSpace>,
    /// Bytes of all chunks recorded, once each.
    pub chunk_bytes: i64,
    /// Bytes of chunks no version or part references (garbage whose lease
    /// has not run out, or that the next pass collects).
    pub unreferenced_bytes: i64,
    /// Bytes of every recorded replica.
    pub replica_bytes: i64,
    /// What nodes seen in the last 5 minutes report their chunk files take on disk.
    pub node_disk_bytes: i64,
}

impl Space {
    pub fn current_bytes(&self) -> i64 {
        self.buckets.iter().map(|b| b.current_bytes).sum()
    }

    pub fn all_bytes(&self) -> i64 {
        self.buckets.iter().map(|b| b.all_bytes).sum()
    }
}

/// Sums of a kind's `tallies` rows per subject (migration 0022).
const TALLY: &str = "SELECT subject, sum(items)::bigint AS items, sum(bytes)::bigint AS bytes
                     FROM tallies WHERE kind = $1 GROUP BY subject";

impl Meta {
    /// Reads the figures. Chunk and replica bytes come from the running
    /// totals; `with_buckets` adds each bucket's logical bytes (a scan of
    /// every version: the worker does it on a slower cadence than its
    /// pass), `with_garbage` the unreferenced bytes (an anti-join over every
    /// chunk, for the admin command only).
    pub async fn space(&self, with_buckets: bool, with_garbage: bool) -> Result<Space> {
        let buckets: Vec<BucketSpace> = match with_buckets {
            false => Vec::new(),
            true => {
                sqlx::query_as(
                    "SELECT b.name,
                            count(c.version)::bigint AS objects,
                            COALESCE(sum(v.size) FILTER (WHERE c.version IS NOT NULL), 0)::bigint AS current_bytes,
                            COALESCE(sum(v.size), 0)::bigint AS all_bytes
                     FROM buckets b
                     LEFT JOIN versions v ON v.bucket_id = b.id
                     LEFT JOIN current_versions c ON c.version = v.id
                     GROUP BY b.name ORDER BY b.name",
                )
                .fetch_all(&self.pool)
                .await?
            }
        };
        let total = format!("SELECT COALESCE(sum(bytes), 0)::bigint FROM ({TALLY}) t");
        let chunk_bytes: i64 = sqlx::query_scalar(&total)
            .bind("chunks")
            .fetch_one(&self.pool)
            .await?;
        let replica_bytes: i64 = sqlx::query_scalar(&total)
            .bind("node")
            .fetch_one(&self.pool)
            .await?;
        let unreferenced_bytes: i64 = match with_garbage {
            false => 0,
            true => {
                let sql = format!(
                    "SELECT COALESCE(sum(c.size), 0)::bigint FROM chunks c WHERE {UNREFERENCED_CHUNK}"
                );
                sqlx::query_scalar(&sql).fetch_one(&self.pool).await?
            }
        };
        let node_disk_bytes: i64 = sqlx::query_scalar(
            "SELECT COALESCE(sum(chunk_disk_bytes), 0)::bigint FROM nodes
             WHERE last_seen > now() - interval '5 minutes'",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(Space {
            buckets,
            chunk_bytes,
            unreferenced_bytes,
            replica_bytes,
            node_disk_bytes,
        })
    }

    /// Folds each subject's delta rows into one (dropping subjects that
    /// sum to nothing), so reading the totals stays cheap. Rows appended
    /// meanwhile are not seen by the DELETE and stay for the next fold.
    pub async fn fold_tallies(&self) -> Result<()> {
        sqlx::query(
            "WITH folded AS (DELETE FROM tallies RETURNING kind, subject, items, bytes)
             INSERT INTO tallies (kind, subject, items, bytes)
             SELECT kind, subject, sum(items), sum(bytes) FROM folded
             GROUP BY kind, subject
             HAVING sum(items) <> 0 OR sum(bytes) <> 0",
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
