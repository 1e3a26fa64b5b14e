//! The S3 operations of access control: bucket and object ACLs, bucket
//! policies and their status, public access blocks. Who may call each is
//! judged before it runs (`crate::access`); these read and write the
//! configuration.

use s3s::dto::{self as dto, *};
use s3s::{S3Request, S3Response};

use super::Bucketfs;
use crate::access::acl::{self, Acl, GRANT_HEADERS};
use crate::access::policy::Policy as BucketPolicy;
use crate::access::{self, Action, Caller, Principal, PublicAccessBlock as Block, Query};
use crate::error::{Error, Result};
use crate::meta::Bucket;

/// Who `crate::access` found made a request, with its condition keys.
pub(super) fn caller_of<T>(req: &S3Request<T>) -> Caller {
    req.extensions.get::<Caller>().cloned().unwrap_or(Caller {
        principal: Principal::Anonymous,
        conditions: Default::default(),
    })
}

impl Bucketfs {
    /// Judges the read of a copy's source, which the access check before
    /// the operation (of its destination) did not see.
    pub(super) async fn authorize_source(
        &self,
        caller: &Caller,
        bucket: &Bucket,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<()> {
        let action = Action::of("GetObject", version_id.is_some(), &http::Method::GET);
        self.authorize(caller, action, bucket, Some(key), version_id)
            .await
    }

    /// Judges one action on a bucket or one of its keys, for what s3s's
    /// check before the operation did not see (copy sources, the objects
    /// of a batch or a rename, the extensions), with the request's own
    /// condition keys.
    pub(super) async fn authorize(
        &self,
        caller: &Caller,
        action: Action,
        bucket: &Bucket,
        key: Option<&str>,
        version_id: Option<&str>,
    ) -> Result<()> {
        self.access
            .authorize(&Query {
                principal: &caller.principal,
                action,
                bucket,
                key,
                version_id,
                context: caller.conditions.clone(),
            })
            .await
    }

    /// The ACL a request sets: its canned `x-amz-acl`, or its
    /// `x-amz-grant-*` headers, or an `AccessControlPolicy` body, checked
    /// against the bucket's public access block. `None` if it sets none.
    pub(super) async fn acl_of_request(
        &self,
        headers: &http::HeaderMap,
        body: Option<&AccessControlPolicy>,
        block: Block,
    ) -> Result<Option<Acl>> {
        let canned = headers.get("x-amz-acl").map(|v| v.to_str().unwrap_or("?"));
        let mut grants = Acl::default();
        let mut any_grant = false;
        for (name, permission) in GRANT_HEADERS {
            if let Some(value) = headers.get(name) {
                let value = value
                    .to_str()
                    .map_err(|_| Error::InvalidArgument(format!("{name} is not text")))?;
                grants.add_header_grants(permission, value)?;
                any_grant = true;
            }
        }
        let acl = match (canned, any_grant, body) {
            (None, false, None) => return Ok(None),
            (Some(name), false, None) => Acl::canned(name)?,
            (None, true, None) => grants,
            (None, false, Some(policy)) => acl_of_document(policy)?,
            _ => {
                return Err(Error::InvalidArgument(
                    "give a canned ACL, grant headers or an ACL document: only one".into(),
                ))
            }
        };
        for id in acl.user_ids() {
            if self.meta.user(id).await?.filter(|u| u.id == id).is_none() {
                return Err(Error::InvalidArgument(format!("no user has canonical id {id}")));
            }
        }
        access::check_acl_allowed(&acl, block)?;
        Ok(Some(acl))
    }

    /// The owner as S3 shows it.
    async fn owner_of(&self, bucket: &Bucket) -> Result<Option<Owner>> {
        let Some(id) = &bucket.owner_id else {
            return Ok(None);
        };
        let user = self.meta.user(id).await?;
        Ok(Some(Owner {
            id: Some(id.clone()),
            display_name: user.map(|u| u.name),
        }))
    }

    async fn grants_shown(&self, bucket: &Bucket, acl: &Acl) -> Result<Grants> {
        let mut shown = Vec::new();
        if let Some(owner) = self.owner_of(bucket).await? {
            shown.push(Grant {
                grantee: Some(Grantee {
                    display_name: owner.display_name.clone(),
                    email_address: None,
                    id: owner.id.clone(),
                    type_: Type::from(Type::CANONICAL_USER.to_string()),
                    uri: None,
                }),
                permission: Some(dto::Permission::from(
                    acl::Permission::FullControl.as_str().to_string(),
                )),
            });
        }
        for grant in &acl.0 {
            let grantee = match &grant.grantee {
                acl::Grantee::User(id) => Grantee {
                    display_name: self.meta.user(id).await?.map(|u| u.name),
                    email_address: None,
                    id: Some(id.clone()),
                    type_: Type::from(Type::CANONICAL_USER.to_string()),
                    uri: None,
                },
                acl::Grantee::Group(uri) => Grantee {
                    display_name: None,
                    email_address: None,
                    id: None,
                    type_: Type::from(Type::GROUP.to_string()),
                    uri: Some(uri.clone()),
                },
            };
            shown.push(Grant {
                grantee: Some(grantee),
                permission: Some(dto::Permission::from(grant.permission.as_str().to_string())),
            });
        }
        Ok(shown)
    }

    pub(super) async fn get_bucket_acl(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> Result<S3Response<GetBucketAclOutput>> {
        let bucket = self.meta.bucket_uncached(&req.input.bucket).await?;
        let acl = Acl::from_json(&bucket.acl);
        Ok(S3Response::new(GetBucketAclOutput {
            grants: Some(self.grants_shown(&bucket, &acl).await?),
            owner: self.owner_of(&bucket).await?,
        }))
    }

    pub(super) async fn put_bucket_acl(
        &self,
        req: S3Request<PutBucketAclInput>,
    ) -> Result<S3Response<PutBucketAclOutput>> {
        let bucket = self.meta.bucket_uncached(&req.input.bucket).await?;
        let acl = self
            .acl_of_request(
                &req.headers,
                req.input.access_control_policy.as_ref(),
                Block::of(&bucket),
            )
            .await?
            .ok_or_else(|| Error::MalformedAcl("no ACL given".into()))?;
        self.meta.set_bucket_acl(&bucket, &acl.to_json()).await?;
        Ok(S3Response::new(PutBucketAclOutput::default()))
    }

    pub(super) async fn get_object_acl(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> Result<S3Response<GetObjectAclOutput>> {
        let bucket = self.meta.bucket(&req.input.bucket).await?;
        let version_id = req.input.version_id.as_deref();
        // The version must exist; its grants may be none.
        self.meta.version(&bucket, &req.input.key, version_id).await?;
        let acl = self
            .meta
            .object_acl(&bucket, &req.input.key, version_id)
            .await?
            .map(|g| Acl::from_json(&g))
            .unwrap_or_default();
        Ok(S3Response::new(GetObjectAclOutput {
            grants: Some(self.grants_shown(&bucket, &acl).await?),
            owner: self.owner_of(&bucket).await?,
            request_charged: None,
        }))
    }

    pub(super) async fn put_object_acl(
        &self,
        req: S3Request<PutObjectAclInput>,
    ) -> Result<S3Response<PutObjectAclOutput>> {
        let bucket = self.meta.bucket(&req.input.bucket).await?;
        let acl = self
            .acl_of_request(
                &req.headers,
                req.input.access_control_policy.as_ref(),
                Block::of(&bucket),
            )
            .await?
            .ok_or_else(|| Error::MalformedAcl("no ACL given".into()))?;
        self.meta
            .set_object_acl(
                &bucket,
                &req.input.key,
                req.input.version_id.as_deref(),
                &acl.to_json(),
            )
            .await?;
        Ok(S3Response::new(PutObjectAclOutput::default()))
    }

    pub(super) async fn get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> Result<S3Response<GetBucketPolicyOutput>> {
        let bucket = self.meta.bucket_uncached(&req.input.bucket).await?;
        let policy = bucket.policy.ok_or(Error::NoSuchBucketPolicy)?;
        Ok(S3Response::new(GetBucketPolicyOutput { policy: Some(policy) }))
    }

    pub(super) async fn put_bucket_policy(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> Result<S3Response<PutBucketPolicyOutput>> {
        let bucket = self.meta.bucket_uncached(&req.input.bucket).await?;
        let policy = BucketPolicy::parse(&req.input.policy, &bucket.name)?;
        if Block::of(&bucket).block_public_policy && policy.is_public() {
            return Err(Error::AccessDenied);
        }
        self.meta
            .set_bucket_policy(&bucket, Some(&req.input.policy))
            .await?;
        Ok(S3Response::new(PutBucketPolicyOutput::default()))
    }

    pub(super) async fn delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> Result<S3Response<DeleteBucketPolicyOutput>> {
        let bucket = self.meta.bucket_uncached(&req.input.bucket).await?;
        self.meta.set_bucket_policy(&bucket, None).await?;
        Ok(S3Response::new(DeleteBucketPolicyOutput::default()))
    }

    pub(super) async fn get_bucket_policy_status(
        &self,
        req: S3Request<GetBucketPolicyStatusInput>,
    ) -> Result<S3Response<GetBucketPolicyStatusOutput>> {
        let bucket = self.meta.bucket_uncached(&req.input.bucket).await?;
        let text = bucket.policy.as_ref().ok_or(Error::NoSuchBucketPolicy)?;
        let public = BucketPolicy::parse(text, &bucket.name).is_ok_and(|p| p.is_public());
        Ok(S3Response::new(GetBucketPolicyStatusOutput {
            policy_status: Some(PolicyStatus {
                is_public: Some(public),
            }),
        }))
    }

    pub(super) async fn get_public_access_block(
        &self,
        req: S3Request<GetPublicAccessBlockInput>,
    ) -> Result<S3Response<GetPublicAccessBlockOutput>> {
        let bucket = self.meta.bucket_uncached(&req.input.bucket).await?;
        if bucket.public_access_block.is_none() {
            return Err(Error::NoSuchPublicAccessBlock);
        }
        let block = Block::of(&bucket);
        Ok(S3Response::new(GetPublicAccessBlockOutput {
            public_access_block_configuration: Some(PublicAccessBlockConfiguration {
                block_public_acls: Some(block.block_public_acls),
                block_public_policy: Some(block.block_public_policy),
                ignore_public_acls: Some(block.ignore_public_acls),
                restrict_public_buckets: Some(block.restrict_public_buckets),
            }),
        }))
    }

    pub(super) async fn put_public_access_block(
        &self,
        req: S3Request<PutPublicAccessBlockInput>,
    ) -> Result<S3Response<PutPublicAccessBlockOutput>> {
        let bucket = self.meta.bucket_uncached(&req.input.bucket).await?;
        let c = &req.input.public_access_block_configuration;
        let block = Block {
            block_public_acls: c.block_public_acls.unwrap_or(false),
            ignore_public_acls: c.ignore_public_acls.unwrap_or(false),
            block_public_policy: c.block_public_policy.unwrap_or(false),
            restrict_public_buckets: c.restrict_public_buckets.unwrap_or(false),
        };
        let json = serde_json::to_value(block).expect("a block serialises");
        self.meta.set_public_access_block(&bucket, Some(&json)).await?;
        Ok(S3Response::new(PutPublicAccessBlockOutput::default()))
    }

    pub(super) async fn delete_public_access_block(
        &self,
        req: S3Request<DeletePublicAccessBlockInput>,
    ) -> Result<S3Response<DeletePublicAccessBlockOutput>> {
        let bucket = self.meta.bucket_uncached(&req.input.bucket).await?;
        self.meta.set_public_access_block(&bucket, None).await?;
        Ok(S3Response::new(DeletePublicAccessBlockOutput::default()))
    }
}

/// The grants of an `AccessControlPolicy` document (the owner's own grant
/// is implied and dropped).
fn acl_of_document(doc: &AccessControlPolicy) -> Result<Acl> {
    let mut acl = Acl::default();
    for grant in doc.grants.iter().flatten() {
        let permission = grant
            .permission
            .as_ref()
            .and_then(|p| acl::Permission::parse(p.as_str()))
            .ok_or_else(|| Error::MalformedAcl("a grant without a known Permission".into()))?;
        let grantee = grant
            .grantee
            .as_ref()
            .ok_or_else(|| Error::MalformedAcl("a grant without a Grantee".into()))?;
        let grantee = match (grantee.type_.as_str(), &grantee.id, &grantee.uri) {
            (Type::CANONICAL_USER, Some(id), _) => acl::Grantee::User(id.clone()),
            (Type::GROUP, _, Some(uri)) => acl::Grantee::group(uri)?,
            (Type::AMAZON_CUSTOMER_BY_EMAIL, ..) => {
                return Err(Error::InvalidArgument(
                    "grants by email address are not supported: use a canonical id".into(),
                ))
            }
            _ => return Err(Error::MalformedAcl("a Grantee without its ID or URI".into())),
        };
        let is_owner = matches!((&grantee, &doc.owner), (acl::Grantee::User(id), Some(o)) if o.id.as_ref() == Some(id))
            && permission == acl::Permission::FullControl;
        if !is_owner {
            acl.0.push(acl::Grant { grantee, permission });
        }
    }
    Ok(acl)
}
