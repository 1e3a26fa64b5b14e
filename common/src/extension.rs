//! The bucketfs extensions of S3 that the FUSE client speaks to the router,
//! written once for both: the rename, batch, patch and link calls, the
//! listing with metadata, ETags from chunk ids, and the chunk size that
//! multipart parts follow.

use std::collections::HashMap;

/// The router's chunk size; the client's multipart part size equals it, so
/// a part copied by reference is whole chunks and a changed byte re-uploads
/// one chunk.
pub const CHUNK_SIZE: usize = 8 << 20;

/// The longest key S3 (and so the router) accepts, in bytes; the FUSE
/// client's paths stay within it.
pub const MAX_KEY_BYTES: usize = 1024;

/// `POST /{bucket}?bucketfs-rename` moves a key or a prefix in one transaction.
pub const RENAME_QUERY: &str = "bucketfs-rename";
/// The source key, or source prefix (`dir/`), percent-encoded.
pub const RENAME_FROM_HEADER: &str = "x-bucketfs-rename-from";
/// The destination key or prefix, percent-encoded.
pub const RENAME_TO_HEADER: &str = "x-bucketfs-rename-to";
/// `true`: move every key starting with the source.
pub const RENAME_PREFIX_HEADER: &str = "x-bucketfs-rename-prefix";
/// `true`: fail (412) if any destination exists.
pub const NO_REPLACE_HEADER: &str = "x-bucketfs-no-replace";

/// `POST /{bucket}?bucketfs-batch` stores many small objects in one call
/// (the manifest format is in the router's `s3/batch.rs`).
pub const BATCH_QUERY: &str = "bucketfs-batch";
/// Most objects in one batch (as many as one DeleteObjects call takes).
pub const BATCH_MAX_OBJECTS: usize = 1000;
/// Most bytes of objects in one batch: one chunk.
pub const BATCH_MAX_BYTES: usize = CHUNK_SIZE;

/// The prefix of user metadata headers (S3's), which the client writes and
/// the patch extension reads.
pub const META_PREFIX: &str = "x-amz-meta-";

/// `POST /{bucket}/{key}?bucketfs-patch` makes a new version from the
/// current one and a few changed byte ranges: the body is the ranges' new
/// bytes back to back; the router composes the new chunk map from the
/// base's and the new pieces in one transaction, so a small change costs
/// its size, not its 8 MiB part. Metadata (`x-amz-meta-*`) and
/// Content-Type replace the base's, as a PUT's would.
pub const PATCH_QUERY: &str = "bucketfs-patch";
/// The ETag the current version must have (else 412: someone else wrote).
pub const PATCH_BASE_HEADER: &str = "x-bucketfs-patch-base";
/// The new version's size: shorter cuts the base, longer must be covered
/// by the ranges.
pub const PATCH_SIZE_HEADER: &str = "x-bucketfs-patch-size";
/// The ranges, `offset+length` comma-separated, ascending, disjoint.
pub const PATCH_RANGES_HEADER: &str = "x-bucketfs-patch-ranges";
/// Most ranges in one patch (the header stays a few KiB).
pub const PATCH_MAX_RANGES: usize = 256;

/// The ranges of a patch as its header carries them.
pub fn format_patch_ranges(ranges: &[(u64, u64)]) -> String {
    let items: Vec<String> = ranges.iter().map(|(o, l)| format!("{o}+{l}")).collect();
    items.join(",")
}

/// Parses a patch's ranges, checking they are ascending, disjoint,
/// non-empty and at most `PATCH_MAX_RANGES`.
pub fn parse_patch_ranges(header: &str) -> Result<Vec<(u64, u64)>, String> {
    let mut ranges = Vec::new();
    let mut end = 0u64;
    for item in header.split(',').filter(|s| !s.is_empty()) {
        let (offset, len) = item
            .split_once('+')
            .and_then(|(o, l)| Some((o.trim().parse::<u64>().ok()?, l.trim().parse::<u64>().ok()?)))
            .ok_or_else(|| format!("bad patch range {item:?}: want OFFSET+LENGTH"))?;
        if len == 0 || offset < end || ranges.len() == PATCH_MAX_RANGES {
            return Err("patch ranges must be non-empty, ascending, disjoint, and at most 256".into());
        }
        end = offset.checked_add(len).ok_or("patch range overflows")?;
        ranges.push((offset, len));
    }
    Ok(ranges)
}

/// Hard links (migration 0013 in the router): names that share an inode
/// are a link group. `POST /{bucket}?bucketfs-link` makes the key in
/// `x-bucketfs-link-to` (percent-encoded) a name of the group of the key in
/// `x-bucketfs-link-from`, with the source's content; `x-amz-meta-*`
/// headers, when sent, replace the group's user metadata. Answers 200 with
/// the ETag and `x-bucketfs-links`; 404 when the source is missing, 412
/// when the new name exists.
/// `GET /{bucket}?bucketfs-link` with `x-bucketfs-link-from` answers the
/// names of that key's link group as JSON, `{"names": [...]}` (the key
/// alone when it has no group; 404 when it does not exist).
pub const LINK_QUERY: &str = "bucketfs-link";
pub const LINK_FROM_HEADER: &str = "x-bucketfs-link-from";
pub const LINK_TO_HEADER: &str = "x-bucketfs-link-to";
/// `true` on a PUT, CopyObject or CompleteMultipartUpload (the patch and
/// batch calls always do it): the new version goes to every name of the
/// key's link group, a write through a hard link. Without it the key
/// leaves its group, so an S3 client's PUT never changes another key.
pub const FOLLOW_LINKS_HEADER: &str = "x-bucketfs-follow-links";
/// On HEAD and GET answers of a key in a link group, `GROUP COUNT`: the
/// group's id and its number of names; `<Links>` in a metadata listing.
pub const LINKS_HEADER: &str = "x-bucketfs-links";

/// A key's link group and count as `LINKS_HEADER` carries them.
pub fn format_links(group: u64, count: u32) -> String {
    format!("{group} {count}")
}

/// The (group, count) of a `LINKS_HEADER` value.
pub fn parse_links(value: &str) -> Option<(u64, u32)> {
    let (group, count) = value.trim().split_once(' ')?;
    Some((group.parse().ok()?, count.parse().ok()?))
}

/// `GET /{bucket}?bucketfs-changes&after=SEQ`: the bucket's changes after
/// sequence number SEQ, as JSON `ChangePage`, waiting up to
/// `CHANGES_WAIT_SECS` for one (at once with `&now`, `CHANGES_NOW_QUERY`);
/// without `after`, at once, with none and `next` where the feed stands (a
/// mount starts following from there).
pub const CHANGES_QUERY: &str = "bucketfs-changes";
pub const CHANGES_NOW_QUERY: &str = "now";
pub const CHANGES_WAIT_SECS: u64 = 20;

/// A page of the change feed.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ChangePage {
    pub changes: Vec<ChangeEntry>,
    /// Ask for changes after this next: every change up to it is in this
    /// page or an earlier one (a newer one may already be here, and will
    /// come again).
    pub next: u64,
    /// Changes after `after` were trimmed before the mount asked: it must
    /// assume anything changed.
    #[serde(default)]
    pub reset: bool,
}

/// One change of a key's current version.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChangeEntry {
    pub seq: u64,
    pub key: String,
    /// The new current version's ETag; `None`: the key is gone.
    pub etag: Option<String>,
}

/// A PUT or part carrying `x-bucketfs-etag: chunks` (and no Content-MD5)
/// gets an ETag made from its chunk ids instead of the MD5 of its bytes.
pub const ETAG_HEADER: &str = "x-bucketfs-etag";
pub const ETAG_FROM_CHUNKS: &str = "chunks";

/// A listing with `metadata=true` answered with `x-bucketfs-metadata: items`
/// carries each key's metadata and version id, and each prefix's marker.
pub const METADATA_HEADER: &str = "x-bucketfs-metadata";
pub const METADATA_ITEMS: &str = "items";

/// The batch call's body is a one-line JSON manifest of these, a newline,
/// then the objects' bytes back to back in manifest order.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BatchEntry {
    pub key: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// User metadata, keys without `x-amz-meta-`.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub metadata: HashMap<String, String>,
    /// The key must not exist.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub if_none_match: bool,
    /// An ETag the current version must have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_match: Option<String>,
}

/// The batch call's answer: one outcome per entry, in manifest order.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct BatchAnswer {
    pub results: Vec<BatchOutcome>,
}

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum BatchOutcome {
    Stored {
        etag: String,
        /// Only on versioned buckets.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version_id: Option<String>,
    },
    Failed {
        error: BatchFailure,
    },
}

/// Why one entry of a batch was not stored, as S3 would answer it alone.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BatchFailure {
    pub status: u16,
    pub code: String,
    #[serde(default)]
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_round_trip() {
        assert_eq!(parse_links(&format_links(42, 3)), Some((42, 3)));
        assert_eq!(parse_links("7"), None);
        assert_eq!(parse_links("a 1"), None);
    }

    #[test]
    fn patch_ranges_round_trip_and_bad_ones_are_refused() {
        let ranges = [(0, 4096), (8192, 10), (1 << 40, 1)];
        assert_eq!(parse_patch_ranges(&format_patch_ranges(&ranges)).unwrap(), ranges);
        assert_eq!(parse_patch_ranges("").unwrap(), []);
        for bad in [
            "5",
            "0+0",
            "10+5,12+1",
            "10+5,0+1",
            "x+1",
            "18446744073709551615+2",
            "-1+2",
        ] {
            assert!(parse_patch_ranges(bad).is_err(), "{bad}");
        }
        let many: Vec<(u64, u64)> = (0..=PATCH_MAX_RANGES as u64).map(|i| (i * 10, 1)).collect();
        assert!(parse_patch_ranges(&format_patch_ranges(&many)).is_err());
    }

    #[test]
    fn batch_manifest_and_answer_round_trip() {
        let entry = BatchEntry {
            key: "a.txt".into(),
            size: 5,
            metadata: [("mode".to_string(), "33188".to_string())].into(),
            ..BatchEntry::default()
        };
        let json = serde_json::to_string(&[&entry]).unwrap();
        assert_eq!(json, r#"[{"key":"a.txt","size":5,"metadata":{"mode":"33188"}}]"#);
        let back: Vec<BatchEntry> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, [entry]);
        let answer = r#"{"results":[{"etag":"e"},{"error":{"status":412,"code":"PreconditionFailed"}}]}"#;
        let answer: BatchAnswer = serde_json::from_str(answer).unwrap();
        assert_eq!(
            answer.results[0],
            BatchOutcome::Stored {
                etag: "e".into(),
                version_id: None
            }
        );
        assert!(matches!(&answer.results[1], BatchOutcome::Failed { error } if error.status == 412));
    }
}
