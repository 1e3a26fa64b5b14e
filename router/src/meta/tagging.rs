//! What tagging and CORS store: the tags of a version (`object_tags`, one
//! row per version that has any) and a bucket's tags and CORS rules
//! (columns of `buckets`).

use super::*;
use crate::error::Result;

impl Meta {
    /// The tags of the version `version` (a row id): `[key, value]` pairs.
    pub async fn version_tags(&self, version: i64) -> Result<Option<Json>> {
        Ok(
            sqlx::query_scalar("SELECT tags FROM object_tags WHERE version = $1")
                .bind(version)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Replaces (or with `None` removes) the tags of the version `version`.
    pub async fn set_version_tags(&self, version: i64, tags: Option<&Json>) -> Result<()> {
        match tags {
            Some(tags) => sqlx::query(
                "INSERT INTO object_tags (version, tags) VALUES ($1, $2)
                 ON CONFLICT (version) DO UPDATE SET tags = EXCLUDED.tags",
            )
            .bind(version)
            .bind(tags),
            None => sqlx::query("DELETE FROM object_tags WHERE version = $1").bind(version),
        }
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Sets (or with `None` removes) a bucket's tags.
    pub async fn set_bucket_tagging(&self, bucket: &Bucket, tags: Option<&Json>) -> Result<()> {
        self.update_bucket(bucket, "UPDATE buckets SET tagging = $2 WHERE id = $1", tags)
            .await
    }

    /// Sets (or with `None` removes) a bucket's CORS rules.
    pub async fn set_cors(&self, bucket: &Bucket, rules: Option<&Json>) -> Result<()> {
        self.update_bucket(bucket, "UPDATE buckets SET cors = $2 WHERE id = $1", rules)
            .await
    }
}
