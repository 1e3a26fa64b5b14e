//! The link extension: `POST /{bucket}?bucketfs-link` (headers in
//! `bucketfs_common::extension`) makes a hard link: the new name joins the
//! source's link group and every name gets a new version of the source's
//! content in one transaction (`Meta::link`, migration 0013). Every name
//! stays an ordinary object for other clients.
//!
//! Answers 200 with the ETag, the version id on versioned buckets and
//! `x-bucketfs-links`; 404 when the source has no current version, 412
//! when the new name has one. `GET /{bucket}?bucketfs-link` answers the
//! names of a key's group (a mount unlinking the only name it knows of an
//! open file learns where the file's later writes go).

use http::HeaderValue;
use s3s::{Body, S3Request, S3Response, S3Result};

use bucketfs_common::extension::{LINK_FROM_HEADER, LINK_TO_HEADER};

use super::wire::{bucket_of_path, json_response, metadata_headers};
use super::{add_links_header, check_key, check_metadata, visible_version_id, Bucketfs};
use crate::access::{Action, Caller};
use crate::error::Error;
use crate::escape::percent_decode;

impl Bucketfs {
    /// Links a key under a new name, if the signer may read the source and
    /// write both names (every name of the group gets a new version).
    pub(super) async fn link(&self, caller: &Caller, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let bad = |what: &str| Error::InvalidArgument(format!("link: {what}"));
        let bucket = bucket_of_path(&req.uri, "link")?;
        let key_of = |name: &str| {
            req.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(percent_decode)
                .ok_or_else(|| bad(&format!("missing or malformed {name}")))
        };
        let (from, to) = (key_of(LINK_FROM_HEADER)?, key_of(LINK_TO_HEADER)?);
        check_key(&from)?;
        check_key(&to)?;
        if from == to {
            return Err(Error::PreconditionFailed.into());
        }
        let metadata = metadata_headers(&req.headers);
        check_metadata(&metadata, None)?;
        let bucket = self.meta.bucket(bucket).await?;
        for (action, key) in [
            (Action::GET_OBJECT, &from),
            (Action::PUT_OBJECT, &from),
            (Action::PUT_OBJECT, &to),
        ] {
            self.authorize(caller, action, &bucket, Some(key), None).await?;
        }
        let given = (!metadata.is_empty()).then_some(&metadata);
        self.meta.link(&bucket, &from, &to, given).await?;
        // The new name as a HEAD sees it, with its link count.
        let version = self.meta.version(&bucket, &to, None).await?;
        let mut resp = S3Response::new(Body::empty());
        resp.status = Some(http::StatusCode::OK);
        let quoted = HeaderValue::from_str(&format!("\"{}\"", version.etag))
            .map_err(|e| Error::Internal(e.to_string()))?;
        resp.headers.insert(http::header::ETAG, quoted);
        if let Some(id) = visible_version_id(&version) {
            let id = HeaderValue::from_str(&id).map_err(|e| Error::Internal(e.to_string()))?;
            resp.headers.insert("x-amz-version-id", id);
        }
        add_links_header(&mut resp.headers, &version);
        Ok(resp)
    }

    /// The names of a key's link group, if the signer may read the key and
    /// list the bucket.
    pub(super) async fn link_names(
        &self,
        caller: &Caller,
        req: S3Request<Body>,
    ) -> S3Result<S3Response<Body>> {
        let bad = |what: &str| Error::InvalidArgument(format!("link names: {what}"));
        let bucket = bucket_of_path(&req.uri, "link")?;
        let key = req
            .headers
            .get(LINK_FROM_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(percent_decode)
            .ok_or_else(|| bad(&format!("missing or malformed {LINK_FROM_HEADER}")))?;
        check_key(&key)?;
        let bucket = self.meta.bucket(bucket).await?;
        self.authorize(caller, Action::GET_OBJECT, &bucket, Some(&key), None)
            .await?;
        let list = Action::of("ListObjectsV2", false, &http::Method::GET);
        self.authorize(caller, list, &bucket, None, None).await?;
        let names = self.meta.link_names(&bucket, &key).await?;
        let json = serde_json::json!({ "names": names }).to_string();
        Ok(json_response(json))
    }
}
