//! Spots a walk through a directory's names in order (`stat` of every file,
//! `rm` of each, `ls -l` without readdir) so the mount can refresh the names
//! ahead with one listing that carries attributes instead of a HEAD per name.
//!
//! A lookup that must ask the store is a miss. A miss on a name after the
//! directory's previous miss (within a second) starts a scan of `FIRST_PAGE`
//! names; a miss on exactly the name that follows a scan's page continues it
//! with twice the page, up to `MAX_PAGE`. Misses in random order mostly
//! stay single HEADs.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;

pub const FIRST_PAGE: usize = 32;
pub const MAX_PAGE: usize = 1000;
/// Misses further apart than this are not one walk.
const WINDOW: Duration = Duration::from_secs(1);
/// Directories followed at once; the least recently used are forgotten.
const CAPACITY: usize = 1024;

struct Walk {
    last_miss: String,
    at: Instant,
    /// The page of the last scan and the name right after it.
    scanned: Option<(usize, String)>,
}

pub struct Scans {
    dirs: Mutex<LruCache<String, Walk>>,
}

impl Default for Scans {
    fn default() -> Self {
        Self {
            dirs: Mutex::new(LruCache::new(NonZeroUsize::new(CAPACITY).expect("non-zero"))),
        }
    }
}

impl Scans {
    /// A miss on `name` in `dir`: how many names to list from it, if a scan
    /// is worth it.
    pub fn miss(&self, dir: &str, name: &str) -> Option<usize> {
        let mut dirs = self.dirs.lock().unwrap();
        let now = Instant::now();
        let Some(walk) = dirs.get_mut(dir) else {
            dirs.put(
                dir.to_string(),
                Walk {
                    last_miss: name.to_string(),
                    at: now,
                    scanned: None,
                },
            );
            return None;
        };
        let recent = now.duration_since(walk.at) < WINDOW;
        let page = match &walk.scanned {
            Some((page, next)) if recent && next == name => Some((page * 2).min(MAX_PAGE)),
            _ if recent && walk.last_miss.as_str() < name => Some(FIRST_PAGE),
            _ => None,
        };
        walk.last_miss = name.to_string();
        walk.at = now;
        walk.scanned = None;
        page
    }

    /// A scan of `page` names ended before `next` (`None`: it reached the
    /// directory's end).
    pub fn scanned(&self, dir: &str, page: usize, next: Option<&str>) {
        if let Some(walk) = self.dirs.lock().unwrap().get_mut(dir) {
            walk.at = Instant::now();
            walk.scanned = next.map(|n| (page, n.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_order_scan_with_growing_pages() {
        let s = Scans::default();
        assert_eq!(s.miss("d", "f000"), None, "one miss is a HEAD");
        assert_eq!(s.miss("d", "f001"), Some(FIRST_PAGE));
        s.scanned("d", FIRST_PAGE, Some("f033"));
        assert_eq!(s.miss("d", "f033"), Some(2 * FIRST_PAGE));
        s.scanned("d", 2 * FIRST_PAGE, Some("f097"));
        assert_eq!(s.miss("d", "f097"), Some(4 * FIRST_PAGE));
        s.scanned("d", MAX_PAGE, Some("z"));
        assert_eq!(s.miss("d", "z"), Some(MAX_PAGE));
    }

    #[test]
    fn names_out_of_order_stay_single() {
        let s = Scans::default();
        assert_eq!(s.miss("d", "m"), None);
        assert_eq!(s.miss("d", "c"), None, "backwards");
        assert_eq!(s.miss("e", "x"), None, "another directory");
        assert_eq!(s.miss("d", "k"), Some(FIRST_PAGE), "forwards again");
        s.scanned("d", FIRST_PAGE, Some("q"));
        assert_eq!(s.miss("d", "a"), None, "not where the scan ended");
    }
}
