//! `autoglm operator`: runs the ModelService controller against the cluster
//! of the kubeconfig (or the in-cluster service account).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use autoglm_operator::{LeaseConfig, Settings};
use autoglm_render::RenderOptions;

/// Flags of `autoglm operator`.
#[derive(clap::Args, Debug)]
pub struct OperatorArgs {
    /// The kubeconfig; the in-cluster configuration or $KUBECONFIG when absent.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Watch only these namespaces (repeat the flag, or separate with commas); all when absent.
    #[arg(long = "namespace", value_delimiter = ',')]
    namespaces: Vec<String>,
    /// The autoglm image: the built-in runtime and the model loader.
    #[arg(long, default_value_t = RenderOptions::default().image)]
    image: String,
    /// The console the model loader pulls model versions from.
    #[arg(long, default_value_t = RenderOptions::default().console_url)]
    console_url: String,
    /// Serve /metrics, /healthz and /readyz here.
    #[arg(long, default_value = "0.0.0.0:8443")]
    metrics_addr: SocketAddr,
    /// Compete for the leader Lease, so that of several replicas one acts.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// The namespace of the leader Lease; the first watched namespace, else $POD_NAMESPACE, else default.
    #[arg(long)]
    leader_elect_namespace: Option<String>,
    /// How long the lease holds without renewal, in seconds.
    #[arg(long, default_value_t = 15)]
    lease_duration: u64,
    /// Reconcile every ModelService this often even when nothing changed, in seconds.
    #[arg(long, default_value_t = 300)]
    resync_interval: u64,
    /// The Prometheus that scrapes the gateways, e.g. http://prometheus:9090: rollouts' analyses query it.
    #[arg(long, env = "AUTOGLM_PROMETHEUS_URL")]
    prometheus_url: Option<String>,
}

/// This process among the candidates: the pod (or host) name and the pid.
fn identity() -> String {
    let host = std::env::var("POD_NAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .unwrap_or_else(|| "autoglm".to_owned());
    format!("{}_{}", host.trim(), std::process::id())
}

/// Runs until SIGINT or SIGTERM; exits 1 when the leader lease is lost.
pub async fn run(args: OperatorArgs) -> ExitCode {
    if args.lease_duration == 0 || args.resync_interval == 0 {
        eprintln!("autoglm: --lease-duration and --resync-interval must be at least 1 second");
        return ExitCode::from(64);
    }
    let client = match crate::cluster::client(args.kubeconfig.as_ref()).await {
        Ok(client) => client,
        Err(e) => {
            eprintln!("autoglm: cannot reach Kubernetes: {e}");
            return ExitCode::from(64);
        }
    };
    let identity = identity();
    let lease_namespace = args
        .leader_elect_namespace
        .clone()
        .or_else(|| args.namespaces.first().cloned())
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .unwrap_or_else(|| "default".to_owned());
    let settings = Settings {
        namespaces: args.namespaces.clone(),
        render: RenderOptions {
            image: args.image,
            console_url: args.console_url,
            ..RenderOptions::default()
        },
        lease: args.leader_elect.then(|| {
            (
                lease_namespace,
                LeaseConfig {
                    name: "autoglm-operator".to_owned(),
                    identity: identity.clone(),
                    duration: Duration::from_secs(args.lease_duration),
                },
            )
        }),
        metrics_addr: Some(args.metrics_addr),
        instance: identity,
        resync: Duration::from_secs(args.resync_interval),
        prometheus: args.prometheus_url.clone(),
    };
    eprintln!(
        "autoglm operator watching ModelServices in {}; metrics on http://{}/metrics",
        if args.namespaces.is_empty() {
            "all namespaces".to_owned()
        } else {
            args.namespaces.join(", ")
        },
        args.metrics_addr
    );
    match autoglm_operator::run(client, settings, crate::signal::signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("autoglm operator: {:#}", anyhow::Error::from(e));
            ExitCode::FAILURE
        }
    }
}
