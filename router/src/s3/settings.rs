//! What a write asks of the version it makes besides bytes and metadata:
//! ACL grants, an object lock and tags. PutObject and CopyObject apply them
//! as soon as the version is committed; a multipart upload keeps them
//! (`uploads.settings`) from its first request until its completion.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use time::OffsetDateTime;

use super::tagging::{tags_of_header, Tags};
use super::Bucketfs;
use crate::access::acl::Acl;
use crate::access::{Action, Caller};
use crate::error::Result;
use crate::meta::{Bucket, VersionLock};

/// The lock a write's input (PutObject, CopyObject, CreateMultipartUpload:
/// the same field names) asks for, or the bucket's default.
macro_rules! lock_of_input {
    ($bucket:expr, $input:expr) => {
        $crate::s3::locks::new_version_lock(
            $bucket,
            $input.object_lock_mode.as_ref().map(|m| m.as_str()),
            $input.object_lock_retain_until_date.as_ref(),
            $input.object_lock_legal_hold_status.as_ref(),
        )
    };
}
pub(super) use lock_of_input;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct NewVersionSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    acl: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lock: Option<StoredLock>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tags: Option<Json>,
}

/// A `VersionLock` as kept in an upload's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredLock {
    mode: Option<String>,
    /// Unix seconds.
    retain_until: Option<i64>,
    legal_hold: bool,
}

impl NewVersionSettings {
    pub fn new(acl: Option<Acl>, lock: Option<VersionLock>, tags: Option<Tags>) -> Self {
        NewVersionSettings {
            acl: acl.map(|a| a.to_json()),
            lock: lock.map(|l| StoredLock {
                mode: l.mode,
                retain_until: l.retain_until.map(|t| t.unix_timestamp()),
                legal_hold: l.legal_hold,
            }),
            tags: tags.filter(|t| !t.is_empty()).map(|t| t.to_json()),
        }
    }

    /// Settings as stored; unreadable ones are none.
    pub fn from_json(json: &Json) -> Self {
        serde_json::from_value(json.clone()).unwrap_or_default()
    }

    pub fn to_json(&self) -> Json {
        serde_json::to_value(self).expect("settings serialise")
    }

    fn lock(&self) -> Option<VersionLock> {
        let stored = self.lock.as_ref()?;
        Some(VersionLock {
            mode: stored.mode.clone(),
            retain_until: stored
                .retain_until
                .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok()),
            legal_hold: stored.legal_hold,
        })
    }
}

impl Bucketfs {
    /// The tags a write's `x-amz-tagging` header gives, once the caller
    /// may set tags (`s3:PutObjectTagging`, as S3 asks).
    pub(super) async fn requested_tags(
        &self,
        caller: &Caller,
        bucket: &Bucket,
        key: &str,
        header: Option<&str>,
    ) -> Result<Option<Tags>> {
        let tags = tags_of_header(header)?;
        if tags.is_some() {
            self.authorize(caller, Action::PUT_OBJECT_TAGGING, bucket, Some(key), None)
                .await?;
        }
        Ok(tags)
    }

    /// Gives the version `version` (a row id, just committed) what its
    /// write asked for.
    pub(super) async fn apply_settings(&self, version: i64, settings: &NewVersionSettings) -> Result<()> {
        if let Some(grants) = &settings.acl {
            self.meta.set_version_acl(version, grants).await?;
        }
        if let Some(lock) = settings.lock() {
            self.meta.set_version_lock(version, &lock).await?;
        }
        if let Some(tags) = &settings.tags {
            self.meta.set_version_tags(version, Some(tags)).await?;
        }
        Ok(())
    }
}
