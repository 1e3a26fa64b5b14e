//! The batch PUT extension: `POST /{bucket}?bucketfs-batch`, SigV4-signed
//! like any S3 request, stores many small objects in one call. Their bytes
//! become **one** chunk, written and replicated once, and each object is
//! committed as a version whose single piece is its range of that chunk,
//! all in one Postgres statement. A small file then costs a share of one
//! chunk write and one statement instead of its own of each. The FUSE
//! client sends its small commits this way and falls back to one PUT each
//! on other S3 servers.
//!
//! The body is a one-line JSON manifest, a newline, then the objects' bytes
//! back to back in manifest order:
//!
//! ```text
//! [{"key":"a.txt","size":5,"metadata":{"mode":"33188"}},{"key":"b","size":0}]
//! hello
//! ```
//!
//! Manifest fields: `key`, `size`, and optionally `content_type`,
//! `metadata` (user metadata, without `x-amz-meta-`), `if_none_match: true`
//! (the key must not exist) and `if_match` (an ETag the current version
//! must have). A `Content-MD5` header, when sent, covers the whole body.
//!
//! Answers 200 with `{"results":[...]}` in manifest order, each
//! `{"etag":"...","version_id":"..."}` (the version id only on versioned
//! buckets) or `{"error":{"status":412,"code":"PreconditionFailed",...}}`:
//! one object's bad key or failed precondition does not fail the others. A
//! malformed request fails whole, before anything is stored.

use bytes::Bytes;
use http::StatusCode;
use md5::{Digest, Md5};
use s3s::{Body, S3Error, S3Request, S3Response, S3Result};

use bucketfs_common::extension::{BatchAnswer, BatchEntry, BatchFailure, BatchOutcome};
use bucketfs_common::extension::{BATCH_MAX_BYTES as MAX_BYTES, BATCH_MAX_OBJECTS as MAX_OBJECTS};

use super::ingest::check_content_md5;
use super::wire::json_response;
use super::{check_key, check_metadata, visible_version_id, Bucketfs};
use crate::access::{Action, Caller};
use crate::error::{Error, Result};
use crate::meta::{NewVersion, Piece, Version, WritePrecondition};

/// Most bytes of manifest: 1,000 entries of a long key and full metadata.
const MAX_MANIFEST: usize = 4 << 20;

/// One entry's outcome from its commit.
fn outcome(result: Result<Version>) -> BatchOutcome {
    match result {
        Ok(version) => BatchOutcome::Stored {
            etag: version.etag.clone(),
            version_id: visible_version_id(&version),
        },
        Err(e) => {
            let message = e.to_string();
            let e = S3Error::from(e);
            BatchOutcome::Failed {
                error: BatchFailure {
                    status: e
                        .status_code()
                        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                        .as_u16(),
                    code: e.code().as_str().to_string(),
                    message,
                },
            }
        }
    }
}

/// Splits a body into its manifest and the objects' bytes, and checks that
/// they agree.
pub(crate) fn parse(body: &Bytes) -> Result<(Vec<BatchEntry>, Bytes)> {
    let bad = |what: String| Error::InvalidArgument(format!("batch: {what}"));
    let newline = body
        .iter()
        .take(MAX_MANIFEST + 1)
        .position(|&b| b == b'\n')
        .ok_or_else(|| bad("the body must start with a one-line JSON manifest".into()))?;
    let entries: Vec<BatchEntry> =
        serde_json::from_slice(&body[..newline]).map_err(|e| bad(format!("manifest: {e}")))?;
    let data = body.slice(newline + 1..);
    if entries.is_empty() || entries.len() > MAX_OBJECTS {
        return Err(bad(format!(
            "between 1 and {MAX_OBJECTS} objects, not {}",
            entries.len()
        )));
    }
    let total = entries
        .iter()
        .try_fold(0u64, |sum, e| sum.checked_add(e.size))
        .unwrap_or(u64::MAX);
    if total > MAX_BYTES as u64 {
        return Err(Error::EntityTooLarge(MAX_BYTES as u64));
    }
    if total != data.len() as u64 {
        return Err(Error::IncompleteBody(format!(
            "the manifest sums to {total} bytes, the body has {}",
            data.len()
        )));
    }
    let mut keys: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
    keys.sort_unstable();
    if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
        return Err(bad(format!("key {:?} appears twice", w[0])));
    }
    for entry in &entries {
        if entry.if_none_match && entry.if_match.is_some() {
            return Err(bad(format!(
                "{:?}: if_none_match and if_match together",
                entry.key
            )));
        }
    }
    Ok((entries, data))
}

impl Bucketfs {
    /// Answers one batch PUT (`extensions` routes it here).
    /// Stores a batch, if the signer may write every key in it.
    pub(super) async fn put_batch(
        &self,
        caller: &Caller,
        mut req: S3Request<Body>,
    ) -> S3Result<S3Response<Body>> {
        let bucket = req.uri.path().trim_matches('/');
        if bucket.is_empty() || bucket.contains('/') {
            return Err(Error::InvalidArgument("batch: the path must be /BUCKET".into()).into());
        }
        let bucket = self.meta.bucket(bucket).await?;
        let limit = MAX_MANIFEST + 1 + MAX_BYTES;
        let declared = req.headers.get(http::header::CONTENT_LENGTH);
        if declared
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
            .is_some_and(|n| n > limit)
        {
            return Err(Error::EntityTooLarge(MAX_BYTES as u64).into());
        }
        let body = req
            .input
            .store_all_limited(limit)
            .await
            .map_err(|e| Error::IncompleteBody(e.to_string()))?;
        let content_md5 = req.headers.get("content-md5").and_then(|v| v.to_str().ok());
        check_content_md5(content_md5, &Md5::digest(&body).into())?;
        let (entries, data) = parse(&body)?;
        for entry in &entries {
            self.authorize(caller, Action::PUT_OBJECT, &bucket, Some(&entry.key), None)
                .await?;
        }
        self.metrics.bytes_in.inc_by(data.len() as u64);
        let chunk = match data.is_empty() {
            true => None,
            false => {
                self.metrics.chunks_written.inc();
                Some(self.io.write(data.clone()).await?)
            }
        };
        let mut offset = 0usize;
        let versions: Vec<Result<NewVersion>> = entries
            .into_iter()
            .map(|e| {
                let bytes = data.slice(offset..offset + e.size as usize);
                let pieces = match (&chunk, e.size) {
                    (Some(c), 1..) => vec![Piece {
                        chunk_id: c.chunk_id.clone(),
                        chunk_offset: offset as i64,
                        length: e.size as i64,
                    }],
                    _ => Vec::new(),
                };
                offset += e.size as usize;
                // A bad key or metadata fails alone; its bytes stay
                // unreferenced in the chunk.
                check_key(&e.key)?;
                check_metadata(&e.metadata, e.content_type.as_deref())?;
                Ok(NewVersion {
                    key: e.key,
                    size: e.size as i64,
                    etag: hex::encode(Md5::digest(&bytes)),
                    content_type: e.content_type,
                    metadata: e.metadata,
                    parts_count: None,
                    pieces,
                    precondition: match (e.if_none_match, e.if_match) {
                        (true, _) => WritePrecondition::Absent,
                        (_, Some(etag)) => WritePrecondition::EtagIs(etag.trim_matches('"').to_string()),
                        _ => WritePrecondition::None,
                    },
                    // Only the mount sends batches: its writes go through links.
                    follow_links: true,
                })
            })
            .collect();
        let valid: Vec<NewVersion> = versions.iter().filter_map(|v| v.as_ref().ok().cloned()).collect();
        let mut committed = self.meta.commit_batch(&bucket, valid).await.into_iter();
        self.metrics.objects_batched.inc_by(versions.len() as u64);
        let results: Vec<BatchOutcome> = versions
            .into_iter()
            .map(|v| match v {
                Ok(_) => committed.next().expect("one result per valid version"),
                Err(e) => Err(e),
            })
            .map(outcome)
            .collect();
        let answer = serde_json::to_string(&BatchAnswer { results }).expect("an answer serialises");
        Ok(json_response(answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(manifest: &str, data: &[u8]) -> Bytes {
        let mut b = manifest.as_bytes().to_vec();
        b.push(b'\n');
        b.extend_from_slice(data);
        Bytes::from(b)
    }

    #[test]
    fn parses_a_manifest_and_its_bytes() {
        let (entries, data) = parse(&body(
            r#"[{"key":"a","size":5,"metadata":{"mode":"33188"}},{"key":"b","size":0,"if_none_match":true}]"#,
            b"hello",
        ))
        .unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].metadata["mode"], "33188");
        assert!(entries[1].if_none_match);
        assert_eq!(&data[..], b"hello");
    }

    #[test]
    fn refuses_what_does_not_add_up() {
        let err = |m: &str, d: &[u8]| parse(&body(m, d)).unwrap_err().to_string();
        assert!(err(r#"[{"key":"a","size":5}]"#, b"hell").contains("sums to 5"));
        assert!(err(r#"[{"key":"a","size":1},{"key":"a","size":1}]"#, b"xy").contains("twice"));
        assert!(err("[]", b"").contains("between 1"));
        assert!(err(r#"{"key":"a"}"#, b"").contains("manifest"));
        assert!(parse(&Bytes::from_static(b"no newline")).is_err());
        let huge = format!(r#"[{{"key":"a","size":{}}}]"#, MAX_BYTES + 1);
        assert!(err(&huge, b"").contains("larger"));
        let overflowing = format!(r#"[{{"key":"a","size":{}}},{{"key":"b","size":2}}]"#, u64::MAX);
        assert!(
            err(&overflowing, b"").contains("larger"),
            "sizes that overflow when summed"
        );
    }
}
