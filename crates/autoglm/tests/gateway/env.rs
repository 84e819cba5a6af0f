//! The harness: `autoglm up` with an `echo` service whose replicas run
//! tests/fixtures/openai_upstream.py, and the console calls the scenarios share.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{self, Up};

const UPSTREAM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/openai_upstream.py"
);

/// Fields drop in order: `up` is stopped (its replicas with it) before its
/// home is removed, never the other way round.
pub struct Env {
    pub up: Up,
    pub http: reqwest::Client,
    _files: tempfile::TempDir,
    _home: tempfile::TempDir,
}

impl Env {
    pub fn start(extra: &[&str]) -> Env {
        let home = tempfile::tempdir().unwrap();
        let up = Up::start(&home.path().join("home"), extra);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .build()
            .unwrap();
        Env {
            up,
            http,
            _files: tempfile::tempdir().unwrap(),
            _home: home,
        }
    }

    pub async fn console(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.up.console.call(&self.http, method, path, body).await
    }

    /// Registers model `echo` with `versions` versions (any files will do for
    /// a command runtime) and deploys service `echo` with `spec` merged in.
    pub async fn deploy_echo(&self, versions: usize, spec: Value) {
        common::register_model(
            &self.up.console,
            &self.http,
            "echo",
            versions,
            self._files.path(),
        )
        .await;
        let mut full = json!({
            "model": "echo",
            "runtime": {"command": {"command": ["python3", UPSTREAM, "{port}", "{version}", "{name}"]}},
        });
        for (k, v) in spec.as_object().unwrap() {
            full[k] = v.clone();
        }
        let manifest = json!({"apiVersion": "autoglm.io/v1alpha1", "kind": "ModelService",
                              "metadata": {"name": "echo"}, "spec": full});
        let (s, b) = self
            .console(reqwest::Method::POST, "/api/v1/services", Some(manifest))
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    }

    /// Service `echo` as the console shows it, once `done` holds of it.
    pub async fn wait_for(
        &self,
        what: &str,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let (_, b) = self
                .console(reqwest::Method::GET, "/api/v1/services/echo", None)
                .await;
            if done(&b) {
                return b;
            }
            assert!(Instant::now() < deadline, "{what} within {within:?}: {b}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The service's status once `ready` replicas are ready.
    pub async fn wait_ready(&self, ready: u64) -> Value {
        let b = self
            .wait_for("ready", Duration::from_secs(60), |b| {
                b["status"]["readyReplicas"].as_u64() == Some(ready)
                    && b["status"]["desiredReplicas"].as_u64() == Some(ready)
            })
            .await;
        b["status"].clone()
    }

    /// `autoglm up` with `extra` flags, running service `echo` with
    /// `versions` versions and `spec`, once `ready` replicas are ready.
    pub async fn with_echo(extra: &[&str], versions: usize, spec: Value, ready: u64) -> Env {
        let env = Env::start(extra);
        env.deploy_echo(versions, spec).await;
        env.wait_ready(ready).await;
        env
    }

    /// A new API key of the admin: (id, secret).
    pub async fn key(&self, body: Value) -> (String, String) {
        let (s, b) = self
            .console(reqwest::Method::POST, "/api/v1/keys", Some(body))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        (
            b["id"].as_str().unwrap().to_owned(),
            b["secret"].as_str().unwrap().to_owned(),
        )
    }

    /// The gateway's `/metrics` page.
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.up.gateway))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of the gateway's sample whose line starts with `series` (0 when absent).
    pub async fn sample(&self, series: &str) -> f64 {
        let metrics = self.metrics().await;
        metrics
            .lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .map_or(0.0, |v| v.parse().unwrap())
    }

    pub fn chat(&self, key: &str, model: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}/v1/chat/completions", self.up.gateway))
            .bearer_auth(key)
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
    }
}

/// The spec of a service serving version 1 alone on `replicas` replicas.
pub fn one_version(replicas: u64) -> Value {
    json!({"versions": [{"version": "1", "weight": 100}], "replicas": replicas})
}
