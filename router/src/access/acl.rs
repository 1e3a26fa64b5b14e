//! Access control lists: the grants a bucket or an object carries beyond
//! its owner's full control, made from a canned ACL (`x-amz-acl`), grant
//! headers (`x-amz-grant-*`) or an `AccessControlPolicy` document, and
//! stored as JSON.
//!
//! bucketfs owns objects the way S3's "bucket owner enforced" setting does:
//! a bucket's owner owns every object in it. Grants add access for others.

use serde::{Deserialize, Serialize};

use super::Principal;
use crate::error::{Error, Result};

/// The group every requester belongs to, signed or not.
pub const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
/// The group of every requester who signed with a valid key.
pub const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";
/// The log delivery group (accepted and kept; bucketfs writes no logs).
pub const LOG_DELIVERY: &str = "http://acs.amazonaws.com/groups/s3/LogDelivery";

/// Who a grant is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grantee {
    /// A user, by canonical id.
    User(String),
    /// A group, by URI.
    Group(String),
}

/// What a grant allows, as S3 names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Permission {
    #[serde(rename = "READ")]
    Read,
    #[serde(rename = "WRITE")]
    Write,
    #[serde(rename = "READ_ACP")]
    ReadAcp,
    #[serde(rename = "WRITE_ACP")]
    WriteAcp,
    #[serde(rename = "FULL_CONTROL")]
    FullControl,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "READ",
            Permission::Write => "WRITE",
            Permission::ReadAcp => "READ_ACP",
            Permission::WriteAcp => "WRITE_ACP",
            Permission::FullControl => "FULL_CONTROL",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Permission::Read,
            Permission::Write,
            Permission::ReadAcp,
            Permission::WriteAcp,
            Permission::FullControl,
        ]
        .into_iter()
        .find(|p| p.as_str() == text)
    }

    /// Whether this permission includes `wanted`.
    fn covers(self, wanted: Permission) -> bool {
        self == Permission::FullControl || self == wanted
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub grantee: Grantee,
    pub permission: Permission,
}

/// The grants of a resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Acl(pub Vec<Grant>);

/// The grant headers, with the permission each gives.
pub const GRANT_HEADERS: [(&str, Permission); 5] = [
    ("x-amz-grant-read", Permission::Read),
    ("x-amz-grant-write", Permission::Write),
    ("x-amz-grant-read-acp", Permission::ReadAcp),
    ("x-amz-grant-write-acp", Permission::WriteAcp),
    ("x-amz-grant-full-control", Permission::FullControl),
];

impl Acl {
    /// The grants of a canned ACL (the owner's full control is implied).
    pub fn canned(name: &str) -> Result<Self> {
        let group = |uri: &str, permission| Grant {
            grantee: Grantee::Group(uri.to_string()),
            permission,
        };
        Ok(Acl(match name {
            // With the bucket owner owning every object, the bucket-owner
            // ACLs give no one anything more.
            "private" | "bucket-owner-read" | "bucket-owner-full-control" | "aws-exec-read" => vec![],
            "public-read" => vec![group(ALL_USERS, Permission::Read)],
            "public-read-write" => vec![
                group(ALL_USERS, Permission::Read),
                group(ALL_USERS, Permission::Write),
            ],
            "authenticated-read" => vec![group(AUTHENTICATED_USERS, Permission::Read)],
            "log-delivery-write" => vec![
                group(LOG_DELIVERY, Permission::Write),
                group(LOG_DELIVERY, Permission::ReadAcp),
            ],
            other => return Err(Error::InvalidArgument(format!("unknown canned ACL {other:?}"))),
        }))
    }

    /// Adds the grants of one `x-amz-grant-*` header's value:
    /// `id="<canonical id>", uri="<group uri>", ...` (the caller checks
    /// that the ids name users: [`Acl::user_ids`]).
    pub fn add_header_grants(&mut self, permission: Permission, value: &str) -> Result<()> {
        for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (kind, quoted) = item
                .split_once('=')
                .ok_or_else(|| Error::MalformedAcl(format!("grant {item:?} is not type=\"value\"")))?;
            let grantee_value = quoted.trim().trim_matches('"');
            let grantee = match kind.trim().to_ascii_lowercase().as_str() {
                "id" => Grantee::User(grantee_value.to_string()),
                "uri" => Grantee::group(grantee_value)?,
                "emailaddress" => {
                    return Err(Error::InvalidArgument(
                        "grants by email address are not supported: use id=\"<canonical id>\"".into(),
                    ))
                }
                other => return Err(Error::MalformedAcl(format!("unknown grantee type {other:?}"))),
            };
            self.0.push(Grant { grantee, permission });
        }
        Ok(())
    }

    /// The canonical ids the grants name.
    pub fn user_ids(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|g| match &g.grantee {
            Grantee::User(id) => Some(id.as_str()),
            Grantee::Group(_) => None,
        })
    }

    /// Whether `who` holds `wanted` through these grants.
    pub fn allows(&self, who: &Principal, wanted: Permission, ignore_public: bool) -> bool {
        self.0.iter().any(|g| {
            g.permission.covers(wanted)
                && match &g.grantee {
                    Grantee::User(id) => who.user_id() == Some(id.as_str()),
                    Grantee::Group(uri) if uri == ALL_USERS => !ignore_public,
                    Grantee::Group(uri) if uri == AUTHENTICATED_USERS => {
                        !ignore_public && who.user_id().is_some()
                    }
                    Grantee::Group(_) => false,
                }
        })
    }

    /// Whether any grant is to everyone or to every signed-in user.
    pub fn is_public(&self) -> bool {
        self.0
            .iter()
            .any(|g| matches!(&g.grantee, Grantee::Group(u) if u == ALL_USERS || u == AUTHENTICATED_USERS))
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("grants serialise")
    }

    /// The grants stored as JSON (an unreadable value reads as none).
    pub fn from_json(value: &serde_json::Value) -> Self {
        serde_json::from_value(value.clone()).unwrap_or_default()
    }
}

impl Grantee {
    /// A group grantee, by one of the URIs S3 knows.
    pub fn group(uri: &str) -> Result<Self> {
        if [ALL_USERS, AUTHENTICATED_USERS, LOG_DELIVERY].contains(&uri) {
            Ok(Grantee::Group(uri.to_string()))
        } else {
            Err(Error::MalformedAcl(format!("unknown group {uri:?}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> Principal {
        Principal::User {
            id: id.into(),
            name: id.into(),
        }
    }

    #[test]
    fn canned_acls_grant_what_s3_says() {
        let public = Acl::canned("public-read").unwrap();
        assert!(public.allows(&Principal::Anonymous, Permission::Read, false));
        assert!(!public.allows(&Principal::Anonymous, Permission::Write, false));
        assert!(
            !public.allows(&Principal::Anonymous, Permission::Read, true),
            "ignored when public ACLs are"
        );
        assert!(public.is_public());
        let authenticated = Acl::canned("authenticated-read").unwrap();
        assert!(!authenticated.allows(&Principal::Anonymous, Permission::Read, false));
        assert!(authenticated.allows(&user("b"), Permission::Read, false));
        assert!(Acl::canned("private").unwrap().0.is_empty());
        assert!(Acl::canned("public-read-write").unwrap().allows(
            &Principal::Anonymous,
            Permission::Write,
            false
        ));
        assert!(Acl::canned("world-writable").is_err());
    }

    #[test]
    fn grant_headers_name_users_and_groups() {
        let mut acl = Acl::default();
        acl.add_header_grants(
            Permission::Read,
            r#"id="b", uri="http://acs.amazonaws.com/groups/global/AuthenticatedUsers""#,
        )
        .unwrap();
        acl.add_header_grants(Permission::FullControl, r#"id="c""#)
            .unwrap();
        assert_eq!(acl.user_ids().collect::<Vec<_>>(), ["b", "c"]);
        assert!(acl.allows(&user("b"), Permission::Read, false));
        assert!(!acl.allows(&user("b"), Permission::Write, false));
        assert!(
            acl.allows(&user("c"), Permission::WriteAcp, false),
            "full control covers all"
        );
        assert!(
            acl.allows(&user("d"), Permission::Read, false),
            "through the group"
        );
        assert!(acl
            .add_header_grants(Permission::Read, r#"emailAddress="a@b""#)
            .is_err());
        assert!(acl.add_header_grants(Permission::Read, "nonsense").is_err());
        assert!(acl
            .add_header_grants(Permission::Read, r#"uri="http://example.com/g""#)
            .is_err());
        assert_eq!(Acl::from_json(&acl.to_json()), acl);
    }
}
