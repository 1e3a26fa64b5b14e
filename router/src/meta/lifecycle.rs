//! What lifecycle rules act on: the queries that find the current
//! versions, noncurrent versions, lone delete markers and unfinished
//! uploads a rule names. The worker (`crate::lifecycle`) acts on them
//! through the ordinary delete paths, so locks and markers behave as for
//! any client's request.

use time::OffsetDateTime;

use super::*;
use crate::error::Result;

/// Candidates found per query and pass.
pub const LIFECYCLE_BATCH: i64 = 1000;

/// The condition that version `v` carries every `[key, value]` pair of
/// the JSON array bound as parameter `$param` (always true for `[]`).
fn tagged(param: u8) -> String {
    format!(
        "(${param}::jsonb = '[]'::jsonb
          OR EXISTS (SELECT 1 FROM object_tags t WHERE t.version = v.id AND t.tags @> ${param}))"
    )
}

impl Meta {
    pub async fn set_lifecycle(&self, bucket: &Bucket, rules: Option<&Json>) -> Result<()> {
        self.update_bucket(bucket, "UPDATE buckets SET lifecycle = $2 WHERE id = $1", rules)
            .await
    }

    /// Buckets with lifecycle rules: (bucket, rules).
    pub async fn lifecycle_buckets(&self) -> Result<Vec<(String, Json)>> {
        Ok(
            sqlx::query_as("SELECT name, lifecycle FROM buckets WHERE lifecycle IS NOT NULL ORDER BY name")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Keys under `prefix` whose current version (not a delete marker) was
    /// written before `before`, carries all of `tags` (`[key, value]`
    /// pairs) and has a size within `[min, max]`.
    pub async fn current_written_before(
        &self,
        bucket: &Bucket,
        prefix: &str,
        tags: &Json,
        before: OffsetDateTime,
        size: (i64, i64),
    ) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(&format!(
            "SELECT c.key FROM current_versions c JOIN versions v ON v.id = c.version
             WHERE c.bucket_id = $1 AND starts_with(c.key, $2) AND v.created_at < $3
               AND v.size >= $4 AND v.size <= $5 AND {}
             ORDER BY c.key LIMIT $6",
            tagged(7)
        ))
        .bind(bucket.id)
        .bind(prefix)
        .bind(before)
        .bind(size.0)
        .bind(size.1)
        .bind(LIFECYCLE_BATCH)
        .bind(tags)
        .fetch_all(&self.pool)
        .await?)
    }

    /// (key, version id) of versions under `prefix` carrying all of `tags`
    /// that became noncurrent (a newer version of their key was written)
    /// before `before`, beyond the `keep` newest noncurrent versions of
    /// each key, and that no snapshot shows (it was its key's newest at a
    /// snapshot's moment).
    pub async fn noncurrent_before(
        &self,
        bucket: &Bucket,
        prefix: &str,
        tags: &Json,
        before: OffsetDateTime,
        keep: i64,
    ) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(&format!(
            "SELECT key, version_id FROM (
                 SELECT v.id, v.key, v.version_id, v.created_at,
                        lag(v.created_at) OVER w AS noncurrent_since,
                        row_number() OVER w AS rank
                 FROM versions v WHERE v.bucket_id = $1 AND starts_with(v.key, $2)
                 WINDOW w AS (PARTITION BY v.key ORDER BY v.id DESC)) v
             WHERE rank > 1 + $4 AND noncurrent_since < $3 AND {}
               AND NOT EXISTS (SELECT 1 FROM snapshots s WHERE s.bucket_id = $1
                               AND s.at >= v.created_at AND s.at < v.noncurrent_since)
             ORDER BY key LIMIT $5",
            tagged(6)
        ))
        .bind(bucket.id)
        .bind(prefix)
        .bind(before)
        .bind(keep)
        .bind(LIFECYCLE_BATCH)
        .bind(tags)
        .fetch_all(&self.pool)
        .await?)
    }

    /// (key, version id) of delete markers under `prefix` that are the
    /// only version left of their key.
    pub async fn lone_delete_markers(&self, bucket: &Bucket, prefix: &str) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT v.key, v.version_id FROM versions v
             WHERE v.bucket_id = $1 AND starts_with(v.key, $2) AND v.delete_marker
               AND NOT EXISTS (SELECT 1 FROM versions o
                               WHERE o.bucket_id = v.bucket_id AND o.key = v.key AND o.id <> v.id)
             ORDER BY v.key LIMIT $3",
        )
        .bind(bucket.id)
        .bind(prefix)
        .bind(LIFECYCLE_BATCH)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Upload ids under `prefix` started before `before`.
    /// Uploads of any bucket started before `before`, oldest first.
    pub async fn uploads_started_before_anywhere(&self, before: OffsetDateTime) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT upload_id FROM uploads WHERE created_at < $1 ORDER BY created_at LIMIT $2",
        )
        .bind(before)
        .bind(LIFECYCLE_BATCH)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn uploads_started_before(
        &self,
        bucket: &Bucket,
        prefix: &str,
        before: OffsetDateTime,
    ) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT upload_id FROM uploads
             WHERE bucket_id = $1 AND starts_with(key, $2) AND created_at < $3
             ORDER BY created_at LIMIT $4",
        )
        .bind(bucket.id)
        .bind(prefix)
        .bind(before)
        .bind(LIFECYCLE_BATCH)
        .fetch_all(&self.pool)
        .await?)
    }
}
