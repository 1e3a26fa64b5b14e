//! What the extensions share: their JSON answer and how they read their
//! paths and metadata headers. A leaf: it imports no other module of `s3`.

use std::collections::HashMap;

use bucketfs_common::extension::META_PREFIX;
use s3s::{Body, S3Response};

use crate::error::Error;
use crate::escape::percent_decode;

/// A 200 answer with a JSON body, as the extensions answer.
pub(super) fn json_response(json: String) -> S3Response<Body> {
    let mut resp = S3Response::new(Body::from(json));
    resp.status = Some(http::StatusCode::OK);
    resp.headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// The bucket of an extension's `/BUCKET` path; `what` names the call in
/// the error.
pub(super) fn bucket_of_path<'u>(uri: &'u http::Uri, what: &str) -> Result<&'u str, Error> {
    let bucket = uri.path().trim_matches('/');
    if bucket.is_empty() || bucket.contains('/') {
        return Err(Error::InvalidArgument(format!(
            "{what}: the path must be /BUCKET"
        )));
    }
    Ok(bucket)
}

/// The bucket and the (percent-decoded) key of an extension's
/// `/BUCKET/KEY` path; the key is not checked yet.
pub(super) fn object_of_path<'u>(uri: &'u http::Uri, what: &str) -> Result<(&'u str, String), Error> {
    uri.path()
        .trim_start_matches('/')
        .split_once('/')
        .and_then(|(b, k)| Some((b, percent_decode(k)?)))
        .ok_or_else(|| Error::InvalidArgument(format!("{what}: the path must be /BUCKET/KEY")))
}

/// The user metadata (`x-amz-meta-*` headers, names without the prefix)
/// an extension call carries.
pub(super) fn metadata_headers(headers: &http::HeaderMap) -> HashMap<String, String> {
    headers
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.as_str().strip_prefix(META_PREFIX)?.to_string(),
                v.to_str().ok()?.to_string(),
            ))
        })
        .collect()
}
