//! Listings: ListObjects (v1), ListObjectsV2 and ListObjectVersions.
//!
//! Keys come from Postgres in byte order (`COLLATE "C"`), in batches. A key
//! holding the delimiter after the prefix folds into a common prefix, and the
//! scan jumps past everything under that prefix instead of reading it.
//! Continuation tokens are the hex of the last entry returned (`k` + key or
//! `p` + common prefix).

use bucketfs_common::extension::{METADATA_HEADER, METADATA_ITEMS};
use s3s::dto::*;
use s3s::{Body, S3Request, S3Response};

use super::{etag_of, timestamp, Bucketfs};
use crate::error::{Error, Result};
use crate::meta::{Bucket, Version};

const BATCH: i64 = 1000;
/// The batch after a jump past a common prefix: the rows fetched beyond the
/// prefix's first key are thrown away, so a batch starts small and doubles
/// while it keeps yielding objects.
const FIRST_BATCH: i64 = 16;
const MAX_KEYS: i32 = 1000;

enum Entry {
    Object(Version),
    Prefix(String, Marker),
}

/// What a listing saw of a common prefix's own key (`dir/`, a directory
/// marker): that key sorts first under the prefix, so a scan that reached
/// the prefix from before it knows whether the key exists.
enum Marker {
    /// The scan resumed inside the prefix and never saw its start.
    Unknown,
    Absent,
    Present(Box<Version>),
}

impl Entry {
    fn token(&self) -> String {
        match self {
            Entry::Object(v) => hex::encode(format!("k{}", v.key)),
            Entry::Prefix(p, _) => hex::encode(format!("p{p}")),
        }
    }
}

/// Where a listing resumes.
pub(crate) enum Resume {
    /// Strictly after this key.
    After(String),
    /// After everything under this common prefix.
    PastPrefix(String),
}

impl Resume {
    pub(crate) fn from_token(token: &str) -> Result<Self> {
        let bad = || Error::InvalidArgument("malformed continuation token".into());
        let text = String::from_utf8(hex::decode(token).map_err(|_| bad())?).map_err(|_| bad())?;
        match text.split_at_checked(1) {
            Some(("k", key)) => Ok(Resume::After(key.to_string())),
            Some(("p", prefix)) => Ok(Resume::PastPrefix(prefix.to_string())),
            _ => Err(bad()),
        }
    }

    /// A v1 marker or v2 start-after: a key, or a common prefix returned
    /// earlier — which is what the marker is when, past the listing's
    /// `prefix`, it ends at its first delimiter (`a/b` is a key, not the
    /// common prefix `ab`, under prefix `a/` with delimiter `ab`).
    fn from_marker(marker: &str, prefix: &str, delimiter: &str) -> Self {
        let is_common_prefix = !delimiter.is_empty()
            && marker
                .strip_prefix(prefix)
                .and_then(|rest| rest.find(delimiter).map(|at| at + delimiter.len() == rest.len()))
                .unwrap_or(false);
        if is_common_prefix {
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

/// Whether listings folding on `delimiter` can skip common prefixes in
/// Postgres: its last character has a successor (`chr(code + 1)`).
fn delimiter_skips(delimiter: &str) -> bool {
    delimiter
        .chars()
        .last()
        .is_some_and(|c| char::from_u32(c as u32 + 1).is_some())
}

/// Lists current objects under `prefix`, folding on `delimiter`.
async fn list_page(
    fs: &Bucketfs,
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
    // Keys past the prefix never match: the scan stops before them. No batch
    // needs more rows than the page still wants (and one to see truncation).
    let end = prefix_successor(prefix).filter(|_| !prefix.is_empty());
    // Common prefixes skipped inside Postgres: one round trip a batch.
    let skipping = delimiter_skips(delimiter);
    let mut batch_size = if delimiter.is_empty() || skipping {
        BATCH
    } else {
        FIRST_BATCH
    };
    'scan: loop {
        let wanted = (max - entries.len()) as i64 + 1;
        let size = batch_size.min(wanted);
        let batch = if skipping {
            fs.meta
                .list_current_skipping(
                    bucket,
                    &cursor,
                    inclusive,
                    prefix,
                    end.as_deref(),
                    delimiter,
                    size,
                )
                .await?
        } else {
            fs.meta
                .list_current(bucket, &cursor, inclusive, prefix, end.as_deref(), size)
                .await?
        };
        let exhausted = (batch.len() as i64) < size;
        let mut jumped = false;
        // Where the scan stood before the current row.
        let mut before = (cursor.clone(), inclusive);
        for v in batch {
            if !v.key.starts_with(prefix) {
                break 'scan;
            }
            let previous = std::mem::replace(&mut before, (v.key.clone(), false));
            (cursor, inclusive) = (v.key.clone(), false);
            if skip_under.as_deref().is_some_and(|p| v.key.starts_with(p)) {
                continue;
            }
            let folded = (!delimiter.is_empty())
                .then(|| v.key[prefix.len()..].find(delimiter))
                .flatten()
                .map(|i| v.key[..prefix.len() + i + delimiter.len()].to_string());
            let entry = match folded {
                Some(p) => {
                    let from_start = previous.0 < p || (previous.0 == p && previous.1);
                    let marker = match from_start {
                        false => Marker::Unknown,
                        true if v.key == p => Marker::Present(Box::new(v)),
                        true => Marker::Absent,
                    };
                    Entry::Prefix(p, marker)
                }
                None => Entry::Object(v),
            };
            if entries.len() == max {
                return Ok(counted(
                    fs,
                    Page {
                        entries,
                        truncated: true,
                    },
                ));
            }
            if let Entry::Prefix(p, _) = &entry {
                match prefix_successor(p) {
                    // The batch already stepped past the prefix.
                    Some(next) if skipping => {
                        (cursor, inclusive) = (next.clone(), true);
                        before = (next, true);
                    }
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
        batch_size = if jumped {
            FIRST_BATCH
        } else {
            (batch_size * 2).min(BATCH)
        };
    }
    Ok(counted(
        fs,
        Page {
            entries,
            truncated: false,
        },
    ))
}

fn counted(fs: &Bucketfs, page: Page) -> Page {
    fs.metrics.listings.inc();
    fs.metrics.listed_entries.inc_by(page.entries.len() as u64);
    page
}

impl Bucketfs {
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
            (None, Some(after)) => Some(Resume::from_marker(after, &prefix, &delimiter)),
            _ => None,
        };
        let max_keys = input.max_keys.unwrap_or(MAX_KEYS);
        let page = list_page(self, &bucket, &prefix, &delimiter, resume, max_keys).await?;
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
            .map(|m| Resume::from_marker(m, &prefix, &delimiter));
        let max_keys = input.max_keys.unwrap_or(MAX_KEYS);
        let page = list_page(self, &bucket, &prefix, &delimiter, resume, max_keys).await?;
        let encode = Encoder::new(input.encoding_type.as_ref());
        let next_marker = page
            .truncated
            .then(|| page.entries.last())
            .flatten()
            .map(|e| match e {
                Entry::Object(v) => encode.apply(&v.key),
                Entry::Prefix(p, _) => encode.apply(p),
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
            Entry::Prefix(p, _) => prefixes.push(CommonPrefix {
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
        match self.url {
            true => crate::escape::percent_encode(s, b"/"),
            false => s.to_string(),
        }
    }
}

/// ListObjectsV2 with `metadata=true` (the extension MinIO also offers): each
/// `<Contents>` carries its version id and user metadata, so a client learns
/// a whole directory's attributes in one request instead of a HEAD per key.
/// Metadata comes as `<UserMetadata><Item><Key>k</Key><Value>v</Value></Item>`
/// (keys need not be XML names), flagged by the `x-bucketfs-metadata: items`
/// header so a client can tell it from another server's format. A common
/// prefix tells of its own key (a directory marker) in `<Directory>`:
/// `<Marker>false</Marker>`, or `true` and the marker's fields; no
/// `<Directory>` when the page started inside the prefix and cannot tell.
pub(super) async fn list_with_metadata(fs: &Bucketfs, req: S3Request<Body>) -> Result<S3Response<Body>> {
    let bucket_name = req.uri.path().trim_matches('/');
    if bucket_name.is_empty() || bucket_name.contains('/') {
        return Err(Error::InvalidArgument("a listing's path must be /BUCKET".into()));
    }
    let query = query_pairs(req.uri.query().unwrap_or(""))?;
    let param = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let bucket = fs.meta.bucket(bucket_name).await?;
    let prefix = param("prefix").unwrap_or_default();
    let delimiter = param("delimiter").unwrap_or_default();
    let resume = match (param("continuation-token"), param("start-after")) {
        (Some(token), _) => Some(Resume::from_token(&token)?),
        (None, Some(after)) => Some(Resume::from_marker(&after, &prefix, &delimiter)),
        _ => None,
    };
    let max_keys = match param("max-keys") {
        Some(m) => m
            .parse::<i32>()
            .map_err(|_| Error::InvalidArgument("max-keys must be a number".into()))?,
        None => MAX_KEYS,
    };
    let page = list_page(fs, &bucket, &prefix, &delimiter, resume, max_keys).await?;
    let encode = Encoder {
        url: param("encoding-type").as_deref() == Some("url"),
    };
    let text = |s: &str| xml_escape(&encode.apply(s));
    let mut xml = String::with_capacity(512 + page.entries.len() * 320);
    xml.push_str(r#"<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">"#);
    push_element(&mut xml, "Name", &xml_escape(&bucket.name));
    push_element(&mut xml, "Prefix", &text(&prefix));
    if !delimiter.is_empty() {
        push_element(&mut xml, "Delimiter", &text(&delimiter));
    }
    push_element(&mut xml, "MaxKeys", &max_keys.to_string());
    push_element(&mut xml, "KeyCount", &page.entries.len().to_string());
    push_element(&mut xml, "IsTruncated", &page.truncated.to_string());
    if let Some(token) = page
        .truncated
        .then(|| page.entries.last().map(Entry::token))
        .flatten()
    {
        push_element(&mut xml, "NextContinuationToken", &token);
    }
    if encode.url {
        push_element(&mut xml, "EncodingType", "url");
    }
    for entry in &page.entries {
        match entry {
            Entry::Object(v) => {
                xml.push_str("<Contents>");
                push_element(&mut xml, "Key", &text(&v.key));
                push_version(&mut xml, v);
                xml.push_str("</Contents>");
            }
            Entry::Prefix(p, marker) => {
                xml.push_str("<CommonPrefixes>");
                push_element(&mut xml, "Prefix", &text(p));
                match marker {
                    Marker::Unknown => {}
                    Marker::Absent => xml.push_str("<Directory><Marker>false</Marker></Directory>"),
                    Marker::Present(v) => {
                        xml.push_str("<Directory><Marker>true</Marker>");
                        push_version(&mut xml, v);
                        xml.push_str("</Directory>");
                    }
                }
                xml.push_str("</CommonPrefixes>");
            }
        }
    }
    xml.push_str("</ListBucketResult>");
    let mut resp = S3Response::new(Body::from(xml));
    resp.status = Some(http::StatusCode::OK);
    resp.headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/xml"),
    );
    resp.headers
        .insert(METADATA_HEADER, http::HeaderValue::from_static(METADATA_ITEMS));
    Ok(resp)
}

/// `k=v` pairs of a query string, percent-decoded (`+` is a space, as in forms).
fn query_pairs(query: &str) -> Result<Vec<(String, String)>> {
    let decode = |s: &str| {
        crate::escape::percent_decode(&s.replace('+', " "))
            .ok_or_else(|| Error::InvalidArgument("malformed query string".into()))
    };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

/// A listed version's fields after its key: times, size, version id and
/// user metadata.
fn push_version(xml: &mut String, v: &Version) {
    push_element(xml, "LastModified", &iso_millis(v.created_at));
    push_element(xml, "ETag", &xml_escape(&format!("\"{}\"", v.etag)));
    push_element(xml, "Size", &v.size.to_string());
    push_element(xml, "StorageClass", "STANDARD");
    push_element(xml, "VersionId", &xml_escape(&v.version_id));
    xml.push_str("<UserMetadata>");
    let mut pairs: Vec<_> = v.user_metadata().into_iter().collect();
    pairs.sort();
    for (k, val) in pairs {
        xml.push_str("<Item>");
        push_element(xml, "Key", &xml_escape(&k));
        push_element(xml, "Value", &xml_escape(&val));
        xml.push_str("</Item>");
    }
    xml.push_str("</UserMetadata>");
    if let Some(links) = super::links_of(v) {
        push_element(xml, "Links", &links);
    }
}

fn push_element(xml: &mut String, tag: &str, escaped: &str) {
    xml.push('<');
    xml.push_str(tag);
    xml.push('>');
    xml.push_str(escaped);
    xml.push_str("</");
    xml.push_str(tag);
    xml.push('>');
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// `2026-11-22T10:00:00.123Z`, as S3 writes LastModified.
fn iso_millis(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
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
        let e = Entry::Prefix("dir/".into(), Marker::Unknown);
        assert!(matches!(Resume::from_token(&e.token()).unwrap(), Resume::PastPrefix(p) if p == "dir/"));
        assert!(Resume::from_token("zz").is_err());
    }

    #[test]
    fn query_strings_decode_like_forms() {
        let q = query_pairs("list-type=2&prefix=a%20b%2F&start-after=x+y&metadata").unwrap();
        assert_eq!(q[1], ("prefix".into(), "a b/".into()));
        assert_eq!(q[2], ("start-after".into(), "x y".into()));
        assert_eq!(q[3], ("metadata".into(), String::new()));
        assert!(query_pairs("prefix=%zz").is_err());
    }

    #[test]
    fn last_modified_has_milliseconds() {
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(1_795_000_000_123_456_789).unwrap();
        assert_eq!(iso_millis(t), "2026-11-18T11:06:40.123Z");
    }

    #[test]
    fn url_encoding_keeps_slashes() {
        let e = Encoder { url: true };
        assert_eq!(e.apply("a b/c+d%"), "a%20b/c%2Bd%25");
    }
}
