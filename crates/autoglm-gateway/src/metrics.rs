//! The gateway's Prometheus metrics, `autoglm_gateway_*`. Requests are
//! labelled by tenant, model (the service) and version as routed, never by
//! what a client wrote, so made-up model names cannot grow the series count.

use parking_lot::Mutex;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use autoglm_contract::Views;
use autoglm_core::traffic::LATENCY_BOUNDS;

use crate::balance::Picked;
use crate::history::History;
use crate::version::VersionLabels;

/// Labels of a routed request; empty model and version when it was not routed.
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Tenant.
    pub tenant: String,
    /// Service.
    pub model: String,
    /// Version.
    pub version: String,
    /// HTTP status.
    pub code: u16,
}

/// One version's metric handles.
#[derive(Debug)]
pub struct VersionMetrics {
    /// Its labels.
    pub labels: VersionLabels,
    duration: Histogram,
    /// Time to a replica's response headers.
    pub upstream: Histogram,
    /// Requests being answered by a replica.
    pub in_flight: Gauge,
    /// Request counters by status, as they are first seen.
    requests: Mutex<Vec<(u16, Counter)>>,
    /// How its replicas were picked, when it balances by prefix hash.
    prefix: Option<PrefixCounters>,
}

/// One prefix-hash version's counts of where its requests went.
#[derive(Debug)]
struct PrefixCounters {
    hits: Counter,
    over_bound: Counter,
    ejected: Counter,
}

impl VersionMetrics {
    /// Counts how a replica was picked for a request (prefix-hash versions only).
    pub fn picked(&self, picked: Picked) {
        let Some(prefix) = &self.prefix else { return };
        let counter = match picked {
            Picked::Home => &prefix.hits,
            Picked::OverBound => &prefix.over_bound,
            Picked::Ejected => &prefix.ejected,
            // No opening to key on (an embeddings request, say).
            Picked::LeastLoaded => return,
        };
        counter.inc();
    }

    fn request_counter(&self, metrics: &Metrics, code: u16) -> Counter {
        let mut counters = self.requests.lock();
        if let Some((_, c)) = counters.iter().find(|(c, _)| *c == code) {
            return c.clone();
        }
        let counter = metrics
            .requests
            .get_or_create(&RequestLabels {
                tenant: self.labels.tenant.clone(),
                model: self.labels.model.clone(),
                version: self.labels.version.clone(),
                code,
            })
            .clone();
        counters.push((code, counter.clone()));
        counter
    }
}

/// Labels of a prefix-hash fallback: the version's, and why.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FallbackLabels {
    tenant: String,
    model: String,
    version: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScopeLabels {
    scope: String,
}

fn latency() -> Histogram {
    Histogram::new(LATENCY_BOUNDS)
}

/// Every gateway metric.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<VersionLabels, Histogram>,
    upstream: Family<VersionLabels, Histogram>,
    in_flight: Family<VersionLabels, Gauge>,
    waiting: Family<VersionLabels, Gauge>,
    retries: Family<VersionLabels, Counter>,
    rate_limited: Family<ScopeLabels, Counter>,
    replicas_desired: Family<VersionLabels, Gauge>,
    replicas_ready: Family<VersionLabels, Gauge>,
    prefix_hits: Family<VersionLabels, Counter>,
    prefix_fallbacks: Family<FallbackLabels, Counter>,
    history: Arc<History>,
}

impl Metrics {
    /// The gateway's metrics, the filters' families among them.
    pub fn new(filters: &crate::filters::FilterMetrics) -> Metrics {
        let mut r = Registry::with_prefix("autoglm_gateway");
        filters.register(&mut r);
        let requests = Family::<RequestLabels, Counter>::default();
        r.register(
            "requests",
            "Requests answered, by model, version and status",
            requests.clone(),
        );
        let duration = Family::<VersionLabels, Histogram>::new_with_constructor(latency);
        r.register(
            "request_duration_seconds",
            "Time from request to the end of the answer (streams included)",
            duration.clone(),
        );
        let upstream = Family::<VersionLabels, Histogram>::new_with_constructor(latency);
        r.register(
            "upstream_duration_seconds",
            "Time from sending to a replica to its response headers",
            upstream.clone(),
        );
        let in_flight = Family::<VersionLabels, Gauge>::default();
        r.register(
            "in_flight_requests",
            "Requests being answered by a replica",
            in_flight.clone(),
        );
        let waiting = Family::<VersionLabels, Gauge>::default();
        r.register(
            "waiting_requests",
            "Requests held until a replica is ready (scale from zero, start-up)",
            waiting.clone(),
        );
        let retries = Family::<VersionLabels, Counter>::default();
        r.register(
            "retries",
            "Requests sent again to another replica after a connection was refused",
            retries.clone(),
        );
        let rate_limited = Family::<ScopeLabels, Counter>::default();
        r.register(
            "rate_limited",
            "Requests refused by a rate limit or quota, by scope (key, tenant, or tenant_quota: the tenant's tokens for the day or month are spent)",
            rate_limited.clone(),
        );
        let replicas_desired = Family::<VersionLabels, Gauge>::default();
        r.register(
            "replicas_desired",
            "Replicas the platform is asked to run, per service (version empty)",
            replicas_desired.clone(),
        );
        let replicas_ready = Family::<VersionLabels, Gauge>::default();
        r.register(
            "replicas_ready",
            "Ready replicas per version",
            replicas_ready.clone(),
        );
        let prefix_hits = Family::<VersionLabels, Counter>::default();
        r.register(
            "prefix_hits",
            "Requests of prefix-hash services sent to their conversation's replica",
            prefix_hits.clone(),
        );
        let prefix_fallbacks = Family::<FallbackLabels, Counter>::default();
        r.register(
            "prefix_fallbacks",
            "Requests of prefix-hash services sent to the least loaded replica instead, by reason (over_bound, ejected)",
            prefix_fallbacks.clone(),
        );
        Metrics {
            registry: r,
            prefix_hits,
            prefix_fallbacks,
            requests,
            duration,
            upstream,
            in_flight,
            waiting,
            retries,
            rate_limited,
            replicas_desired,
            replicas_ready,
            history: Arc::default(),
        }
    }
}

impl Metrics {
    /// Counts a request the gateway answered itself, and its duration.
    pub fn answered(&self, labels: &RequestLabels, seconds: f64) {
        let version = VersionLabels {
            tenant: labels.tenant.clone(),
            model: labels.model.clone(),
            version: labels.version.clone(),
        };
        self.requests.get_or_create(labels).inc();
        self.duration.get_or_create(&version).observe(seconds);
        // Requests refused before a version was chosen belong to no chart.
        if !version.version.is_empty() {
            self.history.record(&version, labels.code, seconds);
        }
    }

    /// One version's metrics, resolved once (the routing table holds them)
    /// so that a request hashes no label set.
    /// Its prefix-hash series exist only when it `balances_by_prefix`.
    pub fn version(&self, labels: VersionLabels, balances_by_prefix: bool) -> VersionMetrics {
        let fallbacks = |reason| {
            self.prefix_fallbacks
                .get_or_create(&FallbackLabels {
                    tenant: labels.tenant.clone(),
                    model: labels.model.clone(),
                    version: labels.version.clone(),
                    reason,
                })
                .clone()
        };
        let prefix = balances_by_prefix.then(|| PrefixCounters {
            hits: self.prefix_hits.get_or_create(&labels).clone(),
            over_bound: fallbacks("over_bound"),
            ejected: fallbacks("ejected"),
        });
        VersionMetrics {
            duration: self.duration.get_or_create(&labels).clone(),
            upstream: self.upstream.get_or_create(&labels).clone(),
            in_flight: self.in_flight.get_or_create(&labels).clone(),
            requests: Mutex::default(),
            prefix,
            labels,
        }
    }

    /// Counts a request answered by `version` and its duration.
    pub fn answered_by(&self, version: &VersionMetrics, code: u16, seconds: f64) {
        version.request_counter(self, code).inc();
        version.duration.observe(seconds);
        self.history.record(&version.labels, code, seconds);
    }

    /// The last hour of traffic, as the console's charts read it.
    pub fn history(&self) -> Arc<History> {
        self.history.clone()
    }

    /// The waiting gauge of a version.
    pub fn waiting(&self, v: &VersionLabels) -> Gauge {
        self.waiting.get_or_create(v).clone()
    }

    /// Counts a retry.
    pub fn retried(&self, v: &VersionLabels) {
        self.retries.get_or_create(v).inc();
    }

    /// Counts a rate-limited request.
    pub fn rate_limited(&self, scope: &str) {
        self.rate_limited
            .get_or_create(&ScopeLabels {
                scope: scope.to_owned(),
            })
            .inc();
    }

    /// Sets the replica gauges from the platform's views.
    pub fn replicas(&self, views: &Views) {
        self.replicas_desired.clear();
        self.replicas_ready.clear();
        for (platform_name, view) in views {
            let Some((tenant, model)) = platform_name.split_once('.') else {
                continue;
            };
            let labels = |version: &str| VersionLabels {
                tenant: tenant.to_owned(),
                model: model.to_owned(),
                version: version.to_owned(),
            };
            self.replicas_desired
                .get_or_create(&labels(""))
                .set(i64::from(view.status.desired_replicas));
            for v in &view.status.versions {
                self.replicas_ready
                    .get_or_create(&labels(&v.version))
                    .set(i64::from(v.ready_replicas));
            }
        }
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
