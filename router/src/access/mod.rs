//! Who may do what: every S3 request is judged here before it runs, the
//! way S3 judges it — an explicit Deny in the bucket policy refuses it, an
//! Allow in the policy, ownership of the bucket or an ACL grant lets it
//! through, anything else is refused (403 AccessDenied).
//!
//! - `identity`: access key → user (cached), the signing secret for s3s.
//! - `actions`: which S3 action (`s3:GetObject`, ...) an operation is, and
//!   which ACL permission stands for it.
//! - `acl`: grants; `policy`: bucket policies.
//!
//! A bucket's owner owns every object in it (S3's "bucket owner enforced");
//! buckets made before owners existed (no owner) are open to every user, as
//! they were.

pub mod acl;
mod actions;
mod identity;
pub mod policy;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use s3s::access::{S3Access, S3AccessContext};
use s3s::S3Result;
use serde::{Deserialize, Serialize};

pub use actions::{Action, Needs};
pub use identity::Identities;

use crate::error::{Error, Result};
use crate::meta::{Bucket, Meta};
use acl::Acl;
use policy::{Decision, Policy};

/// The header naming the bucket owner a request expects.
const EXPECTED_OWNER_HEADER: &str = "x-amz-expected-bucket-owner";

/// Who sent a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Unsigned.
    Anonymous,
    /// Signed with a key of this user.
    User { id: String, name: String },
}

impl Principal {
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Principal::User { id, .. } => Some(id),
            Principal::Anonymous => None,
        }
    }
}

/// Who made a request and its policy condition keys: what the checks an
/// operation makes itself (a copy's source, each key of a batch) judge
/// with, so a policy's conditions hold there as before the operation.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// Condition keys (lowercase) and their values.
    pub conditions: HashMap<String, String>,
}

/// A bucket's public access block configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicAccessBlock {
    /// Refuse ACLs that grant to everyone or every signed-in user.
    pub block_public_acls: bool,
    /// Ignore such grants when judging requests.
    pub ignore_public_acls: bool,
    /// Refuse a bucket policy that allows everyone.
    pub block_public_policy: bool,
    /// A public policy's Allows count for the owner only.
    pub restrict_public_buckets: bool,
}

impl PublicAccessBlock {
    pub fn of(bucket: &Bucket) -> Self {
        bucket
            .public_access_block
            .as_ref()
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    }
}

/// Parsed policies by bucket id, with the text they were parsed from.
type PolicyCache = HashMap<i64, (String, Arc<Policy>)>;

/// Judges requests; one per router.
#[derive(Clone)]
pub struct Access {
    meta: Meta,
    identities: Identities,
    policies: Arc<Mutex<PolicyCache>>,
}

/// One request to judge.
pub struct Query<'a> {
    pub principal: &'a Principal,
    pub action: Action,
    pub bucket: &'a Bucket,
    pub key: Option<&'a str>,
    pub version_id: Option<&'a str>,
    /// Policy condition keys (lowercase) and their values.
    pub context: HashMap<String, String>,
}

impl Access {
    pub fn new(meta: Meta, identities: Identities) -> Self {
        Self {
            meta,
            identities,
            policies: Arc::default(),
        }
    }

    /// The principal of a request signed with `access_key` (or none).
    pub async fn principal(&self, access_key: Option<&str>) -> Result<Principal> {
        match access_key {
            None => Ok(Principal::Anonymous),
            Some(key) => {
                let owner = self.identities.owner(key).await?.ok_or(Error::AccessDenied)?;
                Ok(Principal::User {
                    id: owner.user_id,
                    name: owner.user_name,
                })
            }
        }
    }

    fn policy(&self, bucket: &Bucket) -> Option<Arc<Policy>> {
        let text = bucket.policy.as_ref()?;
        let mut cache = self.policies.lock().unwrap();
        if let Some((cached, policy)) = cache.get(&bucket.id) {
            if cached == text {
                return Some(policy.clone());
            }
        }
        // Validated when put; a policy that no longer parses allows nothing.
        let policy = Arc::new(Policy::parse(text, &bucket.name).ok()?);
        cache.insert(bucket.id, (text.clone(), policy.clone()));
        Some(policy)
    }

    /// Whether the query may proceed: `Err(AccessDenied)` if not.
    pub async fn authorize(&self, q: &Query<'_>) -> Result<()> {
        if self.allowed(q).await? {
            Ok(())
        } else {
            tracing::debug!(principal = ?q.principal, action = q.action.name, bucket = %q.bucket.name, key = ?q.key, "access denied");
            Err(Error::AccessDenied)
        }
    }

    async fn allowed(&self, q: &Query<'_>) -> Result<bool> {
        let owner = is_owner(q.principal, q.bucket);
        let block = PublicAccessBlock::of(q.bucket);
        if let Some(policy) = self.policy(q.bucket) {
            let resource = match q.key {
                Some(key) => format!("arn:aws:s3:::{}/{key}", q.bucket.name),
                None => format!("arn:aws:s3:::{}", q.bucket.name),
            };
            let mut context = q.context.clone();
            if let Principal::User { id, name } = q.principal {
                context.insert("aws:userid".into(), id.clone());
                context.insert("aws:username".into(), name.clone());
            }
            let request = policy::Request {
                principal: q.principal,
                action: q.action.name,
                resource: &resource,
                context: &context,
            };
            match policy.evaluate(&request) {
                Decision::Deny => return Ok(false),
                Decision::Allow if !(block.restrict_public_buckets && policy.is_public()) || owner => {
                    return Ok(true)
                }
                _ => {}
            }
        }
        if owner {
            return Ok(true);
        }
        Ok(match q.action.needs {
            Needs::Signature => q.principal.user_id().is_some(),
            Needs::PerKey => true,
            Needs::Owner => false,
            Needs::Bucket(permission) => {
                Acl::from_json(&q.bucket.acl).allows(q.principal, permission, block.ignore_public_acls)
            }
            Needs::Object(permission) => match q.key {
                Some(key) => self
                    .meta
                    .object_acl(q.bucket, key, q.version_id)
                    .await?
                    .is_some_and(|grants| {
                        Acl::from_json(&grants).allows(q.principal, permission, block.ignore_public_acls)
                    }),
                None => false,
            },
        })
    }
}

fn is_owner(principal: &Principal, bucket: &Bucket) -> bool {
    match (&bucket.owner_id, principal.user_id()) {
        (Some(owner), Some(user)) => owner == user,
        // Made before owners: every user's, as it was.
        (None, Some(_)) => true,
        (_, None) => false,
    }
}

/// The condition keys of a request that do not depend on its bucket;
/// `client` is who the server found it came from.
pub fn conditions(
    headers: &http::HeaderMap,
    client: Option<crate::server::Client>,
    query: Option<&str>,
    version_id: Option<&str>,
) -> HashMap<String, String> {
    let mut context = HashMap::new();
    let now = time::OffsetDateTime::now_utc();
    context.insert(
        "aws:currenttime".into(),
        now.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    );
    context.insert("aws:epochtime".into(), now.unix_timestamp().to_string());
    // Who the client is, as the server judged it (believing forwarded
    // headers only from trusted proxies).
    if let Some(client) = client {
        context.insert("aws:securetransport".into(), client.secure.to_string());
        context.insert("aws:sourceip".into(), client.ip.to_string());
    } else {
        context.insert("aws:securetransport".into(), "false".into());
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    for (key, name) in [
        ("aws:useragent", "user-agent"),
        ("aws:referer", "referer"),
        ("s3:x-amz-acl", "x-amz-acl"),
        ("s3:x-amz-server-side-encryption", "x-amz-server-side-encryption"),
        ("s3:x-amz-copy-source", "x-amz-copy-source"),
        ("s3:x-amz-metadata-directive", "x-amz-metadata-directive"),
    ] {
        if let Some(v) = header(name) {
            context.insert(key.into(), v);
        }
    }
    for (name, value) in query_pairs(query) {
        match name.as_str() {
            "prefix" => context.insert("s3:prefix".into(), value),
            "delimiter" => context.insert("s3:delimiter".into(), value),
            "max-keys" => context.insert("s3:max-keys".into(), value),
            _ => None,
        };
    }
    if let Some(v) = version_id {
        context.insert("s3:versionid".into(), v.to_string());
    }
    context
}

/// The decoded `name=value` pairs of a query string.
fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            (
                crate::escape::percent_decode(n).unwrap_or_default(),
                crate::escape::percent_decode(v).unwrap_or_default(),
            )
        })
        .collect()
}

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        // The operation's latency is recorded under its name.
        let operation = cx.s3_op().name().to_owned();
        if let Some(slot) = cx.extensions_mut().get::<crate::metrics::OperationSlot>() {
            slot.set(&operation);
        }
        let principal = self
            .principal(cx.credentials().map(|c| c.access_key.as_str()))
            .await?;
        let version_id = query_pairs(cx.uri().query())
            .into_iter()
            .find(|(n, _)| n == "versionId")
            .map(|(_, v)| v);
        let client = cx.extensions_mut().get::<crate::server::Client>().copied();
        let context = conditions(cx.headers(), client, cx.uri().query(), version_id.as_deref());
        cx.extensions_mut().insert(Caller {
            principal: principal.clone(),
            conditions: context.clone(),
        });
        let (bucket, key) = match cx.s3_path() {
            s3s::path::S3Path::Root => {
                // ListBuckets: every signed-in user sees their own.
                return match principal {
                    Principal::User { .. } => Ok(()),
                    Principal::Anonymous => Err(Error::AccessDenied.into()),
                };
            }
            s3s::path::S3Path::Bucket { bucket } => (bucket.to_string(), None),
            s3s::path::S3Path::Object { bucket, key } => (bucket.to_string(), Some(key.to_string())),
        };
        let action = Action::of(&operation, version_id.is_some(), cx.method());
        if action.name == "s3:CreateBucket" {
            return match principal {
                Principal::User { .. } => Ok(()),
                Principal::Anonymous => Err(Error::AccessDenied.into()),
            };
        }
        let bucket = match self.meta.bucket(&bucket).await {
            Ok(b) => b,
            // The operation answers NoSuchBucket (or creates it).
            Err(Error::NoSuchBucket) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if let Some(expected) = cx.headers().get(EXPECTED_OWNER_HEADER) {
            if bucket.owner_id.as_deref().map(str::as_bytes) != Some(expected.as_bytes()) {
                return Err(Error::AccessDenied.into());
            }
        }
        let query = Query {
            principal: &principal,
            action,
            bucket: &bucket,
            key: key.as_deref(),
            version_id: version_id.as_deref(),
            context,
        };
        Ok(self.authorize(&query).await?)
    }
}

/// Whether an ACL may be set on a bucket with this public access block.
pub fn check_acl_allowed(acl: &Acl, block: PublicAccessBlock) -> Result<()> {
    if block.block_public_acls && acl.is_public() {
        return Err(Error::AccessDenied);
    }
    Ok(())
}
