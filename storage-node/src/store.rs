//! The chunk files on local disk.
//!
//! Layout under the data directory:
//! `chunks/<first two hex digits>/<chunk id>` for live chunks, `tmp/` for
//! writes in progress and `quarantine/` for chunks that failed a checksum.
//! A durable write creates the chunk's file under its final name and fsyncs
//! it once: on the journaling file systems a node's data directory may be on
//! (ext4, XFS, Btrfs; tmpfs keeps nothing anyway) that commit carries the
//! new directory entry too, so the file's name and bytes are durable together
//! (the old way, a temporary file renamed into place and the directory
//! fsynced, took two journal commits: 2-3.6 ms against 0.3-0.6 ms for a 4 KiB
//! chunk here). On any other file system, and for a chunk whose file exists
//! already, the write still goes through `tmp/` and a rename. Until a write
//! in place is whole, the chunk is "being written": reads answer not found,
//! and the scrubber neither lists nor quarantines it; a crash midway leaves a
//! torn file no router ever recorded (only an acknowledged write is), which
//! the scrubber quarantines. A chunk is served only complete and verified.
//! The file is written with O_DIRECT from a page-aligned image of it built as
//! the body arrives (`Incoming`): copying into the page cache and writing it
//! back later cost more CPU than anything else a node did (see ARCHITECTURE).
//! Every read checks the block checksums of the bytes it returns; a chunk that
//! fails is moved to quarantine (kept for inspection, never served again) so
//! that the routers read another replica and repair this one.
//!
//! The methods block: callers run them on tokio's blocking pool.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bucketfs_common::blocks::{self, Header, LayoutError};
use bucketfs_common::{ChunkId, Fsync};

/// Largest chunk a node accepts, a guard against oversized bodies.
pub const MAX_CHUNK_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("chunk not found")]
    NotFound,
    #[error("chunk is corrupt: {0}")]
    Corrupt(LayoutError),
    #[error("payload checksum {actual:08x} does not match the announced {expected:08x}")]
    TransferChecksum { expected: u32, actual: u32 },
    #[error("chunk of {0} bytes exceeds the limit")]
    TooLarge(usize),
    #[error("body of {got} bytes does not match the announced {announced}")]
    LengthMismatch { announced: usize, got: usize },
    #[error("requested range is outside the chunk")]
    BadRange,
    #[error("disk is full")]
    DiskFull,
    #[error("i/o error: {0}")]
    Io(io::Error),
}

impl From<io::Error> for StoreError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::NotFound => StoreError::NotFound,
            io::ErrorKind::StorageFull => StoreError::DiskFull,
            _ => StoreError::Io(e),
        }
    }
}

#[derive(Debug)]
pub struct ChunkStore {
    root: PathBuf,
    /// Whether a new file's fsync also makes its name durable here, so a
    /// chunk can be written in place (see the module's doc).
    fsync_keeps_names: bool,
    /// Chunks being written in place: not yet whole, not to be read.
    writing: Mutex<HashSet<ChunkId>>,
}

impl ChunkStore {
    pub fn open(root: &Path) -> io::Result<Self> {
        for dir in ["chunks", "tmp", "quarantine"] {
            fs::create_dir_all(root.join(dir))?;
        }
        // Leftovers of writes interrupted by a crash were never acknowledged.
        for entry in fs::read_dir(root.join("tmp"))? {
            let _ = fs::remove_file(entry?.path());
        }
        Ok(Self {
            root: root.to_path_buf(),
            fsync_keeps_names: fsync_keeps_names(root),
            writing: Mutex::new(HashSet::new()),
        })
    }

    fn is_writing(&self, id: &ChunkId) -> bool {
        self.writing.lock().unwrap().contains(id)
    }

    #[cfg(test)]
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path_of(&self, id: &ChunkId) -> PathBuf {
        self.root.join("chunks").join(id.shard()).join(id.to_string())
    }

    /// Durably stores `payload` as chunk `id`, checking it against the sender's crc32c.
    #[cfg(test)]
    pub fn put(&self, id: &ChunkId, payload: &[u8], expected_crc: Option<u32>) -> Result<(), StoreError> {
        let mut chunk = Incoming::new(payload.len())?;
        chunk.extend(payload)?;
        self.put_incoming(id, chunk, expected_crc, Fsync::Now)
    }

    /// Stores a received chunk as `id`, checking it against the sender's
    /// crc32c: durably before returning, or (`Fsync::Deferred`) complete
    /// but left to the kernel's writeback, for a replica beyond the quorum.
    pub fn put_incoming(
        &self,
        id: &ChunkId,
        mut chunk: Incoming,
        expected_crc: Option<u32>,
        fsync: Fsync,
    ) -> Result<(), StoreError> {
        let image = chunk.finish(expected_crc)?;
        let final_path = self.path_of(id);
        let dir = final_path.parent().expect("chunk path has a parent");
        fs::create_dir_all(dir)?;
        if fsync == Fsync::Now && self.fsync_keeps_names {
            match self.write_in_place(id, &final_path, image) {
                Err(e) if is_already_exists(&e) => {}
                done => return done,
            }
        }
        let tmp = TempFile(
            self.root
                .join("tmp")
                .join(format!("{id}.{:016x}", rand::random::<u64>())),
        );
        match fsync {
            Fsync::Now => write_durably(&tmp.0, image, false)?,
            Fsync::Deferred => write_buffered(&tmp.0, image)?,
        }
        fs::rename(&tmp.0, &final_path)?;
        std::mem::forget(tmp);
        if fsync == Fsync::Now {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Writes a new chunk's file under its final name and fsyncs it, marked
    /// as being written until then; a failed write leaves no file. A file
    /// already there (an earlier torn write, a second copy) is left alone:
    /// `AlreadyExists`, for the caller to replace it by rename.
    fn write_in_place(&self, id: &ChunkId, path: &Path, image: Image<'_>) -> Result<(), StoreError> {
        self.writing.lock().unwrap().insert(*id);
        let result = write_durably(path, image, true);
        if matches!(&result, Err(e) if !is_already_exists(e)) {
            let _ = fs::remove_file(path);
        }
        self.writing.lock().unwrap().remove(id);
        result
    }

    /// Payload length of a stored chunk, from its header.
    pub fn len(&self, id: &ChunkId) -> Result<u64, StoreError> {
        if self.is_writing(id) {
            return Err(StoreError::NotFound);
        }
        let mut file = File::open(self.path_of(id))?;
        Ok(read_header(&mut file)?.payload_len)
    }

    /// Reads `[start, end)` of the payload (clamped to its length), verifying
    /// every block it touches. A corrupt chunk is quarantined.
    pub fn read(&self, id: &ChunkId, start: u64, end: Option<u64>) -> Result<Vec<u8>, StoreError> {
        if self.is_writing(id) {
            return Err(StoreError::NotFound);
        }
        let path = self.path_of(id);
        let mut file = File::open(&path)?;
        let header = read_header(&mut file).inspect_err(|e| {
            if matches!(e, StoreError::Corrupt(_)) {
                self.quarantine(id);
            }
        })?;
        let end = end.unwrap_or(header.payload_len).min(header.payload_len);
        if start > end || (start == end && header.payload_len > 0 && start >= header.payload_len) {
            return Err(StoreError::BadRange);
        }
        let blocks = header.covering_blocks(start, end);
        let block_start = (blocks.start * blocks::BLOCK_SIZE) as u64;
        let block_end = ((blocks.end * blocks::BLOCK_SIZE) as u64).min(header.payload_len);
        // Read into spare capacity: zeroing megabytes first cost a seventh
        // of a node's CPU on sequential reads.
        let want = (block_end - block_start) as usize;
        let mut data = Vec::with_capacity(want);
        file.seek(SeekFrom::Start(header.encoded_len() + block_start))
            .and_then(|_| (&mut file).take(want as u64).read_to_end(&mut data))
            .and_then(|n| match n == want {
                true => Ok(()),
                false => Err(io::ErrorKind::UnexpectedEof.into()),
            })
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => StoreError::Corrupt(LayoutError::BadHeader),
                _ => StoreError::from(e),
            })
            .inspect_err(|e| {
                if matches!(e, StoreError::Corrupt(_)) {
                    self.quarantine(id);
                }
            })?;
        if let Err(e) = header.verify(blocks.start, &data) {
            self.quarantine(id);
            return Err(StoreError::Corrupt(e));
        }
        data.drain(..(start - block_start) as usize);
        data.truncate((end - start) as usize);
        Ok(data)
    }

    /// Reads and verifies a whole chunk, for the scrubber.
    pub fn verify(&self, id: &ChunkId) -> Result<(), StoreError> {
        self.read(id, 0, None).map(drop)
    }

    pub fn delete(&self, id: &ChunkId) -> Result<(), StoreError> {
        fs::remove_file(self.path_of(id))?;
        Ok(())
    }

    /// Moves a chunk aside so it is never served again but can be inspected.
    pub fn quarantine(&self, id: &ChunkId) {
        if self.is_writing(id) {
            return;
        }
        let to = self.root.join("quarantine").join(id.to_string());
        match fs::rename(self.path_of(id), &to) {
            Ok(()) => tracing::warn!(chunk = %id, "corrupt chunk quarantined"),
            Err(e) => tracing::warn!(chunk = %id, error = %e, "could not quarantine chunk"),
        }
    }

    /// Every chunk stored here (not those being written), with how long ago
    /// its file was last written.
    pub fn list(&self) -> io::Result<Vec<(ChunkId, std::time::Duration)>> {
        let now = std::time::SystemTime::now();
        let mut chunks = Vec::new();
        for shard in fs::read_dir(self.root.join("chunks"))? {
            for entry in fs::read_dir(shard?.path())? {
                let entry = entry?;
                let Some(id) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                    continue;
                };
                // A file deleted while we walk is simply not listed.
                if let Ok(written) = entry.metadata().and_then(|m| m.modified()) {
                    chunks.push((id, now.duration_since(written).unwrap_or_default()));
                }
            }
        }
        let writing = self.writing.lock().unwrap();
        chunks.retain(|(id, _)| !writing.contains(id));
        Ok(chunks)
    }

    /// Bytes the chunk files take on disk (allocated blocks, headers and
    /// file-system rounding included): what the cluster's space amplification
    /// is measured in.
    pub fn disk_usage(&self) -> io::Result<u64> {
        use std::os::unix::fs::MetadataExt;
        let mut bytes = 0;
        for shard in fs::read_dir(self.root.join("chunks"))? {
            for entry in fs::read_dir(shard?.path())? {
                // A file deleted while we walk is simply not counted.
                if let Ok(meta) = entry?.metadata() {
                    bytes += meta.blocks() * 512;
                }
            }
        }
        Ok(bytes)
    }

    /// How many chunks are in quarantine.
    pub fn quarantined(&self) -> io::Result<u64> {
        Ok(fs::read_dir(self.root.join("quarantine"))?.count() as u64)
    }

    /// (capacity, free) bytes of the file system holding the data directory.
    pub fn disk_space(&self) -> io::Result<(u64, u64)> {
        let st = nix::sys::statvfs::statvfs(&self.root).map_err(io::Error::from)?;
        let frag = st.fragment_size() as u64;
        Ok((st.blocks() as u64 * frag, st.blocks_available() as u64 * frag))
    }
}

/// Alignment of O_DIRECT buffers, offsets and lengths.
const PAGE: usize = 4096;

/// A chunk file's bytes assembled in memory as they will lie on disk (room
/// for the header, then the payload as it arrives), starting on a page
/// boundary so the file can be written with O_DIRECT.
pub struct Incoming {
    buf: Vec<u8>,
    /// Where the page-aligned file image starts in `buf`.
    start: usize,
    payload_len: usize,
}

impl Incoming {
    /// Room for a payload of exactly `payload_len` bytes.
    pub fn new(payload_len: usize) -> Result<Self, StoreError> {
        if payload_len > MAX_CHUNK_BYTES {
            return Err(StoreError::TooLarge(payload_len));
        }
        let image = (blocks::header_len(payload_len) + payload_len).next_multiple_of(PAGE);
        // Never reallocated: the capacity covers the padded image after the
        // alignment offset, so `start` stays aligned.
        let mut buf = Vec::<u8>::with_capacity(image + PAGE);
        let start = buf.as_ptr().align_offset(PAGE);
        buf.resize(start + blocks::header_len(payload_len), 0);
        Ok(Self {
            buf,
            start,
            payload_len,
        })
    }

    pub fn payload_len(&self) -> usize {
        self.payload_len
    }

    fn payload_start(&self) -> usize {
        self.start + blocks::header_len(self.payload_len)
    }

    fn received(&self) -> usize {
        self.buf.len() - self.payload_start()
    }

    /// Appends bytes of the payload as they arrive.
    pub fn extend(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let got = self.received() + bytes.len();
        if got > self.payload_len {
            return Err(StoreError::LengthMismatch {
                announced: self.payload_len,
                got,
            });
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// Checks the payload is whole and matches `expected_crc`, fills in the
    /// header and returns the file image padded to whole pages, with the
    /// file's real length.
    fn finish(&mut self, expected_crc: Option<u32>) -> Result<Image<'_>, StoreError> {
        if self.received() != self.payload_len {
            return Err(StoreError::LengthMismatch {
                announced: self.payload_len,
                got: self.received(),
            });
        }
        let payload_start = self.payload_start();
        let sums = blocks::block_checksums(&self.buf[payload_start..]);
        if let Some(expected) = expected_crc {
            let actual = blocks::whole_checksum(&sums, self.payload_len);
            if actual != expected {
                return Err(StoreError::TransferChecksum { expected, actual });
            }
        }
        let header = blocks::encode_header_of(self.payload_len, &sums);
        self.buf[self.start..payload_start].copy_from_slice(&header);
        let len = self.buf.len() - self.start;
        self.buf.resize(self.start + len.next_multiple_of(PAGE), 0);
        Ok(Image {
            bytes: &self.buf[self.start..],
            len: len as u64,
        })
    }
}

/// A chunk file's bytes padded to whole pages, and the file's real length.
#[derive(Clone, Copy)]
struct Image<'a> {
    bytes: &'a [u8],
    len: u64,
}

/// Whether the file system under `root` commits a new file's directory
/// entry with the file's own fsync (journaling ones do: the entry is in the
/// same transaction as the inode), or keeps nothing at all (tmpfs).
fn fsync_keeps_names(root: &Path) -> bool {
    use nix::sys::statfs::{statfs, BTRFS_SUPER_MAGIC, EXT4_SUPER_MAGIC, TMPFS_MAGIC, XFS_SUPER_MAGIC};
    statfs(root).is_ok_and(|st| {
        [EXT4_SUPER_MAGIC, XFS_SUPER_MAGIC, BTRFS_SUPER_MAGIC, TMPFS_MAGIC].contains(&st.filesystem_type())
    })
}

fn is_already_exists(e: &StoreError) -> bool {
    matches!(e, StoreError::Io(e) if e.kind() == io::ErrorKind::AlreadyExists)
}

/// Writes `image` to a file at `path` (a new one only, if `exclusive`) and
/// fsyncs it: with O_DIRECT where the file system takes it, else through
/// the page cache.
fn write_durably(path: &Path, image: Image<'_>, exclusive: bool) -> Result<(), StoreError> {
    let open = |flags: i32, exclusive: bool| {
        let mut options = OpenOptions::new();
        options.write(true).custom_flags(flags);
        match exclusive {
            true => options.create_new(true),
            false => options.create(true).truncate(true),
        };
        options.open(path)
    };
    let direct = open(nix::fcntl::OFlag::O_DIRECT.bits(), exclusive)
        .and_then(|mut file| file.write_all(image.bytes).map(|()| file));
    let file = match direct {
        Ok(file) => file,
        // No O_DIRECT here. The file did not exist before (else the
        // exclusive open had failed with EEXIST), though the refused open
        // may have made it (tmpfs does).
        Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) => {
            let mut file = open(0, false)?;
            file.write_all(image.bytes)?;
            file
        }
        Err(e) => return Err(e.into()),
    };
    file.set_len(image.len)?;
    file.sync_all()?;
    Ok(())
}

/// Writes `image` to a new file at `path` through the page cache, unsynced.
fn write_buffered(path: &Path, image: Image<'_>) -> Result<(), StoreError> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(&image.bytes[..image.len as usize])?;
    Ok(())
}

fn read_header(file: &mut File) -> Result<Header, StoreError> {
    let corrupt = || StoreError::Corrupt(LayoutError::BadHeader);
    let mut fixed = [0u8; Header::FIXED_LEN];
    file.read_exact(&mut fixed).map_err(|_| corrupt())?;
    let count = Header::block_count(&fixed).map_err(StoreError::Corrupt)?;
    if count > MAX_CHUNK_BYTES / blocks::BLOCK_SIZE + 1 {
        return Err(corrupt());
    }
    let mut bytes = vec![0u8; Header::FIXED_LEN + 4 * count];
    file.seek(SeekFrom::Start(0))?;
    file.read_exact(&mut bytes).map_err(|_| corrupt())?;
    Header::decode(&bytes).map_err(StoreError::Corrupt)
}

/// Deletes a temporary file unless it was renamed into place.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, ChunkStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path()).unwrap();
        (dir, store)
    }

    #[test]
    fn put_then_ranged_reads() {
        let (_dir, store) = store();
        let id = ChunkId::random();
        let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        store.put(&id, &payload, Some(crc32c::crc32c(&payload))).unwrap();
        assert_eq!(store.len(&id).unwrap(), payload.len() as u64);
        assert_eq!(store.read(&id, 0, None).unwrap(), payload);
        assert_eq!(
            store.read(&id, 65_530, Some(131_080)).unwrap(),
            payload[65_530..131_080]
        );
        assert_eq!(store.read(&id, 199_999, None).unwrap(), payload[199_999..]);
        assert!(matches!(
            store.read(&id, 300_000, None),
            Err(StoreError::BadRange)
        ));
        assert_eq!(
            store
                .list()
                .unwrap()
                .into_iter()
                .map(|(id, _)| id)
                .collect::<Vec<_>>(),
            vec![id]
        );
        assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn deferred_puts_read_back_and_wrong_lengths_store_nothing() {
        let (_dir, store) = store();
        let id = ChunkId::random();
        let payload: Vec<u8> = (0..70_000u32).map(|i| (i % 241) as u8).collect();
        let mut chunk = Incoming::new(payload.len()).unwrap();
        chunk.extend(&payload[..1000]).unwrap();
        chunk.extend(&payload[1000..]).unwrap();
        store
            .put_incoming(&id, chunk, Some(crc32c::crc32c(&payload)), Fsync::Deferred)
            .unwrap();
        assert_eq!(store.read(&id, 0, None).unwrap(), payload);
        let short = Incoming::new(10).unwrap();
        let other = ChunkId::random();
        assert!(matches!(
            store.put_incoming(&other, short, None, Fsync::Now),
            Err(StoreError::LengthMismatch { .. })
        ));
        assert!(matches!(store.read(&other, 0, None), Err(StoreError::NotFound)));
        let mut long = Incoming::new(2).unwrap();
        assert!(matches!(
            long.extend(b"abc"),
            Err(StoreError::LengthMismatch { .. })
        ));
        assert!(matches!(
            Incoming::new(MAX_CHUNK_BYTES + 1),
            Err(StoreError::TooLarge(_))
        ));
    }

    #[test]
    fn a_torn_file_is_replaced_and_a_chunk_being_written_is_not_served() {
        let (_dir, store) = store();
        // A crash in the middle of a write in place left part of a file.
        let id = ChunkId::random();
        let payload = vec![3u8; 100_000];
        fs::create_dir_all(store.path_of(&id).parent().unwrap()).unwrap();
        fs::write(store.path_of(&id), b"torn").unwrap();
        store.put(&id, &payload, None).unwrap();
        assert_eq!(store.read(&id, 0, None).unwrap(), payload);
        assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0);
        // While a write in place runs, the chunk is absent to readers, to
        // the listing and to the scrubber's quarantine.
        store.writing.lock().unwrap().insert(id);
        assert!(matches!(store.read(&id, 0, None), Err(StoreError::NotFound)));
        assert!(matches!(store.len(&id), Err(StoreError::NotFound)));
        assert!(store.list().unwrap().is_empty());
        store.quarantine(&id);
        store.writing.lock().unwrap().remove(&id);
        assert_eq!(store.read(&id, 0, None).unwrap(), payload);
    }

    #[test]
    fn empty_chunk_reads_empty() {
        let (_dir, store) = store();
        let id = ChunkId::random();
        store.put(&id, b"", None).unwrap();
        assert_eq!(store.read(&id, 0, None).unwrap(), b"");
    }

    #[test]
    fn transfer_checksum_mismatch_stores_nothing() {
        let (_dir, store) = store();
        let id = ChunkId::random();
        assert!(matches!(
            store.put(&id, b"abc", Some(1)),
            Err(StoreError::TransferChecksum { .. })
        ));
        assert!(matches!(store.read(&id, 0, None), Err(StoreError::NotFound)));
    }

    #[test]
    fn flipped_byte_is_detected_and_quarantined() {
        let (_dir, store) = store();
        let id = ChunkId::random();
        let payload = vec![7u8; 150_000];
        store.put(&id, &payload, None).unwrap();
        let path = store.path_of(&id);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        // A range that avoids the damaged block still verifies.
        assert_eq!(store.read(&id, 0, Some(10)).unwrap(), vec![7u8; 10]);
        assert!(matches!(store.read(&id, 0, None), Err(StoreError::Corrupt(_))));
        assert!(matches!(store.read(&id, 0, Some(10)), Err(StoreError::NotFound)));
        assert!(store.root().join("quarantine").join(id.to_string()).exists());
    }

    #[test]
    fn truncated_chunk_is_corrupt() {
        let (_dir, store) = store();
        let id = ChunkId::random();
        store.put(&id, &[1u8; 100_000], None).unwrap();
        let file = OpenOptions::new().write(true).open(store.path_of(&id)).unwrap();
        file.set_len(5_000).unwrap();
        assert!(matches!(store.read(&id, 0, None), Err(StoreError::Corrupt(_))));
    }
}
