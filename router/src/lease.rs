//! Leases keep chunks that are written but not yet committed out of the
//! garbage collector's reach.
//!
//! A chunk is recorded with a lease of `--gc-grace-secs`; the collector takes
//! only chunks no version or part references whose lease has run out. A
//! request that streams for longer than that (a large PUT or part, a slow
//! client) renews the leases of the chunks it has written until its commit
//! names them, so the grace can be short — garbage goes within a minute or
//! two — while an upload of any length stays safe. The foreign keys from
//! chunk maps to `chunks` are the last line: a commit that names a chunk the
//! collector took anyway (a router stalled past its lease) fails instead of
//! committing a version without its bytes.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::meta::Meta;

/// The chunks one request has written and not yet committed. Clones share
/// the list; the renewals stop when the last clone is dropped, after the
/// commit that names the chunks.
#[derive(Clone)]
pub struct Leases(Arc<Held>);

struct Held {
    meta: Meta,
    secs: f64,
    ids: Arc<Mutex<Vec<String>>>,
    renewer: OnceLock<JoinHandle<()>>,
}

impl Leases {
    pub fn new(meta: Meta, secs: f64) -> Self {
        Self(Arc::new(Held {
            meta,
            secs,
            ids: Arc::default(),
            renewer: OnceLock::new(),
        }))
    }

    /// Keeps `id` leased while this value (or a clone) lives. The first
    /// chunk held starts the renewals.
    pub fn hold(&self, id: String) {
        let held = &self.0;
        held.ids.lock().expect("lease list").push(id);
        held.renewer.get_or_init(|| {
            let (meta, secs, ids) = (held.meta.clone(), held.secs, held.ids.clone());
            tokio::spawn(async move {
                let every = Duration::from_secs_f64((secs / 3.0).max(0.05));
                loop {
                    tokio::time::sleep(every).await;
                    let ids = ids.lock().expect("lease list").clone();
                    tracing::debug!(chunks = ids.len(), "renewing leases");
                    match meta.renew_leases(&ids, secs).await {
                        Ok(n) if n < ids.len() as u64 => tracing::warn!(
                            lost = ids.len() as u64 - n,
                            "chunks of a write in progress outlived their lease and were collected; its commit will fail"
                        ),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "could not renew chunk leases"),
                    }
                }
            })
        });
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(renewer) = self.renewer.get() {
            renewer.abort();
        }
    }
}
