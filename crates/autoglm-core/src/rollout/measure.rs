//! A metric's measurement from the gateway's per-version history: the
//! closed 10-second intervals that ended within the metric's interval.
//! No requests in the window is no data (`None`): inconclusive, never a pass.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::spec::GatewayMetric;
use crate::traffic::TrafficPoint;

/// The points of `points` that ended within `span` before `now`.
pub fn window(points: &[TrafficPoint], now: DateTime<Utc>, span: Duration) -> Vec<&TrafficPoint> {
    let from = now - chrono::Duration::from_std(span).unwrap_or(chrono::Duration::MAX);
    points
        .iter()
        .filter(|p| p.at > from && p.at <= now)
        .collect()
}

/// `metric` over `points` (intervals of `interval_seconds` each): error
/// ratio and rate from the summed counts; latency percentiles as the worst
/// interval's, since intervals keep percentiles, not their samples.
pub fn measure(
    metric: GatewayMetric,
    points: &[&TrafficPoint],
    interval_seconds: u64,
) -> Option<f64> {
    let requests: u64 = points.iter().map(|p| p.requests).sum();
    if requests == 0 {
        return None;
    }
    let worst =
        |f: fn(&TrafficPoint) -> Option<f64>| points.iter().filter_map(|p| f(p)).reduce(f64::max);
    match metric {
        GatewayMetric::ErrorRatio => {
            let errors: u64 = points.iter().map(|p| p.errors).sum();
            Some(errors as f64 / requests as f64)
        }
        GatewayMetric::RequestRate => {
            Some(requests as f64 / (points.len() as u64 * interval_seconds.max(1)) as f64)
        }
        GatewayMetric::LatencyP95 => worst(|p| p.p95_seconds),
        GatewayMetric::LatencyP50 => worst(|p| p.p50_seconds),
        GatewayMetric::LatencyP99 => worst(|p| p.p99_seconds),
    }
}
