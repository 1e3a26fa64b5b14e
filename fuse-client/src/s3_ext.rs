//! The router's extensions for patches, renames, hard links and locks, as
//! calls of the S3 store.

use bucketfs_common::file_locks::{
    LOCK_HEADER, LOCK_OWNER_HEADER, LOCK_QUERY, LOCK_RELEASE_HEADER, LOCK_RENEW_QUERY, LOCK_SESSION_HEADER,
};

use bucketfs_common::extension::{CHANGES_NOW_QUERY, CHANGES_QUERY};

use super::*;
use crate::store::{LockAnswer, LockKind};

impl S3 {
    /// `ObjectStore::put_object`: a PUT, conditional on `base` if given.
    pub(super) async fn put_call(
        &self,
        key: &str,
        body: Bytes,
        meta: &Metadata,
        base: Option<Option<&str>>,
    ) -> Result<ObjectInfo, FsError> {
        let size = body.len() as u64;
        let call = Call::new(Method::PUT, Some(key))
            .header(FOLLOW_LINKS_HEADER, "true")
            .metadata(meta)
            .data(body);
        let call = match base {
            None => call,
            Some(Some(etag)) => call.header("if-match", format!("\"{etag}\"")),
            Some(None) => call.header("if-none-match", "*"),
        };
        let resp = self.send_ok(call).await?;
        let mut info = info_from_headers(resp.headers());
        info.size = size;
        info.mtime = SystemTime::now();
        info.metadata = meta.clone();
        Ok(info)
    }

    /// The bucketfs patch extension; on another server, `NotSupported`
    /// (remembered) so the writer uploads whole objects.
    pub(super) async fn patch_call(
        &self,
        base: &Source,
        size: u64,
        ranges: &[(u64, u64)],
        body: Bytes,
        meta: &Metadata,
    ) -> Result<ObjectInfo, FsError> {
        if !self.server_patches.load(Ordering::Relaxed) {
            return Err(FsError::NotSupported);
        }
        let call = Call::new(Method::POST, Some(&base.key))
            .query(PATCH_QUERY, "")
            .header(PATCH_BASE_HEADER, base.etag.clone())
            .header(PATCH_SIZE_HEADER, size.to_string())
            .header(PATCH_RANGES_HEADER, format_patch_ranges(ranges))
            .metadata(meta)
            .data(body);
        let resp = self.send(call).await?;
        match resp.status() {
            s if s.is_success() => {
                let mut info = info_from_headers(resp.headers());
                info.size = size;
                info.mtime = SystemTime::now();
                info.metadata = meta.clone();
                Ok(info)
            }
            // Someone else wrote the key (or deleted it) since our base.
            StatusCode::PRECONDITION_FAILED | StatusCode::NOT_FOUND => Err(FsError::Stale),
            StatusCode::BAD_REQUEST | StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED => {
                let error = error_of(resp).await;
                tracing::info!(%error, "the server refused a patch; uploading whole objects from now on");
                self.server_patches.store(false, Ordering::Relaxed);
                Err(FsError::NotSupported)
            }
            _ => Err(error_of(resp).await),
        }
    }

    /// Moves a key, or every key under a prefix. On a bucketfs router this is
    /// one transaction and moves no data; elsewhere it is copy then delete.
    pub(super) async fn rename_keys(
        &self,
        from: &str,
        to: &str,
        prefix: bool,
        no_replace: bool,
    ) -> Result<(), FsError> {
        if self.server_renames.load(Ordering::Relaxed) {
            let mut call = Call::new(Method::POST, None)
                .query(RENAME_QUERY, "")
                .header(RENAME_FROM_HEADER, encode_path(from))
                .header(RENAME_TO_HEADER, encode_path(to));
            if prefix {
                call = call.header(RENAME_PREFIX_HEADER, "true");
            }
            if no_replace {
                call = call.header(NO_REPLACE_HEADER, "true");
            }
            let resp = self.send(call).await?;
            match resp.status() {
                s if s.is_success() => return Ok(()),
                StatusCode::PRECONDITION_FAILED => return Err(FsError::Exists),
                StatusCode::NOT_FOUND => return Err(FsError::NotFound),
                StatusCode::BAD_REQUEST | StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED => {
                    tracing::info!("the server has no rename extension; renaming by copy and delete");
                    self.server_renames.store(false, Ordering::Relaxed);
                }
                _ => return Err(error_of(resp).await),
            }
        }
        self.rename_by_copy(from, to, prefix).await
    }

    /// The bucketfs link extension; `NotSupported` on other servers.
    pub(super) async fn link_key(
        &self,
        from: &str,
        to: &str,
        meta: &Metadata,
    ) -> Result<ObjectInfo, FsError> {
        let call = Call::new(Method::POST, None)
            .query(LINK_QUERY, "")
            .header(LINK_FROM_HEADER, encode_path(from))
            .header(LINK_TO_HEADER, encode_path(to))
            .metadata(meta);
        let resp = self.send(call).await?;
        match resp.status() {
            s if s.is_success() => {
                let mut info = info_from_headers(resp.headers());
                info.mtime = SystemTime::now();
                info.metadata = meta.clone();
                Ok(info)
            }
            StatusCode::PRECONDITION_FAILED => Err(FsError::Exists),
            StatusCode::NOT_FOUND => Err(FsError::NotFound),
            StatusCode::BAD_REQUEST | StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED => {
                Err(FsError::NotSupported)
            }
            _ => Err(error_of(resp).await),
        }
    }

    /// The names of `key`'s link group (`GET ?bucketfs-link`).
    pub(super) async fn names_of_group(&self, key: &str) -> Result<Vec<String>, FsError> {
        let call = Call::new(Method::GET, None)
            .query(LINK_QUERY, "")
            .header(LINK_FROM_HEADER, encode_path(key));
        let resp = self.send(call).await?;
        match resp.status() {
            s if s.is_success() => {
                #[derive(serde::Deserialize)]
                struct Names {
                    names: Vec<String>,
                }
                let names: Names = resp.json().await.map_err(|e| FsError::Io(e.to_string()))?;
                Ok(names.names)
            }
            StatusCode::NOT_FOUND => Err(FsError::NotFound),
            StatusCode::BAD_REQUEST | StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED => {
                Err(FsError::NotSupported)
            }
            _ => Err(error_of(resp).await),
        }
    }
}

impl S3 {
    /// Tests a lock (GET): answers the lock in the way, if any.
    pub(super) async fn test_lock_call(
        &self,
        key: &str,
        session: &str,
        owner: u64,
        range: &LockRange,
    ) -> Result<Option<LockRange>, FsError> {
        let call = Call::new(Method::GET, Some(key))
            .query(LOCK_QUERY, "")
            .header(LOCK_SESSION_HEADER, session)
            .header(LOCK_OWNER_HEADER, owner.to_string())
            .header(LOCK_HEADER, range.format());
        let resp = self.send(call).await?;
        let status = resp.status();
        let answered = || {
            resp.headers()
                .get(LOCK_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(LockRange::parse)
                .ok_or_else(|| FsError::Io(format!("a lock answer without a valid {LOCK_HEADER}")))
        };
        match status {
            StatusCode::OK => {
                let lock = answered()?;
                Ok((lock.kind != LockKind::Unlock).then_some(lock))
            }
            StatusCode::BAD_REQUEST | StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED => {
                Err(FsError::NotSupported)
            }
            _ => Err(error_of(resp).await),
        }
    }

    /// Takes or releases a lock (POST); a taken one comes with the key's ETag.
    pub(super) async fn change_lock_call(
        &self,
        key: &str,
        session: &str,
        owner: u64,
        change: &LockRange,
    ) -> Result<LockAnswer, FsError> {
        let call = Call::new(Method::POST, Some(key))
            .query(LOCK_QUERY, "")
            .header(LOCK_SESSION_HEADER, session)
            .header(LOCK_OWNER_HEADER, owner.to_string())
            .header(LOCK_HEADER, change.format());
        let resp = self.send(call).await?;
        match resp.status() {
            StatusCode::OK => {
                let etag = resp
                    .headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .map(|e| e.trim_matches('"').to_string());
                Ok(LockAnswer::Granted(etag))
            }
            StatusCode::CONFLICT => {
                let lock = resp
                    .headers()
                    .get(LOCK_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(LockRange::parse)
                    .ok_or_else(|| FsError::Io(format!("a lock answer without a valid {LOCK_HEADER}")))?;
                Ok(LockAnswer::Blocked(lock))
            }
            StatusCode::BAD_REQUEST | StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED => {
                Err(FsError::NotSupported)
            }
            _ => Err(error_of(resp).await),
        }
    }

    /// A page of the change feed (long-polled by the router).
    pub(super) async fn changes_call(
        &self,
        after: Option<u64>,
        wait: bool,
    ) -> Result<crate::store::ChangePage, FsError> {
        let mut call = Call::new(Method::GET, None).query(CHANGES_QUERY, "");
        if let Some(after) = after {
            call = call.query("after", after.to_string());
        }
        if !wait {
            call = call.query(CHANGES_NOW_QUERY, "");
        }
        let resp = self.send(call).await?;
        match resp.status() {
            s if s.is_success() => resp.json().await.map_err(|e| FsError::Io(e.to_string())),
            StatusCode::BAD_REQUEST | StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED => {
                Err(FsError::NotSupported)
            }
            _ => Err(error_of(resp).await),
        }
    }

    pub(super) async fn renew_call(&self, session: &str, release: bool) -> Result<(), FsError> {
        let mut call = Call::new(Method::POST, None)
            .query(LOCK_RENEW_QUERY, "")
            .header(LOCK_SESSION_HEADER, session);
        if release {
            call = call.header(LOCK_RELEASE_HEADER, "true");
        }
        let resp = self.send(call).await?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            StatusCode::BAD_REQUEST | StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED => {
                Err(FsError::NotSupported)
            }
            _ => Err(error_of(resp).await),
        }
    }
}
