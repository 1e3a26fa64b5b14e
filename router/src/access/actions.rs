//! Which S3 action an operation is (as bucket policies name it) and what
//! else grants it: the bucket's ACL, the object's, or only ownership.

use super::acl::Permission;

/// What, besides a policy's Allow or the bucket's ownership, lets an
/// action through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Any signed request (ListBuckets, CreateBucket).
    Signature,
    /// Nothing: the owner only (bucket configuration).
    Owner,
    /// This permission in the bucket's ACL.
    Bucket(Permission),
    /// This permission in the object's ACL.
    Object(Permission),
    /// Judged by the operation for each key it names (DeleteObjects):
    /// the check before it lets it through.
    PerKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    /// `s3:GetObject` and the like.
    pub name: &'static str,
    pub needs: Needs,
}

/// Operations by s3s name: (action, action with a versionId, needs).
const TABLE: &[(&str, &str, &str, Needs)] = {
    use Needs::*;
    use Permission::*;
    &[
        ("ListBuckets", "s3:ListAllMyBuckets", "", Signature),
        ("CreateBucket", "s3:CreateBucket", "", Signature),
        ("DeleteBucket", "s3:DeleteBucket", "", Owner),
        ("HeadBucket", "s3:ListBucket", "", Bucket(Read)),
        ("GetBucketLocation", "s3:GetBucketLocation", "", Owner),
        ("GetBucketVersioning", "s3:GetBucketVersioning", "", Owner),
        ("PutBucketVersioning", "s3:PutBucketVersioning", "", Owner),
        ("ListObjects", "s3:ListBucket", "", Bucket(Read)),
        ("ListObjectsV2", "s3:ListBucket", "", Bucket(Read)),
        ("ListObjectVersions", "s3:ListBucketVersions", "", Bucket(Read)),
        (
            "ListMultipartUploads",
            "s3:ListBucketMultipartUploads",
            "",
            Bucket(Read),
        ),
        ("GetObject", "s3:GetObject", "s3:GetObjectVersion", Object(Read)),
        ("HeadObject", "s3:GetObject", "s3:GetObjectVersion", Object(Read)),
        (
            "GetObjectAttributes",
            "s3:GetObjectAttributes",
            "s3:GetObjectVersionAttributes",
            Object(Read),
        ),
        ("PutObject", "s3:PutObject", "", Bucket(Write)),
        // A browser's form upload, authorised by its signed policy.
        ("PostObject", "s3:PutObject", "", Bucket(Write)),
        ("CopyObject", "s3:PutObject", "", Bucket(Write)),
        ("CreateMultipartUpload", "s3:PutObject", "", Bucket(Write)),
        ("UploadPart", "s3:PutObject", "", Bucket(Write)),
        ("UploadPartCopy", "s3:PutObject", "", Bucket(Write)),
        ("CompleteMultipartUpload", "s3:PutObject", "", Bucket(Write)),
        (
            "AbortMultipartUpload",
            "s3:AbortMultipartUpload",
            "",
            Bucket(Write),
        ),
        ("ListParts", "s3:ListMultipartUploadParts", "", Bucket(Write)),
        (
            "DeleteObject",
            "s3:DeleteObject",
            "s3:DeleteObjectVersion",
            Bucket(Write),
        ),
        ("DeleteObjects", "s3:DeleteObject", "", PerKey),
        ("GetBucketAcl", "s3:GetBucketAcl", "", Bucket(ReadAcp)),
        ("PutBucketAcl", "s3:PutBucketAcl", "", Bucket(WriteAcp)),
        (
            "GetObjectAcl",
            "s3:GetObjectAcl",
            "s3:GetObjectVersionAcl",
            Object(ReadAcp),
        ),
        (
            "PutObjectAcl",
            "s3:PutObjectAcl",
            "s3:PutObjectVersionAcl",
            Object(WriteAcp),
        ),
        ("GetBucketPolicy", "s3:GetBucketPolicy", "", Owner),
        ("PutBucketPolicy", "s3:PutBucketPolicy", "", Owner),
        ("DeleteBucketPolicy", "s3:DeleteBucketPolicy", "", Owner),
        ("GetBucketPolicyStatus", "s3:GetBucketPolicyStatus", "", Owner),
        ("GetPublicAccessBlock", "s3:GetBucketPublicAccessBlock", "", Owner),
        ("PutPublicAccessBlock", "s3:PutBucketPublicAccessBlock", "", Owner),
        (
            "DeletePublicAccessBlock",
            "s3:PutBucketPublicAccessBlock",
            "",
            Owner,
        ),
        (
            "GetObjectTagging",
            "s3:GetObjectTagging",
            "s3:GetObjectVersionTagging",
            Owner,
        ),
        (
            "PutObjectTagging",
            "s3:PutObjectTagging",
            "s3:PutObjectVersionTagging",
            Owner,
        ),
        (
            "DeleteObjectTagging",
            "s3:DeleteObjectTagging",
            "s3:DeleteObjectVersionTagging",
            Owner,
        ),
        ("GetBucketTagging", "s3:GetBucketTagging", "", Owner),
        ("PutBucketTagging", "s3:PutBucketTagging", "", Owner),
        ("DeleteBucketTagging", "s3:PutBucketTagging", "", Owner),
        ("GetBucketCors", "s3:GetBucketCORS", "", Owner),
        ("PutBucketCors", "s3:PutBucketCORS", "", Owner),
        ("DeleteBucketCors", "s3:PutBucketCORS", "", Owner),
    ]
};

impl Action {
    /// The action of operation `op` (an s3s operation name). An operation
    /// not listed is the bucket owner's alone.
    pub fn of(op: &str, with_version: bool, method: &http::Method) -> Self {
        match TABLE.iter().find(|(name, ..)| *name == op) {
            Some((_, plain, versioned, needs)) => Action {
                name: if with_version && !versioned.is_empty() {
                    versioned
                } else {
                    plain
                },
                needs: *needs,
            },
            None => {
                tracing::debug!(op, %method, "operation without an access rule: owner only");
                Action {
                    name: "s3:*",
                    needs: Needs::Owner,
                }
            }
        }
    }

    /// The action of a bucketfs extension: a batch PUT, or a rename.
    pub const PUT_OBJECT: Action = Action {
        name: "s3:PutObject",
        needs: Needs::Bucket(Permission::Write),
    };
    pub const DELETE_OBJECT: Action = Action {
        name: "s3:DeleteObject",
        needs: Needs::Bucket(Permission::Write),
    };
    /// Shortening or removing a governance retention early.
    pub const BYPASS_GOVERNANCE: Action = Action {
        name: "s3:BypassGovernanceRetention",
        needs: Needs::Owner,
    };
    /// Tags given with a write (`x-amz-tagging`), as S3 asks for them.
    pub const PUT_OBJECT_TAGGING: Action = Action {
        name: "s3:PutObjectTagging",
        needs: Needs::Owner,
    };
    pub const GET_OBJECT: Action = Action {
        name: "s3:GetObject",
        needs: Needs::Object(Permission::Read),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_map_to_actions_and_versions_to_their_own() {
        let get = Action::of("GetObject", false, &http::Method::GET);
        assert_eq!(get, Action::GET_OBJECT);
        assert_eq!(
            Action::of("GetObject", true, &http::Method::GET).name,
            "s3:GetObjectVersion"
        );
        assert_eq!(
            Action::of("PutObject", true, &http::Method::PUT).name,
            "s3:PutObject"
        );
        assert_eq!(
            Action::of("ListObjectsV2", false, &http::Method::GET).needs,
            Needs::Bucket(Permission::Read)
        );
        let unknown = Action::of("PutBucketWebsite", false, &http::Method::PUT);
        assert_eq!(unknown.needs, Needs::Owner);
        let names: std::collections::HashSet<_> = TABLE.iter().map(|(n, ..)| n).collect();
        assert_eq!(names.len(), TABLE.len(), "each operation listed once");
    }
}
