//! The write-back journal: what closes that returned before their upload
//! still owe the store, kept in files under the cache directory, so that a
//! daemon killed before an upload loses nothing: the next mount of the
//! bucket from the same cache directory replays what is left (see
//! `replay.rs`).
//!
//! Records are appended, one `write` each, and never fsynced: they outlive
//! the daemon (the kernel holds its writes), not the machine, as a local
//! file system's unsynced writes do. fsync of a file still waits for the
//! store. A record names a key and what the store owes it: a whole object
//! (`Put`, with its bytes), new attributes for a pending one (`Meta`), a
//! delete, a directory marker, a directory's move, and `Done`: the store
//! now has every record of these keys up to a sequence number.
//!
//! Segments roll over at `SEGMENT_BYTES`; the oldest goes once no owed key
//! was first recorded in it (later records of a key are always in newer
//! segments, so dropping the oldest first never drops a record still
//! needed). One mount at a time holds a journal directory (an flock); a
//! second mount of the bucket takes the next free one.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::store::Metadata;

/// A segment rolls over past this many bytes.
const SEGMENT_BYTES: u64 = 16 << 20;
/// The first bytes of every record.
const MAGIC: &[u8; 4] = b"BFJ1";
/// Magic, sequence number, header length, body length, crc32c.
const FRAME: usize = 4 + 8 + 4 + 4 + 4;

/// One journal record (its header; a `Put`'s bytes follow it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Record {
    /// `key` must become an object of the record's body and `meta`; the
    /// store held `base` (an ETag; `None`: nothing) when it was written.
    Put {
        key: String,
        meta: Metadata,
        base: Option<String>,
    },
    /// New attributes for the `Put` or `Dir` owed to `key`.
    Meta { key: String, meta: Metadata },
    /// `key` must go, if the store still holds `etag` there (`None`: the
    /// store never had it; only what is owed to `key` is dropped).
    Delete { key: String, etag: Option<String> },
    /// The directory marker `key` must be written with `meta`.
    Dir {
        key: String,
        meta: Metadata,
        base: Option<String>,
    },
    /// Keys under the prefix `from` moved under `to`.
    Moved { from: String, to: String },
    /// The store has every record of each key up to its sequence number.
    Done { keys: Vec<(String, u64)> },
}

/// What the store is owed for one key once the records are read.
#[derive(Debug, Clone, PartialEq)]
pub enum Owed {
    /// An object, to be written over any of `bases` (ETags; `None`:
    /// nothing): its record's base, and what an owed delete it replaced
    /// would have removed first.
    Put {
        meta: Metadata,
        bases: Vec<Option<String>>,
        body: Bytes,
    },
    Delete {
        etag: Option<String>,
    },
    Dir {
        meta: Metadata,
        bases: Vec<Option<String>>,
    },
}

/// Owed keys, each with the sequence number of its latest record and a
/// value: how `Moved` and `Done` records act, for the replay's ledger and
/// the live journal alike.
#[derive(Debug)]
struct OwedKeys<T> {
    keys: HashMap<String, (u64, T)>,
}

impl<T> Default for OwedKeys<T> {
    fn default() -> Self {
        Self { keys: HashMap::new() }
    }
}

impl<T> OwedKeys<T> {
    /// Re-keys everything under `from` to be under `to`.
    fn moved(&mut self, from: &str, to: &str) {
        let moved: Vec<String> = self
            .keys
            .keys()
            .filter(|k| k.starts_with(from))
            .cloned()
            .collect();
        for key in moved {
            let owed = self.keys.remove(&key).expect("listed");
            self.keys.insert(format!("{to}{}", &key[from.len()..]), owed);
        }
    }

    /// Drops the keys whose latest record is at most the sequence number
    /// given with them; answers their values.
    fn done(&mut self, keys: Vec<(String, u64)>) -> Vec<T> {
        let mut dropped = Vec::new();
        for (key, upto) in keys {
            if self.keys.get(&key).is_some_and(|(at, _)| *at <= upto) {
                dropped.push(self.keys.remove(&key).expect("present").1);
            }
        }
        dropped
    }
}

/// What a write over `base` may find, when `before` was owed to its key:
/// a delete owed before a write of a new file may or may not have landed
/// (the write waits for it), and a rewrite of a file not yet landed keeps
/// the bases its first write had.
fn bases(before: Option<&Owed>, base: Option<String>) -> Vec<Option<String>> {
    let mut bases = vec![base.clone()];
    match before {
        Some(Owed::Delete { etag: Some(etag) }) if base.is_none() => bases.push(Some(etag.clone())),
        Some(Owed::Put { bases: earlier, .. } | Owed::Dir { bases: earlier, .. }) if earlier[0] == base => {
            bases.extend(earlier[1..].iter().cloned());
        }
        _ => {}
    }
    bases
}

/// Keys and what they are owed, from records read in order: the latest
/// record of a key decides.
#[derive(Debug, Default)]
pub struct Ledger {
    owed: OwedKeys<Owed>,
}

impl Ledger {
    pub fn apply(&mut self, seq: u64, record: Record, body: Bytes) {
        let owed = &mut self.owed.keys;
        match record {
            Record::Put { key, meta, base } => {
                let bases = bases(owed.get(&key).map(|o| &o.1), base);
                owed.insert(key, (seq, Owed::Put { meta, bases, body }));
            }
            Record::Dir { key, meta, base } => {
                let bases = bases(owed.get(&key).map(|o| &o.1), base);
                owed.insert(key, (seq, Owed::Dir { meta, bases }));
            }
            Record::Delete { key, etag } => {
                owed.insert(key, (seq, Owed::Delete { etag }));
            }
            Record::Meta { key, meta } => {
                if let Some((at, Owed::Put { meta: m, .. } | Owed::Dir { meta: m, .. })) = owed.get_mut(&key)
                {
                    *m = meta;
                    *at = seq;
                }
            }
            Record::Moved { from, to } => self.owed.moved(&from, &to),
            Record::Done { keys } => {
                self.owed.done(keys);
            }
        }
    }

    /// What is still owed, in the order of each key's latest record.
    pub fn into_owed(self) -> Vec<(String, Owed)> {
        let mut owed: Vec<(u64, String, Owed)> = self
            .owed
            .keys
            .into_iter()
            .map(|(k, (seq, o))| (seq, k, o))
            .collect();
        owed.sort_by_key(|(seq, _, _)| *seq);
        owed.into_iter().map(|(_, k, o)| (k, o)).collect()
    }
}

struct State {
    /// The last sequence number handed out.
    seq: u64,
    active: File,
    active_number: u64,
    active_len: u64,
    /// Owed keys, with the segment of their first record.
    owed: OwedKeys<u64>,
    /// Owed keys first recorded in each segment.
    first_in: BTreeMap<u64, usize>,
}

/// This mount's journal.
pub struct Journal {
    dir: PathBuf,
    state: Mutex<State>,
    _lock: nix::fcntl::Flock<File>,
}

/// Journal directories of one bucket: `bucketfs-journal-NAME`, then
/// `…-NAME.1`, `.2`… for mounts of it running at the same time.
fn journal_dirs(cache_dir: &Path, name: &str) -> io::Result<Vec<PathBuf>> {
    let base = format!("bucketfs-journal-{name}");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(cache_dir)?
        .filter_map(Result::ok)
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n == base.as_str() || n.strip_prefix(&base).is_some_and(|rest| rest.starts_with('.'))
        })
        .map(|e| e.path())
        .collect();
    dirs.sort();
    Ok(dirs)
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:016}.seg"))
}

/// The segments in `dir`, oldest first.
fn segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let number = name.strip_suffix(".seg")?.parse().ok()?;
            Some((number, e.path()))
        })
        .collect();
    found.sort();
    Ok(found)
}

/// The records of one segment, up to the first torn or damaged one.
pub fn read_segment(bytes: &[u8]) -> Vec<(u64, Record, Bytes)> {
    let mut out = Vec::new();
    let mut at = 0;
    while bytes.len() >= at + FRAME && &bytes[at..at + 4] == MAGIC {
        let word = |i: usize| u32::from_le_bytes(bytes[at + i..at + i + 4].try_into().expect("4 bytes"));
        let seq = u64::from_le_bytes(bytes[at + 4..at + 12].try_into().expect("8 bytes"));
        let (header_len, body_len, crc) = (word(12) as usize, word(16) as usize, word(20));
        let end = at + FRAME + header_len + body_len;
        if end > bytes.len()
            || crc32c::crc32c(&bytes[at + 4..at + 20]) ^ crc32c::crc32c(&bytes[at + FRAME..end]) != crc
        {
            tracing::warn!(
                offset = at,
                "journal record torn or damaged; the rest of its segment is ignored"
            );
            break;
        }
        let header = &bytes[at + FRAME..at + FRAME + header_len];
        match serde_json::from_slice::<Record>(header) {
            Ok(record) => {
                let body = Bytes::copy_from_slice(&bytes[at + FRAME + header_len..end]);
                out.push((seq, record, body));
            }
            Err(e) => {
                tracing::warn!(offset = at, error = %e, "journal record unreadable; the rest of its segment is ignored");
                break;
            }
        }
        at = end;
    }
    out
}

/// One record as written: frame, header, body.
fn frame(seq: u64, record: &Record, body: &[u8]) -> Vec<u8> {
    let header = serde_json::to_vec(record).expect("records serialize");
    let mut out = Vec::with_capacity(FRAME + header.len() + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    let crc = crc32c::crc32c(&out[4..20]) ^ crc32c::crc32c_append(crc32c::crc32c(&header), body);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(body);
    out
}

/// Journals left by mounts that are gone: their directories (locked by the
/// caller while it replays them) and what they still owe, in order.
pub struct Leftovers {
    pub owed: Vec<(String, Owed)>,
    /// The directories read and their locks; `Journal::open` takes the
    /// first for itself, the others are removed once replayed.
    pub dirs: Vec<(PathBuf, nix::fcntl::Flock<File>)>,
    /// The last sequence number found.
    pub last_seq: u64,
}

/// Reads every journal of the bucket that no running mount holds.
pub fn leftovers(cache_dir: &Path, name: &str) -> io::Result<Leftovers> {
    let mut owed = Vec::new();
    let mut dirs = Vec::new();
    let mut last_seq = 0;
    for dir in journal_dirs(cache_dir, name)? {
        let Some(lock) = crate::disk_cache::lock_dir(&dir)? else {
            continue;
        };
        // Sequence numbers order the records of one mount only: each
        // journal has a ledger of its own.
        let mut ledger = Ledger::default();
        for (_, path) in segments(&dir)? {
            for (seq, record, body) in read_segment(&std::fs::read(&path)?) {
                last_seq = last_seq.max(seq);
                ledger.apply(seq, record, body);
            }
        }
        owed.extend(ledger.into_owed());
        dirs.push((dir, lock));
    }
    Ok(Leftovers { owed, dirs, last_seq })
}

impl Journal {
    /// Opens this mount's journal after `leftovers` were replayed: the
    /// first free directory of the bucket, emptied; the other leftover
    /// directories are removed. `unreplayed` (what the store did not take)
    /// is written again first, for the next mount to retry.
    pub fn open(
        cache_dir: &Path,
        name: &str,
        leftovers: Leftovers,
        unreplayed: &[(String, Owed)],
    ) -> io::Result<Self> {
        let mut dirs = leftovers.dirs.into_iter();
        let (dir, lock) = match dirs.next() {
            Some(taken) => taken,
            None => Self::free_dir(cache_dir, name)?,
        };
        for (other, _lock) in dirs {
            std::fs::remove_dir_all(&other)?;
        }
        let old = segments(&dir)?;
        let next = old.last().map_or(0, |(n, _)| n + 1);
        let journal = Self {
            state: Mutex::new(State {
                seq: leftovers.last_seq,
                active: Self::create_segment(&dir, next)?,
                active_number: next,
                active_len: 0,
                owed: OwedKeys::default(),
                first_in: BTreeMap::new(),
            }),
            dir,
            _lock: lock,
        };
        for (key, owed) in unreplayed {
            let key = key.clone();
            // A delete first, so the write keeps every base it may find.
            let (meta, bases) = match owed {
                Owed::Put { meta, bases, .. } | Owed::Dir { meta, bases } => (meta.clone(), bases),
                Owed::Delete { etag } => {
                    journal.append(
                        Record::Delete {
                            key,
                            etag: etag.clone(),
                        },
                        &[],
                    )?;
                    continue;
                }
            };
            if let Some(Some(etag)) = bases.get(1) {
                journal.append(
                    Record::Delete {
                        key: key.clone(),
                        etag: Some(etag.clone()),
                    },
                    &[],
                )?;
            }
            let base = bases[0].clone();
            match owed {
                Owed::Put { body, .. } => journal.append(Record::Put { key, meta, base }, body)?,
                _ => journal.append(Record::Dir { key, meta, base }, &[])?,
            };
        }
        for (_, path) in old {
            std::fs::remove_file(path)?;
        }
        Ok(journal)
    }

    /// A directory of the bucket no other mount holds, made and locked.
    fn free_dir(cache_dir: &Path, name: &str) -> io::Result<(PathBuf, nix::fcntl::Flock<File>)> {
        for n in 0.. {
            let dir = match n {
                0 => cache_dir.join(format!("bucketfs-journal-{name}")),
                n => cache_dir.join(format!("bucketfs-journal-{name}.{n}")),
            };
            crate::disk_cache::private_dir(&dir)?;
            if let Some(lock) = crate::disk_cache::lock_dir(&dir)? {
                return Ok((dir, lock));
            }
        }
        unreachable!("some directory is free")
    }

    fn create_segment(dir: &Path, number: u64) -> io::Result<File> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(segment_path(dir, number))
    }

    /// The last sequence number handed out: a `done` with it covers every
    /// record written so far.
    pub fn seq(&self) -> u64 {
        self.state.lock().unwrap().seq
    }

    /// Appends `record` (and `body`); answers its sequence number.
    pub fn append(&self, record: Record, body: &[u8]) -> io::Result<u64> {
        let mut state = self.state.lock().unwrap();
        if state.active_len >= SEGMENT_BYTES {
            let number = state.active_number + 1;
            state.active = Self::create_segment(&self.dir, number)?;
            state.active_number = number;
            state.active_len = 0;
        }
        let seq = state.seq + 1;
        let bytes = frame(seq, &record, body);
        state.active.write_all(&bytes)?;
        state.seq = seq;
        state.active_len += bytes.len() as u64;
        let segment = state.active_number;
        match record {
            Record::Put { key, .. } | Record::Dir { key, .. } | Record::Delete { key, .. } => {
                if let Some((_, old)) = state.owed.keys.insert(key, (seq, segment)) {
                    Self::unpin(&mut state, old);
                }
                *state.first_in.entry(segment).or_default() += 1;
            }
            Record::Meta { key, .. } => {
                if let Some((at, _)) = state.owed.keys.get_mut(&key) {
                    *at = seq;
                }
            }
            Record::Moved { from, to } => state.owed.moved(&from, &to),
            Record::Done { keys } => {
                for segment in state.owed.done(keys) {
                    Self::unpin(&mut state, segment);
                }
                self.drop_segments(&mut state);
            }
        }
        Ok(seq)
    }

    fn unpin(state: &mut State, segment: u64) {
        if let Some(n) = state.first_in.get_mut(&segment) {
            *n -= 1;
            if *n == 0 {
                state.first_in.remove(&segment);
            }
        }
    }

    /// Removes the oldest segments no owed key was first recorded in.
    fn drop_segments(&self, state: &mut State) {
        let oldest_needed = state
            .first_in
            .keys()
            .next()
            .copied()
            .unwrap_or(state.active_number);
        for number in (0..oldest_needed.min(state.active_number)).rev() {
            match std::fs::remove_file(segment_path(&self.dir, number)) {
                Ok(()) => {}
                // Removed before: so are all older ones.
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => {
                    tracing::warn!(error = %e, number, "cannot remove a journal segment");
                    break;
                }
            }
        }
    }

    /// Is anything still owed?
    pub fn owes(&self) -> bool {
        !self.state.lock().unwrap().owed.keys.is_empty()
    }

    /// Empties the journal if nothing is owed (everything landed: a sync,
    /// an unmount), so it keeps no bytes the store already has.
    pub fn tidy(&self) {
        let mut state = self.state.lock().unwrap();
        if !state.owed.keys.is_empty() || state.active_len == 0 {
            return;
        }
        state.first_in.clear();
        self.drop_segments(&mut state);
        match state.active.set_len(0) {
            Ok(()) => state.active_len = 0,
            Err(e) => tracing::warn!(error = %e, "cannot empty the write-back journal"),
        }
    }

    /// The store has every record of each key up to its sequence number.
    pub fn done(&self, keys: Vec<(String, u64)>) {
        if keys.is_empty() {
            return;
        }
        if let Err(e) = self.append(Record::Done { keys }, &[]) {
            tracing::warn!(error = %e, "cannot write to the write-back journal");
        }
    }

    /// Appends `record`; a failure is logged (the change still goes to the
    /// store, only its safety across a crash of the daemon is lost).
    pub fn note(&self, record: Record) {
        if let Err(e) = self.append(record, &[]) {
            tracing::warn!(error = %e, "cannot write to the write-back journal");
        }
    }
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
