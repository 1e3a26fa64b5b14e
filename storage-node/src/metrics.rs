//! Counters the node exposes at `/metrics` in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Metrics {
    pub chunks_written: AtomicU64,
    pub bytes_written: AtomicU64,
    pub bytes_read: AtomicU64,
    pub checksum_failures: AtomicU64,
    pub chunks_deleted: AtomicU64,
    pub scrubbed_chunks: AtomicU64,
    /// Requests refused for a missing, wrong or stale signature.
    pub refused_requests: AtomicU64,
    /// Gauge: bytes the chunk files take on disk, as of the last walk.
    pub chunk_disk_bytes: AtomicU64,
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, value) in [
            ("bucketfs_node_chunks_written_total", &self.chunks_written),
            ("bucketfs_node_bytes_written_total", &self.bytes_written),
            ("bucketfs_node_bytes_read_total", &self.bytes_read),
            ("bucketfs_node_checksum_failures_total", &self.checksum_failures),
            ("bucketfs_node_chunks_deleted_total", &self.chunks_deleted),
            ("bucketfs_node_scrubbed_chunks_total", &self.scrubbed_chunks),
            ("bucketfs_node_refused_requests_total", &self.refused_requests),
        ] {
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        let disk = self.chunk_disk_bytes.load(Ordering::Relaxed);
        let _ = writeln!(out, "bucketfs_node_chunk_disk_bytes {disk}");
        out
    }
}
