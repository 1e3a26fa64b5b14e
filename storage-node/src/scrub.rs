//! The scrubber: re-reads every chunk in the background so that silent
//! corruption is found (and quarantined by the store) before a client needs
//! the bytes. It sleeps between chunks in proportion to the work done, so it
//! takes at most about a tenth of one disk's time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bucketfs_common::background::Background;

use crate::metrics::Metrics;
use crate::store::{ChunkStore, StoreError};

/// Runs a scrub pass every `interval` until shutdown.
pub fn spawn(background: &Background, store: Arc<ChunkStore>, metrics: Arc<Metrics>, interval: Duration) {
    background.every("scrubber", interval, move || pass(store.clone(), metrics.clone()));
}

/// Measures the chunk files' disk use every `interval` (a walk of the
/// directory: cheap, but not for every registration refresh).
pub fn spawn_usage(
    background: &Background,
    store: Arc<ChunkStore>,
    metrics: Arc<Metrics>,
    interval: Duration,
) {
    let measure = move || {
        let (store, metrics) = (store.clone(), metrics.clone());
        async move {
            match tokio::task::spawn_blocking(move || store.disk_usage()).await {
                Ok(Ok(bytes)) => {
                    metrics
                        .chunk_disk_bytes
                        .set(bucketfs_common::metrics::gauge_value(bytes));
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "could not measure the chunks' disk use"),
                Err(e) => tracing::warn!(error = %e, "disk use task failed"),
            }
        }
    };
    background.task(measure());
    background.every("disk use", interval, measure);
}

/// Re-reads every chunk once.
async fn pass(store: Arc<ChunkStore>, metrics: Arc<Metrics>) {
    let ids = match store.list() {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(error = %e, "scrubber could not list chunks");
            return;
        }
    };
    let mut corrupt = 0u64;
    for (id, _) in ids {
        let started = Instant::now();
        let store = store.clone();
        let result = tokio::task::spawn_blocking(move || store.verify(&id)).await;
        match result {
            Ok(Err(StoreError::Corrupt(e))) => {
                corrupt += 1;
                metrics.checksum_failures.inc();
                tracing::error!(chunk = %id, error = %e, "scrubber found a corrupt chunk");
            }
            Ok(_) => {
                metrics.scrubbed_chunks.inc();
            }
            Err(e) => tracing::warn!(error = %e, "scrub task failed"),
        }
        tokio::time::sleep(started.elapsed() * 9).await;
    }
    tracing::info!(corrupt, "scrub pass finished");
}
