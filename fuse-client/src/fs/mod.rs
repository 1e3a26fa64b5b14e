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
mod allocate;
mod attributes;
mod changes;
mod copy;
mod files;
mod handles;
mod history;
mod links;
mod listing;
mod locks;
mod namespace;
mod table;
mod write_back;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::absence::Absence;
use crate::attrs::{Posix, S_IFDIR, S_IFREG};
use crate::cache::BlockCache;
use crate::deletes::Deletes;
use crate::dir_writes::DirWrites;
use crate::disk_cache::Lifetime;
use crate::error::FsError;
use crate::journal::Journal;
use crate::scan::Scans;
use crate::store::{ObjectInfo, Source, Store};
use crate::tree::BigTrees;
use handles::{Handle, OpenFile, Opened, Shared};
pub use table::Kind;
use table::{Node, Table};

pub const ROOT: u64 = 1;

/// What the kernel is told about an inode.
#[derive(Debug, Clone)]
pub struct Attr {
    pub ino: u64,
    pub kind: Kind,
    pub size: u64,
    pub posix: Posix,
    /// 0 once unlinked (still open), else its number of names (hard links);
    /// 2 for directories (subdirectories are not counted: that would take a
    /// listing per stat).
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
    /// Names the disk cache kept across mounts (one per endpoint and
    /// bucket); `None`: a private one, emptied at the end.
    pub disk_cache_name: Option<String>,
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
    /// What write-back closes still owe the store, kept across a crash of
    /// the daemon (`None`: not kept; the mount sets one up).
    journal: Option<Arc<Journal>>,
    /// Files whose write-back failed for good since the last `sync_all`.
    lost: Mutex<Vec<String>>,
    /// Deletes still on their way to the store (write-back mode).
    deletes: Arc<Deletes>,
    /// Directories whose attributes are being written back.
    dir_writes: DirWrites,
    /// Held for reading by a directory attribute write, for writing by a
    /// directory rename or removal (see `dir_writes.rs`).
    dir_moves: tokio::sync::RwLock<()>,
    /// This mount's locks between mounts.
    locks: Arc<crate::file_locks::Locks>,
    /// Where this mount stands in the store's change feed.
    feed: tokio::sync::Mutex<changes::FeedCursor>,
    /// The kernel's caches, once the FUSE session runs.
    kernel: std::sync::OnceLock<Arc<dyn KernelCache>>,
}

/// What the core asks of the kernel's caches (the FUSE adapter's notifier).
pub trait KernelCache: Send + Sync {
    /// Drops an inode's cached attributes and pages.
    fn invalidate_inode(&self, ino: u64);
    /// Drops the kernel's entry (or negative entry) for `name` in `parent`.
    fn invalidate_entry(&self, parent: u64, name: &str);
}

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

impl Fs {
    pub fn new(store: Store, config: Config) -> std::io::Result<Self> {
        let mut table = Table::default();
        let root = Node::new(
            String::new(),
            Kind::Dir,
            Posix::new(S_IFDIR, 0o755, config.uid, config.gid),
        );
        table.nodes.insert(ROOT, root);
        table.by_path.insert(String::new(), ROOT);
        let mut cache = BlockCache::new(config.cache_bytes);
        if config.disk_cache_bytes > 0 {
            // Kept for the next mount of the same bucket when it has a name.
            let (name, lifetime) = match &config.disk_cache_name {
                Some(name) => (name.clone(), Lifetime::Persistent),
                None => (std::process::id().to_string(), Lifetime::Private),
            };
            let dir = config.cache_dir.join(format!("bucketfs-blocks-{name}"));
            cache = cache.with_disk(&dir, config.disk_cache_bytes, lifetime)?;
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
            journal: None,
            lost: Mutex::new(Vec::new()),
            dir_writes: DirWrites::default(),
            dir_moves: tokio::sync::RwLock::new(()),
            locks: Arc::default(),
            feed: Default::default(),
            kernel: std::sync::OnceLock::new(),
        })
    }

    /// Keeps what write-back closes owe the store in `journal` too.
    pub fn with_journal(mut self, journal: Arc<Journal>) -> Self {
        self.deletes.set_journal(journal.clone());
        self.journal = Some(journal);
        self
    }

    /// Connects the core to the kernel's caches.
    pub fn set_kernel_cache(&self, kernel: Arc<dyn KernelCache>) {
        let _ = self.kernel.set(kernel);
    }

    /// Drops what the kernel caches of `ino` (off this thread: the kernel
    /// may wait for reads this daemon is serving).
    async fn invalidate_kernel(&self, ino: u64) {
        if let Some(kernel) = self.kernel.get().cloned() {
            let _ = tokio::task::spawn_blocking(move || kernel.invalidate_inode(ino)).await;
        }
    }

    /// Gives this mount's locks up (at unmount); failures are only logged.
    pub async fn release_locks(&self) {
        if let Err(e) = self.store.renew_locks(&self.locks.session, true).await {
            tracing::debug!(error = %e, "could not release this mount's locks; their lease ends them");
        }
    }

    /// Whether a change to the nodes `inos` may be made: not on a
    /// read-only or past view, nor in the history directory.
    fn writable(&self, inos: &[u64]) -> Result<(), FsError> {
        if self.config.read_only || self.config.at.is_some() {
            return Err(FsError::ReadOnly);
        }
        let table = self.table.lock().unwrap();
        match inos
            .iter()
            .any(|ino| table.nodes.get(ino).is_some_and(|n| history::is_virtual(&n.path)))
        {
            true => Err(FsError::ReadOnly),
            false => Ok(()),
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

    /// [`Self::remember`] for a node a listing sent at `started` showed.
    fn remember_listed(&self, mut node: Node, started: Instant) -> Attr {
        node.fetched = started;
        self.remember(node)
    }

    /// Records `node` at its path, reusing the inode already known for it,
    /// or for its link group (one inode for all names of a hard-linked
    /// file). What an open file, a fuller earlier fetch or anything learnt
    /// after `node` was fetched (a commit while a listing was on its way,
    /// say) knows is kept.
    fn remember(&self, node: Node) -> Attr {
        self.absence.present(&node.path);
        let target = {
            let table = self.table.lock().unwrap();
            let known = table.by_path.get(&node.path).copied();
            table.of_group(node.group).or(known)
        };
        let open = target.is_some_and(|ino| self.is_open(ino) || self.dir_writes.is_pending(ino));
        let mut table = self.table.lock().unwrap();
        let known = table.by_path.get(&node.path).copied();
        // A name that left its link group is a file of its own again.
        let left = known.is_some_and(|ino| {
            table
                .nodes
                .get(&ino)
                .is_some_and(|n| n.group.is_some() && n.group != node.group)
        });
        let ino = match (table.of_group(node.group), known) {
            (Some(ino), _) => ino,
            (None, Some(ino)) if !left => ino,
            (None, Some(ino)) => match table.unbind(&node.path) {
                Some((_, true)) => self.next_ino.fetch_add(1, Ordering::Relaxed),
                _ => ino,
            },
            (None, None) => self.next_ino.fetch_add(1, Ordering::Relaxed),
        };
        if table.by_path.get(&node.path) != Some(&ino) {
            table.unbind(&node.path);
            table.by_path.insert(node.path.clone(), ino);
        }
        let keep = table.nodes.get(&ino).is_some_and(|old| {
            open || old.local
                || old.fetched > node.fetched
                || (!node.loaded && old.loaded && old.etag == node.etag)
        });
        let name = node.path.clone();
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
        // Both the name remembered and the node's key, when they differ
        // (names of one hard-linked file).
        let key = table.nodes[&ino].path.clone();
        table.bind(&key, ino);
        table.bind(&name, ino);
        Self::attr_in(&table, ino, &table.nodes[&ino])
    }

    /// `path` is gone (the store said so, or this mount removed it).
    fn forget_path(&self, path: &str) {
        {
            let mut table = self.table.lock().unwrap();
            match table.unbind(path) {
                // One name of a hard-linked file: it lives on under the others.
                Some((ino, true)) => {
                    if let Some(n) = table.nodes.get_mut(&ino) {
                        n.links = n.links.saturating_sub(1).max(1);
                    }
                }
                Some((ino, false)) => table.drop_node(ino),
                None => {}
            }
        }
        self.absence.drop_tree(path);
        self.absence.missing(path);
    }

    /// `ino`'s attributes (see `attr_in`); only a directory's need the table.
    fn attr_of(&self, ino: u64, node: &Node) -> Attr {
        let subdirs = match node.kind {
            Kind::Dir => self.table.lock().unwrap().subdirs(&node.path),
            _ => 0,
        };
        Self::attr_with(ino, node, subdirs)
    }

    /// `ino`'s attributes, the table held. A directory's link count is 2
    /// and one per subdirectory known here: all of them once listed (or
    /// made) here, a lower bound before.
    fn attr_in(table: &Table, ino: u64, node: &Node) -> Attr {
        let subdirs = match node.kind {
            Kind::Dir => table.subdirs(&node.path),
            _ => 0,
        };
        Self::attr_with(ino, node, subdirs)
    }

    fn attr_with(ino: u64, node: &Node, subdirs: u32) -> Attr {
        Attr {
            ino,
            kind: node.kind,
            size: node.size,
            posix: node.posix.clone(),
            nlink: match (node.kind, node.unlinked) {
                (Kind::Dir, _) => 2 + subdirs,
                (_, true) => 0,
                (_, false) => node.links.max(1),
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
        let (group, links) = match info.links {
            Some((group, count)) => (Some(group), count.max(1)),
            None => (None, 1),
        };
        Node {
            size: info.size,
            loaded,
            etag: info.etag,
            version_id: info.version_id,
            group,
            links,
            ..Node::new(path.to_string(), Kind::of_mode(posix.mode), posix)
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
            etag: marker.map(|m| m.etag).unwrap_or_default(),
            ..Node::new(path.to_string(), Kind::Dir, posix)
        }
    }

    fn source_of(node: &Node) -> Source {
        Source {
            key: node.source.clone().unwrap_or_else(|| node.path.clone()),
            version_id: node.version_id.clone(),
            etag: node.etag.clone(),
        }
    }

    /// A new object's attributes, owned by the caller.
    fn new_posix(&self, kind_bits: u32, mode: u32, uid: u32, gid: u32) -> Posix {
        Posix::new(kind_bits, mode, uid, gid)
    }
}
