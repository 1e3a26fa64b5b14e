//! Attributes: lookups and stats (answered from the inode table while
//! fresh), mode, owner, times, size and extended attributes.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use super::table::Node;
use super::{Attr, Fs, Kind, SetAttr, ROOT};
use crate::attrs::{Posix, S_IFMT};
use crate::error::FsError;
use crate::names::{check_name, dir_prefix, join, MAX_KEY};
use crate::store::Source;

impl Fs {
    /// `ino`'s attributes as this mount knows them, without asking the store.
    pub fn known_attr(&self, ino: u64) -> Result<Attr, FsError> {
        Ok(self.attr_of(ino, &self.node(ino)?))
    }

    pub async fn getattr(&self, ino: u64) -> Result<Attr, FsError> {
        let node = self.node(ino)?;
        let stale = !node.loaded || node.fetched.elapsed() >= self.config.attr_ttl;
        if ino == ROOT || node.local || !stale || self.is_open(ino) || self.dir_writes.is_pending(ino) {
            return Ok(self.attr_of(ino, &node));
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
            // An open file's own name shows its open state; a hard-linked
            // one's other names are asked about (one may have left the group).
            Some((ino, node))
                if node.local
                    || (self.is_open(*ino) && (node.group.is_none() || node.path == path))
                    || self.dir_writes.is_pending(*ino) =>
            {
                return Ok(self.attr_of(*ino, node));
            }
            // Fetched as recently as the kernel's own cache would trust it:
            // unlink, rename and create right after the kernel's lookup.
            Some((ino, node)) if node.loaded && node.fetched.elapsed() < self.config.attr_ttl => {
                return Ok(self.attr_of(*ino, node));
            }
            // (No listing shows the history directory: it is never absent.)
            None if !super::history::is_virtual(&path)
                && (self.absence.is_absent(&dir.path, &path) || self.deletes.is_deleting(&path)) =>
            {
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
            return Ok(self.attr_of(ino, &node));
        }
        self.writable(&[ino])?;
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
                // A close still queued is journaled at its new size.
                if file.journaled.is_some() && !self.journal_file(ino, &mut file).await? {
                    self.commit(ino, &mut file, false).await?;
                }
                Ok::<_, FsError>(())
            }
            .await;
            let put = self.put_file(ino, &mut file).await;
            result.and(put)?;
            return Ok(self.attr_of(ino, &self.node(ino)?));
        }
        self.store_posix(ino, &mut node, posix).await?;
        Ok(self.attr_of(ino, &node))
    }

    /// Makes `posix` the attributes of `ino`: in its writer if it has one,
    /// else at once with a metadata-only copy of its object (or marker).
    pub(super) async fn store_posix(
        self: &Arc<Self>,
        ino: u64,
        node: &mut Node,
        posix: Posix,
    ) -> Result<(), FsError> {
        if let Some(state) = self.open_file(ino) {
            let mut file = state.lock().await;
            if let Some(writer) = file.writer.as_mut() {
                writer.touch_metadata();
                if file.journaled.is_some() {
                    let (key, meta) = (node.path.clone(), posix.to_metadata());
                    self.journal_note(crate::journal::Record::Meta { key, meta });
                }
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
        self.writable(&[ino])?;
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
}
