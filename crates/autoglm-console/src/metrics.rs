//! Prometheus metrics and the health endpoints.
//!
//! Requests are labelled by route template (`/api/v1/models/{name}`), never by
//! raw path, so a scan of random URLs cannot blow up the series count.

use std::time::Instant;

use autoglm_exposition::Format;
use autoglm_store::Store;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

/// The console's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabels, Histogram>,
    pool_connections: Gauge,
    pool_idle: Gauge,
    pool_max: Gauge,
    tasks_pending: Gauge,
    tasks_running: Gauge,
    writes: Counter,
    commits: Counter,
    wal_syncs: Counter,
    /// Scrapes catch the store's counts up one at a time.
    catching_up: parking_lot::Mutex<()>,
}

impl Metrics {
    /// Registers every metric; the schema gauges are set once from `store`.
    pub fn new(store: &Store) -> Metrics {
        let mut registry = Registry::with_prefix("autoglm");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "console_http_requests",
            "HTTP requests served, by route and status code",
            requests.clone(),
        );
        let duration = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
        });
        registry.register_with_unit(
            "console_http_request_duration",
            "Time to answer HTTP requests, by route",
            prometheus_client::registry::Unit::Seconds,
            duration.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let pool_connections = gauge(
            &mut registry,
            "store_pool_connections",
            "Open reader connections to SQLite",
        );
        let pool_idle = gauge(
            &mut registry,
            "store_pool_idle_connections",
            "Idle reader connections to SQLite",
        );
        let pool_max = gauge(
            &mut registry,
            "store_pool_max_connections",
            "Most reader connections the pool opens",
        );
        let tasks_pending = gauge(
            &mut registry,
            "tasks_pending",
            "Tasks queued or waiting to retry",
        );
        let tasks_running = gauge(&mut registry, "tasks_running", "Tasks a worker runs");
        let writes = Counter::default();
        registry.register(
            "store_writes",
            "Writes committed to SQLite; writes arriving together share a transaction",
            writes.clone(),
        );
        let commits = Counter::default();
        registry.register(
            "store_commits",
            "Write transactions committed to SQLite",
            commits.clone(),
        );
        let wal_syncs = Counter::default();
        registry.register(
            "store_wal_syncs",
            "Syncs of SQLite's WAL that made commits durable; concurrent commits share one",
            wal_syncs.clone(),
        );
        let migrations = store.migrations();
        gauge(
            &mut registry,
            "store_schema_version",
            "Schema version of the database",
        )
        .set(migrations.current);
        gauge(
            &mut registry,
            "store_migrations_applied_at_start",
            "Migrations applied when this process started",
        )
        .set(migrations.current - migrations.found);
        Metrics {
            registry,
            requests,
            duration,
            pool_connections,
            pool_idle,
            pool_max,
            tasks_pending,
            tasks_running,
            writes,
            commits,
            wal_syncs,
            catching_up: parking_lot::Mutex::new(()),
        }
    }

    fn encode(&self, store: &Store, backlog: (i64, i64)) -> Result<String, std::fmt::Error> {
        self.tasks_pending.set(backlog.0);
        self.tasks_running.set(backlog.1);
        let pool = store.pool_state();
        self.pool_connections.set(pool.connections.into());
        self.pool_idle.set(pool.idle.into());
        self.pool_max.set(pool.max.into());
        // The store counts; the counters catch up to it (a scrape at a time).
        let _one_at_a_time = self.catching_up.lock();
        let synced = store.sync_counts();
        self.writes
            .inc_by(synced.writes.saturating_sub(self.writes.get()));
        self.commits
            .inc_by(synced.commits.saturating_sub(self.commits.get()));
        self.wal_syncs
            .inc_by(synced.syncs.saturating_sub(self.wal_syncs.get()));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Counts and times every request by route template.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let response = next.run(req).await;
    let labels = RouteLabels { method, route };
    state
        .metrics
        .duration
        .get_or_create(&labels)
        .observe(start.elapsed().as_secs_f64());
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            method: labels.method,
            route: labels.route,
            code: response.status().as_u16(),
        })
        .inc();
    response
}

/// `GET /metrics`, Prometheus text format.
pub async fn serve(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let store = state.store.clone();
    let Ok(Ok(backlog)) = tokio::task::spawn_blocking(move || store.task_backlog()).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    match state.metrics.encode(&state.store, backlog) {
        Ok(body) => (
            [(header::CONTENT_TYPE, format.content_type())],
            format.render(body),
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `GET /healthz`: the process answers.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: the database answers a query.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let store = state.store.clone();
    let ready = tokio::task::spawn_blocking(move || store.has_users()).await;
    match ready {
        Ok(Ok(_)) => "ready\n".into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "database not reachable\n").into_response(),
    }
}
