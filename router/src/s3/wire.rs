//! The JSON answer the extensions share. A leaf: it imports no other
//! module of `s3`.

use s3s::{Body, S3Response};

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
