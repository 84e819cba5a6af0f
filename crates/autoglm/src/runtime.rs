//! `autoglm runtime`: serve one model on one port, as a replica.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use autoglm_core::config::ConfigFormat;
use autoglm_core::config::settings::{RuntimeSettings, SamplingDefaults as SamplingSettings};
use autoglm_core::service::CONFIG_FILE_ENV;
use autoglm_runtime::engines::EngineOptions;
use autoglm_runtime::{Runtime, RuntimeConfig, SamplingDefaults};

/// Flags of `autoglm runtime`.
#[derive(Debug, clap::Args)]
pub struct RuntimeArgs {
    /// Model file or folder. Point it at a symbolic link to swap versions:
    /// re-point the link and send SIGHUP.
    #[arg(long, env = "AUTOGLM_MODEL")]
    model: PathBuf,
    /// The name clients use for the model (DNS-1123 label).
    #[arg(long, env = "AUTOGLM_MODEL_NAME")]
    name: String,
    /// Version label [default: the link target's name, or 1].
    #[arg(long, env = "AUTOGLM_MODEL_VERSION")]
    version: Option<String>,
    /// Address to listen on.
    #[arg(long, env = "AUTOGLM_ADDR", default_value = "127.0.0.1:9000")]
    addr: String,
    /// Bearer token that enables POST /admin/v1/load.
    #[arg(long, env = "AUTOGLM_RUNTIME_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Largest embeddings batch.
    #[arg(long, default_value_t = 32)]
    max_batch: usize,
    /// Longest an embeddings request waits to share a batch, in milliseconds.
    #[arg(long, default_value_t = 5)]
    max_batch_wait_ms: u64,
    /// Generation requests that may wait beyond those decoding; more get 429.
    #[arg(long, default_value_t = 64)]
    queue_capacity: usize,
    /// Sequences decoded together (generation).
    #[arg(long, env = "AUTOGLM_MAX_SEQUENCES", default_value_t = 8)]
    max_sequences: usize,
    /// Context per sequence in tokens (generation).
    #[arg(long, env = "AUTOGLM_CONTEXT", default_value_t = 2048)]
    context: usize,
    /// CPU threads for generation [default: all cores].
    #[arg(long, env = "AUTOGLM_THREADS")]
    threads: Option<usize>,
    /// Export each generation's spans (queue, prefill, decode) over OTLP/HTTP
    /// to this collector, e.g. http://127.0.0.1:4318 (the variable
    /// OpenTelemetry's SDKs read; `autoglm up --otlp-endpoint` sets it).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
}

/// The checked settings.
#[derive(Debug)]
pub struct Checked {
    args: RuntimeArgs,
    addr: SocketAddr,
    settings: RuntimeSettings,
}

impl RuntimeArgs {
    /// Checks the flags; the message is the one line printed before exit 64.
    pub fn check(self) -> Result<Checked, String> {
        autoglm_core::names::validate("model", &self.name).map_err(|e| e.to_string())?;
        let addr = self
            .addr
            .parse()
            .map_err(|_| format!("addr {:?} is not HOST:PORT with an IP address", self.addr))?;
        if self.max_batch == 0 || self.max_batch > 1024 {
            return Err("max-batch must be 1 to 1024".into());
        }
        if self.max_sequences == 0 || self.max_sequences > 64 {
            return Err("max-sequences must be 1 to 64".into());
        }
        if self.context < 128 {
            return Err("context must be at least 128 tokens".into());
        }
        if self.admin_token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err("admin token must be at least 16 characters".into());
        }
        if !self.model.exists() {
            return Err(format!("model {} does not exist", self.model.display()));
        }
        if let Some(endpoint) = &self.otlp_endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(format!(
                "otlp-endpoint {endpoint:?} must be an http:// or https:// URL"
            ));
        }
        let settings = match std::env::var_os(CONFIG_FILE_ENV) {
            None => RuntimeSettings::default(),
            Some(path) => read_settings(Path::new(&path))?,
        };
        Ok(Checked {
            args: self,
            addr,
            settings,
        })
    }
}

/// The runtime settings in the file a service's `configRef` delivers: its
/// format from its extension, YAML (which reads JSON too) without one.
fn read_settings(path: &Path) -> Result<RuntimeSettings, String> {
    let content = std::fs::read_to_string(path)
        .map_err(|e| format!("{CONFIG_FILE_ENV} {}: {e}", path.display()))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let format = match ConfigFormat::of_key(&name) {
        ConfigFormat::Text => ConfigFormat::Yaml,
        known => known,
    };
    RuntimeSettings::parse(format, &content).map_err(|errors| {
        let wrong: Vec<String> = errors
            .iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect();
        format!(
            "{CONFIG_FILE_ENV} {} holds wrong runtime settings: {}",
            path.display(),
            wrong.join("; ")
        )
    })
}

/// The runtime's sampling defaults: the configured ones over OpenAI's.
fn sampling_defaults(configured: &SamplingSettings) -> SamplingDefaults {
    let openai = SamplingDefaults::default();
    SamplingDefaults {
        temperature: configured.temperature.unwrap_or(openai.temperature),
        top_p: configured.top_p.unwrap_or(openai.top_p),
        top_k: configured.top_k.unwrap_or(openai.top_k),
        max_tokens: configured.max_tokens.unwrap_or(openai.max_tokens),
    }
}

/// The version label of `model`: the explicit one, else a link target's name, else "1".
fn version_of(model: &Path, explicit: Option<&str>) -> String {
    explicit.map(str::to_owned).unwrap_or_else(|| {
        std::fs::read_link(model)
            .ok()
            .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "1".to_owned())
    })
}

/// Serves until SIGINT/SIGTERM; SIGHUP reloads `--model`.
/// Exits the process once its parent is no longer `parent` (the platform
/// that started it was killed and this replica was handed to init).
fn exit_with_parent(parent: u32) {
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_secs(1));
            if std::os::unix::process::parent_id() != parent {
                tracing::warn!(
                    parent,
                    "the platform that started this replica is gone; exiting"
                );
                std::process::exit(0);
            }
        }
    });
}

pub async fn run(checked: Checked) -> anyhow::Result<()> {
    let Checked {
        args,
        addr,
        settings,
    } = checked;
    if let Some(parent) = std::env::var(autoglm_core::service::EXIT_WITH_PARENT_ENV)
        .ok()
        .and_then(|p| p.parse().ok())
    {
        exit_with_parent(parent);
    }
    let options = EngineOptions {
        max_sequences: args.max_sequences,
        context_per_sequence: args.context,
        threads: args
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from)),
    };
    let config = RuntimeConfig {
        name: args.name.clone(),
        max_batch: settings.batching.max_batch.unwrap_or(args.max_batch),
        max_batch_wait: settings
            .max_batch_wait()
            .unwrap_or(Duration::from_millis(args.max_batch_wait_ms)),
        queue_capacity: settings
            .batching
            .queue_capacity
            .unwrap_or(args.queue_capacity),
        admin_token: args.admin_token.clone(),
        sampling: sampling_defaults(&settings.sampling),
        tracing: Arc::new(match &args.otlp_endpoint {
            Some(endpoint) => autoglm_trace::Tracing::otlp(endpoint, "autoglm-runtime")?,
            None => autoglm_trace::Tracing::default(),
        }),
    };
    let runtime = Runtime::new(
        config,
        Arc::new(move |path: &Path| autoglm_runtime::engines::load(path, &options)),
    );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    println!(
        "autoglm runtime listening on http://{}",
        listener.local_addr()?
    );
    let version = version_of(&args.model, args.version.as_deref());
    let initial = {
        let runtime = runtime.clone();
        let model = args.model.clone();
        tokio::spawn(async move { runtime.load(&model, &version).await })
    };
    tokio::spawn(reload_on_hangup(
        runtime.clone(),
        args.model.clone(),
        args.version.clone(),
    ));
    let server = axum::serve(listener, autoglm_runtime::router(runtime))
        .with_graceful_shutdown(crate::signal::signal());
    let server = tokio::spawn(async move { server.await });
    match initial.await? {
        Ok(report) => println!(
            "model {} version {} ready in {:.2} s",
            args.name, report.version, report.load_seconds
        ),
        Err(e) => anyhow::bail!("cannot load {}: {e}", args.model.display()),
    }
    server.await??;
    Ok(())
}

#[cfg(unix)]
async fn reload_on_hangup(runtime: Arc<Runtime>, model: PathBuf, explicit: Option<String>) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        return;
    };
    while hangups.recv().await.is_some() {
        let version = version_of(&model, explicit.as_deref());
        tracing::info!(path = %model.display(), version, "SIGHUP: reloading");
        if let Err(error) = runtime.load(&model, &version).await {
            tracing::error!(%error, "reload failed; still serving the previous version");
        }
    }
}

#[cfg(not(unix))]
async fn reload_on_hangup(_: Arc<Runtime>, _: PathBuf, _: Option<String>) {}
