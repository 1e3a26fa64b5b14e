//! Listings: ListObjects (v1), ListObjectsV2 and ListObjectVersions.
//!
//! Keys come from Postgres in byte order (`COLLATE "C"`), in batches. A key
//! holding the delimiter after the prefix folds into a common prefix, and the
//! scan jumps past everything under that prefix instead of reading it.
//! Continuation tokens are the hex of the last entry returned (`k` + key or
//! `p` + common prefix).

use s3s::dto::*;
use s3s::{S3Request, S3Response};

use super::{etag_of, timestamp, Bucketfs};
use crate::error::{Error, Result};
use crate::meta::{Bucket, Version};

const BATCH: i64 = 1000;
const MAX_KEYS: i32 = 1000;

enum Entry {
    Object(Version),
    Prefix(String),
}

impl Entry {
    fn token(&self) -> String {
        match self {
            Entry::Object(v) => hex::encode(format!("k{}", v.key)),
            Entry::Prefix(p) => hex::encode(format!("p{p}")),
        }
    }
}

/// Where a listing resumes.
enum Resume {
    /// Strictly after this key.
    After(String),
    /// After everything under this common prefix.
    PastPrefix(String),
}

impl Resume {
    fn from_token(token: &str) -> Result<Self> {
        let bad = || Error::InvalidArgument("malformed continuation token".into());
        let text = String::from_utf8(hex::decode(token).map_err(|_| bad())?).map_err(|_| bad())?;
        match text.split_at_checked(1) {
            Some(("k", key)) => Ok(Resume::After(key.to_string())),
            Some(("p", prefix)) => Ok(Resume::PastPrefix(prefix.to_string())),
            _ => Err(bad()),
        }
    }

    /// A v1 marker or v2 start-after: a key, or a common prefix returned earlier.
    fn from_marker(marker: &str, delimiter: &str) -> Self {
        if !delimiter.is_empty() && marker.ends_with(delimiter) {
            Resume::PastPrefix(marker.to_string())
        } else {
            Resume::After(marker.to_string())
        }
    }
}

/// The smallest string greater than every string starting with `prefix`,
/// when one exists that is valid UTF-8 (the last character is bumped).
fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        if let Some(next) = (last as u32 + 1..=char::MAX as u32).find_map(char::from_u32) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

struct Page {
    entries: Vec<Entry>,
    truncated: bool,
}

impl Bucketfs {
    /// Lists current objects under `prefix`, folding on `delimiter`.
    async fn list_page(
        &self,
        bucket: &Bucket,
        prefix: &str,
        delimiter: &str,
        resume: Option<Resume>,
        max_keys: i32,
    ) -> Result<Page> {
        let max = max_keys.clamp(0, MAX_KEYS) as usize;
        let mut entries = Vec::new();
        // (cursor, inclusive): the next batch starts at the cursor.
        let (mut cursor, mut inclusive) = (prefix.to_string(), true);
        let mut skip_under: Option<String> = None;
        match resume {
            Some(Resume::After(key)) if key.as_str() >= prefix => (cursor, inclusive) = (key, false),
            Some(Resume::PastPrefix(p)) if p.as_str() >= prefix => match prefix_successor(&p) {
                Some(next) => (cursor, inclusive) = (next, true),
                None => (cursor, inclusive, skip_under) = (p.clone(), true, Some(p)),
            },
            _ => {}
        }
        // Keys past the prefix never match: the scan stops before them. Without
        // a delimiter no more than the page (and one to see truncation) is needed.
        let end = prefix_successor(prefix).filter(|_| !prefix.is_empty());
        let batch_size = if delimiter.is_empty() {
            BATCH.min(max as i64 + 1)
        } else {
            BATCH
        };
        'scan: loop {
            let batch = self
                .meta
                .list_current(bucket, &cursor, inclusive, prefix, end.as_deref(), batch_size)
                .await?;
            let exhausted = (batch.len() as i64) < batch_size;
            let mut jumped = false;
            for v in batch {
                if !v.key.starts_with(prefix) {
                    break 'scan;
                }
                (cursor, inclusive) = (v.key.clone(), false);
                if skip_under.as_deref().is_some_and(|p| v.key.starts_with(p)) {
                    continue;
                }
                let folded = (!delimiter.is_empty())
                    .then(|| v.key[prefix.len()..].find(delimiter))
                    .flatten()
                    .map(|i| v.key[..prefix.len() + i + delimiter.len()].to_string());
                let entry = match folded {
                    Some(p) => Entry::Prefix(p),
                    None => Entry::Object(v),
                };
                if entries.len() == max {
                    return Ok(Page {
                        entries,
                        truncated: true,
                    });
                }
                if let Entry::Prefix(p) = &entry {
                    match prefix_successor(p) {
                        Some(next) => {
                            (cursor, inclusive) = (next, true);
                            entries.push(entry);
                            jumped = true;
                            break;
                        }
                        None => skip_under = Some(p.clone()),
                    }
                }
                entries.push(entry);
            }
            if exhausted && !jumped {
                break;
            }
        }
        Ok(Page {
            entries,
            truncated: false,
        })
    }

    pub(super) async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let bucket = self.meta.bucket(&input.bucket).await?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let delimiter = input.delimiter.clone().unwrap_or_default();
        let resume = match (&input.continuation_token, &input.start_after) {
            (Some(token), _) => Some(Resume::from_token(token)?),
            (None, Some(after)) => Some(Resume::from_marker(after, &delimiter)),
            _ => None,
        };
        let max_keys = input.max_keys.unwrap_or(MAX_KEYS);
        let page = self
            .list_page(&bucket, &prefix, &delimiter, resume, max_keys)
            .await?;
        let encode = Encoder::new(input.encoding_type.as_ref());
        let next = page
            .truncated
            .then(|| page.entries.last().map(Entry::token))
            .flatten();
        let key_count = page.entries.len() as i32;
        let (contents, common_prefixes) = split(page.entries, &encode);
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(bucket.name),
            prefix: Some(encode.apply(&prefix)),
            delimiter: input.delimiter.map(|d| encode.apply(&d)),
            max_keys: Some(max_keys),
            key_count: Some(key_count),
            continuation_token: input.continuation_token,
            next_continuation_token: next,
            is_truncated: Some(page.truncated),
            start_after: input.start_after.map(|s| encode.apply(&s)),
            contents: Some(contents),
            common_prefixes: Some(common_prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    pub(super) async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> Result<S3Response<ListObjectsOutput>> {
        let input = req.input;
        let bucket = self.meta.bucket(&input.bucket).await?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let delimiter = input.delimiter.clone().unwrap_or_default();
        let resume = input
            .marker
            .as_deref()
            .map(|m| Resume::from_marker(m, &delimiter));
        let max_keys = input.max_keys.unwrap_or(MAX_KEYS);
        let page = self
            .list_page(&bucket, &prefix, &delimiter, resume, max_keys)
            .await?;
        let encode = Encoder::new(input.encoding_type.as_ref());
        let next_marker = page
            .truncated
            .then(|| page.entries.last())
            .flatten()
            .map(|e| match e {
                Entry::Object(v) => encode.apply(&v.key),
                Entry::Prefix(p) => encode.apply(p),
            });
        let (contents, common_prefixes) = split(page.entries, &encode);
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(bucket.name),
            prefix: Some(encode.apply(&prefix)),
            delimiter: input.delimiter.map(|d| encode.apply(&d)),
            marker: input.marker.map(|m| encode.apply(&m)),
            max_keys: Some(max_keys),
            is_truncated: Some(page.truncated),
            next_marker,
            contents: Some(contents),
            common_prefixes: Some(common_prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    pub(super) async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> Result<S3Response<ListObjectVersionsOutput>> {
        let input = req.input;
        let bucket = self.meta.bucket(&input.bucket).await?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let delimiter = input.delimiter.clone().unwrap_or_default();
        let max = input.max_keys.unwrap_or(MAX_KEYS).clamp(0, MAX_KEYS) as usize;
        let mut key_marker = input.key_marker.clone().unwrap_or_default();
        let mut after_pk = match (&input.key_marker, &input.version_id_marker) {
            (Some(k), Some(v)) => self.meta.version_pk(&bucket, k, v).await?,
            _ => None,
        };
        if key_marker.is_empty() && !prefix.is_empty() {
            // Start at the prefix itself; "" sorts before every key.
            key_marker = String::new();
        }
        let encode = Encoder::new(input.encoding_type.as_ref());
        let mut versions = Vec::new();
        let mut markers = Vec::new();
        let mut prefixes: Vec<String> = Vec::new();
        let mut count = 0usize;
        let mut truncated = false;
        let mut next: Option<(String, String)> = None;
        'scan: loop {
            let batch = self
                .meta
                .list_versions(&bucket, &key_marker, after_pk, &prefix, BATCH)
                .await?;
            let exhausted = (batch.len() as i64) < BATCH;
            for (v, is_latest) in batch {
                if !v.key.starts_with(prefix.as_str()) {
                    break 'scan;
                }
                (key_marker, after_pk) = (v.key.clone(), Some(v.id));
                if count == max {
                    truncated = true;
                    break 'scan;
                }
                let folded = (!delimiter.is_empty())
                    .then(|| v.key[prefix.len()..].find(delimiter.as_str()))
                    .flatten()
                    .map(|i| v.key[..prefix.len() + i + delimiter.len()].to_string());
                if let Some(p) = folded {
                    if prefixes.last() != Some(&p) {
                        prefixes.push(p);
                        count += 1;
                    }
                    continue;
                }
                next = Some((v.key.clone(), v.version_id.clone()));
                count += 1;
                if v.delete_marker {
                    markers.push(DeleteMarkerEntry {
                        key: Some(encode.apply(&v.key)),
                        version_id: Some(v.version_id.clone()),
                        is_latest: Some(is_latest),
                        last_modified: Some(timestamp(v.created_at)),
                        ..Default::default()
                    });
                } else {
                    versions.push(ObjectVersion {
                        key: Some(encode.apply(&v.key)),
                        version_id: Some(v.version_id.clone()),
                        is_latest: Some(is_latest),
                        last_modified: Some(timestamp(v.created_at)),
                        e_tag: Some(etag_of(&v)),
                        size: Some(v.size),
                        storage_class: Some(ObjectVersionStorageClass::from_static(
                            ObjectVersionStorageClass::STANDARD,
                        )),
                        ..Default::default()
                    });
                }
            }
            if exhausted {
                break;
            }
        }
        let (next_key_marker, next_version_id_marker) = match (truncated, next) {
            (true, Some((k, v))) => (Some(encode.apply(&k)), Some(v)),
            _ => (None, None),
        };
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(bucket.name),
            prefix: Some(encode.apply(&prefix)),
            delimiter: input.delimiter.map(|d| encode.apply(&d)),
            key_marker: input.key_marker.map(|k| encode.apply(&k)),
            version_id_marker: input.version_id_marker,
            max_keys: Some(max as i32),
            is_truncated: Some(truncated),
            next_key_marker,
            next_version_id_marker,
            versions: Some(versions),
            delete_markers: Some(markers),
            common_prefixes: Some(
                prefixes
                    .into_iter()
                    .map(|p| CommonPrefix {
                        prefix: Some(encode.apply(&p)),
                    })
                    .collect(),
            ),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }
}

fn split(entries: Vec<Entry>, encode: &Encoder) -> (Vec<Object>, Vec<CommonPrefix>) {
    let mut contents = Vec::new();
    let mut prefixes = Vec::new();
    for e in entries {
        match e {
            Entry::Object(v) => contents.push(Object {
                key: Some(encode.apply(&v.key)),
                e_tag: Some(etag_of(&v)),
                size: Some(v.size),
                last_modified: Some(timestamp(v.created_at)),
                storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
                ..Default::default()
            }),
            Entry::Prefix(p) => prefixes.push(CommonPrefix {
                prefix: Some(encode.apply(&p)),
            }),
        }
    }
    (contents, prefixes)
}

/// Applies `encoding-type=url` to keys in a listing, as S3 does.
struct Encoder {
    url: bool,
}

impl Encoder {
    fn new(encoding: Option<&EncodingType>) -> Self {
        Self {
            url: encoding.is_some_and(|e| e.as_str() == EncodingType::URL),
        }
    }

    fn apply(&self, s: &str) -> String {
        if !self.url {
            return s.to_string();
        }
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                    out.push(b as char)
                }
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor_bounds_every_key_under_a_prefix() {
        let p = "photos/";
        let next = prefix_successor(p).unwrap();
        assert_eq!(next, "photos0");
        for key in ["photos/", "photos/a", "photos/\u{10FFFF}x", "photos/zzz"] {
            assert!(key < next.as_str(), "{key}");
        }
        assert!("photos0" >= next.as_str());
        assert_eq!(prefix_successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_successor(""), None);
    }

    #[test]
    fn tokens_round_trip() {
        let e = Entry::Prefix("dir/".into());
        assert!(matches!(Resume::from_token(&e.token()).unwrap(), Resume::PastPrefix(p) if p == "dir/"));
        assert!(Resume::from_token("zz").is_err());
    }

    #[test]
    fn url_encoding_keeps_slashes() {
        let e = Encoder { url: true };
        assert_eq!(e.apply("a b/c+d%"), "a%20b/c%2Bd%25");
    }
}
