//! Locks between mounts (migration 0014): each change to a key's locks runs
//! in a transaction under a lock of its own per key, drops expired rows,
//! checks the other owners' locks and rewrites the owner's ranges as
//! `bucketfs_common::file_locks::apply` says.

use bucketfs_common::file_locks::{apply, conflict, HeldLock, LockKind, LockRange};
use sqlx::{Postgres, Row, Transaction};

use super::*;
use crate::error::Result;

/// The lock owner asking: a mount's session and the kernel's owner id.
#[derive(Debug, Clone)]
pub struct LockOwner {
    pub session: String,
    pub owner: u64,
}

fn kind_name(kind: LockKind) -> &'static str {
    match kind {
        LockKind::Read => "read",
        LockKind::Write => "write",
        LockKind::Unlock => "unlock",
    }
}

/// The live locks on `key`, after deleting its expired ones.
async fn live_locks(tx: &mut Transaction<'_, Postgres>, bucket: &Bucket, key: &str) -> Result<Vec<HeldLock>> {
    // A namespace of its own: a lock change never waits for a commit.
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext('lock:' || $2))")
        .bind(bucket.id as i32)
        .bind(key)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM file_locks WHERE bucket_id = $1 AND key = $2 AND lease_until <= now()")
        .bind(bucket.id)
        .bind(key)
        .execute(&mut **tx)
        .await?;
    let rows = sqlx::query(
        "SELECT session, owner, kind, range_start, range_end, pid FROM file_locks
         WHERE bucket_id = $1 AND key = $2 ORDER BY range_start",
    )
    .bind(bucket.id)
    .bind(key)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .iter()
        .map(|r| HeldLock {
            session: r.get("session"),
            owner: r.get::<i64, _>("owner") as u64,
            range: LockRange {
                kind: if r.get::<String, _>("kind") == "write" {
                    LockKind::Write
                } else {
                    LockKind::Read
                },
                start: r.get::<i64, _>("range_start") as u64,
                end: r.get::<i64, _>("range_end") as u64,
                pid: r.get::<i32, _>("pid") as u32,
            },
        })
        .collect())
}

impl Meta {
    /// Takes or releases `change` for `who` on `key`, for a lease of
    /// `lease_secs`; answers the lock in the way instead, changing nothing.
    pub async fn change_lock(
        &self,
        bucket: &Bucket,
        key: &str,
        who: &LockOwner,
        change: &LockRange,
        lease_secs: u64,
    ) -> Result<Option<HeldLock>> {
        let mut tx = self.pool.begin().await?;
        let held = live_locks(&mut tx, bucket, key).await?;
        if let Some(blocking) = conflict(&held, &who.session, who.owner, change) {
            return Ok(Some(blocking.clone()));
        }
        let mine: Vec<LockRange> = held
            .iter()
            .filter(|h| h.session == who.session && h.owner == who.owner)
            .map(|h| h.range)
            .collect();
        let after = apply(&mine, change);
        sqlx::query(
            "DELETE FROM file_locks WHERE bucket_id = $1 AND key = $2 AND session = $3 AND owner = $4",
        )
        .bind(bucket.id)
        .bind(key)
        .bind(&who.session)
        .bind(who.owner as i64)
        .execute(&mut *tx)
        .await?;
        if !after.is_empty() {
            sqlx::query(
                "INSERT INTO file_locks (bucket_id, key, session, owner, kind, range_start, range_end, pid, lease_until)
                 SELECT $1, $2, $3, $4, u.kind, u.s, u.e, u.pid, now() + make_interval(secs => $9)
                 FROM unnest($5::text[], $6::bigint[], $7::bigint[], $8::integer[]) AS u(kind, s, e, pid)",
            )
            .bind(bucket.id)
            .bind(key)
            .bind(&who.session)
            .bind(who.owner as i64)
            .bind(after.iter().map(|r| kind_name(r.kind)).collect::<Vec<_>>())
            .bind(after.iter().map(|r| r.start as i64).collect::<Vec<_>>())
            .bind(after.iter().map(|r| r.end as i64).collect::<Vec<_>>())
            .bind(after.iter().map(|r| r.pid as i32).collect::<Vec<_>>())
            .bind(lease_secs as f64)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(None)
    }

    /// The lock that taking `want` would meet (F_GETLK), if any.
    pub async fn test_lock(
        &self,
        bucket: &Bucket,
        key: &str,
        who: &LockOwner,
        want: &LockRange,
    ) -> Result<Option<HeldLock>> {
        let mut tx = self.pool.begin().await?;
        let held = live_locks(&mut tx, bucket, key).await?;
        tx.commit().await?;
        Ok(conflict(&held, &who.session, who.owner, want).cloned())
    }

    /// Extends every lock of `session` by `lease_secs` (or drops them all
    /// with `release`); answers how many there are.
    pub async fn renew_locks(&self, session: &str, lease_secs: u64, release: bool) -> Result<u64> {
        let done = if release {
            sqlx::query("DELETE FROM file_locks WHERE session = $1")
                .bind(session)
                .execute(&self.pool)
                .await?
        } else {
            sqlx::query(
                "UPDATE file_locks SET lease_until = now() + make_interval(secs => $2)
                 WHERE session = $1 AND lease_until > now()",
            )
            .bind(session)
            .bind(lease_secs as f64)
            .execute(&self.pool)
            .await?
        };
        Ok(done.rows_affected())
    }
}
