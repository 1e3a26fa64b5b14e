//! The last minutes of this router's requests, for the status page's
//! charts: every request adds to one latency bucket (the metrics' buckets)
//! and maybe to the error count; every [`SAMPLE`] the counts since the last
//! sample become one point (requests and errors per second, median and
//! 99th percentile latency), and the last [`KEPT`] points are kept.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use bucketfs_common::metrics::{bucket_index, LATENCY_BUCKETS};
use serde::Serialize;

/// Time between two points.
pub const SAMPLE: Duration = Duration::from_secs(10);
/// Points kept: 15 minutes.
const KEPT: usize = 90;

/// One interval's requests.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Point {
    /// Unix seconds at the interval's end.
    pub at: u64,
    pub requests_per_sec: f64,
    pub errors_per_sec: f64,
    /// Latency quantiles in milliseconds, estimated within the buckets
    /// (as Prometheus's `histogram_quantile` does); None without requests.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

#[derive(Debug)]
pub struct Recent {
    /// Requests per latency bucket (the last one past every bound).
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    /// Answers with a status of 500 or more.
    errors: AtomicU64,
    last: Mutex<Snapshot>,
    points: Mutex<VecDeque<Point>>,
}

#[derive(Debug, Default, Clone)]
struct Snapshot {
    buckets: Vec<u64>,
    errors: u64,
    at: Option<SystemTime>,
}

impl Default for Recent {
    fn default() -> Self {
        Recent {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            errors: AtomicU64::new(0),
            last: Mutex::default(),
            points: Mutex::default(),
        }
    }
}

impl Recent {
    /// Counts one answered request.
    pub fn record(&self, seconds: f64, server_error: bool) {
        self.buckets[bucket_index(seconds)].fetch_add(1, Ordering::Relaxed);
        if server_error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Turns the counts since the last call into a point.
    pub fn sample(&self, now: SystemTime) {
        let current = Snapshot {
            buckets: self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect(),
            errors: self.errors.load(Ordering::Relaxed),
            at: Some(now),
        };
        let previous = std::mem::replace(&mut *self.last.lock().unwrap(), current.clone());
        let Some(since) = previous.at else {
            return; // the first call only sets the baseline
        };
        let seconds = now
            .duration_since(since)
            .unwrap_or(SAMPLE)
            .as_secs_f64()
            .max(0.001);
        let delta: Vec<u64> = current
            .buckets
            .iter()
            .zip(&previous.buckets)
            .map(|(c, p)| c.saturating_sub(*p))
            .collect();
        let requests: u64 = delta.iter().sum();
        let point = Point {
            at: now
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            requests_per_sec: requests as f64 / seconds,
            errors_per_sec: current.errors.saturating_sub(previous.errors) as f64 / seconds,
            p50_ms: quantile(&delta, 0.5).map(|s| s * 1e3),
            p99_ms: quantile(&delta, 0.99).map(|s| s * 1e3),
        };
        let mut points = self.points.lock().unwrap();
        if points.len() == KEPT {
            points.pop_front();
        }
        points.push_back(point);
    }

    /// The points kept, oldest first.
    pub fn points(&self) -> Vec<Point> {
        self.points.lock().unwrap().iter().copied().collect()
    }
}

/// The `q` quantile of requests counted per bucket, in seconds: linear
/// within the bucket it falls in; the last finite bound for the overflow.
fn quantile(counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for (i, &n) in counts.iter().enumerate() {
        if n > 0 && (below + n) as f64 >= rank {
            let Some(&upper) = LATENCY_BUCKETS.get(i) else {
                return LATENCY_BUCKETS.last().copied();
            };
            let lower = if i == 0 { 0.0 } else { LATENCY_BUCKETS[i - 1] };
            let within = (rank - below as f64) / n as f64;
            return Some(lower + (upper - lower) * within);
        }
        below += n;
    }
    LATENCY_BUCKETS.last().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_hold_rates_and_quantiles_of_their_interval() {
        let recent = Recent::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        recent.sample(t0);
        // 98 requests of 2-5 ms, one of 0.3 s, one failing after 40 s.
        for _ in 0..98 {
            recent.record(0.004, false);
        }
        recent.record(0.3, false);
        recent.record(40.0, true);
        recent.sample(t0 + Duration::from_secs(10));
        let [point] = recent.points()[..] else {
            panic!("one point")
        };
        assert_eq!(point.at, 1010);
        assert_eq!(point.requests_per_sec, 10.0);
        assert_eq!(point.errors_per_sec, 0.1);
        let p50 = point.p50_ms.unwrap();
        assert!((2.5..=5.0).contains(&p50), "{p50}");
        let p99 = point.p99_ms.unwrap();
        assert!((250.0..=500.0).contains(&p99), "{p99}");
        // A quiet interval: no quantiles.
        recent.sample(t0 + Duration::from_secs(20));
        assert_eq!(recent.points()[1].p50_ms, None);
        assert_eq!(recent.points()[1].requests_per_sec, 0.0);
    }

    #[test]
    fn only_the_last_minutes_are_kept() {
        let recent = Recent::default();
        let t0 = SystemTime::UNIX_EPOCH;
        for i in 0..=(KEPT as u64 + 5) {
            recent.sample(t0 + SAMPLE * i as u32);
        }
        let points = recent.points();
        assert_eq!(points.len(), KEPT);
        assert_eq!(points.last().unwrap().at, (KEPT as u64 + 5) * 10);
    }
}
