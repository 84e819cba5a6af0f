//! Kubernetes for the console and the gateway: `autoglm console --platform
//! kubernetes` and `autoglm gateway`, and the client both (and the operator)
//! build from a kubeconfig or the in-cluster service account.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use autoglm_contract::Demand;

use crate::up::GatewayArgs;

/// Where the console's services run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlatformKind {
    /// Nowhere: services are stored and answered as Pending.
    None,
    /// As ModelServices in the tenant's namespace, run by `autoglm operator`.
    Kubernetes,
}

/// Flags of `autoglm console`.
#[derive(Debug, clap::Args)]
pub struct ConsoleArgs {
    #[command(flatten)]
    pub serve: crate::config::ServeArgs,
    /// Where services run.
    #[arg(long, env = "AUTOGLM_PLATFORM", value_enum, default_value = "none")]
    pub platform: PlatformKind,
    /// The kubeconfig for `--platform kubernetes`; the in-cluster configuration or $KUBECONFIG when absent.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// The Prometheus that scrapes the gateways, e.g. http://prometheus:9090: rollouts' analyses query it.
    #[arg(long, env = "AUTOGLM_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,
    /// With `--platform kubernetes`: autoglm's own namespace, where the console
    /// keeps each tenant's policies for the operator's webhook (tenants cannot write there).
    #[arg(long, default_value = autoglm_policy::SYSTEM_NAMESPACE)]
    pub system_namespace: String,
}

/// Flags of `autoglm gateway`.
#[derive(Debug, clap::Args)]
pub struct GatewayCommandArgs {
    /// The console's home folder: API keys, tenants' limits and usage live in its database.
    #[arg(long, env = "AUTOGLM_HOME", default_value = ".autoglm")]
    home: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "AUTOGLM_GATEWAY_ADDR", default_value = "0.0.0.0:8000")]
    addr: SocketAddr,
    /// The kubeconfig; the in-cluster configuration or $KUBECONFIG when absent.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    gateway: GatewayArgs,
}

/// A client of the cluster of `kubeconfig`, else of the in-cluster
/// configuration or $KUBECONFIG.
pub async fn client(kubeconfig: Option<&PathBuf>) -> Result<kube::Client, String> {
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| format!("cannot read kubeconfig {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(
                kubeconfig,
                &kube::config::KubeConfigOptions::default(),
            )
            .await
            .map_err(|e| e.to_string())?
        }
        None => kube::Config::infer().await.map_err(|e| e.to_string())?,
    };
    kube::Client::try_from(config).map_err(|e| e.to_string())
}

/// Runs the gateway over the console's database and the cluster's
/// ModelServices and EndpointSlices until SIGINT or SIGTERM.
pub async fn gateway(args: GatewayCommandArgs) -> ExitCode {
    let config = match args.gateway.check() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("autoglm: invalid configuration: {e}");
            return ExitCode::from(64);
        }
    };
    match serve_gateway(args.home, args.addr, args.kubeconfig, config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("autoglm: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve_gateway(
    home: PathBuf,
    addr: SocketAddr,
    kubeconfig: Option<PathBuf>,
    config: autoglm_gateway::Config,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        home.join("autoglm.db").is_file(),
        "no console database in {}; point --home at the console's home folder",
        home.display()
    );
    let opened = tokio::task::spawn_blocking(move || autoglm_console::bootstrap::open(&home, None))
        .await?
        .context("cannot open the console's home folder")?;
    let client = client(kubeconfig.as_ref())
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach Kubernetes: {e}"))?;
    let (_, views) = autoglm_cluster::watch_views(&client);
    let gateway = autoglm_gateway::Gateway::new(
        config,
        opened.state.store.clone(),
        opened.state.sessions.clone(),
        views,
        Arc::new(Demand::default()),
    )?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    println!(
        "autoglm gateway listening on http://{}",
        listener.local_addr()?
    );
    gateway.serve(listener, crate::signal::signal()).await?;
    Ok(())
}
