//! Object lock: the lock configuration of a bucket and the locks of its
//! versions (`object_locks`), and the one rule every delete of a version
//! passes through ([`Meta::unlock_for_delete`]).

use time::OffsetDateTime;

use super::*;
use crate::error::Result;

/// A version's lock.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct VersionLock {
    /// `GOVERNANCE` or `COMPLIANCE`.
    pub mode: Option<String>,
    pub retain_until: Option<OffsetDateTime>,
    pub legal_hold: bool,
}

impl VersionLock {
    /// Whether the retention still holds at `now`.
    pub fn retained(&self, now: OffsetDateTime) -> bool {
        self.mode.is_some() && self.retain_until.is_some_and(|t| t > now)
    }
}

impl Meta {
    /// Sets a bucket's lock configuration (enabled, with a default).
    pub async fn set_object_lock(&self, bucket: &Bucket, config: &Json) -> Result<()> {
        self.update_bucket(
            bucket,
            "UPDATE buckets SET object_lock = $2 WHERE id = $1",
            config,
        )
        .await
    }

    /// The lock of a version (row id); the default (none) if it has none.
    pub async fn version_lock(&self, version: i64) -> Result<VersionLock> {
        Ok(
            sqlx::query_as("SELECT mode, retain_until, legal_hold FROM object_locks WHERE version = $1")
                .bind(version)
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or_default(),
        )
    }

    /// Replaces the lock of a version (row id).
    pub async fn set_version_lock(&self, version: i64, lock: &VersionLock) -> Result<()> {
        if lock == &VersionLock::default() {
            sqlx::query("DELETE FROM object_locks WHERE version = $1")
                .bind(version)
                .execute(&self.pool)
                .await?;
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO object_locks (version, mode, retain_until, legal_hold) VALUES ($1, $2, $3, $4)
             ON CONFLICT (version) DO UPDATE
                 SET mode = EXCLUDED.mode, retain_until = EXCLUDED.retain_until, legal_hold = EXCLUDED.legal_hold",
        )
        .bind(version)
        .bind(&lock.mode)
        .bind(lock.retain_until)
        .bind(lock.legal_hold)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Within a delete's transaction: refuses (`AccessDenied`) the delete of a
/// version (row id) whose lock holds — a legal hold, a compliance
/// retention, or a governance retention without `bypass` — and otherwise
/// removes its lock so the version row can go.
pub(super) async fn unlock_for_delete(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    version: i64,
    bypass: bool,
) -> Result<()> {
    let lock: Option<VersionLock> = sqlx::query_as(
        "SELECT mode, retain_until, legal_hold FROM object_locks WHERE version = $1 FOR UPDATE",
    )
    .bind(version)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(lock) = lock else {
        return Ok(());
    };
    let now = OffsetDateTime::now_utc();
    let refused =
        lock.legal_hold || (lock.retained(now) && (lock.mode.as_deref() == Some("COMPLIANCE") || !bypass));
    if refused {
        return Err(Error::ObjectLocked);
    }
    sqlx::query("DELETE FROM object_locks WHERE version = $1")
        .bind(version)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
