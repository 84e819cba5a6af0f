//! `autoglm operator`: runs the ModelService controller against the cluster
//! of the kubeconfig (or the in-cluster service account).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use autoglm_operator::Operator;
use autoglm_render::RenderOptions;

/// Flags of `autoglm operator`.
#[derive(clap::Args, Debug)]
pub struct OperatorArgs {
    /// The kubeconfig; the in-cluster configuration or $KUBECONFIG when absent.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Watch only this namespace; all when absent.
    #[arg(long)]
    namespace: Option<String>,
    /// The autoglm image: the built-in runtime and the model loader.
    #[arg(long, default_value_t = RenderOptions::default().image)]
    image: String,
    /// The console the model loader pulls model versions from.
    #[arg(long, default_value_t = RenderOptions::default().console_url)]
    console_url: String,
}

/// Runs until SIGINT or SIGTERM.
pub async fn run(args: OperatorArgs) -> ExitCode {
    let config = match &args.kubeconfig {
        Some(path) => match kube::config::Kubeconfig::read_from(path) {
            Ok(kubeconfig) => kube::Config::from_custom_kubeconfig(
                kubeconfig,
                &kube::config::KubeConfigOptions::default(),
            )
            .await
            .map_err(|e| e.to_string()),
            Err(e) => Err(format!("cannot read kubeconfig {}: {e}", path.display())),
        },
        None => kube::Config::infer().await.map_err(|e| e.to_string()),
    };
    let client = match config.and_then(|c| kube::Client::try_from(c).map_err(|e| e.to_string())) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("autoglm: cannot reach Kubernetes: {e}");
            return ExitCode::from(64);
        }
    };
    let options = RenderOptions {
        image: args.image,
        console_url: args.console_url,
        ..RenderOptions::default()
    };
    eprintln!(
        "autoglm operator watching ModelServices in {}",
        args.namespace.as_deref().unwrap_or("all namespaces")
    );
    autoglm_operator::run(
        Arc::new(Operator::new(client, options)),
        args.namespace.as_deref(),
    )
    .await;
    ExitCode::SUCCESS
}
