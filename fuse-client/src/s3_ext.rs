//! The router's extensions for renames and hard links (and what else a
//! mount shares with other mounts through it), as calls of the S3 store.

use super::*;

impl S3 {
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
