//! The autoglm model server, run once per replica (`autoglm runtime`).
//!
//! One model at a time is served; a hot swap loads the next version beside
//! it, warms it up, switches new requests to it, and frees the old one when
//! its last in-flight request finishes (requests hold an `Arc` to the
//! version they started on).
//!
//! ```text
//! HTTP (OpenAI /v1, Open Inference Protocol /v2, /admin/v1)
//!   → Runtime::current() → Served (one version)
//!       embeddings: EmbedBatcher (max batch, max wait) → Embedder on a worker thread
//!       generation: Gate (bounded outstanding, 429 beyond) → Generator::submit → events → SSE / JSON
//!       tensors:    TensorModel::infer on a blocking thread
//! ```

pub mod admin;
pub mod batcher;
pub mod detect;
pub mod engines;
pub mod error;
pub mod metrics;
pub mod oip;
pub mod openai;
pub mod served;
pub mod traced;
pub mod usage;

use parking_lot::RwLock;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use autoglm_inference::{Embedder, Generator, InferenceError, TensorModel};
use axum::Router;
use axum::routing::{get, post};

use crate::metrics::Metrics;
use crate::served::Served;

/// A loaded engine, by kind.
#[derive(Clone)]
pub enum Engine {
    /// Sentence embeddings.
    Embeddings(Arc<dyn Embedder>),
    /// Text generation.
    Generation(Arc<dyn Generator>),
    /// Typed tensors in, typed tensors out.
    Tensor(Arc<dyn TensorModel>),
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind())
    }
}

impl Engine {
    /// `embeddings`, `generation` or `tensor`.
    pub fn kind(&self) -> &'static str {
        match self {
            Engine::Embeddings(_) => "embeddings",
            Engine::Generation(_) => "generation",
            Engine::Tensor(_) => "tensor",
        }
    }
}

/// Turns a model path into an engine; the binary supplies it, choosing engines.
pub type LoadFn = Arc<dyn Fn(&Path) -> Result<Engine, InferenceError> + Send + Sync>;

/// Settings of one runtime.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// The model name clients use.
    pub name: String,
    /// Largest embeddings batch.
    pub max_batch: usize,
    /// Longest an embeddings request waits for others to share its batch.
    pub max_batch_wait: Duration,
    /// Generation requests that may wait beyond those being decoded; more get 429.
    pub queue_capacity: usize,
    /// Bearer token for `/admin/v1`; without one the admin API is off.
    pub admin_token: Option<String>,
    /// What a generation request's left-out sampling fields mean.
    pub sampling: SamplingDefaults,
    /// Where generations' spans go (or only their ids, without an exporter).
    pub tracing: Arc<autoglm_trace::Tracing>,
}

/// Defaults of the OpenAI sampling fields a request leaves out (a
/// service's `configRef` sets them; OpenAI's own defaults otherwise).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingDefaults {
    /// Temperature, 0 to 2.
    pub temperature: f32,
    /// Nucleus mass, in (0, 1].
    pub top_p: f32,
    /// Top-k; 0 is off.
    pub top_k: u32,
    /// Most new tokens.
    pub max_tokens: u32,
}

impl Default for SamplingDefaults {
    fn default() -> SamplingDefaults {
        SamplingDefaults {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            max_tokens: openai::DEFAULT_MAX_TOKENS,
        }
    }
}

/// The server's state: the version being served and how to load another.
pub struct Runtime {
    config: RuntimeConfig,
    loader: LoadFn,
    current: RwLock<Option<Arc<Served>>>,
    swapping: tokio::sync::Mutex<()>,
    metrics: Arc<Metrics>,
    started: Instant,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.config)
            .finish()
    }
}

/// What a load did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadReport {
    /// The version now served.
    pub version: String,
    /// Its path.
    pub path: PathBuf,
    /// The engine kind.
    pub kind: &'static str,
    /// Time to load and warm up.
    pub load_seconds: f64,
}

impl Runtime {
    /// A runtime serving nothing yet.
    pub fn new(config: RuntimeConfig, loader: LoadFn) -> Arc<Runtime> {
        Arc::new(Runtime {
            config,
            loader,
            current: RwLock::new(None),
            swapping: tokio::sync::Mutex::new(()),
            metrics: Arc::new(Metrics::default()),
            started: Instant::now(),
        })
    }

    /// The tracer of the generations' spans.
    pub fn tracing(&self) -> &autoglm_trace::Tracing {
        &self.config.tracing
    }

    /// The configuration.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The version being served, if one is ready.
    pub fn current(&self) -> Option<Arc<Served>> {
        self.current.read().clone()
    }

    /// Loads `path` as `version` beside the current one, warms it up, then
    /// switches to it. Requests keep being served by the old version until
    /// the switch, and those already running finish on it.
    pub async fn load(
        self: &Arc<Self>,
        path: &Path,
        version: &str,
    ) -> Result<LoadReport, InferenceError> {
        let _one_swap_at_a_time = self.swapping.lock().await;
        let start = Instant::now();
        tracing::info!(path = %path.display(), version, "loading model");
        let loader = self.loader.clone();
        let owned = path.to_owned();
        let engine = tokio::task::spawn_blocking(move || loader(&owned))
            .await
            .map_err(|e| InferenceError::Engine(format!("loader panicked: {e}")))??;
        let served = Served::start(engine, version, path, &self.config, self.metrics.clone());
        served.warm_up().await?;
        let report = LoadReport {
            version: version.to_owned(),
            path: path.to_owned(),
            kind: served.engine.kind(),
            load_seconds: start.elapsed().as_secs_f64(),
        };
        let previous = self.current.write().replace(served);
        if let Some(previous) = previous {
            tracing::info!(
                old = previous.version,
                new = version,
                "switched version; the old one drains"
            );
        }
        self.metrics.set_ready(true);
        tracing::info!(
            version,
            seconds = report.load_seconds,
            since_start = self.started.elapsed().as_secs_f64(),
            "model ready"
        );
        Ok(report)
    }
}

/// The runtime's HTTP API.
pub fn router(runtime: Arc<Runtime>) -> Router {
    Router::new()
        .route("/v1/models", get(openai::models))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/completions", post(openai::completions))
        .route("/v2/health/live", get(oip::live))
        .route("/v2/health/ready", get(oip::ready))
        .route("/v2/models/{name}", get(oip::metadata))
        .route("/v2/models/{name}/ready", get(oip::model_ready))
        .route("/v2/models/{name}/infer", post(oip::infer))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(oip::metadata_version),
        )
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(oip::model_ready_version),
        )
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(oip::infer_version),
        )
        .route("/admin/v1/load", post(admin::load))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(metrics::readyz))
        .route("/metrics", get(metrics::serve))
        .layer(axum::middleware::from_fn_with_state(
            runtime.clone(),
            metrics::track,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(32 * 1024 * 1024))
        .with_state(runtime)
}
