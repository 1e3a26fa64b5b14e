//! Write-back deletes: an unlink returns once the name is gone from this
//! mount, and the DELETE reaches the store in the background, many keys per
//! DeleteObjects call. Until it has landed the key is tombstoned: this
//! mount's lookups and listings do not show it, and anything that would
//! write the key again (a commit, a rename onto it) waits for the delete, so
//! the store sees the delete and the new version in the order they were made.
//!
//! A directory removed here while keys under it are still being deleted is
//! tombstoned the same way, as its prefix: listings do not show it, and
//! making a directory of that name again waits for the deletes under it.
//!
//! A listing sent while a delete was on its way may show the key even if
//! the delete has landed by the time the listing answers, so a listing
//! hides what was tombstoned at any moment it was in flight (`Reading`).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use crate::journal::{Journal, Record};
use crate::store::Store;

/// Keys per DeleteObjects call (S3's limit).
const BATCH: usize = 1000;
/// DeleteObjects calls in flight at once. Keys queued while one runs make
/// up the next, so a burst of unlinks batches itself. One: on 2 cores the
/// store's work per call is the limit, and with 4 in flight rm -rf of
/// /usr/include sent about one key per call (7,034 calls, 16-17 s; with
/// one, 2,683 calls, 11.9 s).
const CALLS: usize = 1;
/// How long a call waits for more keys when fewer than a batch are queued
/// and nobody waits for them. Every call costs a transaction and a request
/// whatever its size: deleting 5,000 files one `unlink` at a time sent 256
/// calls of about 20 keys, and the store's work per call was half the
/// CPU of the deletes.
const LINGER: std::time::Duration = std::time::Duration::from_millis(20);

#[derive(Default)]
struct State {
    /// Keys whose delete is queued or in flight, and how many such deletes.
    tombstones: BTreeMap<String, usize>,
    /// Keys (and directory prefixes) this mount is removing from the store
    /// itself right now (an unlink, rmdir or rename under way), and how many
    /// such removals.
    removing: HashMap<String, usize>,
    /// Prefixes (`dir/`) of directories removed here with keys under them
    /// still in `tombstones`.
    removed: HashSet<String>,
    /// Keys to delete, with the journal's sequence number of each delete.
    queue: Vec<(String, Option<u64>)>,
    calls: usize,
    /// Tasks waiting for deletes to land: while there are any, calls go at
    /// once instead of lingering.
    waiters: usize,
    /// Keys given up since the last `drain`.
    lost: Vec<String>,
    /// Bumped by every landing.
    epoch: u64,
    /// Keys (and removed prefixes) landed while a listing was in flight, with
    /// their landing's epoch.
    landed: VecDeque<(u64, String)>,
    /// Listings in flight, by the epoch they started at.
    readers: BTreeMap<u64, usize>,
}

/// A listing in flight: what it shows must not bring back a key deleted
/// since it started.
pub struct Reading<'a> {
    deletes: &'a Deletes,
    since: u64,
}

impl Reading<'_> {
    /// Drops the keys being deleted, or deleted since the listing started,
    /// from a listing's `(key, _)` entries.
    pub fn hide<T>(&self, entries: &mut Vec<(String, T)>) {
        let state = self.deletes.state.lock().unwrap();
        let landed = self.landed(&state);
        if !state.tombstones.is_empty() || !landed.is_empty() {
            entries.retain(|(key, _)| !state.tombstones.contains_key(key) && !landed.contains(key.as_str()));
        }
    }

    /// Drops the common prefixes of directories removed here, or whose
    /// removal landed since the listing started.
    pub fn hide_prefixes(&self, prefixes: &mut Vec<String>) {
        let state = self.deletes.state.lock().unwrap();
        let landed = self.landed(&state);
        if !state.removed.is_empty() || !landed.is_empty() {
            prefixes.retain(|p| !state.removed.contains(p) && !landed.contains(p.as_str()));
        }
    }

    fn landed<'s>(&self, state: &'s State) -> HashSet<&'s str> {
        state
            .landed
            .iter()
            .rev()
            .take_while(|(epoch, _)| *epoch > self.since)
            .map(|(_, key)| key.as_str())
            .collect()
    }
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        let mut state = self.deletes.state.lock().unwrap();
        if let Some(n) = state.readers.get_mut(&self.since) {
            *n -= 1;
            if *n == 0 {
                state.readers.remove(&self.since);
            }
        }
        // Landings no listing in flight predates are of no more use.
        let oldest = state.readers.keys().next().copied().unwrap_or(u64::MAX);
        while state.landed.front().is_some_and(|(epoch, _)| *epoch <= oldest) {
            state.landed.pop_front();
        }
    }
}

pub struct Deletes {
    store: Store,
    state: Mutex<State>,
    /// Bumped whenever deletes land, for the waiters.
    landed: tokio::sync::watch::Sender<u64>,
    /// Cuts a lingering call short: someone waits.
    hurry: tokio::sync::Notify,
    /// Told of every delete that landed (the callers journal the deletes).
    journal: std::sync::OnceLock<Arc<Journal>>,
}

impl Deletes {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            state: Mutex::default(),
            landed: tokio::sync::watch::Sender::new(0),
            hurry: tokio::sync::Notify::new(),
            journal: std::sync::OnceLock::new(),
        }
    }

    /// Tells `journal` of every delete that lands from now on.
    pub fn set_journal(&self, journal: Arc<Journal>) {
        let _ = self.journal.set(journal);
    }

    /// Hides `key` from now on and deletes it in the background; the
    /// journal keeps the delete (of `etag`) until it lands.
    pub fn delete(self: &Arc<Self>, key: String, etag: Option<String>) {
        let seq = self.journal.get().and_then(|journal| {
            let record = Record::Delete {
                key: key.clone(),
                etag,
            };
            journal
                .append(record, &[])
                .inspect_err(|e| tracing::warn!(%key, error = %e, "cannot journal a delete"))
                .ok()
        });
        let mut state = self.state.lock().unwrap();
        *state.tombstones.entry(key.clone()).or_default() += 1;
        state.queue.push((key, seq));
        if state.calls < CALLS {
            state.calls += 1;
            tokio::spawn(self.clone().run());
        }
    }

    /// Is a delete of `key` queued or in flight?
    pub fn is_deleting(&self, key: &str) -> bool {
        self.state.lock().unwrap().tombstones.contains_key(key)
    }

    /// The directory at `prefix` was removed: hides it until every delete
    /// under it has landed.
    pub fn remove_dir(&self, prefix: &str) {
        let mut state = self.state.lock().unwrap();
        if under(&state.tombstones, prefix).next().is_some() {
            state.removed.insert(prefix.to_string());
        }
    }

    /// Marks `key` as being removed by this mount until the answer is
    /// dropped: the change feed's echo of that delete, which may overtake
    /// the removal's own end, then tells this mount nothing new.
    pub fn removing(&self, key: &str) -> Removing<'_> {
        *self
            .state
            .lock()
            .unwrap()
            .removing
            .entry(key.to_string())
            .or_default() += 1;
        Removing {
            deletes: self,
            key: key.to_string(),
        }
    }

    /// Is this mount deleting `key` (queued, in flight, or an unlink,
    /// rmdir or rename of it under way)?
    pub fn is_removing(&self, key: &str) -> bool {
        let state = self.state.lock().unwrap();
        state.tombstones.contains_key(key) || state.removing.contains_key(key)
    }

    /// Is the directory at `prefix` removed, with deletes under it on their way?
    pub fn is_removed(&self, prefix: &str) -> bool {
        self.state.lock().unwrap().removed.contains(prefix)
    }

    /// How many keys under `prefix` are being deleted.
    pub fn pending_under(&self, prefix: &str) -> usize {
        under(&self.state.lock().unwrap().tombstones, prefix).count()
    }

    /// This mount removed `key` (a key, or a directory's prefix) from the
    /// store itself, not through the queue: listings in flight must not
    /// bring it back, as for a delete of the queue's that landed.
    pub fn removed(&self, key: &str) {
        let mut state = self.state.lock().unwrap();
        state.epoch += 1;
        if !state.readers.is_empty() {
            let epoch = state.epoch;
            state.landed.push_back((epoch, key.to_string()));
        }
    }

    /// Call before sending a listing; hide its answer through the result.
    pub fn reading(&self) -> Reading<'_> {
        let mut state = self.state.lock().unwrap();
        let since = state.epoch;
        *state.readers.entry(since).or_default() += 1;
        Reading { deletes: self, since }
    }

    /// Waits until no delete of `key` is queued or in flight.
    pub async fn settled(&self, key: &str) {
        self.wait_for(|t| !t.contains_key(key)).await
    }

    /// Waits until no key under `prefix` is being deleted.
    pub async fn settled_under(&self, prefix: &str) {
        self.wait_for(|t| under(t, prefix).next().is_none()).await
    }

    /// Waits for every delete; answers the keys given up since the last call.
    pub async fn drain(&self) -> Vec<String> {
        self.wait_for(BTreeMap::is_empty).await;
        std::mem::take(&mut self.state.lock().unwrap().lost)
    }

    async fn wait_for(&self, done: impl Fn(&BTreeMap<String, usize>) -> bool) {
        // Subscribed before looking, so a landing in between still wakes us.
        let mut landed = self.landed.subscribe();
        if done(&self.state.lock().unwrap().tombstones) {
            return;
        }
        let _waiting = Waiting::new(self);
        while !done(&self.state.lock().unwrap().tombstones) {
            // The sender lives as long as `self`: this never fails.
            let _ = landed.changed().await;
        }
    }

    /// Sends queued keys until the queue is empty.
    async fn run(self: Arc<Self>) {
        let mut lingered = false;
        loop {
            let keys: Option<Vec<(String, Option<u64>)>> = {
                let mut state = self.state.lock().unwrap();
                if state.queue.is_empty() {
                    state.calls -= 1;
                    return;
                }
                let linger = !lingered && state.queue.len() < BATCH && state.waiters == 0;
                let n = state.queue.len().min(BATCH);
                (!linger).then(|| state.queue.drain(..n).collect())
            };
            let Some(keys) = keys else {
                lingered = true;
                tokio::select! {
                    _ = tokio::time::sleep(LINGER) => {}
                    _ = self.hurry.notified() => {}
                }
                continue;
            };
            lingered = false;
            let (keys, seqs): (Vec<String>, Vec<Option<u64>>) = keys.into_iter().unzip();
            let lost = self.send(&keys).await;
            if let Some(journal) = self.journal.get() {
                let landed = keys.iter().zip(seqs).filter(|(k, _)| !lost.contains(k));
                journal.done(landed.filter_map(|(k, seq)| Some((k.clone(), seq?))).collect());
            }
            {
                let mut state = self.state.lock().unwrap();
                state.epoch += 1;
                let (epoch, listing) = (state.epoch, !state.readers.is_empty());
                for key in keys {
                    if let Some(n) = state.tombstones.get_mut(&key) {
                        *n -= 1;
                        if *n == 0 {
                            state.tombstones.remove(&key);
                        }
                    }
                    if listing {
                        state.landed.push_back((epoch, key));
                    }
                }
                let State {
                    tombstones,
                    removed,
                    landed,
                    ..
                } = &mut *state;
                removed.retain(|prefix| {
                    let pending = under(tombstones, prefix).next().is_some();
                    if !pending && listing {
                        landed.push_back((epoch, prefix.clone()));
                    }
                    pending
                });
                state.lost.extend(lost);
            }
            self.landed.send_modify(|n| *n += 1);
        }
    }

    /// Deletes `keys`; answers those it had to give up (their files are back).
    async fn send(&self, keys: &[String]) -> Vec<String> {
        let failed: Vec<String> = match self.store.delete_many(keys).await {
            Ok(refused) => refused
                .into_iter()
                .map(|(key, code)| {
                    tracing::warn!(%key, %code, "batch delete refused a key; trying it alone");
                    key
                })
                .collect(),
            Err(e) => {
                tracing::warn!(keys = keys.len(), error = %e, "DeleteObjects failed; deleting one by one");
                keys.to_vec()
            }
        };
        let mut lost = Vec::new();
        for key in failed {
            if let Err(e) = self.store.delete(&key).await {
                tracing::error!(%key, error = %e, "delete failed: the file is back");
                lost.push(key);
            }
        }
        lost
    }
}

/// Counts a task in `State::waiters` while it lives; a call lingering
/// when it starts goes at once.
/// A removal under way (see `Deletes::removing`).
pub struct Removing<'a> {
    deletes: &'a Deletes,
    key: String,
}

impl Drop for Removing<'_> {
    fn drop(&mut self) {
        let mut state = self.deletes.state.lock().unwrap();
        if let Some(n) = state.removing.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                state.removing.remove(&self.key);
            }
        }
    }
}

struct Waiting<'a>(&'a Deletes);

impl<'a> Waiting<'a> {
    fn new(deletes: &'a Deletes) -> Self {
        deletes.state.lock().unwrap().waiters += 1;
        deletes.hurry.notify_one();
        Self(deletes)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.state.lock().unwrap().waiters -= 1;
    }
}

/// The tombstoned keys under `prefix`.
fn under<'t>(tombstones: &'t BTreeMap<String, usize>, prefix: &str) -> impl Iterator<Item = &'t String> + 't {
    let prefix = prefix.to_string();
    tombstones
        .range::<String, _>(&prefix..)
        .map(|(k, _)| k)
        .take_while(move |k| k.starts_with(&prefix))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::memory::{Fault, MemoryStore};
    use crate::store::{Metadata, ObjectStore};

    async fn store_with(keys: &[&str]) -> (Arc<MemoryStore>, Arc<Deletes>) {
        let memory = Arc::new(MemoryStore::new(false));
        for key in keys {
            memory.put(key, Bytes::new(), &Metadata::new()).await.unwrap();
        }
        let deletes = Arc::new(Deletes::new(memory.clone()));
        (memory, deletes)
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_deletes_goes_out_in_few_calls_and_hides_its_keys() {
        let keys: Vec<String> = (0..2_500).map(|i| format!("d/{i:05}")).collect();
        let names: Vec<&str> = keys.iter().map(String::as_str).collect();
        let (memory, deletes) = store_with(&names).await;
        let calls = memory.calls();
        for key in &keys {
            deletes.delete(key.clone(), None);
        }
        assert!(deletes.is_deleting("d/00007"));
        assert_eq!(deletes.pending_under("d/"), 2_500);
        deletes.remove_dir("d/");
        assert!(deletes.is_removed("d/"));
        // A listing sent meanwhile does not show them.
        let reading = deletes.reading();
        let mut listed = vec![("d/00001".to_string(), ()), ("e".to_string(), ())];
        reading.hide(&mut listed);
        assert_eq!(listed, [("e".to_string(), ())]);
        drop(reading);
        assert!(deletes.drain().await.is_empty());
        assert!(memory.keys().is_empty());
        assert!(!deletes.is_removed("d/") && !deletes.is_deleting("d/00007"));
        // 1,000 keys a call: three calls, not 2,500.
        assert_eq!(memory.calls() - calls, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_batch_is_deleted_key_by_key_and_a_lost_key_is_reported() {
        let (memory, deletes) = store_with(&["a", "b"]).await;
        // The batch call fails, then "a" alone fails: "b" still goes.
        memory.fault_at(1, Fault::Fail(crate::error::FsError::Io("batch".into())));
        memory.fault_at(2, Fault::Fail(crate::error::FsError::Io("alone".into())));
        deletes.delete("a".into(), None);
        deletes.delete("b".into(), None);
        deletes.settled("b").await;
        assert_eq!(deletes.drain().await, ["a"]);
        assert_eq!(memory.keys(), ["a"]);
        assert!(deletes.drain().await.is_empty(), "reported once");
    }
}
