//! Object operations: put, get, head, delete, bulk delete and copy.
//!
//! GET streams: a producer task fetches the pieces overlapping the range a few
//! at a time and feeds a bounded channel that is the response body, so memory
//! per download is a few chunks and a client that goes away stops the fetches.

use std::collections::HashMap;

use bytes::Bytes;
use futures::StreamExt;
use s3s::dto::*;
use s3s::{S3Request, S3Response};
use time::OffsetDateTime;

use super::access_ops::caller_of;
use super::headers::{set_standard_headers, standard_headers_of, StandardHeaders};
use super::ingest::{ingest, Body, Recording};
use super::locks::set_lock_fields;
use super::part_layout;
use super::settings::{lock_of_input, NewVersionSettings};
use super::tagging::Tags;
use super::{
    add_links_header, check_key, check_metadata, etag_of, follows_links, timestamp, visible_version_id,
    Bucketfs,
};
use crate::access::{Action, PublicAccessBlock};
use crate::error::{Error, Result};
use crate::meta::{Bucket, NewVersion, Version, WritePrecondition};

const READS_IN_FLIGHT: usize = 4;

/// The conditional headers of a GET or HEAD.
struct ReadConditions<'a> {
    if_match: Option<&'a ETagCondition>,
    if_none_match: Option<&'a ETagCondition>,
    if_modified_since: Option<&'a Timestamp>,
    if_unmodified_since: Option<&'a Timestamp>,
}

impl ReadConditions<'_> {
    /// RFC 9110 §13.2.2 evaluation order, as S3 applies it.
    fn check(&self, v: &Version) -> Result<()> {
        let matches = |c: &ETagCondition| match c {
            ETagCondition::Any => true,
            ETagCondition::ETag(e) => e.value() == v.etag,
        };
        let modified = seconds(v.created_at);
        if let Some(c) = self.if_match {
            if !matches(c) {
                return Err(Error::PreconditionFailed);
            }
        } else if let Some(t) = self.if_unmodified_since {
            if modified > seconds(t.clone().into()) {
                return Err(Error::PreconditionFailed);
            }
        }
        if let Some(c) = self.if_none_match {
            if matches(c) {
                return Err(Error::NotModified);
            }
        } else if let Some(t) = self.if_modified_since {
            if modified <= seconds(t.clone().into()) {
                return Err(Error::NotModified);
            }
        }
        Ok(())
    }
}

fn seconds(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

fn write_precondition(
    if_none_match: Option<&ETagCondition>,
    if_match: Option<&ETagCondition>,
) -> WritePrecondition {
    match (if_none_match, if_match) {
        (Some(ETagCondition::Any), _) => WritePrecondition::Absent,
        (_, Some(ETagCondition::ETag(e))) => WritePrecondition::EtagIs(e.value().to_string()),
        _ => WritePrecondition::None,
    }
}

fn content_range(range: &std::ops::Range<u64>, size: u64) -> String {
    format!("bytes {}-{}/{}", range.start, range.end.saturating_sub(1), size)
}

impl Bucketfs {
    /// The version a GET or HEAD reads, once its conditional headers pass.
    async fn readable_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        conditions: ReadConditions<'_>,
    ) -> Result<(Bucket, Version)> {
        let (bucket, version) = self.version_in(bucket, key, version_id).await?;
        conditions.check(&version)?;
        Ok((bucket, version))
    }

    pub(super) async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> Result<S3Response<PutObjectOutput>> {
        let caller = caller_of(&req);
        let mut headers = req.headers;
        if req.method == http::Method::POST {
            let signed_v2 = req.credentials.is_some() && req.region.is_none();
            self.check_form_upload(&req.input, signed_v2, &mut headers)?;
        }
        let input = req.input;
        check_key(&input.key)?;
        let started = std::time::Instant::now();
        let bucket = self.meta.bucket(&input.bucket).await?;
        let acl = self
            .acl_of_request(&headers, None, PublicAccessBlock::of(&bucket))
            .await?;
        let content_type = input.content_type.map(|c| c.to_string());
        let mut metadata = input.metadata.unwrap_or_default();
        check_metadata(&metadata, content_type.as_deref())?;
        standard_headers_of!(input).store(&mut metadata);
        let lock = lock_of_input!(&bucket, input)?;
        let tags = self
            .requested_tags(&caller, &bucket, &input.key, input.tagging.as_deref())
            .await?;
        let settings = NewVersionSettings::new(acl, lock, tags);
        let body = Body {
            blob: input.body,
            declared: input.content_length,
            content_md5: input.content_md5.as_deref(),
            headers: &headers,
            trailers: req.trailing_headers.as_ref(),
        };
        let mut body = ingest(&self.io, &self.metrics, body, Recording::WithCommit).await?;
        let ingested = started.elapsed();
        let sums = body.checksum_fields();
        let etag = body.etag();
        let unrecorded = body.unrecorded.take();
        let version = self
            .meta
            .commit_version_recording(
                &bucket,
                NewVersion {
                    key: input.key,
                    size: body.size,
                    etag: etag.clone(),
                    content_type,
                    metadata,
                    parts_count: None,
                    pieces: body.pieces,
                    precondition: write_precondition(input.if_none_match.as_ref(), input.if_match.as_ref()),
                    follow_links: follows_links(&headers),
                },
                unrecorded.as_ref().map(|u| u.chunk()),
            )
            .await?;
        // The version names the chunks now: their leases may end.
        if let Some(chunk) = unrecorded {
            chunk.recorded();
        }
        drop(body.leases);
        self.apply_settings(version.id, &settings).await?;
        tracing::debug!(
            ingest_ms = ingested.as_secs_f64() * 1e3,
            total_ms = started.elapsed().as_secs_f64() * 1e3,
            "object committed"
        );
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(ETag::Strong(etag)),
            version_id: visible_version_id(&version),
            checksum_crc32: sums.crc32,
            checksum_crc32c: sums.crc32c,
            checksum_sha1: sums.sha1,
            checksum_sha256: sums.sha256,
            ..Default::default()
        }))
    }

    /// A browser's form upload (PostObject, which s3s turns into this
    /// PutObject after checking its signed policy): SigV4 only unless
    /// SigV2 is allowed (s3s gives a SigV2 request no region), and the
    /// form's `acl` field stands for the `x-amz-acl` header.
    fn check_form_upload(
        &self,
        input: &PutObjectInput,
        signed_v2: bool,
        headers: &mut http::HeaderMap,
    ) -> Result<()> {
        if signed_v2 && !self.allow_sigv2 {
            return Err(Error::AccessDenied);
        }
        // `form_upload.rs` put the file's name there; a file sent without
        // one leaves the placeholder, which is refused rather than stored.
        if input.key.contains("${filename}") {
            return Err(Error::InvalidArgument(
                "the key holds ${filename} but the form's file has no name".into(),
            ));
        }
        if let Some(acl) = &input.acl {
            let value = http::HeaderValue::from_str(acl.as_str())
                .map_err(|_| Error::InvalidArgument("acl is not a canned ACL".into()))?;
            headers.insert("x-amz-acl", value);
        }
        Ok(())
    }

    pub(super) async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        let conditions = ReadConditions {
            if_match: input.if_match.as_ref(),
            if_none_match: input.if_none_match.as_ref(),
            if_modified_since: input.if_modified_since.as_ref(),
            if_unmodified_since: input.if_unmodified_since.as_ref(),
        };
        let (bucket, version) = self
            .readable_version(&input.bucket, &input.key, input.version_id.as_deref(), conditions)
            .await?;
        let lock = self.lock_fields(&bucket, version.id).await?;
        let size = version.size as u64;
        let range = match (&input.range, input.part_number) {
            (Some(_), Some(_)) => {
                return Err(Error::InvalidArgument(
                    "give Range or partNumber, not both".into(),
                ))
            }
            // No range of nothing is satisfiable (S3 answers 416 too).
            (Some(_), None) if size == 0 => return Err(Error::InvalidRange),
            (Some(r), None) => Some(r.check(size).map_err(|_| Error::InvalidRange)?),
            (None, Some(n)) => Some(part_layout::range(&version, n)?),
            (None, None) => None,
        };
        let bytes = range.clone().unwrap_or(0..size);
        let body = self.stream_range(version.id, bytes.clone()).await?;
        let mut output = GetObjectOutput {
            body: Some(body),
            content_length: Some((bytes.end - bytes.start) as i64),
            content_range: range.as_ref().map(|r| content_range(r, size)),
            accept_ranges: Some("bytes".into()),
            e_tag: Some(etag_of(&version)),
            last_modified: Some(timestamp(version.created_at)),
            content_type: version.content_type.as_deref().and_then(|c| c.parse().ok()),
            metadata: Some(version.user_metadata()),
            version_id: visible_version_id(&version),
            parts_count: version.parts_count,
            tag_count: (version.tag_count > 0).then_some(version.tag_count),
            ..Default::default()
        };
        set_standard_headers!(output, StandardHeaders::of(&version));
        set_lock_fields!(output, lock);
        // `response-*` parameters (a presigned download's file name, say)
        // override what is stored.
        let overrides = [
            (&mut output.cache_control, input.response_cache_control),
            (
                &mut output.content_disposition,
                input.response_content_disposition,
            ),
            (&mut output.content_encoding, input.response_content_encoding),
            (&mut output.content_language, input.response_content_language),
        ];
        for (field, given) in overrides {
            if given.is_some() {
                *field = given;
            }
        }
        if let Some(t) = input.response_content_type.and_then(|c| c.parse().ok()) {
            output.content_type = Some(t);
        }
        if input.response_expires.is_some() {
            output.expires = input.response_expires;
        }
        Ok(S3Response::new(output))
    }

    /// The bytes `range` of a version as a streaming body. A piece with no
    /// replica left, or a first piece no replica can serve, fails the
    /// request before its headers are sent (503), not in its body.
    async fn stream_range(&self, version: i64, range: std::ops::Range<u64>) -> Result<StreamingBlob> {
        let pieces = self.meta.pieces(version, range.start, range.end).await?;
        if let Some(lost) = pieces.iter().find(|p| p.replicas.is_empty()) {
            return Err(Error::ChunkUnavailable(lost.chunk_id.clone()));
        }
        // Frames of pieces already read wait here for the client.
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(64);
        let io = self.io.clone();
        let metrics = self.metrics.clone();
        let mut reads = futures::stream::iter(pieces)
            .map(move |p| {
                let io = io.clone();
                let start = range.start.saturating_sub(p.object_offset as u64);
                let end = (range.end - p.object_offset as u64).min(p.length as u64);
                async move { io.read(&p, start, end).await }
            })
            .buffered(READS_IN_FLIGHT);
        let first = reads.next().await.transpose()?;
        tokio::spawn(bucketfs_common::request_id::inherit(async move {
            let rest = futures::stream::iter(first.map(Ok)).chain(reads);
            tokio::pin!(rest);
            while let Some(result) = rest.next().await {
                let frames: crate::chunks::Frames = match result {
                    Ok(frames) => frames,
                    Err(e) => {
                        let _ = tx.send(Err(std::io::Error::other(e))).await;
                        return;
                    }
                };
                metrics.bytes_out.inc_by(frames.len() as u64);
                for frame in frames.into_frames() {
                    if tx.send(Ok(frame)).await.is_err() {
                        return;
                    }
                }
            }
        }));
        Ok(StreamingBlob::wrap(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }

    pub(super) async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> Result<S3Response<HeadObjectOutput>> {
        let input = req.input;
        let conditions = ReadConditions {
            if_match: input.if_match.as_ref(),
            if_none_match: input.if_none_match.as_ref(),
            if_modified_since: input.if_modified_since.as_ref(),
            if_unmodified_since: input.if_unmodified_since.as_ref(),
        };
        let (bucket, version) = self
            .readable_version(&input.bucket, &input.key, input.version_id.as_deref(), conditions)
            .await?;
        let lock = self.lock_fields(&bucket, version.id).await?;
        let part = input
            .part_number
            .map(|n| part_layout::range(&version, n))
            .transpose()?;
        let mut output = HeadObjectOutput {
            content_length: Some(part.as_ref().map_or(version.size, |p| (p.end - p.start) as i64)),
            content_range: part.as_ref().map(|p| content_range(p, version.size as u64)),
            accept_ranges: Some("bytes".into()),
            e_tag: Some(etag_of(&version)),
            last_modified: Some(timestamp(version.created_at)),
            content_type: version.content_type.as_deref().and_then(|c| c.parse().ok()),
            metadata: Some(version.user_metadata()),
            version_id: visible_version_id(&version),
            parts_count: version.parts_count,
            ..Default::default()
        };
        set_standard_headers!(output, StandardHeaders::of(&version));
        set_lock_fields!(output, lock);
        // A part is partial content, on HEAD as on GET; s3s drops a HEAD's
        // status, so `crate::request_span` sets 206 from the Content-Range.
        let mut resp = S3Response::new(output);
        add_links_header(&mut resp.headers, &version);
        Ok(resp)
    }

    /// GetObjectAttributes: the attributes asked for, with no body.
    /// ObjectParts lists part numbers and sizes (a part's checksums are
    /// not kept after completion); no checksum is stored whole.
    pub(super) async fn get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> Result<S3Response<GetObjectAttributesOutput>> {
        let input = req.input;
        let (_, version) = self
            .version_in(&input.bucket, &input.key, input.version_id.as_deref())
            .await?;
        // One header may list several, comma-separated.
        let asked = |name: &str| {
            input
                .object_attributes
                .iter()
                .flat_map(|a| a.as_str().split(','))
                .any(|a| a.trim() == name)
        };
        Ok(S3Response::new(GetObjectAttributesOutput {
            e_tag: asked(ObjectAttributes::ETAG).then(|| etag_of(&version)),
            last_modified: Some(timestamp(version.created_at)),
            object_size: asked(ObjectAttributes::OBJECT_SIZE).then_some(version.size),
            storage_class: asked(ObjectAttributes::STORAGE_CLASS)
                .then(|| StorageClass::from(StorageClass::STANDARD.to_string())),
            object_parts: asked(ObjectAttributes::OBJECT_PARTS)
                .then_some(version.parts_count)
                .flatten()
                .map(|n| {
                    attribute_parts(
                        &version,
                        n,
                        input.part_number_marker.unwrap_or(0),
                        input.max_parts.unwrap_or(1000),
                    )
                }),
            version_id: visible_version_id(&version),
            ..Default::default()
        }))
    }

    pub(super) async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> Result<S3Response<DeleteObjectOutput>> {
        let caller = caller_of(&req);
        let input = req.input;
        let bucket = self.meta.bucket(&input.bucket).await?;
        let deleted = match input.version_id.as_deref() {
            Some(vid) => {
                let asked = input.bypass_governance_retention == Some(true);
                let bypass = self.may_bypass(&caller, &bucket, &input.key, asked).await;
                self.meta.delete_version(&bucket, &input.key, vid, bypass).await?
            }
            None => self.meta.delete_object(&bucket, &input.key).await?,
        };
        Ok(S3Response::new(DeleteObjectOutput {
            delete_marker: deleted.delete_marker.then_some(true),
            version_id: deleted.version_id,
            ..Default::default()
        }))
    }

    pub(super) async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> Result<S3Response<DeleteObjectsOutput>> {
        let caller = caller_of(&req);
        let input = req.input;
        if input.delete.objects.len() > MAX_DELETE_KEYS {
            return Err(Error::TooManyKeys(input.delete.objects.len()));
        }
        let bucket = self.meta.bucket(&input.bucket).await?;
        let quiet = input.delete.quiet.unwrap_or(false);
        let bypass_asked = input.bypass_governance_retention == Some(true);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        // Each key is judged on its own, as S3 does: a refused one is an
        // error of its own in the answer.
        let mut objects = Vec::with_capacity(input.delete.objects.len());
        for object in input.delete.objects {
            let action = Action::of("DeleteObject", object.version_id.is_some(), &http::Method::DELETE);
            let judged = self
                .authorize(
                    &caller,
                    action,
                    &bucket,
                    Some(&object.key),
                    object.version_id.as_deref(),
                )
                .await;
            match judged {
                Ok(()) => objects.push(object),
                Err(e) => errors.push(delete_error(object, e)),
            }
        }
        // Current versions go in one statement; named versions one by one.
        let current: Vec<String> = objects
            .iter()
            .filter(|o| o.version_id.is_none())
            .map(|o| o.key.clone())
            .collect();
        let mut batch = match self.meta.delete_objects(&bucket, &current).await {
            Ok(results) => results,
            Err(e) => {
                // Each key on its own then, each with its own error.
                tracing::warn!(error = %e, keys = current.len(), "batch delete failed");
                Vec::new()
            }
        }
        .into_iter();
        for object in objects {
            let result = match object.version_id.as_deref() {
                Some(vid) => {
                    let bypass = self.may_bypass(&caller, &bucket, &object.key, bypass_asked).await;
                    self.meta.delete_version(&bucket, &object.key, vid, bypass).await
                }
                None => match batch.next() {
                    Some(done) => Ok(done),
                    None => self.meta.delete_object(&bucket, &object.key).await,
                },
            };
            match result {
                Ok(d) => {
                    if !quiet {
                        deleted.push(DeletedObject {
                            key: Some(object.key),
                            version_id: object.version_id,
                            delete_marker: d.delete_marker.then_some(true),
                            delete_marker_version_id: d.delete_marker.then_some(d.version_id).flatten(),
                        });
                    }
                }
                Err(e) => errors.push(delete_error(object, e)),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }

    /// Copies by reference: the new version shares the source's chunks.
    pub(super) async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> Result<S3Response<CopyObjectOutput>> {
        let caller = caller_of(&req);
        let input = req.input;
        check_key(&input.key)?;
        let (src_bucket, src_key, src_version) = copy_source(&input.copy_source)?;
        let source_bucket = self.meta.bucket(&src_bucket).await?;
        self.authorize_source(&caller, &source_bucket, &src_key, src_version.as_deref())
            .await?;
        let source = self
            .meta
            .version(&source_bucket, &src_key, src_version.as_deref())
            .await?;
        ReadConditions {
            if_match: input.copy_source_if_match.as_ref(),
            if_none_match: input.copy_source_if_none_match.as_ref(),
            if_modified_since: input.copy_source_if_modified_since.as_ref(),
            if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
        }
        .check(&source)
        .map_err(|e| match e {
            Error::NotModified => Error::PreconditionFailed,
            e => e,
        })?;
        let bucket = self.meta.bucket(&input.bucket).await?;
        let acl = self
            .acl_of_request(&req.headers, None, PublicAccessBlock::of(&bucket))
            .await?;
        // S3 copies the source's tags unless told to replace them.
        let tags = match &input.tagging_directive {
            Some(d) if d.as_str() == TaggingDirective::REPLACE => {
                self.requested_tags(&caller, &bucket, &input.key, input.tagging.as_deref())
                    .await?
            }
            _ => self
                .meta
                .version_tags(source.id)
                .await?
                .map(|t| Tags::from_json(&t)),
        };
        let lock = lock_of_input!(&bucket, input)?;
        let settings = NewVersionSettings::new(acl, lock, tags);
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        let (content_type, mut metadata): (Option<String>, HashMap<String, String>) = if replace {
            (
                input.content_type.map(|c| c.to_string()),
                input.metadata.unwrap_or_default(),
            )
        } else {
            (source.content_type.clone(), source.user_metadata())
        };
        check_metadata(&metadata, content_type.as_deref())?;
        if replace {
            standard_headers_of!(input).store(&mut metadata);
        } else {
            StandardHeaders::of(&source).store(&mut metadata);
        }
        part_layout::copy(&source, &mut metadata);
        let pieces = self.meta.piece_refs(source.id).await?;
        let version = self
            .meta
            .commit_version(
                &bucket,
                NewVersion {
                    key: input.key,
                    size: source.size,
                    etag: source.etag.clone(),
                    content_type,
                    metadata,
                    parts_count: source.parts_count,
                    pieces,
                    precondition: WritePrecondition::None,
                    follow_links: follows_links(&req.headers),
                },
            )
            .await?;
        self.apply_settings(version.id, &settings).await?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(etag_of(&version)),
                last_modified: Some(timestamp(version.created_at)),
                ..Default::default()
            }),
            copy_source_version_id: visible_version_id(&source),
            version_id: visible_version_id(&version),
            ..Default::default()
        }))
    }
}

/// A page of a multipart version's parts: those after `marker`, at most
/// `max` (1 to 1,000) of them.
fn attribute_parts(version: &Version, count: i32, marker: i32, max: i32) -> GetObjectAttributesParts {
    let max = max.clamp(1, 1000);
    let sizes = part_layout::sizes(version);
    let parts: Vec<ObjectPart> = (1..)
        .zip(sizes)
        .skip(marker.max(0) as usize)
        .take(max as usize + 1)
        .map(|(number, size)| ObjectPart {
            part_number: Some(number),
            size: Some(size as i64),
            ..Default::default()
        })
        .collect();
    let truncated = parts.len() > max as usize;
    let parts: Vec<ObjectPart> = parts.into_iter().take(max as usize).collect();
    GetObjectAttributesParts {
        is_truncated: Some(truncated),
        max_parts: Some(max),
        next_part_number_marker: parts.last().and_then(|p| p.part_number).filter(|_| truncated),
        part_number_marker: Some(marker),
        parts: Some(parts),
        total_parts_count: Some(count),
    }
}

/// The most keys one DeleteObjects may name, as in S3.
const MAX_DELETE_KEYS: usize = 1000;

/// One key's failure in a DeleteObjects answer.
fn delete_error(object: ObjectIdentifier, e: Error) -> s3s::dto::Error {
    let s3 = s3s::S3Error::from(e);
    s3s::dto::Error {
        key: Some(object.key),
        version_id: object.version_id,
        code: Some(s3.code().as_str().to_string()),
        message: s3.message().map(str::to_string),
    }
}

/// (bucket, key, version id) named by an x-amz-copy-source header.
pub(super) fn copy_source(source: &CopySource) -> Result<(String, String, Option<String>)> {
    match source {
        CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => Ok((
            bucket.to_string(),
            key.to_string(),
            version_id.as_ref().map(|v| v.to_string()),
        )),
        _ => Err(Error::InvalidArgument(
            "access point copy sources are not supported".into(),
        )),
    }
}
