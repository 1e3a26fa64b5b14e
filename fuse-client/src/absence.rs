//! What this mount knows to be absent, so that looking up a name about to be
//! created (each file of a `tar -x`, a `git clone`, a `cp -r`) costs no round
//! trip to the store. Two sources:
//! - names the store just said are missing, trusted as long as the kernel
//!   trusts attributes (`--attr-ttl`);
//! - directories whose whole listing this mount holds (it listed them, or made
//!   them empty), trusted for `--dir-ttl`: a name the inode table does not
//!   know in such a directory is missing. Changes made through this mount keep
//!   the table true; changes made elsewhere show after at most `--dir-ttl`;
//! - the same for a directory's names from one name on, when a listing from
//!   that name reached the directory's end with nothing in it: files made
//!   one after another in a directory that already existed (an unpacking
//!   into it after a remount) each find the next name absent.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::ops::Bound;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;

/// Remembered names and directories, each; the oldest are forgotten first.
const CAPACITY: usize = 65_536;

pub struct Absence {
    attr_ttl: Duration,
    dir_ttl: Duration,
    /// Paths the store said were missing, and when.
    missing: Mutex<LruCache<String, Instant>>,
    /// Directories whose listing this mount holds, and when it was taken;
    /// ordered, so that forgetting a tree is a range scan (every unlink and
    /// rmdir forgets one).
    listed: Mutex<BTreeMap<String, Instant>>,
    /// Directories with nothing from a path on (the tail of their listing
    /// this mount holds), and when that was seen.
    tails: Mutex<BTreeMap<String, (String, Instant)>>,
}

impl Absence {
    pub fn new(attr_ttl: Duration, dir_ttl: Duration) -> Self {
        let cap = NonZeroUsize::new(CAPACITY).expect("non-zero");
        Self {
            attr_ttl,
            dir_ttl,
            missing: Mutex::new(LruCache::new(cap)),
            listed: Mutex::new(BTreeMap::new()),
            tails: Mutex::new(BTreeMap::new()),
        }
    }

    /// Is `path`, in directory `dir` and unknown to the inode table, surely
    /// absent?
    pub fn is_absent(&self, dir: &str, path: &str) -> bool {
        let fresh = |at: &Instant, ttl: Duration| at.elapsed() < ttl;
        if let Some(at) = self.missing.lock().unwrap().get(path) {
            if fresh(at, self.attr_ttl) {
                return true;
            }
        }
        if let Some((from, at)) = self.tails.lock().unwrap().get(dir) {
            if path >= from.as_str() && fresh(at, self.dir_ttl) {
                return true;
            }
        }
        self.listed
            .lock()
            .unwrap()
            .get(dir)
            .is_some_and(|at| fresh(at, self.dir_ttl))
    }

    /// The store holds nothing in `dir` from `from` on, as of `at` (the
    /// inode table holds what this mount has made there since).
    pub fn empty_from(&self, dir: &str, from: &str, at: Instant) {
        let mut tails = self.tails.lock().unwrap();
        make_room(&mut tails, dir, |(_, at)| at.elapsed() < self.dir_ttl);
        tails.insert(dir.to_string(), (from.to_string(), at));
    }

    /// The store said `path` is missing.
    pub fn missing(&self, path: &str) {
        self.missing.lock().unwrap().put(path.to_string(), Instant::now());
    }

    /// `path` exists.
    pub fn present(&self, path: &str) {
        self.missing.lock().unwrap().pop(path);
    }

    /// The inode table holds every entry of `dir` as of `at`.
    pub fn listed(&self, dir: &str, at: Instant) {
        let mut listed = self.listed.lock().unwrap();
        make_room(&mut listed, dir, |at| at.elapsed() < self.dir_ttl);
        listed.insert(dir.to_string(), at);
    }

    /// Does the inode table hold every entry of `dir` as of less than
    /// `within` ago? (A readdir trusts it as long as attributes are.)
    pub fn listed_within(&self, dir: &str, within: Duration) -> bool {
        self.listed
            .lock()
            .unwrap()
            .get(dir)
            .is_some_and(|at| at.elapsed() < within)
    }

    /// Someone else changed a name in `dir`: its listing is no longer whole.
    pub fn changed_in(&self, dir: &str) {
        self.listed.lock().unwrap().remove(dir);
        self.tails.lock().unwrap().remove(dir);
    }

    /// `dir` and everything below it is gone or has moved.
    pub fn drop_tree(&self, dir: &str) {
        remove_tree(&mut self.listed.lock().unwrap(), dir);
        remove_tree(&mut self.tails.lock().unwrap(), dir);
    }
}

/// Keeps `map` under CAPACITY before `dir` goes in: drops what is no longer
/// `fresh`, and if all is, half. A forgotten entry only costs a round trip
/// later.
fn make_room<V>(map: &mut BTreeMap<String, V>, dir: &str, fresh: impl Fn(&V) -> bool) {
    if map.len() < CAPACITY || map.contains_key(dir) {
        return;
    }
    map.retain(|_, v| fresh(v));
    if map.len() >= CAPACITY {
        let half = map.keys().nth(CAPACITY / 2).cloned().unwrap_or_default();
        *map = map.split_off(&half);
    }
}

/// Removes `dir` and every path below it from `map`.
fn remove_tree<V>(map: &mut BTreeMap<String, V>, dir: &str) {
    if dir.is_empty() {
        map.clear();
        return;
    }
    map.remove(dir);
    let below = format!("{dir}/");
    let gone: Vec<String> = map
        .range::<str, _>((Bound::Included(below.as_str()), Bound::Unbounded))
        .take_while(|(k, _)| k.starts_with(&below))
        .map(|(k, _)| k.clone())
        .collect();
    for k in gone {
        map.remove(&k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_directories_answer_for_their_names() {
        let a = Absence::new(Duration::from_secs(1), Duration::from_secs(60));
        assert!(!a.is_absent("d", "d/x"));
        a.listed("d", Instant::now());
        assert!(a.is_absent("d", "d/x"));
        assert!(!a.is_absent("e", "e/x"));
        a.listed("d/sub", Instant::now());
        a.listed("d.x", Instant::now());
        a.listed("e", Instant::now());
        a.drop_tree("d");
        assert!(
            a.is_absent("d.x", "d.x/y") && a.is_absent("e", "e/y"),
            "only the tree is forgotten"
        );
        assert!(!a.is_absent("d", "d/x"));
        assert!(!a.is_absent("d/sub", "d/sub/x"));
    }

    #[test]
    fn an_empty_tail_answers_for_the_names_from_its_start() {
        let a = Absence::new(Duration::from_secs(1), Duration::from_secs(60));
        a.empty_from("d", "d/f0002", Instant::now());
        assert!(a.is_absent("d", "d/f0002") && a.is_absent("d", "d/f0003") && a.is_absent("d", "d/z"));
        assert!(!a.is_absent("d", "d/f0001"), "names before the tail are unknown");
        assert!(!a.is_absent("e", "e/f0003"));
        a.drop_tree("d");
        assert!(!a.is_absent("d", "d/f0003"));
        let a = Absence::new(Duration::from_secs(1), Duration::ZERO);
        a.empty_from("d", "d/f0002", Instant::now());
        assert!(!a.is_absent("d", "d/f0003"), "a zero dir TTL trusts no listing");
    }

    #[test]
    fn missing_names_expire_with_the_attribute_ttl() {
        let a = Absence::new(Duration::ZERO, Duration::ZERO);
        a.missing("x");
        assert!(!a.is_absent("", "x"), "a zero TTL trusts nothing");
        let a = Absence::new(Duration::from_secs(60), Duration::ZERO);
        a.missing("x");
        assert!(a.is_absent("", "x"));
        a.present("x");
        assert!(!a.is_absent("", "x"));
        a.listed("", Instant::now());
        assert!(!a.is_absent("", "y"), "a zero dir TTL trusts no listing");
    }
}
