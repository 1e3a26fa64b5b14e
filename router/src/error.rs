//! The router's one error type, and its mapping to S3 error codes: the only
//! place where a failure becomes an S3 status and code.

use s3s::{S3Error, S3ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the bucket does not exist")]
    NoSuchBucket,
    #[error("the key does not exist")]
    NoSuchKey,
    /// No current version: the newest is this delete marker.
    #[error("the key does not exist (deleted)")]
    DeletedKey(String),
    #[error("the version does not exist")]
    NoSuchVersion,
    #[error("the version is a delete marker")]
    DeleteMarker,
    #[error("the upload does not exist")]
    NoSuchUpload,
    #[error("the bucket already exists and is yours")]
    BucketExists,
    #[error("the bucket name is taken by another owner")]
    BucketTaken,
    #[error("access denied")]
    AccessDenied,
    #[error("the version is locked (object lock retention or legal hold)")]
    ObjectLocked,
    #[error("{0}")]
    InvalidBucketState(String),
    #[error("the bucket has no object lock configuration")]
    NoObjectLockConfiguration,
    #[error("the bucket has no lifecycle configuration")]
    NoSuchLifecycleConfiguration,
    #[error("the policy is malformed: {0}")]
    MalformedPolicy(String),
    #[error("the ACL is malformed: {0}")]
    MalformedAcl(String),
    #[error("invalid tag: {0}")]
    InvalidTag(String),
    #[error("the bucket has no tags")]
    NoSuchTagSet,
    #[error("the bucket has no CORS configuration")]
    NoSuchCorsConfiguration,
    #[error("the bucket has no policy")]
    NoSuchBucketPolicy,
    #[error("the bucket has no public access block configuration")]
    NoSuchPublicAccessBlock,
    #[error("the bucket is not empty")]
    BucketNotEmpty,
    #[error("the Content-MD5 you sent does not match the body")]
    BadDigest,
    #[error("{header} is {expected} but the body's is {actual}")]
    BadChecksum {
        header: &'static str,
        expected: String,
        actual: String,
    },
    #[error("the Content-MD5 header is malformed")]
    InvalidDigest,
    #[error("the body ended before its declared length: {0}")]
    IncompleteBody(String),
    #[error("the body is larger than the {0} bytes allowed")]
    EntityTooLarge(u64),
    #[error("key is longer than 1024 bytes")]
    KeyTooLong,
    #[error("the user metadata is {0} bytes; at most 2048 are allowed")]
    MetadataTooLarge(usize),
    #[error("a DeleteObjects request may name at most 1000 keys, not {0}")]
    TooManyKeys(usize),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("the range cannot be satisfied")]
    InvalidRange,
    #[error("the object has no part {0}")]
    InvalidPartNumber(i32),
    #[error("a precondition failed")]
    PreconditionFailed,
    #[error("not modified")]
    NotModified,
    #[error("part {0} is missing or its ETag does not match")]
    InvalidPart(i32),
    #[error("parts must be listed in ascending order")]
    InvalidPartOrder,
    #[error("part {0} is smaller than the 5 MiB minimum")]
    EntityTooSmall(i32),
    #[error("only {live} storage nodes accepted the chunk; {needed} needed")]
    InsufficientReplicas { live: usize, needed: usize },
    #[error("no replica of chunk {0} could be read")]
    ChunkUnavailable(String),
    #[error("metadata store: {0}")]
    Db(#[from] sqlx::Error),
    #[error("no snapshot named {0}")]
    NoSuchSnapshot(String),
    #[error("a snapshot named {0} exists")]
    SnapshotExists(String),
    #[error("internal: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for S3Error {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::NoSuchBucket => S3ErrorCode::NoSuchBucket,
            Error::NoSuchKey | Error::DeletedKey(_) => S3ErrorCode::NoSuchKey,
            Error::NoSuchVersion => S3ErrorCode::NoSuchVersion,
            Error::DeleteMarker => S3ErrorCode::MethodNotAllowed,
            Error::NoSuchUpload => S3ErrorCode::NoSuchUpload,
            Error::BucketExists => S3ErrorCode::BucketAlreadyOwnedByYou,
            Error::BucketTaken => S3ErrorCode::BucketAlreadyExists,
            Error::AccessDenied | Error::ObjectLocked => S3ErrorCode::AccessDenied,
            Error::InvalidBucketState(_) => S3ErrorCode::InvalidBucketState,
            Error::NoObjectLockConfiguration => S3ErrorCode::ObjectLockConfigurationNotFoundError,
            Error::NoSuchLifecycleConfiguration => S3ErrorCode::NoSuchLifecycleConfiguration,
            Error::MalformedPolicy(_) => S3ErrorCode::MalformedPolicy,
            Error::MalformedAcl(_) => S3ErrorCode::MalformedACLError,
            Error::NoSuchBucketPolicy => S3ErrorCode::NoSuchBucketPolicy,
            Error::InvalidTag(_) => S3ErrorCode::InvalidTag,
            Error::NoSuchTagSet => S3ErrorCode::NoSuchTagSet,
            Error::NoSuchCorsConfiguration => S3ErrorCode::NoSuchCORSConfiguration,
            Error::NoSuchPublicAccessBlock => S3ErrorCode::Custom(bytestring::ByteString::from_static(
                "NoSuchPublicAccessBlockConfiguration",
            )),
            Error::BucketNotEmpty => S3ErrorCode::BucketNotEmpty,
            Error::BadDigest | Error::BadChecksum { .. } => S3ErrorCode::BadDigest,
            Error::InvalidDigest => S3ErrorCode::InvalidDigest,
            Error::IncompleteBody(_) => S3ErrorCode::IncompleteBody,
            Error::EntityTooLarge(_) => S3ErrorCode::EntityTooLarge,
            Error::KeyTooLong => S3ErrorCode::KeyTooLongError,
            Error::MetadataTooLarge(_) => S3ErrorCode::MetadataTooLarge,
            Error::TooManyKeys(_) => S3ErrorCode::MalformedXML,
            Error::InvalidArgument(_) => S3ErrorCode::InvalidArgument,
            Error::InvalidRange => S3ErrorCode::InvalidRange,
            Error::InvalidPartNumber(_) => {
                S3ErrorCode::Custom(bytestring::ByteString::from_static("InvalidPartNumber"))
            }
            Error::PreconditionFailed => S3ErrorCode::PreconditionFailed,
            Error::NotModified => S3ErrorCode::NotModified,
            Error::InvalidPart(_) => S3ErrorCode::InvalidPart,
            Error::InvalidPartOrder => S3ErrorCode::InvalidPartOrder,
            Error::EntityTooSmall(_) => S3ErrorCode::EntityTooSmall,
            Error::InsufficientReplicas { .. } => S3ErrorCode::ServiceUnavailable,
            Error::ChunkUnavailable(_) | Error::Db(_) => S3ErrorCode::ServiceUnavailable,
            Error::Internal(_) => S3ErrorCode::InternalError,
            Error::NoSuchSnapshot(_) => {
                S3ErrorCode::Custom(bytestring::ByteString::from_static("NoSuchSnapshot"))
            }
            Error::SnapshotExists(_) => {
                S3ErrorCode::Custom(bytestring::ByteString::from_static("SnapshotAlreadyExists"))
            }
        };
        if matches!(e, Error::Db(_) | Error::Internal(_) | Error::ChunkUnavailable(_)) {
            tracing::error!(error = %e, "request failed");
        }
        let mut err = S3Error::with_message(code, e.to_string());
        match e {
            Error::NoSuchPublicAccessBlock | Error::NoSuchSnapshot(_) => {
                err.set_status_code(http::StatusCode::NOT_FOUND)
            }
            Error::SnapshotExists(_) => err.set_status_code(http::StatusCode::CONFLICT),
            Error::InvalidPartNumber(_) => err.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE),
            _ => {}
        }
        // S3 names the delete marker a GET or HEAD ran into.
        let marker = match &e {
            Error::DeleteMarker => Some(None),
            Error::DeletedKey(version_id) => Some(Some(version_id.as_str())),
            _ => None,
        };
        if let Some(version_id) = marker {
            let mut headers = http::HeaderMap::new();
            headers.insert("x-amz-delete-marker", http::HeaderValue::from_static("true"));
            if let Some(v) = version_id.and_then(|v| http::HeaderValue::from_str(v).ok()) {
                headers.insert("x-amz-version-id", v);
            }
            err.set_headers(headers);
        }
        err
    }
}
