//! The store seam (`store.rs`) in memory: one bucket that keeps versions,
//! honours `If-Match` (a `Source`'s ETag) and version ids, folds listings at
//! `/` with the bucketfs router's directory markers, and moves keys and
//! prefixes the way its rename extension does. It stands in for the
//! cluster in the filesystem core's tests.
//!
//! Faults are injected per call: an error before the call takes effect, an
//! error after it took effect (the answer was lost), or a delay. They are
//! planned for the Nth call from now, or drawn at random with a seed, so a
//! failing sequence can be replayed. Another client's change is a direct
//! call of any method on the same store (`put`, say): it bypasses nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};

use bucketfs_common::file_locks::{apply, conflict, HeldLock};

use crate::error::FsError;
use crate::store::{
    BlockBuffer, ChangeEntry, Listing, LockAnswer, LockKind, LockRange, Metadata, ObjectInfo, ObjectStore,
    Source, VersionEntry, VersionListing,
};

/// ListObjectVersions' page size.
const VERSIONS_PAGE: usize = 1000;

/// What an injected fault does to one call.
#[derive(Debug, Clone)]
pub enum Fault {
    /// The call fails before it takes effect.
    Fail(FsError),
    /// The call takes effect, and then its answer is lost.
    FailAfter(FsError),
    /// The call waits this long first.
    Delay(Duration),
    /// The call takes effect, and its answer arrives this long after: a
    /// listing that is already out of date when it is read.
    Late(Duration),
}

#[derive(Debug, Clone)]
struct Version {
    id: String,
    etag: String,
    data: Bytes,
    meta: Metadata,
    mtime: SystemTime,
    delete_marker: bool,
}

impl Version {
    fn info(&self, versioned: bool) -> ObjectInfo {
        ObjectInfo {
            size: self.data.len() as u64,
            etag: self.etag.clone(),
            version_id: versioned.then(|| self.id.clone()),
            mtime: self.mtime,
            metadata: self.meta.clone(),
            links: None,
        }
    }
}

struct Upload {
    key: String,
    meta: Metadata,
    parts: BTreeMap<u32, (String, Bytes)>,
}

#[derive(Default)]
struct State {
    /// Every key's versions, oldest first; the last is current unless it is
    /// a delete marker.
    keys: BTreeMap<String, Vec<Version>>,
    uploads: HashMap<String, Upload>,
    next_id: u64,
    /// Hard links as the router keeps them: each linked key's group.
    links: HashMap<String, u64>,
    /// Locks between mounts, by key (they never expire here).
    file_locks: HashMap<String, Vec<HeldLock>>,
    /// The change feed (`memory_feed.rs`), recorded whether or not it is on.
    changes: Vec<ChangeEntry>,
}

impl State {
    fn fresh(&mut self, what: &str) -> String {
        self.next_id += 1;
        format!("{what}{:08}", self.next_id)
    }

    fn current(&self, key: &str) -> Option<&Version> {
        self.keys
            .get(key)
            .and_then(|v| v.last())
            .filter(|v| !v.delete_marker)
    }

    /// The version `source` names, checked against its ETag.
    fn resolve(&self, source: &Source) -> Result<&Version, FsError> {
        match &source.version_id {
            Some(id) => self
                .keys
                .get(&source.key)
                .and_then(|vs| vs.iter().find(|v| v.id == *id))
                .filter(|v| !v.delete_marker)
                .ok_or(FsError::NotFound),
            None => {
                let v = self.current(&source.key).ok_or(FsError::NotFound)?;
                if !source.etag.is_empty() && v.etag != source.etag {
                    return Err(FsError::Stale);
                }
                Ok(v)
            }
        }
    }

    /// `info` with the key's link group and count, if it has a group.
    fn with_links(&self, key: &str, mut info: ObjectInfo) -> ObjectInfo {
        info.links = self.links.get(key).map(|&group| {
            let count = self.links.values().filter(|&&g| g == group).count();
            (group, count as u32)
        });
        info
    }

    /// Other keys of `key`'s link group.
    fn other_links(&self, key: &str) -> Vec<String> {
        let Some(&group) = self.links.get(key) else {
            return Vec::new();
        };
        let mut keys: Vec<String> = self
            .links
            .iter()
            .filter(|(k, &g)| g == group && k.as_str() != key)
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        keys
    }

    /// Stores `version` as `key`'s current one and, as the mount's writes
    /// follow links, as every other name's of its link group.
    fn store(&mut self, versioned: bool, key: &str, mut version: Version) -> ObjectInfo {
        if !versioned {
            version.id = "null".into();
        }
        for other in self.other_links(key) {
            self.store_one(versioned, &other, version.clone());
        }
        self.store_one(versioned, key, version)
    }

    fn store_one(&mut self, versioned: bool, key: &str, version: Version) -> ObjectInfo {
        let info = version.info(versioned);
        feed::record(&mut self.changes, key, Some(&version.etag));
        let versions = self.keys.entry(key.to_string()).or_default();
        if !versioned {
            versions.clear();
        }
        versions.push(version);
        self.with_links(key, info)
    }

    /// Part `number` of `upload` (of `key`) is now `body`; answers its ETag.
    fn add_part(&mut self, key: &str, upload: &str, number: u32, body: Bytes) -> Result<String, FsError> {
        let etag = self.fresh("p");
        let up = self.uploads.get_mut(upload).filter(|u| u.key == key);
        up.ok_or(FsError::NotFound)?
            .parts
            .insert(number, (etag.clone(), body));
        Ok(etag)
    }

    fn new_version(&mut self, data: Bytes, meta: Metadata, etag: Option<String>) -> Version {
        Version {
            id: self.fresh("v"),
            etag: etag.unwrap_or_else(|| self.fresh("e")),
            data,
            meta,
            mtime: SystemTime::now(),
            delete_marker: false,
        }
    }

    fn delete(&mut self, versioned: bool, key: &str) {
        self.links.remove(key);
        if self.current(key).is_some() {
            feed::record(&mut self.changes, key, None);
        }
        if !versioned {
            self.keys.remove(key);
            return;
        }
        if self.current(key).is_some() {
            let marker = Version {
                delete_marker: true,
                ..self.new_version(Bytes::new(), Metadata::new(), Some(String::new()))
            };
            self.keys.entry(key.to_string()).or_default().push(marker);
        }
    }

    /// Current keys under `prefix` from `from` on (exclusive when `after`).
    fn current_from<'s>(
        &'s self,
        prefix: &'s str,
        from: &str,
        after: bool,
    ) -> impl Iterator<Item = (&'s String, &'s Version)> + 's {
        let start = from.max(prefix).to_string();
        self.keys
            .range(start.clone()..)
            .filter(move |(k, _)| !(after && **k == start))
            .take_while(move |(k, _)| k.starts_with(prefix))
            .filter_map(|(k, vs)| vs.last().filter(|v| !v.delete_marker).map(|v| (k, v)))
    }
}

/// Where a listing page starts: after a key, or past a folded prefix.
enum Resume {
    Start,
    After(String),
    PastPrefix(String),
}

impl Resume {
    fn of_token(token: &str) -> Resume {
        match token.split_at(token.len().min(1)) {
            ("k", key) => Resume::After(key.to_string()),
            ("p", prefix) => Resume::PastPrefix(prefix.to_string()),
            _ => Resume::Start,
        }
    }
}

/// An in-memory bucket; see the module comment.
pub struct MemoryStore {
    versioned: bool,
    state: Mutex<State>,
    /// The change feed, when on, and how far it may be read.
    feed: Option<feed::Released>,
    /// Wakes feed readers waiting for a change.
    recorded: tokio::sync::Notify,
    faults: Mutex<Faults>,
    calls: AtomicU64,
    bytes_in: AtomicU64,
}

#[derive(Default)]
struct Faults {
    /// Planned faults by the call count they hit.
    planned: BTreeMap<u64, Fault>,
    /// Random faults: (rng state, chance in a million).
    random: Option<(u64, u32)>,
}

impl Faults {
    fn draw(&mut self, call: u64) -> Option<Fault> {
        if let Some(f) = self.planned.remove(&call) {
            return Some(f);
        }
        let (rng, per_million) = self.random.as_mut()?;
        // xorshift64*: small, fast, and replayable from the seed.
        *rng ^= *rng >> 12;
        *rng ^= *rng << 25;
        *rng ^= *rng >> 27;
        let roll = rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        if (roll >> 32) % 1_000_000 >= u64::from(*per_million) {
            return None;
        }
        let error = FsError::Io("injected fault".into());
        let pause = Duration::from_millis((roll >> 16) % 5);
        Some(match (roll >> 8) % 4 {
            0 => Fault::Fail(error),
            1 => Fault::FailAfter(error),
            2 => Fault::Delay(pause),
            _ => Fault::Late(pause),
        })
    }
}

impl MemoryStore {
    /// An empty bucket; `versioned` keeps every version (else a write
    /// replaces the key's only version, whose id is `null`).
    pub fn new(versioned: bool) -> Self {
        Self {
            versioned,
            state: Mutex::new(State::default()),
            feed: None,
            recorded: tokio::sync::Notify::new(),
            faults: Mutex::new(Faults::default()),
            calls: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
        }
    }

    /// [`Self::new`] with a change feed, all of it readable at once until
    /// a test holds it back with `release_feed`.
    pub fn with_feed(versioned: bool) -> Self {
        Self {
            feed: Some(feed::Released::all()),
            ..Self::new(versioned)
        }
    }

    /// Injects `fault` into the `n`th call from now (1: the next).
    pub fn fault_at(&self, n: u64, fault: Fault) {
        let at = self.calls.load(Ordering::SeqCst) + n;
        self.faults.lock().unwrap().planned.insert(at, fault);
    }

    /// Injects a random fault into about `per_million` calls in a million,
    /// drawn from `seed`; 0 stops them.
    pub fn random_faults(&self, seed: u64, per_million: u32) {
        self.faults.lock().unwrap().random = (per_million > 0).then_some((seed | 1, per_million));
    }

    /// Calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Body bytes received by puts and part uploads so far.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Ordering::SeqCst)
    }

    /// Another S3 client's PUT of `key`: unlike the mount's writes it does
    /// not follow hard links; the key leaves its link group, as on the router.
    pub fn put_plain(&self, key: &str, body: &[u8]) {
        let mut state = self.state.lock().unwrap();
        state.links.remove(key);
        let version = state.new_version(Bytes::copy_from_slice(body), Metadata::new(), None);
        state.store(self.versioned, key, version);
        self.recorded.notify_waiters();
    }

    /// The current bytes of `key`, if any (for tests to compare).
    pub fn contents(&self, key: &str) -> Option<Bytes> {
        self.state.lock().unwrap().current(key).map(|v| v.data.clone())
    }

    /// Every current key, in order.
    pub fn keys(&self) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state
            .current_from("", "", false)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Multipart uploads not completed nor aborted.
    pub fn open_uploads(&self) -> usize {
        self.state.lock().unwrap().uploads.len()
    }

    /// Runs `op` on the state as one call, with that call's fault.
    async fn call<T>(&self, op: impl FnOnce(&mut State) -> Result<T, FsError>) -> Result<T, FsError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let fault = self.faults.lock().unwrap().draw(n);
        match &fault {
            Some(Fault::Fail(e)) => return Err(e.clone()),
            Some(Fault::Delay(d)) => tokio::time::sleep(*d).await,
            _ => {}
        }
        let result = op(&mut self.state.lock().unwrap());
        self.recorded.notify_waiters();
        match fault {
            Some(Fault::FailAfter(e)) => Err(e),
            Some(Fault::Late(d)) => {
                tokio::time::sleep(d).await;
                result
            }
            _ => result,
        }
    }

    fn page(&self, state: &State, prefix: &str, fold: bool, resume: Resume, max: usize) -> Listing {
        let (from, after, skip_under) = match &resume {
            Resume::Start => (prefix.to_string(), false, None),
            Resume::After(k) => (k.clone(), true, None),
            Resume::PastPrefix(p) => (p.clone(), false, Some(p.clone())),
        };
        let told_from = |p: &str| match &resume {
            Resume::Start => true,
            Resume::After(k) => k.as_str() < p,
            Resume::PastPrefix(q) => q.as_str() < p,
        };
        let mut listing = Listing {
            attributes: true,
            ..Listing::default()
        };
        let mut count = 0;
        let mut last: Option<String> = None;
        let mut truncated = false;
        for (key, version) in state.current_from(prefix, &from, after) {
            if skip_under.as_deref().is_some_and(|p| key.starts_with(p)) {
                continue;
            }
            let folded = fold
                .then(|| key[prefix.len()..].find('/'))
                .flatten()
                .map(|i| key[..prefix.len() + i + 1].to_string());
            if let Some(p) = &folded {
                if listing.prefixes.last() == Some(p) {
                    continue;
                }
            }
            if count == max {
                truncated = true;
                break;
            }
            count += 1;
            match folded {
                Some(p) => {
                    if told_from(&p) {
                        let marker = state.current(&p).map(|v| v.info(self.versioned));
                        listing.markers.insert(p.clone(), marker);
                    }
                    last = Some(format!("p{p}"));
                    listing.prefixes.push(p);
                }
                None => {
                    last = Some(format!("k{key}"));
                    let info = state.with_links(key, version.info(self.versioned));
                    listing.objects.push((key.clone(), info));
                }
            }
        }
        listing.next = last.filter(|_| truncated);
        listing
    }
}

fn check_len(len: usize) -> Result<(), FsError> {
    (len <= 5 << 30).then_some(()).ok_or(FsError::TooBig)
}

#[async_trait::async_trait]
impl ObjectStore for MemoryStore {
    async fn head(&self, key: &str, version_id: Option<&str>) -> Result<Option<ObjectInfo>, FsError> {
        let versioned = self.versioned;
        self.call(|s| {
            let source = Source {
                key: key.to_string(),
                version_id: version_id.filter(|v| *v != "null").map(str::to_string),
                etag: String::new(),
            };
            match s.resolve(&source) {
                Ok(v) => Ok(Some(s.with_links(key, v.info(versioned)))),
                Err(FsError::NotFound) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await
    }

    async fn get_range(&self, source: &Source, start: u64, len: u64) -> Result<Bytes, FsError> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        self.call(|s| {
            let data = &s.resolve(source)?.data;
            let from = (start as usize).min(data.len());
            let to = (start.saturating_add(len) as usize).min(data.len());
            Ok(data.slice(from..to))
        })
        .await
    }

    async fn get_range_blocks(
        &self,
        source: &Source,
        start: u64,
        len: u64,
        block: usize,
        buffer: BlockBuffer<'_>,
    ) -> Result<Vec<Bytes>, FsError> {
        let data = self.get_range(source, start, len).await?;
        Ok(data
            .chunks(block)
            .map(|piece| {
                let mut b: BytesMut = buffer();
                b.extend_from_slice(piece);
                b.freeze()
            })
            .collect())
    }

    async fn put_object(
        &self,
        key: &str,
        body: Bytes,
        meta: &Metadata,
        base: Option<Option<&str>>,
    ) -> Result<ObjectInfo, FsError> {
        check_len(body.len())?;
        self.bytes_in.fetch_add(body.len() as u64, Ordering::SeqCst);
        let versioned = self.versioned;
        self.call(|s| {
            if base.is_some_and(|base| s.current(key).map(|c| c.etag.as_str()) != base) {
                return Err(FsError::Stale);
            }
            let version = s.new_version(body, meta.clone(), None);
            Ok(s.store(versioned, key, version))
        })
        .await
    }

    async fn patch(
        &self,
        base: &Source,
        size: u64,
        ranges: &[(u64, u64)],
        body: Bytes,
        meta: &Metadata,
    ) -> Result<ObjectInfo, FsError> {
        check_len(size as usize)?;
        self.bytes_in.fetch_add(body.len() as u64, Ordering::SeqCst);
        let versioned = self.versioned;
        self.call(|s| {
            let current = s.current(&base.key).ok_or(FsError::NotFound)?;
            if current.etag != base.etag {
                return Err(FsError::Stale);
            }
            let old = current.data.clone();
            // As the router checks: ranges inside the new size, the body
            // exactly their bytes, every byte past the old end covered.
            let mut data = old.to_vec();
            data.resize(size as usize, 0);
            let mut covered = old.len().min(data.len());
            let mut at = 0usize;
            for &(offset, len) in ranges {
                let (offset, len) = (offset as usize, len as usize);
                if offset + len > data.len() || offset > covered || at + len > body.len() {
                    return Err(FsError::Invalid);
                }
                data[offset..offset + len].copy_from_slice(&body[at..at + len]);
                covered = covered.max(offset + len);
                at += len;
            }
            if at != body.len() || covered < data.len() {
                return Err(FsError::Invalid);
            }
            let version = s.new_version(Bytes::from(data), meta.clone(), None);
            Ok(s.store(versioned, &base.key, version))
        })
        .await
    }

    async fn copy(&self, source: &Source, key: &str, meta: &Metadata) -> Result<String, FsError> {
        let versioned = self.versioned;
        self.call(|s| {
            let data = s.resolve(source)?.data.clone();
            let version = s.new_version(data, meta.clone(), None);
            Ok(s.store(versioned, key, version).etag)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), FsError> {
        let versioned = self.versioned;
        self.call(|s| {
            s.delete(versioned, key);
            Ok(())
        })
        .await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<Vec<(String, String)>, FsError> {
        if keys.len() > 1000 {
            return Err(FsError::Invalid);
        }
        let versioned = self.versioned;
        self.call(|s| {
            for key in keys {
                s.delete(versioned, key);
            }
            Ok(Vec::new())
        })
        .await
    }

    async fn create_upload(&self, key: &str, meta: &Metadata) -> Result<String, FsError> {
        self.call(|s| {
            let id = s.fresh("u");
            let upload = Upload {
                key: key.to_string(),
                meta: meta.clone(),
                parts: BTreeMap::new(),
            };
            s.uploads.insert(id.clone(), upload);
            Ok(id)
        })
        .await
    }

    async fn upload_part(
        &self,
        key: &str,
        upload: &str,
        number: u32,
        body: Bytes,
    ) -> Result<String, FsError> {
        self.bytes_in.fetch_add(body.len() as u64, Ordering::SeqCst);
        self.call(|s| s.add_part(key, upload, number, body)).await
    }

    async fn upload_part_copy(
        &self,
        key: &str,
        upload: &str,
        number: u32,
        source: &Source,
        start: u64,
        end: u64,
    ) -> Result<String, FsError> {
        self.call(|s| {
            let data = &s.resolve(source)?.data;
            if start > end || end > data.len() as u64 {
                return Err(FsError::Invalid);
            }
            let body = data.slice(start as usize..end as usize);
            s.add_part(key, upload, number, body)
        })
        .await
    }

    async fn complete_upload(
        &self,
        key: &str,
        upload: &str,
        etags: &[String],
    ) -> Result<ObjectInfo, FsError> {
        let versioned = self.versioned;
        self.call(|s| {
            let up = s
                .uploads
                .get(upload)
                .filter(|u| u.key == key)
                .ok_or(FsError::NotFound)?;
            let mut data = BytesMut::new();
            for (i, etag) in etags.iter().enumerate() {
                match up.parts.get(&(i as u32 + 1)) {
                    Some((e, body)) if e == etag => data.extend_from_slice(body),
                    _ => return Err(FsError::Invalid),
                }
            }
            let up = s.uploads.remove(upload).expect("checked above");
            let version = s.new_version(data.freeze(), up.meta, None);
            let info = s.store(versioned, key, version);
            // As the HTTP answer: the ETag and version, not the rest.
            Ok(ObjectInfo {
                etag: info.etag,
                version_id: info.version_id,
                mtime: info.mtime,
                ..ObjectInfo::default()
            })
        })
        .await
    }

    async fn abort_upload(&self, _key: &str, upload: &str) {
        let _ = self
            .call(|s| {
                s.uploads.remove(upload);
                Ok(())
            })
            .await;
    }

    async fn list(&self, prefix: &str, token: Option<&str>, max_keys: usize) -> Result<Listing, FsError> {
        let resume = token.map_or(Resume::Start, Resume::of_token);
        self.call(|s| Ok(self.page(s, prefix, true, resume, max_keys)))
            .await
    }

    async fn list_after(&self, prefix: &str, after: &str, max_keys: usize) -> Result<Listing, FsError> {
        let resume = Resume::After(after.to_string());
        self.call(|s| Ok(self.page(s, prefix, true, resume, max_keys)))
            .await
    }

    async fn list_tree(&self, prefix: &str, max_keys: usize) -> Result<Listing, FsError> {
        self.call(|s| Ok(self.page(s, prefix, false, Resume::Start, max_keys)))
            .await
    }

    async fn list_versions(
        &self,
        prefix: &str,
        marker: Option<&(String, String)>,
    ) -> Result<VersionListing, FsError> {
        let versioned = self.versioned;
        self.call(|s| {
            let mut page = VersionListing::default();
            let mut past_marker = marker.is_none();
            for (key, versions) in s.keys.range(prefix.to_string()..) {
                if !key.starts_with(prefix) {
                    break;
                }
                if let Some(i) = key[prefix.len()..].find('/') {
                    let p = key[..prefix.len() + i + 1].to_string();
                    if past_marker && page.prefixes.last() != Some(&p) {
                        page.prefixes.push(p);
                    }
                    continue;
                }
                for v in versions.iter().rev() {
                    if !past_marker {
                        past_marker = marker.is_some_and(|(k, id)| k == key && *id == v.id);
                        continue;
                    }
                    if page.versions.len() == VERSIONS_PAGE {
                        let last = page.versions.last().expect("a full page");
                        page.next = Some((last.key.clone(), last.version_id.clone()));
                        return Ok(page);
                    }
                    page.versions.push(VersionEntry {
                        key: key.clone(),
                        version_id: v.id.clone(),
                        delete_marker: v.delete_marker,
                        info: ObjectInfo {
                            metadata: Metadata::new(),
                            ..v.info(versioned)
                        },
                    });
                }
            }
            Ok(page)
        })
        .await
    }

    async fn rename(&self, from: &str, to: &str, prefix: bool, no_replace: bool) -> Result<(), FsError> {
        if prefix && from != to && (to.starts_with(from) || from.starts_with(to)) {
            return Err(FsError::Invalid);
        }
        let versioned = self.versioned;
        self.call(|s| {
            let sources: Vec<(String, Version)> = s
                .current_from(from, from, false)
                .filter(|(k, _)| *k == from || prefix)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if sources.is_empty() {
                return Err(FsError::NotFound);
            }
            let dest = |k: &str| format!("{to}{}", &k[from.len()..]);
            if no_replace && sources.iter().any(|(k, _)| s.current(&dest(k)).is_some()) {
                return Err(FsError::Exists);
            }
            for (key, v) in sources {
                if dest(&key) == key {
                    continue;
                }
                let moved = s.new_version(v.data, v.meta, Some(v.etag));
                s.links.remove(&dest(&key));
                s.store(versioned, &dest(&key), moved);
                let group = s.links.get(&key).copied();
                s.delete(versioned, &key);
                if let Some(group) = group {
                    s.links.insert(dest(&key), group);
                }
            }
            Ok(())
        })
        .await
    }

    async fn lock(
        &self,
        key: &str,
        session: &str,
        owner: u64,
        change: &LockRange,
    ) -> Result<LockAnswer, FsError> {
        self.call(|s| {
            let held = s.file_locks.entry(key.to_string()).or_default();
            if let Some(blocking) = conflict(held, session, owner, change) {
                return Ok(LockAnswer::Blocked(blocking.range));
            }
            let mine = |h: &HeldLock| h.session == session && h.owner == owner;
            let ranges: Vec<LockRange> = held.iter().filter(|h| mine(h)).map(|h| h.range).collect();
            held.retain(|h| !mine(h));
            held.extend(apply(&ranges, change).into_iter().map(|range| HeldLock {
                session: session.to_string(),
                owner,
                range,
            }));
            let etag = s.current(key).map(|v| v.etag.clone());
            Ok(LockAnswer::Granted(
                etag.filter(|_| change.kind != LockKind::Unlock),
            ))
        })
        .await
    }

    async fn test_lock(
        &self,
        key: &str,
        session: &str,
        owner: u64,
        want: &LockRange,
    ) -> Result<Option<LockRange>, FsError> {
        self.call(|s| {
            let held = s.file_locks.get(key).map(Vec::as_slice).unwrap_or_default();
            Ok(conflict(held, session, owner, want).map(|h| h.range))
        })
        .await
    }

    /// Without `with_feed`, none: the core's tests see other clients'
    /// changes by TTL.
    async fn changes(&self, after: Option<u64>, wait: bool) -> Result<crate::store::ChangePage, FsError> {
        self.feed_page(after, wait).await
    }

    async fn renew_locks(&self, session: &str, release: bool) -> Result<(), FsError> {
        self.call(|s| {
            if release {
                for held in s.file_locks.values_mut() {
                    held.retain(|h| h.session != session);
                }
            }
            Ok(())
        })
        .await
    }

    async fn link_names(&self, key: &str) -> Result<Vec<String>, FsError> {
        self.call(|s| {
            s.current(key).ok_or(FsError::NotFound)?;
            let mut names = s.other_links(key);
            names.push(key.to_string());
            names.sort();
            Ok(names)
        })
        .await
    }

    async fn link(&self, from: &str, to: &str, meta: &Metadata) -> Result<ObjectInfo, FsError> {
        let versioned = self.versioned;
        self.call(|s| {
            if s.current(to).is_some() || from == to {
                return Err(FsError::Exists);
            }
            let source = s.current(from).ok_or(FsError::NotFound)?;
            let (data, etag) = (source.data.clone(), source.etag.clone());
            let group = match s.links.get(from) {
                Some(&g) => g,
                None => {
                    s.next_id += 1;
                    s.links.insert(from.to_string(), s.next_id);
                    s.next_id
                }
            };
            s.links.insert(to.to_string(), group);
            let version = s.new_version(data, meta.clone(), Some(etag));
            s.store(versioned, from, version);
            let to_version = s.current(to).expect("stored for every name").clone();
            Ok(s.with_links(to, to_version.info(versioned)))
        })
        .await
    }
}

#[path = "memory_feed.rs"]
mod feed;

#[cfg(test)]
#[path = "memory_tests.rs"]
mod tests;
