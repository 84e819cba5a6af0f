//! A runtime over a real model, driven through its router.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use autoglm_runtime::engines::EngineOptions;
use autoglm_runtime::{Runtime, RuntimeConfig};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

pub fn options() -> EngineOptions {
    EngineOptions {
        max_sequences: 4,
        context_per_sequence: 1024,
        threads: 2,
    }
}

pub fn config(name: &str) -> RuntimeConfig {
    RuntimeConfig {
        sampling: Default::default(),
        name: name.into(),
        max_batch: 32,
        max_batch_wait: Duration::from_millis(5),
        queue_capacity: 8,
        admin_token: Some("admin-token-for-tests".into()),
        tracing: Arc::default(),
    }
}

/// A runtime serving `path` as version "1".
pub async fn serve(name: &str, path: &Path, config: RuntimeConfig) -> (Arc<Runtime>, Router) {
    let options = options();
    let runtime = Runtime::new(
        config,
        Arc::new(move |p: &Path| autoglm_runtime::engines::load(p, &options)),
    );
    let _ = name;
    runtime.load(path, "1").await.unwrap();
    let router = autoglm_runtime::router(runtime.clone());
    (runtime, router)
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

pub async fn send(app: &Router, method: &str, uri: &str, body: Option<Vec<u8>>) -> Answer {
    let mut req = Request::builder().method(method).uri(uri);
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    send_request(
        app,
        req.body(body.map_or_else(Body::empty, Body::from)).unwrap(),
    )
    .await
}

/// Sends a request as built, and reads the whole answer.
pub async fn send_request(app: &Router, req: Request<Body>) -> Answer {
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

pub async fn post(app: &Router, uri: &str, body: Value) -> Answer {
    send(app, "POST", uri, Some(serde_json::to_vec(&body).unwrap())).await
}

pub async fn get(app: &Router, uri: &str) -> Answer {
    send(app, "GET", uri, None).await
}

/// Asserts an OpenAI-shaped error with `status`.
pub fn openai_error(answer: &Answer, status: u16) -> Value {
    assert_eq!(
        answer.status.as_u16(),
        status,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let body = answer.json();
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body["error"]["type"].is_string(), "{body}");
    body
}

/// Asserts an Open Inference Protocol error with `status`.
pub fn oip_error(answer: &Answer, status: u16) {
    assert_eq!(
        answer.status.as_u16(),
        status,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert!(
        answer.json()["error"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}
