//! The S3 API: s3s parses and authenticates requests; each operation here
//! turns its input into metadata queries and chunk I/O. One file per family
//! of operations; errors become S3 errors only through `crate::error`.

mod access_ops;
pub(crate) mod batch;
mod buckets;
mod changes;
mod checksum;
mod cors_ops;
mod extensions;
mod file_locks;
pub(crate) mod headers;
mod history;
mod ingest;
mod lifecycle_ops;
mod link;
pub(crate) mod list;
mod locks;
mod multipart;
mod objects;
pub(crate) mod part_layout;
mod patch;
mod rename;
mod settings;
pub(crate) mod tagging;
mod wire;

pub use extensions::ExtensionRoute;

use std::sync::Arc;

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, S3};

use crate::access::Access;
use crate::chunks::ChunkIo;
use crate::error::{Error, Result};
use crate::meta::{Bucket, Meta, Version, NULL_VERSION};
use crate::metrics::Metrics;

pub use ingest::CHUNK_SIZE;

pub use bucketfs_common::extension::MAX_KEY_BYTES;

#[derive(Clone)]
pub struct Bucketfs {
    meta: Meta,
    io: ChunkIo,
    metrics: Arc<Metrics>,
    /// Judges what the access check before an operation cannot: a copy's
    /// source, each object of a batch or rename.
    access: Access,
    /// Accept browser form uploads signed with Signature Version 2 (the
    /// gate refuses other SigV2 requests before they reach here).
    allow_sigv2: bool,
}

impl Bucketfs {
    pub fn new(meta: Meta, io: ChunkIo, metrics: Arc<Metrics>, access: Access, allow_sigv2: bool) -> Self {
        Self {
            meta,
            io,
            metrics,
            access,
            allow_sigv2,
        }
    }
}

impl Bucketfs {
    /// A key's current version, or its version `version_id`, in the
    /// bucket named `bucket`, with the bucket.
    async fn version_in(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<(Bucket, Version)> {
        let bucket = self.meta.bucket(bucket).await?;
        let version = self.meta.version(&bucket, key, version_id).await?;
        Ok((bucket, version))
    }
}

fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::InvalidArgument("empty key".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::KeyTooLong);
    }
    if key.contains('\0') {
        return Err(Error::InvalidArgument("key contains a NUL character".into()));
    }
    Ok(())
}

/// The most user metadata (names and values, in bytes) an object may
/// carry, as in S3.
pub const MAX_METADATA_BYTES: usize = 2048;

/// Refuses metadata S3 would refuse: over [`MAX_METADATA_BYTES`], or a
/// content type or value with control characters (which no response header
/// could carry back).
fn check_metadata(
    metadata: &std::collections::HashMap<String, String>,
    content_type: Option<&str>,
) -> Result<()> {
    let size: usize = metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > MAX_METADATA_BYTES {
        return Err(Error::MetadataTooLarge(size));
    }
    let control = |s: &str| s.chars().any(|c| (c.is_control() && c != '\t') || c == '\u{7f}');
    if let Some(name) = metadata.keys().find(|k| k.starts_with(headers::MARK)) {
        return Err(Error::InvalidArgument(format!(
            "metadata name {name:?} is reserved"
        )));
    }
    if let Some((name, _)) = metadata.iter().find(|(k, v)| control(k) || control(v)) {
        return Err(Error::InvalidArgument(format!(
            "metadata {name:?} contains a control character"
        )));
    }
    if content_type.is_some_and(control) {
        return Err(Error::InvalidArgument(
            "the content type contains a control character".into(),
        ));
    }
    Ok(())
}

fn etag_of(v: &Version) -> ETag {
    ETag::Strong(v.etag.clone())
}

fn timestamp(t: time::OffsetDateTime) -> Timestamp {
    Timestamp::from(t)
}

fn visible_version_id(v: &Version) -> Option<String> {
    (v.version_id != NULL_VERSION).then(|| v.version_id.clone())
}

/// Whether a write asks to go through the key's hard links (the mount's).
fn follows_links(headers: &http::HeaderMap) -> bool {
    headers
        .get(bucketfs_common::extension::FOLLOW_LINKS_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// A current version's link group and count (`LINKS_HEADER`'s value), if
/// its key has a group.
fn links_of(v: &Version) -> Option<String> {
    let (group, count) = (v.link_group?, v.link_count?);
    Some(bucketfs_common::extension::format_links(
        group as u64,
        count as u32,
    ))
}

/// Adds `LINKS_HEADER` to an answer about `v`, if its key has a link group.
fn add_links_header(headers: &mut http::HeaderMap, v: &Version) {
    if let Some(value) = links_of(v).and_then(|s| http::HeaderValue::from_str(&s).ok()) {
        headers.insert(bucketfs_common::extension::LINKS_HEADER, value);
    }
}

macro_rules! delegate {
    ($($name:ident: $input:ty => $output:ty;)*) => {
        #[async_trait::async_trait]
        impl S3 for Bucketfs {
            $(
                async fn $name(&self, req: S3Request<$input>) -> S3Result<S3Response<$output>> {
                    Ok(self.$name(req).await?)
                }
            )*
        }
    };
}

delegate! {
    list_buckets: ListBucketsInput => ListBucketsOutput;
    create_bucket: CreateBucketInput => CreateBucketOutput;
    head_bucket: HeadBucketInput => HeadBucketOutput;
    delete_bucket: DeleteBucketInput => DeleteBucketOutput;
    get_bucket_location: GetBucketLocationInput => GetBucketLocationOutput;
    get_bucket_versioning: GetBucketVersioningInput => GetBucketVersioningOutput;
    put_bucket_versioning: PutBucketVersioningInput => PutBucketVersioningOutput;
    put_object: PutObjectInput => PutObjectOutput;
    get_object: GetObjectInput => GetObjectOutput;
    head_object: HeadObjectInput => HeadObjectOutput;
    get_object_attributes: GetObjectAttributesInput => GetObjectAttributesOutput;
    delete_object: DeleteObjectInput => DeleteObjectOutput;
    delete_objects: DeleteObjectsInput => DeleteObjectsOutput;
    copy_object: CopyObjectInput => CopyObjectOutput;
    list_objects: ListObjectsInput => ListObjectsOutput;
    list_objects_v2: ListObjectsV2Input => ListObjectsV2Output;
    list_object_versions: ListObjectVersionsInput => ListObjectVersionsOutput;
    create_multipart_upload: CreateMultipartUploadInput => CreateMultipartUploadOutput;
    upload_part: UploadPartInput => UploadPartOutput;
    upload_part_copy: UploadPartCopyInput => UploadPartCopyOutput;
    complete_multipart_upload: CompleteMultipartUploadInput => CompleteMultipartUploadOutput;
    abort_multipart_upload: AbortMultipartUploadInput => AbortMultipartUploadOutput;
    list_parts: ListPartsInput => ListPartsOutput;
    list_multipart_uploads: ListMultipartUploadsInput => ListMultipartUploadsOutput;
    get_bucket_acl: GetBucketAclInput => GetBucketAclOutput;
    put_bucket_acl: PutBucketAclInput => PutBucketAclOutput;
    get_object_acl: GetObjectAclInput => GetObjectAclOutput;
    put_object_acl: PutObjectAclInput => PutObjectAclOutput;
    get_bucket_policy: GetBucketPolicyInput => GetBucketPolicyOutput;
    put_bucket_policy: PutBucketPolicyInput => PutBucketPolicyOutput;
    delete_bucket_policy: DeleteBucketPolicyInput => DeleteBucketPolicyOutput;
    get_bucket_policy_status: GetBucketPolicyStatusInput => GetBucketPolicyStatusOutput;
    get_public_access_block: GetPublicAccessBlockInput => GetPublicAccessBlockOutput;
    put_public_access_block: PutPublicAccessBlockInput => PutPublicAccessBlockOutput;
    delete_public_access_block: DeletePublicAccessBlockInput => DeletePublicAccessBlockOutput;
    put_object_lock_configuration: PutObjectLockConfigurationInput => PutObjectLockConfigurationOutput;
    get_object_lock_configuration: GetObjectLockConfigurationInput => GetObjectLockConfigurationOutput;
    put_object_retention: PutObjectRetentionInput => PutObjectRetentionOutput;
    get_object_retention: GetObjectRetentionInput => GetObjectRetentionOutput;
    put_object_legal_hold: PutObjectLegalHoldInput => PutObjectLegalHoldOutput;
    get_object_legal_hold: GetObjectLegalHoldInput => GetObjectLegalHoldOutput;
    put_bucket_lifecycle_configuration: PutBucketLifecycleConfigurationInput => PutBucketLifecycleConfigurationOutput;
    get_bucket_lifecycle_configuration: GetBucketLifecycleConfigurationInput => GetBucketLifecycleConfigurationOutput;
    delete_bucket_lifecycle: DeleteBucketLifecycleInput => DeleteBucketLifecycleOutput;
    get_object_tagging: GetObjectTaggingInput => GetObjectTaggingOutput;
    put_object_tagging: PutObjectTaggingInput => PutObjectTaggingOutput;
    delete_object_tagging: DeleteObjectTaggingInput => DeleteObjectTaggingOutput;
    get_bucket_tagging: GetBucketTaggingInput => GetBucketTaggingOutput;
    put_bucket_tagging: PutBucketTaggingInput => PutBucketTaggingOutput;
    delete_bucket_tagging: DeleteBucketTaggingInput => DeleteBucketTaggingOutput;
    put_bucket_cors: PutBucketCorsInput => PutBucketCorsOutput;
    get_bucket_cors: GetBucketCorsInput => GetBucketCorsOutput;
    delete_bucket_cors: DeleteBucketCorsInput => DeleteBucketCorsOutput;
}
