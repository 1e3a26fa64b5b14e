//! Lifecycle rules and their application by the elected worker: expire
//! current versions after some days or at a date (a delete marker in a
//! versioned bucket, as a DELETE), remove noncurrent versions after some
//! days beyond the newest N, remove delete markers left alone, and abort
//! uploads left unfinished. Everything goes through the ordinary delete
//! paths: a locked version stays locked.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::Result;
use crate::meta::{Bucket, Meta};
use crate::metrics::Metrics;

/// Rules a bucket may carry, as in S3.
pub const MAX_RULES: usize = 1000;

/// One rule, as stored (`buckets.lifecycle`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub id: String,
    pub enabled: bool,
    /// Keys the rule applies to start with this.
    pub prefix: String,
    /// Objects larger than this many bytes only.
    pub size_greater_than: Option<i64>,
    /// Objects carrying all of these tags only (`[key, value]` pairs).
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    /// Objects smaller than this many bytes only.
    pub size_less_than: Option<i64>,
    /// Expire current versions this many days after they were written.
    pub expire_days: Option<i32>,
    /// Expire current versions from this time on (Unix seconds).
    pub expire_at: Option<i64>,
    /// Remove delete markers that are the only version of their key.
    pub expired_delete_markers: bool,
    /// Remove versions this many days after they became noncurrent...
    pub noncurrent_days: Option<i32>,
    /// ...keeping this many newest noncurrent versions of each key.
    pub newer_noncurrent_versions: Option<i32>,
    /// Abort uploads this many days after they started.
    pub abort_upload_days: Option<i32>,
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub expired: u64,
    pub noncurrent_removed: u64,
    pub markers_removed: u64,
    pub uploads_aborted: u64,
}

/// The rules stored for a bucket (unreadable rules are none).
pub fn rules_of(json: &serde_json::Value) -> Vec<Rule> {
    serde_json::from_value(json.clone()).unwrap_or_default()
}

/// Applies every enabled rule of every bucket that has any. `day` is how
/// long a lifecycle day is (a day, except in tests).
pub async fn apply_all(meta: &Meta, metrics: &Metrics, day: Duration) -> Result<Applied> {
    let mut total = Applied::default();
    for (name, rules) in meta.lifecycle_buckets().await? {
        let bucket = match meta.bucket_uncached(&name).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(bucket = %name, error = %e, "lifecycle: bucket gone");
                continue;
            }
        };
        for rule in rules_of(&rules).iter().filter(|r| r.enabled) {
            let done = apply(meta, &bucket, rule, day).await?;
            total.expired += done.expired;
            total.noncurrent_removed += done.noncurrent_removed;
            total.markers_removed += done.markers_removed;
            total.uploads_aborted += done.uploads_aborted;
        }
    }
    metrics.lifecycle_expired.inc_by(total.expired);
    metrics
        .lifecycle_noncurrent_removed
        .inc_by(total.noncurrent_removed);
    metrics.lifecycle_markers_removed.inc_by(total.markers_removed);
    metrics.lifecycle_uploads_aborted.inc_by(total.uploads_aborted);
    Ok(total)
}

/// Aborts the uploads of any bucket started more than `age` ago (a batch
/// per pass); answers how many.
pub async fn abort_abandoned(meta: &Meta, metrics: &Metrics, age: Duration) -> Result<u64> {
    let before = OffsetDateTime::now_utc() - age;
    let mut aborted = 0;
    for upload in meta.uploads_started_before_anywhere(before).await? {
        if meta.delete_upload(&upload).await? {
            aborted += 1;
        }
    }
    if aborted > 0 {
        tracing::info!(
            aborted,
            age_secs = age.as_secs_f64(),
            "aborted abandoned multipart uploads"
        );
    }
    metrics.uploads_abandoned_aborted.inc_by(aborted);
    Ok(aborted)
}

fn days_ago(now: OffsetDateTime, days: i32, day: Duration) -> OffsetDateTime {
    now - day.mul_f64(f64::from(days.max(0)))
}

async fn apply(meta: &Meta, bucket: &Bucket, rule: &Rule, day: Duration) -> Result<Applied> {
    let now = OffsetDateTime::now_utc();
    let mut done = Applied::default();
    let tags = serde_json::to_value(&rule.tags).expect("tags serialise");
    let cutoff = match (rule.expire_days, rule.expire_at) {
        (Some(days), _) => Some(days_ago(now, days, day)),
        (None, Some(at)) if now.unix_timestamp() >= at => Some(now),
        _ => None,
    };
    if let Some(before) = cutoff {
        let size = (
            rule.size_greater_than.map_or(0, |s| s + 1),
            rule.size_less_than.map_or(i64::MAX, |s| s - 1),
        );
        for key in meta
            .current_written_before(bucket, &rule.prefix, &tags, before, size)
            .await?
        {
            match meta.delete_object(bucket, &key).await {
                Ok(_) => done.expired += 1,
                Err(e) => tracing::warn!(bucket = %bucket.name, %key, error = %e, "lifecycle: expiry failed"),
            }
        }
    }
    if let Some(days) = rule.noncurrent_days {
        let keep = i64::from(rule.newer_noncurrent_versions.unwrap_or(0).max(0));
        let before = days_ago(now, days, day);
        for (key, version) in meta
            .noncurrent_before(bucket, &rule.prefix, &tags, before, keep)
            .await?
        {
            match meta.delete_version(bucket, &key, &version, false).await {
                Ok(_) => done.noncurrent_removed += 1,
                // Locked: it stays until its lock runs out.
                Err(e) => {
                    tracing::debug!(bucket = %bucket.name, %key, %version, error = %e, "lifecycle: version kept")
                }
            }
        }
    }
    if rule.expired_delete_markers {
        for (key, version) in meta.lone_delete_markers(bucket, &rule.prefix).await? {
            if meta.delete_version(bucket, &key, &version, false).await.is_ok() {
                done.markers_removed += 1;
            }
        }
    }
    if let Some(days) = rule.abort_upload_days {
        let before = days_ago(now, days, day);
        for upload in meta.uploads_started_before(bucket, &rule.prefix, before).await? {
            if meta.delete_upload(&upload).await? {
                done.uploads_aborted += 1;
            }
        }
    }
    if done != Applied::default() {
        tracing::info!(bucket = %bucket.name, rule = %rule.id, ?done, "lifecycle rule applied");
    }
    Ok(done)
}
