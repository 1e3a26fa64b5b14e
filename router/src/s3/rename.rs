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

use bucketfs_common::extension::{
    NO_REPLACE_HEADER, RENAME_FROM_HEADER, RENAME_PREFIX_HEADER, RENAME_TO_HEADER,
};

use super::wire::{bucket_of_path, json_response};
use super::{check_key, Bucketfs};
use crate::access::{Action, Caller};
use crate::error::Error;
use crate::escape::percent_decode;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn flag(headers: &HeaderMap, name: &str) -> bool {
    header(headers, name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Answers one rename request (`extensions` routes it here).
impl Bucketfs {
    /// Renames a key or a prefix, if the signer may read and delete the
    /// source and write the destination.
    pub(super) async fn rename(&self, caller: &Caller, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let meta = &self.meta;
        let bad = |what: &str| Error::InvalidArgument(format!("rename: {what}"));
        let bucket = bucket_of_path(&req.uri, "rename")?;
        let from = header(&req.headers, RENAME_FROM_HEADER)
            .and_then(percent_decode)
            .ok_or_else(|| bad(&format!("missing or malformed {RENAME_FROM_HEADER}")))?;
        let to = header(&req.headers, RENAME_TO_HEADER)
            .and_then(percent_decode)
            .ok_or_else(|| bad(&format!("missing or malformed {RENAME_TO_HEADER}")))?;
        check_key(&from)?;
        check_key(&to)?;
        let prefix = flag(&req.headers, RENAME_PREFIX_HEADER);
        if prefix && (to.starts_with(&from) || from.starts_with(&to)) && from != to {
            return Err(bad("a prefix cannot move into itself").into());
        }
        let no_replace = flag(&req.headers, NO_REPLACE_HEADER);
        let bucket = meta.bucket(bucket).await?;
        for (action, key) in [
            (Action::GET_OBJECT, &from),
            (Action::DELETE_OBJECT, &from),
            (Action::PUT_OBJECT, &to),
        ] {
            self.authorize(caller, action, &bucket, Some(key), None).await?;
        }
        let renamed = meta.rename(&bucket, &from, &to, prefix, no_replace).await?;
        Ok(json_response(format!("{{\"renamed\":{renamed}}}")))
    }
}
