//! The change feed's reads (migration 0015): a bucket's changes after a
//! sequence number, and the trimming of old ones.

use sqlx::Row;

use super::*;
use crate::error::Result;

/// One change of a key's current version.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Change {
    pub seq: i64,
    pub key: String,
    /// The new current version's ETag; `None`: the key is gone.
    pub etag: Option<String>,
    /// How long ago it was recorded, in seconds.
    #[serde(skip)]
    pub age_secs: f64,
}

impl Meta {
    /// Up to `limit` changes of `bucket` after `after`, in sequence order.
    pub async fn changes_after(&self, bucket: &Bucket, after: i64, limit: i64) -> Result<Vec<Change>> {
        let rows = sqlx::query(
            "SELECT seq, key, etag, extract(epoch FROM now() - at)::float8 AS age FROM changes
             WHERE bucket_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(bucket.id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Change {
                seq: r.get("seq"),
                key: r.get("key"),
                etag: r.get("etag"),
                age_secs: r.get("age"),
            })
            .collect())
    }

    /// The oldest and newest sequence numbers kept (of any bucket).
    pub async fn change_bounds(&self) -> Result<(i64, i64)> {
        let (min, max): (Option<i64>, Option<i64>) = sqlx::query_as("SELECT min(seq), max(seq) FROM changes")
            .fetch_one(&self.pool)
            .await?;
        // An empty table: the sequence's last value is where the feed stands.
        let last: i64 =
            sqlx::query_scalar("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM changes_seq_seq")
                .fetch_one(&self.pool)
                .await?;
        Ok((min.unwrap_or(last + 1), max.unwrap_or(last)))
    }

    /// Drops changes older than `keep_secs`.
    pub async fn trim_changes(&self, keep_secs: f64) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM changes WHERE at < now() - make_interval(secs => $1)")
                .bind(keep_secs)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }
}
