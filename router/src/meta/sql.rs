//! Statements shared by the rooms of `meta`, run inside a caller's
//! transaction, and the mapping of their errors.

use sqlx::{Postgres, Row, Transaction};

use super::*;

/// A chunk `c` that no version's map and no upload part names: garbage
/// once its lease has run out. (Public for the tests' checks.)
pub const UNREFERENCED_CHUNK: &str = "NOT EXISTS (SELECT 1 FROM version_chunks v WHERE v.chunk_id = c.id)
     AND NOT EXISTS (SELECT 1 FROM part_chunks p WHERE p.chunk_id = c.id)";
use crate::error::{Error, Result};

/// The version whose `version_chunks` rows hold version `$1`'s map: itself,
/// or the one it shares them with (`map_of`, migration 0025). Resolved in
/// the statement that reads the rows, so a map handed on meanwhile is
/// still found. (A macro, so queries can `concat!` it.)
macro_rules! map_owner_of_1 {
    () => {
        "(SELECT COALESCE(map_of, id) FROM versions WHERE id = $1)"
    };
}
pub(super) use map_owner_of_1;

/// The pieces of version `$1`'s chunk map, in object order.
pub const MAP_PIECES: &str = concat!(
    "SELECT chunk_id, chunk_offset, length FROM version_chunks WHERE version = ",
    map_owner_of_1!(),
    " ORDER BY idx"
);

/// The SQLSTATE Postgres answered with (`BF…` for what the functions of
/// the migrations raise), if any.
pub(super) fn state_of(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
}

/// The error of a `delete_current` call (it raises BF400 for a missing bucket).
pub(super) fn delete_error(e: sqlx::Error) -> Error {
    match state_of(&e).as_deref() {
        Some("BF400") => Error::NoSuchBucket,
        _ => Error::from(e),
    }
}

/// Deletes the key's current version with one call of the `delete_current`
/// function (migration 0003).
pub(super) async fn delete_in<'e>(
    db: impl sqlx::PgExecutor<'e>,
    bucket: &Bucket,
    key: &str,
) -> Result<Deleted> {
    let (delete_marker, version_id): (bool, Option<String>) =
        sqlx::query_as("SELECT * FROM delete_current($1, $2, $3)")
            .bind(bucket.id)
            .bind(key)
            .bind(new_version_id())
            .fetch_one(db)
            .await
            .map_err(delete_error)?;
    Ok(Deleted {
        delete_marker,
        version_id,
    })
}

/// Commits `new` as the key's current version with one call of the
/// `commit_version` function (migrations 0002 and 0013), or of
/// `commit_version_with_chunk` (0016) that first records `chunk`.
pub(super) async fn commit_in<'e>(
    db: impl sqlx::PgExecutor<'e>,
    bucket: &Bucket,
    new: NewVersion,
    chunk: Option<&NewChunk>,
) -> Result<Version> {
    let (precondition, precondition_etag) = match &new.precondition {
        WritePrecondition::None => (None, None),
        WritePrecondition::Absent => (Some("absent"), None),
        WritePrecondition::EtagIs(etag) => (Some("etag"), Some(etag.as_str())),
    };
    let mut offsets = Vec::with_capacity(new.pieces.len());
    let mut offset = 0i64;
    for p in &new.pieces {
        offsets.push(offset);
        offset += p.length;
    }
    let chunk_ids: Vec<&str> = new.pieces.iter().map(|p| p.chunk_id.as_str()).collect();
    let chunk_offsets: Vec<i32> = new.pieces.iter().map(|p| p.chunk_offset as i32).collect();
    let lengths: Vec<i32> = new.pieces.iter().map(|p| p.length as i32).collect();
    let query = match chunk {
        None => "SELECT * FROM commit_version($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        Some(_) => {
            "SELECT * FROM commit_version_with_chunk($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                $15, $16, $17, $18, $19, $20, $21)"
        }
    };
    let mut query = sqlx::query_as(query)
        .bind(bucket.id)
        .bind(&new.key)
        .bind(new_version_id())
        .bind(new.size)
        .bind(&new.etag)
        .bind(&new.content_type)
        .bind(serde_json::to_value(&new.metadata).expect("metadata serialises"))
        .bind(new.parts_count)
        .bind(precondition)
        .bind(precondition_etag)
        .bind(&offsets)
        .bind(&chunk_ids)
        .bind(&chunk_offsets)
        .bind(&lengths)
        .bind(new.follow_links);
    if let Some(c) = chunk {
        query = query
            .bind(c.id.as_str())
            .bind(c.size as i32)
            .bind(i64::from(c.crc32c))
            .bind(&*c.content_hash)
            .bind(&c.replicas)
            .bind(c.lease_secs);
    }
    query.fetch_one(db).await.map_err(commit_error)
}

/// The error of a `commit_version` or `link_key` call (they raise BF4xx
/// for failed checks).
pub(super) fn commit_error(e: sqlx::Error) -> Error {
    match state_of(&e).as_deref() {
        Some("BF412") => Error::PreconditionFailed,
        Some("BF404") => Error::NoSuchKey,
        Some("BF400") => Error::NoSuchBucket,
        _ => e.into(),
    }
}

/// The columns of a current version `v` (of `current_versions c`) with its
/// link group and link count.
pub(super) const LINK_COLUMNS: &str = "l.grp AS link_group, CASE WHEN l.grp IS NOT NULL THEN
    (SELECT count(*) FROM links n WHERE n.bucket_id = l.bucket_id AND n.grp = l.grp) END AS link_count";

/// Joins a current version's `links` row as `l`, if it has one.
pub(super) const LINK_JOIN: &str = "LEFT JOIN links l ON l.bucket_id = c.bucket_id AND l.key = c.key";

pub(super) fn piece_from_row(r: &sqlx::postgres::PgRow) -> Piece {
    Piece {
        chunk_id: r.get("chunk_id"),
        chunk_offset: i64::from(r.get::<i32, _>("chunk_offset")),
        length: i64::from(r.get::<i32, _>("length")),
    }
}

/// Locks one key for a write (`lock_key`, migration 0026: its bucket's lock
/// shared, then the key's).
pub(super) async fn lock_key(tx: &mut Transaction<'_, Postgres>, bucket_id: i64, key: &str) -> Result<()> {
    sqlx::query("SELECT lock_key($1, $2)")
        .bind(bucket_id)
        .bind(key)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Locks every one of `keys` (`lock_keys`, migration 0026: in byte order,
/// as every multi-key write does, so none can deadlock another; more than
/// 1,000 by the bucket's lock alone), before the transaction writes its
/// first version: its commit stamp (migration 0023) is then taken after it
/// waited for every writer of those keys, so it comes after theirs.
pub(super) async fn lock_keys(
    tx: &mut Transaction<'_, Postgres>,
    bucket_id: i64,
    keys: &[&str],
) -> Result<()> {
    sqlx::query("SELECT lock_keys($1, $2)")
        .bind(bucket_id)
        .bind(keys)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(super) async fn set_current(
    tx: &mut Transaction<'_, Postgres>,
    bucket_id: i64,
    key: &str,
    version: Option<i64>,
) -> Result<()> {
    match version {
        Some(v) => {
            sqlx::query(
                "INSERT INTO current_versions (bucket_id, key, version) VALUES ($1, $2, $3)
             ON CONFLICT (bucket_id, key) DO UPDATE SET version = EXCLUDED.version",
            )
            .bind(bucket_id)
            .bind(key)
            .bind(v)
            .execute(&mut **tx)
            .await?
        }
        None => {
            sqlx::query("DELETE FROM current_versions WHERE bucket_id = $1 AND key = $2")
                .bind(bucket_id)
                .bind(key)
                .execute(&mut **tx)
                .await?
        }
    };
    Ok(())
}
