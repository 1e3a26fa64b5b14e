//! Multipart uploads. A part is a list of chunk pieces like any version;
//! UploadPartCopy slices the source's pieces to the requested range (no bytes
//! move) and completion concatenates the parts' pieces into a new version.

use md5::{Digest, Md5};
use s3s::dto::*;
use s3s::{S3Request, S3Response};

use super::access_ops::caller_of;
use super::headers::standard_headers_of;
use super::ingest::{ingest, Body, Recording};
use super::objects::copy_source;
use super::part_layout;
use super::settings::{lock_of_input, NewVersionSettings};
use super::{check_key, check_metadata, timestamp, visible_version_id, Bucketfs};
use crate::access::PublicAccessBlock;
use crate::error::{Error, Result};
use crate::meta::{NewVersion, Piece, WritePrecondition};

const MIN_PART_SIZE: i64 = 5 * 1024 * 1024;
const MAX_PART_NUMBER: i32 = 10_000;

/// The pieces covering `[start, end)` of an object made of `pieces`.
fn slice_pieces(pieces: &[Piece], start: i64, end: i64) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut offset = 0i64;
    for p in pieces {
        let (p_start, p_end) = (offset, offset + p.length);
        offset = p_end;
        let (from, to) = (start.max(p_start), end.min(p_end));
        if from < to {
            out.push(Piece {
                chunk_id: p.chunk_id.clone(),
                chunk_offset: p.chunk_offset + (from - p_start),
                length: to - from,
            });
        }
    }
    out
}

/// Parses `bytes=first-last` (inclusive) against an object of `size` bytes.
fn parse_copy_range(range: &str, size: i64) -> Result<(i64, i64)> {
    let bad = || Error::InvalidArgument(format!("bad x-amz-copy-source-range {range:?}"));
    let (first, last) = range
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(bad)?;
    let first: i64 = first.trim().parse().map_err(|_| bad())?;
    let last: i64 = last.trim().parse().map_err(|_| bad())?;
    if first > last || last >= size {
        return Err(Error::InvalidRange);
    }
    Ok((first, last + 1))
}

impl Bucketfs {
    /// Checks that a part may be stored: a valid number of a live upload.
    async fn open_part(&self, bucket: &str, key: &str, upload_id: &str, part_number: i32) -> Result<()> {
        if !(1..=MAX_PART_NUMBER).contains(&part_number) {
            return Err(Error::InvalidArgument(format!("part number {part_number}")));
        }
        let bucket = self.meta.bucket(bucket).await?;
        self.meta.upload(&bucket, key, upload_id).await?;
        Ok(())
    }

    pub(super) async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> Result<S3Response<CreateMultipartUploadOutput>> {
        let caller = caller_of(&req);
        let input = req.input;
        check_key(&input.key)?;
        let bucket = self.meta.bucket(&input.bucket).await?;
        let content_type = input.content_type.map(|c| c.to_string());
        let mut metadata = input.metadata.unwrap_or_default();
        check_metadata(&metadata, content_type.as_deref())?;
        standard_headers_of!(input).store(&mut metadata);
        let acl = self
            .acl_of_request(&req.headers, None, PublicAccessBlock::of(&bucket))
            .await?;
        let lock = lock_of_input!(&bucket, input)?;
        let tags = self
            .requested_tags(&caller, &bucket, &input.key, input.tagging.as_deref())
            .await?;
        let settings = NewVersionSettings::new(acl, lock, tags);
        let upload_id = self
            .meta
            .create_upload(
                &bucket,
                &input.key,
                content_type.as_deref(),
                &metadata,
                &settings.to_json(),
            )
            .await?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            ..Default::default()
        }))
    }

    pub(super) async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> Result<S3Response<UploadPartOutput>> {
        let input = req.input;
        self.open_part(&input.bucket, &input.key, &input.upload_id, input.part_number)
            .await?;
        let body = Body {
            blob: input.body,
            declared: input.content_length,
            content_md5: input.content_md5.as_deref(),
            headers: &req.headers,
            trailers: req.trailing_headers.as_ref(),
        };
        let body = ingest(&self.io, &self.metrics, body, Recording::Now).await?;
        let sums = body.checksum_fields();
        let etag = body.etag();
        self.meta
            .put_part(&input.upload_id, input.part_number, &etag, &body.pieces)
            .await?;
        // The part names the chunks now: their leases may end.
        drop(body.leases);
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(etag)),
            checksum_crc32: sums.crc32,
            checksum_crc32c: sums.crc32c,
            checksum_sha1: sums.sha1,
            checksum_sha256: sums.sha256,
            ..Default::default()
        }))
    }

    pub(super) async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> Result<S3Response<UploadPartCopyOutput>> {
        let caller = caller_of(&req);
        let input = req.input;
        self.open_part(&input.bucket, &input.key, &input.upload_id, input.part_number)
            .await?;
        let (src_bucket, src_key, src_version) = copy_source(&input.copy_source)?;
        let source_bucket = self.meta.bucket(&src_bucket).await?;
        self.authorize_source(&caller, &source_bucket, &src_key, src_version.as_deref())
            .await?;
        let source = self
            .meta
            .version(&source_bucket, &src_key, src_version.as_deref())
            .await?;
        if let Some(ETagCondition::ETag(e)) = &input.copy_source_if_match {
            if e.value() != source.etag {
                return Err(Error::PreconditionFailed);
            }
        }
        let (start, end) = match input.copy_source_range.as_deref() {
            Some(r) => parse_copy_range(r, source.size)?,
            None => (0, source.size),
        };
        let pieces = slice_pieces(&self.meta.piece_refs(source.id).await?, start, end);
        // The part's ETag names what it references; no bytes are read to hash.
        let etag = hex::encode(Md5::digest(format!(
            "{}:{}:{start}-{end}",
            source.etag, source.version_id
        )));
        self.meta
            .put_part(&input.upload_id, input.part_number, &etag, &pieces)
            .await?;
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(ETag::Strong(etag)),
                last_modified: Some(timestamp(time::OffsetDateTime::now_utc())),
                ..Default::default()
            }),
            copy_source_version_id: visible_version_id(&source),
            ..Default::default()
        }))
    }

    pub(super) async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        let bucket = self.meta.bucket(&input.bucket).await?;
        let upload = self.meta.upload(&bucket, &input.key, &input.upload_id).await?;
        let requested = input.multipart_upload.and_then(|m| m.parts).unwrap_or_default();
        if requested.is_empty() {
            return Err(Error::InvalidArgument("the upload lists no parts".into()));
        }
        let stored = self
            .meta
            .parts(&input.upload_id, 0, i64::from(MAX_PART_NUMBER))
            .await?;
        let mut pieces = Vec::new();
        let mut md5s = Md5::new();
        let mut size = 0i64;
        let mut sizes = Vec::with_capacity(requested.len());
        let mut previous = 0;
        for (i, part) in requested.iter().enumerate() {
            let number = part.part_number.unwrap_or(0);
            if number <= previous {
                return Err(Error::InvalidPartOrder);
            }
            previous = number;
            let found = stored
                .iter()
                .find(|p| p.part_number == number)
                .ok_or(Error::InvalidPart(number))?;
            if let Some(etag) = &part.e_tag {
                if etag.value() != found.etag {
                    return Err(Error::InvalidPart(number));
                }
            }
            if i + 1 < requested.len() && found.size < MIN_PART_SIZE {
                return Err(Error::EntityTooSmall(number));
            }
            md5s.update(hex::decode(&found.etag).map_err(|_| Error::InvalidPart(number))?);
            size += found.size;
            sizes.push(found.size);
            pieces.extend(self.meta.part_pieces(&input.upload_id, number).await?);
        }
        let etag = format!("{}-{}", hex::encode(md5s.finalize()), requested.len());
        let mut metadata = serde_json::from_value(upload.metadata.clone()).unwrap_or_default();
        part_layout::store(&mut metadata, &sizes);
        let version = self
            .meta
            .complete_upload(
                &bucket,
                &input.upload_id,
                NewVersion {
                    key: input.key.clone(),
                    size,
                    etag: etag.clone(),
                    content_type: upload.content_type.clone(),
                    metadata,
                    parts_count: Some(requested.len() as i32),
                    pieces,
                    precondition: WritePrecondition::None,
                    follow_links: super::follows_links(&req.headers),
                },
            )
            .await?;
        self.apply_settings(version.id, &NewVersionSettings::from_json(&upload.settings))
            .await?;
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            e_tag: Some(ETag::Strong(etag)),
            version_id: visible_version_id(&version),
            ..Default::default()
        }))
    }

    pub(super) async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> Result<S3Response<AbortMultipartUploadOutput>> {
        let input = req.input;
        let bucket = self.meta.bucket(&input.bucket).await?;
        self.meta.upload(&bucket, &input.key, &input.upload_id).await?;
        self.meta.delete_upload(&input.upload_id).await?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    pub(super) async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        let bucket = self.meta.bucket(&input.bucket).await?;
        self.meta.upload(&bucket, &input.key, &input.upload_id).await?;
        let max = input.max_parts.unwrap_or(1000).clamp(1, 1000);
        let after = input.part_number_marker.unwrap_or(0);
        let mut parts = self
            .meta
            .parts(&input.upload_id, after, i64::from(max) + 1)
            .await?;
        let truncated = parts.len() > max as usize;
        parts.truncate(max as usize);
        let next = truncated.then(|| parts.last().map(|p| p.part_number)).flatten();
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            max_parts: Some(max),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: next,
            is_truncated: Some(truncated),
            parts: Some(
                parts
                    .into_iter()
                    .map(|p| Part {
                        part_number: Some(p.part_number),
                        size: Some(p.size),
                        e_tag: Some(ETag::Strong(p.etag)),
                        last_modified: Some(timestamp(p.created_at)),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }))
    }

    pub(super) async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        let bucket = self.meta.bucket(&input.bucket).await?;
        let max = input.max_uploads.unwrap_or(1000).clamp(1, 1000);
        let prefix = input.prefix.clone().unwrap_or_default();
        let mut uploads = self
            .meta
            .list_uploads(
                &bucket,
                &prefix,
                input.key_marker.as_deref().unwrap_or(""),
                input.upload_id_marker.as_deref().unwrap_or(""),
                i64::from(max) + 1,
            )
            .await?;
        uploads.retain(|u| u.key.starts_with(&prefix));
        let truncated = uploads.len() > max as usize;
        uploads.truncate(max as usize);
        let (next_key, next_id) = match (truncated, uploads.last()) {
            (true, Some(u)) => (Some(u.key.clone()), Some(u.upload_id.clone())),
            _ => (None, None),
        };
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            key_marker: input.key_marker,
            upload_id_marker: input.upload_id_marker,
            max_uploads: Some(max),
            is_truncated: Some(truncated),
            next_key_marker: next_key,
            next_upload_id_marker: next_id,
            uploads: Some(
                uploads
                    .into_iter()
                    .map(|u| MultipartUpload {
                        key: Some(u.key),
                        upload_id: Some(u.upload_id),
                        initiated: Some(timestamp(u.created_at)),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(id: &str, offset: i64, length: i64) -> Piece {
        Piece {
            chunk_id: id.into(),
            chunk_offset: offset,
            length,
        }
    }

    #[test]
    fn slicing_keeps_only_the_covered_bytes() {
        let pieces = vec![piece("a", 0, 10), piece("b", 5, 10), piece("c", 0, 10)];
        assert_eq!(slice_pieces(&pieces, 0, 30), pieces);
        assert_eq!(
            slice_pieces(&pieces, 12, 25),
            vec![piece("b", 7, 8), piece("c", 0, 5)]
        );
        assert_eq!(slice_pieces(&pieces, 10, 20), vec![piece("b", 5, 10)]);
        assert!(slice_pieces(&pieces, 30, 40).is_empty());
    }

    #[test]
    fn copy_ranges_are_inclusive_and_checked() {
        assert_eq!(parse_copy_range("bytes=0-9", 10).unwrap(), (0, 10));
        assert!(matches!(
            parse_copy_range("bytes=5-10", 10),
            Err(Error::InvalidRange)
        ));
        assert!(parse_copy_range("0-9", 10).is_err());
    }
}
