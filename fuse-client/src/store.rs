//! The seam between the filesystem core and the object store: exactly the
//! calls `Fs`, the writer, the block cache and the delete queue make, and
//! the types they speak.
//!
//! `s3.rs` implements it over HTTP (standard S3 plus the bucketfs router's
//! extensions); `memory.rs` implements it in memory, with versions,
//! preconditions and injected faults, so that the core is tested without a
//! cluster (the model-based tests in `tests/model.rs`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};

pub use bucketfs_common::extension::{ChangeEntry, ChangePage};
pub use bucketfs_common::file_locks::{LockKind, LockRange};

use crate::error::FsError;

/// The store as the core holds it.
pub type Store = Arc<dyn ObjectStore>;

/// User metadata of an object, keys without `x-amz-meta-`.
pub type Metadata = HashMap<String, String>;

/// Hands out a buffer for one block of a ranged read (it may be recycled).
pub type BlockBuffer<'a> = &'a (dyn Fn() -> BytesMut + Send + Sync);

/// Which stored object a read must see: the object as it was when the file
/// was opened, so a concurrent replacement never mixes two versions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Source {
    pub key: String,
    /// Read this version (a `--at` view, or a versioned bucket).
    pub version_id: Option<String>,
    /// Otherwise insist on this ETag (`If-Match`).
    pub etag: String,
}

/// The answer to a lock request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockAnswer {
    /// Done; a taken lock comes with the key's current ETag when the store
    /// tells it (none: the key has no object, or the store did not say).
    Granted(Option<String>),
    /// Another owner's lock is in the way.
    Blocked(LockRange),
}

/// What a HEAD or a listing tells about an object.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    pub size: u64,
    pub etag: String,
    pub version_id: Option<String>,
    pub mtime: SystemTime,
    /// User metadata, keys without `x-amz-meta-`.
    pub metadata: Metadata,
    /// The key's hard-link group and its number of names, when it is in one
    /// (a bucketfs router's HEAD and listings tell; see `link`).
    pub links: Option<(u64, u32)>,
}

impl Default for ObjectInfo {
    fn default() -> Self {
        Self {
            size: 0,
            etag: String::new(),
            version_id: None,
            mtime: SystemTime::UNIX_EPOCH,
            metadata: HashMap::new(),
            links: None,
        }
    }
}

/// One page of a listing with delimiter `/`.
#[derive(Debug, Default)]
pub struct Listing {
    pub objects: Vec<(String, ObjectInfo)>,
    pub prefixes: Vec<String>,
    /// What the listing tells of a prefix's own key (its directory marker):
    /// `Some(info)` when it exists, `None` when it does not. Prefixes the
    /// listing cannot tell about are not here.
    pub markers: HashMap<String, Option<ObjectInfo>>,
    pub next: Option<String>,
    /// The objects' infos are whole (metadata and version ids), as a HEAD's.
    pub attributes: bool,
}

/// One entry of ListObjectVersions.
#[derive(Debug, Clone)]
pub struct VersionEntry {
    pub key: String,
    pub version_id: String,
    pub delete_marker: bool,
    pub info: ObjectInfo,
}

/// One page of ListObjectVersions with delimiter `/`.
#[derive(Debug, Default)]
pub struct VersionListing {
    pub versions: Vec<VersionEntry>,
    pub prefixes: Vec<String>,
    /// (key marker, version id marker) of the next page.
    pub next: Option<(String, String)>,
}

/// The object store under a mount: one bucket.
///
/// Errors are `FsError`s already: the implementation maps its failures
/// (`FsError::from_s3` for HTTP answers). A read of a `Source` whose ETag no
/// longer matches fails with `FsError::Stale`.
#[async_trait::async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// The object's info, or `None` if there is none (or a delete marker).
    async fn head(&self, key: &str, version_id: Option<&str>) -> Result<Option<ObjectInfo>, FsError>;

    /// Bytes `start..start+len` of the object `source` names (fewer at its end).
    async fn get_range(&self, source: &Source, start: u64, len: u64) -> Result<Bytes, FsError>;

    /// As `get_range`, cut into buffers of `block` bytes each (the last may
    /// be short), each from `buffer`.
    async fn get_range_blocks(
        &self,
        source: &Source,
        start: u64,
        len: u64,
        block: usize,
        buffer: BlockBuffer<'_>,
    ) -> Result<Vec<Bytes>, FsError>;

    /// Stores `body` as the new version of `key` (one PutObject call);
    /// with `base`, only if the key holds that ETag now (`Some(None)`: only
    /// if it holds nothing), else `Stale`.
    async fn put_object(
        &self,
        key: &str,
        body: Bytes,
        meta: &Metadata,
        base: Option<Option<&str>>,
    ) -> Result<ObjectInfo, FsError>;

    /// Stores `body` as the new version of `key`, whatever it holds.
    async fn put(&self, key: &str, body: Bytes, meta: &Metadata) -> Result<ObjectInfo, FsError> {
        self.put_object(key, body, meta, None).await
    }

    /// A PUT made only if `key` holds the object of ETag `base` now (with
    /// `None`: only if it holds nothing); `Stale` otherwise.
    async fn put_if(
        &self,
        key: &str,
        body: Bytes,
        meta: &Metadata,
        base: Option<&str>,
    ) -> Result<ObjectInfo, FsError> {
        self.put_object(key, body, meta, Some(base)).await
    }

    /// As `put`, for a background commit: a store may hold a small body back
    /// to send it with others in one call.
    async fn put_batched(&self, key: &str, body: Bytes, meta: &Metadata) -> Result<ObjectInfo, FsError> {
        self.put(key, body, meta).await
    }

    /// Stores a new version of `base.key` made of the current version (which
    /// must have `base.etag`, else `Stale`) with `ranges` (offset, length)
    /// replaced by consecutive bytes of `body`, cut or extended to `size`,
    /// with metadata `meta`. `Unsupported` when the store has no such call:
    /// the caller then uploads the whole object.
    async fn patch(
        &self,
        base: &Source,
        size: u64,
        ranges: &[(u64, u64)],
        body: Bytes,
        meta: &Metadata,
    ) -> Result<ObjectInfo, FsError>;

    /// Copies `source` to `key` with `meta` (CopyObject, by reference on
    /// bucketfs: no bytes move); answers the new ETag.
    async fn copy(&self, source: &Source, key: &str, meta: &Metadata) -> Result<String, FsError>;

    /// Replaces the metadata of `source` by copying the object onto itself;
    /// answers the new ETag.
    async fn set_metadata(&self, source: &Source, meta: &Metadata) -> Result<String, FsError> {
        self.copy(source, &source.key, meta).await
    }

    /// Deletes `key`; a key that is not there is not an error.
    async fn delete(&self, key: &str) -> Result<(), FsError>;

    /// Deletes up to 1,000 keys in one call; answers the keys the store
    /// could not delete, with their error codes.
    async fn delete_many(&self, keys: &[String]) -> Result<Vec<(String, String)>, FsError>;

    /// Starts a multipart upload; answers its id.
    async fn create_upload(&self, key: &str, meta: &Metadata) -> Result<String, FsError>;

    /// Uploads part `number` (from 1); answers its ETag.
    async fn upload_part(&self, key: &str, upload: &str, number: u32, body: Bytes)
        -> Result<String, FsError>;

    /// A part made of bytes `start..end` of `source`, by reference.
    async fn upload_part_copy(
        &self,
        key: &str,
        upload: &str,
        number: u32,
        source: &Source,
        start: u64,
        end: u64,
    ) -> Result<String, FsError>;

    /// Completes the upload from its parts' ETags, in order.
    async fn complete_upload(&self, key: &str, upload: &str, etags: &[String])
        -> Result<ObjectInfo, FsError>;

    /// Drops an upload; failures are only logged.
    async fn abort_upload(&self, key: &str, upload: &str);

    /// One page of the keys under `prefix`, folded at `/`.
    async fn list(&self, prefix: &str, token: Option<&str>, max_keys: usize) -> Result<Listing, FsError>;

    /// One page of the keys under `prefix` that sort after `after`, folded at `/`.
    async fn list_after(&self, prefix: &str, after: &str, max_keys: usize) -> Result<Listing, FsError>;

    /// The first `max_keys` keys under `prefix`, at any depth (no delimiter).
    async fn list_tree(&self, prefix: &str, max_keys: usize) -> Result<Listing, FsError>;

    /// One page of every version under `prefix`, folded at `/`.
    async fn list_versions(
        &self,
        prefix: &str,
        marker: Option<&(String, String)>,
    ) -> Result<VersionListing, FsError>;

    /// The bucket's snapshots (name, moment), oldest first: the bucketfs
    /// time-travel extension's; none elsewhere.
    async fn snapshots(&self) -> Result<Vec<(String, SystemTime)>, FsError> {
        Ok(Vec::new())
    }

    /// Moves a key, or every key under a prefix (`prefix`), as one change.
    /// `NotFound` when nothing matches; `Exists` when `no_replace` and a
    /// destination exists.
    async fn rename(&self, from: &str, to: &str, prefix: bool, no_replace: bool) -> Result<(), FsError>;

    /// Makes `to` a hard link of `from`: both names then share one link
    /// group, and every write through any name (each commit above) gives
    /// all of them its version. `meta` replaces the group's metadata (a
    /// link changes ctime). Answers `to`'s info with its link count;
    /// `Exists` when `to` exists, `NotFound` without `from`,
    /// `NotSupported` on a store without links.
    async fn link(&self, from: &str, to: &str, meta: &Metadata) -> Result<ObjectInfo, FsError>;

    /// Every name of `key`'s link group (`key` alone without one).
    async fn link_names(&self, key: &str) -> Result<Vec<String>, FsError>;

    /// Takes or releases (`change`) a lock of `key` for `owner` of
    /// `session` (a mount), held while the session is renewed; or answers
    /// the other owner's lock in the way, changing nothing. `NotSupported`
    /// on a store without locks.
    async fn lock(
        &self,
        key: &str,
        session: &str,
        owner: u64,
        change: &LockRange,
    ) -> Result<LockAnswer, FsError>;

    /// The lock taking `want` would meet (F_GETLK), if any.
    async fn test_lock(
        &self,
        key: &str,
        session: &str,
        owner: u64,
        want: &LockRange,
    ) -> Result<Option<LockRange>, FsError>;

    /// The change feed: changes of the bucket after `after` (with `wait`,
    /// waiting a while for one), or with none, where the feed stands.
    /// `NotSupported` on a store without one.
    async fn changes(&self, after: Option<u64>, wait: bool) -> Result<ChangePage, FsError>;

    /// Renews every lock of `session` for another lease, or drops them
    /// (`release`).
    async fn renew_locks(&self, session: &str, release: bool) -> Result<(), FsError>;
}
