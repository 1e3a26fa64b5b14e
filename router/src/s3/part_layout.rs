//! Where each part of a multipart object lies, for `partNumber` on GET and
//! HEAD and the parts of GetObjectAttributes. Completion stores the part
//! sizes beside the metadata under a name no `x-amz-meta-*` header can
//! produce (see `headers::MARK`); a copy or rename keeps them.

use std::collections::HashMap;
use std::ops::Range;

use crate::error::{Error, Result};
use crate::meta::Version;

const KEY: &str = ":parts";

/// Records the sizes of a completed upload's parts, in order.
pub fn store(metadata: &mut HashMap<String, String>, sizes: &[i64]) {
    let list: Vec<String> = sizes.iter().map(i64::to_string).collect();
    metadata.insert(KEY.into(), list.join(","));
}

/// Copies the recorded sizes of `source`, if any.
pub fn copy(source: &Version, metadata: &mut HashMap<String, String>) {
    if let Some(sizes) = source.stored_metadata().remove(KEY) {
        metadata.insert(KEY.into(), sizes);
    }
}

/// The part sizes of a version: those recorded, or one part of the whole
/// object for a version written in one piece.
pub fn sizes(version: &Version) -> Vec<u64> {
    let recorded = version.stored_metadata().remove(KEY).and_then(|list| {
        list.split(',')
            .map(|s| s.parse().ok())
            .collect::<Option<Vec<u64>>>()
    });
    recorded.unwrap_or_else(|| vec![version.size as u64])
}

/// The bytes of part `number` (from 1).
pub fn range(version: &Version, number: i32) -> Result<Range<u64>> {
    let sizes = sizes(version);
    let index = usize::try_from(number)
        .ok()
        .and_then(|n| n.checked_sub(1))
        .filter(|&i| i < sizes.len())
        .ok_or(Error::InvalidPartNumber(number))?;
    let start: u64 = sizes[..index].iter().sum();
    Ok(start..start + sizes[index])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(size: i64, sizes: Option<&[i64]>) -> Version {
        let mut metadata = HashMap::new();
        if let Some(s) = sizes {
            store(&mut metadata, s);
        }
        Version {
            id: 1,
            key: "k".into(),
            version_id: "null".into(),
            delete_marker: false,
            size,
            etag: String::new(),
            content_type: None,
            metadata: serde_json::to_value(metadata).unwrap(),
            parts_count: sizes.map(|s| s.len() as i32),
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            tag_count: 0,
            link_group: None,
            link_count: None,
        }
    }

    #[test]
    fn parts_lie_one_after_another() {
        let v = version(12, Some(&[5, 5, 2]));
        assert_eq!(range(&v, 1).unwrap(), 0..5);
        assert_eq!(range(&v, 3).unwrap(), 10..12);
        assert!(matches!(range(&v, 4), Err(Error::InvalidPartNumber(4))));
        assert!(matches!(range(&v, 0), Err(Error::InvalidPartNumber(0))));
        assert!(matches!(range(&v, -1), Err(Error::InvalidPartNumber(-1))));
    }

    #[test]
    fn an_object_written_whole_is_one_part() {
        let v = version(7, None);
        assert_eq!(range(&v, 1).unwrap(), 0..7);
        assert!(range(&v, 2).is_err());
        assert_eq!(sizes(&v), vec![7]);
    }
}
