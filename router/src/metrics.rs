//! Router counters, exposed at `/_bucketfs/metrics` in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Metrics {
    /// Object bytes received from clients in PUT and UploadPart bodies.
    pub bytes_in: AtomicU64,
    /// Object bytes sent to clients in GET bodies.
    pub bytes_out: AtomicU64,
    pub chunks_written: AtomicU64,
    /// Objects stored through the batch PUT extension.
    pub objects_batched: AtomicU64,
    /// Listing pages answered (ListObjects, ListObjectsV2 and the metadata
    /// listing), and the keys and common prefixes they held.
    pub listings: AtomicU64,
    pub listed_entries: AtomicU64,
    pub checksum_failures: AtomicU64,
    pub replica_read_fallbacks: AtomicU64,
    pub replicas_repaired: AtomicU64,
    pub chunks_collected: AtomicU64,
    /// Lifecycle: current versions expired, noncurrent versions removed,
    /// lone delete markers removed, unfinished uploads aborted.
    pub lifecycle_expired: AtomicU64,
    pub lifecycle_noncurrent_removed: AtomicU64,
    pub lifecycle_markers_removed: AtomicU64,
    pub lifecycle_uploads_aborted: AtomicU64,
    /// Versions whose fragmented chunk maps were compacted, and the bytes
    /// rewritten doing it.
    pub versions_compacted: AtomicU64,
    pub bytes_compacted: AtomicU64,
    /// Collections run at once because a node's disk was nearly full.
    pub gc_pressure_runs: AtomicU64,
    /// Space, as the elected worker last measured it (gauges; 0 on other
    /// routers): logical bytes of current versions and of all versions,
    /// bytes of recorded replicas, bytes of the nodes' chunk files on disk.
    pub logical_current_bytes: AtomicU64,
    pub logical_all_bytes: AtomicU64,
    pub replica_bytes: AtomicU64,
    pub node_disk_bytes: AtomicU64,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn set(gauge: &AtomicU64, n: u64) {
        gauge.store(n, Ordering::Relaxed);
    }

    pub fn render(&self, live_nodes: usize) -> String {
        let mut out = String::new();
        for (name, value) in [
            ("bucketfs_router_bytes_in_total", &self.bytes_in),
            ("bucketfs_router_bytes_out_total", &self.bytes_out),
            ("bucketfs_router_chunks_written_total", &self.chunks_written),
            ("bucketfs_router_objects_batched_total", &self.objects_batched),
            ("bucketfs_router_listings_total", &self.listings),
            ("bucketfs_router_listed_entries_total", &self.listed_entries),
            ("bucketfs_router_checksum_failures_total", &self.checksum_failures),
            (
                "bucketfs_router_replica_read_fallbacks_total",
                &self.replica_read_fallbacks,
            ),
            ("bucketfs_router_replicas_repaired_total", &self.replicas_repaired),
            ("bucketfs_router_chunks_collected_total", &self.chunks_collected),
            ("bucketfs_router_lifecycle_expired_total", &self.lifecycle_expired),
            (
                "bucketfs_router_lifecycle_noncurrent_removed_total",
                &self.lifecycle_noncurrent_removed,
            ),
            (
                "bucketfs_router_lifecycle_markers_removed_total",
                &self.lifecycle_markers_removed,
            ),
            (
                "bucketfs_router_lifecycle_uploads_aborted_total",
                &self.lifecycle_uploads_aborted,
            ),
            ("bucketfs_router_gc_pressure_runs_total", &self.gc_pressure_runs),
            (
                "bucketfs_router_versions_compacted_total",
                &self.versions_compacted,
            ),
            ("bucketfs_router_bytes_compacted_total", &self.bytes_compacted),
            (
                "bucketfs_router_logical_current_bytes",
                &self.logical_current_bytes,
            ),
            (
                "bucketfs_router_logical_all_versions_bytes",
                &self.logical_all_bytes,
            ),
            ("bucketfs_router_replica_bytes", &self.replica_bytes),
            ("bucketfs_router_node_chunk_disk_bytes", &self.node_disk_bytes),
        ] {
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        let _ = writeln!(out, "bucketfs_router_live_storage_nodes {live_nodes}");
        out
    }
}
