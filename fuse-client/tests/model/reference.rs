//! The reference model: a plain POSIX tree in memory, with inodes so that
//! open handles follow renames and outlive unlinks. It answers what the
//! filesystem should: the result of each operation and the tree after it.

use std::collections::{BTreeMap, HashMap};

/// What one inode is.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    File(Vec<u8>),
    Dir,
    Symlink(String),
}

#[derive(Debug, Clone)]
pub struct Inode {
    pub body: Body,
    /// Permission bits only.
    pub perm: u32,
}

/// The errors the model predicts, as errnos.
pub const ENOENT: i32 = libc::ENOENT;
pub const EEXIST: i32 = libc::EEXIST;
pub const ENOTEMPTY: i32 = libc::ENOTEMPTY;
pub const ENOTDIR: i32 = libc::ENOTDIR;
pub const EISDIR: i32 = libc::EISDIR;
pub const EINVAL: i32 = libc::EINVAL;
pub const EPERM: i32 = libc::EPERM;

#[derive(Debug, Default, Clone)]
pub struct Model {
    /// Path ("" is the root) to inode number.
    pub paths: BTreeMap<String, u64>,
    pub inodes: HashMap<u64, Inode>,
    next: u64,
}

pub fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

impl Model {
    pub fn new() -> Self {
        let mut m = Model::default();
        m.add("", Body::Dir, 0o755);
        m
    }

    fn add(&mut self, path: &str, body: Body, perm: u32) -> u64 {
        self.next += 1;
        self.inodes.insert(self.next, Inode { body, perm });
        self.paths.insert(path.to_string(), self.next);
        self.next
    }

    pub fn get(&self, path: &str) -> Option<&Inode> {
        self.paths.get(path).map(|i| &self.inodes[i])
    }

    pub fn is_dir(&self, path: &str) -> bool {
        self.get(path).is_some_and(|n| n.body == Body::Dir)
    }

    /// Paths below directory `dir` (not `dir` itself).
    pub fn below(&self, dir: &str) -> Vec<String> {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        self.paths
            .keys()
            .filter(|p| !p.is_empty() && p.starts_with(&prefix) && p.len() > prefix.len())
            .cloned()
            .collect()
    }

    /// The names in directory `dir`.
    pub fn children(&self, dir: &str) -> Vec<String> {
        self.paths
            .keys()
            .filter(|p| !p.is_empty() && parent(p) == dir)
            .map(|p| p.rsplit('/').next().unwrap_or("").to_string())
            .collect()
    }

    /// Checks that `path` can be made: its parent is a directory, it is free.
    fn creatable(&self, path: &str) -> Result<(), i32> {
        match self.get(parent(path)) {
            None => return Err(ENOENT),
            Some(n) if n.body != Body::Dir => return Err(ENOTDIR),
            _ => {}
        }
        if self.paths.contains_key(path) {
            return Err(EEXIST);
        }
        Ok(())
    }

    pub fn create(&mut self, path: &str, perm: u32) -> Result<u64, i32> {
        self.creatable(path)?;
        Ok(self.add(path, Body::File(Vec::new()), perm))
    }

    pub fn mkdir(&mut self, path: &str, perm: u32) -> Result<(), i32> {
        self.creatable(path)?;
        self.add(path, Body::Dir, perm);
        Ok(())
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> Result<(), i32> {
        self.creatable(path)?;
        self.add(path, Body::Symlink(target.to_string()), 0o777);
        Ok(())
    }

    /// link(2): `to` becomes another name of `from`'s inode.
    pub fn link(&mut self, from: &str, to: &str) -> Result<(), i32> {
        let Some(&ino) = self.paths.get(from) else {
            return Err(ENOENT);
        };
        if self.inodes[&ino].body == Body::Dir {
            return Err(EPERM);
        }
        self.creatable(to)?;
        self.paths.insert(to.to_string(), ino);
        Ok(())
    }

    /// How many names `path`'s inode has.
    pub fn links(&self, path: &str) -> u32 {
        let ino = self.paths.get(path);
        self.paths.values().filter(|i| Some(*i) == ino).count() as u32
    }

    pub fn unlink(&mut self, path: &str) -> Result<(), i32> {
        match self.get(path) {
            None => Err(ENOENT),
            Some(n) if n.body == Body::Dir => Err(EISDIR),
            Some(_) => {
                self.paths.remove(path);
                Ok(())
            }
        }
    }

    pub fn rmdir(&mut self, path: &str) -> Result<(), i32> {
        match self.get(path) {
            None => Err(ENOENT),
            Some(n) if n.body != Body::Dir => Err(ENOTDIR),
            Some(_) if !self.below(path).is_empty() => Err(ENOTEMPTY),
            Some(_) => {
                self.paths.remove(path);
                Ok(())
            }
        }
    }

    /// rename(2), or renameat2 with RENAME_NOREPLACE.
    pub fn rename(&mut self, from: &str, to: &str, no_replace: bool) -> Result<(), i32> {
        let Some(source) = self.get(from).cloned() else {
            return Err(ENOENT);
        };
        match self.get(parent(to)) {
            None => return Err(ENOENT),
            Some(n) if n.body != Body::Dir => return Err(ENOTDIR),
            _ => {}
        }
        let is_dir = source.body == Body::Dir;
        if is_dir && (to == from || to.starts_with(&format!("{from}/"))) {
            return Err(EINVAL);
        }
        if let Some(target) = self.get(to) {
            if no_replace {
                return Err(EEXIST);
            }
            if self.paths[to] == self.paths[from] {
                return Ok(());
            }
            match (is_dir, target.body == Body::Dir) {
                (false, true) => return Err(EISDIR),
                (true, false) => return Err(ENOTDIR),
                (true, true) if !self.below(to).is_empty() => return Err(ENOTEMPTY),
                _ => {}
            }
            self.paths.remove(to);
        }
        let mut moved = self.below(from);
        moved.push(from.to_string());
        for old in moved {
            let ino = self.paths.remove(&old).expect("listed");
            self.paths.insert(format!("{to}{}", &old[from.len()..]), ino);
        }
        Ok(())
    }

    pub fn data_mut(&mut self, ino: u64) -> &mut Vec<u8> {
        match &mut self.inodes.get_mut(&ino).expect("inode").body {
            Body::File(data) => data,
            other => panic!("not a file: {other:?}"),
        }
    }

    pub fn write(&mut self, ino: u64, offset: u64, bytes: &[u8]) {
        let data = self.data_mut(ino);
        let end = offset as usize + bytes.len();
        if data.len() < end {
            data.resize(end, 0);
        }
        data[offset as usize..end].copy_from_slice(bytes);
    }

    pub fn truncate(&mut self, ino: u64, size: u64) {
        self.data_mut(ino).resize(size as usize, 0);
    }

    /// Drops inodes no name and no handle in `open` refers to.
    pub fn collect(&mut self, open: &[u64]) {
        let named: std::collections::HashSet<u64> = self.paths.values().copied().collect();
        self.inodes.retain(|i, _| named.contains(i) || open.contains(i));
    }
}
