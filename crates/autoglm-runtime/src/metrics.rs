//! The runtime's Prometheus metrics and readiness.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use autoglm_exposition::Format;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::Runtime;
use crate::usage::TokenUsage;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

/// Every runtime metric.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    inference: Family<KindLabels, Histogram>,
    queue_depth: Gauge,
    batch_size: Histogram,
    prompt_tokens: Counter,
    cached_prompt_tokens: Counter,
    generated_tokens: Counter,
    time_to_first_token: Histogram,
    ready_gauge: Gauge,
    ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("autoglm_runtime");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "HTTP requests by route and status code",
            requests.clone(),
        );
        let inference = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        registry.register_with_unit(
            "inference_duration",
            "Engine time per batch or request",
            Unit::Seconds,
            inference.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Requests waiting for the engine",
            queue_depth.clone(),
        );
        let batch_size = Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]);
        registry.register(
            "batch_size",
            "Inputs per embeddings forward pass",
            batch_size.clone(),
        );
        let prompt_tokens = Counter::default();
        registry.register(
            "prompt_tokens",
            "Prompt tokens of generation requests",
            prompt_tokens.clone(),
        );
        let cached_prompt_tokens = Counter::default();
        registry.register(
            "cached_prompt_tokens",
            "Prompt tokens of generation requests found in the KV cache, not evaluated again",
            cached_prompt_tokens.clone(),
        );
        let generated_tokens = Counter::default();
        registry.register(
            "generated_tokens",
            "Tokens generated",
            generated_tokens.clone(),
        );
        let time_to_first_token = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register_with_unit(
            "time_to_first_token",
            "From request to the first generated text",
            Unit::Seconds,
            time_to_first_token.clone(),
        );
        let ready_gauge = Gauge::default();
        registry.register(
            "ready",
            "1 once a model is loaded and warmed up",
            ready_gauge.clone(),
        );
        Metrics {
            registry,
            requests,
            inference,
            queue_depth,
            batch_size,
            prompt_tokens,
            cached_prompt_tokens,
            generated_tokens,
            time_to_first_token,
            ready_gauge,
            ready: AtomicBool::new(false),
        }
    }
}

impl Metrics {
    /// Records engine time for `kind`.
    pub fn observe_inference(&self, kind: &str, took: Duration) {
        self.inference
            .get_or_create(&KindLabels {
                kind: kind.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// Records the waiting requests.
    pub fn observe_queue_depth(&self, depth: usize) {
        self.queue_depth.set(depth as i64);
    }

    /// Records one forward pass's batch size.
    pub fn observe_batch(&self, size: usize) {
        self.batch_size.observe(size as f64);
    }

    /// Records a finished generation.
    pub fn observe_generation(&self, usage: &TokenUsage) {
        self.prompt_tokens.inc_by(usage.prompt_tokens as u64);
        self.cached_prompt_tokens.inc_by(usage.cached_tokens as u64);
        self.generated_tokens.inc_by(usage.completion_tokens as u64);
    }

    /// Records time to first token.
    pub fn observe_first_token(&self, took: Duration) {
        self.time_to_first_token.observe(took.as_secs_f64());
    }

    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
        self.ready_gauge.set(i64::from(ready));
    }

    /// Whether a model is loaded and warmed up.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

/// Counts requests by route template and status.
pub async fn track(
    State(runtime): State<std::sync::Arc<Runtime>>,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    runtime
        .metrics()
        .requests
        .get_or_create(&RequestLabels {
            route,
            code: response.status().as_u16(),
        })
        .inc();
    response
}

/// `GET /metrics`.
pub async fn serve(
    State(runtime): State<std::sync::Arc<Runtime>>,
    headers: axum::http::HeaderMap,
) -> Response {
    let mut out = String::new();
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    match prometheus_client::encoding::text::encode(&mut out, &runtime.metrics().registry) {
        Ok(()) => (
            [(header::CONTENT_TYPE, format.content_type())],
            format.render(out),
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `GET /readyz`: 200 only once a model is loaded and its warm-up inference passed.
pub async fn readyz(State(runtime): State<std::sync::Arc<Runtime>>) -> Response {
    if runtime.metrics().is_ready() {
        "ready\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "loading\n").into_response()
    }
}
