//! The demo of `autoglm up`: finds (or fetches) SmolLM2 and MiniLM, registers
//! them through the console's own API, and deploys a chat service and an
//! embeddings service. Every step is idempotent, so a restart changes nothing.

use std::path::Path;

use anyhow::Context;
use autoglm_cli::Client;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// (model, cache entry, task, framework, service)
const DEMO: [(&str, autoglm_models::Model, &str, &str, &str); 2] = [
    (
        "smollm2",
        autoglm_models::SMOLLM2,
        "text-generation",
        "llama.cpp",
        "chat",
    ),
    (
        "minilm",
        autoglm_models::MINILM,
        "embeddings",
        "sentence-transformers",
        "embeddings",
    ),
];

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
    let cache = autoglm_models::cache_dir();
    if DEMO.iter().any(|d| !d.1.is_cached_in(&cache)) {
        println!("fetching the demo models into {} ...", cache.display());
    }
    tokio::task::spawn_blocking({
        let cache = cache.clone();
        move || autoglm_models::ensure(&cache, &DEMO.map(|d| d.1))
    })
    .await?
    .context("cannot fetch the demo models")?;
    let client = Client::new(&autoglm_cli::ClientArgs {
        server: console_url.to_owned(),
        token: None,
        token_file: token_file.to_owned(),
        insecure_skip_tls_verify: true,
        output: autoglm_cli::OutputFormat::Table,
    })?;
    for (model, entry, task, framework, service) in DEMO {
        ensure(
            &client,
            Method::POST,
            &["api", "v1", "models"],
            &json!({"name": model, "description": format!("demo: {}", entry.name), "labels": {"demo": "true"}}),
        )
        .await
        .with_context(|| format!("cannot register model {model}"))?;
        let versions: Value = client
            .get_json(client.url(&["api", "v1", "models", model, "versions"])?)
            .await?;
        let has_version = versions["items"].as_array().is_some_and(|v| !v.is_empty());
        if !has_version {
            let path = entry.path_in(&cache);
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
