//! A service's recent traffic as the gateway answered it: per version, in
//! fixed intervals, the request rate, the share of errors and the latency
//! percentiles. The console's charts and `GET /api/v1/services/{name}/traffic`
//! read it; the gateway keeps it.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Length of one interval, in seconds.
pub const INTERVAL_SECONDS: u64 = 10;

/// Intervals kept: one hour.
pub const KEPT_INTERVALS: usize = 360;

/// Upper bounds, in seconds, of the latency buckets requests are counted in
/// (the same as the gateway's `request_duration_seconds` histogram).
pub const LATENCY_BOUNDS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Requests of one interval, counted as they were answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntervalCounts {
    /// Requests answered.
    pub requests: u64,
    /// Of them, answered with a 5xx status.
    pub errors: u64,
    /// Requests per latency bucket, the last one for anything slower than
    /// every bound.
    pub buckets: [u64; LATENCY_BOUNDS.len() + 1],
}

/// One interval of one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TrafficPoint {
    /// When the interval ended.
    pub at: DateTime<Utc>,
    /// Requests answered in the interval.
    pub requests: u64,
    /// Of them, answered with a 5xx status.
    pub errors: u64,
    /// Requests per second over the interval.
    pub requests_per_second: f64,
    /// Errors over requests, 0 to 1 (0 without requests).
    pub error_ratio: f64,
    /// Median latency in seconds; absent without requests.
    pub p50_seconds: Option<f64>,
    /// 95th percentile latency in seconds.
    pub p95_seconds: Option<f64>,
    /// 99th percentile latency in seconds.
    pub p99_seconds: Option<f64>,
}

/// The history of one version, oldest interval first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VersionTraffic {
    /// The version.
    pub version: String,
    /// Its intervals, oldest first.
    pub points: Vec<TrafficPoint>,
}

/// A service's traffic history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceTraffic {
    /// Length of each interval, in seconds.
    pub interval_seconds: u64,
    /// Per version that had traffic in the last hour, by version.
    pub versions: Vec<VersionTraffic>,
}

impl IntervalCounts {
    /// Counts one answer.
    pub fn record(&mut self, status: u16, seconds: f64) {
        self.requests += 1;
        if status >= 500 {
            self.errors += 1;
        }
        self.buckets[bucket_of(seconds)] += 1;
    }

    /// The interval as a point ending at `at`.
    pub fn point(&self, at: DateTime<Utc>) -> TrafficPoint {
        let error_ratio = if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        };
        TrafficPoint {
            at,
            requests: self.requests,
            errors: self.errors,
            requests_per_second: self.requests as f64 / INTERVAL_SECONDS as f64,
            error_ratio,
            p50_seconds: quantile(&self.buckets, 0.50),
            p95_seconds: quantile(&self.buckets, 0.95),
            p99_seconds: quantile(&self.buckets, 0.99),
        }
    }
}

/// The bucket an answer of `seconds` falls in.
pub fn bucket_of(seconds: f64) -> usize {
    LATENCY_BOUNDS
        .iter()
        .position(|bound| seconds <= *bound)
        .unwrap_or(LATENCY_BOUNDS.len())
}

/// The `q` quantile of bucketed counts, interpolated linearly inside its
/// bucket as Prometheus' `histogram_quantile` does; answers beyond the last
/// bound count as the last bound. `None` without any count.
pub fn quantile(buckets: &[u64], q: f64) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let mut below = 0u64;
    for (i, count) in buckets.iter().enumerate() {
        if *count > 0 && (below + count) as f64 >= rank {
            let Some(upper) = LATENCY_BOUNDS.get(i) else {
                return LATENCY_BOUNDS.last().copied();
            };
            let lower = if i == 0 { 0.0 } else { LATENCY_BOUNDS[i - 1] };
            let within = (rank - below as f64) / *count as f64;
            return Some(lower + (upper - lower) * within.clamp(0.0, 1.0));
        }
        below += count;
    }
    LATENCY_BOUNDS.last().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_interval_has_no_percentiles_and_no_errors() {
        let point = IntervalCounts::default().point(Utc::now());
        assert_eq!(point.requests, 0);
        assert_eq!(point.error_ratio, 0.0);
        assert_eq!(point.p50_seconds, None);
        assert_eq!(point.p99_seconds, None);
    }

    #[test]
    fn rates_errors_and_percentiles_follow_the_answers() {
        let mut counts = IntervalCounts::default();
        for _ in 0..90 {
            counts.record(200, 0.004); // the (0.0025, 0.005] bucket
        }
        for _ in 0..10 {
            counts.record(503, 0.2); // the (0.1, 0.25] bucket
        }
        let point = counts.point(Utc::now());
        assert_eq!(point.requests, 100);
        assert_eq!(point.errors, 10);
        assert!((point.requests_per_second - 10.0).abs() < 1e-9);
        assert!((point.error_ratio - 0.1).abs() < 1e-9);
        let p50 = point.p50_seconds.unwrap();
        assert!(p50 > 0.0025 && p50 <= 0.005, "p50 {p50}");
        let p95 = point.p95_seconds.unwrap();
        assert!(p95 > 0.1 && p95 <= 0.25, "p95 {p95}");
        assert!(point.p99_seconds.unwrap() >= p95);
    }

    #[test]
    fn answers_beyond_every_bound_count_as_the_last_bound() {
        let mut counts = IntervalCounts::default();
        counts.record(200, 120.0);
        assert_eq!(counts.buckets[LATENCY_BOUNDS.len()], 1);
        assert_eq!(counts.point(Utc::now()).p50_seconds, Some(60.0));
    }

    #[test]
    fn a_bound_belongs_to_its_own_bucket() {
        assert_eq!(bucket_of(0.0005), 0);
        assert_eq!(bucket_of(0.00051), 1);
        assert_eq!(bucket_of(0.0), 0);
    }
}
