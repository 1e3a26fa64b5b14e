//! The namespace: making, removing and renaming names (files, directories,
//! symlinks, fifos, sockets and devices), and the directory times they change.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;

use super::table::Node;
use super::{Attr, Fs, Kind};
use crate::attrs::{Posix, S_IFDIR, S_IFLNK, S_IFMT};
use crate::error::FsError;
use crate::journal::Record;
use crate::names::{check_name, dir_prefix, join, MAX_KEY};

impl Fs {
    pub async fn mkdir(
        self: &Arc<Self>,
        parent: u64,
        name: &str,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<Attr, FsError> {
        self.writable(&[parent])?;
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
    pub(super) fn touch_dir(&self, ino: u64) {
        let now = SystemTime::now();
        self.update(ino, |n| {
            n.posix.mtime = now;
            n.posix.ctime = now;
        });
    }

    pub async fn rmdir(&self, parent: u64, name: &str) -> Result<(), FsError> {
        self.writable(&[parent])?;
        let attr = self.lookup(parent, name).await?;
        if attr.kind != Kind::Dir {
            return Err(FsError::NotDir);
        }
        // No attribute write of it (or below it) lands after its removal.
        let _removing = self.dir_moves.write().await;
        let node = self.node(attr.ino)?;
        let path = node.path;
        let prefix = dir_prefix(&path);
        let _deleting = self.deletes.removing(&prefix);
        let known_children = self.table.lock().unwrap().children(&path);
        // Listed as recently as attributes are trusted, with its marker
        // known (written, or still queued here): the table answers.
        let listed =
            self.absence.listed_within(&path, self.config.attr_ttl) && (node.local || !node.etag.is_empty());
        // The ETag of its marker, if it has one in the store.
        let marker = if listed {
            if !known_children.is_empty() {
                return Err(FsError::NotEmpty);
            }
            (!node.local).then(|| node.etag.clone())
        } else {
            // Local children are looked at before the listing: one whose
            // write-back commit lands between the two is then in the one
            // or the other, never in neither.
            let local_child = {
                let table = self.table.lock().unwrap();
                known_children
                    .iter()
                    .any(|(_, i)| table.nodes.get(i).is_some_and(|n| n.local))
            };
            if local_child {
                return Err(FsError::NotEmpty);
            }
            // Children unlinked a moment ago may still be on their way out
            // of the store: they do not count, and the directory is hidden
            // until they are gone (see `deletes.rs`).
            let contents = self.dir_contents(&prefix).await?;
            if contents.children {
                return Err(FsError::NotEmpty);
            }
            contents.marker.map(|m| m.etag)
        };
        match (marker, &self.write_back) {
            (Some(etag), Some(_)) => {
                self.deletes.delete(prefix.clone(), Some(etag));
            }
            (Some(_), None) => self.store.delete(&prefix).await?,
            // Its marker may still be owed: no longer.
            (None, _) => self.journal_forget(&prefix),
        }
        self.deletes.removed(&prefix);
        self.deletes.remove_dir(&prefix);
        self.forget_path(&path);
        self.touch_dir(parent);
        Ok(())
    }

    pub async fn unlink(&self, parent: u64, name: &str) -> Result<(), FsError> {
        self.writable(&[parent])?;
        let attr = self.lookup(parent, name).await?;
        if attr.kind == Kind::Dir {
            return Err(FsError::IsDir);
        }
        let path = join(&self.dir(parent)?.path, name);
        let _deleting = self.deletes.removing(&path);
        if self.is_open(attr.ino) && self.node(attr.ino)?.links > 1 && !self.has_other_name(attr.ino, &path) {
            // Its later writes must go to another name: learn them.
            self.learn_names(attr.ino).await?;
        }
        if self.has_other_name(attr.ino, &path) {
            return self.unlink_name(parent, attr.ino, &path).await;
        }
        self.orphan(attr.ino).await?;
        // A commit (a write-back one, say) may have landed meanwhile.
        let node = self.node(attr.ino)?;
        if !node.local {
            // A name of a linked file goes at once, so that the others'
            // link count is right when they are next fetched.
            if self.write_back.is_some() && !self.is_open(attr.ino) && node.links <= 1 {
                self.deletes.delete(node.path.clone(), Some(node.etag.clone()));
            } else {
                self.store.delete(&node.path).await?;
                self.deletes.removed(&node.path);
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
    pub(super) async fn orphan(&self, ino: u64) -> Result<(), FsError> {
        if let Some(file) = self.open_file(ino) {
            let node = self.node(ino)?;
            let mut file = file.lock().await;
            let writer = self.writer(&mut file, &node)?;
            writer.detach(&self.store).await?;
            writer.abandon(&self.store).await;
            file.orphan = true;
            // Never to be committed: the journal owes its old name nothing
            // more than a delete of it still on its way, which lands first.
            if file.journaled.take().is_some() {
                self.deletes.settled(&node.path).await;
                self.journal_forget(&node.path);
            }
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
        let posix = self.new_posix(S_IFLNK, 0o777, uid, gid);
        let body = Bytes::copy_from_slice(target.as_bytes());
        self.make_object(parent, name, posix, body).await
    }

    /// A fifo, unix socket or device (`mode`'s type bits say which): an
    /// empty object with its mode and `rdev` in metadata, as s3fs makes them.
    pub async fn mknod(
        &self,
        parent: u64,
        name: &str,
        mode: u32,
        rdev: u32,
        uid: u32,
        gid: u32,
    ) -> Result<Attr, FsError> {
        let kind = Kind::of_mode(mode);
        if !kind.is_special() {
            return Err(FsError::Invalid);
        }
        let mut posix = self.new_posix(mode & S_IFMT, mode, uid, gid);
        if matches!(kind, Kind::CharDevice | Kind::BlockDevice) {
            posix.rdev = rdev;
        }
        self.make_object(parent, name, posix, Bytes::new()).await
    }

    /// Makes `name` in `parent` at once: an object of `body` with `posix`.
    async fn make_object(&self, parent: u64, name: &str, posix: Posix, body: Bytes) -> Result<Attr, FsError> {
        self.writable(&[parent])?;
        check_name(name)?;
        let dir = self.dir(parent)?;
        let path = join(&dir.path, name);
        if path.len() >= MAX_KEY {
            return Err(FsError::NameTooLong);
        }
        if self.lookup(parent, name).await.is_ok() {
            return Err(FsError::Exists);
        }
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

    /// Commits every open writer of `ino` so a rename moves committed data.
    pub(super) async fn flush_inode(&self, ino: u64) -> Result<(), FsError> {
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
        self.writable(&[parent, new_parent])?;
        check_name(new_name)?;
        let attr = self.lookup(parent, name).await?;
        let from = self.node(attr.ino)?;
        // The name moved (a hard-linked file's key may be another name).
        let from_path = join(&self.dir(parent)?.path, name);
        let to_dir = self.dir(new_parent)?;
        let to = join(&to_dir.path, new_name);
        super::history::refuse_new(&to)?;
        if to.len() + 1 >= MAX_KEY {
            return Err(FsError::NameTooLong);
        }
        if from.kind == Kind::Dir && (to == from_path || to.starts_with(&dir_prefix(&from_path))) {
            return Err(FsError::Invalid);
        }
        let mut replaced = None;
        // A hard-linked file replaced: it keeps its other names.
        let mut relinked = None;
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
                // A hard-linked file replaced lives on under its other names.
                (false, false) if self.has_other_name(existing.ino, &to) => relinked = Some(existing.ino),
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
            // Once each: names of one hard-linked file are one inode.
            let inos: std::collections::BTreeSet<u64> = {
                let table = self.table.lock().unwrap();
                table.below(&from_path).into_iter().map(|(_, ino)| ino).collect()
            };
            for ino in inos {
                if let Some(state) = self.open_file(ino) {
                    held.insert(ino, state.lock_owned().await);
                }
            }
        }
        // Nor one of the replaced linked file under the name it loses.
        if let Some(ino) = relinked.filter(|ino| !held.contains_key(ino)) {
            if let Some(state) = self.open_file(ino) {
                held.insert(ino, state.lock_owned().await);
            }
        }
        let _deleting = self.deletes.removing(&match from.kind {
            Kind::Dir => dir_prefix(&from_path),
            _ => from_path.clone(),
        });
        match from.kind {
            Kind::Dir => {
                self.deletes.settled_under(&dir_prefix(&from_path)).await;
                self.deletes.settled_under(&dir_prefix(&to)).await;
                let moved = self
                    .store
                    .rename(&dir_prefix(&from_path), &dir_prefix(&to), true, no_replace)
                    .await;
                match moved {
                    // Made here, its marker still queued: nothing stored yet.
                    Err(FsError::NotFound) if self.node(attr.ino)?.local => {}
                    moved => moved?,
                }
                self.journal_note(Record::Moved {
                    from: dir_prefix(&from_path),
                    to: dir_prefix(&to),
                });
                self.deletes.removed(&dir_prefix(&from_path));
            }
            _ => {
                self.flush_inode(attr.ino).await?;
                let local = self.node(attr.ino)?.local;
                if !local {
                    self.store.rename(&from_path, &to, false, no_replace).await?;
                    self.deletes.removed(&from_path);
                }
            }
        }
        // Listings below the old name no longer describe anything.
        self.absence.drop_tree(&from_path);
        self.absence.present(&to);
        // Re-path every known node under the old name.
        let moved: Vec<(String, u64)> = {
            let mut table = self.table.lock().unwrap();
            let mut moved = table.below(&from_path);
            if let Some(&ino) = table.by_path.get(&from_path) {
                moved.push((from_path.clone(), ino));
            }
            let mut renamed = Vec::new();
            match table.unbind(&to) {
                // Linked: it lives on under its other names, its writes
                // going to one of them.
                Some((old, true)) => {
                    if let Some(n) = table.nodes.get_mut(&old) {
                        n.links = n.links.saturating_sub(1).max(1);
                        n.posix.ctime = SystemTime::now();
                        renamed.push((n.path.clone(), old));
                    }
                }
                // Open: it lives on for its handles, under no name.
                Some((old, false)) if replaced == Some(old) => {
                    if let Some(n) = table.nodes.get_mut(&old) {
                        n.unlinked = true;
                        n.posix.ctime = SystemTime::now();
                    }
                }
                Some((old, false)) => table.drop_node(old),
                None => {}
            }
            let now = SystemTime::now();
            for (old_path, ino) in moved {
                let new_path = format!("{to}{}", &old_path[from_path.len()..]);
                // The key of a linked file may be another of its names.
                let was_key = table.nodes.get(&ino).is_some_and(|n| n.path == old_path);
                table.unbind(&old_path);
                if let Some(n) = table.nodes.get_mut(&ino) {
                    if was_key {
                        n.path = new_path.clone();
                    }
                    // The moved object is a new version of the new key with
                    // the same ETag: read it by key and ETag from now on.
                    n.version_id = None;
                    if ino == attr.ino {
                        n.posix.ctime = now;
                    }
                }
                table.bind(&new_path, ino);
                let key = table.nodes.get(&ino).map_or(new_path, |n| n.path.clone());
                renamed.push((key, ino));
            }
            renamed
        };
        let mut abandoned = Vec::new();
        for (path, ino) in moved {
            if let Some(file) = held.get_mut(&ino) {
                abandoned.extend(file.writer.as_mut().and_then(|w| w.renamed(&path)));
            } else if let Some(state) = self.open_file(ino) {
                abandoned.extend(state.lock().await.writer.as_mut().and_then(|w| w.renamed(&path)));
            }
        }
        drop(held);
        for (key, upload) in abandoned {
            self.store.abort_upload(&key, &upload).await;
        }
        self.touch_dir(parent);
        self.touch_dir(new_parent);
        Ok(())
    }
}
