//! Small pieces of HTTP the extensions share: the JSON answer and strict
//! percent-decoding. A leaf: it imports no other module of `s3`.

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

/// Decodes `%XX` escapes; `None` for a malformed escape or non-UTF-8 result.
pub(super) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_strictly() {
        assert_eq!(percent_decode("a%20b/%C3%A9").as_deref(), Some("a b/\u{e9}"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decode("bad%2"), None);
        assert_eq!(percent_decode("bad%zz"), None);
        assert_eq!(percent_decode("%FF"), None);
    }
}
