//! Past views of a versioned bucket (issue 24): snapshots (named moments),
//! forks, restores and the keys as of a moment that diffs compare. All of
//! it is metadata over the commit stamps (migrations 0023 and 0024): a view
//! as of T is each key's newest version stamped no later than T, and one
//! transaction's versions share one stamp, so views are consistent cuts.
//! No byte of an object moves.

use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::*;
use crate::error::Result;

/// A named moment of a bucket.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Snapshot {
    pub name: String,
    pub at: OffsetDateTime,
}

/// A key as of a moment: the version it showed.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PastKey {
    pub key: String,
    pub version_id: String,
    pub etag: String,
    pub size: i64,
}

/// How long a moment waits for the transactions that may still be stamped
/// before it (a write in flight takes milliseconds).
const SETTLE_LIMIT: Duration = Duration::from_secs(30);

impl Meta {
    /// Waits until every transaction that may carry a stamp at or before
    /// `at` (the clock's reading a moment ago) has ended, so a view as of
    /// `at` never changes again. A stamp is taken after its transaction's
    /// id is given (migration 0024), so those are in the snapshot taken now.
    async fn settle(&self, at: OffsetDateTime) -> Result<()> {
        let now: OffsetDateTime = sqlx::query_scalar("SELECT clock_timestamp()")
            .fetch_one(&self.pool)
            .await?;
        if at > now {
            return Err(Error::InvalidArgument(format!(
                "{at} is in the future (the metadata store's clock reads {now})"
            )));
        }
        let running: Vec<String> =
            sqlx::query_scalar("SELECT x::text FROM pg_snapshot_xip(pg_current_snapshot()) AS x")
                .fetch_all(&self.pool)
                .await?;
        let started = Instant::now();
        loop {
            let left: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM unnest($1::text[]) AS x
                 WHERE pg_xact_status(x::xid8) = 'in progress'",
            )
            .bind(&running)
            .fetch_one(&self.pool)
            .await?;
            if left == 0 {
                return Ok(());
            }
            if started.elapsed() > SETTLE_LIMIT {
                return Err(Error::Internal(format!(
                    "{left} transactions still running after {SETTLE_LIMIT:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Records the moment now as `name`; answers it.
    pub async fn create_snapshot(&self, bucket: &Bucket, name: &str) -> Result<OffsetDateTime> {
        if bucket.versioning != "Enabled" {
            return Err(Error::InvalidBucketState(
                "snapshots need a versioned bucket (put-bucket-versioning Status=Enabled)".into(),
            ));
        }
        let at: OffsetDateTime = sqlx::query_scalar("SELECT clock_timestamp()")
            .fetch_one(&self.pool)
            .await?;
        self.settle(at).await?;
        let inserted = sqlx::query(
            "INSERT INTO snapshots (bucket_id, name, at) VALUES ($1, $2, $3)
             ON CONFLICT (bucket_id, name) DO NOTHING",
        )
        .bind(bucket.id)
        .bind(name)
        .bind(at)
        .execute(&self.pool)
        .await?;
        match inserted.rows_affected() {
            0 => Err(Error::SnapshotExists(name.to_string())),
            _ => Ok(at),
        }
    }

    /// The bucket's snapshots, oldest first.
    pub async fn snapshots(&self, bucket: &Bucket) -> Result<Vec<Snapshot>> {
        Ok(
            sqlx::query_as("SELECT name, at FROM snapshots WHERE bucket_id = $1 ORDER BY at, name")
                .bind(bucket.id)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// The moment snapshot `name` records.
    pub async fn snapshot_at(&self, bucket: &Bucket, name: &str) -> Result<OffsetDateTime> {
        sqlx::query_scalar("SELECT at FROM snapshots WHERE bucket_id = $1 AND name = $2")
            .bind(bucket.id)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::NoSuchSnapshot(name.to_string()))
    }

    /// Deletes snapshot `name`: lifecycle rules may then expire its versions.
    pub async fn delete_snapshot(&self, bucket: &Bucket, name: &str) -> Result<()> {
        let deleted = sqlx::query("DELETE FROM snapshots WHERE bucket_id = $1 AND name = $2")
            .bind(bucket.id)
            .bind(name)
            .execute(&self.pool)
            .await?;
        match deleted.rows_affected() {
            0 => Err(Error::NoSuchSnapshot(name.to_string())),
            _ => Ok(()),
        }
    }

    /// The keys of `bucket` under `prefix` as of `at` (`None`: now; deleted
    /// ones left out), in key order.
    pub async fn keys_as_of(
        &self,
        bucket: &Bucket,
        prefix: &str,
        at: Option<OffsetDateTime>,
    ) -> Result<Vec<PastKey>> {
        let query = match at {
            Some(at) => {
                self.settle(at).await?;
                sqlx::query_as(
                    "SELECT key, version_id, etag, size FROM versions_as_of($1, $2, $3)
                     WHERE NOT delete_marker ORDER BY key",
                )
                .bind(bucket.id)
                .bind(prefix)
                .bind(at)
            }
            None => sqlx::query_as(
                "SELECT c.key, v.version_id, v.etag, v.size
                 FROM current_versions c JOIN versions v ON v.id = c.version
                 WHERE c.bucket_id = $1 AND c.key >= $2 AND starts_with(c.key, $2) ORDER BY c.key",
            )
            .bind(bucket.id)
            .bind(prefix),
        };
        Ok(query.fetch_all(&self.pool).await?)
    }

    /// Makes bucket `name`, owned by `owner`, with `source`'s keys as of
    /// `at` (`fork_bucket`, one transaction); answers how many keys.
    pub async fn fork(&self, source: &Bucket, name: &str, owner: &str, at: OffsetDateTime) -> Result<i64> {
        self.settle(at).await?;
        sqlx::query_scalar("SELECT fork_bucket($1, $2, $3, $4)")
            .bind(source.id)
            .bind(name)
            .bind(owner)
            .bind(at)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| match super::sql::state_of(&e).as_deref() {
                Some("BF409") => Error::BucketExists,
                _ => Error::Db(e),
            })
    }

    /// Makes the keys under `prefix` what they were as of `at`
    /// (`restore_prefix`, one transaction); answers (key, "restored" or
    /// "deleted") for each key it changed.
    pub async fn restore(
        &self,
        bucket: &Bucket,
        prefix: &str,
        at: OffsetDateTime,
    ) -> Result<Vec<(String, String)>> {
        self.settle(at).await?;
        sqlx::query_as("SELECT restored_key, action FROM restore_prefix($1, $2, $3)")
            .bind(bucket.id)
            .bind(prefix)
            .bind(at)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| match super::sql::state_of(&e).as_deref() {
                Some("BF400") => Error::InvalidBucketState("restore needs a versioned bucket".into()),
                _ => Error::Db(e),
            })
    }
}
