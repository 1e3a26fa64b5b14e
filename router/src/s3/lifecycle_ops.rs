//! Put/Get/DeleteBucketLifecycleConfiguration: S3's rules turned into
//! bucketfs's (`crate::lifecycle::Rule`) and back. Transitions (there are
//! no storage classes) are refused with a reason, not ignored.

use s3s::dto::*;
use s3s::{S3Request, S3Response};

use super::tagging::{Tags, MAX_OBJECT_TAGS};
use super::Bucketfs;
use crate::error::{Error, Result};
use crate::lifecycle::{rules_of, Rule, MAX_RULES};

fn invalid(why: impl Into<String>) -> Error {
    Error::InvalidArgument(format!("lifecycle: {}", why.into()))
}

fn positive(days: Option<i32>, what: &str) -> Result<Option<i32>> {
    match days {
        Some(d) if d <= 0 => Err(invalid(format!("{what} must be a positive number of days"))),
        d => Ok(d),
    }
}

fn rule_of(r: LifecycleRule) -> Result<Rule> {
    if r.transitions.is_some_and(|t| !t.is_empty())
        || r.noncurrent_version_transitions.is_some_and(|t| !t.is_empty())
    {
        return Err(invalid(
            "transitions are not supported: bucketfs has one storage class",
        ));
    }
    let mut rule = Rule {
        id: r.id.unwrap_or_default(),
        enabled: r.status.as_str() == ExpirationStatus::ENABLED,
        prefix: r.prefix.unwrap_or_default(),
        ..Rule::default()
    };
    if let Some(filter) = r.filter {
        let and = filter.and.unwrap_or_default();
        let tags: TagSet = filter
            .tag
            .into_iter()
            .chain(and.tags.unwrap_or_default())
            .collect();
        rule.tags = Tags::from_set(tags, MAX_OBJECT_TAGS)?.pairs().to_vec();
        rule.prefix = filter.prefix.or(and.prefix).unwrap_or(rule.prefix);
        rule.size_greater_than = filter.object_size_greater_than.or(and.object_size_greater_than);
        rule.size_less_than = filter.object_size_less_than.or(and.object_size_less_than);
    }
    if let Some(e) = r.expiration {
        rule.expire_days = positive(e.days, "Expiration Days")?;
        rule.expire_at = e.date.map(|d| time::OffsetDateTime::from(d).unix_timestamp());
        rule.expired_delete_markers = e.expired_object_delete_marker == Some(true);
        if rule.expire_days.is_some() && rule.expire_at.is_some() {
            return Err(invalid("Expiration takes Days or Date, not both"));
        }
    }
    if let Some(n) = r.noncurrent_version_expiration {
        rule.noncurrent_days = positive(n.noncurrent_days, "NoncurrentDays")?;
        if rule.noncurrent_days.is_none() {
            return Err(invalid("NoncurrentVersionExpiration needs NoncurrentDays"));
        }
        rule.newer_noncurrent_versions = n.newer_noncurrent_versions;
    }
    if let Some(a) = r.abort_incomplete_multipart_upload {
        rule.abort_upload_days = positive(a.days_after_initiation, "DaysAfterInitiation")?;
    }
    if !rule.tags.is_empty() && (rule.expired_delete_markers || rule.abort_upload_days.is_some()) {
        return Err(invalid(
            "ExpiredObjectDeleteMarker and AbortIncompleteMultipartUpload cannot have tag filters",
        ));
    }
    let acts = rule.expire_days.is_some()
        || rule.expire_at.is_some()
        || rule.expired_delete_markers
        || rule.noncurrent_days.is_some()
        || rule.abort_upload_days.is_some();
    if !acts {
        return Err(invalid(format!("rule {:?} has no action", rule.id)));
    }
    Ok(rule)
}

/// A rule's filter as S3 writes it: conditions beside tags go in `And`.
fn filter_to(rule: &Rule) -> LifecycleRuleFilter {
    if rule.tags.is_empty() {
        return LifecycleRuleFilter {
            prefix: Some(rule.prefix.clone()),
            object_size_greater_than: rule.size_greater_than,
            object_size_less_than: rule.size_less_than,
            ..Default::default()
        };
    }
    let tags = rule
        .tags
        .iter()
        .map(|(k, v)| Tag {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect();
    LifecycleRuleFilter {
        and: Some(LifecycleRuleAndOperator {
            prefix: Some(rule.prefix.clone()),
            tags: Some(tags),
            object_size_greater_than: rule.size_greater_than,
            object_size_less_than: rule.size_less_than,
        }),
        ..Default::default()
    }
}

fn rule_to(rule: &Rule) -> LifecycleRule {
    let expiration = (rule.expire_days.is_some() || rule.expire_at.is_some() || rule.expired_delete_markers)
        .then(|| LifecycleExpiration {
            date: rule
                .expire_at
                .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
                .map(Timestamp::from),
            days: rule.expire_days,
            expired_object_delete_marker: rule.expired_delete_markers.then_some(true),
        });
    LifecycleRule {
        abort_incomplete_multipart_upload: rule.abort_upload_days.map(|d| AbortIncompleteMultipartUpload {
            days_after_initiation: Some(d),
        }),
        expiration,
        filter: Some(filter_to(rule)),
        id: Some(rule.id.clone()),
        noncurrent_version_expiration: rule.noncurrent_days.map(|d| NoncurrentVersionExpiration {
            noncurrent_days: Some(d),
            newer_noncurrent_versions: rule.newer_noncurrent_versions,
        }),
        noncurrent_version_transitions: None,
        prefix: None,
        status: ExpirationStatus::from(
            if rule.enabled {
                ExpirationStatus::ENABLED
            } else {
                ExpirationStatus::DISABLED
            }
            .to_string(),
        ),
        transitions: None,
    }
}

impl Bucketfs {
    pub(super) async fn put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        let bucket = self.meta.bucket_uncached(&req.input.bucket).await?;
        let given = req
            .input
            .lifecycle_configuration
            .map(|c| c.rules)
            .unwrap_or_default();
        if given.is_empty() || given.len() > MAX_RULES {
            return Err(invalid(format!(
                "between 1 and {MAX_RULES} rules, not {}",
                given.len()
            )));
        }
        let rules = given.into_iter().map(rule_of).collect::<Result<Vec<_>>>()?;
        let mut ids: Vec<&str> = rules
            .iter()
            .map(|r| r.id.as_str())
            .filter(|i| !i.is_empty())
            .collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(invalid("rule IDs must be unique"));
        }
        let json = serde_json::to_value(&rules).expect("rules serialise");
        self.meta.set_lifecycle(&bucket, Some(&json)).await?;
        Ok(S3Response::new(PutBucketLifecycleConfigurationOutput::default()))
    }

    pub(super) async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        let bucket = self.meta.bucket_uncached(&req.input.bucket).await?;
        let rules = bucket
            .lifecycle
            .as_ref()
            .map(rules_of)
            .ok_or(Error::NoSuchLifecycleConfiguration)?;
        Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
            rules: Some(rules.iter().map(rule_to).collect()),
            ..Default::default()
        }))
    }

    pub(super) async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> Result<S3Response<DeleteBucketLifecycleOutput>> {
        let bucket = self.meta.bucket_uncached(&req.input.bucket).await?;
        self.meta.set_lifecycle(&bucket, None).await?;
        Ok(S3Response::new(DeleteBucketLifecycleOutput::default()))
    }
}
