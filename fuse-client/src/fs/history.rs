//! The mount's read-only history (issue 24): `.bucketfs/` at the root, not
//! in the root's listing but there by name (`ls -a` does not show it; `cd
//! .bucketfs` works).
//!
//! - `.bucketfs/versions/PATH/` for a file at PATH (or one deleted since):
//!   one file per version, named by its time (`2026-12-03T10:00:00.123Z`;
//!   `~2`, `~3`… when versions share a millisecond), holding that version;
//!   for a directory, its names, each a directory again.
//! - `.bucketfs/snapshots/NAME/` is the bucket as snapshot NAME shows it.
//!
//! Nothing under it can be changed (`writable` refuses its inodes). A key
//! of the bucket under `.bucketfs/` is hidden by it.

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::table::Node;
use super::Fs;
use crate::error::FsError;
use crate::names::dir_prefix;
use crate::store::{ObjectInfo, VersionEntry};

pub(super) const ROOT: &str = ".bucketfs";
const VERSIONS: &str = ".bucketfs/versions";
const SNAPSHOTS: &str = ".bucketfs/snapshots";

/// Is `path` in the history directory?
pub(super) fn is_virtual(path: &str) -> bool {
    path == ROOT || path.starts_with(".bucketfs/")
}

/// Refuses to make a name in the history directory (`.bucketfs` at the
/// root included: the kernel asks only when it was not looked up first,
/// as for a rename's target): it is read-only.
pub(super) fn refuse_new(path: &str) -> Result<(), crate::error::FsError> {
    match is_virtual(path) {
        true => Err(crate::error::FsError::ReadOnly),
        false => Ok(()),
    }
}

/// What a path in the history directory stands for.
enum Place<'a> {
    Root,
    /// The history of PATH ("" for the root).
    Versions(&'a str),
    Snapshots,
    /// PATH ("" for the root) in snapshot NAME.
    InSnapshot(&'a str, &'a str),
}

fn place(path: &str) -> Option<Place<'_>> {
    if path == ROOT {
        return Some(Place::Root);
    }
    let rest = path.strip_prefix(".bucketfs/")?;
    match rest.split_once('/') {
        None if rest == "versions" => Some(Place::Versions("")),
        None if rest == "snapshots" => Some(Place::Snapshots),
        Some(("versions", p)) => Some(Place::Versions(p)),
        Some(("snapshots", r)) => {
            let (name, p) = r.split_once('/').unwrap_or((r, ""));
            Some(Place::InSnapshot(name, p))
        }
        _ => None,
    }
}

fn join(dir: &str, name: &str) -> String {
    match dir.is_empty() {
        true => name.to_string(),
        false => format!("{dir}/{name}"),
    }
}

/// The file names of a key's versions (newest first, delete markers left
/// out), with each version.
fn version_names(versions: Vec<VersionEntry>) -> Vec<(String, VersionEntry)> {
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    versions
        .into_iter()
        .filter(|v| !v.delete_marker)
        .map(|v| {
            let base = jiff::Timestamp::try_from(v.info.mtime)
                .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
                .unwrap_or_else(|_| v.version_id.clone());
            let n = seen.entry(base.clone()).or_default();
            *n += 1;
            let name = match *n {
                1 => base,
                n => format!("{base}~{n}"),
            };
            (name, v)
        })
        .collect()
}

impl Fs {
    /// Every version under `prefix` (delimiter `/`): versions and prefixes.
    async fn all_versions(&self, prefix: &str) -> Result<(Vec<VersionEntry>, Vec<String>), FsError> {
        let (mut versions, mut prefixes, mut marker) = (Vec::new(), Vec::new(), None);
        loop {
            let page = self.store.list_versions(prefix, marker.as_ref()).await?;
            versions.extend(page.versions);
            prefixes.extend(page.prefixes);
            match page.next {
                Some(next) => marker = Some(next),
                None => return Ok((versions, prefixes)),
            }
        }
    }

    /// The versions of exactly `key`, newest first.
    async fn versions_of(&self, key: &str) -> Result<Vec<VersionEntry>, FsError> {
        let (versions, _) = self.all_versions(key).await?;
        Ok(versions.into_iter().filter(|v| v.key == key).collect())
    }

    /// The moment snapshot `name` records.
    async fn snapshot_time(&self, name: &str) -> Result<Option<SystemTime>, FsError> {
        Ok(self
            .store
            .snapshots()
            .await?
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, at)| at))
    }

    fn virtual_dir(&self, path: &str, mtime: SystemTime) -> Node {
        let mut node = self.dir_node(path, None);
        node.posix.mode = libc::S_IFDIR | 0o555;
        node.posix.mtime = mtime;
        node.posix.ctime = mtime;
        node
    }

    fn virtual_file(&self, path: &str, key: &str, info: ObjectInfo) -> Node {
        let mut node = self.object_node(path, info, true);
        node.posix.mode = libc::S_IFREG | (node.posix.mode & 0o555);
        node.source = Some(key.to_string());
        node
    }

    /// What the history directory holds at `path`.
    pub(super) async fn fetch_virtual(&self, path: &str) -> Result<Option<Node>, FsError> {
        let epoch = SystemTime::UNIX_EPOCH;
        match place(path) {
            None => Ok(None),
            Some(Place::Root | Place::Snapshots | Place::Versions("")) => {
                Ok(Some(self.virtual_dir(path, epoch)))
            }
            Some(Place::Versions(p)) => {
                if !self.versions_of(p).await?.is_empty() {
                    return Ok(Some(self.virtual_dir(path, epoch)));
                }
                let (versions, prefixes) = self.all_versions(&dir_prefix(p)).await?;
                if !versions.is_empty() || !prefixes.is_empty() {
                    return Ok(Some(self.virtual_dir(path, epoch)));
                }
                // A version of the file at the parent path.
                let Some((key, name)) = p.rsplit_once('/') else {
                    return Ok(None);
                };
                let found = version_names(self.versions_of(key).await?)
                    .into_iter()
                    .find(|(n, _)| n == name);
                Ok(found.map(|(_, v)| self.virtual_file(path, key, v.info)))
            }
            Some(Place::InSnapshot(name, p)) => {
                let Some(at) = self.snapshot_time(name).await? else {
                    return Ok(None);
                };
                if p.is_empty() {
                    return Ok(Some(self.virtual_dir(path, at)));
                }
                let (objects, prefixes) = self.versions_at(p, at).await?;
                if let Some((key, info)) = objects.into_iter().find(|(k, _)| k == p) {
                    return Ok(Some(self.virtual_file(path, &key, info)));
                }
                let is_dir = prefixes.iter().any(|x| *x == dir_prefix(p));
                Ok(is_dir.then(|| self.virtual_dir(path, at)))
            }
        }
    }

    /// The nodes in the history directory `path`.
    pub(super) async fn list_virtual(&self, path: &str) -> Result<Vec<Node>, FsError> {
        let epoch = SystemTime::UNIX_EPOCH;
        let mut nodes = Vec::new();
        match place(path) {
            None => {}
            Some(Place::Root) => {
                nodes.push(self.virtual_dir(VERSIONS, epoch));
                nodes.push(self.virtual_dir(SNAPSHOTS, epoch));
            }
            Some(Place::Snapshots) => {
                for (name, at) in self.store.snapshots().await? {
                    if !name.is_empty() && !name.contains('/') {
                        nodes.push(self.virtual_dir(&join(SNAPSHOTS, &name), at));
                    }
                }
            }
            Some(Place::Versions(p)) => {
                let own = if p.is_empty() {
                    Vec::new()
                } else {
                    self.versions_of(p).await?
                };
                if !own.is_empty() {
                    for (name, v) in version_names(own) {
                        nodes.push(self.virtual_file(&join(path, &name), p, v.info));
                    }
                    return Ok(nodes);
                }
                let prefix = if p.is_empty() {
                    String::new()
                } else {
                    dir_prefix(p)
                };
                let (versions, prefixes) = self.all_versions(&prefix).await?;
                let mut names: Vec<&str> = versions
                    .iter()
                    .map(|v| &v.key[prefix.len()..])
                    .chain(prefixes.iter().map(|x| x[prefix.len()..].trim_end_matches('/')))
                    .filter(|n| !n.is_empty() && !n.contains('/'))
                    .collect();
                names.sort_unstable();
                names.dedup();
                for name in names {
                    nodes.push(self.virtual_dir(&join(path, name), epoch));
                }
            }
            Some(Place::InSnapshot(name, p)) => {
                let Some(at) = self.snapshot_time(name).await? else {
                    return Err(FsError::NotFound);
                };
                let prefix = if p.is_empty() {
                    String::new()
                } else {
                    dir_prefix(p)
                };
                let (objects, prefixes) = self.versions_at(&prefix, at).await?;
                for (key, info) in objects {
                    let child = &key[prefix.len()..];
                    if !child.is_empty() && !child.contains('/') {
                        nodes.push(self.virtual_file(&join(path, child), &key, info));
                    }
                }
                for x in prefixes {
                    let child = x[prefix.len()..].trim_end_matches('/');
                    if !child.is_empty() && !child.contains('/') {
                        nodes.push(self.virtual_dir(&join(path, child), at));
                    }
                }
            }
        }
        Ok(nodes)
    }
}
