//! A bounded in-memory cache of object blocks, shared by every open file,
//! optionally backed by a bounded on-disk tier, and the reads that fill it:
//! ranged GETs of whole blocks.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use bytes::{Bytes, BytesMut};
use lru::LruCache;

use crate::disk_cache::{DiskTier, Lifetime};
use crate::error::FsError;
use crate::metrics::{CacheTier, METRICS};
use crate::store::{Source, Store};

/// The unit of caching and of ranged GETs.
pub const BLOCK: u64 = 1 << 20;

pub struct BlockCache {
    inner: Mutex<Inner>,
    capacity: usize,
    disk: Option<DiskTier>,
    /// Blocks being fetched, so a reader waits for a fetch already under
    /// way (readahead) instead of fetching the same bytes again.
    inflight: Mutex<HashMap<(Source, u64), Arc<Notify>>>,
    /// Objects being (or once) fetched whole into the disk tier.
    filling: Mutex<std::collections::HashSet<Source>>,
    /// Buffers of blocks evicted from memory, for the next blocks fetched.
    spare: Mutex<Vec<BytesMut>>,
}

/// Evicted blocks' buffers kept for reuse. A new 1 MiB buffer is a new
/// mapping (the daemon's mmap threshold is 512 KiB) whose 256 pages fault
/// and are zeroed one at a time: a fifth of the daemon's CPU in a cold
/// sequential read. At most this many MiB beyond the cache.
const SPARE_BUFFERS: usize = 16;

/// The tiers a fetch fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// Readahead of a stream (see `BlockCache::readahead_keep`).
    Memory,
    /// A background fill for random reads, which read from the disk tier
    /// without churning memory.
    Disk,
    /// Blocks a reader waited for, and readahead of other objects.
    Both,
}

/// Why blocks are fetched, which says where they are kept.
#[derive(Clone, Copy, Debug)]
enum Fetch {
    /// A reader waits for them: kept in both tiers.
    ForReader,
    /// Readahead or a background fill, into the `Keep` tiers.
    Ahead(Keep),
}

/// Bytes fetched by one GET of a background prefetch; several run at once.
const PREFETCH_PIECE: u64 = 4 * BLOCK;
/// Pieces fetched at once by a background fill.
const FILL_WINDOW: u64 = 4;

struct Inner {
    blocks: LruCache<(Source, u64), Held>,
    bytes: usize,
}

/// A block in memory.
struct Held {
    data: Bytes,
    /// Fetched ahead of the reader and not read since: evicted so, its
    /// bytes count as readahead wasted.
    ahead: bool,
}

impl BlockCache {
    /// A cache holding at most `capacity` bytes of blocks in memory.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                blocks: LruCache::unbounded(),
                bytes: 0,
            }),
            capacity,
            disk: None,
            inflight: Mutex::new(HashMap::new()),
            filling: Mutex::default(),
            spare: Mutex::default(),
        }
    }

    /// Adds a disk tier of at most `capacity` bytes in `dir`: emptied first
    /// and removed at the end (`Lifetime::Private`), or read back and kept
    /// for the next mount (`Lifetime::Persistent`; see `disk_cache.rs`).
    pub fn with_disk(mut self, dir: &Path, capacity: u64, lifetime: Lifetime) -> std::io::Result<Self> {
        self.disk = Some(DiskTier::open(dir, capacity, lifetime)?);
        Ok(self)
    }

    fn get(&self, source: &Source, block: u64) -> Option<Bytes> {
        let key = (source.clone(), block);
        if let Some(held) = self.inner.lock().unwrap().blocks.get_mut(&key) {
            held.ahead = false;
            METRICS.lookup(CacheTier::Memory, true);
            return Some(held.data.clone());
        }
        METRICS.lookup(CacheTier::Memory, false);
        let disk = self.disk.as_ref()?;
        let found = disk.get(&key);
        METRICS.lookup(CacheTier::Disk, found.is_some());
        let data = found?;
        self.insert_memory(key, data.clone(), false);
        Some(data)
    }

    fn contains(&self, source: &Source, block: u64) -> bool {
        let key = (source.clone(), block);
        self.inner.lock().unwrap().blocks.contains(&key)
            || self.disk.as_ref().is_some_and(|d| d.contains(&key))
    }

    /// Caches a fetched block in the `keep` tiers; `ahead`: fetched
    /// before anyone asked for it (readahead).
    fn insert(&self, source: &Source, block: u64, data: Bytes, keep: Keep, ahead: bool) {
        if let Some(disk) = self.disk.as_ref().filter(|_| keep != Keep::Memory) {
            disk.put((source.clone(), block), &data);
        }
        if keep != Keep::Disk {
            self.insert_memory((source.clone(), block), data, ahead);
        }
    }

    fn insert_memory(&self, key: (Source, u64), data: Bytes, ahead: bool) {
        let mut evicted = Vec::new();
        {
            let mut inner = self.inner.lock().unwrap();
            inner.bytes += data.len();
            if let Some(old) = inner.blocks.put(key, Held { data, ahead }) {
                inner.bytes -= old.data.len();
                evicted.push(old);
            }
            while inner.bytes > self.capacity {
                match inner.blocks.pop_lru() {
                    Some((_, old)) => {
                        inner.bytes -= old.data.len();
                        evicted.push(old);
                    }
                    None => break,
                }
            }
        }
        for old in evicted {
            if old.ahead {
                METRICS.readahead_wasted_bytes.inc_by(old.data.len() as u64);
            }
            self.recycle(old.data);
        }
    }

    /// Keeps an evicted block's buffer for reuse, unless a reader still
    /// holds a view of it or enough are kept.
    fn recycle(&self, old: Bytes) {
        let Ok(mut buffer) = old.try_into_mut() else {
            return;
        };
        if buffer.capacity() < BLOCK as usize {
            return;
        }
        buffer.clear();
        let mut spare = self.spare.lock().unwrap();
        if spare.len() < SPARE_BUFFERS {
            spare.push(buffer);
        }
    }

    /// A buffer for one block: a spare one if there is one.
    fn buffer(&self) -> BytesMut {
        self.spare
            .lock()
            .unwrap()
            .pop()
            .unwrap_or_else(|| BytesMut::with_capacity(BLOCK as usize))
    }

    /// Reads `len` bytes at `offset` of `source` (an object of `size`
    /// bytes), fetching each run of missing blocks with one GET.
    pub async fn read(
        &self,
        store: &Store,
        source: &Source,
        size: u64,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, FsError> {
        let end = (offset + len).min(size);
        if offset >= end {
            return Ok(Bytes::new());
        }
        let first = offset / BLOCK;
        let last = (end - 1) / BLOCK;
        let mut blocks = Vec::with_capacity((last - first + 1) as usize);
        let mut block = first;
        while block <= last {
            if let Some(data) = self.get(source, block) {
                blocks.push(data);
                block += 1;
                continue;
            }
            if self.wait_inflight(source, block).await {
                continue; // fetched meanwhile (or failed: then fetched below)
            }
            // Fetch from the first missing block up to the next cached one.
            let mut run_end = block + 1;
            while run_end <= last && !self.contains(source, run_end) {
                run_end += 1;
            }
            let fetched = self
                .fetch(
                    store,
                    source,
                    size,
                    block,
                    (run_end * BLOCK).min(size),
                    Fetch::ForReader,
                )
                .await?;
            blocks.extend(fetched);
            block = run_end;
        }
        if let [data] = blocks.as_slice() {
            // Within one block (the kernel's aligned reads): a view, no copy.
            let from = (offset - first * BLOCK) as usize;
            let to = ((end - first * BLOCK) as usize).min(data.len());
            return Ok(data.slice(from.min(to)..to));
        }
        let mut out = BytesMut::with_capacity((end - offset) as usize);
        for (i, data) in blocks.iter().enumerate() {
            let base = (first + i as u64) * BLOCK;
            let from = offset.saturating_sub(base) as usize;
            let to = ((end - base) as usize).min(data.len());
            if from < to {
                out.extend_from_slice(&data[from..to]);
            }
        }
        Ok(out.freeze())
    }

    /// Reads `len` bytes at `offset` with one GET of just those bytes,
    /// unless their first block is cached: for random reads of a large
    /// object, where fetching a whole block per read would move 256 times
    /// the bytes asked for (a 4 KiB read).
    pub async fn read_small(
        &self,
        store: &Store,
        source: &Source,
        size: u64,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, FsError> {
        let end = (offset + len).min(size);
        let block = offset / BLOCK;
        let key = (source.clone(), block);
        if offset >= end || self.inner.lock().unwrap().blocks.contains(&key) {
            return self.read(store, source, size, offset, len).await;
        }
        // From the disk tier only the segments asked for, and the block is
        // not pulled into memory, which random reads would churn.
        let last = (end - 1) / BLOCK;
        if let Some(disk) = self.disk.as_ref().filter(|_| last == block) {
            let base = block * BLOCK;
            let found = disk.get_range(&key, (offset - base) as usize, (end - base) as usize);
            METRICS.lookup(CacheTier::Disk, found.is_some());
            if let Some(data) = found {
                return Ok(data);
            }
        }
        if last > block && (block..=last).all(|b| self.contains(source, b)) {
            return self.read(store, source, size, offset, len).await;
        }
        store.get_range(source, offset, end - offset).await
    }

    /// Fetches the blocks from `first` up to byte `end` with one GET and
    /// caches them.
    async fn fetch(
        &self,
        store: &Store,
        source: &Source,
        size: u64,
        first: u64,
        end: u64,
        why: Fetch,
    ) -> Result<Vec<Bytes>, FsError> {
        let (keep, ahead) = match why {
            Fetch::ForReader => (Keep::Both, false),
            Fetch::Ahead(keep) => (keep, true),
        };
        let start = first * BLOCK;
        let keys: Vec<(Source, u64)> = (first..end.min(size).div_ceil(BLOCK))
            .map(|b| (source.clone(), b))
            .collect();
        let claimed: Vec<(Source, u64)> = {
            let mut inflight = self.inflight.lock().unwrap();
            keys.into_iter()
                .filter(|k| {
                    if inflight.contains_key(k) {
                        return false;
                    }
                    inflight.insert(k.clone(), Arc::new(Notify::new()));
                    true
                })
                .collect()
        };
        let result = store
            .get_range_blocks(source, start, end.min(size) - start, BLOCK as usize, &|| {
                self.buffer()
            })
            .await;
        let release = || {
            let mut inflight = self.inflight.lock().unwrap();
            for k in &claimed {
                if let Some(n) = inflight.remove(k) {
                    n.notify_waiters();
                }
            }
        };
        let blocks = match result {
            Ok(blocks) => blocks,
            Err(e) => {
                release();
                return Err(e);
            }
        };
        let got: usize = blocks.iter().map(Bytes::len).sum();
        if (got as u64) < end.min(size) - start {
            release();
            return Err(FsError::Io(format!(
                "short read of {}: {} of {} bytes",
                source.key,
                got,
                end - start
            )));
        }
        for (i, b) in blocks.iter().enumerate() {
            self.insert(source, first + i as u64, b.clone(), keep, ahead);
        }
        release();
        Ok(blocks)
    }

    fn is_inflight(&self, source: &Source, block: u64) -> bool {
        self.inflight
            .lock()
            .unwrap()
            .contains_key(&(source.clone(), block))
    }

    /// Waits for a fetch of `block` already under way; false if none was.
    async fn wait_inflight(&self, source: &Source, block: u64) -> bool {
        let notify = match self.inflight.lock().unwrap().get(&(source.clone(), block)) {
            Some(n) => n.clone(),
            None => return false,
        };
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        // The fetch may have ended between the lookup and `enable`.
        if !self
            .inflight
            .lock()
            .unwrap()
            .contains_key(&(source.clone(), block))
        {
            return true;
        }
        notified.await;
        true
    }

    /// Random reads of an object the disk tier can hold whole: fetch all of
    /// it there in the background, a window at a time, once per object and
    /// mount (as s3fs keeps a whole open file in a local file). Reads keep
    /// fetching just their bytes until their block has arrived.
    pub fn fill_in_background(self: &Arc<Self>, store: &Store, source: &Source, size: u64) {
        let Some(disk) = &self.disk else { return };
        if size > disk.capacity / 2 || !self.filling.lock().unwrap().insert(source.clone()) {
            return;
        }
        let (cache, store, source) = (self.clone(), store.clone(), source.clone());
        tokio::spawn(async move {
            use futures::StreamExt;
            // FILL_WINDOW pieces always in flight: waiting for a whole
            // window before the next left the store idle at each window's
            // slowest piece.
            let pieces = (0..size).step_by(PREFETCH_PIECE as usize).map(|start| {
                let (cache, store, source) = (&cache, &store, &source);
                async move {
                    cache
                        .prefetch(store, source, size, start, PREFETCH_PIECE, Keep::Disk)
                        .await
                }
            });
            futures::stream::iter(pieces)
                .buffer_unordered(FILL_WINDOW as usize)
                .for_each(|()| async {})
                .await;
            tracing::debug!(key = %source.key, size, "filled the disk cache with an object read at random");
        });
    }

    /// Where readahead of an object of `size` bytes keeps its blocks. An
    /// object larger than a quarter of the disk tier read front to back
    /// is a stream (a backup, a video, a data set): written to the disk
    /// tier it would push out what the tier holds and cost a write and a
    /// checksum for every byte read (a tenth of a cold 1 GiB read's
    /// speed), as a sequential scan in Postgres goes through a small ring
    /// of buffers and not the shared cache.
    pub fn readahead_keep(&self, size: u64) -> Keep {
        match &self.disk {
            Some(disk) if size > disk.capacity / 4 => Keep::Memory,
            _ => Keep::Both,
        }
    }

    /// Fetches `offset..offset+len` into the `keep` tiers unless already
    /// cached (readahead in the background).
    pub async fn prefetch(
        &self,
        store: &Store,
        source: &Source,
        size: u64,
        offset: u64,
        len: u64,
        keep: Keep,
    ) {
        let end = (offset + len).min(size);
        // Runs of blocks neither cached nor being fetched, cut at multiples
        // of PREFETCH_PIECE so that successive windows make whole pieces.
        let per_piece = PREFETCH_PIECE / BLOCK;
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for block in offset / BLOCK..end.div_ceil(BLOCK) {
            if self.contains(source, block) || self.is_inflight(source, block) {
                continue;
            }
            match runs.last_mut() {
                Some((_, stop)) if *stop == block && block % per_piece != 0 => *stop += 1,
                _ => runs.push((block, block + 1)),
            }
        }
        // Several ranged GETs at once: one stream is slower than the store.
        let pieces = runs
            .into_iter()
            .map(|(first, stop)| self.fetch(store, source, size, first, stop * BLOCK, Fetch::Ahead(keep)));
        for result in futures::future::join_all(pieces).await {
            if let Err(e) = result {
                tracing::debug!(key = %source.key, error = %e, "readahead failed");
            }
        }
    }
}

/// Sequential-read detection for one open file: the window doubles while
/// reads follow each other and drops to nothing on a seek.
#[derive(Debug, Default)]
pub struct Readahead {
    next: u64,
    window: u64,
    /// Bytes up to here were already asked for in the background.
    prefetched: u64,
    /// Up by one for each read that did not follow the ones before, down
    /// by one for each that did, between 0 and `2 * RANDOM_AFTER`.
    seeks: u32,
}

pub const MAX_READAHEAD: u64 = 32 << 20;
/// How far from the furthest read so far a read may start and still count
/// as sequential: the kernel sends its readahead (8 MiB, `read_ahead_kb`)
/// as many requests at once, a sync and an async window together, and they
/// arrive in any order. With 8 MiB, a cold 1 GiB read looked random once
/// and started a background fill of the whole file beside the readahead.
const SEQUENTIAL_SLACK: u64 = 24 << 20;
/// Reads count as random from this many seeks more than sequential reads
/// on, so that neither a read of a sequence arriving late nor a random read
/// landing near the furthest one switches a file's mode.
const RANDOM_AFTER: u32 = 3;

impl Readahead {
    /// Recent reads have mostly not followed each other.
    pub fn is_random(&self) -> bool {
        self.seeks >= RANDOM_AFTER
    }

    /// Notes a read of `len` bytes at `offset`; returns, when it is time,
    /// the range `(offset, len)` to prefetch in the background.
    pub fn advance(&mut self, offset: u64, len: u64) -> Option<(u64, u64)> {
        // The kernel's own readahead sends several requests at once, so
        // they may arrive out of order: near the furthest end counts.
        // The first read, at 0, is not yet a sequence.
        let sequential = (offset > 0 || self.next > 0) && offset.abs_diff(self.next) <= SEQUENTIAL_SLACK;
        let end = offset + len;
        // After a seek the sequence starts again where this read ends: the
        // furthest end so far would make every later read behind it a seek
        // (the end of a file read first, then the file from its start).
        self.next = match sequential {
            true => self.next.max(end),
            false => end,
        };
        self.seeks = match sequential {
            true => self.seeks.saturating_sub(1),
            false => (self.seeks + 1).min(2 * RANDOM_AFTER),
        };
        if !sequential || self.is_random() {
            self.window = 0;
            self.prefetched = 0;
            return None;
        }
        // Ask for more once the reader is half-way into what was asked for;
        // each time, ask for twice as much.
        if self.window > 0 && self.prefetched >= end + self.window / 2 {
            return None;
        }
        self.window = (self.window * 2).clamp(2 * BLOCK, MAX_READAHEAD);
        let from = self.prefetched.max(end);
        self.prefetched = end + self.window;
        Some((from, self.prefetched - from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk_cache::SEGMENT;

    /// Random read patterns: whatever the reads, a prefetch starts at or
    /// past the read that asked for it, never repeats a range already asked
    /// for since the last reset, and is at most `MAX_READAHEAD` long; and a
    /// long enough run of sequential reads always asks for something.
    #[test]
    fn readahead_decisions_hold_their_invariants_for_random_reads() {
        let mut rng = bucketfs_common::testing::Xorshift::new(0x9e37_79b9_7f4a_7c15u64);
        let mut next = |n: u64| rng.below(n);
        for _ in 0..500 {
            let mut r = Readahead::default();
            let mut asked_to = 0u64;
            let mut offset = 0u64;
            for _ in 0..200 {
                let len = 4096 * (1 + next(64));
                offset = match next(4) {
                    0 => next(1 << 34),
                    _ => offset + len,
                };
                match r.advance(offset, len) {
                    Some((from, n)) => {
                        assert!(
                            from >= offset + len,
                            "prefetch {from} behind the read at {offset}+{len}"
                        );
                        assert!(n > 0 && n <= MAX_READAHEAD, "window {n}");
                        assert!(
                            from >= asked_to || r.window == 2 * BLOCK,
                            "asked again for {from}"
                        );
                        asked_to = from + n;
                    }
                    None => {
                        if r.window == 0 {
                            asked_to = 0;
                        }
                    }
                }
            }
            // Then reads that follow each other: readahead starts again.
            let mut asked = false;
            let mut at = offset;
            for _ in 0..64 {
                asked |= r.advance(at, 1 << 20).is_some();
                at += 1 << 20;
            }
            assert!(asked, "sequential reads never prefetched");
        }
    }

    #[test]
    fn readahead_grows_on_sequential_reads_and_resets_on_seeks() {
        let mut r = Readahead::default();
        assert_eq!(r.advance(0, 131072), None);
        assert_eq!(r.advance(131072, 131072), Some((262144, 2 * BLOCK)));
        // Within the prefetched range nothing new is asked for.
        assert_eq!(r.advance(262144, 131072), None);
        // A seek resets it.
        assert_eq!(r.advance(100 << 20, 4096), None);
        assert_eq!(r.advance(300 << 20, 4096), None);
        assert!(!r.is_random(), "two seeks are not yet random reads");
        assert_eq!(r.advance(500 << 20, 4096), None);
        assert!(r.is_random());
    }

    #[test]
    fn the_kernels_readahead_out_of_order_stays_sequential() {
        let mut r = Readahead::default();
        // Two 8 MiB windows at once, their last request first, then the
        // start of the file.
        for block in [15, 0, 14, 1, 2, 3, 13, 4, 5, 6, 7, 8, 9, 10, 11, 12] {
            r.advance(block * BLOCK, BLOCK);
            assert_eq!(r.seeks, 0, "the read of block {block} counted as a seek");
        }
        assert!(r.window > 0 && !r.is_random());
    }

    #[test]
    fn a_random_read_near_the_furthest_one_stays_random() {
        let mut r = Readahead::default();
        for at in [900, 100, 500, 300, 700] {
            r.advance(at << 20, 4096);
        }
        assert!(r.is_random());
        assert_eq!(r.advance((900 << 20) + 8192, 4096), None, "no readahead");
        assert!(r.is_random());
    }

    #[test]
    fn the_cache_stays_within_its_capacity() {
        let cache = BlockCache::new(3 * BLOCK as usize);
        let source = Source::default();
        for i in 0..10 {
            cache.insert(
                &source,
                i,
                Bytes::from(vec![0u8; BLOCK as usize]),
                Keep::Both,
                false,
            );
        }
        assert_eq!(cache.inner.lock().unwrap().bytes, 3 * BLOCK as usize);
        assert!(cache.contains(&source, 9) && !cache.contains(&source, 6));
    }

    #[test]
    fn readahead_evicted_unread_counts_as_wasted() {
        let wasted = || METRICS.readahead_wasted_bytes.get();
        let before = wasted();
        let cache = BlockCache::new(2 * BLOCK as usize);
        let source = Source::default();
        let block = || Bytes::from(vec![1u8; BLOCK as usize]);
        cache.insert(&source, 0, block(), Keep::Both, true);
        cache.insert(&source, 1, block(), Keep::Both, true);
        cache.get(&source, 0).expect("cached");
        // Block 0 was read, block 1 was not; both are evicted.
        cache.insert(&source, 2, block(), Keep::Both, false);
        cache.insert(&source, 3, block(), Keep::Both, false);
        assert_eq!(wasted() - before, BLOCK);
    }

    #[test]
    fn evicted_blocks_lend_their_buffers_unless_still_read() {
        let cache = BlockCache::new(BLOCK as usize);
        let source = Source::default();
        let block = || Bytes::from(vec![7u8; BLOCK as usize]);
        cache.insert(&source, 0, block(), Keep::Both, false);
        let held = cache.get(&source, 0).unwrap();
        cache.insert(&source, 1, block(), Keep::Both, false);
        assert!(
            cache.spare.lock().unwrap().is_empty(),
            "a block still read is not reused"
        );
        drop(held);
        cache.insert(&source, 2, block(), Keep::Both, false);
        let spare = cache.buffer();
        assert!(spare.is_empty() && spare.capacity() >= BLOCK as usize);
        assert!(cache.spare.lock().unwrap().is_empty());
    }

    #[test]
    fn the_disk_tier_serves_evicted_blocks_and_refuses_damaged_ones() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlockCache::new(BLOCK as usize)
            .with_disk(&dir.path().join("blocks"), 2 * BLOCK, Lifetime::Private)
            .unwrap();
        let source = Source::default();
        for i in 0..3 {
            cache.insert(
                &source,
                i,
                Bytes::from(vec![i as u8; BLOCK as usize]),
                Keep::Both,
                false,
            );
        }
        // Block 0 left memory and disk; block 1 left memory only.
        assert!(cache.get(&source, 0).is_none());
        assert_eq!(cache.get(&source, 1).unwrap()[0], 1);
        // A flipped byte in a cache file: the block is dropped, not served.
        let disk = cache.disk.as_ref().unwrap();
        let (path, offset) = disk.file_of(&(source.clone(), 2)).unwrap();
        let mut data = std::fs::read(&path).unwrap();
        data[offset as usize + 10] ^= 1;
        std::fs::write(&path, data).unwrap();
        assert!(disk.get(&(source.clone(), 2)).is_none());
        assert!(!path.exists());
    }

    #[test]
    fn small_reads_from_the_disk_tier_check_only_their_segments() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlockCache::new(0)
            .with_disk(&dir.path().join("blocks"), 4 * BLOCK, Lifetime::Private)
            .unwrap();
        let source = Source::default();
        let block: Vec<u8> = (0..BLOCK as usize).map(|i| (i / 7) as u8).collect();
        cache.insert(&source, 0, Bytes::from(block.clone()), Keep::Both, false);
        let key = (source.clone(), 0);
        let disk = cache.disk.as_ref().unwrap();
        // Across a segment boundary, and at the block's end.
        let at = SEGMENT - 100;
        assert_eq!(disk.get_range(&key, at, at + 4096).unwrap(), block[at..at + 4096]);
        let end = BLOCK as usize;
        assert_eq!(disk.get_range(&key, end - 10, end).unwrap(), block[end - 10..]);
        // Damage in the fourth segment: reads elsewhere are still served,
        // a read touching it is refused and the block dropped.
        let (path, offset) = disk.file_of(&key).unwrap();
        let mut data = std::fs::read(&path).unwrap();
        data[offset as usize + 3 * SEGMENT + 5] ^= 1;
        std::fs::write(&path, data).unwrap();
        assert_eq!(disk.get_range(&key, 0, 4096).unwrap(), block[..4096]);
        assert!(disk.get_range(&key, 3 * SEGMENT, 3 * SEGMENT + 4096).is_none());
        assert!(disk.get_range(&key, 0, 4096).is_none());
    }
}
