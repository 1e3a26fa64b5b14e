//! Every answer carries its request's id in `x-amz-request-id`, and an
//! error's XML body carries the same id in `<RequestId>`, as S3's do, so
//! that a client's report names the router's log lines (and the nodes',
//! which get the id from `bucketfs_common::request_id`).

use axum::body::Body;
use axum::http::HeaderValue;
use axum::response::Response;

/// The largest error body rewritten; S3 error documents are a few hundred bytes.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Stamps `response` with `id`; also returns an error answer's S3 code.
pub async fn stamp(mut response: Response, id: &str) -> (Response, Option<String>) {
    if let Ok(v) = HeaderValue::from_str(id) {
        response.headers_mut().insert("x-amz-request-id", v);
    }
    let is_xml_error = response.status().as_u16() >= 400
        && response
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .is_some_and(|t| t.as_bytes().starts_with(b"application/xml"));
    if !is_xml_error {
        return (response, None);
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_ERROR_BODY).await else {
        return (Response::from_parts(parts, Body::empty()), None);
    };
    let text = String::from_utf8_lossy(&bytes);
    let code = text
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| code.to_string());
    let body = match text.rfind("</Error>") {
        Some(end) if !text.contains("<RequestId>") => {
            format!("{}<RequestId>{id}</RequestId>{}", &text[..end], &text[end..])
        }
        _ => text.into_owned(),
    };
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    (Response::from_parts(parts, Body::from(body)), code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn errors_name_their_request() {
        let response = Response::builder()
            .status(403)
            .header("content-type", "application/xml")
            .body(Body::from("<Error><Code>AccessDenied</Code></Error>"))
            .unwrap();
        let (stamped, code) = stamp(response, "abc").await;
        assert_eq!(code.as_deref(), Some("AccessDenied"));
        assert_eq!(stamped.headers()["x-amz-request-id"], "abc");
        let body = axum::body::to_bytes(stamped.into_body(), 1024).await.unwrap();
        assert_eq!(
            &body[..],
            b"<Error><Code>AccessDenied</Code><RequestId>abc</RequestId></Error>"
        );
        let (ok, code) = stamp(Response::new(Body::from("data")), "abc").await;
        assert_eq!(code, None);
        let body = axum::body::to_bytes(ok.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], b"data", "successes are not touched");
    }
}
