//! The demo of `autoglm up`: finds (or fetches) SmolLM2 and MiniLM, registers
//! them through the console's own API, and deploys a chat service and an
//! embeddings service. Every step is idempotent, so a restart changes nothing.

use std::path::{Path, PathBuf};

use anyhow::Context;
use autoglm_cli::Client;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// (model, cache folder, task, framework, service)
const DEMO: [(&str, &str, &str, &str, &str); 2] = [
    (
        "smollm2",
        "smollm2-135m-instruct-q4_1",
        "text-generation",
        "llama.cpp",
        "chat",
    ),
    (
        "minilm",
        "all-minilm-l6-v2",
        "embeddings",
        "sentence-transformers",
        "embeddings",
    ),
];

/// The model cache: `AUTOGLM_MODELS`, else `~/.cache/autoglm/models`.
fn cache_dir() -> PathBuf {
    std::env::var_os("AUTOGLM_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home =
                std::env::var_os("HOME").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
            home.join(".cache/autoglm/models")
        })
}

/// Runs the fetch script when a demo model is missing; it prints its own progress.
fn ensure_models(cache: &Path) -> anyhow::Result<()> {
    if DEMO
        .iter()
        .all(|d| cache.join(d.1).join(".complete").exists())
    {
        return Ok(());
    }
    let script = [
        PathBuf::from("scripts/fetch-models.sh"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/fetch-models.sh"),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .context("the demo models are missing and scripts/fetch-models.sh is not here; run autoglm up from the repository, or pass --no-demo")?;
    println!("fetching the demo models into {} ...", cache.display());
    let status = std::process::Command::new("sh")
        .arg(&script)
        .env("AUTOGLM_MODELS", cache)
        .status()
        .with_context(|| format!("cannot run {}", script.display()))?;
    anyhow::ensure!(status.success(), "{} failed ({status})", script.display());
    Ok(())
}

/// Sends `body` with `method`; `409 conflict` counts as done.
async fn ensure(
    client: &Client,
    method: Method,
    path: &[&str],
    body: &Value,
) -> anyhow::Result<()> {
    let url = client.url(path)?;
    match client.send(client.request(method, url).json(body)).await {
        Ok(_) => Ok(()),
        Err(e) if e.status() == Some(StatusCode::CONFLICT) => Ok(()),
        Err(e) => Err(anyhow::anyhow!("{e}")),
    }
}

/// Registers the demo models and deploys their services.
pub async fn deploy(console_url: &str, token_file: &Path) -> anyhow::Result<()> {
    let cache = cache_dir();
    tokio::task::spawn_blocking({
        let cache = cache.clone();
        move || ensure_models(&cache)
    })
    .await??;
    let client = Client::new(&autoglm_cli::ClientArgs {
        server: console_url.to_owned(),
        token: None,
        token_file: token_file.to_owned(),
        insecure_skip_tls_verify: true,
        output: autoglm_cli::OutputFormat::Table,
    })?;
    for (model, folder, task, framework, service) in DEMO {
        ensure(
            &client,
            Method::POST,
            &["api", "v1", "models"],
            &json!({"name": model, "description": format!("demo: {folder}"), "labels": {"demo": "true"}}),
        )
        .await
        .with_context(|| format!("cannot register model {model}"))?;
        let versions: Value = client
            .get_json(client.url(&["api", "v1", "models", model, "versions"])?)
            .await?;
        let has_version = versions["items"].as_array().is_some_and(|v| !v.is_empty());
        if !has_version {
            let path = cache.join(folder);
            ensure(
                &client,
                Method::POST,
                &["api", "v1", "models", model, "versions"],
                &json!({"path": path.display().to_string(), "task": task, "framework": framework}),
            )
            .await
            .with_context(|| format!("cannot register {} as model {model}", path.display()))?;
        }
        ensure(
            &client,
            Method::POST,
            &["api", "v1", "services"],
            &json!({
                "apiVersion": autoglm_core::service::API_VERSION,
                "kind": autoglm_core::service::KIND,
                "metadata": {"name": service, "labels": {"demo": "true"}},
                "spec": {"model": model, "versions": [{"version": "1", "weight": 100}], "replicas": 1},
            }),
        )
        .await
        .with_context(|| format!("cannot deploy service {service}"))?;
    }
    Ok(())
}
