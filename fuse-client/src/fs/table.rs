//! The inode table: what this mount knows of each path, by inode number
//! and by path. No I/O: `Fs` fills it from the store and reads it back.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::time::Instant;

use crate::attrs::{Posix, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFSOCK};
use crate::names::dir_prefix;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    /// A named pipe, a unix socket or a device: an empty object whose mode
    /// (and `rdev`) say what it is; the kernel gives it its behaviour.
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

impl Kind {
    pub(super) fn of_mode(mode: u32) -> Kind {
        match mode & S_IFMT {
            S_IFDIR => Kind::Dir,
            S_IFLNK => Kind::Symlink,
            S_IFIFO => Kind::Fifo,
            S_IFSOCK => Kind::Socket,
            S_IFCHR => Kind::CharDevice,
            S_IFBLK => Kind::BlockDevice,
            _ => Kind::File,
        }
    }

    /// Made by `mknod`: no content, no writer.
    pub fn is_special(self) -> bool {
        matches!(
            self,
            Kind::Fifo | Kind::Socket | Kind::CharDevice | Kind::BlockDevice
        )
    }
}

#[derive(Debug, Clone)]
pub(super) struct Node {
    /// Key of the file, or prefix of the directory without its trailing `/` ("" for the root).
    pub(super) path: String,
    pub(super) kind: Kind,
    pub(super) size: u64,
    pub(super) posix: Posix,
    /// Mode and owner came from a HEAD (not only from a listing).
    pub(super) loaded: bool,
    pub(super) etag: String,
    pub(super) version_id: Option<String>,
    pub(super) fetched: Instant,
    /// Created here and not yet committed.
    pub(super) local: bool,
    /// Unlinked while open.
    pub(super) unlinked: bool,
    /// The ETag whose pages the kernel may keep cached across opens.
    pub(super) cached_etag: String,
    /// Hard links: the store's link group of the name and its number of
    /// names (`links` 1 and no group for most files).
    pub(super) group: Option<u64>,
    pub(super) links: u32,
    /// The key a file of the history directory reads (`history.rs`); its
    /// own path otherwise.
    pub(super) source: Option<String>,
}

impl Node {
    /// A node of `kind` at `path`, fetched now, with nothing else known.
    pub(super) fn new(path: String, kind: Kind, posix: Posix) -> Node {
        Node {
            path,
            kind,
            size: 0,
            posix,
            loaded: true,
            etag: String::new(),
            source: None,
            version_id: None,
            fetched: Instant::now(),
            local: false,
            unlinked: false,
            cached_etag: String::new(),
            group: None,
            links: 1,
        }
    }
}

#[derive(Default)]
pub(super) struct Table {
    pub(super) nodes: HashMap<u64, Node>,
    /// Ordered, so that a directory's entries and everything below it are
    /// range scans, not scans of every known path.
    pub(super) by_path: BTreeMap<String, u64>,
    /// Hard links: each link group's inode here (a group is one inode, with
    /// a path per name in `by_path`), and the names known of each linked
    /// inode. `Node::path`, the key its reads and writes use, is one of them.
    pub(super) by_group: HashMap<u64, u64>,
    pub(super) names: HashMap<u64, BTreeSet<String>>,
    /// The paths of `by_path` that are directories, ordered: a directory's
    /// known subdirectories (its link count) are a range scan.
    dirs: BTreeMap<String, ()>,
}

impl Table {
    /// Maps `path` to `ino`, as one of its names when it is linked.
    pub(super) fn bind(&mut self, path: &str, ino: u64) {
        self.by_path.insert(path.to_string(), ino);
        let Some(node) = self.nodes.get(&ino) else {
            self.dirs.remove(path);
            return;
        };
        if node.kind == Kind::Dir {
            self.dirs.insert(path.to_string(), ());
        } else {
            self.dirs.remove(path);
        }
        if let Some(group) = node.group {
            let key = node.path.clone();
            self.by_group.insert(group, ino);
            let names = self.names.entry(ino).or_default();
            if self.by_path.get(&key) == Some(&ino) {
                names.insert(key);
            }
            names.insert(path.to_string());
        }
    }

    /// `path` names nothing any more. Answers its inode and whether that
    /// keeps another known name: then the node stays, its key moved to
    /// another name when it was `path`.
    pub(super) fn unbind(&mut self, path: &str) -> Option<(u64, bool)> {
        let ino = self.by_path.remove(path)?;
        self.dirs.remove(path);
        let Some(names) = self.names.get_mut(&ino) else {
            return Some((ino, false));
        };
        names.remove(path);
        let Some(other) = names.iter().next().cloned() else {
            self.names.remove(&ino);
            return Some((ino, false));
        };
        if let Some(node) = self.nodes.get_mut(&ino) {
            if node.path == path {
                node.path = other;
                node.version_id = None;
            }
        }
        Some((ino, true))
    }

    /// Drops inode `ino` (not the paths that still map to it).
    pub(super) fn drop_node(&mut self, ino: u64) {
        if let Some(group) = self.nodes.remove(&ino).and_then(|n| n.group) {
            if self.by_group.get(&group) == Some(&ino) {
                self.by_group.remove(&group);
            }
        }
        self.names.remove(&ino);
    }

    /// The inode of link group `group` here, if known.
    pub(super) fn of_group(&self, group: Option<u64>) -> Option<u64> {
        let ino = *self.by_group.get(&group?)?;
        let node = self.nodes.get(&ino)?;
        (node.group == group).then_some(ino)
    }

    /// Known paths from `from` (inclusive) in byte order.
    pub(super) fn from(&self, from: &str) -> impl Iterator<Item = (&String, &u64)> {
        self.by_path
            .range::<str, _>((Bound::Included(from), Bound::Unbounded))
    }

    /// How many subdirectories of `dir` are known: a range scan of the
    /// known directories only.
    pub(super) fn subdirs(&self, dir: &str) -> u32 {
        direct_entries(&self.dirs, &dir_prefix(dir)).len() as u32
    }

    /// Every known path below directory `dir` (not `dir` itself).
    pub(super) fn below(&self, dir: &str) -> Vec<(String, u64)> {
        let prefix = dir_prefix(dir);
        self.from(&prefix)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter(|(p, _)| p.len() > prefix.len())
            .map(|(p, i)| (p.clone(), *i))
            .collect()
    }

    /// The known entries of directory `dir`.
    pub(super) fn children(&self, dir: &str) -> Vec<(String, u64)> {
        direct_entries(&self.by_path, &dir_prefix(dir))
            .into_iter()
            .map(|(path, ino)| (path.clone(), *ino))
            .collect()
    }
}

/// The entries of `map` (keyed by path) directly under `prefix`: a range
/// scan that steps over each entry's own subtree.
fn direct_entries<'a, V>(map: &'a BTreeMap<String, V>, prefix: &str) -> Vec<(&'a String, &'a V)> {
    let mut found = Vec::new();
    let mut from = prefix.to_string();
    loop {
        let mut skip_to = None;
        for (path, value) in map.range::<str, _>((Bound::Included(from.as_str()), Bound::Unbounded)) {
            let Some(rest) = path.strip_prefix(prefix) else {
                return found;
            };
            match rest.find('/') {
                None if rest.is_empty() => {} // the directory itself
                None => found.push((path, value)),
                // `0` follows `/`: past everything under that entry.
                Some(i) => {
                    skip_to = Some(format!("{prefix}{}0", &rest[..i]));
                    break;
                }
            }
        }
        match skip_to {
            Some(next) => from = next,
            None => return found,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attrs::{Posix, S_IFREG};
    use crate::names::parent_of;

    fn node(path: &str, kind: Kind) -> Node {
        let bits = if kind == Kind::Dir { S_IFDIR } else { S_IFREG };
        Node::new(path.to_string(), kind, Posix::new(bits, 0o755, 0, 0))
    }

    #[test]
    fn a_directory_counts_its_known_subdirectories() {
        let mut table = Table::default();
        let entries = [
            ("a", Kind::Dir),
            ("a/b", Kind::Dir),
            ("a/b/c", Kind::Dir),
            ("a/b.x", Kind::Dir),
            ("a/f", Kind::File),
            ("a/z", Kind::Dir),
            ("ab", Kind::Dir),
        ];
        for (i, (path, kind)) in entries.iter().enumerate() {
            let ino = i as u64 + 2;
            table.nodes.insert(ino, node(path, *kind));
            table.bind(path, ino);
        }
        assert_eq!(table.subdirs(""), 2, "a and ab");
        assert_eq!(table.subdirs("a"), 3, "a/b, a/b.x and a/z; not a/b/c or the file");
        assert_eq!(table.subdirs("a/b"), 1);
        assert_eq!(table.subdirs("a/f"), 0);
        // A rename moves a subdirectory from one parent to another.
        let ino = table.unbind("a/z").unwrap().0;
        table.bind("ab/z", ino);
        assert_eq!((table.subdirs("a"), table.subdirs("ab")), (2, 1));
        // A path that becomes a file stops counting.
        table.nodes.insert(4, node("a/b/c", Kind::File));
        table.bind("a/b/c", 4);
        assert_eq!(table.subdirs("a/b"), 0);
    }

    #[test]
    fn table_scans_agree_with_parent_of() {
        let paths = [
            "", "a", "ab", "a/b", "a.x", "a/bc", "a/b/c", "a/b.c", "ab/c", "abc/d", "b", "a/b/c/d", "a/b0",
        ];
        let mut table = Table::default();
        for (i, p) in paths.iter().enumerate() {
            table.by_path.insert(p.to_string(), i as u64);
        }
        for dir in ["", "a", "a/b", "ab", "b", "zz"] {
            let mut want: Vec<&str> = paths
                .iter()
                .copied()
                .filter(|p| !p.is_empty() && parent_of(p) == dir)
                .collect();
            want.sort();
            let have: Vec<String> = table.children(dir).into_iter().map(|(p, _)| p).collect();
            assert_eq!(have, want, "children of {dir:?}");
            let prefix = dir_prefix(dir);
            let mut want: Vec<&str> = paths
                .iter()
                .copied()
                .filter(|p| !p.is_empty() && p.starts_with(&prefix) && *p != dir)
                .collect();
            want.sort();
            let have: Vec<String> = table.below(dir).into_iter().map(|(p, _)| p).collect();
            assert_eq!(have, want, "below {dir:?}");
        }
    }
}
