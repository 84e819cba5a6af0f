//! The autoglm console: REST API, authentication, RBAC, audit and the
//! operations endpoints, as one axum [`Router`].
//!
//! Request flow, outermost first:
//!
//! ```text
//! request id (x-request-id, set or kept) → trace span → panic → problem
//!   → problem context (request id, instance) → metrics (per route template and status)
//!   → router → guard (authenticate → authorise → replay checks → audit refusals)
//!   → handler → store (change + audit + idempotency record, one transaction)
//! ```

pub mod api;
pub mod bootstrap;
pub mod conditional;
pub mod config_refs;
pub mod context;
pub mod error;
pub mod extract;
pub mod guard;
pub mod metrics;
pub mod openapi;
pub mod policies;
pub mod routes;

use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use autoglm_alerts::Board;
use autoglm_artifacts::ArtifactStore;
use autoglm_auth::{AuthError, CredentialCache, Principal, Sessions};
use autoglm_contract::{
    FilterCounters, NoPlatform, NoTrafficHistory, ServicePlatform, TrafficHistory,
};
use autoglm_core::error::ErrorCode;
use autoglm_store::Store;
use autoglm_tasks::Tasks;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, HeaderName, Request};
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, NotForContentType, Predicate};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::error::ApiError;
use crate::metrics::Metrics;

/// Largest JSON body accepted; uploads stream and have no limit.
pub const JSON_LIMIT: usize = 1024 * 1024;
/// Longest a resolved bearer token is trusted without asking the store (an
/// audited write, such as a revocation, ends it at once).
pub const CREDENTIAL_TTL: Duration = Duration::from_secs(10);
/// The request id header.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Everything handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database.
    pub store: Arc<Store>,
    /// Version files.
    pub artifacts: ArtifactStore,
    /// Session token signing.
    pub sessions: Sessions,
    /// Bearer tokens resolved since the last audited write.
    pub credentials: Arc<CredentialCache<Result<Principal, AuthError>>>,
    /// Answers of the cached reads since the last audited write.
    pub reads: Arc<conditional::ReadCache>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Idempotency keys whose first request is running.
    pub in_flight_keys: Arc<Mutex<HashSet<(String, String)>>>,
    /// The platform that runs the services.
    pub platform: Arc<dyn ServicePlatform>,
    /// The gateway's traffic history, where the gateway runs in this process.
    pub traffic: Arc<dyn TrafficHistory>,
    /// The counters of the gateway's filters, where the gateway runs in this process.
    pub filters: Arc<dyn FilterCounters>,
    /// Wakes the task scheduler and tells waiters when tasks change.
    pub tasks: Tasks,
    /// The alert evaluator's pending and firing series.
    pub alerts: Board,
    /// The config center's watch hub.
    pub config: Arc<autoglm_config::Hub>,
    /// Each tenant's compiled policies.
    pub policies: Arc<policies::PolicySets>,
}

impl AppState {
    /// Builds the state over an opened store and artifact store.
    pub fn new(
        store: Arc<Store>,
        artifacts: ArtifactStore,
        sessions: Sessions,
        config: Arc<autoglm_config::Hub>,
    ) -> AppState {
        AppState {
            config,
            policies: Arc::default(),
            metrics: Arc::new(Metrics::new(&store)),
            store,
            artifacts,
            sessions,
            credentials: Arc::new(CredentialCache::new(CREDENTIAL_TTL)),
            reads: Arc::default(),
            in_flight_keys: Arc::default(),
            platform: Arc::new(NoPlatform),
            traffic: Arc::new(NoTrafficHistory),
            filters: Arc::new(NoTrafficHistory),
            tasks: Tasks::default(),
            alerts: Board::default(),
        }
    }

    /// The same state with the traffic history of a gateway in this process.
    pub fn with_traffic(self, traffic: Arc<dyn TrafficHistory>) -> AppState {
        AppState { traffic, ..self }
    }

    /// The same state with the counters of the gateway's filters.
    pub fn with_filters(self, filters: Arc<dyn FilterCounters>) -> AppState {
        AppState { filters, ..self }
    }

    /// The same state with services run by `platform`.
    pub fn with_platform(self, platform: Arc<dyn ServicePlatform>) -> AppState {
        AppState { platform, ..self }
    }
}

/// The request id the request-id layer put on the request.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The W3C trace a request belongs to (the caller's `traceparent`, else a
/// new one) and a span id of its own, for its log lines.
fn trace_ids(headers: &HeaderMap) -> (String, String) {
    let parent = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(autoglm_trace::parse_traceparent);
    let span = autoglm_trace::Tracing::default().start(String::new, parent);
    (span.trace_id(), span.span_id())
}

/// The whole console as a router, for a listener or for `oneshot` in tests.
pub fn router(state: AppState) -> Router {
    router_with_ui(state, Router::new())
}

/// The console with `ui` (the web pages) beside the API, behind the same
/// request ids, tracing, metrics and panic handling.
pub fn router_with_ui(state: AppState, ui: Router<AppState>) -> Router {
    let mut api = ui;
    for route in routes::table() {
        let spec = route.spec.clone();
        let guard = axum::middleware::from_fn_with_state(state.clone(), move |s, req, next| {
            guard::guard(s, spec.clone(), req, next)
        });
        let mut handler = route.handler.route_layer(guard);
        if !matches!(route.spec.request, routes::RequestBody::UploadOrJson(_)) {
            handler = handler.layer(DefaultBodyLimit::max(route.spec.body_limit));
        } else {
            handler = handler.layer(DefaultBodyLimit::disable());
        }
        api = api.route(route.spec.path, handler);
    }
    api.route("/api/v1/openapi.json", get(openapi::serve))
        .route("/healthz", get(metrics::healthz))
        .route("/readyz", get(metrics::readyz))
        .route("/metrics", get(metrics::serve))
        .fallback(|| async { ApiError::new(ErrorCode::RouteNotFound, "no endpoint at this path; see /api/v1/openapi.json") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(ErrorCode::MethodNotAllowed, "this endpoint does not accept this method; see /api/v1/openapi.json")
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        // gzip when asked, for what is worth it: not streams of events, and
        // not artifacts (large and mostly incompressible weights).
        .layer(CompressionLayer::new().compress_when(
            DefaultPredicate::new().and(NotForContentType::const_new("application/octet-stream")),
        ))
        .layer(axum::middleware::from_fn(error::add_problem_context))
        .with_state(state)
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(ApiError::new(ErrorCode::Internal, "the handler panicked"))
        }))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    let (trace_id, span_id) = trace_ids(req.headers());
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %request_id(req.headers()), %trace_id, %span_id)
                })
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// How long shutdown waits for in-flight requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
