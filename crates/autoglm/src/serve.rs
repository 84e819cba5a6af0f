//! Serving the console over HTTP or HTTPS until SIGINT or SIGTERM, then draining.

use std::path::Path;

use anyhow::Context;
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;

use crate::config::{Config, Tls};
use crate::up::Up;

/// Where the console's services run.
#[derive(Debug)]
pub enum Platform {
    /// Nowhere (`autoglm console`): they are answered as Pending.
    None,
    /// On this machine, with the gateway (`autoglm up`).
    Up(Up),
    /// On the cluster of this kubeconfig (else in-cluster or $KUBECONFIG),
    /// rollouts measured from this Prometheus.
    Kubernetes {
        /// The kubeconfig.
        kubeconfig: Option<std::path::PathBuf>,
        /// The Prometheus that scrapes the gateways.
        prometheus: Option<String>,
        /// Where each tenant's policies are kept for the operator's webhook.
        system_namespace: String,
    },
}

/// Opens the home folder, prints how to reach the console, serves until a
/// signal. With `up`, also runs the platform, reconciler and gateway (and the
/// demo); on Kubernetes, writes services to the cluster and reads them back.
pub async fn run(config: Config, platform: Platform) -> anyhow::Result<()> {
    let prometheus = match &platform {
        Platform::Kubernetes { prometheus, .. } => prometheus.clone(),
        _ => None,
    };
    let home = config.home.clone();
    let password = config.admin_password.clone();
    let opened = tokio::task::spawn_blocking(move || {
        autoglm_console::bootstrap::open(&home, password.as_deref())
    })
    .await?
    .with_context(|| format!("cannot open home folder {}", config.home.display()))?;
    let (state, running, up) = match platform {
        Platform::Up(up) => {
            let (state, running) = crate::up::start(&up, &config.home, opened.state).await?;
            (state, Some(running), Some(up))
        }
        Platform::None => (opened.state, None, None),
        Platform::Kubernetes {
            kubeconfig,
            system_namespace,
            ..
        } => {
            let client = crate::cluster::client(kubeconfig.as_ref())
                .await
                .map_err(|e| anyhow::anyhow!("cannot reach Kubernetes: {e}"))?;
            tokio::spawn(autoglm_cluster::tenants::run(
                client.clone(),
                opened.state.store.clone(),
                system_namespace,
            ));
            tokio::spawn(autoglm_cluster::config_maps::run(
                client.clone(),
                opened.state.store.clone(),
                opened.state.config.clone(),
            ));
            let platform =
                autoglm_cluster::KubernetesPlatform::start(client, opened.state.store.clone())
                    .await?;
            tracing::info!("services run on Kubernetes, one namespace per tenant");
            (opened.state.with_platform(platform), None, None)
        }
    };
    tokio::spawn(autoglm_console::config_refs::roll_referrers(state.clone()));
    // One scheduler runs every task, on whichever platform the services run.
    let mut work = autoglm_tasks::ServiceWork::new(
        state.store.clone(),
        state.platform.clone(),
        state.traffic.clone(),
    );
    if let Some(url) = &prometheus {
        work = work.with_prometheus(autoglm_prometheus::Prometheus::new(url));
    }
    let _tasks = autoglm_tasks::TaskScheduler::start(
        state.store.clone(),
        state.tasks.clone(),
        work,
        autoglm_tasks::Settings::default(),
    )
    .await
    .context("cannot start the task scheduler")?;
    let mut alert_parts = autoglm_alerts::Parts {
        store: state.store.clone(),
        history: state.traffic.clone(),
        platform: state.platform.clone(),
        demand: running.as_ref().map(|r| r.demand.clone()),
        tasks: state.tasks.clone(),
        external_url: String::new(),
    };
    let alert_board = state.alerts.clone();
    let ui = autoglm_web::router(
        autoglm_web::WebConfig {
            secure_cookies: !matches!(config.tls, Tls::Off),
            // Read once at start and kept for the process's life.
            grafana_url: config
                .grafana_url
                .clone()
                .map(|url| &*Box::leak(url.into_boxed_str())),
        },
        autoglm_console::router(state.clone()),
    );
    let nacos = match config.nacos_addr {
        Some(addr) => Some(
            autoglm_nacos::Listeners::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} for the Nacos-compatible API (--nacos-addr; `off` turns it off)"))?,
        ),
        None => None,
    };
    let nacos_state = state.clone();
    let app = autoglm_console::router_with_ui(state, ui);
    let handle = Handle::new();
    tokio::spawn(shutdown_on_signal(handle.clone()));
    let scheme = if matches!(config.tls, Tls::Off) {
        "http"
    } else {
        "https"
    };
    let listener = std::net::TcpListener::bind(config.addr)
        .with_context(|| format!("cannot listen on {}", config.addr))?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    println!("autoglm console listening on {scheme}://{local}");
    alert_parts.external_url = format!("{scheme}://{local}");
    // Alert rules are evaluated wherever the console runs: over the gateway's
    // traffic under `up`, over the platform's replicas everywhere.
    let alerts = tokio::spawn(autoglm_alerts::Engine::new(alert_parts, alert_board).run());
    if let Some(running) = &running {
        println!("autoglm gateway listening on {}", running.gateway_url);
    }
    let nacos = match nacos {
        Some(listeners) => {
            let http = listeners.http_addr()?;
            println!(
                "nacos-compatible config API listening on http://{http} (gRPC on port {})",
                http.port() + autoglm_nacos::GRPC_OFFSET
            );
            // It stops taking connections on the same signal the console drains on.
            let shutdown = crate::signal::signal();
            Some(tokio::spawn(autoglm_nacos::serve(
                nacos_state,
                listeners,
                shutdown,
            )))
        }
        None => None,
    };
    match &opened.new_admin_token {
        Some(token) => println!(
            "admin token (also in {}): {token}",
            opened.admin_token_file.display()
        ),
        None => println!("admin token: see {}", opened.admin_token_file.display()),
    }
    tracing::info!(%local, scheme, "console started");
    if let (Some(up), Some(running)) = (&up, &running)
        && up.demo
    {
        let console_url = format!("{scheme}://{local}");
        let token_file = opened.admin_token_file.clone();
        let gateway_url = running.gateway_url.clone();
        tokio::spawn(async move {
            match crate::demo::deploy(&console_url, &token_file).await {
                Ok(()) => println!(
                    "demo services deployed: chat (SmolLM2) and embeddings (MiniLM). Try:\n  \
                     curl -s {gateway_url}/v1/chat/completions -H \"Authorization: Bearer $(cat {})\" \
                     -H 'content-type: application/json' \
                     -d '{{\"model\": \"chat\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello!\"}}], \"max_tokens\": 32}}'",
                    token_file.display()
                ),
                Err(e) => eprintln!("autoglm: the demo could not be deployed: {e:#}"),
            }
        });
    }
    let service = app.into_make_service();
    match &config.tls {
        Tls::Off => {
            axum_server::from_tcp(listener)
                .handle(handle)
                .serve(service)
                .await?
        }
        tls => {
            let rustls = match tls {
                Tls::Files { cert, key } => RustlsConfig::from_pem_file(cert, key)
                    .await
                    .context("cannot load TLS files")?,
                _ => self_signed(&config.home).await?,
            };
            axum_server::from_tcp_rustls(listener, rustls)
                .handle(handle)
                .serve(service)
                .await?
        }
    }
    tracing::info!("console stopped");
    alerts.abort();
    if let Some(nacos) = nacos {
        nacos.abort();
    }
    if let Some(running) = running {
        running.stop().await;
    }
    Ok(())
}

/// A certificate for localhost kept under `home/tls`, made on first use.
async fn self_signed(home: &Path) -> anyhow::Result<RustlsConfig> {
    let dir = home.join("tls");
    let (cert, key) = (dir.join("self-signed.crt"), dir.join("self-signed.key"));
    if !cert.is_file() || !key.is_file() {
        std::fs::create_dir_all(&dir)?;
        let generated =
            rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])?;
        autoglm_console::bootstrap::write_secret_file(
            &key,
            &generated.signing_key.serialize_pem(),
        )?;
        std::fs::write(&cert, generated.cert.pem())?;
        println!(
            "self-signed certificate for localhost written to {}",
            cert.display()
        );
    }
    Ok(RustlsConfig::from_pem_file(cert, key).await?)
}

async fn shutdown_on_signal(handle: Handle) {
    crate::signal::signal().await;
    tracing::info!("signal received; draining");
    handle.graceful_shutdown(Some(autoglm_console::DRAIN_TIMEOUT));
}
