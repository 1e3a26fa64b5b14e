//! What access control stores: bucket ACLs, policies and public access
//! blocks (columns of `buckets`), and object ACLs (`object_acls`, one row
//! per version that has grants).

use super::*;
use crate::error::Result;

impl Meta {
    /// The grants of a key's current version, or of `version_id`; `None`
    /// when there is no such version or it has no grants.
    pub async fn object_acl(
        &self,
        bucket: &Bucket,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Option<Json>> {
        Ok(sqlx::query_scalar(
            "SELECT a.grants FROM object_acls a
             WHERE a.version = CASE WHEN $3::text IS NULL
                 THEN (SELECT version FROM current_versions WHERE bucket_id = $1 AND key = $2)
                 ELSE (SELECT id FROM versions WHERE bucket_id = $1 AND key = $2 AND version_id = $3
                       ORDER BY id DESC LIMIT 1) END",
        )
        .bind(bucket.id)
        .bind(key)
        .bind(version_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Replaces the grants of a version (the current one when
    /// `version_id` is `None`); `NoSuchKey` if there is none.
    pub async fn set_object_acl(
        &self,
        bucket: &Bucket,
        key: &str,
        version_id: Option<&str>,
        grants: &Json,
    ) -> Result<()> {
        let done = sqlx::query(
            "WITH target AS (
                 SELECT CASE WHEN $3::text IS NULL
                     THEN (SELECT version FROM current_versions WHERE bucket_id = $1 AND key = $2)
                     ELSE (SELECT id FROM versions WHERE bucket_id = $1 AND key = $2 AND version_id = $3
                       ORDER BY id DESC LIMIT 1) END AS id)
             INSERT INTO object_acls (version, grants) SELECT id, $4 FROM target WHERE id IS NOT NULL
             ON CONFLICT (version) DO UPDATE SET grants = EXCLUDED.grants",
        )
        .bind(bucket.id)
        .bind(key)
        .bind(version_id)
        .bind(grants)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(if version_id.is_some() {
                Error::NoSuchVersion
            } else {
                Error::NoSuchKey
            });
        }
        Ok(())
    }

    /// Sets the grants of the version `version` (a row id) just written.
    pub async fn set_version_acl(&self, version: i64, grants: &Json) -> Result<()> {
        sqlx::query(
            "INSERT INTO object_acls (version, grants) VALUES ($1, $2)
             ON CONFLICT (version) DO UPDATE SET grants = EXCLUDED.grants",
        )
        .bind(version)
        .bind(grants)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn set_bucket_acl(&self, bucket: &Bucket, grants: &Json) -> Result<()> {
        self.update_bucket(bucket, "UPDATE buckets SET acl = $2 WHERE id = $1", grants)
            .await
    }

    /// Sets (or with `None` removes) the bucket policy.
    pub async fn set_bucket_policy(&self, bucket: &Bucket, policy: Option<&str>) -> Result<()> {
        self.update_bucket(bucket, "UPDATE buckets SET policy = $2 WHERE id = $1", policy)
            .await
    }

    /// Sets (or with `None` removes) the public access block.
    pub async fn set_public_access_block(&self, bucket: &Bucket, block: Option<&Json>) -> Result<()> {
        self.update_bucket(
            bucket,
            "UPDATE buckets SET public_access_block = $2 WHERE id = $1",
            block,
        )
        .await
    }
}
