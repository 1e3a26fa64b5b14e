//! The metadata store: every Postgres query the router makes lives here.
//!
//! Writes to one key are serialised by a transaction-scoped advisory lock on
//! (bucket, key), so version order, the current-version pointer and the
//! removal of replaced `null` versions stay consistent across routers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::Connection;
use time::OffsetDateTime;

use crate::error::{Error, Result};

mod access;
mod changes;
mod chunks;
mod compaction;
mod file_locks;
mod history;
mod inventory;
mod lifecycle;
mod locks;
mod objects;
mod space;
pub mod sql;
mod status;
mod tagging;
mod uploads;
mod users;

pub use changes::Change;
pub use file_locks::LockOwner;
pub use history::{PastKey, Snapshot};
pub use locks::VersionLock;
pub use space::Space;
pub use status::{ChunkHealth, NodeRow, PassReport, WorkerProgress};
pub use users::{KeyListing, KeyOwner, User};

pub const NULL_VERSION: &str = "null";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Bucket {
    pub id: i64,
    pub name: String,
    pub versioning: String,
    pub created_at: OffsetDateTime,
    /// The owner's canonical id; `None` for a bucket made before owners.
    pub owner_id: Option<String>,
    /// ACL grants beyond the owner's (see `access::acl`).
    pub acl: Json,
    /// The bucket policy document, as put.
    pub policy: Option<String>,
    /// The public access block configuration (see `access`).
    pub public_access_block: Option<Json>,
    /// The object lock configuration; `None` when lock is not enabled.
    pub object_lock: Option<Json>,
    /// Lifecycle rules (`crate::lifecycle::Rule`s); `None`: none.
    pub lifecycle: Option<Json>,
    /// Bucket tags, `[key, value]` pairs; `None`: none.
    pub tagging: Option<Json>,
    /// CORS rules (`crate::cors::Rule`s); `None`: none.
    pub cors: Option<Json>,
}

/// The columns of `buckets` a `Bucket` is read from.
const BUCKET_COLUMNS: &str =
    "id, name, versioning, created_at, owner_id, acl, policy, public_access_block, object_lock, lifecycle, tagging, cors";

impl Bucket {
    pub fn versioning_enabled(&self) -> bool {
        self.versioning == "Enabled"
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Version {
    pub id: i64,
    pub key: String,
    pub version_id: String,
    pub delete_marker: bool,
    pub size: i64,
    pub etag: String,
    pub content_type: Option<String>,
    pub metadata: Json,
    pub parts_count: Option<i32>,
    pub created_at: OffsetDateTime,
    /// How many tags the version has (read by `Meta::version` only).
    #[sqlx(default)]
    pub tag_count: i32,
    /// The key's link group and its number of names, when it has one
    /// (read for current versions by `Meta::version` and `list_current`).
    #[sqlx(default)]
    pub link_group: Option<i64>,
    #[sqlx(default)]
    pub link_count: Option<i64>,
}

impl Version {
    /// The user metadata (`x-amz-meta-*`), without the standard headers
    /// stored beside it (names starting with `:`, see `s3::headers`).
    pub fn user_metadata(&self) -> HashMap<String, String> {
        let mut all = self.stored_metadata();
        all.retain(|name, _| !name.starts_with(':'));
        all
    }

    /// Everything stored as metadata: user metadata and standard headers.
    pub fn stored_metadata(&self) -> HashMap<String, String> {
        serde_json::from_value(self.metadata.clone()).unwrap_or_default()
    }
}

/// A byte range of one chunk: the unit of every chunk map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub chunk_id: String,
    pub chunk_offset: i64,
    pub length: i64,
}

/// A piece of a version with its place in the object and its replicas.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PieceLocation {
    pub object_offset: i64,
    pub chunk_id: String,
    pub chunk_offset: i32,
    pub length: i32,
    pub chunk_size: i32,
    pub crc32c: i64,
    /// BLAKE3 of the whole chunk (hex); `None` for chunks written before it.
    pub content_hash: Option<String>,
    pub replicas: Vec<String>,
}

/// A chunk with the nodes holding its replicas, for repair and collection.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChunkReplicas {
    pub id: String,
    pub size: i32,
    pub crc32c: i64,
    pub content_hash: Option<String>,
    pub replicas: Vec<String>,
}

/// A chunk on a write quorum whose row is not written yet: recorded in the
/// same transaction as the version that names it (`commit_version_recording`).
#[derive(Debug, Clone)]
pub struct NewChunk {
    pub id: String,
    pub size: i64,
    pub crc32c: u32,
    /// BLAKE3 of the payload, hex.
    pub content_hash: std::sync::Arc<str>,
    pub replicas: Vec<String>,
    /// How long the chunk stays leased (`--gc-grace-secs`).
    pub lease_secs: f64,
}

/// What a PUT, copy or multipart completion is about to make current.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub key: String,
    pub size: i64,
    pub etag: String,
    pub content_type: Option<String>,
    pub metadata: HashMap<String, String>,
    pub parts_count: Option<i32>,
    pub pieces: Vec<Piece>,
    pub precondition: WritePrecondition,
    /// Commit the version to every name of the key's link group (the
    /// mount's writes); otherwise the key leaves its group (migration 0013).
    pub follow_links: bool,
}

/// A condition checked under the key lock just before a version is committed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum WritePrecondition {
    #[default]
    None,
    /// `If-None-Match: *`: the key must not exist.
    Absent,
    /// `If-Match: "etag"`: the current version must have this ETag.
    EtagIs(String),
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Upload {
    pub upload_id: String,
    pub bucket_id: i64,
    pub key: String,
    pub content_type: Option<String>,
    pub metadata: Json,
    /// ACL, lock and tags for the version completion makes (`s3::settings`).
    #[sqlx(default)]
    pub settings: Json,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Part {
    pub part_number: i32,
    pub size: i64,
    pub etag: String,
    pub created_at: OffsetDateTime,
}

/// What a delete did, for the response headers.
#[derive(Debug, Clone, Default)]
pub struct Deleted {
    pub delete_marker: bool,
    pub version_id: Option<String>,
}

#[derive(Clone)]
pub struct Meta {
    pool: PgPool,
    buckets: Arc<Mutex<HashMap<String, (Bucket, Instant)>>>,
}

/// How long object requests reuse a bucket's row. Versioning is read
/// afresh where it decides anything (commit, delete), so a stale row can
/// only answer NoSuchKey instead of NoSuchBucket for this long after the
/// bucket is deleted through another router.
const BUCKET_TTL: Duration = Duration::from_secs(1);

/// A version id that sorts by creation time: 12 hex digits of milliseconds and 20 random.
pub fn new_version_id() -> String {
    let ms = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    format!("{:012x}{}", ms, hex::encode(rand::random::<[u8; 10]>()))
}

pub fn new_upload_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

impl Meta {
    /// Connects lazily: the router starts even while Postgres is down.
    pub fn connect_lazy(url: &str) -> Result<Self> {
        // Every query is a short indexed lookup or range scan whose best plan
        // does not depend on its parameters. Postgres's default re-plans a
        // prepared statement per call while the plan looks parameter
        // dependent, which was most of a listing query's time (0.45 ms of
        // planning against 0.25 ms of execution).
        //
        // No JIT: a generic plan's row estimates can be huge (a work list
        // planned as if every replica were on it), and Postgres then spent
        // 450 ms compiling a repair query that ran in 27 ms.
        let options = url
            .parse::<PgConnectOptions>()?
            .options([("plan_cache_mode", "force_generic_plan"), ("jit", "off")]);
        let pool = PgPoolOptions::new()
            .max_connections(32)
            .acquire_timeout(Duration::from_secs(10))
            // A connection idle a while may have outlived a Postgres restart:
            // ping it first. Pinging every one (sqlx's default) was a tenth of
            // a router's CPU on small GETs and a round trip per query.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= Duration::from_secs(1) {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .connect_lazy_with(options);
        Ok(Self {
            pool,
            buckets: Arc::default(),
        })
    }

    /// Applies the migrations, retrying until Postgres answers.
    pub async fn migrate(&self) {
        loop {
            match sqlx::migrate!("./migrations").run(&self.pool).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "migrations failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    // ---- buckets -----------------------------------------------------------

    /// Makes bucket `name`, owned by `owner`, with ACL `acl`.
    pub async fn create_bucket(&self, name: &str, owner: &str, acl: &Json) -> Result<()> {
        let inserted = sqlx::query(
            "INSERT INTO buckets (name, owner_id, acl) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(owner)
        .bind(acl)
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 0 {
            let existing = self.bucket_uncached(name).await?;
            return Err(match existing.owner_id.as_deref() {
                Some(o) if o != owner => Error::BucketTaken,
                _ => Error::BucketExists,
            });
        }
        Ok(())
    }

    /// The bucket for an object request: cached for `BUCKET_TTL`, since
    /// every request names one and its row rarely changes.
    pub async fn bucket(&self, name: &str) -> Result<Bucket> {
        if let Some((bucket, at)) = self.buckets.lock().unwrap().get(name) {
            if at.elapsed() < BUCKET_TTL {
                return Ok(bucket.clone());
            }
        }
        let bucket = self.bucket_uncached(name).await?;
        self.buckets
            .lock()
            .unwrap()
            .insert(name.to_string(), (bucket.clone(), Instant::now()));
        Ok(bucket)
    }

    /// Runs `statement` (`$1` the bucket id, `$2` the value) on a bucket's
    /// row and forgets the cached copy.
    async fn update_bucket<'q, T>(&self, bucket: &Bucket, statement: &'q str, value: T) -> Result<()>
    where
        T: 'q + Send + sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    {
        sqlx::query(statement)
            .bind(bucket.id)
            .bind(value)
            .execute(&self.pool)
            .await?;
        self.buckets.lock().unwrap().remove(&bucket.name);
        Ok(())
    }

    /// The bucket as Postgres has it now, for bucket-level requests.
    pub async fn bucket_uncached(&self, name: &str) -> Result<Bucket> {
        self.buckets.lock().unwrap().remove(name);
        sqlx::query_as(&format!("SELECT {BUCKET_COLUMNS} FROM buckets WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(Error::NoSuchBucket)
    }

    /// The buckets `owner` owns, and those made before owners existed.
    pub async fn buckets(&self, owner: &str) -> Result<Vec<Bucket>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {BUCKET_COLUMNS} FROM buckets WHERE owner_id = $1 OR owner_id IS NULL ORDER BY name"
        ))
        .bind(owner)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Deletes an empty bucket (no version, delete markers included),
    /// aborting its unfinished multipart uploads as S3 does; their parts'
    /// chunks are left to garbage collection.
    pub async fn delete_bucket(&self, bucket: &Bucket) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let busy: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM versions WHERE bucket_id = $1)")
            .bind(bucket.id)
            .fetch_one(&mut *tx)
            .await?;
        if busy {
            return Err(Error::BucketNotEmpty);
        }
        sqlx::query("DELETE FROM uploads WHERE bucket_id = $1")
            .bind(bucket.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM buckets WHERE id = $1")
            .bind(bucket.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.buckets.lock().unwrap().remove(&bucket.name);
        Ok(())
    }

    pub async fn set_versioning(&self, bucket: &Bucket, status: &str) -> Result<()> {
        sqlx::query("UPDATE buckets SET versioning = $2 WHERE id = $1")
            .bind(bucket.id)
            .bind(status)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// How long a trivial query takes: Postgres's health.
    pub async fn ping(&self) -> Result<std::time::Duration> {
        let started = std::time::Instant::now();
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(started.elapsed())
    }
}
