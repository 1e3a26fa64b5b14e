//! The filesystem core, independent of FUSE: an inode table over the bucket's
//! keys and the POSIX operations on it. The adapter in `fuse.rs` calls one
//! async method per kernel request and turns the result into a reply.
//!
//! Mapping: a file is an object; a directory is a key prefix, plus a `dir/`
//! marker object when created here (so empty directories exist). Open files
//! are buffered in memory and committed as a new object version on flush,
//! fsync and release (close-to-open consistency). Reads of files not open for
//! writing are ranged GETs.
//!
//! This first version keeps whole files being written in memory; streaming
//! multipart uploads, partial re-uploads, a chunk cache, POSIX attributes in
//! metadata, symlinks and xattrs are the next steps.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;

use crate::error::FsError;
use crate::s3::S3;

pub const ROOT: u64 = 1;
const MAX_NAME: usize = 255;
const LIST_PAGE: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

/// What the kernel is told about an inode.
#[derive(Debug, Clone)]
pub struct Attr {
    pub ino: u64,
    pub kind: Kind,
    pub size: u64,
    pub mtime: SystemTime,
}

/// A directory entry.
#[derive(Debug, Clone)]
pub struct DirEntry {
    pub name: String,
    pub attr: Attr,
}

#[derive(Debug, Clone)]
struct Node {
    /// Key of the file, or prefix of the directory without its trailing `/` ("" for the root).
    path: String,
    kind: Kind,
    size: u64,
    mtime: SystemTime,
    /// Created here and not yet written to the store.
    local: bool,
}

#[derive(Default)]
struct Table {
    nodes: HashMap<u64, Node>,
    by_path: HashMap<String, u64>,
}

struct Handle {
    ino: u64,
    /// The whole file, for handles open for writing.
    buffer: Option<Vec<u8>>,
    dirty: bool,
}

pub struct Fs {
    s3: S3,
    table: Mutex<Table>,
    handles: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<Handle>>>>,
    next_ino: AtomicU64,
    next_fh: AtomicU64,
    pub read_only: bool,
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn dir_prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    }
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

impl Fs {
    pub fn new(s3: S3, read_only: bool) -> Self {
        let mut table = Table::default();
        let root = Node {
            path: String::new(),
            kind: Kind::Dir,
            size: 0,
            mtime: SystemTime::now(),
            local: false,
        };
        table.nodes.insert(ROOT, root);
        table.by_path.insert(String::new(), ROOT);
        Self {
            s3,
            table: Mutex::new(table),
            handles: Mutex::new(HashMap::new()),
            next_ino: AtomicU64::new(ROOT + 1),
            next_fh: AtomicU64::new(1),
            read_only,
        }
    }

    fn writable(&self) -> Result<(), FsError> {
        if self.read_only {
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

    /// Records `node` at its path, reusing the inode already known for it.
    fn remember(&self, node: Node) -> Attr {
        let mut table = self.table.lock().unwrap();
        let ino = match table.by_path.get(&node.path) {
            Some(&ino) => ino,
            None => {
                let ino = self.next_ino.fetch_add(1, Ordering::Relaxed);
                table.by_path.insert(node.path.clone(), ino);
                ino
            }
        };
        let attr = Attr {
            ino,
            kind: node.kind,
            size: node.size,
            mtime: node.mtime,
        };
        table.nodes.insert(ino, node);
        attr
    }

    fn forget_path(&self, path: &str) {
        let mut table = self.table.lock().unwrap();
        if let Some(ino) = table.by_path.remove(path) {
            table.nodes.remove(&ino);
        }
    }

    fn attr_of(ino: u64, node: &Node) -> Attr {
        Attr {
            ino,
            kind: node.kind,
            size: node.size,
            mtime: node.mtime,
        }
    }

    pub async fn getattr(&self, ino: u64) -> Result<Attr, FsError> {
        Ok(Self::attr_of(ino, &self.node(ino)?))
    }

    pub async fn lookup(&self, parent: u64, name: &str) -> Result<Attr, FsError> {
        check_name(name)?;
        let dir = self.dir(parent)?;
        let path = join(&dir.path, name);
        if let Some(local) = {
            let table = self.table.lock().unwrap();
            table
                .by_path
                .get(&path)
                .and_then(|ino| table.nodes.get(ino))
                .filter(|n| n.local)
                .cloned()
        } {
            return Ok(self.remember(local));
        }
        if let Some(meta) = self.s3.head(&path).await? {
            let node = Node {
                path,
                kind: Kind::File,
                size: meta.size,
                mtime: meta.mtime,
                local: false,
            };
            return Ok(self.remember(node));
        }
        let listing = self.s3.list(&dir_prefix(&path), None, 1).await?;
        if !listing.objects.is_empty() || !listing.prefixes.is_empty() {
            let mtime = listing
                .objects
                .first()
                .map_or(SystemTime::UNIX_EPOCH, |(_, m)| m.mtime);
            let node = Node {
                path,
                kind: Kind::Dir,
                size: 0,
                mtime,
                local: false,
            };
            return Ok(self.remember(node));
        }
        self.forget_path(&path);
        Err(FsError::NotFound)
    }

    /// Every entry of a directory (without `.` and `..`).
    pub async fn readdir(&self, ino: u64) -> Result<Vec<DirEntry>, FsError> {
        let dir = self.dir(ino)?;
        let prefix = dir_prefix(&dir.path);
        let mut entries = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.s3.list(&prefix, token.as_deref(), LIST_PAGE).await?;
            for (key, meta) in page.objects {
                let name = &key[prefix.len()..];
                if name.is_empty() {
                    continue; // this directory's own marker
                }
                if name.len() > MAX_NAME {
                    tracing::warn!(%key, "skipping a key whose name is too long for a file name");
                    continue;
                }
                let node = Node {
                    path: key.clone(),
                    kind: Kind::File,
                    size: meta.size,
                    mtime: meta.mtime,
                    local: false,
                };
                entries.push(DirEntry {
                    name: name.to_string(),
                    attr: self.remember(node),
                });
            }
            for p in page.prefixes {
                let name = p[prefix.len()..].trim_end_matches('/');
                if name.is_empty() || name.contains('/') || name.len() > MAX_NAME {
                    tracing::warn!(prefix = %p, "skipping a prefix that is not a valid file name");
                    continue;
                }
                let path = p[..p.len() - 1].to_string();
                let node = Node {
                    path,
                    kind: Kind::Dir,
                    size: 0,
                    mtime: SystemTime::UNIX_EPOCH,
                    local: false,
                };
                entries.push(DirEntry {
                    name: name.to_string(),
                    attr: self.remember(node),
                });
            }
            match page.next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        // Files created here and not yet committed are listed too.
        let local: Vec<(u64, Node)> = {
            let table = self.table.lock().unwrap();
            table
                .nodes
                .iter()
                .filter(|(_, n)| n.local && n.path.rsplit_once('/').map_or("", |(d, _)| d) == dir.path)
                .map(|(i, n)| (*i, n.clone()))
                .collect()
        };
        for (ino, node) in local {
            let name = node.path.rsplit('/').next().unwrap_or("").to_string();
            if !entries.iter().any(|e| e.name == name) {
                entries.push(DirEntry {
                    name,
                    attr: Self::attr_of(ino, &node),
                });
            }
        }
        Ok(entries)
    }

    pub async fn mkdir(&self, parent: u64, name: &str) -> Result<Attr, FsError> {
        self.writable()?;
        check_name(name)?;
        let dir = self.dir(parent)?;
        let path = join(&dir.path, name);
        if self.lookup(parent, name).await.is_ok() {
            return Err(FsError::Exists);
        }
        self.s3
            .put(&dir_prefix(&path), Bytes::new(), &HashMap::new())
            .await?;
        Ok(self.remember(Node {
            path,
            kind: Kind::Dir,
            size: 0,
            mtime: SystemTime::now(),
            local: false,
        }))
    }

    pub async fn rmdir(&self, parent: u64, name: &str) -> Result<(), FsError> {
        self.writable()?;
        let attr = self.lookup(parent, name).await?;
        if attr.kind != Kind::Dir {
            return Err(FsError::NotDir);
        }
        let path = self.node(attr.ino)?.path;
        let prefix = dir_prefix(&path);
        let listing = self.s3.list(&prefix, None, 2).await?;
        if !listing.prefixes.is_empty() || listing.objects.iter().any(|(k, _)| *k != prefix) {
            return Err(FsError::NotEmpty);
        }
        self.s3.delete(&prefix).await?;
        self.forget_path(&path);
        Ok(())
    }

    pub async fn unlink(&self, parent: u64, name: &str) -> Result<(), FsError> {
        self.writable()?;
        let attr = self.lookup(parent, name).await?;
        if attr.kind == Kind::Dir {
            return Err(FsError::IsDir);
        }
        let node = self.node(attr.ino)?;
        if !node.local {
            self.s3.delete(&node.path).await?;
        }
        self.forget_path(&node.path);
        Ok(())
    }

    fn new_handle(&self, ino: u64, buffer: Option<Vec<u8>>, dirty: bool) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let handle = Handle { ino, buffer, dirty };
        self.handles
            .lock()
            .unwrap()
            .insert(fh, Arc::new(tokio::sync::Mutex::new(handle)));
        fh
    }

    fn handle(&self, fh: u64) -> Result<Arc<tokio::sync::Mutex<Handle>>, FsError> {
        self.handles
            .lock()
            .unwrap()
            .get(&fh)
            .cloned()
            .ok_or(FsError::BadHandle)
    }

    /// Creates an empty file, open for writing; it reaches the store on flush.
    pub async fn create(&self, parent: u64, name: &str, exclusive: bool) -> Result<(Attr, u64), FsError> {
        self.writable()?;
        check_name(name)?;
        let dir = self.dir(parent)?;
        if exclusive && self.lookup(parent, name).await.is_ok() {
            return Err(FsError::Exists);
        }
        let path = join(&dir.path, name);
        let attr = self.remember(Node {
            path,
            kind: Kind::File,
            size: 0,
            mtime: SystemTime::now(),
            local: true,
        });
        let fh = self.new_handle(attr.ino, Some(Vec::new()), true);
        Ok((attr, fh))
    }

    pub async fn open(&self, ino: u64, write: bool, truncate: bool) -> Result<u64, FsError> {
        let node = self.node(ino)?;
        if node.kind == Kind::Dir {
            return Err(FsError::IsDir);
        }
        if !write {
            return Ok(self.new_handle(ino, None, false));
        }
        self.writable()?;
        let buffer = if truncate || node.local {
            Vec::new()
        } else {
            self.s3.get_range(&node.path, 0, node.size).await?.to_vec()
        };
        Ok(self.new_handle(ino, Some(buffer), truncate))
    }

    pub async fn read(&self, ino: u64, fh: u64, offset: u64, size: u32) -> Result<Bytes, FsError> {
        let handle = self.handle(fh)?;
        let handle = handle.lock().await;
        if let Some(buffer) = &handle.buffer {
            let start = (offset as usize).min(buffer.len());
            let end = (start + size as usize).min(buffer.len());
            return Ok(Bytes::copy_from_slice(&buffer[start..end]));
        }
        let node = self.node(ino)?;
        let len = (size as u64).min(node.size.saturating_sub(offset));
        self.s3.get_range(&node.path, offset, len).await
    }

    pub async fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<u32, FsError> {
        let handle = self.handle(fh)?;
        let mut handle = handle.lock().await;
        let ino = handle.ino;
        let buffer = handle.buffer.as_mut().ok_or(FsError::BadHandle)?;
        let end = offset as usize + data.len();
        if buffer.len() < end {
            buffer.resize(end, 0);
        }
        buffer[offset as usize..end].copy_from_slice(data);
        let size = buffer.len() as u64;
        handle.dirty = true;
        drop(handle);
        self.update(ino, |n| {
            n.size = size;
            n.mtime = SystemTime::now();
        });
        Ok(data.len() as u32)
    }

    fn update(&self, ino: u64, f: impl FnOnce(&mut Node)) {
        if let Some(node) = self.table.lock().unwrap().nodes.get_mut(&ino) {
            f(node);
        }
    }

    /// Commits a dirty handle's buffer as a new version of its object.
    pub async fn flush(&self, fh: u64) -> Result<(), FsError> {
        let handle = self.handle(fh)?;
        let mut handle = handle.lock().await;
        if !handle.dirty {
            return Ok(());
        }
        let node = self.node(handle.ino)?;
        let body = Bytes::copy_from_slice(handle.buffer.as_deref().unwrap_or_default());
        let meta = self.s3.put(&node.path, body, &HashMap::new()).await?;
        handle.dirty = false;
        let ino = handle.ino;
        drop(handle);
        self.update(ino, |n| {
            n.local = false;
            n.size = meta.size;
            n.mtime = meta.mtime;
        });
        Ok(())
    }

    pub async fn release(&self, fh: u64) -> Result<(), FsError> {
        let result = self.flush(fh).await;
        self.handles.lock().unwrap().remove(&fh);
        result
    }

    /// Changes the size (truncate/extend); other attributes are not stored yet.
    pub async fn setattr(&self, ino: u64, size: Option<u64>, fh: Option<u64>) -> Result<Attr, FsError> {
        if let Some(size) = size {
            self.writable()?;
            match fh.and_then(|fh| self.handle(fh).ok()) {
                Some(handle) => {
                    let mut handle = handle.lock().await;
                    if let Some(buffer) = handle.buffer.as_mut() {
                        buffer.resize(size as usize, 0);
                        handle.dirty = true;
                    }
                }
                None => {
                    let node = self.node(ino)?;
                    let mut data = self
                        .s3
                        .get_range(&node.path, 0, node.size.min(size))
                        .await?
                        .to_vec();
                    data.resize(size as usize, 0);
                    self.s3
                        .put(&node.path, Bytes::from(data), &HashMap::new())
                        .await?;
                }
            }
            self.update(ino, |n| {
                n.size = size;
                n.mtime = SystemTime::now();
            });
        }
        self.getattr(ino).await
    }

    /// Flushes every dirty handle of `ino` so a rename moves committed data.
    async fn flush_inode(&self, ino: u64) -> Result<(), FsError> {
        let fhs: Vec<u64> = {
            let handles = self.handles.lock().unwrap();
            handles
                .iter()
                .filter(|(_, h)| h.try_lock().map_or(true, |h| h.ino == ino))
                .map(|(fh, _)| *fh)
                .collect()
        };
        for fh in fhs {
            self.flush(fh).await?;
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
        if let Ok(existing) = self.lookup(new_parent, new_name).await {
            if no_replace {
                return Err(FsError::Exists);
            }
            match (from.kind, existing.kind) {
                (Kind::File, Kind::Dir) => return Err(FsError::IsDir),
                (Kind::Dir, Kind::File) => return Err(FsError::NotDir),
                (Kind::Dir, Kind::Dir) => self.rmdir(new_parent, new_name).await?,
                (Kind::File, Kind::File) => {}
            }
        }
        match from.kind {
            Kind::File => {
                self.flush_inode(attr.ino).await?;
                self.s3.rename(&from.path, &to, false, no_replace).await?;
            }
            Kind::Dir => {
                self.s3
                    .rename(&dir_prefix(&from.path), &dir_prefix(&to), true, no_replace)
                    .await?;
            }
        }
        // Re-path every known node under the old name.
        let mut table = self.table.lock().unwrap();
        let moved: Vec<(String, u64)> = table
            .by_path
            .iter()
            .filter(|(p, _)| **p == from.path || p.starts_with(&dir_prefix(&from.path)))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        if let Some(old) = table.by_path.remove(&to) {
            table.nodes.remove(&old);
        }
        for (old_path, ino) in moved {
            let new_path = format!("{to}{}", &old_path[from.path.len()..]);
            table.by_path.remove(&old_path);
            table.by_path.insert(new_path.clone(), ino);
            if let Some(n) = table.nodes.get_mut(&ino) {
                n.path = new_path;
            }
        }
        Ok(())
    }
}
