//! The autoglm gateway: the front door of every served model.
//!
//! Each request goes through an ordered stack of small steps (see
//! ARCHITECTURE.md): authenticate (the console's API keys and session
//! tokens) → rate-limit (per key and per tenant) → route (OpenAI `model`
//! field or Open Inference Protocol path, to a service of the caller's
//! tenant) → split (pinned version, sticky key, or weighted draw) → hold
//! (while the version has no ready replica) → balance (least outstanding
//! requests, ejecting replicas that fail by their own doing, never for a
//! request's length) → forward (sent again, to another replica, only while
//! no byte of it was written, as when the connection is refused; a replica
//! that took it and failed to answer gives a 502; with a timeout to the
//! response headers) → relay (streamed through, scanned for token usage) →
//! account (usage, token buckets, metrics).

mod auth;
mod balance;
mod body;
mod deadline;
mod filters;
mod history;
mod incoming;
mod limits;
mod metrics;
mod opening;
mod proxy;
mod reply;
mod routes;
mod server;
mod split;
mod tokens;
mod upstream;
mod usage;
mod version;
/// Public for the fuzz targets and the bounded runs of them in the tests
/// (docs/fuzzing.md): the HTTP/1 reader is the gateway's first contact
/// with a client's bytes.
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use autoglm_auth::Sessions;
use autoglm_contract::{Demand, Views};
use autoglm_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use auth::Authenticator;
pub use autoglm_filters::Limits as FilterLimits;
use autoglm_trace::Tracing;
pub use autoglm_trace::TracingError;
pub use history::History;
use limits::Limiter;
use metrics::Metrics;
use routes::Table;
use upstream::Pool;
use usage::Usage;

/// The header that pins a version.
pub const VERSION_HEADER: &str = "x-autoglm-version";
/// The header whose value keeps a client on one version of a split.
pub const STICKY_HEADER: &str = "x-autoglm-sticky-key";

/// The gateway's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Longest wait for a replica's response headers, and then between two
    /// pieces of its body (a stalled answer is cut short).
    pub request_timeout: Duration,
    /// Largest request body.
    pub body_limit: usize,
    /// Longest time to receive a request body.
    pub body_timeout: Duration,
    /// Longest time to receive a request's headers.
    pub header_timeout: Duration,
    /// Longest a request is held while its version has no ready replica.
    pub hold_timeout: Duration,
    /// Most requests held per version; more are refused at once.
    pub max_waiting: u64,
    /// How many other replicas to try while none of a request was sent (a refused connection).
    pub retries: u32,
    /// Keep each credential on one version of a split when no sticky header is sent.
    pub sticky_by_key: bool,
    /// Export a span per request to this OTLP/HTTP collector (base URL).
    pub otlp_endpoint: Option<String>,
    /// The rate limit of a tenant that has none of its own.
    pub default_rate_limit: Option<autoglm_core::security::RateLimit>,
    /// What each filter instance may use: a deadline per callback, a memory cap.
    pub filter_limits: autoglm_filters::Limits,
}

impl Config {
    /// This configuration with the config center's live settings over it
    /// (a field the settings leave out keeps this value).
    pub fn with(&self, settings: &autoglm_core::config::settings::GatewaySettings) -> Config {
        Config {
            request_timeout: settings.request_timeout.unwrap_or(self.request_timeout),
            body_timeout: settings.body_timeout.unwrap_or(self.body_timeout),
            hold_timeout: settings.hold_timeout.unwrap_or(self.hold_timeout),
            body_limit: settings.body_limit.unwrap_or(self.body_limit),
            max_waiting: settings.max_waiting.unwrap_or(self.max_waiting),
            retries: settings.retries.unwrap_or(self.retries),
            default_rate_limit: settings.default_rate_limit.or(self.default_rate_limit),
            ..self.clone()
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            request_timeout: Duration::from_secs(600),
            body_limit: 8 * 1024 * 1024,
            body_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            hold_timeout: Duration::from_secs(120),
            max_waiting: 100,
            retries: 2,
            sticky_by_key: false,
            otlp_endpoint: None,
            default_rate_limit: None,
            filter_limits: autoglm_filters::Limits::default(),
        }
    }
}

/// What the gateway shares between requests.
#[derive(Debug)]
struct Inner {
    /// What the gateway started with.
    start: Config,
    /// What it applies now: `start` with the config center's settings over it,
    /// swapped whole so that a request reads one consistent set.
    config: arc_swap::ArcSwap<Config>,
    auth: Authenticator,
    limiter: Limiter,
    tokens: Arc<tokens::TokenLedger>,
    usage: Arc<Usage>,
    metrics: Metrics,
    table: watch::Receiver<Arc<Table>>,
    demand: Arc<Demand>,
    tracing: Tracing,
    filters: Arc<filters::Filters>,
}

/// The gateway, ready to serve.
#[derive(Debug, Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl Gateway {
    /// A gateway over the console's store (credentials, usage) and the
    /// platform's views (routes) and demand (autoscaling). Spawns the tasks
    /// that follow the views and flush usage. Fails only when the OTLP
    /// exporter cannot be set up.
    pub fn new(
        config: Config,
        store: Arc<Store>,
        sessions: Sessions,
        mut views: watch::Receiver<Arc<Views>>,
        demand: Arc<Demand>,
    ) -> Result<Gateway, TracingError> {
        let tracing = match &config.otlp_endpoint {
            Some(endpoint) => Tracing::otlp(endpoint, "autoglm-gateway")?,
            None => Tracing::default(),
        };
        let builder = routes::Builder::default();
        let filters = Arc::new(filters::Filters::new(config.filter_limits));
        let metrics = Metrics::new(filters.metrics());
        let first = views.borrow_and_update().clone();
        metrics.replicas(&first);
        let (table_tx, table) = watch::channel(Arc::new(builder.build(&first, &metrics, &demand)));
        let usage = Arc::new(Usage::default());
        tokio::spawn(usage.clone().flush_forever(store.clone()));
        filters::Filters::follow(Arc::downgrade(&filters), store.clone());
        let inner = Arc::new(Inner {
            config: arc_swap::ArcSwap::from_pointee(config.clone()),
            start: config,
            auth: Authenticator::new(store, sessions),
            limiter: Limiter::default(),
            tokens: Arc::default(),
            usage,
            metrics,
            table,
            demand,
            tracing,
            filters,
        });
        tokio::spawn(History::close_intervals_forever(Arc::downgrade(
            &inner.metrics.history(),
        )));
        let weak = Arc::downgrade(&inner);
        tokio::spawn(async move {
            while views.changed().await.is_ok() {
                let Some(inner) = weak.upgrade() else { return };
                let now = views.borrow_and_update().clone();
                inner.metrics.replicas(&now);
                let _ = table_tx.send(Arc::new(builder.build(&now, &inner.metrics, &inner.demand)));
            }
        });
        Ok(Gateway { inner })
    }

    /// Applies the config center's live settings: requests that start from
    /// now on read them; those in flight keep what they started with.
    pub fn apply(&self, settings: &autoglm_core::config::settings::GatewaySettings) {
        self.inner
            .config
            .store(Arc::new(self.inner.start.with(settings)));
        tracing::info!(?settings, "gateway settings applied");
    }

    /// The counters of the filters this gateway runs.
    pub fn filter_counters(&self) -> Arc<dyn autoglm_contract::FilterCounters> {
        self.inner.filters.clone()
    }

    /// The version of the store's filters this gateway runs (it loads them
    /// from the store within a tenth of a second of a change).
    pub fn filters_version(&self) -> u64 {
        self.inner.filters.loaded_version()
    }

    /// The last hour of traffic per service version.
    pub fn history(&self) -> Arc<History> {
        self.inner.metrics.history()
    }

    /// Serves connections from `listener` until `shutdown` completes, then
    /// lets open requests finish. Connections are spread over one worker
    /// thread per CPU, each an event loop of its own (a single-threaded
    /// runtime) with its own pool of replica connections, as nginx runs its
    /// workers: a request never hops between threads.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let listener = listener.into_std()?;
        let closing = CancellationToken::new();
        let count = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let mut workers = Vec::with_capacity(count);
        for n in 0..count {
            let (listener, inner, closing) =
                (listener.try_clone()?, self.inner.clone(), closing.clone());
            workers.push(
                std::thread::Builder::new()
                    .name(format!("autoglm-gateway-{n}"))
                    .spawn(move || worker(&inner, listener, &closing))?,
            );
        }
        drop(listener);
        shutdown.await;
        closing.cancel();
        let ended = tokio::task::spawn_blocking(move || {
            workers
                .into_iter()
                .map(|w| {
                    w.join()
                        .unwrap_or_else(|_| Err(std::io::Error::other("panicked")))
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        for e in ended.into_iter().filter_map(Result::err) {
            tracing::warn!(error = %e, "a gateway worker failed");
        }
        // What is left of usage and spans, written off the async threads.
        let inner = self.inner.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = inner.usage.flush(&inner.auth.store()) {
                tracing::warn!(error = %e, "the last usage could not be written");
            }
            inner.tracing.shutdown();
        })
        .await;
        Ok(())
    }
}

/// One worker: accepts connections from `listener` and serves them on this
/// thread until `closing` is cancelled, then lets open requests finish.
fn worker(
    inner: &Arc<Inner>,
    listener: std::net::TcpListener,
    closing: &CancellationToken,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = TcpListener::from_std(listener)?;
        let pool = Pool::new();
        let connections = TaskTracker::new();
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors and the like: wait rather than spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = closing.cancelled() => break,
            };
            let _ = stream.set_nodelay(true);
            connections.spawn(server::serve(
                inner.clone(),
                pool.clone(),
                stream,
                peer,
                closing.clone(),
            ));
        }
        connections.close();
        tokio::select! {
            () = connections.wait() => {}
            () = tokio::time::sleep(Duration::from_secs(30)) => {
                tracing::warn!("gave up waiting for open gateway connections");
            }
        }
        Ok(())
    })
}
