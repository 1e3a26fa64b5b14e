//! The block cache's disk tier: blocks kept as files in a directory, least
//! recently used evicted first. Each file starts with a header naming its
//! block (object key, version, ETag, block number) and the crc32c of each
//! 4 KiB segment, checked when the segment is read back, so a damaged file
//! is refetched, never served.
//!
//! A tier opened `Persistent` keeps its directory across mounts: the next
//! mount of the bucket reads the headers back and serves rereads without a
//! GET. A block is named by its object's ETag (or version), so a block of
//! an object changed since is never used: it waits for eviction. One mount
//! at a time holds the directory (an flock); another gets a private one.

use std::fs::File;
use std::num::NonZeroUsize;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use lru::LruCache;
use serde::{Deserialize, Serialize};

use crate::store::Source;

/// The unit of checksums in the disk tier.
pub const SEGMENT: usize = 4 << 10;
/// The first bytes of a block file; a file without them is not ours.
const MAGIC: &[u8; 8] = b"BFSBLK1\n";
/// Longest header read back (a key is at most 1 KiB; crcs 1 KiB per MiB).
const MAX_HEADER: usize = 64 << 10;

/// A cached block: an object's block number and the object it is of.
pub type BlockKey = (Source, u64);

/// What a block file says of itself, before its bytes.
#[derive(Serialize, Deserialize)]
struct Header {
    key: String,
    version_id: Option<String>,
    etag: String,
    block: u64,
    len: usize,
    /// crc32c of each SEGMENT of the block.
    crcs: Vec<u32>,
}

struct DiskBlock {
    file: String,
    /// Where the block's bytes start in its file.
    offset: u64,
    len: usize,
    crcs: Vec<u32>,
}

fn segment_crcs(data: &[u8]) -> Vec<u32> {
    data.chunks(SEGMENT).map(crc32c::crc32c).collect()
}

struct DiskIndex {
    blocks: LruCache<BlockKey, Arc<DiskBlock>>,
    bytes: u64,
    next: u64,
}

/// Whether a tier's directory outlives the mount.
pub enum Lifetime {
    /// Emptied at start and removed at the end.
    Private,
    /// Read back at start, kept at the end; held by this mount alone.
    Persistent,
}

pub struct DiskTier {
    dir: PathBuf,
    pub capacity: u64,
    index: Mutex<DiskIndex>,
    /// Block files kept open for reads, by file name: an open and a close
    /// per 4 KiB read were a fifth of the daemon's CPU in steady random
    /// reads.
    open: Mutex<LruCache<String, Arc<File>>>,
    /// Held while this mount owns a persistent directory (`None`: private).
    lock: Option<nix::fcntl::Flock<File>>,
}

/// How many block files the disk tier keeps open: a quarter of the
/// process's file limit, at most 2,048 (2 GiB of blocks).
fn open_files_bound() -> NonZeroUsize {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft);
    NonZeroUsize::new((soft / 4).clamp(16, 2048) as usize).expect("at least 16")
}

/// Makes `dir` (and its parents), readable by this user only: it holds
/// objects' bytes.
pub(crate) fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// The flock on `dir/.lock`, if no other mount holds it.
pub(crate) fn lock_dir(dir: &Path) -> std::io::Result<Option<nix::fcntl::Flock<File>>> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))?;
    Ok(nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).ok())
}

impl Drop for DiskTier {
    fn drop(&mut self) {
        if self.lock.is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl DiskTier {
    /// A tier of at most `capacity` bytes in `dir`. A persistent one that
    /// another mount holds falls back to a private directory beside it.
    pub fn open(dir: &Path, capacity: u64, lifetime: Lifetime) -> std::io::Result<Self> {
        let mut tier = Self {
            dir: dir.to_path_buf(),
            capacity,
            index: Mutex::new(DiskIndex {
                blocks: LruCache::unbounded(),
                bytes: 0,
                next: 0,
            }),
            open: Mutex::new(LruCache::new(open_files_bound())),
            lock: None,
        };
        if let Lifetime::Persistent = lifetime {
            private_dir(dir)?;
            match lock_dir(dir)? {
                Some(lock) => {
                    tier.lock = Some(lock);
                    tier.load();
                    return Ok(tier);
                }
                None => {
                    tracing::info!(dir = %dir.display(), "another mount holds the disk cache; using a private one");
                    tier.dir = dir.with_extension(format!("{}", std::process::id()));
                }
            }
        }
        if tier.dir.exists() {
            std::fs::remove_dir_all(&tier.dir)?;
        }
        private_dir(&tier.dir)?;
        Ok(tier)
    }

    /// Reads back the blocks an earlier mount left, oldest first (file names
    /// count up), dropping files that are not whole blocks of ours and the
    /// oldest past the capacity.
    fn load(&mut self) {
        let mut names: Vec<(u64, String)> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                Some((u64::from_str_radix(&name, 16).ok()?, name))
            })
            .collect();
        names.sort();
        let (mut kept, mut dropped) = (0usize, 0usize);
        for (number, name) in names {
            let index = self.index.get_mut().unwrap();
            index.next = index.next.max(number);
            match read_header(&self.dir.join(&name)) {
                Some((header, offset)) => {
                    let key = (
                        Source {
                            key: header.key,
                            version_id: header.version_id,
                            etag: header.etag,
                        },
                        header.block,
                    );
                    let block = DiskBlock {
                        file: name,
                        offset,
                        len: header.len,
                        crcs: header.crcs,
                    };
                    self.add(key, block);
                    kept += 1;
                }
                None => {
                    let _ = std::fs::remove_file(self.dir.join(&name));
                    dropped += 1;
                }
            }
        }
        tracing::info!(dir = %self.dir.display(), kept, dropped, "disk cache read back");
    }

    pub fn contains(&self, key: &BlockKey) -> bool {
        self.index.lock().unwrap().blocks.contains(key)
    }

    pub fn get(&self, key: &BlockKey) -> Option<Bytes> {
        let block = self.index.lock().unwrap().blocks.get(key).cloned()?;
        self.read_checked(key, &block, 0, block.crcs.len())
    }

    /// Bytes `from..to` of a cached block, reading and checking only the
    /// segments that hold them.
    pub fn get_range(&self, key: &BlockKey, from: usize, to: usize) -> Option<Bytes> {
        let block = self.index.lock().unwrap().blocks.get(key).cloned()?;
        let to = to.min(block.len);
        if from >= to {
            return Some(Bytes::new());
        }
        let first = from / SEGMENT;
        let data = self.read_checked(key, &block, first, to.div_ceil(SEGMENT))?;
        Some(data.slice(from - first * SEGMENT..to - first * SEGMENT))
    }

    /// Segments `first..last` of `block`, or `None` (and the block dropped)
    /// when its file is unreadable or damaged.
    fn read_checked(&self, key: &BlockKey, block: &DiskBlock, first: usize, last: usize) -> Option<Bytes> {
        let start = first * SEGMENT;
        let end = (last * SEGMENT).min(block.len);
        let mut data = vec![0u8; end - start];
        let read = self
            .open_file(&block.file)
            .and_then(|f| f.read_exact_at(&mut data, block.offset + start as u64));
        let intact = read.is_ok()
            && data
                .chunks(SEGMENT)
                .zip(&block.crcs[first..last])
                .all(|(segment, crc)| crc32c::crc32c(segment) == *crc);
        if !intact {
            tracing::warn!(file = %block.file, "disk cache block unreadable or damaged; refetching");
            self.remove(key);
            return None;
        }
        Some(Bytes::from(data))
    }

    /// The block file `name`, opened once while reads keep coming.
    fn open_file(&self, name: &str) -> std::io::Result<Arc<File>> {
        if let Some(file) = self.open.lock().unwrap().get(name) {
            return Ok(file.clone());
        }
        let file = Arc::new(File::open(self.dir.join(name))?);
        self.open.lock().unwrap().put(name.to_string(), file.clone());
        Ok(file)
    }

    /// Deletes a block's file (and closes it, so its space is freed).
    fn delete_file(&self, name: &str) {
        self.open.lock().unwrap().pop(name);
        let _ = std::fs::remove_file(self.dir.join(name));
    }

    fn remove(&self, key: &BlockKey) {
        let removed = {
            let mut index = self.index.lock().unwrap();
            let removed = index.blocks.pop(key);
            if let Some(block) = &removed {
                index.bytes -= block.len as u64;
            }
            removed
        };
        if let Some(block) = removed {
            self.delete_file(&block.file);
        }
    }

    pub fn put(&self, key: BlockKey, data: &Bytes) {
        let name = {
            let mut index = self.index.lock().unwrap();
            if index.blocks.contains(&key) {
                return;
            }
            index.next += 1;
            format!("{:016x}", index.next)
        };
        let crcs = segment_crcs(data);
        let header = Header {
            key: key.0.key.clone(),
            version_id: key.0.version_id.clone(),
            etag: key.0.etag.clone(),
            block: key.1,
            len: data.len(),
            crcs,
        };
        let encoded = serde_json::to_vec(&header).expect("a header serializes");
        let mut prefix = Vec::with_capacity(MAGIC.len() + 4 + encoded.len());
        prefix.extend_from_slice(MAGIC);
        prefix.extend_from_slice(&(encoded.len() as u32).to_le_bytes());
        prefix.extend_from_slice(&encoded);
        prefix.resize(data_offset(encoded.len()) as usize, 0);
        let offset = prefix.len() as u64;
        // Two writes rather than a copy of the block behind its header.
        let written = File::create(self.dir.join(&name)).and_then(|mut f| {
            use std::io::Write;
            f.write_all(&prefix)?;
            f.write_all(data)
        });
        if let Err(e) = written {
            tracing::warn!(error = %e, "could not write to the disk cache");
            self.delete_file(&name);
            return;
        }
        let block = DiskBlock {
            file: name,
            offset,
            len: data.len(),
            crcs: header.crcs,
        };
        self.add(key, block);
    }

    /// Indexes `block`, evicting the least recently used past the capacity.
    fn add(&self, key: BlockKey, block: DiskBlock) {
        let mut evicted = Vec::new();
        {
            let mut index = self.index.lock().unwrap();
            index.bytes += block.len as u64;
            if let Some(old) = index.blocks.put(key, Arc::new(block)) {
                index.bytes -= old.len as u64;
                evicted.push(old);
            }
            while index.bytes > self.capacity {
                match index.blocks.pop_lru() {
                    Some((_, old)) => {
                        index.bytes -= old.len as u64;
                        evicted.push(old);
                    }
                    None => break,
                }
            }
        }
        for old in evicted {
            self.delete_file(&old.file);
        }
    }

    /// The file holding `key`'s bytes, and where they start (for tests that
    /// damage it).
    #[cfg(test)]
    pub fn file_of(&self, key: &BlockKey) -> Option<(PathBuf, u64)> {
        let index = self.index.lock().unwrap();
        let block = index.blocks.peek(key)?;
        Some((self.dir.join(&block.file), block.offset))
    }
}

/// Where a block's bytes start behind a header of `len` bytes: on a segment
/// boundary, so a segment read is one page of the file, not two halves.
fn data_offset(len: usize) -> u64 {
    (MAGIC.len() + 4 + len).next_multiple_of(SEGMENT) as u64
}

/// A block file's header and where its bytes start, if it is one of ours
/// and as long as it says.
fn read_header(path: &Path) -> Option<(Header, u64)> {
    let file = File::open(path).ok()?;
    let mut start = [0u8; 12];
    file.read_exact_at(&mut start, 0).ok()?;
    if &start[..8] != MAGIC {
        return None;
    }
    let len = u32::from_le_bytes(start[8..].try_into().ok()?) as usize;
    if len > MAX_HEADER {
        return None;
    }
    let mut header = vec![0u8; len];
    file.read_exact_at(&mut header, 12).ok()?;
    let header: Header = serde_json::from_slice(&header).ok()?;
    let offset = data_offset(len);
    let whole = file.metadata().ok()?.len() == offset + header.len as u64;
    // Named by neither ETag nor version, a block could be of any content.
    let named = !header.etag.is_empty() || header.version_id.is_some();
    let consistent = named && header.crcs.len() == header.len.div_ceil(SEGMENT);
    (whole && consistent).then_some((header, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(etag: &str) -> Source {
        Source {
            key: "dir/object".into(),
            version_id: None,
            etag: etag.into(),
        }
    }

    #[test]
    fn a_persistent_tier_serves_its_blocks_to_the_next_mount() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blocks");
        let blocks: Vec<Bytes> = (0..3u8)
            .map(|i| Bytes::from(vec![i; 100_000 + i as usize]))
            .collect();
        {
            let tier = DiskTier::open(&path, 1 << 20, Lifetime::Persistent).unwrap();
            for (i, b) in blocks.iter().enumerate() {
                tier.put((source("e1"), i as u64), b);
            }
            // A second mount meanwhile gets a private directory.
            let other = DiskTier::open(&path, 1 << 20, Lifetime::Persistent).unwrap();
            assert!(other.get(&(source("e1"), 0)).is_none());
        }
        // A torn file and a stranger's file are dropped when read back.
        std::fs::write(path.join("00000000000000ff"), b"BFSBLK1\n\x05\0\0\0{").unwrap();
        std::fs::write(path.join("0000000000000100"), b"not a block").unwrap();
        let tier = DiskTier::open(&path, 1 << 20, Lifetime::Persistent).unwrap();
        for (i, b) in blocks.iter().enumerate() {
            assert_eq!(tier.get(&(source("e1"), i as u64)).as_ref(), Some(b));
        }
        // Named by ETag: a changed object's blocks are not its successor's.
        assert!(tier.get(&(source("e2"), 0)).is_none());
        assert!(!path.join("00000000000000ff").exists());
        assert!(!path.join("0000000000000100").exists());
        // New blocks are numbered past every file read back.
        tier.put((source("e2"), 0), &blocks[0]);
        assert!(tier
            .file_of(&(source("e2"), 0))
            .unwrap()
            .0
            .ends_with("0000000000000101"));
    }

    #[test]
    fn read_back_past_a_smaller_capacity_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blocks");
        let block = Bytes::from(vec![7u8; 1000]);
        {
            let tier = DiskTier::open(&path, 10_000, Lifetime::Persistent).unwrap();
            for i in 0..5 {
                tier.put((source("e"), i), &block);
            }
        }
        let tier = DiskTier::open(&path, 2_500, Lifetime::Persistent).unwrap();
        let kept: Vec<u64> = (0..5).filter(|i| tier.contains(&(source("e"), *i))).collect();
        assert_eq!(kept, vec![3, 4]);
        assert_eq!(
            std::fs::read_dir(&path).unwrap().count(),
            3,
            "two blocks and the lock"
        );
    }

    #[test]
    fn a_private_tier_starts_empty_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blocks");
        {
            let tier = DiskTier::open(&path, 1 << 20, Lifetime::Private).unwrap();
            tier.put((source("e"), 0), &Bytes::from_static(b"bytes"));
            assert!(tier.get(&(source("e"), 0)).is_some());
        }
        assert!(!path.exists());
    }
}
