//! `autoglm up`: the console, the local platform with its reconciler, and the
//! gateway in one process; and, unless `--no-demo`, the demo services.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use autoglm_console::AppState;
use autoglm_contract::Demand;
use autoglm_gateway::Gateway;
use autoglm_platform::LocalPlatform;
use autoglm_reconciler::{Launcher, Reconciler};
use tokio::sync::watch;

use crate::config::ServeArgs;

/// Flags of `autoglm up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Address of the gateway, where clients call models.
    #[arg(long, env = "AUTOGLM_GATEWAY_ADDR", default_value = "127.0.0.1:8000")]
    pub gateway_addr: String,
    /// First port handed to replicas.
    #[arg(long, env = "AUTOGLM_REPLICA_BASE_PORT", default_value_t = 9000)]
    pub replica_base_port: u16,
    /// Do not register and deploy the demo models.
    #[arg(long)]
    pub no_demo: bool,
    #[command(flatten)]
    pub gateway: GatewayArgs,
}

/// The gateway's flags, shared by `autoglm up` and `autoglm gateway`.
#[derive(Debug, clap::Args)]
pub struct GatewayArgs {
    /// Longest the gateway waits for a replica's response headers, and then between two pieces of its body, in seconds.
    #[arg(long, default_value_t = 600)]
    pub request_timeout: u64,
    /// Longest a request is held while its version has no ready replica, in seconds.
    #[arg(long, default_value_t = 120)]
    pub hold_timeout: u64,
    /// Longest time to receive a request body at the gateway, in seconds.
    #[arg(long, default_value_t = 30)]
    pub body_timeout: u64,
    /// Longest time to receive a request's headers at the gateway, in seconds.
    #[arg(long, default_value_t = 10)]
    pub header_timeout: u64,
    /// Most requests held per version while it has no ready replica.
    #[arg(long, default_value_t = 100)]
    pub max_waiting: u64,
    /// Keep each API key on one version of a split unless x-autoglm-sticky-key says otherwise.
    #[arg(long)]
    pub sticky_by_key: bool,
    /// Export a span per gateway request to this OTLP/HTTP collector, e.g. http://127.0.0.1:4318.
    #[arg(long, env = "AUTOGLM_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Longest one call into a gateway filter may run, in milliseconds; past it the filter fails.
    #[arg(long, default_value_t = 100)]
    pub filter_deadline_ms: u64,
    /// Most memory one instance of a gateway filter may have, in MiB; past it the filter fails.
    #[arg(long, default_value_t = 64)]
    pub filter_memory_mib: u64,
}

impl GatewayArgs {
    /// Checks the flags.
    pub fn check(self) -> Result<autoglm_gateway::Config, String> {
        for (name, value) in [
            ("request-timeout", self.request_timeout),
            ("hold-timeout", self.hold_timeout),
            ("body-timeout", self.body_timeout),
            ("header-timeout", self.header_timeout),
        ] {
            if !(1..=3600).contains(&value) {
                return Err(format!("{name} must be 1 to 3600 seconds, not {value}"));
            }
        }
        if !(1..=10_000).contains(&self.filter_deadline_ms) {
            return Err(format!(
                "filter-deadline-ms must be 1 to 10000, not {}",
                self.filter_deadline_ms
            ));
        }
        if !(1..=4096).contains(&self.filter_memory_mib) {
            return Err(format!(
                "filter-memory-mib must be 1 to 4096, not {}",
                self.filter_memory_mib
            ));
        }
        if let Some(endpoint) = &self.otlp_endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(format!(
                "otlp-endpoint {endpoint:?} must be an http:// or https:// URL"
            ));
        }
        Ok(autoglm_gateway::Config {
            otlp_endpoint: self.otlp_endpoint,
            request_timeout: Duration::from_secs(self.request_timeout),
            hold_timeout: Duration::from_secs(self.hold_timeout),
            body_timeout: Duration::from_secs(self.body_timeout),
            header_timeout: Duration::from_secs(self.header_timeout),
            max_waiting: self.max_waiting,
            sticky_by_key: self.sticky_by_key,
            filter_limits: autoglm_gateway::FilterLimits {
                deadline: Duration::from_millis(self.filter_deadline_ms),
                memory: (self.filter_memory_mib * 1024 * 1024) as usize,
            },
            ..autoglm_gateway::Config::default()
        })
    }
}

/// The checked options beyond the console's.
#[derive(Debug, Clone)]
pub struct Up {
    pub gateway_addr: SocketAddr,
    pub replica_base_port: u16,
    pub demo: bool,
    pub gateway: autoglm_gateway::Config,
}

impl UpArgs {
    /// Splits and checks the flags.
    pub fn check(self) -> Result<(ServeArgs, Up), String> {
        let gateway_addr = self.gateway_addr.parse().map_err(|_| {
            format!(
                "gateway-addr {:?} is not HOST:PORT with an IP address (e.g. 127.0.0.1:8000)",
                self.gateway_addr
            )
        })?;
        if self.replica_base_port < 1024 {
            return Err("replica-base-port must be 1024 or more".into());
        }
        let gateway = self.gateway.check()?;
        Ok((
            self.serve,
            Up {
                gateway_addr,
                replica_base_port: self.replica_base_port,
                demo: !self.no_demo,
                gateway,
            },
        ))
    }
}

/// What `up` runs beside the console.
#[derive(Debug)]
pub struct Running {
    pub platform: Arc<LocalPlatform>,
    pub gateway_url: String,
    /// The gateway's requests in flight and waiting, for the alert rules.
    pub demand: Arc<Demand>,
    gateway: tokio::task::JoinHandle<std::io::Result<()>>,
    stop: watch::Sender<bool>,
}

/// Starts the platform, the reconciler (planning every stored service) and
/// the gateway; returns the console state wired to them.
pub async fn start(
    up: &Up,
    home: &std::path::Path,
    state: AppState,
) -> anyhow::Result<(AppState, Running)> {
    let listener = tokio::net::TcpListener::bind(up.gateway_addr)
        .await
        .with_context(|| format!("cannot listen on {} for the gateway", up.gateway_addr))?;
    let gateway_url = format!("http://{}", listener.local_addr()?);
    let settings = autoglm_platform::Settings {
        base_port: up.replica_base_port,
        ..Default::default()
    };
    let root = home.join("replicas");
    let platform = Arc::new(
        tokio::task::spawn_blocking(move || LocalPlatform::start(root, settings))
            .await?
            .context("cannot start the local platform")?,
    );
    let demand = Arc::new(Demand::default());
    let program: PathBuf = std::env::current_exe().context("cannot find the autoglm binary")?;
    // Replicas send their spans where the gateway sends its own, by the
    // variable OpenTelemetry's SDKs read, so a command runtime can too.
    let launcher = Launcher {
        program,
        env: up
            .gateway
            .otlp_endpoint
            .iter()
            .map(|e| ("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), e.clone()))
            .collect(),
        config_dir: home.join("config"),
    };
    let reconciler = Reconciler::start(
        state.store.clone(),
        state.artifacts.clone(),
        platform.clone(),
        demand.clone(),
        launcher,
        Some(format!("{gateway_url}/v1")),
    );
    let count = reconciler
        .sync_all()
        .await
        .context("cannot read the services to run")?;
    tracing::info!(services = count, "scheduled stored services");
    let gateway = Gateway::new(
        up.gateway.clone(),
        state.store.clone(),
        state.sessions.clone(),
        platform.watch(),
        demand.clone(),
    )?;
    let traffic = gateway.history();
    let filter_counters = gateway.filter_counters();
    tokio::spawn(follow_gateway_settings(&state, gateway.clone()));
    let (stop, mut stopped) = watch::channel(false);
    let gateway = tokio::spawn(gateway.serve(listener, async move {
        let _ = stopped.wait_for(|s| *s).await;
    }));
    let state = state
        .with_platform(reconciler)
        .with_traffic(traffic)
        .with_filters(filter_counters);
    Ok((
        state,
        Running {
            platform,
            gateway_url,
            demand,
            gateway,
            stop,
        },
    ))
}

/// Applies the config center's `autoglm/gateway.yaml` (of the system tenant's
/// default environment) to the gateway live, and its start-up values again
/// when the key goes. The console refuses a wrong one at publish.
fn follow_gateway_settings(
    state: &AppState,
    gateway: Gateway,
) -> impl std::future::Future<Output = ()> + use<> {
    use autoglm_core::config::settings::{GATEWAY_KEY, GatewaySettings, SETTINGS_GROUP};
    autoglm_config::follow(
        state.config.clone(),
        state.store.clone(),
        autoglm_core::rbac::SYSTEM_TENANT.to_owned(),
        None,
        SETTINGS_GROUP.to_owned(),
        GATEWAY_KEY.to_owned(),
        move |version| {
            let settings = match version {
                None => Ok(GatewaySettings::default()),
                Some(v) => GatewaySettings::parse(v.format, &v.content),
            };
            match settings {
                Ok(settings) => gateway.apply(&settings),
                Err(e) => tracing::warn!(errors = ?e, "gateway settings not applied"),
            }
        },
    )
}

impl Running {
    /// Drains the gateway, then stops every replica. The reconciler lives on
    /// in the console's state, and its autoscaler may still plan a scale-up:
    /// the platform refuses every plan once its shutdown has begun, so none
    /// starts a replica that nothing would stop.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        match self.gateway.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "gateway stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "gateway task failed"),
        }
        self.platform.shutdown().await;
        tracing::info!("replicas stopped");
    }
}
