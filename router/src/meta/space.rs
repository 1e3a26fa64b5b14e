//! Space accounting: the logical bytes versions hold against the bytes
//! their chunks take, recorded and on the nodes' disks, so amplification
//! (replicas, garbage awaiting collection, patches, file-system rounding)
//! is visible.

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

impl Meta {
    /// Reads the figures: whole-table scans, for the worker's pass and the
    /// admin command, not for requests. `with_garbage` adds the
    /// unreferenced bytes (an anti-join over every chunk).
    pub async fn space(&self, with_garbage: bool) -> Result<Space> {
        let buckets: Vec<BucketSpace> = sqlx::query_as(
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
        .await?;
        let (chunk_bytes, replica_bytes): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE(sum(c.size), 0)::bigint, COALESCE(sum(c.size::bigint * r.n), 0)::bigint
             FROM chunks c
             LEFT JOIN (SELECT chunk_id, count(*) AS n FROM chunk_replicas GROUP BY chunk_id) r ON r.chunk_id = c.id",
        )
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
}
