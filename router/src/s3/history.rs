//! The time-travel extensions (issue 24; the wire in
//! `bucketfs_common::time_travel`): snapshots, forks, restores and diffs of
//! a versioned bucket's past views, all metadata (`meta::history`).

use http::Method;
use s3s::{Body, S3Request, S3Response, S3Result};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use bucketfs_common::time_travel::{Diff, Forked, Restored, Snapshot, Snapshots};

use super::wire::{bucket_of_path, json_response};
use super::{check_key, Bucketfs};
use crate::access::{Action, Caller};
use crate::error::Error;
use crate::escape::percent_decode;
use crate::meta::Bucket;

/// The decoded value of query parameter `name`, if present.
fn param(req: &S3Request<Body>, name: &str) -> Result<Option<String>, Error> {
    let Some(query) = req.uri.query() else {
        return Ok(None);
    };
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == name {
            return percent_decode(v)
                .map(Some)
                .ok_or_else(|| Error::InvalidArgument(format!("{name}: a malformed escape")));
        }
    }
    Ok(None)
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

fn to_json<T: serde::Serialize>(value: &T) -> S3Result<S3Response<Body>> {
    let json = serde_json::to_string(value).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(json_response(json))
}

impl Bucketfs {
    /// The moment a request names with `{at_param}=` (RFC 3339) or
    /// `{snapshot_param}=` (a snapshot of `bucket`); `None` if neither.
    async fn moment(
        &self,
        req: &S3Request<Body>,
        bucket: &Bucket,
        (at_param, snapshot_param): (&str, &str),
    ) -> Result<Option<OffsetDateTime>, Error> {
        match (param(req, at_param)?, param(req, snapshot_param)?) {
            (Some(_), Some(_)) => Err(Error::InvalidArgument(format!(
                "give {at_param} or {snapshot_param}, not both"
            ))),
            (Some(at), None) => OffsetDateTime::parse(&at, &Rfc3339)
                .map(Some)
                .map_err(|_| Error::InvalidArgument(format!("{at_param}: {at:?} is not an RFC 3339 time"))),
            (None, Some(name)) => Ok(Some(self.meta.snapshot_at(bucket, &name).await?)),
            (None, None) => Ok(None),
        }
    }

    /// Snapshots: POST records one, GET lists, DELETE deletes.
    pub(super) async fn snapshots(
        &self,
        caller: &Caller,
        req: S3Request<Body>,
    ) -> S3Result<S3Response<Body>> {
        let bucket = self.meta.bucket(bucket_of_path(&req.uri, "snapshot")?).await?;
        let name = param(&req, "name")?;
        let named = || {
            name.clone()
                .filter(|n| !n.is_empty() && n.len() <= 255 && !n.contains('/'))
                .ok_or_else(|| {
                    Error::InvalidArgument("snapshot: name= must be 1-255 bytes without '/'".into())
                })
        };
        if req.method == Method::GET {
            let action = Action::of("GetBucketVersioning", false, &req.method);
            self.authorize(caller, action, &bucket, None, None).await?;
            let snapshots = self.meta.snapshots(&bucket).await?;
            return to_json(&Snapshots {
                snapshots: snapshots
                    .into_iter()
                    .map(|s| Snapshot {
                        name: s.name,
                        at: rfc3339(s.at),
                    })
                    .collect(),
            });
        }
        let action = Action::of("PutBucketVersioning", false, &Method::PUT);
        self.authorize(caller, action, &bucket, None, None).await?;
        let name = named()?;
        if req.method == Method::DELETE {
            self.meta.delete_snapshot(&bucket, &name).await?;
            return to_json(&serde_json::json!({ "deleted": name }));
        }
        let at = self.meta.create_snapshot(&bucket, &name).await?;
        to_json(&Snapshot {
            name,
            at: rfc3339(at),
        })
    }

    /// A fork: `/{new}` gets `source=`'s keys as of the moment named.
    pub(super) async fn fork(&self, caller: &Caller, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let name = bucket_of_path(&req.uri, "fork")?.to_string();
        if !s3s::path::check_bucket_name(&name) {
            return Err(Error::InvalidArgument(format!("fork: {name:?} is not a valid bucket name")).into());
        }
        let source = param(&req, "source")?
            .ok_or_else(|| Error::InvalidArgument("fork: source= names the bucket to fork".into()))?;
        let source = self.meta.bucket(&source).await?;
        let at = self
            .moment(&req, &source, ("at", "snapshot"))
            .await?
            .ok_or_else(|| Error::InvalidArgument("fork: give at= or snapshot=".into()))?;
        let list = Action::of("ListObjectVersions", false, &Method::GET);
        self.authorize(caller, list, &source, None, None).await?;
        self.authorize(caller, Action::GET_OBJECT, &source, Some(""), None)
            .await?;
        let owner = caller.principal.user_id().ok_or(Error::AccessDenied)?;
        let keys = self.meta.fork(&source, &name, owner, at).await?;
        to_json(&Forked {
            bucket: name,
            keys: keys.max(0) as u64,
            at: rfc3339(at),
        })
    }

    /// A restore of `prefix=` to the moment named.
    pub(super) async fn restore(&self, caller: &Caller, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let bucket = self.meta.bucket(bucket_of_path(&req.uri, "restore")?).await?;
        let prefix = param(&req, "prefix")?.unwrap_or_default();
        if !prefix.is_empty() {
            check_key(&prefix)?;
        }
        let at = self
            .moment(&req, &bucket, ("at", "snapshot"))
            .await?
            .ok_or_else(|| Error::InvalidArgument("restore: give at= or snapshot=".into()))?;
        let list = Action::of("ListObjectVersions", false, &Method::GET);
        self.authorize(caller, list, &bucket, None, None).await?;
        for action in [Action::PUT_OBJECT, Action::DELETE_OBJECT] {
            self.authorize(caller, action, &bucket, Some(&prefix), None)
                .await?;
        }
        let mut answer = Restored::default();
        for (key, action) in self.meta.restore(&bucket, &prefix, at).await? {
            match action.as_str() {
                "deleted" => answer.deleted.push(key),
                _ => answer.restored.push(key),
            }
        }
        to_json(&answer)
    }

    /// A diff of the views at `from-…` and `to-…` (now if absent) under `prefix=`.
    pub(super) async fn diff(&self, caller: &Caller, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let bucket = self.meta.bucket(bucket_of_path(&req.uri, "diff")?).await?;
        let list = Action::of("ListObjectVersions", false, &Method::GET);
        self.authorize(caller, list, &bucket, None, None).await?;
        let prefix = param(&req, "prefix")?.unwrap_or_default();
        let from = self
            .moment(&req, &bucket, ("from-at", "from-snapshot"))
            .await?
            .ok_or_else(|| Error::InvalidArgument("diff: give from-at= or from-snapshot=".into()))?;
        let to = self.moment(&req, &bucket, ("to-at", "to-snapshot")).await?;
        let before = self.meta.keys_as_of(&bucket, &prefix, Some(from)).await?;
        let after = self.meta.keys_as_of(&bucket, &prefix, to).await?;
        to_json(&Diff {
            from: rfc3339(from),
            to: to.map_or_else(|| "now".to_string(), rfc3339),
            changes: crate::history::diff(&before, &after),
        })
    }
}
