//! The config center's endpoints as the commands call them: URLs of a key,
//! the reads every command starts from, and JSON writes.

use autoglm_core::config::{ConfigVersion, Environment};
use autoglm_core::registry::Page;
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::KeyName;
use crate::client::{Client, ClientError, IDEMPOTENCY_KEY_HEADER};

/// `/api/v1/config/...`.
pub fn url(client: &Client, tail: &[&str]) -> Result<Url, ClientError> {
    let mut segments = vec!["api", "v1", "config"];
    segments.extend_from_slice(tail);
    client.url(&segments)
}

/// `.../environments/{env}/keys/{group}/{key}` and then `tail`.
pub fn key_url(
    client: &Client,
    env: &str,
    key: &KeyName,
    tail: &[&str],
) -> Result<Url, ClientError> {
    let mut segments = vec!["environments", env, "keys", &key.group, &key.key];
    segments.extend_from_slice(tail);
    url(client, &segments)
}

/// The key's current version; `None` when it does not exist (never
/// published, or deleted).
pub async fn current(
    client: &Client,
    env: &str,
    key: &KeyName,
) -> Result<Option<ConfigVersion>, ClientError> {
    match client.get_json(key_url(client, env, key, &[])?).await {
        Ok(version) => Ok(Some(version)),
        Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => {
            // A missing environment is an error, not an absent key.
            environment(client, env).await?;
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The environment, or its `not_found`.
pub async fn environment(client: &Client, env: &str) -> Result<Environment, ClientError> {
    client.get_json(url(client, &["environments", env])?).await
}

/// The environment's live keys with their content (one page holds them all).
pub async fn live_keys(
    client: &Client,
    env: &str,
    group: Option<&str>,
) -> Result<Vec<ConfigVersion>, ClientError> {
    let mut url = url(client, &["environments", env, "keys"])?;
    if let Some(group) = group {
        url.query_pairs_mut().append_pair("group", group);
    }
    let page: Page<ConfigVersion> = client.get_json(url).await?;
    Ok(page.items)
}

/// Sends `body` as JSON and reads the answer's status and JSON. A POST gets
/// an idempotency key, so that the console answers a retry with the first
/// answer instead of doing it twice.
pub async fn send<T: DeserializeOwned>(
    client: &Client,
    method: Method,
    url: Url,
    body: &impl Serialize,
) -> Result<(StatusCode, T), ClientError> {
    let mut request = client.request(method.clone(), url).json(body);
    if method == Method::POST {
        request = request.header(IDEMPOTENCY_KEY_HEADER, uuid::Uuid::new_v4().to_string());
    }
    let response = client.send(request).await?;
    let status = response.status();
    Ok((status, client.json(response).await?))
}
