//! The rename extension: `POST /{bucket}?bucketfs-rename`, SigV4-signed like
//! any S3 request, moves one key or every key under a prefix in a single
//! Postgres transaction, by reference (no bytes move). The FUSE client uses it
//! for atomic `rename(2)` of files and whole directories; on other S3 servers
//! it falls back to copy + delete.
//!
//! Headers (keys percent-encoded, as in a URL path):
//! - `x-bucketfs-rename-from`: source key, or source prefix (e.g. `dir/`)
//! - `x-bucketfs-rename-to`: destination key or prefix
//! - `x-bucketfs-rename-prefix: true`: move every key starting with the source
//! - `x-bucketfs-no-replace: true`: fail (412) if any destination exists
//!
//! Answers 200 with `{"renamed": N}`, 404 NoSuchKey when nothing matches.

use http::HeaderMap;
use s3s::{Body, S3Request, S3Response, S3Result};

use super::check_key;
use super::extensions::json_response;
use crate::error::Error;
use crate::meta::Meta;

pub const QUERY: &str = "bucketfs-rename";

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn flag(headers: &HeaderMap, name: &str) -> bool {
    header(headers, name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Decodes `%XX` escapes; `None` for a malformed escape or non-UTF-8 result.
pub fn percent_decode(s: &str) -> Option<String> {
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

/// Answers one rename request (`extensions` routes it here).
pub(super) async fn rename(meta: &Meta, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
    let bad = |what: &str| Error::InvalidArgument(format!("rename: {what}"));
    let bucket = req.uri.path().trim_matches('/');
    if bucket.is_empty() || bucket.contains('/') {
        return Err(bad("the path must be /BUCKET").into());
    }
    let from = header(&req.headers, "x-bucketfs-rename-from")
        .and_then(percent_decode)
        .ok_or_else(|| bad("missing or malformed x-bucketfs-rename-from"))?;
    let to = header(&req.headers, "x-bucketfs-rename-to")
        .and_then(percent_decode)
        .ok_or_else(|| bad("missing or malformed x-bucketfs-rename-to"))?;
    check_key(&from)?;
    check_key(&to)?;
    let prefix = flag(&req.headers, "x-bucketfs-rename-prefix");
    if prefix && (to.starts_with(&from) || from.starts_with(&to)) && from != to {
        return Err(bad("a prefix cannot move into itself").into());
    }
    let no_replace = flag(&req.headers, "x-bucketfs-no-replace");
    let bucket = meta.bucket(bucket).await?;
    let renamed = meta.rename(&bucket, &from, &to, prefix, no_replace).await?;
    Ok(json_response(format!("{{\"renamed\":{renamed}}}")))
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
