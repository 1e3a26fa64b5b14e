//! Hard links. The store keeps the names of a linked file as a link group:
//! each name is an ordinary object, and every commit through any name (the
//! writer's, a chmod's copy onto itself) gives all names its version. Here a
//! group is one inode: `Table::by_group` finds it from any name's HEAD or
//! listing entry, `Table::names` holds the names this mount knows, and the
//! node's key (`Node::path`) is one of them.

use std::time::{Instant, SystemTime};

use super::{Attr, Fs, Kind};
use crate::error::FsError;
use crate::names::{check_name, join, MAX_KEY};

impl Fs {
    /// `link(2)`: `new_name` in `new_parent` becomes another name of `ino`.
    pub async fn link(&self, ino: u64, new_parent: u64, new_name: &str) -> Result<Attr, FsError> {
        self.writable(&[ino, new_parent])?;
        check_name(new_name)?;
        let node = self.node(ino)?;
        if node.kind == Kind::Dir {
            return Err(FsError::NotPermitted);
        }
        let to = join(&self.dir(new_parent)?.path, new_name);
        super::history::refuse_new(&to)?;
        if to.len() >= MAX_KEY {
            return Err(FsError::NameTooLong);
        }
        if self.lookup(new_parent, new_name).await.is_ok() {
            return Err(FsError::Exists);
        }
        // A delete of the new name, made before, lands first; the link
        // shares what the store holds, so this file's writes go there first.
        self.deletes.settled(&to).await;
        self.flush_inode(ino).await?;
        let node = self.node(ino)?;
        if node.local {
            // Its first commit is still queued (write-back): nothing to share yet.
            self.sync_all().await?;
        }
        let node = self.node(ino)?;
        let mut posix = node.posix.clone();
        posix.ctime = SystemTime::now();
        let info = match self.store.link(&node.path, &to, &posix.to_metadata()).await {
            Err(FsError::NotSupported) => return Err(FsError::NotPermitted),
            answer => answer?,
        };
        let (group, count) = info
            .links
            .ok_or_else(|| FsError::Io("the store answered a link without its link group".into()))?;
        {
            let mut table = self.table.lock().unwrap();
            if let Some(n) = table.nodes.get_mut(&ino) {
                n.group = Some(group);
                n.links = count.max(2);
                n.posix.ctime = posix.ctime;
                n.etag = info.etag.clone();
                n.version_id = info.version_id.clone();
                n.fetched = Instant::now();
            }
            table.bind(&to, ino);
        }
        self.absence.present(&to);
        self.touch_dir(new_parent);
        self.known_attr(ino)
    }

    /// Learns every name of linked file `ino` from the store.
    pub(super) async fn learn_names(&self, ino: u64) -> Result<(), FsError> {
        let key = self.node(ino)?.path;
        let names = match self.store.link_names(&key).await {
            Err(FsError::NotSupported) => return Ok(()),
            names => names?,
        };
        let mut table = self.table.lock().unwrap();
        for name in names {
            if !table.by_path.contains_key(&name) {
                table.bind(&name, ino);
            }
        }
        Ok(())
    }

    /// Whether `ino` is a linked file with a known name besides `path`.
    pub(super) fn has_other_name(&self, ino: u64, path: &str) -> bool {
        let table = self.table.lock().unwrap();
        table
            .names
            .get(&ino)
            .is_some_and(|names| names.iter().any(|n| n != path))
    }

    /// Unlinks one name of a file that keeps others: only that key goes;
    /// the inode, its open files and their writes live on under another
    /// name (which becomes the key they commit to, if this one was).
    pub(super) async fn unlink_name(&self, parent: u64, ino: u64, path: &str) -> Result<(), FsError> {
        // No commit of an open file lands between the delete and the new key.
        let held = match self.open_file(ino) {
            Some(state) => Some(state.lock_owned().await),
            None => None,
        };
        // At once, even in write-back: the other names' link count is
        // fetched from the store.
        self.deletes.settled(path).await;
        let _deleting = self.deletes.removing(path);
        self.store.delete(path).await?;
        self.deletes.removed(path);
        let key = {
            let mut table = self.table.lock().unwrap();
            table.unbind(path);
            let node = table.nodes.get_mut(&ino).ok_or(FsError::NotFound)?;
            node.links = node.links.saturating_sub(1).max(1);
            node.posix.ctime = SystemTime::now();
            node.path.clone()
        };
        if let Some(mut file) = held {
            let abandoned = file.writer.as_mut().and_then(|w| w.renamed(&key));
            drop(file);
            if let Some((old_key, upload)) = abandoned {
                self.store.abort_upload(&old_key, &upload).await;
            }
        }
        self.absence.missing(path);
        self.touch_dir(parent);
        Ok(())
    }
}
