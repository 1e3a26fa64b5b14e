//! The bucketfs extensions of S3 that the FUSE client speaks to the router,
//! written once for both: the rename and batch calls, the listing with
//! metadata, ETags from chunk ids, and the chunk size that multipart parts
//! follow.

/// The router's chunk size; the client's multipart part size equals it, so
/// a part copied by reference is whole chunks and a changed byte re-uploads
/// one chunk.
pub const CHUNK_SIZE: usize = 8 << 20;

/// `POST /{bucket}?bucketfs-rename` moves a key or a prefix in one transaction.
pub const RENAME_QUERY: &str = "bucketfs-rename";
/// The source key, or source prefix (`dir/`), percent-encoded.
pub const RENAME_FROM_HEADER: &str = "x-bucketfs-rename-from";
/// The destination key or prefix, percent-encoded.
pub const RENAME_TO_HEADER: &str = "x-bucketfs-rename-to";
/// `true`: move every key starting with the source.
pub const RENAME_PREFIX_HEADER: &str = "x-bucketfs-rename-prefix";
/// `true`: fail (412) if any destination exists.
pub const NO_REPLACE_HEADER: &str = "x-bucketfs-no-replace";

/// `POST /{bucket}?bucketfs-batch` stores many small objects in one call
/// (the manifest format is in the router's `s3/batch.rs`).
pub const BATCH_QUERY: &str = "bucketfs-batch";
/// Most objects in one batch (as many as one DeleteObjects call takes).
pub const BATCH_MAX_OBJECTS: usize = 1000;
/// Most bytes of objects in one batch: one chunk.
pub const BATCH_MAX_BYTES: usize = CHUNK_SIZE;

/// A PUT or part carrying `x-bucketfs-etag: chunks` (and no Content-MD5)
/// gets an ETag made from its chunk ids instead of the MD5 of its bytes.
pub const ETAG_HEADER: &str = "x-bucketfs-etag";
pub const ETAG_FROM_CHUNKS: &str = "chunks";

/// A listing with `metadata=true` answered with `x-bucketfs-metadata: items`
/// carries each key's metadata and version id, and each prefix's marker.
pub const METADATA_HEADER: &str = "x-bucketfs-metadata";
pub const METADATA_ITEMS: &str = "items";
