//! Space accounting: the logical bytes versions hold against the bytes
//! their chunks take, recorded and on the nodes' disks, so amplification
//! (replicas, garbage awaiting collection, patches, file-system rounding)
//! is visible. The figures come from running totals (`tallies`, kept by
//! triggers, folded by the worker), not from scanning the tables.

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
const TALLY: &str = "SELECT subject, sum(items)::bigint AS items, sum(bytes)::bigint AS bytes,
                            sum(all_bytes)::bigint AS all_bytes
                     FROM tallies WHERE kind = $1 GROUP BY subject";

impl Meta {
    /// Reads the figures from the running totals (a few rows per bucket and
    /// node). `with_garbage` adds the unreferenced bytes: an anti-join over
    /// every chunk, for the admin command only.
    pub async fn space(&self, with_garbage: bool) -> Result<Space> {
        let buckets: Vec<BucketSpace> = sqlx::query_as(&format!(
            "SELECT b.name, COALESCE(t.items, 0) AS objects, COALESCE(t.bytes, 0) AS current_bytes,
                    COALESCE(t.all_bytes, 0) AS all_bytes
             FROM buckets b LEFT JOIN ({TALLY}) t ON t.subject = b.id::text
             ORDER BY b.name"
        ))
        .bind("bucket")
        .fetch_all(&self.pool)
        .await?;
        let chunk_bytes: i64 = sqlx::query_scalar(&format!("SELECT COALESCE(sum(bytes), 0)::bigint FROM ({TALLY}) t"))
            .bind("chunks")
            .fetch_one(&self.pool)
            .await?;
        let replica_bytes: i64 =
            sqlx::query_scalar(&format!("SELECT COALESCE(sum(bytes), 0)::bigint FROM ({TALLY}) t"))
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

    /// The running totals of one kind ("chunks", "node", "bucket"), by subject.
    pub async fn tallies(&self, kind: &str) -> Result<Vec<Tally>> {
        Ok(sqlx::query_as(TALLY).bind(kind).fetch_all(&self.pool).await?)
    }

    /// Folds each subject's delta rows into one (dropping subjects that
    /// sum to nothing), so reading the totals stays cheap. Rows appended
    /// meanwhile are not seen by the DELETE and stay for the next fold.
    pub async fn fold_tallies(&self) -> Result<()> {
        sqlx::query(
            "WITH folded AS (DELETE FROM tallies RETURNING kind, subject, items, bytes, all_bytes)
             INSERT INTO tallies (kind, subject, items, bytes, all_bytes)
             SELECT kind, subject, sum(items), sum(bytes), sum(all_bytes) FROM folded
             GROUP BY kind, subject
             HAVING sum(items) <> 0 OR sum(bytes) <> 0 OR sum(all_bytes) <> 0",
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// One subject's running totals.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Tally {
    pub subject: String,
    pub items: i64,
    pub bytes: i64,
    pub all_bytes: i64,
}
