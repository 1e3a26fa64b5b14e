//! Where an open file's written bytes wait for their commit: in memory
//! while the file is small, in an unlinked file of the staging directory
//! once it grows. Creating, truncating and freeing a local file cost about
//! a fifth of the daemon's CPU per small file written (ext4 allocates and
//! frees an inode each time); most files written are small.
//!
//! A file moves to disk when it grows past `MEMORY_FILE` bytes, or when
//! all memory-staged files together would pass `MEMORY_TOTAL`, so memory
//! stays bounded however many files are open.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Largest file staged in memory (the largest the write-back batches too).
pub const MEMORY_FILE: usize = 1 << 20;
/// Most bytes staged in memory across all open files.
const MEMORY_TOTAL: usize = 32 << 20;

/// Bytes staged in memory now, across all files.
static IN_MEMORY: AtomicUsize = AtomicUsize::new(0);

enum Store {
    Memory(Vec<u8>),
    Disk(File),
}

pub struct Staging {
    dir: PathBuf,
    store: Store,
    /// This file's share of `IN_MEMORY`.
    counted: usize,
}

impl Staging {
    /// An empty staging area; a file in `dir` once it must spill.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            store: Store::Memory(Vec::new()),
            counted: 0,
        }
    }

    pub fn write_all_at(&mut self, data: &[u8], offset: u64) -> io::Result<()> {
        let end = offset as usize + data.len();
        if let Store::Memory(bytes) = &self.store {
            if end > bytes.len() && !self.can_hold(end) {
                self.spill()?;
            }
        }
        let capacity = self.capacity_for(end);
        match &mut self.store {
            Store::Memory(bytes) => {
                if end > bytes.len() {
                    bytes.reserve_exact(capacity - bytes.len());
                    bytes.resize(end, 0);
                }
                bytes[offset as usize..end].copy_from_slice(data);
                self.recount();
                Ok(())
            }
            Store::Disk(file) => file.write_all_at(data, offset),
        }
    }

    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        match &self.store {
            Store::Memory(bytes) => {
                let start = offset as usize;
                let src = bytes
                    .get(start..start + buf.len())
                    .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
                buf.copy_from_slice(src);
                Ok(())
            }
            Store::Disk(file) => file.read_exact_at(buf, offset),
        }
    }

    /// Truncates or extends (with zeros) to `len` bytes.
    pub fn set_len(&mut self, len: u64) -> io::Result<()> {
        if let Store::Memory(bytes) = &self.store {
            if len as usize > bytes.len() && !self.can_hold(len as usize) {
                self.spill()?;
            }
        }
        let capacity = self.capacity_for(len as usize);
        match &mut self.store {
            Store::Memory(bytes) => {
                if len as usize > bytes.len() {
                    bytes.reserve_exact(capacity - bytes.len());
                }
                bytes.resize(len as usize, 0);
                if bytes.capacity() > 2 * bytes.len() {
                    bytes.shrink_to_fit();
                }
                self.recount();
                Ok(())
            }
            Store::Disk(file) => file.set_len(len),
        }
    }

    /// A second handle on the staging file, for copies made in the
    /// background; `None` while the bytes are still in memory.
    pub fn shared_file(&self) -> io::Result<Option<File>> {
        match &self.store {
            Store::Memory(_) => Ok(None),
            Store::Disk(file) => file.try_clone().map(Some),
        }
    }

    /// The memory this file takes at `len` bytes: growth doubles (so
    /// appends copy little) up to `MEMORY_FILE`.
    fn capacity_for(&self, len: usize) -> usize {
        match &self.store {
            Store::Memory(bytes) if len > bytes.capacity() => {
                (2 * bytes.capacity()).clamp(len, MEMORY_FILE.max(len))
            }
            Store::Memory(bytes) => bytes.capacity(),
            Store::Disk(_) => 0,
        }
    }

    /// Can memory hold this file at `len` bytes?
    fn can_hold(&self, len: usize) -> bool {
        len <= MEMORY_FILE
            && IN_MEMORY.load(Ordering::Relaxed) - self.counted + self.capacity_for(len) <= MEMORY_TOTAL
    }

    /// Brings `IN_MEMORY` up to date with this file's memory.
    fn recount(&mut self) {
        let now = match &self.store {
            Store::Memory(bytes) => bytes.capacity(),
            Store::Disk(_) => 0,
        };
        if now >= self.counted {
            IN_MEMORY.fetch_add(now - self.counted, Ordering::Relaxed);
        } else {
            IN_MEMORY.fetch_sub(self.counted - now, Ordering::Relaxed);
        }
        self.counted = now;
    }

    /// Moves the bytes to an unlinked file in the staging directory.
    fn spill(&mut self) -> io::Result<()> {
        if let Store::Memory(bytes) = &self.store {
            let file = tempfile::tempfile_in(&self.dir)?;
            file.write_all_at(bytes, 0)?;
            self.store = Store::Disk(file);
            self.recount();
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        IN_MEMORY.fetch_sub(self.counted, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tests share `IN_MEMORY`: one at a time.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn on_disk(s: &Staging) -> bool {
        matches!(s.store, Store::Disk(_))
    }

    #[test]
    fn small_files_stay_in_memory_and_large_ones_spill_intact() {
        let _serial = SERIAL.lock().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut s = Staging::new(dir.path());
        s.write_all_at(b"hello", 3).unwrap();
        let mut buf = [9u8; 8];
        s.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"\0\0\0hello");
        assert!(!on_disk(&s));
        assert!(
            s.read_exact_at(&mut [0; 2], 7).is_err(),
            "reads past the end fail"
        );
        s.set_len(4).unwrap();
        s.set_len(6).unwrap();
        let mut buf = [9u8; 6];
        s.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"\0\0\0h\0\0");

        s.write_all_at(&[7; 16], MEMORY_FILE as u64).unwrap();
        assert!(on_disk(&s), "past MEMORY_FILE the bytes move to disk");
        let mut buf = [9u8; 6];
        s.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"\0\0\0h\0\0");
        let mut buf = [0u8; 16];
        s.read_exact_at(&mut buf, MEMORY_FILE as u64).unwrap();
        assert_eq!(buf, [7; 16]);
    }

    #[test]
    fn memory_across_files_is_bounded() {
        let _serial = SERIAL.lock().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<Staging> = (0..MEMORY_TOTAL / MEMORY_FILE + 8)
            .map(|_| {
                let mut s = Staging::new(dir.path());
                s.set_len(MEMORY_FILE as u64).unwrap();
                s
            })
            .collect();
        assert!(files.iter().any(on_disk));
        assert!(IN_MEMORY.load(Ordering::Relaxed) <= MEMORY_TOTAL);
    }
}
