//! A directory's whole tree from one listing without a delimiter: a walk
//! through a tree (`du`, `rm -rf`, `find`, `ls -R`) would otherwise cost a
//! listing per directory, each with the store's per-request overhead, where
//! one page of a thousand keys describes every directory of a small tree.
//!
//! A page of keys in byte order shows a directory whole when the page is the
//! last one, or when its last key sorts past everything under that
//! directory's prefix. Trees too big for one page are remembered for a
//! while, so their directories go straight to delimited listings.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;

use crate::names::{dir_prefix, join};
use crate::store::ObjectInfo;

/// Keys a readdir asks for in its listing of the directory's tree.
pub const TREE_PAGE: usize = 1000;
/// Big trees remembered; the least recently used are forgotten first.
const CAPACITY: usize = 4096;

/// One directory's entries, as a listing of a tree showed them.
#[derive(Debug, Default)]
pub struct TreeDir {
    /// Files: full key and info.
    pub files: Vec<(String, ObjectInfo)>,
    /// Subdirectories by path, with their marker (`dir/` key) when the
    /// listing holds one. A listing from a directory's start sees every
    /// marker below it: a marker sorts first among its directory's keys.
    pub subdirs: BTreeMap<String, Option<ObjectInfo>>,
}

/// A listing of directory `dir`'s tree folded into its directories, by path
/// (`dir` itself included). Keys whose path has a name that is not a valid
/// file name (empty, `.`, `..`) end where that name would be.
pub fn fold(
    dir: &str,
    objects: Vec<(String, ObjectInfo)>,
    valid: impl Fn(&str) -> bool,
) -> BTreeMap<String, TreeDir> {
    let prefix = dir_prefix(dir);
    let mut tree: BTreeMap<String, TreeDir> = BTreeMap::new();
    tree.entry(dir.to_string()).or_default();
    for (key, info) in objects {
        let Some(mut rest) = key.strip_prefix(prefix.as_str()) else {
            continue;
        };
        let mut at = dir.to_string();
        loop {
            match rest.split_once('/') {
                None if rest.is_empty() => break, // `dir`'s own marker
                None => {
                    match valid(rest) {
                        true => tree.entry(at).or_default().files.push((key, info)),
                        false => tracing::warn!(%key, "skipping a key that is not a valid file name"),
                    }
                    break;
                }
                Some((name, _)) if !valid(name) => {
                    tracing::warn!(%key, "skipping a key that is not a valid file name");
                    break;
                }
                Some((name, tail)) => {
                    let sub = join(&at, name);
                    let marker = tree
                        .entry(at)
                        .or_default()
                        .subdirs
                        .entry(sub.clone())
                        .or_default();
                    if tail.is_empty() {
                        *marker = Some(info);
                        tree.entry(sub).or_default();
                        break;
                    }
                    (at, rest) = (sub, tail);
                }
            }
        }
    }
    tree
}

/// Did a page whose last key is `last` (`None`: the page was the last one)
/// show everything under directory `dir`?
pub fn shows_whole(dir: &str, last: Option<&str>) -> bool {
    match last {
        None => true,
        Some(last) => {
            let prefix = dir_prefix(dir);
            !dir.is_empty() && last > prefix.as_str() && !last.starts_with(&prefix)
        }
    }
}

/// Directories whose tree did not fit a page, so their readdirs list them
/// folded at once.
pub struct BigTrees {
    ttl: Duration,
    dirs: Mutex<LruCache<String, Instant>>,
}

impl BigTrees {
    /// Remembers each big tree for `ttl`: it may have shrunk since.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            dirs: Mutex::new(LruCache::new(NonZeroUsize::new(CAPACITY).expect("non-zero"))),
        }
    }

    pub fn is_big(&self, dir: &str) -> bool {
        self.dirs
            .lock()
            .unwrap()
            .get(dir)
            .is_some_and(|at| at.elapsed() < self.ttl)
    }

    pub fn big(&self, dir: &str) {
        self.dirs.lock().unwrap().put(dir.to_string(), Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(size: u64) -> ObjectInfo {
        ObjectInfo {
            size,
            ..ObjectInfo::default()
        }
    }

    fn valid(name: &str) -> bool {
        !name.is_empty() && name != "." && name != ".."
    }

    #[test]
    fn a_flat_listing_folds_into_directories_with_their_markers() {
        let keys = [
            "d/", "d/a", "d/s/", "d/s/b", "d/s/t/c", "d/u/x", "d/u/y/", "d//bad", "d/./bad", "d/ok",
        ];
        let objects = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.to_string(), info(i as u64)))
            .collect();
        let tree = fold("d", objects, valid);
        let names: Vec<&str> = tree.keys().map(String::as_str).collect();
        assert_eq!(names, ["d", "d/s", "d/s/t", "d/u", "d/u/y"]);
        let files = |d: &str| -> Vec<&str> { tree[d].files.iter().map(|(k, _)| k.as_str()).collect() };
        assert_eq!(files("d"), ["d/a", "d/ok"]);
        assert_eq!(files("d/s"), ["d/s/b"]);
        assert_eq!(files("d/s/t"), ["d/s/t/c"]);
        assert_eq!(files("d/u/y"), Vec::<&str>::new());
        let subdirs = |d: &str| -> Vec<(&str, Option<u64>)> {
            tree[d]
                .subdirs
                .iter()
                .map(|(k, m)| (k.as_str(), m.as_ref().map(|i| i.size)))
                .collect()
        };
        assert_eq!(subdirs("d"), [("d/s", Some(2)), ("d/u", None)]);
        assert_eq!(subdirs("d/s"), [("d/s/t", None)]);
        assert_eq!(subdirs("d/u"), [("d/u/y", Some(6))]);
    }

    #[test]
    fn the_root_folds_too() {
        let objects = vec![("a".to_string(), info(1)), ("b/c".to_string(), info(2))];
        let tree = fold("", objects, valid);
        assert_eq!(tree[""].files.len(), 1);
        assert_eq!(tree[""].subdirs.keys().collect::<Vec<_>>(), ["b"]);
        assert_eq!(tree["b"].files[0].0, "b/c");
    }

    #[test]
    fn a_page_shows_the_directories_it_has_passed() {
        assert!(shows_whole("d", None));
        assert!(shows_whole("", None));
        assert!(
            !shows_whole("", Some("a")),
            "the root is whole only on the last page"
        );
        assert!(!shows_whole("d/s", Some("d/s/t/c")));
        assert!(shows_whole("d/s", Some("d/t")));
        assert!(shows_whole("d/s", Some("d/s0")));
        assert!(!shows_whole("d/s", Some("d/s.x")), "`.` sorts before `/`");
    }

    #[test]
    fn big_trees_are_forgotten_after_their_ttl() {
        let trees = BigTrees::new(Duration::from_secs(60));
        assert!(!trees.is_big("d"));
        trees.big("d");
        assert!(trees.is_big("d"));
        let trees = BigTrees::new(Duration::ZERO);
        trees.big("d");
        assert!(!trees.is_big("d"));
    }
}
