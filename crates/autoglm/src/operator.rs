//! `autoglm operator`: runs the ModelService controller against the cluster
//! of the kubeconfig (or the in-cluster service account).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use autoglm_operator::{Certificate, Endpoint, LeaseConfig, Settings, WebhookSettings};
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
    /// Serve the policies' ValidatingAdmissionWebhook over TLS here (with
    /// --webhook-url or --webhook-service); no webhook when absent.
    #[arg(long)]
    webhook_addr: Option<SocketAddr>,
    /// The URL the API server calls the webhook at (https://HOST:PORT/validate).
    #[arg(long, conflicts_with = "webhook_service")]
    webhook_url: Option<String>,
    /// The Service the API server calls the webhook through: NAMESPACE/NAME[:PORT] (port 443 when absent).
    #[arg(long)]
    webhook_service: Option<String>,
    /// The webhook's serving certificate (PEM); self-signed, kept in a Secret, when absent.
    #[arg(long, requires_all = ["webhook_key_file", "webhook_ca_file"])]
    webhook_cert_file: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, requires = "webhook_cert_file")]
    webhook_key_file: Option<PathBuf>,
    /// The CA that signed it (PEM), written into the webhook configuration.
    #[arg(long, requires = "webhook_cert_file")]
    webhook_ca_file: Option<PathBuf>,
    /// Where the console keeps each tenant's policies (its --system-namespace).
    #[arg(long, default_value = autoglm_policy::SYSTEM_NAMESPACE)]
    policies_namespace: String,
    /// A user whose ModelService writes the webhook lets through unjudged: the
    /// console's ServiceAccount (system:serviceaccount:NS:NAME), which judged each
    /// write with its real caller before making it. Repeat for several.
    #[arg(long = "webhook-trusted-user")]
    webhook_trusted_users: Vec<String>,
    /// What the API server does when no webhook answers: Fail (refuse the write) or Ignore.
    #[arg(long, default_value = "Fail", value_parser = ["Fail", "Ignore"])]
    webhook_failure_policy: String,
    /// How long the API server waits for the webhook, in seconds (1 to 30).
    #[arg(long, default_value_t = autoglm_operator::DEFAULT_TIMEOUT_SECONDS,
          value_parser = clap::value_parser!(i32).range(1..=30))]
    webhook_timeout: i32,
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

/// The webhook's settings from the flags: `None` without --webhook-addr.
fn webhook_settings(
    args: &OperatorArgs,
    secret_namespace: &str,
) -> Result<Option<WebhookSettings>, String> {
    let Some(addr) = args.webhook_addr else {
        return Ok(None);
    };
    let endpoint = match (&args.webhook_url, &args.webhook_service) {
        (Some(url), None) if url.starts_with("https://") => Endpoint::Url(url.clone()),
        (Some(url), None) => return Err(format!("--webhook-url must be https://, not {url:?}")),
        (None, Some(service)) => {
            let (namespace, rest) = service.split_once('/').ok_or_else(|| {
                format!("--webhook-service must be NAMESPACE/NAME[:PORT], not {service:?}")
            })?;
            let (name, port) = match rest.split_once(':') {
                Some((name, port)) => (
                    name,
                    port.parse()
                        .map_err(|_| format!("--webhook-service: {port:?} is not a port"))?,
                ),
                None => (rest, 443),
            };
            Endpoint::Service {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                port,
            }
        }
        _ => return Err("--webhook-addr needs --webhook-url or --webhook-service".to_owned()),
    };
    let certificate = match (
        &args.webhook_cert_file,
        &args.webhook_key_file,
        &args.webhook_ca_file,
    ) {
        (Some(cert), Some(key), Some(ca)) => Certificate::Files {
            cert: cert.clone(),
            key: key.clone(),
            ca: ca.clone(),
        },
        _ => Certificate::SelfSigned {
            namespace: secret_namespace.to_owned(),
        },
    };
    Ok(Some(WebhookSettings {
        addr,
        endpoint,
        certificate,
        failure_policy: args.webhook_failure_policy.clone(),
        timeout_seconds: args.webhook_timeout,
        namespaces: args.namespaces.clone(),
        policies_namespace: args.policies_namespace.clone(),
        trusted_users: args.webhook_trusted_users.clone(),
    }))
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
    let client_for_webhook = client.clone();
    let identity = identity();
    let lease_namespace = args
        .leader_elect_namespace
        .clone()
        .or_else(|| args.namespaces.first().cloned())
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .unwrap_or_else(|| "default".to_owned());
    let webhook = match webhook_settings(&args, &lease_namespace) {
        Ok(webhook) => webhook,
        Err(e) => {
            eprintln!("autoglm: {e}");
            return ExitCode::from(64);
        }
    };
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
    // Every replica judges writes, leader or not; a webhook that cannot
    // serve ends the process, as a lost lease does.
    let webhook = async move {
        match webhook {
            Some(webhook) => autoglm_operator::serve_webhook(client_for_webhook, webhook).await,
            None => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        result = autoglm_operator::run(client, settings, crate::signal::signal()) => {
            result.map_err(anyhow::Error::from)
        }
        result = webhook => result.map_err(anyhow::Error::from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("autoglm operator: {e:#}");
            ExitCode::FAILURE
        }
    }
}
