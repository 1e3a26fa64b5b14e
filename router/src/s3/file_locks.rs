//! The lock extension (`bucketfs_common::file_locks`): locks between mounts,
//! held in Postgres (`Meta::change_lock`) for a lease each mount renews.

use http::{HeaderMap, HeaderValue, Method};
use s3s::{Body, S3Request, S3Response, S3Result};

use bucketfs_common::file_locks::{
    HeldLock, LockKind, LockRange, LOCK_END, LOCK_HEADER, LOCK_LEASE_SECS, LOCK_OWNER_HEADER,
    LOCK_RELEASE_HEADER, LOCK_SESSION_HEADER,
};

use super::wire::{json_response, object_of_path};
use super::{check_key, Bucketfs};
use crate::access::{Action, Caller};
use crate::error::Error;
use crate::meta::LockOwner;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, Error> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::InvalidArgument(format!("lock: missing {name}")))
}

/// The session of a request: a mount's random id, 16 to 64 characters.
fn session_of(headers: &HeaderMap) -> Result<String, Error> {
    let session = header(headers, LOCK_SESSION_HEADER)?;
    if !(16..=64).contains(&session.len()) || !session.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Error::InvalidArgument(format!(
            "lock: {LOCK_SESSION_HEADER} must be 16 to 64 letters and digits"
        )));
    }
    Ok(session.to_string())
}

/// An answer carrying `lock` (or an unlock: nothing in the way).
fn lock_answer(status: http::StatusCode, lock: Option<HeldLock>) -> S3Result<S3Response<Body>> {
    let range = lock.map(|h| h.range).unwrap_or(LockRange {
        kind: LockKind::Unlock,
        start: 0,
        end: LOCK_END,
        pid: 0,
    });
    let mut resp = S3Response::new(Body::empty());
    resp.status = Some(status);
    let value = HeaderValue::from_str(&range.format()).map_err(|e| Error::Internal(e.to_string()))?;
    resp.headers.insert(LOCK_HEADER, value);
    Ok(resp)
}

impl Bucketfs {
    /// Takes, releases (POST) or tests (GET) a lock on a key the signer may read.
    pub(super) async fn file_lock(
        &self,
        caller: &Caller,
        req: S3Request<Body>,
    ) -> S3Result<S3Response<Body>> {
        let bad = |what: String| Error::InvalidArgument(format!("lock: {what}"));
        let (bucket, key) = object_of_path(&req.uri, "lock")?;
        check_key(&key)?;
        let headers = &req.headers;
        let who = LockOwner {
            session: session_of(headers)?,
            owner: header(headers, LOCK_OWNER_HEADER)?
                .parse()
                .map_err(|_| bad(format!("{LOCK_OWNER_HEADER} is not a number")))?,
        };
        let range = LockRange::parse(header(headers, LOCK_HEADER)?)
            .ok_or_else(|| bad(format!("{LOCK_HEADER} must be `read|write|unlock START-END PID`")))?;
        let bucket = self.meta.bucket(bucket).await?;
        self.authorize(caller, Action::GET_OBJECT, &bucket, Some(&key), None)
            .await?;
        if req.method == Method::GET {
            let blocking = self.meta.test_lock(&bucket, &key, &who, &range).await?;
            return lock_answer(http::StatusCode::OK, blocking);
        }
        match self
            .meta
            .change_lock(&bucket, &key, &who, &range, LOCK_LEASE_SECS)
            .await?
        {
            None => {
                let mut resp = lock_answer(http::StatusCode::OK, None)?;
                // The taker revalidates its copy of the file against this.
                if range.kind != LockKind::Unlock {
                    if let Ok(version) = self.meta.version(&bucket, &key, None).await {
                        let etag = HeaderValue::from_str(&format!("\"{}\"", version.etag))
                            .map_err(|e| Error::Internal(e.to_string()))?;
                        resp.headers.insert(http::header::ETAG, etag);
                    }
                }
                Ok(resp)
            }
            Some(blocking) => lock_answer(http::StatusCode::CONFLICT, Some(blocking)),
        }
    }

    /// Extends (or, with `x-bucketfs-lock-release: true`, drops) every
    /// lock of a session, for a signed caller (the session id, random, is
    /// the mount's own secret).
    pub(super) async fn renew_file_locks(
        &self,
        caller: &Caller,
        req: S3Request<Body>,
    ) -> S3Result<S3Response<Body>> {
        if caller.principal.user_id().is_none() {
            return Err(Error::AccessDenied.into());
        }
        let session = session_of(&req.headers)?;
        let release = req
            .headers
            .get(LOCK_RELEASE_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let held = self.meta.renew_locks(&session, LOCK_LEASE_SECS, release).await?;
        Ok(json_response(format!("{{\"locks\":{held}}}")))
    }
}
