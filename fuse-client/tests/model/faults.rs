//! The model run with store faults: a few percent of the store's calls fail
//! before taking effect, fail after taking effect (a lost answer), or are
//! delayed. Each operation must succeed or fail with an errno, never hang
//! nor panic; and after the faults stop and the filesystem is mounted
//! afresh, every file whose last change was acknowledged by an fsync holds
//! exactly what it held then.
//!
//! A failed write or truncate leaves a file's contents unknown to the test
//! (part of it may have landed), so only acknowledged contents are checked.

use std::collections::BTreeMap;
use std::sync::Arc;

use bucketfs::fs::{Fs, SetAttr};

use crate::driver::{config, Harness, Settings};
use crate::rng::Rng;

/// Calls in a million that meet a fault.
const FAULTS_PER_MILLION: u32 = 40_000;
const PART: u64 = bucketfs_common::extension::CHUNK_SIZE as u64;

#[derive(Debug, Default)]
struct Tracked {
    /// What the file holds, while every change to it succeeded.
    known: Option<Vec<u8>>,
    /// What an fsync acknowledged.
    acked: Option<Vec<u8>>,
    /// A change was tried after the acknowledgement.
    changed: bool,
}

impl Tracked {
    fn change(&mut self, applied: Option<impl FnOnce(&mut Vec<u8>)>) {
        self.changed = true;
        match (applied, &mut self.known) {
            (Some(f), Some(data)) => f(data),
            _ => self.known = None,
        }
    }
}

pub async fn run(settings: Settings, seed: u64, rng: &mut Rng, steps: usize) -> Result<(), String> {
    let mut h = Harness::new(settings);
    h.store.random_faults(seed, FAULTS_PER_MILLION);
    let result = drive(&mut h, rng, steps).await;
    h.finish(result)
}

async fn drive(h: &mut Harness, rng: &mut Rng, steps: usize) -> Result<(), String> {
    let mut files: BTreeMap<String, Tracked> = BTreeMap::new();
    let mut handles: Vec<(u64, String)> = Vec::new();
    let mut made = 0;
    for _ in 0..steps {
        let handle = rng.pick(&handles).cloned();
        let path = rng.pick(&files.keys().cloned().collect::<Vec<_>>()).cloned();
        match (rng.below(100), handle, path) {
            (0..=14, _, _) => {
                made += 1;
                let name = format!("f{made}");
                let created =
                    h.fs.create(1, &name, 0o644, 0, 0, libc::O_CREAT | libc::O_EXCL | libc::O_RDWR)
                        .await;
                h.note(format!("create {name}: {:?}", created.as_ref().map(|(_, fh)| fh)));
                if let Ok((_, fh)) = created {
                    files.insert(
                        name.clone(),
                        Tracked {
                            known: Some(Vec::new()),
                            ..Tracked::default()
                        },
                    );
                    handles.push((fh, name));
                }
            }
            (15..=24, _, Some(path)) => {
                let trunc = rng.chance(30);
                let flags = libc::O_RDWR | if trunc { libc::O_TRUNC } else { 0 };
                let opened = match h.resolve(&path).await {
                    Ok(attr) => h.fs.open(attr.ino, flags).await.map(|(fh, _)| fh),
                    Err(e) => Err(e),
                };
                h.note(format!("open {path} trunc {trunc}: {opened:?}"));
                let file = files.get_mut(&path).expect("tracked");
                match opened {
                    Ok(fh) => {
                        handles.push((fh, path));
                        if trunc {
                            file.change(Some(|d: &mut Vec<u8>| d.clear()));
                        }
                    }
                    Err(_) if trunc => file.change(None::<fn(&mut Vec<u8>)>),
                    Err(_) => {}
                }
            }
            (25..=59, Some((fh, path)), _) => {
                let size = files[&path].known.as_ref().map_or(0, |d| d.len() as u64);
                let (offset, len) = match rng.below(10) {
                    0 => (PART - 1 - rng.below(2000), 1 + rng.below(4000)),
                    1..=4 => (size, 1 + rng.below(50_000)),
                    _ => (rng.below(size + 1000), 1 + rng.below(5000)),
                };
                let data = rng.bytes(len as usize);
                let wrote = h.fs.write(fh, offset, &data).await;
                h.note(format!("write {path} at {offset} len {len}: {wrote:?}"));
                let apply = wrote.is_ok().then_some(|d: &mut Vec<u8>| {
                    let end = offset as usize + data.len();
                    if d.len() < end {
                        d.resize(end, 0);
                    }
                    d[offset as usize..end].copy_from_slice(&data);
                });
                files.get_mut(&path).expect("tracked").change(apply);
            }
            (60..=66, _, Some(path)) => {
                let size = rng.below(20_000);
                let cut = match h.resolve(&path).await {
                    Ok(attr) => {
                        let change = SetAttr {
                            size: Some(size),
                            ..SetAttr::default()
                        };
                        h.fs.setattr(attr.ino, change).await.map(|_| ())
                    }
                    Err(e) => Err(e),
                };
                h.note(format!("truncate {path} to {size}: {cut:?}"));
                let apply = cut
                    .is_ok()
                    .then_some(|d: &mut Vec<u8>| d.resize(size as usize, 0));
                files.get_mut(&path).expect("tracked").change(apply);
            }
            (67..=81, Some((fh, path)), _) => {
                let synced = h.fs.fsync(fh).await;
                h.note(format!("fsync {path}: {synced:?}"));
                let file = files.get_mut(&path).expect("tracked");
                if let (Ok(()), Some(known)) = (synced, &file.known) {
                    file.acked = Some(known.clone());
                    file.changed = false;
                }
            }
            (82..=92, Some((fh, path)), _) => {
                let flushed = h.fs.flush(fh).await;
                let released = h.fs.release(fh).await;
                h.note(format!("close {path}: {flushed:?} {released:?}"));
                handles.retain(|(f, _)| *f != fh);
            }
            (93..=95, _, Some(path)) => {
                let gone = h.fs.unlink(1, &path).await;
                h.note(format!("unlink {path}: {gone:?}"));
                // Whether or not it went, nothing is promised of it now.
                files.remove(&path);
                handles.retain(|(_, p)| *p != path);
            }
            (96..=99, _, _) => {
                remount(h, &mut handles).await;
            }
            _ => {}
        }
    }
    h.store.random_faults(0, 0);
    remount(h, &mut handles).await;
    for (path, file) in &files {
        let Some(acked) = file.acked.as_ref().filter(|_| !file.changed) else {
            continue;
        };
        let have = h.contents(path).await.map_err(|e| format!("read {path}: {e}"))?;
        if have != *acked {
            return Err(format!(
                "{path}: {} bytes after the remount, {} acknowledged",
                have.len(),
                acked.len()
            ));
        }
    }
    Ok(())
}

/// Closes every handle and mounts afresh; failures are the faults'.
async fn remount(h: &mut Harness, handles: &mut Vec<(u64, String)>) {
    for (fh, _) in handles.drain(..) {
        let _ = h.fs.flush(fh).await;
        let _ = h.fs.release(fh).await;
    }
    let synced = h.fs.sync_all().await;
    h.note(format!("remount (sync: {synced:?})"));
    let config = config(h.settings, h.dir.path());
    h.fs = Arc::new(Fs::new(h.store.clone(), config).expect("an Fs"));
}
