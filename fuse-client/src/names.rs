//! The rules that turn names into keys and keys into names: a file's key is
//! its path from the mount's root; a directory's prefix is its path and a
//! `/`. No I/O.

use crate::error::FsError;

/// Longest file name.
pub(crate) const MAX_NAME: usize = 255;
/// S3's limit on key length.
pub(crate) const MAX_KEY: usize = bucketfs_common::extension::MAX_KEY_BYTES;

pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

pub(crate) fn dir_prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    }
}

/// A string that sorts before `path` and after every key that sorts before
/// it save a few (its last character lowered), for an inclusive start-after.
pub(crate) fn just_before(path: &str) -> String {
    let mut chars: Vec<char> = path.chars().collect();
    if let Some(last) = chars.pop() {
        if let Some(lower) = (0..last as u32).rev().find_map(char::from_u32) {
            chars.push(lower);
        }
    }
    chars.into_iter().collect()
}

pub(crate) fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

pub(crate) fn check_name(name: &str) -> Result<(), FsError> {
    if name.len() > MAX_NAME {
        return Err(FsError::NameTooLong);
    }
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(FsError::Invalid);
    }
    Ok(())
}

/// Is `name` (a listed key's last component) usable as a file name?
pub(crate) fn valid_listed_name(name: &str) -> bool {
    check_name(name).is_ok()
}
