//! The patch extension: `POST /{bucket}/{key}?bucketfs-patch` (headers in
//! `bucketfs_common::extension`) makes a new version from the current one
//! and a few changed byte ranges. The body, the ranges' new bytes back to
//! back, is stored as new chunks like any PUT's (leased, checksummed); the
//! new version's chunk map is the base's with the ranges replaced
//! (`chunk_map::patch`), committed under the key lock only if the current
//! version still has the base's ETag. Other clients read an ordinary object.
//!
//! Answers 200 with the new ETag (and version id on versioned buckets);
//! 412 when the current version is not the base (someone else wrote:
//! nothing is committed), 404 when there is no current version.

use http::{HeaderMap, HeaderValue};
use md5::{Digest, Md5};
use s3s::dto::StreamingBlob;
use s3s::{Body, S3Request, S3Response, S3Result};

use bucketfs_common::extension::{
    parse_patch_ranges, PATCH_BASE_HEADER, PATCH_RANGES_HEADER, PATCH_SIZE_HEADER,
};

use super::ingest::{self, ingest, Recording, MAX_BODY_BYTES};
use super::settings::NewVersionSettings;
use super::wire::{metadata_headers, object_of_path};
use super::{check_key, check_metadata, visible_version_id, Bucketfs};
use crate::access::{Action, Caller};
use crate::chunk_map;
use crate::error::Error;
use crate::meta::{NewVersion, WritePrecondition};

/// The largest object S3 allows (and so a patched one may be).
const MAX_OBJECT_BYTES: u64 = 10_000 * MAX_BODY_BYTES;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, Error> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::InvalidArgument(format!("patch: missing {name}")))
}

impl Bucketfs {
    /// Commits a patch, if the signer may read and write the key.
    pub(super) async fn patch_object(
        &self,
        caller: &Caller,
        req: S3Request<Body>,
    ) -> S3Result<S3Response<Body>> {
        let bad = |what: String| Error::InvalidArgument(format!("patch: {what}"));
        let (bucket, key) = object_of_path(&req.uri, "patch")?;
        check_key(&key)?;
        let headers = &req.headers;
        let base_etag = header(headers, PATCH_BASE_HEADER)?.trim_matches('"').to_string();
        let size: u64 = header(headers, PATCH_SIZE_HEADER)?
            .parse()
            .map_err(|_| bad(format!("{PATCH_SIZE_HEADER} is not a size")))?;
        if size > MAX_OBJECT_BYTES {
            return Err(Error::EntityTooLarge(MAX_OBJECT_BYTES).into());
        }
        let ranges = parse_patch_ranges(header(headers, PATCH_RANGES_HEADER)?).map_err(bad)?;
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let metadata = metadata_headers(headers);
        check_metadata(&metadata, content_type.as_deref())?;

        let bucket = self.meta.bucket(bucket).await?;
        for action in [Action::GET_OBJECT, Action::PUT_OBJECT] {
            self.authorize(caller, action, &bucket, Some(&key), None).await?;
        }
        let base = self.meta.version(&bucket, &key, None).await?;
        if base.etag != base_etag {
            return Err(Error::PreconditionFailed.into());
        }
        let declared = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<i64>().ok());
        // Refused before the body is stored.
        let sum: u64 = ranges.iter().map(|r| r.1).sum();
        if !chunk_map::fits(base.size as u64, &ranges, size) || declared.is_some_and(|n| n as u64 != sum) {
            return Err(bad(
                "the ranges must lie inside the new size, cover every byte past the old end, and add up to the body's length"
                    .into(),
            )
            .into());
        }
        let base_map = self.meta.piece_refs(base.id).await?;
        let body = ingest::Body {
            blob: Some(StreamingBlob::from(req.input)),
            declared,
            content_md5: headers.get("content-md5").and_then(|v| v.to_str().ok()),
            headers,
            trailers: req.trailing_headers.as_ref(),
        };
        let mut body = ingest(&self.io, &self.metrics, body, Recording::WithCommit).await?;
        let unrecorded = body.unrecorded.take();
        let pieces = chunk_map::patch(&base_map, &ranges, &body.pieces, size).ok_or_else(|| {
            bad("the body must hold exactly the ranges' bytes, and the ranges cover every byte past the old end".into())
        })?;
        // An opaque ETag that changes with every patch; the "-N" of a
        // multipart ETag says it is no MD5 of the bytes.
        let mut md5 = Md5::new();
        md5.update(base.etag.as_bytes());
        for piece in &pieces {
            md5.update(piece.chunk_id.as_bytes());
            md5.update(piece.chunk_offset.to_le_bytes());
            md5.update(piece.length.to_le_bytes());
        }
        let etag = format!("{}-{}", hex::encode(md5.finalize()), pieces.len().max(1));
        let fragmented = crate::compaction::fragmented(&pieces);
        let version = self
            .meta
            .commit_version_recording(
                &bucket,
                NewVersion {
                    key,
                    size: size as i64,
                    etag: etag.clone(),
                    content_type: content_type.or(base.content_type.clone()),
                    metadata,
                    parts_count: None,
                    pieces,
                    precondition: WritePrecondition::EtagIs(base_etag),
                    // Only the mount patches: its writes go through links.
                    follow_links: true,
                },
                unrecorded.as_ref().map(|u| u.chunk()),
            )
            .await?;
        if let Some(chunk) = unrecorded {
            chunk.recorded();
        }
        drop(body.leases);
        if fragmented {
            self.meta.queue_compaction(version.id).await?;
        }
        let lock = super::locks::new_version_lock(&bucket, None, None, None)?;
        self.apply_settings(version.id, &NewVersionSettings::new(None, lock, None))
            .await?;
        let mut resp = S3Response::new(Body::empty());
        resp.status = Some(http::StatusCode::OK);
        let quoted =
            HeaderValue::from_str(&format!("\"{etag}\"")).map_err(|e| Error::Internal(e.to_string()))?;
        resp.headers.insert(http::header::ETAG, quoted);
        if let Some(id) = visible_version_id(&version) {
            let id = HeaderValue::from_str(&id).map_err(|e| Error::Internal(e.to_string()))?;
            resp.headers.insert("x-amz-version-id", id);
        }
        Ok(resp)
    }
}
