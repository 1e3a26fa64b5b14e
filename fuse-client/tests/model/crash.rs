//! A daemon killed with write-back closes still on their way: random
//! closes, rewrites, chmods, truncates and unlinks on a write-back mount with a
//! journal, then its runtime dropped where it stands (every background
//! upload and delete dies mid-flight, as with `kill -9`), then a fresh
//! mount over the same cache directory. After its replay the store holds
//! exactly what every acknowledged close, chmod and unlink said.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bucketfs::fs::{Fs, SetAttr, ROOT};
use bucketfs::memory::MemoryStore;
use bucketfs::replay::open_journal;
use bucketfs::store::Store;

use crate::driver::{config, Settings};
use crate::rng::Rng;

/// What a file should be once the store has every acknowledged change.
#[derive(Debug, Clone, PartialEq)]
struct Want {
    body: Vec<u8>,
    mode: u32,
}

/// Runs random changes on a fresh write-back mount until the crash;
/// answers what they promised.
async fn until_the_crash(
    rng: &mut Rng,
    store: &Store,
    dir: &std::path::Path,
) -> Result<BTreeMap<String, Option<Want>>, String> {
    let settings = Settings {
        write_back: 4,
        versioned: false,
        feed: false,
    };
    let journal = open_journal(store, dir, "crash")
        .await
        .map_err(|e| e.to_string())?;
    let fs = Arc::new(
        Fs::new(store.clone(), config(settings, dir))
            .map_err(|e| e.to_string())?
            .with_journal(Arc::new(journal)),
    );
    let mut want: BTreeMap<String, Option<Want>> = BTreeMap::new();
    for _ in 0..1 + rng.below(40) {
        let name = format!("f{}", rng.below(6));
        let known = want.get(&name).cloned().flatten();
        match rng.below(10) {
            0..=5 => {
                let len = match rng.chance(10) {
                    true => 200_000 + rng.below(100_000),
                    false => rng.below(3_000),
                } as usize;
                let body = rng.bytes(len);
                let fh = match fs.lookup(ROOT, &name).await {
                    Ok(attr) => fs
                        .open(attr.ino, libc::O_WRONLY | libc::O_TRUNC)
                        .await
                        .map(|(fh, _)| fh),
                    Err(_) => fs
                        .create(ROOT, &name, 0o644, 0, 0, libc::O_WRONLY)
                        .await
                        .map(|(_, fh)| fh),
                }
                .map_err(|e| format!("open {name}: {e}"))?;
                fs.write(fh, 0, &body)
                    .await
                    .map_err(|e| format!("write {name}: {e}"))?;
                fs.flush(fh).await.map_err(|e| format!("close {name}: {e}"))?;
                fs.release(fh).await.map_err(|e| format!("release {name}: {e}"))?;
                let mode = known.map_or(0o644, |w| w.mode);
                want.insert(name, Some(Want { body, mode }));
            }
            6 if known.is_some() => {
                fs.unlink(ROOT, &name)
                    .await
                    .map_err(|e| format!("unlink {name}: {e}"))?;
                want.insert(name, None);
            }
            7 if known.is_some() => {
                let ino = fs.lookup(ROOT, &name).await.map_err(|e| e.to_string())?.ino;
                let mode = 0o600 + rng.below(0o100) as u32;
                let change = SetAttr {
                    mode: Some(mode),
                    ..SetAttr::default()
                };
                fs.setattr(ino, change)
                    .await
                    .map_err(|e| format!("chmod {name}: {e}"))?;
                want.insert(name, known.map(|w| Want { mode, ..w }));
            }
            8 if known.is_some() => {
                let ino = fs.lookup(ROOT, &name).await.map_err(|e| e.to_string())?.ino;
                let mut known = known.expect("known");
                known
                    .body
                    .truncate(rng.below(known.body.len() as u64 + 1) as usize);
                let change = SetAttr {
                    size: Some(known.body.len() as u64),
                    ..SetAttr::default()
                };
                fs.setattr(ino, change)
                    .await
                    .map_err(|e| format!("truncate {name}: {e}"))?;
                want.insert(name, Some(known));
            }
            // Time passes: some uploads land.
            _ => tokio::time::sleep(Duration::from_millis(rng.below(60))).await,
        }
    }
    Ok(want)
}

/// Files whose store state differs from `want`.
async fn differences(store: &Store, want: &BTreeMap<String, Option<Want>>) -> Vec<String> {
    let mut wrong = Vec::new();
    for (key, want) in want {
        let have = match store.head(key, None).await.ok().flatten() {
            None => None,
            Some(info) => {
                let body = store
                    .get_range(
                        &bucketfs::store::Source {
                            key: key.clone(),
                            version_id: None,
                            etag: info.etag.clone(),
                        },
                        0,
                        info.size,
                    )
                    .await
                    .map(|b| b.to_vec())
                    .unwrap_or_default();
                let mode = info
                    .metadata
                    .get("mode")
                    .and_then(|m| m.parse::<u32>().ok())
                    .unwrap_or(0)
                    & 0o7777;
                Some(Want { body, mode })
            }
        };
        if have != *want {
            wrong.push(format!(
                "{key}: want {:?}, have {:?}",
                want.as_ref().map(|w| (w.body.len(), format!("{:o}", w.mode))),
                have.as_ref().map(|w| (w.body.len(), format!("{:o}", w.mode)))
            ));
        }
    }
    wrong
}

#[test]
fn a_killed_write_back_mount_loses_no_acknowledged_change() {
    let lost_without_journal = std::cell::Cell::new(0);
    crate::run_all(900_000, 1_000, |seed| {
        let mut rng = Rng::new(seed);
        let store: Store = Arc::new(MemoryStore::new(false));
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        // The crash: the runtime goes with every task still running on it.
        let runtime = crate::runtime();
        let want = runtime.block_on(until_the_crash(&mut rng, &store, dir.path()))?;
        drop(runtime);
        crate::runtime().block_on(async {
            lost_without_journal.set(lost_without_journal.get() + differences(&store, &want).await.len());
            open_journal(&store, dir.path(), "crash")
                .await
                .map_err(|e| e.to_string())?;
            let wrong = differences(&store, &want).await;
            match wrong.is_empty() {
                true => Ok(()),
                false => Err(wrong.join("\n")),
            }
        })
    });
    // The crashes did catch changes on their way.
    assert!(lost_without_journal.get() > 0);
}
