//! Bucket operations: create, head, delete, list, location, versioning.

use s3s::dto::*;
use s3s::{S3Request, S3Response};

use super::access_ops::caller_of;
use super::{timestamp, Bucketfs};
use crate::error::{Error, Result};

impl Bucketfs {
    /// The caller's buckets (and those made before owners existed).
    pub(super) async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> Result<S3Response<ListBucketsOutput>> {
        let principal = caller_of(&req).principal;
        let user = principal.user_id().ok_or(Error::AccessDenied)?;
        let owner = self.meta.user(user).await?.map(|u| Owner {
            display_name: Some(u.name),
            id: Some(u.id),
        });
        let buckets = self
            .meta
            .buckets(user)
            .await?
            .into_iter()
            .map(|b| Bucket {
                name: Some(b.name),
                creation_date: Some(timestamp(b.created_at)),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner,
            ..Default::default()
        }))
    }

    /// Makes a bucket owned by the caller, with the ACL the request gives.
    pub(super) async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> Result<S3Response<CreateBucketOutput>> {
        let principal = caller_of(&req).principal;
        let owner = principal.user_id().ok_or(Error::AccessDenied)?;
        let acl = self
            .acl_of_request(&req.headers, None, Default::default())
            .await?
            .unwrap_or_default();
        self.meta
            .create_bucket(&req.input.bucket, owner, &acl.to_json())
            .await?;
        if req.input.object_lock_enabled_for_bucket == Some(true) {
            self.enable_object_lock(&req.input.bucket).await?;
        }
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{}", req.input.bucket)),
        }))
    }

    pub(super) async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> Result<S3Response<HeadBucketOutput>> {
        self.meta.bucket_uncached(&req.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    pub(super) async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> Result<S3Response<DeleteBucketOutput>> {
        let bucket = self.meta.bucket_uncached(&req.input.bucket).await?;
        self.meta.delete_bucket(&bucket).await?;
        Ok(S3Response::new(DeleteBucketOutput::default()))
    }

    pub(super) async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> Result<S3Response<GetBucketLocationOutput>> {
        self.meta.bucket_uncached(&req.input.bucket).await?;
        Ok(S3Response::new(GetBucketLocationOutput::default()))
    }

    pub(super) async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> Result<S3Response<GetBucketVersioningOutput>> {
        let bucket = self.meta.bucket_uncached(&req.input.bucket).await?;
        let status = (!bucket.versioning.is_empty()).then(|| BucketVersioningStatus::from(bucket.versioning));
        Ok(S3Response::new(GetBucketVersioningOutput {
            status,
            ..Default::default()
        }))
    }

    pub(super) async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> Result<S3Response<PutBucketVersioningOutput>> {
        let bucket = self.meta.bucket_uncached(&req.input.bucket).await?;
        let status = req
            .input
            .versioning_configuration
            .status
            .map(|s| s.as_str().to_string());
        if bucket.object_lock.is_some() && status.as_deref() == Some(BucketVersioningStatus::SUSPENDED) {
            return Err(Error::InvalidBucketState(
                "versioning cannot be suspended on a bucket with object lock".into(),
            ));
        }
        match status.as_deref() {
            Some(s @ (BucketVersioningStatus::ENABLED | BucketVersioningStatus::SUSPENDED)) => {
                self.meta.set_versioning(&bucket, s).await?;
            }
            other => return Err(Error::InvalidArgument(format!("versioning status {other:?}"))),
        }
        Ok(S3Response::new(PutBucketVersioningOutput::default()))
    }
}
