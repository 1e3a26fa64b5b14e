//! What the three processes' Prometheus metrics share: the latency buckets,
//! the family type that holds one latency histogram per label set, and the
//! rendering of a registry in the OpenMetrics text format (the format
//! `prometheus-client` writes, which Prometheus scrapes).

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the latency buckets, in seconds: from a cached read
/// (half a millisecond) to a stalled request (30 s).
pub const LATENCY_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// One latency histogram per label set `L`.
pub type Latencies<L> = Family<L, Histogram, fn() -> Histogram>;

/// A latency histogram with the shared buckets.
pub fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// An empty [`Latencies`] family.
pub fn latencies<L: EncodeLabelSet + Clone + std::hash::Hash + Eq>() -> Latencies<L> {
    Family::new_with_constructor(latency_histogram)
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
    use prometheus_client::metrics::counter::Counter;

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
