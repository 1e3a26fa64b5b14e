//! bucketfs's requests beyond S3, behind s3s's one custom route (SigV4-signed
//! like any request): `POST /{bucket}?bucketfs-rename` (see `rename`),
//! `POST /{bucket}?bucketfs-batch` (see `batch`), `POST
//! /{bucket}/{key}?bucketfs-patch` (see `patch`), `POST
//! /{bucket}?bucketfs-link` (see `link`), the lock calls (see `file_locks`),
//! the change feed (see `changes`), the time-travel calls (see `history`)
//! and ListObjectsV2 with `metadata=true` (see `list::list_with_metadata`).

use bucketfs_common::extension::{BATCH_QUERY, CHANGES_QUERY, LINK_QUERY, PATCH_QUERY, RENAME_QUERY};
use bucketfs_common::file_locks::{LOCK_QUERY, LOCK_RENEW_QUERY};
use bucketfs_common::time_travel::{DIFF_QUERY, FORK_QUERY, RESTORE_QUERY, SNAPSHOT_QUERY};
use http::{Extensions, HeaderMap, Method, Uri};
use s3s::route::S3Route;
use s3s::{Body, S3Request, S3Response, S3Result};

use super::Bucketfs;
use crate::access::{self, Action, Caller};

pub struct ExtensionRoute {
    pub fs: Bucketfs,
}

fn has_param(uri: &Uri, param: &str) -> bool {
    uri.query().is_some_and(|q| {
        q.split('&')
            .any(|p| p == param || p.strip_prefix(param).is_some_and(|rest| rest.starts_with('=')))
    })
}

fn is_rename(method: &Method, uri: &Uri) -> bool {
    method == Method::POST && has_param(uri, RENAME_QUERY)
}

fn is_batch(method: &Method, uri: &Uri) -> bool {
    method == Method::POST && has_param(uri, BATCH_QUERY)
}

fn is_patch(method: &Method, uri: &Uri) -> bool {
    method == Method::POST && has_param(uri, PATCH_QUERY)
}

fn is_link(method: &Method, uri: &Uri) -> bool {
    (method == Method::POST || method == Method::GET) && has_param(uri, LINK_QUERY)
}

fn is_lock(method: &Method, uri: &Uri) -> bool {
    (method == Method::POST || method == Method::GET) && has_param(uri, LOCK_QUERY)
}

fn is_change_feed(method: &Method, uri: &Uri) -> bool {
    method == Method::GET && has_param(uri, CHANGES_QUERY)
}

fn is_lock_renewal(method: &Method, uri: &Uri) -> bool {
    method == Method::POST && has_param(uri, LOCK_RENEW_QUERY)
}

fn is_snapshot(method: &Method, uri: &Uri) -> bool {
    [Method::POST, Method::GET, Method::DELETE].contains(method) && has_param(uri, SNAPSHOT_QUERY)
}

fn is_fork(method: &Method, uri: &Uri) -> bool {
    method == Method::POST && has_param(uri, FORK_QUERY)
}

fn is_restore(method: &Method, uri: &Uri) -> bool {
    method == Method::POST && has_param(uri, RESTORE_QUERY)
}

fn is_diff(method: &Method, uri: &Uri) -> bool {
    method == Method::GET && has_param(uri, DIFF_QUERY)
}

fn is_metadata_listing(method: &Method, uri: &Uri) -> bool {
    let query = uri.query().unwrap_or("");
    method == Method::GET
        && query.split('&').any(|p| p == "list-type=2")
        && query.split('&').any(|p| p == "metadata=true")
}

/// The operation name of the extension request `method uri` is, if any:
/// the label its latency is recorded under.
fn extension_name(method: &Method, uri: &Uri) -> Option<&'static str> {
    [
        (is_rename as fn(&Method, &Uri) -> bool, "BucketfsRename"),
        (is_batch, "BucketfsBatch"),
        (is_patch, "BucketfsPatch"),
        (is_link, "BucketfsLink"),
        (is_lock, "BucketfsLock"),
        (is_lock_renewal, "BucketfsLockRenewal"),
        (is_change_feed, "BucketfsChanges"),
        (is_metadata_listing, "BucketfsMetadataListing"),
        (is_snapshot, "BucketfsSnapshot"),
        (is_fork, "BucketfsFork"),
        (is_restore, "BucketfsRestore"),
        (is_diff, "BucketfsDiff"),
    ]
    .into_iter()
    .find(|(matches, _)| matches(method, uri))
    .map(|(_, name)| name)
}

#[async_trait::async_trait]
impl S3Route for ExtensionRoute {
    fn is_match(&self, method: &Method, uri: &Uri, _headers: &HeaderMap, ext: &mut Extensions) -> bool {
        let Some(name) = extension_name(method, uri) else {
            return false;
        };
        if let Some(slot) = ext.get::<crate::metrics::OperationSlot>() {
            slot.set(name);
        }
        true
    }

    /// Runs an extension once its signer may: each judges its own objects
    /// (`crate::access`), since s3s's check before an operation does not
    /// run for custom routes.
    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let access_key = req.credentials.as_ref().map(|c| c.access_key.as_str());
        let caller = Caller {
            principal: self.fs.access.principal(access_key).await?,
            conditions: access::conditions(
                &req.headers,
                req.extensions.get::<crate::server::Client>().copied(),
                req.uri.query(),
                None,
            ),
        };
        if is_rename(&req.method, &req.uri) {
            self.fs.rename(&caller, req).await
        } else if is_batch(&req.method, &req.uri) {
            self.fs.put_batch(&caller, req).await
        } else if is_patch(&req.method, &req.uri) {
            self.fs.patch_object(&caller, req).await
        } else if is_lock(&req.method, &req.uri) {
            self.fs.file_lock(&caller, req).await
        } else if is_change_feed(&req.method, &req.uri) {
            self.fs.changes(&caller, req).await
        } else if is_lock_renewal(&req.method, &req.uri) {
            self.fs.renew_file_locks(&caller, req).await
        } else if is_link(&req.method, &req.uri) && req.method == Method::GET {
            self.fs.link_names(&caller, req).await
        } else if is_link(&req.method, &req.uri) {
            self.fs.link(&caller, req).await
        } else if is_snapshot(&req.method, &req.uri) {
            self.fs.snapshots(&caller, req).await
        } else if is_fork(&req.method, &req.uri) {
            self.fs.fork(&caller, req).await
        } else if is_restore(&req.method, &req.uri) {
            self.fs.restore(&caller, req).await
        } else if is_diff(&req.method, &req.uri) {
            self.fs.diff(&caller, req).await
        } else {
            let bucket = self.fs.meta.bucket(req.uri.path().trim_matches('/')).await?;
            let action = Action::of("ListObjectsV2", false, &req.method);
            self.fs.authorize(&caller, action, &bucket, None, None).await?;
            Ok(super::list::list_with_metadata(&self.fs, req).await?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_its_own_requests() {
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        assert!(is_rename(&Method::POST, &uri("/b?bucketfs-rename")));
        assert!(is_rename(&Method::POST, &uri("/b?bucketfs-rename=")));
        assert!(!is_rename(&Method::GET, &uri("/b?bucketfs-rename")));
        assert!(!is_rename(&Method::POST, &uri("/b?bucketfs-renamex")));
        assert!(is_batch(&Method::POST, &uri("/b?bucketfs-batch")));
        assert!(!is_batch(&Method::PUT, &uri("/b?bucketfs-batch")));
        assert!(!is_rename(&Method::POST, &uri("/b?bucketfs-batch")));
        assert!(is_patch(&Method::POST, &uri("/b/k?bucketfs-patch")));
        assert!(!is_patch(&Method::PUT, &uri("/b/k?bucketfs-patch")));
        assert!(is_metadata_listing(
            &Method::GET,
            &uri("/b?list-type=2&metadata=true&prefix=a")
        ));
        assert!(!is_metadata_listing(
            &Method::GET,
            &uri("/b?list-type=2&prefix=a")
        ));
        assert!(!is_metadata_listing(&Method::GET, &uri("/b?metadata=true")));
    }
}
