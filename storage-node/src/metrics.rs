//! The node's metrics, served at `/metrics` in the OpenMetrics text format
//! through `prometheus-client`: one latency histogram per chunk request
//! kind and status, bytes and chunks moved, checksum failures, scrub
//! progress, refused requests, and the chunk files' disk use.

use bucketfs_common::metrics::{latencies, render, Latencies};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The labels of a chunk request's latency: `put`, `get`, `head`,
/// `delete`, `list` (or `other`), and the HTTP status answered.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Request {
    pub op: &'static str,
    pub status: u16,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Chunk requests, from arrival to the answer's headers.
    pub requests: Latencies<Request>,
    pub chunks_written: Counter,
    pub bytes_written: Counter,
    pub bytes_read: Counter,
    pub checksum_failures: Counter,
    pub chunks_deleted: Counter,
    pub scrubbed_chunks: Counter,
    /// Requests refused for a missing, wrong or stale signature.
    pub refused_requests: Counter,
    /// Bytes the chunk files take on disk, as of the last walk.
    pub chunk_disk_bytes: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        bucketfs_common::logging::register(&mut registry);
        let requests = latencies::<Request>();
        registry.register(
            "bucketfs_node_request_duration_seconds",
            "Chunk requests: time from arrival to the answer's headers",
            requests.clone(),
        );
        let mut counter =
            |name: &str, help: &str| bucketfs_common::metrics::counter(&mut registry, name, help);
        let chunks_written = counter("bucketfs_node_chunks_written", "Chunks stored");
        let bytes_written = counter("bucketfs_node_bytes_written", "Chunk payload bytes stored");
        let bytes_read = counter("bucketfs_node_bytes_read", "Chunk payload bytes served");
        let checksum_failures = counter(
            "bucketfs_node_checksum_failures",
            "Chunks found corrupt, by a read or the scrubber",
        );
        let chunks_deleted = counter("bucketfs_node_chunks_deleted", "Chunks deleted");
        let scrubbed_chunks = counter("bucketfs_node_scrubbed_chunks", "Chunks the scrubber verified");
        let refused_requests = counter(
            "bucketfs_node_refused_requests",
            "Requests refused for a missing, wrong or stale signature",
        );
        let chunk_disk_bytes = bucketfs_common::metrics::gauge(
            &mut registry,
            "bucketfs_node_chunk_disk_bytes",
            "Bytes the chunk files take on disk",
        );
        Metrics {
            registry,
            requests,
            chunks_written,
            bytes_written,
            bytes_read,
            checksum_failures,
            chunks_deleted,
            scrubbed_chunks,
            refused_requests,
            chunk_disk_bytes,
        }
    }
}

impl Metrics {
    pub fn render(&self) -> String {
        render(&self.registry)
    }

    /// The chunk files' disk use, as the gauge holds it.
    pub fn chunk_disk_bytes(&self) -> u64 {
        self.chunk_disk_bytes.get().max(0) as u64
    }
}
