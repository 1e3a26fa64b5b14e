//! What the three processes' Prometheus metrics share: the latency buckets,
//! a latency histogram of atomics and the family type that holds one per
//! label set, registration helpers, and the rendering of a registry in the
//! OpenMetrics text format (the format `prometheus-client` writes, which
//! Prometheus scrapes).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the latency buckets, in seconds: from a cached read
/// (half a millisecond) to a stalled request (30 s).
pub const LATENCY_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A latency histogram over [`LATENCY_BUCKETS`] whose observations are two
/// atomic adds: `prometheus-client`'s own histogram takes a mutex per
/// observation, and the mount daemon's FUSE threads answering cached reads
/// at 200,000 a second all observe the same one.
#[derive(Clone, Debug, Default)]
pub struct LatencyHistogram(Arc<Counts>);

#[derive(Debug, Default)]
struct Counts {
    /// Observations per bucket (not cumulative); the last is past every bound.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

/// The latency bucket `seconds` falls in: the first whose bound is not
/// below it, or `LATENCY_BUCKETS.len()` past them all.
pub fn bucket_index(seconds: f64) -> usize {
    LATENCY_BUCKETS
        .iter()
        .position(|&bound| seconds <= bound)
        .unwrap_or(LATENCY_BUCKETS.len())
}

/// A gauge's value from a count or a size (saturating).
pub fn gauge_value(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

impl LatencyHistogram {
    pub fn observe(&self, seconds: f64) {
        let i = bucket_index(seconds);
        self.0.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.0
            .sum_nanos
            .fetch_add((seconds.max(0.0) * 1e9) as u64, Ordering::Relaxed);
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(self.0.buckets.iter().map(|b| b.load(Ordering::Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.0.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// One latency histogram per label set `L`.
pub type Latencies<L> = Family<L, LatencyHistogram, fn() -> LatencyHistogram>;

/// An empty [`Latencies`] family.
pub fn latencies<L: EncodeLabelSet + Clone + std::hash::Hash + Eq>() -> Latencies<L> {
    Family::new_with_constructor(LatencyHistogram::default)
}

/// A counter registered in `registry` as `name` (rendered `name_total`).
pub fn counter(registry: &mut Registry, name: &str, help: &str) -> Counter {
    let counter = Counter::default();
    registry.register(name, help, counter.clone());
    counter
}

/// A gauge registered in `registry` as `name`.
pub fn gauge(registry: &mut Registry, name: &str, help: &str) -> Gauge {
    let gauge = Gauge::default();
    registry.register(name, help, gauge.clone());
    gauge
}

/// The registry's metrics as OpenMetrics text.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    encode(&mut out, registry).expect("writing to a String cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::EncodeLabelSet;

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct Op {
        op: &'static str,
    }

    #[test]
    fn histograms_and_counters_render_as_prometheus_reads_them() {
        let mut registry = Registry::default();
        let latency = latencies::<Op>();
        let bytes = Counter::<u64>::default();
        registry.register("demo_duration_seconds", "Demo latency", latency.clone());
        registry.register("demo_bytes", "Demo bytes", bytes.clone());
        latency.get_or_create(&Op { op: "put" }).observe(0.003);
        latency.get_or_create(&Op { op: "put" }).observe(40.0);
        bytes.inc_by(4096);
        let text = render(&registry);
        assert!(
            text.contains("demo_duration_seconds_count{op=\"put\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("demo_duration_seconds_sum{op=\"put\"} 40.003\n"),
            "{text}"
        );
        assert!(
            text.contains("demo_duration_seconds_bucket{le=\"0.005\",op=\"put\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("demo_duration_seconds_bucket{le=\"+Inf\",op=\"put\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("demo_bytes_total 4096\n"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
