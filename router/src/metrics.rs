//! The router's metrics, served at `/_bucketfs/metrics` in the OpenMetrics
//! text format through `prometheus-client`: counters of bytes, chunks and
//! background work, space gauges, one latency histogram per S3 operation
//! and status, one per node request kind and outcome (in
//! `ChunkClient`), and error counts by S3 error code.

use std::sync::{Arc, OnceLock};

use bucketfs_common::chunk_client::NodeRequest;
pub use bucketfs_common::metrics::gauge_value;
use bucketfs_common::metrics::{latencies, render, Latencies};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::recent::Recent;

/// The labels of an S3 request's latency: its operation (`PutObject`, or
/// one of the bucketfs extensions, `Unknown` when the request was refused
/// before it was recognised) and the HTTP status of the answer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Request {
    pub operation: String,
    pub status: u16,
}

/// The label of an error answer: its S3 code (`NoSuchKey`), or its HTTP
/// status when the body named none.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorCode {
    pub code: String,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Time from a request's arrival to its answer's headers.
    pub requests: Latencies<Request>,
    /// Error answers by code.
    pub errors: Family<ErrorCode, Counter>,
    /// Requests to storage nodes: chunk writes (replica writes), reads and deletes.
    pub node_requests: Latencies<NodeRequest>,
    /// Object bytes received from clients in PUT and UploadPart bodies.
    pub bytes_in: Counter,
    /// Object bytes sent to clients in GET bodies.
    pub bytes_out: Counter,
    pub chunks_written: Counter,
    /// Objects stored through the batch PUT extension.
    pub objects_batched: Counter,
    /// Listing pages answered (ListObjects, ListObjectsV2 and the metadata
    /// listing), and the keys and common prefixes they held.
    pub listings: Counter,
    pub listed_entries: Counter,
    pub checksum_failures: Counter,
    pub replica_read_fallbacks: Counter,
    /// Replicas asked because the one asked before was slow to answer.
    pub replica_read_hedges: Counter,
    pub replicas_repaired: Counter,
    /// Surplus replicas removed (past 3 on live nodes).
    pub replicas_trimmed: Counter,
    /// Replicas moved by rebalance, and the bytes between the fullest and
    /// the emptiest node as the last pass saw them.
    pub replicas_moved: Counter,
    pub rebalance_spread_bytes: Gauge,
    /// The inventory's work: replica rows whose file was missing, and
    /// files no row recorded, removed.
    pub stale_replica_rows: Counter,
    pub orphans_removed: Counter,
    pub chunks_collected: Counter,
    /// Lifecycle: current versions expired, noncurrent versions removed,
    /// lone delete markers removed, unfinished uploads aborted.
    pub lifecycle_expired: Counter,
    pub lifecycle_noncurrent_removed: Counter,
    pub lifecycle_markers_removed: Counter,
    pub lifecycle_uploads_aborted: Counter,
    /// Uploads aborted for being older than `--abort-uploads-after-secs`.
    pub uploads_abandoned_aborted: Counter,
    /// Versions whose fragmented chunk maps were compacted, and the bytes
    /// rewritten doing it.
    pub versions_compacted: Counter,
    pub bytes_compacted: Counter,
    /// Collections run at once because a node's disk was nearly full.
    pub gc_pressure_runs: Counter,
    /// The repair queue: chunks with fewer replicas than they should have on
    /// live nodes, as the elected worker's last pass found them (a gauge; 0
    /// on other routers), and the chunks it collected in its last pass.
    pub repair_pending: Gauge,
    pub chunk_checks: Gauge,
    pub gc_last_pass_chunks: Gauge,
    /// Space, as the elected worker last measured it (gauges; 0 on other
    /// routers): logical bytes of current versions and of all versions,
    /// bytes of recorded replicas, bytes of the nodes' chunk files on disk.
    pub logical_current_bytes: Gauge,
    pub logical_all_bytes: Gauge,
    pub replica_bytes: Gauge,
    pub node_disk_bytes: Gauge,
    /// Storage nodes this router sees as live.
    pub live_storage_nodes: Gauge,
    /// The last minutes of requests, for the status page's charts.
    pub recent: Recent,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        bucketfs_common::logging::register(&mut registry);
        let requests = latencies::<Request>();
        registry.register(
            "bucketfs_router_request_duration_seconds",
            "S3 requests: time from arrival to the answer's headers",
            requests.clone(),
        );
        let errors = Family::<ErrorCode, Counter>::default();
        registry.register(
            "bucketfs_router_errors",
            "Error answers by S3 code",
            errors.clone(),
        );
        let node_requests = latencies::<NodeRequest>();
        registry.register(
            "bucketfs_router_node_request_duration_seconds",
            "Requests to storage nodes by kind and outcome",
            node_requests.clone(),
        );
        let mut counter =
            |name: &str, help: &str| bucketfs_common::metrics::counter(&mut registry, name, help);
        let bytes_in = counter("bucketfs_router_bytes_in", "Object bytes received");
        let bytes_out = counter("bucketfs_router_bytes_out", "Object bytes sent");
        let chunks_written = counter("bucketfs_router_chunks_written", "Chunks written");
        let objects_batched = counter("bucketfs_router_objects_batched", "Objects stored by batch PUTs");
        let listings = counter("bucketfs_router_listings", "Listing pages answered");
        let listed_entries = counter("bucketfs_router_listed_entries", "Keys and prefixes listed");
        let checksum_failures = counter(
            "bucketfs_router_checksum_failures",
            "Replicas that failed a checksum",
        );
        let replica_read_fallbacks = counter(
            "bucketfs_router_replica_read_fallbacks",
            "Reads that went on to another replica",
        );
        let replica_read_hedges = counter(
            "bucketfs_router_replica_read_hedges",
            "Replicas asked because the one asked before had not answered within the hedge delay",
        );
        let replicas_repaired = counter("bucketfs_router_replicas_repaired", "Replicas written by repair");
        let replicas_trimmed = counter(
            "bucketfs_router_replicas_trimmed",
            "Surplus replicas removed (more than 3 on live nodes)",
        );
        let replicas_moved = counter(
            "bucketfs_router_replicas_moved",
            "Replicas moved from the fullest node to the emptiest by rebalance",
        );
        let stale_replica_rows = counter(
            "bucketfs_router_stale_replica_rows",
            "Replica rows dropped because their node no longer had the file",
        );
        let orphans_removed = counter(
            "bucketfs_router_orphans_removed",
            "Chunk files no row recorded, removed from their node after the orphan grace",
        );
        let chunks_collected = counter("bucketfs_router_chunks_collected", "Garbage chunks deleted");
        let lifecycle_expired = counter("bucketfs_router_lifecycle_expired", "Current versions expired");
        let lifecycle_noncurrent_removed = counter(
            "bucketfs_router_lifecycle_noncurrent_removed",
            "Noncurrent versions removed by lifecycle",
        );
        let lifecycle_markers_removed = counter(
            "bucketfs_router_lifecycle_markers_removed",
            "Lone delete markers removed by lifecycle",
        );
        let lifecycle_uploads_aborted = counter(
            "bucketfs_router_lifecycle_uploads_aborted",
            "Unfinished multipart uploads aborted by lifecycle",
        );
        let uploads_abandoned_aborted = counter(
            "bucketfs_router_uploads_abandoned_aborted",
            "Multipart uploads aborted for being older than --abort-uploads-after-secs",
        );
        let versions_compacted = counter("bucketfs_router_versions_compacted", "Chunk maps compacted");
        let bytes_compacted = counter("bucketfs_router_bytes_compacted", "Bytes rewritten by compaction");
        let gc_pressure_runs = counter(
            "bucketfs_router_gc_pressure_runs",
            "Collections run because a node was nearly full",
        );
        let mut gauge = |name: &str, help: &str| bucketfs_common::metrics::gauge(&mut registry, name, help);
        Metrics {
            repair_pending: gauge(
                "bucketfs_router_repair_pending_chunks",
                "Under-replicated chunks found by the worker's last pass",
            ),
            chunk_checks: gauge(
                "bucketfs_router_chunk_checks",
                "Chunks whose replica count may be off, left after the worker's last pass",
            ),
            gc_last_pass_chunks: gauge(
                "bucketfs_router_gc_last_pass_chunks",
                "Chunks collected by the worker's last pass",
            ),
            logical_current_bytes: gauge(
                "bucketfs_router_logical_current_bytes",
                "Bytes of current versions",
            ),
            logical_all_bytes: gauge(
                "bucketfs_router_logical_all_versions_bytes",
                "Bytes of all versions",
            ),
            replica_bytes: gauge("bucketfs_router_replica_bytes", "Bytes of recorded replicas"),
            node_disk_bytes: gauge(
                "bucketfs_router_node_chunk_disk_bytes",
                "Bytes the nodes' chunk files take on disk",
            ),
            live_storage_nodes: gauge("bucketfs_router_live_storage_nodes", "Storage nodes seen live"),
            rebalance_spread_bytes: gauge(
                "bucketfs_router_rebalance_spread_bytes",
                "Replica bytes between the fullest and the emptiest node, as rebalance last saw them",
            ),
            recent: Recent::default(),
            registry,
            requests,
            errors,
            node_requests,
            bytes_in,
            bytes_out,
            chunks_written,
            objects_batched,
            listings,
            listed_entries,
            checksum_failures,
            replica_read_fallbacks,
            replica_read_hedges,
            replicas_repaired,
            replicas_trimmed,
            stale_replica_rows,
            orphans_removed,
            replicas_moved,
            chunks_collected,
            lifecycle_expired,
            lifecycle_noncurrent_removed,
            lifecycle_markers_removed,
            lifecycle_uploads_aborted,
            uploads_abandoned_aborted,
            versions_compacted,
            bytes_compacted,
            gc_pressure_runs,
        }
    }
}

impl Metrics {
    /// Records one answered S3 request.
    pub fn answered(&self, operation: String, status: u16, seconds: f64, error_code: Option<&str>) {
        self.requests
            .get_or_create(&Request { operation, status })
            .observe(seconds);
        self.recent.record(seconds, status >= 500);
        if status >= 400 {
            let code = error_code.map_or_else(|| status.to_string(), str::to_string);
            self.errors.get_or_create(&ErrorCode { code }).inc();
        }
    }

    /// The metrics as OpenMetrics text, with `live_nodes` as the live node gauge.
    pub fn render(&self, live_nodes: usize) -> String {
        self.live_storage_nodes.set(live_nodes as i64);
        render(&self.registry)
    }
}

/// The S3 operation a request turned out to be: put in the request's
/// extensions when it arrives, filled in by the access check (or by the
/// extension route), read when its answer is timed.
#[derive(Clone, Debug, Default)]
pub struct OperationSlot(Arc<OnceLock<String>>);

impl OperationSlot {
    pub fn set(&self, name: &str) {
        let _ = self.0.set(name.to_owned());
    }

    /// The operation, or `Unknown` for a request refused before it was
    /// recognised (a bad signature, a malformed request).
    pub fn name(&self) -> String {
        self.0.get().cloned().unwrap_or_else(|| "Unknown".into())
    }
}
