//! The gateway's metrics as PromQL, for rollouts on Kubernetes: the same
//! `provider: {gateway: {metric: ...}}` a spec names is measured from the
//! gateway's own statistics on the local platform and from Prometheus
//! (scraping the gateways' `autoglm_gateway_*` families) on Kubernetes.
//!
//! Each query is one instant vector of at most one sample. No requests in
//! the window gives no sample or `NaN`: no data, never a pass.

use std::time::Duration;

use super::spec::GatewayMetric;

/// `value` as a PromQL string literal's content.
fn quoted(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The query that measures `metric` of `version` of `tenant`'s `service`
/// over the `window` that ends at evaluation time.
pub fn query(
    metric: GatewayMetric,
    tenant: &str,
    service: &str,
    version: &str,
    window: Duration,
) -> String {
    let labels = format!(
        "tenant=\"{}\",model=\"{}\",version=\"{}\"",
        quoted(tenant),
        quoted(service),
        quoted(version)
    );
    let range = format!("{}s", window.as_secs().max(1));
    let quantile = |q: &str| {
        format!(
            "histogram_quantile({q}, sum by (le) (rate(autoglm_gateway_request_duration_seconds_bucket{{{labels}}}[{range}])))"
        )
    };
    match metric {
        // A version with no 5xx answer has no 5xx series: count it as 0,
        // while no request at all leaves the denominator, and so the
        // answer, empty.
        GatewayMetric::ErrorRatio => format!(
            "(sum(rate(autoglm_gateway_requests_total{{{labels},code=~\"5..\"}}[{range}])) or vector(0)) / sum(rate(autoglm_gateway_requests_total{{{labels}}}[{range}]))"
        ),
        GatewayMetric::RequestRate => {
            format!("sum(rate(autoglm_gateway_requests_total{{{labels}}}[{range}]))")
        }
        GatewayMetric::LatencyP95 => quantile("0.95"),
        GatewayMetric::LatencyP50 => quantile("0.5"),
        GatewayMetric::LatencyP99 => quantile("0.99"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_select_one_version_of_one_service_over_the_interval() {
        let q = query(
            GatewayMetric::ErrorRatio,
            "team-a",
            "chat",
            "2",
            Duration::from_secs(30),
        );
        assert_eq!(
            q,
            "(sum(rate(autoglm_gateway_requests_total{tenant=\"team-a\",model=\"chat\",version=\"2\",code=~\"5..\"}[30s])) or vector(0)) / sum(rate(autoglm_gateway_requests_total{tenant=\"team-a\",model=\"chat\",version=\"2\"}[30s]))"
        );
        let p95 = query(
            GatewayMetric::LatencyP95,
            "t",
            "s",
            "1",
            Duration::from_secs(10),
        );
        assert!(p95.starts_with("histogram_quantile(0.95, sum by (le) (rate(autoglm_gateway_request_duration_seconds_bucket{"), "{p95}");
        assert!(p95.ends_with("[10s])))"), "{p95}");
    }

    #[test]
    fn label_values_cannot_close_their_string() {
        let q = query(
            GatewayMetric::RequestRate,
            "t",
            "a\"}) or vector(1",
            "1",
            Duration::ZERO,
        );
        assert!(q.contains("model=\"a\\\"}) or vector(1\""), "{q}");
        assert!(q.contains("[1s]"), "a window is at least a second: {q}");
    }
}
