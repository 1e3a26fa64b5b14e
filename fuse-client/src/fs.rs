//! The filesystem core, independent of FUSE: an inode table over the bucket's
//! keys and the POSIX operations on it. The adapter in `fuse.rs` calls one
//! async method per kernel request and turns the result into a reply.
//!
//! Mapping: a file is an object; a directory is a key prefix, plus a `dir/`
//! marker object when created here (so empty directories exist and keep their
//! mode); a symlink is an object holding its target. Mode, owner and times
//! live in s3fs-style metadata (`attrs.rs`). Open files read through the
//! shared block cache and write through a `Writer`; flush, fsync and close
//! commit a new object version (close-to-open consistency).

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};

use crate::absence::Absence;
use crate::attrs::{Posix, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG};
use crate::cache::{BlockCache, Readahead};
use crate::deletes::Deletes;
use crate::dir_writes::DirWrites;
use crate::error::FsError;
use crate::scan::Scans;
use crate::store::{Listing, ObjectInfo, Source, Store, VersionEntry};
use crate::tree::{self, BigTrees, TREE_PAGE};
use crate::writer::{Span, Writer};

pub const ROOT: u64 = 1;
const MAX_NAME: usize = 255;
/// S3's limit on key length.
const MAX_KEY: usize = 1024;
const LIST_PAGE: usize = 1000;
/// Random reads of files this large fetch only the bytes asked for; smaller
/// files are read a whole block at a time and cached.
const RANDOM_READS_FROM: u64 = 16 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
}

impl Kind {
    fn of_mode(mode: u32) -> Kind {
        match mode & S_IFMT {
            S_IFDIR => Kind::Dir,
            S_IFLNK => Kind::Symlink,
            _ => Kind::File,
        }
    }
}

/// What the kernel is told about an inode.
#[derive(Debug, Clone)]
pub struct Attr {
    pub ino: u64,
    pub kind: Kind,
    pub size: u64,
    pub posix: Posix,
    /// 0 once unlinked (still open), else 1; 2 for directories (subdirectories
    /// are not counted: that would take a listing per stat).
    pub nlink: u32,
}

/// A directory entry.
#[derive(Debug, Clone)]
pub struct DirEntry {
    pub name: String,
    pub attr: Attr,
}

/// How the filesystem was mounted.
#[derive(Debug, Clone)]
pub struct Config {
    pub read_only: bool,
    /// Where staging files of open files live.
    pub cache_dir: PathBuf,
    /// Bytes of object blocks kept in memory.
    pub cache_bytes: usize,
    /// Bytes of object blocks kept on disk under `cache_dir` (0: none).
    pub disk_cache_bytes: u64,
    /// Attributes older than this are fetched again.
    pub attr_ttl: Duration,
    /// A directory listing this mount holds is trusted this long (see `absence.rs`).
    pub dir_ttl: Duration,
    /// Owner of objects without POSIX metadata.
    pub uid: u32,
    pub gid: u32,
    /// Show the bucket as it was at this time (read-only).
    pub at: Option<SystemTime>,
    /// Files whose upload may still run after their close returned (0:
    /// close waits for the upload). See `Fs::queue_commit`.
    pub write_back: usize,
}

#[derive(Debug, Clone)]
struct Node {
    /// Key of the file, or prefix of the directory without its trailing `/` ("" for the root).
    path: String,
    kind: Kind,
    size: u64,
    posix: Posix,
    /// Mode and owner came from a HEAD (not only from a listing).
    loaded: bool,
    etag: String,
    version_id: Option<String>,
    fetched: Instant,
    /// Created here and not yet committed.
    local: bool,
    /// Unlinked while open.
    unlinked: bool,
    /// The ETag whose pages the kernel may keep cached across opens.
    cached_etag: String,
}

#[derive(Default)]
struct Table {
    nodes: HashMap<u64, Node>,
    /// Ordered, so that a directory's entries and everything below it are
    /// range scans, not scans of every known path.
    by_path: BTreeMap<String, u64>,
}

impl Table {
    /// Known paths from `from` (inclusive) in byte order.
    fn from(&self, from: &str) -> impl Iterator<Item = (&String, &u64)> {
        self.by_path
            .range::<str, _>((Bound::Included(from), Bound::Unbounded))
    }

    /// Every known path below directory `dir` (not `dir` itself).
    fn below(&self, dir: &str) -> Vec<(String, u64)> {
        let prefix = dir_prefix(dir);
        self.from(&prefix)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter(|(p, _)| p.len() > prefix.len())
            .map(|(p, i)| (p.clone(), *i))
            .collect()
    }

    /// The known entries of directory `dir`: a range scan that steps over
    /// each subdirectory's own entries.
    fn children(&self, dir: &str) -> Vec<(String, u64)> {
        let prefix = dir_prefix(dir);
        let mut found = Vec::new();
        let mut from = prefix.clone();
        loop {
            let mut skip_to = None;
            for (path, ino) in self.from(&from) {
                let Some(rest) = path.strip_prefix(&prefix) else {
                    return found;
                };
                match rest.find('/') {
                    None if rest.is_empty() => {} // the root itself
                    None => found.push((path.clone(), *ino)),
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
}

/// State shared by every handle of one open file.
#[derive(Default)]
struct OpenFile {
    writer: Option<Writer>,
    /// Unlinked while open: readable until closed, never committed.
    orphan: bool,
    /// A write-back commit is queued and has not started yet.
    queued: bool,
}

/// An open file in the table: its state and how many handles use it,
/// counted under the table's lock so a close racing an open never drops
/// state the open still uses.
struct Opened {
    handles: usize,
    state: Shared<OpenFile>,
}

struct Handle {
    ino: u64,
    state: Shared<OpenFile>,
    writable: bool,
    append: bool,
    readahead: Mutex<Readahead>,
}

type Shared<T> = Arc<tokio::sync::Mutex<T>>;

pub struct Fs {
    store: Store,
    cache: Arc<BlockCache>,
    config: Config,
    table: Mutex<Table>,
    files: Mutex<HashMap<u64, Opened>>,
    handles: Mutex<HashMap<u64, Arc<Handle>>>,
    dirs: Mutex<HashMap<u64, Arc<Vec<DirEntry>>>>,
    absence: Absence,
    scans: Scans,
    big_trees: BigTrees,
    /// False once the store answered a listing without attributes (not a
    /// bucketfs router): readdirs then list folded, a directory at a time.
    tree_listings: AtomicBool,
    next_ino: AtomicU64,
    next_fh: AtomicU64,
    /// One permit per write-back commit in flight; `None`: no write-back.
    write_back: Option<Arc<tokio::sync::Semaphore>>,
    /// Write-back commits queued or running.
    pending: tokio::sync::watch::Sender<usize>,
    /// Files whose write-back failed for good since the last `sync_all`.
    lost: Mutex<Vec<String>>,
    /// Deletes still on their way to the store (write-back mode).
    deletes: Arc<Deletes>,
    /// Directories whose attributes are being written back.
    dir_writes: DirWrites,
    /// Held for reading by a directory attribute write, for writing by a
    /// directory rename or removal (see `dir_writes.rs`).
    dir_moves: tokio::sync::RwLock<()>,
}

/// A failed write-back commit is tried again this many times, after 0.5 s,
/// 1 s, 2 s... (about 30 s in all) before its changes are given up.
const WRITE_BACK_RETRIES: u32 = 6;
/// How long a write-back commit waits before it starts.
const WRITE_BACK_DELAY: Duration = Duration::from_millis(20);

/// Attribute changes asked by `setattr`.
#[derive(Debug, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<SystemTime>,
    pub mtime: Option<SystemTime>,
}

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

/// What the store holds under a directory's prefix.
#[derive(Default)]
struct DirContents {
    /// The directory's own key, if it has one.
    marker: Option<ObjectInfo>,
    /// Any key or prefix under it besides the marker.
    children: bool,
}

/// What a scan showed at the name it started from.
enum Scanned {
    Found(Box<Node>),
    Absent,
    /// A name the listing did not reach or could not show whole.
    Unknown,
}

/// A string that sorts before `path` and after every key that sorts before
/// it save a few (its last character lowered), for an inclusive start-after.
fn just_before(path: &str) -> String {
    let mut chars: Vec<char> = path.chars().collect();
    if let Some(last) = chars.pop() {
        if let Some(lower) = (0..last as u32).rev().find_map(char::from_u32) {
            chars.push(lower);
        }
    }
    chars.into_iter().collect()
}

fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

fn check_name(name: &str) -> Result<(), FsError> {
    if name.len() > MAX_NAME {
        return Err(FsError::NameTooLong);
    }
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(FsError::Invalid);
    }
    Ok(())
}

/// Is `name` (a listed key's last component) usable as a file name?
fn valid_listed_name(name: &str) -> bool {
    check_name(name).is_ok()
}

impl Fs {
    pub fn new(store: Store, config: Config) -> std::io::Result<Self> {
        let mut table = Table::default();
        let root = Node {
            path: String::new(),
            kind: Kind::Dir,
            size: 0,
            posix: Posix::new(S_IFDIR, 0o755, config.uid, config.gid),
            loaded: true,
            etag: String::new(),
            version_id: None,
            fetched: Instant::now(),
            local: false,
            unlinked: false,
            cached_etag: String::new(),
        };
        table.nodes.insert(ROOT, root);
        table.by_path.insert(String::new(), ROOT);
        let mut cache = BlockCache::new(config.cache_bytes);
        if config.disk_cache_bytes > 0 {
            let dir = config
                .cache_dir
                .join(format!("bucketfs-blocks-{}", std::process::id()));
            cache = cache.with_disk(&dir, config.disk_cache_bytes)?;
        }
        let write_back =
            (config.write_back > 0).then(|| Arc::new(tokio::sync::Semaphore::new(config.write_back)));
        Ok(Self {
            deletes: Arc::new(Deletes::new(store.clone())),
            store,
            cache: Arc::new(cache),
            absence: Absence::new(config.attr_ttl, config.dir_ttl),
            scans: Scans::default(),
            big_trees: BigTrees::new(config.dir_ttl),
            tree_listings: AtomicBool::new(true),
            config,
            table: Mutex::new(table),
            files: Mutex::new(HashMap::new()),
            handles: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            next_ino: AtomicU64::new(ROOT + 1),
            next_fh: AtomicU64::new(1),
            write_back,
            pending: tokio::sync::watch::Sender::new(0),
            lost: Mutex::new(Vec::new()),
            dir_writes: DirWrites::default(),
            dir_moves: tokio::sync::RwLock::new(()),
        })
    }

    fn writable(&self) -> Result<(), FsError> {
        if self.config.read_only || self.config.at.is_some() {
            Err(FsError::ReadOnly)
        } else {
            Ok(())
        }
    }

    fn node(&self, ino: u64) -> Result<Node, FsError> {
        self.table
            .lock()
            .unwrap()
            .nodes
            .get(&ino)
            .cloned()
            .ok_or(FsError::NotFound)
    }

    fn dir(&self, ino: u64) -> Result<Node, FsError> {
        let node = self.node(ino)?;
        if node.kind != Kind::Dir {
            return Err(FsError::NotDir);
        }
        Ok(node)
    }

    fn update(&self, ino: u64, f: impl FnOnce(&mut Node)) {
        if let Some(node) = self.table.lock().unwrap().nodes.get_mut(&ino) {
            f(node);
        }
    }

    fn open_file(&self, ino: u64) -> Option<Shared<OpenFile>> {
        self.files.lock().unwrap().get(&ino).map(|o| o.state.clone())
    }

    fn is_open(&self, ino: u64) -> bool {
        self.files.lock().unwrap().contains_key(&ino)
    }

    /// Records `node` at its path, reusing the inode already known for it.
    /// What an open file or a fuller earlier fetch knows is kept.
    fn remember(&self, node: Node) -> Attr {
        self.absence.present(&node.path);
        let ino = self.table.lock().unwrap().by_path.get(&node.path).copied();
        let open = ino.is_some_and(|ino| self.is_open(ino) || self.dir_writes.is_pending(ino));
        let mut table = self.table.lock().unwrap();
        let ino = match table.by_path.get(&node.path) {
            Some(&ino) => ino,
            None => {
                let ino = self.next_ino.fetch_add(1, Ordering::Relaxed);
                table.by_path.insert(node.path.clone(), ino);
                ino
            }
        };
        let keep = table
            .nodes
            .get(&ino)
            .is_some_and(|old| open || old.local || (!node.loaded && old.loaded && old.etag == node.etag));
        if !keep {
            let mut node = node;
            if let Some(old) = table.nodes.get(&ino) {
                node.cached_etag = old.cached_etag.clone();
                // A rename changes ctime without a new version, and a prefix
                // directory has nowhere to keep its times: what this mount
                // saw last wins when later.
                node.posix.ctime = node.posix.ctime.max(old.posix.ctime);
                if node.kind == Kind::Dir {
                    node.posix.mtime = node.posix.mtime.max(old.posix.mtime);
                }
            }
            table.nodes.insert(ino, node);
        }
        Self::attr_of(ino, &table.nodes[&ino])
    }

    /// `path` is gone (the store said so, or this mount removed it).
    fn forget_path(&self, path: &str) {
        {
            let mut table = self.table.lock().unwrap();
            if let Some(ino) = table.by_path.remove(path) {
                table.nodes.remove(&ino);
            }
        }
        self.absence.drop_tree(path);
        self.absence.missing(path);
    }

    fn attr_of(ino: u64, node: &Node) -> Attr {
        Attr {
            ino,
            kind: node.kind,
            size: node.size,
            posix: node.posix.clone(),
            nlink: match (node.kind, node.unlinked) {
                (Kind::Dir, _) => 2,
                (_, true) => 0,
                (_, false) => 1,
            },
        }
    }

    fn default_posix(&self, kind_bits: u32, mtime: SystemTime) -> Posix {
        let perm = if kind_bits == S_IFREG { 0o644 } else { 0o755 };
        let mut p = Posix::new(kind_bits, perm, self.config.uid, self.config.gid);
        p.mtime = mtime;
        p.atime = mtime;
        p.ctime = mtime;
        p
    }

    fn object_node(&self, path: &str, info: ObjectInfo, loaded: bool) -> Node {
        let posix = Posix::from_metadata(&info.metadata, &self.default_posix(S_IFREG, info.mtime));
        Node {
            path: path.to_string(),
            kind: Kind::of_mode(posix.mode),
            size: info.size,
            posix,
            loaded,
            etag: info.etag,
            version_id: info.version_id,
            fetched: Instant::now(),
            local: false,
            unlinked: false,
            cached_etag: String::new(),
        }
    }

    fn dir_node(&self, path: &str, marker: Option<ObjectInfo>) -> Node {
        let fallback = self.default_posix(S_IFDIR, SystemTime::UNIX_EPOCH);
        let posix = match &marker {
            Some(info) => {
                let mut p = Posix::from_metadata(&info.metadata, &self.default_posix(S_IFDIR, info.mtime));
                p.mode = S_IFDIR | (p.mode & 0o7777);
                p
            }
            None => fallback,
        };
        Node {
            path: path.to_string(),
            kind: Kind::Dir,
            size: 0,
            posix,
            loaded: true,
            etag: marker.map(|m| m.etag).unwrap_or_default(),
            version_id: None,
            fetched: Instant::now(),
            local: false,
            unlinked: false,
            cached_etag: String::new(),
        }
    }

    fn source_of(node: &Node) -> Source {
        Source {
            key: node.path.clone(),
            version_id: node.version_id.clone(),
            etag: node.etag.clone(),
        }
    }

    /// What the store holds at `path`: a file, a directory or nothing.
    async fn fetch_node(&self, path: &str) -> Result<Option<Node>, FsError> {
        if let Some(at) = self.config.at {
            return self.fetch_node_at(path, at).await;
        }
        if let Some(info) = self.store.head(path, None).await? {
            return Ok(Some(self.object_node(path, info, true)));
        }
        let contents = self.dir_contents(&dir_prefix(path)).await?;
        if contents.marker.is_none() && !contents.children {
            return Ok(None);
        }
        Ok(Some(self.dir_node(path, contents.marker)))
    }

    /// What the store holds under a directory's `prefix`, less what this
    /// mount is deleting: pages on past deleted keys until one that is not.
    async fn dir_contents(&self, prefix: &str) -> Result<DirContents, FsError> {
        let mut contents = DirContents::default();
        if self.deletes.is_removed(prefix) {
            return Ok(contents);
        }
        let page = (2 + self.deletes.pending_under(prefix)).min(LIST_PAGE);
        let reading = self.deletes.reading();
        let mut token = None;
        loop {
            let mut listing = self.store.list(prefix, token.as_deref(), page).await?;
            reading.hide(&mut listing.objects);
            reading.hide_prefixes(&mut listing.prefixes);
            contents.children |= !listing.prefixes.is_empty();
            for (key, info) in listing.objects {
                match key == prefix {
                    true if listing.attributes => contents.marker = Some(info),
                    true => contents.marker = self.store.head(prefix, None).await?,
                    false => contents.children = true,
                }
            }
            match listing.next {
                Some(next) if !contents.children => token = Some(next),
                _ => return Ok(contents),
            }
        }
    }

    /// [`Self::fetch_node`] for a lookup the table could not answer: when
    /// the misses walk the directory in order (see `scan.rs`), one listing
    /// with attributes refreshes `path` and the names after it.
    async fn fetch_missed(&self, path: &str) -> Result<Option<Node>, FsError> {
        let dir = parent_of(path);
        let name = &path[dir_prefix(dir).len()..];
        if self.config.at.is_none() {
            if let Some(page) = self.scans.miss(dir, name) {
                match self.scan_from(dir, path, page).await? {
                    Scanned::Found(node) => return Ok(Some(*node)),
                    Scanned::Absent => return Ok(None),
                    Scanned::Unknown => {}
                }
            }
        }
        self.fetch_node(path).await
    }

    /// Lists up to `page` names of `dir` from `path` on and remembers them,
    /// and tells what the listing shows at `path`.
    async fn scan_from(&self, dir: &str, path: &str, page: usize) -> Result<Scanned, FsError> {
        let prefix = dir_prefix(dir);
        // One more than the page: the name a continuing walk misses next.
        let reading = self.deletes.reading();
        let started = Instant::now();
        let mut listing = self
            .store
            .list_after(&prefix, &just_before(path), page + 1)
            .await?;
        reading.hide(&mut listing.objects);
        reading.hide_prefixes(&mut listing.prefixes);
        if !listing.attributes {
            return Ok(Scanned::Unknown);
        }
        if listing.objects.is_empty() && listing.prefixes.is_empty() && listing.next.is_none() {
            self.absence.empty_from(dir, path, started);
        }
        let as_dir = format!("{path}/");
        // Keys come in order from `path` on: past it (or at the listing's
        // end) with neither `path` nor `path/` seen, nothing is there.
        let shown_absent = !listing.objects.iter().any(|(k, _)| k == path || *k == as_dir)
            && !listing.prefixes.contains(&as_dir)
            && (listing.next.is_none()
                || listing.objects.iter().any(|(k, _)| *k > as_dir)
                || listing.prefixes.iter().any(|p| *p > as_dir));
        let mut markers = listing.markers;
        let mut names: Vec<(String, Option<Node>)> = listing
            .objects
            .into_iter()
            .map(|(k, info)| {
                let node = self.object_node(&k, info, true);
                (k, Some(node))
            })
            .chain(listing.prefixes.into_iter().map(|p| {
                // A directory, known when the listing told of its marker.
                let node = markers
                    .remove(&p)
                    .map(|marker| self.dir_node(&p[..p.len() - 1], marker));
                (p, node)
            }))
            .collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        let next = (names.len() > page).then(|| names[page].0.trim_end_matches('/').to_string());
        names.truncate(page);
        let mut found = None;
        for (key, node) in names {
            let Some(node) = node else { continue };
            let name = key[prefix.len()..].trim_end_matches('/');
            if name.is_empty() || !valid_listed_name(name) {
                continue;
            }
            if node.path == path {
                found = Some(node.clone());
            }
            self.remember(node);
        }
        let next_name = next.as_deref().map(|n| &n[prefix.len().min(n.len())..]);
        self.scans.scanned(dir, page, next_name);
        Ok(match found {
            Some(node) => Scanned::Found(Box::new(node)),
            None if shown_absent => Scanned::Absent,
            None => Scanned::Unknown,
        })
    }

    /// `ino`'s attributes as this mount knows them, without asking the store.
    pub fn known_attr(&self, ino: u64) -> Result<Attr, FsError> {
        Ok(Self::attr_of(ino, &self.node(ino)?))
    }

    pub async fn getattr(&self, ino: u64) -> Result<Attr, FsError> {
        let node = self.node(ino)?;
        let stale = !node.loaded || node.fetched.elapsed() >= self.config.attr_ttl;
        if ino == ROOT || node.local || !stale || self.is_open(ino) || self.dir_writes.is_pending(ino) {
            return Ok(Self::attr_of(ino, &node));
        }
        match self.fetch_missed(&node.path).await? {
            Some(fresh) => Ok(self.remember(fresh)),
            None => {
                self.forget_path(&node.path);
                Err(FsError::NotFound)
            }
        }
    }

    pub async fn lookup(&self, parent: u64, name: &str) -> Result<Attr, FsError> {
        check_name(name)?;
        let dir = self.dir(parent)?;
        let path = join(&dir.path, name);
        if path.len() >= MAX_KEY {
            return Err(FsError::NameTooLong);
        }
        let known = {
            let table = self.table.lock().unwrap();
            table
                .by_path
                .get(&path)
                .and_then(|ino| table.nodes.get(ino).map(|n| (*ino, n.clone())))
        };
        match &known {
            Some((ino, node)) if node.local || self.is_open(*ino) || self.dir_writes.is_pending(*ino) => {
                return Ok(Self::attr_of(*ino, node));
            }
            // Fetched as recently as the kernel's own cache would trust it:
            // unlink, rename and create right after the kernel's lookup.
            Some((ino, node)) if node.loaded && node.fetched.elapsed() < self.config.attr_ttl => {
                return Ok(Self::attr_of(*ino, node));
            }
            None if self.absence.is_absent(&dir.path, &path) || self.deletes.is_deleting(&path) => {
                return Err(FsError::NotFound)
            }
            _ => {}
        }
        match self.fetch_missed(&path).await? {
            Some(node) => Ok(self.remember(node)),
            None => {
                self.forget_path(&path);
                Err(FsError::NotFound)
            }
        }
    }

    pub async fn opendir(&self, ino: u64) -> Result<u64, FsError> {
        self.dir(ino)?;
        Ok(self.next_fh.fetch_add(1, Ordering::Relaxed))
    }

    /// The entries of an open directory, listed once when first read so a
    /// large directory pages without listing it again.
    pub async fn readdir(&self, ino: u64, fh: u64, offset: u64) -> Result<Arc<Vec<DirEntry>>, FsError> {
        if offset > 0 {
            if let Some(entries) = self.dirs.lock().unwrap().get(&fh) {
                return Ok(entries.clone());
            }
        }
        let entries = Arc::new(self.list_dir(ino).await?);
        self.dirs.lock().unwrap().insert(fh, entries.clone());
        Ok(entries)
    }

    pub fn releasedir(&self, fh: u64) {
        self.dirs.lock().unwrap().remove(&fh);
    }

    async fn list_dir(&self, ino: u64) -> Result<Vec<DirEntry>, FsError> {
        let dir = self.dir(ino)?;
        // Listed (or made) as recently as attributes are trusted, by a
        // readdir or by a listing of a tree above it.
        if self.absence.listed_within(&dir.path, self.config.attr_ttl) || self.list_tree(&dir.path).await? {
            return Ok(self.known_entries(&dir.path));
        }
        let prefix = dir_prefix(&dir.path);
        let started = Instant::now();
        let mut names = std::collections::HashSet::new();
        let Listing {
            objects,
            prefixes,
            markers,
            attributes,
            ..
        } = match self.config.at {
            Some(at) => {
                let (objects, prefixes) = self.versions_at(&prefix, at).await?;
                Listing {
                    objects,
                    prefixes,
                    ..Listing::default()
                }
            }
            None => self.list_all(&prefix).await?,
        };
        for (key, info) in objects {
            let name = &key[prefix.len()..];
            if name.is_empty() {
                continue; // this directory's own marker
            }
            if !valid_listed_name(name) {
                tracing::warn!(%key, "skipping a key that is not a valid file name");
                continue;
            }
            self.remember(self.object_node(&key, info, attributes));
            names.insert(name.to_string());
        }
        for p in prefixes {
            let name = p[prefix.len()..].trim_end_matches('/');
            if !valid_listed_name(name) || p.len() - prefix.len() != name.len() + 1 {
                tracing::warn!(prefix = %p, "skipping a prefix that is not a valid file name");
                continue;
            }
            if !names.insert(name.to_string()) {
                continue; // a file and a directory of one name: the file wins
            }
            let path = &p[..p.len() - 1];
            let known = self.table.lock().unwrap().by_path.contains_key(path);
            match (markers.get(&p), known) {
                (Some(marker), _) => drop(self.remember(self.dir_node(path, marker.clone()))),
                (None, true) => {}
                (None, false) => drop(self.remember(self.dir_node(path, None))),
            }
        }
        // The table now holds exactly the listing, and what this mount made
        // since (files not yet committed, say).
        self.forget_unlisted(&dir.path, &names, started);
        self.absence.listed(&dir.path, started);
        Ok(self.known_entries(&dir.path))
    }

    /// The entries of `dir` as the inode table knows them.
    fn known_entries(&self, dir: &str) -> Vec<DirEntry> {
        let skip = dir_prefix(dir).len();
        let table = self.table.lock().unwrap();
        table
            .children(dir)
            .into_iter()
            .filter_map(|(path, ino)| {
                let node = table.nodes.get(&ino).filter(|n| !n.unlinked)?;
                Some(DirEntry {
                    name: path[skip..].to_string(),
                    attr: Self::attr_of(ino, node),
                })
            })
            .collect()
    }

    /// Lists `dir`'s whole tree in one page (see `tree.rs`), and takes in
    /// every directory the page shows whole. Was `dir` one of them?
    async fn list_tree(&self, dir: &str) -> Result<bool, FsError> {
        if self.config.at.is_some()
            || !self.tree_listings.load(Ordering::Relaxed)
            || self.big_trees.is_big(dir)
        {
            return Ok(false);
        }
        let started = Instant::now();
        let reading = self.deletes.reading();
        let mut page = self.store.list_tree(&dir_prefix(dir), TREE_PAGE).await?;
        if !page.attributes {
            self.tree_listings.store(false, Ordering::Relaxed);
            return Ok(false);
        }
        let last = page
            .next
            .as_ref()
            .and(page.objects.last())
            .map(|(k, _)| k.clone());
        reading.hide(&mut page.objects);
        drop(reading);
        for (path, entries) in tree::fold(dir, page.objects, valid_listed_name) {
            let skip = dir_prefix(&path).len();
            let mut names = std::collections::HashSet::new();
            for (key, info) in entries.files {
                names.insert(key[skip..].to_string());
                self.remember(self.object_node(&key, info, true));
            }
            for (sub, marker) in entries.subdirs {
                // A file and a directory of one name: the file wins.
                if names.insert(sub[skip..].to_string()) {
                    self.remember(self.dir_node(&sub, marker));
                }
            }
            if tree::shows_whole(&path, last.as_deref()) {
                self.forget_unlisted(&path, &names, started);
                self.absence.listed(&path, started);
            }
        }
        let whole = tree::shows_whole(dir, last.as_deref());
        if !whole {
            self.big_trees.big(dir);
        }
        Ok(whole)
    }

    /// Drops the children of `dir` a listing started at `started` no longer
    /// shows, unless open or touched since, so the table holds exactly the
    /// directory's entries.
    fn forget_unlisted(&self, dir: &str, names: &std::collections::HashSet<String>, started: Instant) {
        let open: std::collections::HashSet<u64> = self.files.lock().unwrap().keys().copied().collect();
        let mut table = self.table.lock().unwrap();
        let gone: Vec<(String, u64)> = table
            .children(dir)
            .into_iter()
            .filter(|(p, ino)| {
                !names.contains(p.rsplit('/').next().unwrap_or(""))
                    && !open.contains(ino)
                    && table
                        .nodes
                        .get(ino)
                        .is_some_and(|n| !n.local && n.fetched < started)
            })
            .collect();
        for (path, ino) in gone {
            table.by_path.remove(&path);
            table.nodes.remove(&ino);
        }
    }

    /// Every key and common prefix under `prefix`, all pages in one.
    async fn list_all(&self, prefix: &str) -> Result<Listing, FsError> {
        let mut all = Listing {
            attributes: true,
            ..Listing::default()
        };
        let mut token: Option<String> = None;
        let reading = self.deletes.reading();
        loop {
            let mut page = self.store.list(prefix, token.as_deref(), LIST_PAGE).await?;
            reading.hide(&mut page.objects);
            reading.hide_prefixes(&mut page.prefixes);
            all.objects.extend(page.objects);
            all.prefixes.extend(page.prefixes);
            all.markers.extend(page.markers);
            all.attributes &= page.attributes;
            match page.next {
                Some(t) => token = Some(t),
                None => return Ok(all),
            }
        }
    }

    /// The keys under `prefix` as they were at `at`: for each key its newest
    /// version no later than `at`, unless that is a delete marker.
    async fn versions_at(
        &self,
        prefix: &str,
        at: SystemTime,
    ) -> Result<(Vec<(String, ObjectInfo)>, Vec<String>), FsError> {
        let mut newest: std::collections::BTreeMap<String, VersionEntry> = Default::default();
        let mut prefixes = Vec::new();
        let mut marker = None;
        loop {
            let page = self.store.list_versions(prefix, marker.as_ref()).await?;
            for v in page.versions {
                if v.info.mtime > at {
                    continue;
                }
                match newest.get(&v.key) {
                    Some(old) if old.info.mtime >= v.info.mtime => {}
                    _ => {
                        newest.insert(v.key.clone(), v);
                    }
                }
            }
            prefixes.extend(page.prefixes);
            match page.next {
                Some(m) => marker = Some(m),
                None => break,
            }
        }
        let objects = newest
            .into_values()
            .filter(|v| !v.delete_marker)
            .map(|v| (v.key, v.info))
            .collect();
        Ok((objects, prefixes))
    }

    async fn fetch_node_at(&self, path: &str, at: SystemTime) -> Result<Option<Node>, FsError> {
        let (objects, prefixes) = self.versions_at(path, at).await?;
        if let Some((key, info)) = objects.into_iter().find(|(k, _)| k == path) {
            let mut full = self
                .store
                .head(&key, info.version_id.as_deref())
                .await?
                .unwrap_or(info.clone());
            full.version_id = info.version_id;
            return Ok(Some(self.object_node(path, full, true)));
        }
        if prefixes.iter().any(|p| *p == dir_prefix(path)) {
            return Ok(Some(self.dir_node(path, None)));
        }
        Ok(None)
    }

    /// A new object's attributes, owned by the caller.
    fn new_posix(&self, kind_bits: u32, mode: u32, uid: u32, gid: u32) -> Posix {
        Posix::new(kind_bits, mode, uid, gid)
    }

    pub async fn mkdir(
        self: &Arc<Self>,
        parent: u64,
        name: &str,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<Attr, FsError> {
        self.writable()?;
        check_name(name)?;
        let dir = self.dir(parent)?;
        let path = join(&dir.path, name);
        if path.len() + 1 >= MAX_KEY {
            return Err(FsError::NameTooLong);
        }
        if self.lookup(parent, name).await.is_ok() {
            return Err(FsError::Exists);
        }
        let posix = self.new_posix(S_IFDIR, mode, uid, gid);
        // A directory of this name removed a moment ago must be gone first.
        self.deletes.settled_under(&dir_prefix(&path)).await;
        let attr = if self.write_back.is_some() {
            // Its marker is written in the background (`dir_writes.rs`);
            // until then it is local, like a file not yet committed.
            let attr = self.remember(Node {
                posix,
                local: true,
                ..self.dir_node(&path, None)
            });
            self.write_back_dir_attributes(attr.ino);
            attr
        } else {
            let info = self
                .store
                .put(&dir_prefix(&path), Bytes::new(), &posix.to_metadata())
                .await?;
            self.remember(Node {
                etag: info.etag,
                posix,
                ..self.dir_node(&path, None)
            })
        };
        self.touch_dir(parent);
        self.absence.listed(&path, Instant::now());
        Ok(attr)
    }

    /// A directory's entries changed: its mtime and ctime move (in memory;
    /// prefix directories have nowhere to keep them).
    fn touch_dir(&self, ino: u64) {
        let now = SystemTime::now();
        self.update(ino, |n| {
            n.posix.mtime = now;
            n.posix.ctime = now;
        });
    }

    pub async fn rmdir(&self, parent: u64, name: &str) -> Result<(), FsError> {
        self.writable()?;
        let attr = self.lookup(parent, name).await?;
        if attr.kind != Kind::Dir {
            return Err(FsError::NotDir);
        }
        // No attribute write of it (or below it) lands after its removal.
        let _removing = self.dir_moves.write().await;
        let node = self.node(attr.ino)?;
        let path = node.path;
        let prefix = dir_prefix(&path);
        let known_children = self.table.lock().unwrap().children(&path);
        // Listed as recently as attributes are trusted, with its marker
        // known (written, or still queued here): the table answers.
        let listed =
            self.absence.listed_within(&path, self.config.attr_ttl) && (node.local || !node.etag.is_empty());
        let has_marker = if listed {
            if !known_children.is_empty() {
                return Err(FsError::NotEmpty);
            }
            !node.local
        } else {
            // Children unlinked a moment ago may still be on their way out
            // of the store: they do not count, and the directory is hidden
            // until they are gone (see `deletes.rs`).
            let contents = self.dir_contents(&prefix).await?;
            let local_child = {
                let table = self.table.lock().unwrap();
                known_children
                    .iter()
                    .any(|(_, i)| table.nodes.get(i).is_some_and(|n| n.local))
            };
            if local_child || contents.children {
                return Err(FsError::NotEmpty);
            }
            contents.marker.is_some()
        };
        if has_marker {
            match self.write_back {
                Some(_) => self.deletes.delete(prefix.clone()),
                None => self.store.delete(&prefix).await?,
            }
        }
        self.deletes.remove_dir(&prefix);
        self.forget_path(&path);
        self.touch_dir(parent);
        Ok(())
    }

    pub async fn unlink(&self, parent: u64, name: &str) -> Result<(), FsError> {
        self.writable()?;
        let attr = self.lookup(parent, name).await?;
        if attr.kind == Kind::Dir {
            return Err(FsError::IsDir);
        }
        self.orphan(attr.ino).await?;
        // A commit (a write-back one, say) may have landed meanwhile.
        let node = self.node(attr.ino)?;
        if !node.local {
            if self.write_back.is_some() && !self.is_open(attr.ino) {
                self.deletes.delete(node.path.clone());
            } else {
                self.store.delete(&node.path).await?;
            }
        }
        if self.is_open(attr.ino) {
            // The inode lives on for its open handles, under no name.
            self.table.lock().unwrap().by_path.remove(&node.path);
            self.update(attr.ino, |n| {
                n.posix.ctime = SystemTime::now();
                n.unlinked = true;
            });
        } else {
            self.forget_path(&node.path);
        }
        self.touch_dir(parent);
        Ok(())
    }

    /// The file `ino` loses its name. If still open (by a handle, or by a
    /// queued write-back commit), its bytes stay local until the last close
    /// and it is never committed: its old name is gone or another file's.
    async fn orphan(&self, ino: u64) -> Result<(), FsError> {
        if let Some(file) = self.open_file(ino) {
            let node = self.node(ino)?;
            let mut file = file.lock().await;
            let writer = self.writer(&mut file, &node)?;
            writer.detach(&self.store).await?;
            writer.abandon(&self.store).await;
            file.orphan = true;
        }
        Ok(())
    }

    pub async fn symlink(
        &self,
        parent: u64,
        name: &str,
        target: &str,
        uid: u32,
        gid: u32,
    ) -> Result<Attr, FsError> {
        self.writable()?;
        check_name(name)?;
        let dir = self.dir(parent)?;
        let path = join(&dir.path, name);
        if path.len() >= MAX_KEY {
            return Err(FsError::NameTooLong);
        }
        if self.lookup(parent, name).await.is_ok() {
            return Err(FsError::Exists);
        }
        let posix = self.new_posix(S_IFLNK, 0o777, uid, gid);
        let body = Bytes::copy_from_slice(target.as_bytes());
        self.deletes.settled(&path).await;
        let info = self.store.put(&path, body, &posix.to_metadata()).await?;
        self.touch_dir(parent);
        Ok(self.remember(self.object_node(&path, info, true)))
    }

    pub async fn readlink(&self, ino: u64) -> Result<Bytes, FsError> {
        let node = self.node(ino)?;
        if node.kind != Kind::Symlink {
            return Err(FsError::Invalid);
        }
        self.cache
            .read(&self.store, &Self::source_of(&node), node.size, 0, node.size)
            .await
    }

    fn new_handle(&self, ino: u64, state: Shared<OpenFile>, writable: bool, append: bool) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let handle = Handle {
            ino,
            state,
            writable,
            append,
            readahead: Mutex::new(Readahead::default()),
        };
        self.handles.lock().unwrap().insert(fh, Arc::new(handle));
        fh
    }

    fn handle(&self, fh: u64) -> Result<Arc<Handle>, FsError> {
        self.handles
            .lock()
            .unwrap()
            .get(&fh)
            .cloned()
            .ok_or(FsError::BadHandle)
    }

    /// Counts one more user of the open-file state of `ino`, created on first open.
    fn acquire(&self, ino: u64) -> Shared<OpenFile> {
        let mut files = self.files.lock().unwrap();
        let opened = files.entry(ino).or_insert_with(|| Opened {
            handles: 0,
            state: Shared::default(),
        });
        opened.handles += 1;
        opened.state.clone()
    }

    /// Counts one user less; true when it was the last.
    fn unacquire(&self, ino: u64) -> bool {
        let mut files = self.files.lock().unwrap();
        let Some(opened) = files.get_mut(&ino) else {
            return false;
        };
        opened.handles -= 1;
        if opened.handles == 0 {
            files.remove(&ino);
            return true;
        }
        false
    }

    /// The writer of an open file, created over its committed object.
    fn writer<'f>(&self, file: &'f mut OpenFile, node: &Node) -> Result<&'f mut Writer, FsError> {
        if file.writer.is_none() {
            let base = (!node.local).then(|| Self::source_of(node));
            file.writer = Some(Writer::new(&self.config.cache_dir, &node.path, base, node.size)?);
        }
        Ok(file.writer.as_mut().expect("just set"))
    }

    /// Creates and opens a new empty file; it reaches the store on flush.
    #[allow(clippy::too_many_arguments)]
    pub async fn create(
        &self,
        parent: u64,
        name: &str,
        mode: u32,
        uid: u32,
        gid: u32,
        flags: i32,
    ) -> Result<(Attr, u64), FsError> {
        self.writable()?;
        check_name(name)?;
        let dir = self.dir(parent)?;
        let path = join(&dir.path, name);
        if path.len() >= MAX_KEY {
            return Err(FsError::NameTooLong);
        }
        if let Ok(existing) = self.lookup(parent, name).await {
            if flags & libc::O_EXCL != 0 {
                return Err(FsError::Exists);
            }
            let (fh, _) = self.open(existing.ino, flags).await?;
            return Ok((self.getattr(existing.ino).await?, fh));
        }
        let attr = self.remember(Node {
            path: path.clone(),
            kind: Kind::File,
            size: 0,
            posix: self.new_posix(S_IFREG, mode, uid, gid),
            loaded: true,
            etag: String::new(),
            version_id: None,
            fetched: Instant::now(),
            local: true,
            unlinked: false,
            cached_etag: String::new(),
        });
        let node = self.node(attr.ino)?;
        let state = self.acquire(attr.ino);
        let mut file = state.lock().await;
        if let Err(e) = self.writer(&mut file, &node) {
            drop(file);
            self.unacquire(attr.ino);
            return Err(e);
        }
        drop(file);
        self.touch_dir(parent);
        let append = flags & libc::O_APPEND != 0;
        let fh = self.new_handle(attr.ino, state, true, append);
        Ok((attr, fh))
    }

    /// Opens a file; also says whether the kernel may keep its cached pages.
    pub async fn open(&self, ino: u64, flags: i32) -> Result<(u64, bool), FsError> {
        let node = self.node(ino)?;
        if node.kind == Kind::Dir {
            return Err(FsError::IsDir);
        }
        let write = flags & libc::O_ACCMODE != libc::O_RDONLY;
        if write {
            self.writable()?;
        }
        let state = self.acquire(ino);
        let mut file = state.lock().await;
        if write && flags & libc::O_TRUNC != 0 {
            let truncated = match self.writer(&mut file, &node) {
                Ok(writer) => writer.resize(&self.store, 0).await,
                Err(e) => Err(e),
            };
            if let Err(e) = truncated {
                drop(file);
                self.unacquire(ino);
                return Err(e);
            }
            self.update(ino, |n| {
                n.size = 0;
                n.posix.mtime = SystemTime::now();
                n.posix.ctime = n.posix.mtime;
            });
        }
        drop(file);
        let keep_cache = !node.etag.is_empty() && node.cached_etag == node.etag;
        self.update(ino, |n| n.cached_etag = n.etag.clone());
        Ok((
            self.new_handle(ino, state, write, flags & libc::O_APPEND != 0),
            keep_cache,
        ))
    }

    pub async fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Bytes, FsError> {
        let handle = self.handle(fh)?;
        let mut file = handle.state.lock().await;
        if let Some(writer) = &mut file.writer {
            let base = writer.base().cloned();
            let mut out = BytesMut::new();
            for span in writer.read_spans(offset, size as u64).await? {
                match span {
                    Span::Local(data) => out.extend_from_slice(&data),
                    Span::Base(at, len) => {
                        let base = base.as_ref().ok_or(FsError::Io("no base object".into()))?;
                        let data = self.cache.read(&self.store, base, writer.size(), at, len).await?;
                        out.extend_from_slice(&data);
                    }
                }
            }
            return Ok(out.freeze());
        }
        drop(file);
        let node = self.node(handle.ino)?;
        let source = Self::source_of(&node);
        let len = (size as u64).min(node.size.saturating_sub(offset));
        let (prefetch, random) = {
            let mut readahead = handle.readahead.lock().unwrap();
            (readahead.advance(offset, len), readahead.is_random())
        };
        if let Some((from, n)) = prefetch {
            let (cache, store, source) = (self.cache.clone(), self.store.clone(), source.clone());
            let keep = cache.readahead_keep(node.size);
            tokio::spawn(async move { cache.prefetch(&store, &source, node.size, from, n, keep).await });
        }
        if random && offset > 0 && node.size >= RANDOM_READS_FROM {
            self.cache.fill_in_background(&self.store, &source, node.size);
            return self
                .cache
                .read_small(&self.store, &source, node.size, offset, len)
                .await;
        }
        self.cache
            .read(&self.store, &source, node.size, offset, len)
            .await
    }

    pub async fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<u32, FsError> {
        let handle = self.handle(fh)?;
        if !handle.writable {
            return Err(FsError::BadHandle);
        }
        let mut file = handle.state.lock().await;
        let node = self.node(handle.ino)?;
        let meta = node.posix.to_metadata();
        let writer = self.writer(&mut file, &node)?;
        let offset = if handle.append { writer.size() } else { offset };
        writer.write(&self.store, &meta, offset, data).await?;
        let size = writer.size();
        self.update(handle.ino, |n| {
            n.size = size;
            n.posix.mtime = SystemTime::now();
            n.posix.ctime = n.posix.mtime;
        });
        Ok(data.len() as u32)
    }

    /// Commits an open file's changes as a new version of its object
    /// (`background`: for a write-back, which nobody waits for).
    async fn commit(&self, ino: u64, file: &mut OpenFile, background: bool) -> Result<(), FsError> {
        if file.orphan {
            return Ok(());
        }
        let Some(writer) = file.writer.as_mut() else {
            return Ok(());
        };
        if !writer.dirty() {
            return Ok(());
        }
        let node = self.node(ino)?;
        // A delete of the same name, made before, lands first.
        self.deletes.settled(&node.path).await;
        let info = writer
            .commit(&self.store, &node.posix.to_metadata(), background)
            .await?;
        self.update(ino, |n| {
            n.local = false;
            n.size = info.size;
            n.etag = info.etag.clone();
            n.version_id = info.version_id.clone();
            n.cached_etag = info.etag.clone();
            n.fetched = Instant::now();
        });
        Ok(())
    }

    /// A close: commits the file's changes, or queues them in write-back mode.
    pub async fn flush(self: &Arc<Self>, fh: u64) -> Result<(), FsError> {
        let handle = self.handle(fh)?;
        if self.write_back.is_some() {
            self.queue_commit(handle.ino, &handle.state).await;
            return Ok(());
        }
        let mut file = handle.state.lock().await;
        self.commit(handle.ino, &mut file, false).await
    }

    /// Commits the file's changes before returning, in every mode.
    pub async fn fsync(&self, fh: u64) -> Result<(), FsError> {
        let handle = self.handle(fh)?;
        let mut file = handle.state.lock().await;
        self.commit(handle.ino, &mut file, false).await
    }

    pub async fn release(self: &Arc<Self>, fh: u64) -> Result<(), FsError> {
        let handle = self.handle(fh)?;
        self.handles.lock().unwrap().remove(&fh);
        if self.write_back.is_some() {
            // Writes through a mapping may come after the last flush.
            self.queue_commit(handle.ino, &handle.state).await;
        }
        let mut file = handle.state.lock().await;
        let result = match self.write_back {
            Some(_) => Ok(()),
            None => self.commit(handle.ino, &mut file, false).await,
        };
        let put = self.put_file(handle.ino, &mut file).await;
        result.and(put)
    }

    /// Drops one user of the open state of `ino`, whose lock the caller
    /// holds. The last user commits what is left (a truncate or chmod made
    /// while only a write-back held the file) and frees the staging file.
    async fn put_file(&self, ino: u64, file: &mut OpenFile) -> Result<(), FsError> {
        let last = self
            .files
            .lock()
            .unwrap()
            .get(&ino)
            .is_some_and(|o| o.handles == 1);
        let result = if last {
            self.commit(ino, file, false).await
        } else {
            Ok(())
        };
        if self.unacquire(ino) {
            if let Some(mut writer) = file.writer.take() {
                writer.abandon(&self.store).await;
            }
            if file.orphan {
                self.table.lock().unwrap().nodes.remove(&ino);
            }
        }
        result
    }

    /// Write-back: the file's commit runs in the background, holding the
    /// file open (so this mount keeps reading and listing what was written)
    /// until it is in the store. At most `write_back` run at once; a close
    /// waits here for a free one, which bounds the staged files.
    async fn queue_commit(self: &Arc<Self>, ino: u64, state: &Shared<OpenFile>) {
        let Some(slots) = self.write_back.clone() else {
            return;
        };
        {
            let mut file = state.lock().await;
            let dirty = file.writer.as_ref().is_some_and(Writer::dirty);
            if file.orphan || file.queued || !dirty {
                return;
            }
            file.queued = true;
        }
        let slot = slots
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        // The caller's handle keeps the state alive, so this is the same one.
        let pinned = self.acquire(ino);
        self.pending.send_modify(|n| *n += 1);
        let fs = self.clone();
        tokio::spawn(async move {
            fs.write_back(ino, pinned).await;
            drop(slot);
            fs.pending.send_modify(|n| *n -= 1);
        });
    }

    async fn write_back(&self, ino: u64, state: Shared<OpenFile>) {
        // Tools set times, mode and owner right after close (tar, cp -p,
        // rsync): let those land in the same commit.
        tokio::time::sleep(WRITE_BACK_DELAY).await;
        let mut file = state.lock().await;
        // Writes from here on need another commit, so another queueing.
        file.queued = false;
        let mut failed = None;
        for attempt in 0..=WRITE_BACK_RETRIES {
            match self.commit(ino, &mut file, true).await {
                Ok(()) => {
                    failed = None;
                    break;
                }
                Err(e) => {
                    tracing::warn!(ino, attempt, error = %e, "write-back commit failed");
                    failed = Some(e);
                    if attempt < WRITE_BACK_RETRIES {
                        tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
                    }
                }
            }
        }
        let path = self.node(ino).map(|n| n.path).unwrap_or_default();
        // The last user tries once more; any other user's close commits.
        if let (Some(e), Err(_)) = (failed, self.put_file(ino, &mut file).await) {
            tracing::error!(%path, error = %e, "write-back failed: the file's last changes are lost");
            self.lost.lock().unwrap().push(path);
        }
    }

    /// Queues a write of the marker of directory `ino` with its attributes.
    fn write_back_dir_attributes(self: &Arc<Self>, ino: u64) {
        if self.dir_writes.changed(ino) {
            self.pending.send_modify(|n| *n += 1);
            let fs = self.clone();
            tokio::spawn(async move { fs.write_back_dir(ino).await });
        }
    }

    /// Write-back of a directory's attributes: rewrites its marker with
    /// the attributes it has when the write starts, again if they change
    /// meanwhile (see `dir_writes.rs`).
    async fn write_back_dir(&self, ino: u64) {
        loop {
            tokio::time::sleep(WRITE_BACK_DELAY).await;
            let moves = self.dir_moves.read().await;
            self.dir_writes.writing(ino);
            // Gone: removed here, or by another client.
            if let Ok(node) = self.node(ino) {
                let (key, meta) = (dir_prefix(&node.path), node.posix.to_metadata());
                let mut failed = None;
                for attempt in 0..=WRITE_BACK_RETRIES {
                    match self.store.put_batched(&key, Bytes::new(), &meta).await {
                        Ok(info) => {
                            self.update(ino, |n| {
                                n.etag = info.etag;
                                n.version_id = None;
                                n.fetched = Instant::now();
                                n.local = false;
                            });
                            failed = None;
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(%key, attempt, error = %e, "directory attribute write failed");
                            failed = Some(e);
                            if attempt < WRITE_BACK_RETRIES {
                                tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
                            }
                        }
                    }
                }
                if let Some(e) = failed {
                    tracing::error!(%key, error = %e, "write-back failed: the directory's attributes are lost");
                    self.lost.lock().unwrap().push(node.path);
                }
            }
            drop(moves);
            if !self.dir_writes.written(ino) {
                break;
            }
        }
        self.pending.send_modify(|n| *n -= 1);
    }

    /// Waits for every queued write-back commit and delete (fsync of a
    /// directory, unmount); fails if one was given up since the last call.
    pub async fn sync_all(&self) -> Result<(), FsError> {
        let mut pending = self.pending.subscribe();
        let _ = pending.wait_for(|n| *n == 0).await;
        let undeleted = self.deletes.drain().await;
        let mut lost = std::mem::take(&mut *self.lost.lock().unwrap());
        lost.extend(undeleted.into_iter().map(|key| format!("{key} (delete)")));
        if lost.is_empty() {
            Ok(())
        } else {
            Err(FsError::Io(format!("write-back failed for {}", lost.join(", "))))
        }
    }

    /// Changes size, mode, owner or mtime; a new version carries the change.
    pub async fn setattr(self: &Arc<Self>, ino: u64, change: SetAttr) -> Result<Attr, FsError> {
        let mut node = self.node(ino)?;
        let now = SystemTime::now();
        let mut posix = node.posix.clone();
        if let Some(mode) = change.mode {
            posix.mode = (posix.mode & S_IFMT) | (mode & 0o7777);
        }
        posix.uid = change.uid.unwrap_or(posix.uid);
        posix.gid = change.gid.unwrap_or(posix.gid);
        if let Some(mtime) = change.mtime {
            posix.mtime = mtime;
        }
        if let Some(atime) = change.atime {
            posix.atime = atime;
        }
        if change.size.is_some() {
            posix.mtime = change.mtime.unwrap_or(now);
        }
        posix.ctime = now;
        if posix == node.posix && change.size.is_none() {
            return Ok(Self::attr_of(ino, &node));
        }
        self.writable()?;
        if let Some(size) = change.size {
            if node.kind == Kind::Dir {
                return Err(FsError::IsDir);
            }
            // Truncation goes through a writer; a path-only truncate
            // commits now (as the writer's last user).
            let state = self.acquire(ino);
            let mut file = state.lock().await;
            let result = async {
                let writer = self.writer(&mut file, &node)?;
                writer.resize(&self.store, size).await?;
                writer.touch_metadata();
                self.update(ino, |n| {
                    n.size = size;
                    n.posix = posix.clone();
                });
                Ok::<_, FsError>(())
            }
            .await;
            let put = self.put_file(ino, &mut file).await;
            result.and(put)?;
            return Ok(Self::attr_of(ino, &self.node(ino)?));
        }
        self.store_posix(ino, &mut node, posix).await?;
        Ok(Self::attr_of(ino, &node))
    }

    /// Makes `posix` the attributes of `ino`: in its writer if it has one,
    /// else at once with a metadata-only copy of its object (or marker).
    async fn store_posix(self: &Arc<Self>, ino: u64, node: &mut Node, posix: Posix) -> Result<(), FsError> {
        if let Some(state) = self.open_file(ino) {
            let mut file = state.lock().await;
            if let Some(writer) = file.writer.as_mut() {
                writer.touch_metadata();
                self.update(ino, |n| n.posix = posix.clone());
                node.posix = posix;
                return Ok(());
            }
            // A write-back commit held the lock and has landed meanwhile:
            // the node is no longer local, and has a new ETag.
            *node = self.node(ino)?;
        }
        node.posix = posix.clone();
        if node.kind == Kind::Dir && self.write_back.is_some() && ino != ROOT {
            self.update(ino, |n| n.posix = posix);
            self.write_back_dir_attributes(ino);
            return Ok(());
        }
        if node.local || ino == ROOT {
            self.update(ino, |n| n.posix = posix);
            return Ok(());
        }
        let meta = posix.to_metadata();
        let etag = match node.kind {
            Kind::Dir if node.etag.is_empty() => {
                self.store
                    .put(&dir_prefix(&node.path), Bytes::new(), &meta)
                    .await?
                    .etag
            }
            Kind::Dir => {
                let marker = Source {
                    key: dir_prefix(&node.path),
                    ..Source::default()
                };
                self.store.set_metadata(&marker, &meta).await?
            }
            _ => self.store.set_metadata(&Self::source_of(node), &meta).await?,
        };
        node.etag = etag.clone();
        node.version_id = None;
        // The copy is a new version: read it by key and ETag from now on.
        self.update(ino, |n| {
            n.posix = posix;
            n.etag = etag;
            n.version_id = None;
        });
        Ok(())
    }

    pub fn getxattr(&self, ino: u64, name: &str) -> Result<Vec<u8>, FsError> {
        self.node(ino)?
            .posix
            .xattrs
            .get(name)
            .cloned()
            .ok_or(FsError::NoXattr)
    }

    pub fn listxattr(&self, ino: u64) -> Result<Vec<u8>, FsError> {
        let mut out = Vec::new();
        for name in self.node(ino)?.posix.xattrs.keys() {
            out.extend_from_slice(name.as_bytes());
            out.push(0);
        }
        Ok(out)
    }

    /// Sets (`Some`) or removes (`None`) a `user.` extended attribute.
    pub async fn set_xattr(
        self: &Arc<Self>,
        ino: u64,
        name: &str,
        value: Option<&[u8]>,
        flags: i32,
    ) -> Result<(), FsError> {
        if !name.starts_with("user.") {
            return Err(FsError::NotSupported);
        }
        self.writable()?;
        let mut node = self.node(ino)?;
        let mut posix = node.posix.clone();
        let exists = posix.xattrs.contains_key(name);
        match value {
            Some(_) if flags & libc::XATTR_CREATE != 0 && exists => return Err(FsError::Exists),
            Some(_) if flags & libc::XATTR_REPLACE != 0 && !exists => return Err(FsError::NoXattr),
            Some(v) => {
                posix.xattrs.insert(name.to_string(), v.to_vec());
            }
            None if !exists => return Err(FsError::NoXattr),
            None => {
                posix.xattrs.remove(name);
            }
        }
        posix.ctime = SystemTime::now();
        self.store_posix(ino, &mut node, posix).await
    }

    /// Commits every open writer of `ino` so a rename moves committed data.
    async fn flush_inode(&self, ino: u64) -> Result<(), FsError> {
        if let Some(state) = self.open_file(ino) {
            let mut file = state.lock().await;
            self.commit(ino, &mut file, false).await?;
        }
        Ok(())
    }

    pub async fn rename(
        &self,
        parent: u64,
        name: &str,
        new_parent: u64,
        new_name: &str,
        no_replace: bool,
    ) -> Result<(), FsError> {
        self.writable()?;
        check_name(new_name)?;
        let attr = self.lookup(parent, name).await?;
        let from = self.node(attr.ino)?;
        let to_dir = self.dir(new_parent)?;
        let to = join(&to_dir.path, new_name);
        if to.len() + 1 >= MAX_KEY {
            return Err(FsError::NameTooLong);
        }
        if from.kind == Kind::Dir && (to == from.path || to.starts_with(&dir_prefix(&from.path))) {
            return Err(FsError::Invalid);
        }
        let mut replaced = None;
        if let Ok(existing) = self.lookup(new_parent, new_name).await {
            if no_replace {
                return Err(FsError::Exists);
            }
            if existing.ino == attr.ino {
                return Ok(());
            }
            match (from.kind == Kind::Dir, existing.kind == Kind::Dir) {
                (false, true) => return Err(FsError::IsDir),
                (true, false) => return Err(FsError::NotDir),
                (true, true) => self.rmdir(new_parent, new_name).await?,
                (false, false) => {
                    // The file replaced must not commit over its successor
                    // (a chmod of it may have queued a write-back commit).
                    self.orphan(existing.ino).await?;
                    replaced = Some(existing.ino).filter(|ino| self.is_open(*ino));
                }
            }
        }
        // Deleted names must not move along, nor come back over the new one.
        self.deletes.settled(&to).await;
        // No directory attribute write lands under the old name meanwhile.
        let _moving = match from.kind {
            Kind::Dir => Some(self.dir_moves.write().await),
            _ => None,
        };
        // Nor a commit of a file open under it (a write-back one, say): wait
        // for those in flight, and hold them until they know the new name.
        let mut held = HashMap::new();
        if from.kind == Kind::Dir {
            let inos: Vec<u64> = {
                let table = self.table.lock().unwrap();
                table.below(&from.path).into_iter().map(|(_, ino)| ino).collect()
            };
            for ino in inos {
                if let Some(state) = self.open_file(ino) {
                    held.insert(ino, state.lock_owned().await);
                }
            }
        }
        match from.kind {
            Kind::Dir => {
                self.deletes.settled_under(&dir_prefix(&from.path)).await;
                self.deletes.settled_under(&dir_prefix(&to)).await;
                let moved = self
                    .store
                    .rename(&dir_prefix(&from.path), &dir_prefix(&to), true, no_replace)
                    .await;
                match moved {
                    // Made here, its marker still queued: nothing stored yet.
                    Err(FsError::NotFound) if self.node(attr.ino)?.local => {}
                    moved => moved?,
                }
            }
            _ => {
                self.flush_inode(attr.ino).await?;
                let local = self.node(attr.ino)?.local;
                if !local {
                    self.store.rename(&from.path, &to, false, no_replace).await?;
                }
            }
        }
        // Listings below the old name no longer describe anything.
        self.absence.drop_tree(&from.path);
        self.absence.present(&to);
        // Re-path every known node under the old name.
        let moved: Vec<(String, u64)> = {
            let mut table = self.table.lock().unwrap();
            let mut moved = table.below(&from.path);
            if let Some(&ino) = table.by_path.get(&from.path) {
                moved.push((from.path.clone(), ino));
            }
            if let Some(old) = table.by_path.remove(&to) {
                match replaced {
                    // Open: it lives on for its handles, under no name.
                    Some(ino) if ino == old => {
                        if let Some(n) = table.nodes.get_mut(&old) {
                            n.unlinked = true;
                            n.posix.ctime = SystemTime::now();
                        }
                    }
                    _ => {
                        table.nodes.remove(&old);
                    }
                }
            }
            let now = SystemTime::now();
            let mut renamed = Vec::new();
            for (old_path, ino) in moved {
                let new_path = format!("{to}{}", &old_path[from.path.len()..]);
                table.by_path.remove(&old_path);
                table.by_path.insert(new_path.clone(), ino);
                if let Some(n) = table.nodes.get_mut(&ino) {
                    n.path = new_path.clone();
                    // The moved object is a new version of the new key with
                    // the same ETag: read it by key and ETag from now on.
                    n.version_id = None;
                    if ino == attr.ino {
                        n.posix.ctime = now;
                    }
                }
                renamed.push((new_path, ino));
            }
            renamed
        };
        for (path, ino) in moved {
            if let Some(file) = held.get_mut(&ino) {
                if let Some(writer) = file.writer.as_mut() {
                    writer.renamed(&path);
                }
            } else if let Some(state) = self.open_file(ino) {
                if let Some(writer) = state.lock().await.writer.as_mut() {
                    writer.renamed(&path);
                }
            }
        }
        self.touch_dir(parent);
        self.touch_dir(new_parent);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
