//! Object and bucket tagging: Get/Put/DeleteObjectTagging, the
//! `x-amz-tagging` header of a write, and Get/Put/DeleteBucketTagging.
//!
//! Tags are stored as a JSON array of `[key, value]` pairs in the order
//! given, so lifecycle filters can match them with `@>`. Changing an
//! object's tags makes no new version, as in S3.

use s3s::dto::*;
use s3s::{S3Request, S3Response};
use serde_json::Value as Json;

use super::{visible_version_id, Bucketfs};
use crate::error::{Error, Result};
use crate::escape::percent_decode;

/// Tags an object version may carry, as in S3.
pub const MAX_OBJECT_TAGS: usize = 10;
/// Tags a bucket may carry, as in S3.
pub const MAX_BUCKET_TAGS: usize = 50;
const MAX_KEY_CHARS: usize = 128;
const MAX_VALUE_CHARS: usize = 256;

/// A checked tag set: unique keys of 1–128 characters, values of at most
/// 256, none under the reserved `aws:` prefix, at most `max` of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags(Vec<(String, String)>);

impl Tags {
    pub fn new(pairs: Vec<(String, String)>, max: usize) -> Result<Self> {
        let invalid = |why: String| Err(Error::InvalidTag(why));
        if pairs.len() > max {
            return invalid(format!("{} tags; at most {max} are allowed", pairs.len()));
        }
        for (i, (key, value)) in pairs.iter().enumerate() {
            let chars = key.chars().count();
            if chars == 0 || chars > MAX_KEY_CHARS {
                return invalid(format!("a tag key must have 1 to {MAX_KEY_CHARS} characters"));
            }
            if value.chars().count() > MAX_VALUE_CHARS {
                return invalid(format!(
                    "tag {key:?}: a value may have at most {MAX_VALUE_CHARS} characters"
                ));
            }
            if key.to_ascii_lowercase().starts_with("aws:") {
                return invalid(format!("tag {key:?}: the aws: prefix is reserved"));
            }
            if key.chars().chain(value.chars()).any(char::is_control) {
                return invalid(format!("tag {key:?}: control characters are not allowed"));
            }
            if pairs[..i].iter().any(|(k, _)| k == key) {
                return invalid(format!("tag {key:?} is given twice"));
            }
        }
        Ok(Tags(pairs))
    }

    /// Tags from an `x-amz-tagging` header: URL query syntax, `k1=v1&k2=v2`.
    pub fn from_header(header: &str) -> Result<Self> {
        let decode = |s: &str| {
            percent_decode(&s.replace('+', " "))
                .ok_or_else(|| Error::InvalidTag(format!("malformed escape in {s:?}")))
        };
        let pairs = header
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                Ok((decode(k)?, decode(v)?))
            })
            .collect::<Result<Vec<_>>>()?;
        Self::new(pairs, MAX_OBJECT_TAGS)
    }

    pub fn from_set(set: TagSet, max: usize) -> Result<Self> {
        let pairs = set
            .into_iter()
            .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()))
            .collect();
        Self::new(pairs, max)
    }

    /// Tags as stored; unreadable ones are none.
    pub fn from_json(json: &Json) -> Self {
        Tags(serde_json::from_value(json.clone()).unwrap_or_default())
    }

    pub fn to_json(&self) -> Json {
        serde_json::to_value(&self.0).expect("tags serialise")
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    pub fn to_set(&self) -> TagSet {
        self.0
            .iter()
            .map(|(k, v)| Tag {
                key: Some(k.clone()),
                value: Some(v.clone()),
            })
            .collect()
    }
}

/// The tags a write's `x-amz-tagging` header gives, if any.
pub(super) fn tags_of_header(header: Option<&str>) -> Result<Option<Tags>> {
    header.map(Tags::from_header).transpose()
}

impl Bucketfs {
    pub(super) async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> Result<S3Response<GetObjectTaggingOutput>> {
        let input = req.input;
        let (_, version) = self
            .version_in(&input.bucket, &input.key, input.version_id.as_deref())
            .await?;
        let tags = self.meta.version_tags(version.id).await?;
        Ok(S3Response::new(GetObjectTaggingOutput {
            tag_set: tags.map(|t| Tags::from_json(&t).to_set()).unwrap_or_default(),
            version_id: visible_version_id(&version),
        }))
    }

    pub(super) async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> Result<S3Response<PutObjectTaggingOutput>> {
        let input = req.input;
        let tags = Tags::from_set(input.tagging.tag_set, MAX_OBJECT_TAGS)?;
        let (_, version) = self
            .version_in(&input.bucket, &input.key, input.version_id.as_deref())
            .await?;
        let stored = (!tags.is_empty()).then(|| tags.to_json());
        self.meta.set_version_tags(version.id, stored.as_ref()).await?;
        Ok(S3Response::new(PutObjectTaggingOutput {
            version_id: visible_version_id(&version),
        }))
    }

    pub(super) async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> Result<S3Response<DeleteObjectTaggingOutput>> {
        let input = req.input;
        let (_, version) = self
            .version_in(&input.bucket, &input.key, input.version_id.as_deref())
            .await?;
        self.meta.set_version_tags(version.id, None).await?;
        Ok(S3Response::new(DeleteObjectTaggingOutput {
            version_id: visible_version_id(&version),
        }))
    }

    pub(super) async fn get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> Result<S3Response<GetBucketTaggingOutput>> {
        let bucket = self.meta.bucket_uncached(&req.input.bucket).await?;
        let tags = bucket.tagging.as_ref().ok_or(Error::NoSuchTagSet)?;
        Ok(S3Response::new(GetBucketTaggingOutput {
            tag_set: Tags::from_json(tags).to_set(),
        }))
    }

    pub(super) async fn put_bucket_tagging(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> Result<S3Response<PutBucketTaggingOutput>> {
        let tags = Tags::from_set(req.input.tagging.tag_set, MAX_BUCKET_TAGS)?;
        let bucket = self.meta.bucket_uncached(&req.input.bucket).await?;
        self.meta
            .set_bucket_tagging(&bucket, Some(&tags.to_json()))
            .await?;
        Ok(S3Response::new(PutBucketTaggingOutput::default()))
    }

    pub(super) async fn delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> Result<S3Response<DeleteBucketTaggingOutput>> {
        let bucket = self.meta.bucket_uncached(&req.input.bucket).await?;
        self.meta.set_bucket_tagging(&bucket, None).await?;
        Ok(S3Response::new(DeleteBucketTaggingOutput::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn headers_decode_as_url_queries() {
        let tags = Tags::from_header("project=blue%20sky&team=a+b&empty=&flag").unwrap();
        assert_eq!(
            tags.pairs(),
            pairs(&[
                ("project", "blue sky"),
                ("team", "a b"),
                ("empty", ""),
                ("flag", "")
            ])
        );
        assert!(Tags::from_header("").unwrap().is_empty());
        assert!(matches!(Tags::from_header("k=%zz"), Err(Error::InvalidTag(_))));
    }

    #[test]
    fn s3_limits_hold() {
        let eleven: Vec<_> = (0..11).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(Tags::new(eleven.clone(), MAX_OBJECT_TAGS).is_err());
        assert!(Tags::new(eleven, MAX_BUCKET_TAGS).is_ok());
        for bad in [
            pairs(&[("", "v")]),
            pairs(&[(&"k".repeat(129), "v")]),
            pairs(&[("k", &"v".repeat(257))]),
            pairs(&[("aws:created", "v")]),
            pairs(&[("k", "a\r\nb")]),
            pairs(&[("k", "1"), ("k", "2")]),
        ] {
            assert!(Tags::new(bad.clone(), MAX_OBJECT_TAGS).is_err(), "{bad:?}");
        }
        let ok = Tags::new(pairs(&[("k", &"v".repeat(256)), ("é", "")]), MAX_OBJECT_TAGS).unwrap();
        assert_eq!(Tags::from_json(&ok.to_json()), ok);
    }
}
