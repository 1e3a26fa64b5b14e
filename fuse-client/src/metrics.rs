//! The daemon's metrics, served on `--metrics ADDR` at `/metrics` in the
//! OpenMetrics text format through `prometheus-client`: one latency
//! histogram per FUSE operation and outcome, cache lookups that hit or
//! missed per tier, bytes applications read and wrote, readahead that was
//! fetched and evicted unread, and the write-back queues.
//!
//! The counters are one set per process ([`METRICS`]): a daemon serves one
//! mount, and the cache and the FUSE adapter record into them without a
//! handle threaded through every layer. The queue gauges are read from the
//! mount when scraped (`serve`'s `queued`).

use std::sync::LazyLock;
use std::time::Duration;

use bucketfs_common::metrics::{gauge_value, latencies, render, Latencies};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The labels of a FUSE operation's latency: its name (`read`, `lookup`)
/// and `ok` or `error`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Operation {
    pub op: &'static str,
    pub outcome: &'static str,
}

/// A cache tier: `memory` or `disk`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Tier {
    pub tier: &'static str,
}

/// The cache tiers, as [`Metrics::lookup`] takes them.
#[derive(Clone, Copy, Debug)]
pub enum CacheTier {
    Memory = 0,
    Disk = 1,
}

const TIER_NAMES: [&str; 2] = ["memory", "disk"];

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// FUSE operations, from the kernel's request to the reply.
    pub operations: Latencies<Operation>,
    /// Block lookups per tier that found the block, and that did not.
    /// The four counters of those families, `[tier][hit]`, fetched once:
    /// a lookup is one atomic add.
    lookups: [[Counter; 2]; 2],
    /// Bytes returned by reads and accepted by writes.
    pub bytes_read: Counter,
    pub bytes_written: Counter,
    /// Bytes fetched ahead of the reader and evicted from memory unread.
    pub readahead_wasted_bytes: Counter,
    /// Write-back commits queued or running, and deletes on their way.
    uploads_queued: Gauge,
    deletes_queued: Gauge,
}

/// This process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        bucketfs_common::logging::register(&mut registry);
        let operations = latencies::<Operation>();
        registry.register(
            "bucketfs_fuse_operation_duration_seconds",
            "FUSE operations: time from the kernel's request to the reply",
            operations.clone(),
        );
        let cache_hits = Family::<Tier, Counter>::default();
        registry.register(
            "bucketfs_fuse_cache_hits",
            "Block lookups that found the block, per tier",
            cache_hits.clone(),
        );
        let cache_misses = Family::<Tier, Counter>::default();
        registry.register(
            "bucketfs_fuse_cache_misses",
            "Block lookups that did not find the block, per tier",
            cache_misses.clone(),
        );
        let mut counter =
            |name: &str, help: &str| bucketfs_common::metrics::counter(&mut registry, name, help);
        let bytes_read = counter("bucketfs_fuse_read_bytes", "Bytes returned by reads");
        let bytes_written = counter("bucketfs_fuse_written_bytes", "Bytes accepted by writes");
        let readahead_wasted_bytes = counter(
            "bucketfs_fuse_readahead_wasted_bytes",
            "Bytes fetched ahead of the reader and evicted from memory unread",
        );
        let mut gauge = |name: &str, help: &str| bucketfs_common::metrics::gauge(&mut registry, name, help);
        let uploads_queued = gauge(
            "bucketfs_fuse_uploads_queued",
            "Write-back commits queued or running",
        );
        let deletes_queued = gauge(
            "bucketfs_fuse_deletes_queued",
            "Deletes on their way to the store",
        );
        Metrics {
            registry,
            operations,
            lookups: [0, 1].map(|t| {
                let tier = Tier { tier: TIER_NAMES[t] };
                [
                    cache_misses.get_or_create(&tier).clone(),
                    cache_hits.get_or_create(&tier).clone(),
                ]
            }),
            bytes_read,
            bytes_written,
            readahead_wasted_bytes,
            uploads_queued,
            deletes_queued,
        }
    }

    /// Records one answered FUSE operation.
    pub fn answered(&self, op: &'static str, ok: bool, took: Duration) {
        let outcome = if ok { "ok" } else { "error" };
        self.operations
            .get_or_create(&Operation { op, outcome })
            .observe(took.as_secs_f64());
    }

    /// Records a block lookup in `tier`.
    pub fn lookup(&self, tier: CacheTier, hit: bool) {
        self.lookups[tier as usize][usize::from(hit)].inc();
    }

    /// The metrics as OpenMetrics text, with the queues as they are now.
    fn render(&self, (uploads, deletes): (usize, usize)) -> String {
        self.uploads_queued.set(gauge_value(uploads));
        self.deletes_queued.set(gauge_value(deletes));
        render(&self.registry)
    }
}

/// Serves `GET /metrics` on `listener` until the runtime ends; `queued`
/// tells the mount's write-back commits and deletes queued (`Fs::queued`).
pub async fn serve<Q>(listener: tokio::net::TcpListener, queued: Q)
where
    Q: Fn() -> (usize, usize) + Clone + Send + Sync + 'static,
{
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let now = queued();
            async move {
                let text = METRICS.render(now);
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        bucketfs_common::metrics::CONTENT_TYPE,
                    )],
                    text,
                )
            }
        }),
    );
    if let Err(e) = axum::serve(listener, app).await {
        tracing::warn!(error = %e, "the metrics server stopped");
    }
}
