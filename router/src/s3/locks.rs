//! Object lock, as S3 does it: a bucket made with lock enabled keeps
//! versioning on and may give new versions a default retention; each
//! version may carry a retention (GOVERNANCE: only a caller allowed
//! `s3:BypassGovernanceRetention` who sends the bypass header may shorten
//! or delete it early; COMPLIANCE: no one may, until its date) and a legal
//! hold (no delete while on). The rule every delete of a version meets is
//! `meta::locks::unlock_for_delete`.

use s3s::dto::*;
use s3s::{S3Request, S3Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::access_ops::caller_of;
use super::Bucketfs;
use crate::access::{Action, Caller};
use crate::error::{Error, Result};
use crate::meta::{Bucket, VersionLock};

/// A bucket's lock configuration as stored (`buckets.object_lock`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct LockConfig {
    /// The default retention mode of new versions, if any.
    pub mode: Option<String>,
    pub days: Option<i32>,
    pub years: Option<i32>,
}

impl LockConfig {
    pub fn of(bucket: &Bucket) -> Option<Self> {
        bucket
            .object_lock
            .as_ref()
            .map(|v| serde_json::from_value(v.clone()).unwrap_or_default())
    }
}

fn mode_name(mode: &str) -> Result<String> {
    match mode {
        ObjectLockRetentionMode::GOVERNANCE | ObjectLockRetentionMode::COMPLIANCE => Ok(mode.to_string()),
        other => Err(Error::InvalidArgument(format!(
            "unknown retention mode {other:?}"
        ))),
    }
}

/// The lock a new version gets: what its request asks, else the bucket's
/// default retention. `None` when it gets none.
pub(super) fn new_version_lock(
    bucket: &Bucket,
    mode: Option<&str>,
    until: Option<&Timestamp>,
    hold: Option<&ObjectLockLegalHoldStatus>,
) -> Result<Option<VersionLock>> {
    let asked = mode.is_some() || until.is_some() || hold.is_some();
    let Some(config) = LockConfig::of(bucket) else {
        if asked {
            return Err(Error::InvalidArgument(
                "the bucket has no object lock configuration: lock headers are refused".into(),
            ));
        }
        return Ok(None);
    };
    let now = OffsetDateTime::now_utc();
    let (mode, retain_until) = match (mode, until) {
        (Some(mode), Some(until)) => {
            let until = OffsetDateTime::from(until.clone());
            if until <= now {
                return Err(Error::InvalidArgument(
                    "the retain-until date must be in the future".into(),
                ));
            }
            (Some(mode_name(mode)?), Some(until))
        }
        (None, None) => match &config.mode {
            Some(mode) => {
                let days = i64::from(config.days.unwrap_or(0)) + 365 * i64::from(config.years.unwrap_or(0));
                (Some(mode.clone()), Some(now + time::Duration::days(days)))
            }
            None => (None, None),
        },
        _ => {
            return Err(Error::InvalidArgument(
                "x-amz-object-lock-mode and x-amz-object-lock-retain-until-date go together".into(),
            ))
        }
    };
    let lock = VersionLock {
        mode,
        retain_until,
        legal_hold: hold.is_some_and(|h| h.as_str() == ObjectLockLegalHoldStatus::ON),
    };
    Ok((lock != VersionLock::default()).then_some(lock))
}

/// The lock fields of a GET or HEAD answer.
#[derive(Debug, Default)]
pub(super) struct LockFields {
    pub mode: Option<ObjectLockMode>,
    pub retain_until: Option<Timestamp>,
    pub legal_hold: Option<ObjectLockLegalHoldStatus>,
}

/// Sets an output's (GetObject, HeadObject) lock fields.
macro_rules! set_lock_fields {
    ($output:expr, $fields:expr) => {{
        let f = $fields;
        $output.object_lock_mode = f.mode;
        $output.object_lock_retain_until_date = f.retain_until;
        $output.object_lock_legal_hold_status = f.legal_hold;
    }};
}
pub(super) use set_lock_fields;

impl Bucketfs {
    /// What a GET or HEAD says of a version's lock: nothing outside a
    /// lock-enabled bucket (and no query there).
    pub(super) async fn lock_fields(&self, bucket: &Bucket, version: i64) -> Result<LockFields> {
        if LockConfig::of(bucket).is_none() {
            return Ok(LockFields::default());
        }
        let lock = self.meta.version_lock(version).await?;
        let hold = if lock.legal_hold {
            ObjectLockLegalHoldStatus::ON
        } else {
            ObjectLockLegalHoldStatus::OFF
        };
        Ok(LockFields {
            mode: lock.mode.map(ObjectLockMode::from),
            retain_until: lock.retain_until.map(Timestamp::from),
            legal_hold: Some(ObjectLockLegalHoldStatus::from(hold.to_string())),
        })
    }

    /// A version's row id and lock (the current version unless
    /// `version_id`); with `configured`, only in a lock-enabled bucket.
    async fn lock_of(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        configured: bool,
    ) -> Result<(Bucket, i64, VersionLock)> {
        let bucket = self.meta.bucket(bucket).await?;
        if configured && LockConfig::of(&bucket).is_none() {
            return Err(Error::InvalidArgument(
                "the bucket has no object lock configuration".into(),
            ));
        }
        let version = self.meta.version(&bucket, key, version_id).await?;
        let lock = self.meta.version_lock(version.id).await?;
        Ok((bucket, version.id, lock))
    }

    /// Whether this request may bypass governance retention: it says so,
    /// and its caller may (`s3:BypassGovernanceRetention`).
    pub(super) async fn may_bypass(&self, caller: &Caller, bucket: &Bucket, key: &str, asked: bool) -> bool {
        asked
            && self
                .authorize(caller, Action::BYPASS_GOVERNANCE, bucket, Some(key), None)
                .await
                .is_ok()
    }

    /// Makes bucket `name` lock-enabled: versioning on, no default.
    pub(super) async fn enable_object_lock(&self, name: &str) -> Result<()> {
        let bucket = self.meta.bucket_uncached(name).await?;
        self.meta.set_versioning(&bucket, "Enabled").await?;
        let config = serde_json::to_value(LockConfig::default()).expect("a config serialises");
        self.meta.set_object_lock(&bucket, &config).await
    }

    pub(super) async fn put_object_lock_configuration(
        &self,
        req: S3Request<PutObjectLockConfigurationInput>,
    ) -> Result<S3Response<PutObjectLockConfigurationOutput>> {
        let bucket = self.meta.bucket_uncached(&req.input.bucket).await?;
        if !bucket.versioning_enabled() {
            return Err(Error::InvalidBucketState(
                "object lock needs versioning enabled on the bucket".into(),
            ));
        }
        let given = req.input.object_lock_configuration.unwrap_or_default();
        let retention = given.rule.and_then(|r| r.default_retention);
        let config = match retention {
            None => LockConfig::default(),
            Some(r) => {
                let mode = r
                    .mode
                    .as_ref()
                    .map(|m| mode_name(m.as_str()))
                    .transpose()?
                    .ok_or_else(|| Error::InvalidArgument("a default retention needs a Mode".into()))?;
                match (r.days, r.years) {
                    (Some(d), None) if d > 0 => LockConfig {
                        mode: Some(mode),
                        days: Some(d),
                        years: None,
                    },
                    (None, Some(y)) if y > 0 => LockConfig {
                        mode: Some(mode),
                        days: None,
                        years: Some(y),
                    },
                    _ => {
                        return Err(Error::InvalidArgument(
                            "a default retention needs a positive Days or Years, not both".into(),
                        ))
                    }
                }
            }
        };
        let json = serde_json::to_value(config).expect("a config serialises");
        self.meta.set_object_lock(&bucket, &json).await?;
        Ok(S3Response::new(PutObjectLockConfigurationOutput::default()))
    }

    pub(super) async fn get_object_lock_configuration(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> Result<S3Response<GetObjectLockConfigurationOutput>> {
        let bucket = self.meta.bucket_uncached(&req.input.bucket).await?;
        let config = LockConfig::of(&bucket).ok_or(Error::NoObjectLockConfiguration)?;
        let rule = config.mode.map(|mode| ObjectLockRule {
            default_retention: Some(DefaultRetention {
                days: config.days,
                mode: Some(ObjectLockRetentionMode::from(mode)),
                years: config.years,
            }),
        });
        Ok(S3Response::new(GetObjectLockConfigurationOutput {
            object_lock_configuration: Some(ObjectLockConfiguration {
                object_lock_enabled: Some(ObjectLockEnabled::from(ObjectLockEnabled::ENABLED.to_string())),
                rule,
            }),
        }))
    }

    pub(super) async fn put_object_retention(
        &self,
        req: S3Request<PutObjectRetentionInput>,
    ) -> Result<S3Response<PutObjectRetentionOutput>> {
        let caller = caller_of(&req);
        let input = req.input;
        let bucket = self.meta.bucket(&input.bucket).await?;
        if LockConfig::of(&bucket).is_none() {
            return Err(Error::InvalidArgument(
                "the bucket has no object lock configuration".into(),
            ));
        }
        let version = self
            .meta
            .version(&bucket, &input.key, input.version_id.as_deref())
            .await?;
        let mut lock = self.meta.version_lock(version.id).await?;
        let retention = input.retention.unwrap_or_default();
        let mode = retention
            .mode
            .as_ref()
            .map(|m| mode_name(m.as_str()))
            .transpose()?;
        let until = retention.retain_until_date.map(OffsetDateTime::from);
        let now = OffsetDateTime::now_utc();
        if lock.retained(now) {
            let shorter = match (until, lock.retain_until) {
                (Some(new), Some(old)) => new < old,
                _ => true,
            };
            let weaker = mode.as_deref() != Some("COMPLIANCE") && lock.mode.as_deref() == Some("COMPLIANCE");
            let governance = lock.mode.as_deref() == Some("GOVERNANCE");
            let bypass = self
                .may_bypass(
                    &caller,
                    &bucket,
                    &input.key,
                    input.bypass_governance_retention == Some(true),
                )
                .await;
            if (shorter || weaker) && !(governance && bypass) {
                return Err(Error::ObjectLocked);
            }
        }
        if until.is_some_and(|u| u <= now) {
            return Err(Error::InvalidArgument(
                "the retain-until date must be in the future".into(),
            ));
        }
        lock.mode = mode;
        lock.retain_until = until;
        self.meta.set_version_lock(version.id, &lock).await?;
        Ok(S3Response::new(PutObjectRetentionOutput::default()))
    }

    pub(super) async fn get_object_retention(
        &self,
        req: S3Request<GetObjectRetentionInput>,
    ) -> Result<S3Response<GetObjectRetentionOutput>> {
        let input = &req.input;
        let (_, _, lock) = self
            .lock_of(&input.bucket, &input.key, input.version_id.as_deref(), false)
            .await?;
        let mode = lock.mode.ok_or(Error::NoObjectLockConfiguration)?;
        Ok(S3Response::new(GetObjectRetentionOutput {
            retention: Some(ObjectLockRetention {
                mode: Some(ObjectLockRetentionMode::from(mode)),
                retain_until_date: lock.retain_until.map(Timestamp::from),
            }),
        }))
    }

    pub(super) async fn put_object_legal_hold(
        &self,
        req: S3Request<PutObjectLegalHoldInput>,
    ) -> Result<S3Response<PutObjectLegalHoldOutput>> {
        let input = req.input;
        let (_, version, mut lock) = self
            .lock_of(&input.bucket, &input.key, input.version_id.as_deref(), true)
            .await?;
        lock.legal_hold = input
            .legal_hold
            .and_then(|h| h.status)
            .is_some_and(|s| s.as_str() == ObjectLockLegalHoldStatus::ON);
        self.meta.set_version_lock(version, &lock).await?;
        Ok(S3Response::new(PutObjectLegalHoldOutput::default()))
    }

    pub(super) async fn get_object_legal_hold(
        &self,
        req: S3Request<GetObjectLegalHoldInput>,
    ) -> Result<S3Response<GetObjectLegalHoldOutput>> {
        let input = &req.input;
        let (_, _, lock) = self
            .lock_of(&input.bucket, &input.key, input.version_id.as_deref(), false)
            .await?;
        let status = if lock.legal_hold {
            ObjectLockLegalHoldStatus::ON
        } else {
            ObjectLockLegalHoldStatus::OFF
        };
        Ok(S3Response::new(GetObjectLegalHoldOutput {
            legal_hold: Some(ObjectLockLegalHold {
                status: Some(ObjectLockLegalHoldStatus::from(status.to_string())),
            }),
        }))
    }
}
