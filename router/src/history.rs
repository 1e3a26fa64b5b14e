//! What changed between two past views (issue 24's `bucketfs diff`): keys
//! added, removed, changed (other ETag or size) and renamed (removed at one
//! key and added at another with the same content), as far as a rename can
//! be told: empty objects all look alike and are never paired, and a name
//! with the same last component is preferred.

use std::collections::HashMap;

use bucketfs_common::time_travel::{DiffEntry, DiffKind};

use crate::meta::PastKey;

/// The changes from `before` to `after` (each sorted by key), by key.
pub fn diff(before: &[PastKey], after: &[PastKey]) -> Vec<DiffEntry> {
    let old: HashMap<&str, &PastKey> = before.iter().map(|k| (k.key.as_str(), k)).collect();
    let new: HashMap<&str, &PastKey> = after.iter().map(|k| (k.key.as_str(), k)).collect();
    let same = |a: &PastKey, b: &PastKey| a.etag == b.etag && a.size == b.size;
    let mut changes = Vec::new();
    for k in after {
        match old.get(k.key.as_str()) {
            Some(o) if !same(o, k) => changes.push(entry(DiffKind::Changed, &k.key, None)),
            Some(_) => {}
            None => changes.push(entry(DiffKind::Added, &k.key, None)),
        }
    }
    // Removed keys by content, for pairing with added ones.
    let mut removed: HashMap<(&str, i64), Vec<&str>> = HashMap::new();
    for k in before.iter().filter(|k| !new.contains_key(k.key.as_str())) {
        removed.entry((&k.etag, k.size)).or_default().push(&k.key);
    }
    for change in changes.iter_mut().filter(|c| c.change == DiffKind::Added) {
        let added = new[change.key.as_str()];
        if added.size == 0 || added.etag.is_empty() {
            continue;
        }
        let Some(candidates) = removed.get_mut(&(added.etag.as_str(), added.size)) else {
            continue;
        };
        let pick = candidates
            .iter()
            .position(|r| last_component(r) == last_component(&added.key))
            .unwrap_or(0);
        if let Some(from) = (!candidates.is_empty()).then(|| candidates.remove(pick)) {
            change.change = DiffKind::Renamed;
            change.from = Some(from.to_string());
        }
    }
    for keys in removed.into_values() {
        changes.extend(keys.into_iter().map(|k| entry(DiffKind::Removed, k, None)));
    }
    changes.sort_by(|a, b| a.key.cmp(&b.key));
    changes
}

fn entry(change: DiffKind, key: &str, from: Option<String>) -> DiffEntry {
    DiffEntry {
        change,
        key: key.to_string(),
        from,
    }
}

fn last_component(key: &str) -> &str {
    key.trim_end_matches('/').rsplit('/').next().unwrap_or(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(key: &str, etag: &str, size: i64) -> PastKey {
        PastKey {
            key: key.into(),
            version_id: format!("v-{key}"),
            etag: etag.into(),
            size,
        }
    }

    fn summary(changes: &[DiffEntry]) -> Vec<String> {
        changes
            .iter()
            .map(|c| match &c.from {
                Some(from) => format!("{} {from} {}", c.change.letter(), c.key),
                None => format!("{} {}", c.change.letter(), c.key),
            })
            .collect()
    }

    #[test]
    fn tells_added_removed_changed_and_renamed_keys() {
        let before = [
            key("a", "e1", 1),
            key("b", "e2", 2),
            key("dir/c", "e3", 3),
            key("empty", "e0", 0),
            key("gone", "e4", 4),
        ];
        let after = [
            key("a", "e1", 1),
            key("b", "e9", 2),
            key("moved/c", "e3", 3),
            key("new", "e5", 5),
            key("other-empty", "e0", 0),
        ];
        assert_eq!(
            summary(&diff(&before, &after)),
            [
                "M b",
                "D empty",
                "D gone",
                "R dir/c moved/c",
                "A new",
                "A other-empty"
            ]
        );
    }

    #[test]
    fn prefers_a_rename_that_keeps_the_file_name() {
        let before = [key("x/one", "e", 7), key("x/two", "e", 7)];
        let after = [key("y/two", "e", 7)];
        assert_eq!(summary(&diff(&before, &after)), ["D x/one", "R x/two y/two"]);
    }

    #[test]
    fn the_same_view_has_no_changes() {
        let view = [key("a", "e", 1), key("b", "f", 2)];
        assert!(diff(&view, &view).is_empty());
    }
}
