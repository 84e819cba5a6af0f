//! The operator's Prometheus metrics, `autoglm_operator_*`, and the small
//! HTTP server that answers `/metrics`, `/healthz` and `/readyz`.

use std::sync::Arc;

use autoglm_exposition::Format;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of a write to the API server.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    /// `apply`, `delete`, `status`, `finalizer` or `event`.
    pub verb: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// Every operator metric; the leader gauge also answers /readyz.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabels, Counter>,
    reconcile_duration: Histogram,
    writes: Family<WriteLabels, Counter>,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut r = Registry::with_prefix("autoglm_operator");
        let reconciles = Family::<ResultLabels, Counter>::default();
        r.register(
            "reconciles",
            "Reconciles of a ModelService, by result",
            reconciles.clone(),
        );
        let reconcile_duration = Histogram::new([
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]);
        r.register(
            "reconcile_duration_seconds",
            "Time one reconcile took",
            reconcile_duration.clone(),
        );
        let writes = Family::<WriteLabels, Counter>::default();
        r.register(
            "api_writes",
            "Writes sent to the Kubernetes API server, by verb",
            writes.clone(),
        );
        let leader = Gauge::default();
        r.register(
            "leader",
            "1 while this instance holds the leader lease",
            leader.clone(),
        );
        Metrics {
            registry: r,
            reconciles,
            reconcile_duration,
            writes,
            leader,
        }
    }
}

impl Metrics {
    /// Counts one finished reconcile.
    pub fn reconciled(&self, ok: bool, seconds: f64) {
        let result = if ok { "success" } else { "error" };
        self.reconciles
            .get_or_create(&ResultLabels { result })
            .inc();
        self.reconcile_duration.observe(seconds);
    }

    /// Counts one write to the API server.
    pub fn wrote(&self, verb: &'static str) {
        self.writes.get_or_create(&WriteLabels { verb }).inc();
    }

    /// Records whether this instance leads (it is ready only then).
    pub fn set_leading(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

async fn exposition(State(m): State<Arc<Metrics>>, headers: HeaderMap) -> impl IntoResponse {
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    (
        [(header::CONTENT_TYPE, format.content_type())],
        format.render(m.encode()),
    )
}

/// Ready while leading: a standby answers 503, as controller-runtime's
/// leader-gated readiness does, so `kubectl get pods` shows which one works.
async fn readyz(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    if m.leader.get() == 1 {
        (StatusCode::OK, "ok\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "standing by for the leader lease\n",
        )
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(exposition))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(metrics);
    axum::serve(listener, app).await
}
