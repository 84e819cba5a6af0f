//! The gateway of `autoglm up`, end to end: the real binary, the real local
//! platform, replicas as real processes. Replicas here run a ModelService
//! `command` runtime (tests/fixtures/openai_upstream.py, a small
//! OpenAI-compatible server) so that thousands of requests stay fast and each
//! answer says which version served it; the built-in engine behind the same
//! gateway is exercised with the official `openai` client in `openai.rs`.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::Up;
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

const UPSTREAM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/openai_upstream.py"
);

struct Env {
    up: Up,
    http: reqwest::Client,
    _files: tempfile::TempDir,
}

impl Env {
    fn start(extra: &[&str]) -> (Env, tempfile::TempDir) {
        let home = tempfile::tempdir().unwrap();
        let up = Up::start(&home.path().join("home"), extra);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .build()
            .unwrap();
        (
            Env {
                up,
                http,
                _files: tempfile::tempdir().unwrap(),
            },
            home,
        )
    }

    async fn console(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.up.console.call(&self.http, method, path, body).await
    }

    /// Registers model `echo` with `versions` versions (any files will do for
    /// a command runtime) and deploys service `echo` with `spec` merged in.
    async fn deploy_echo(&self, versions: usize, spec: Value) {
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
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }

    /// Service `echo` as the console shows it, once `done` holds of it.
    async fn wait_for(&self, what: &str, within: Duration, done: impl Fn(&Value) -> bool) -> Value {
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
    async fn wait_ready(&self, ready: u64) -> Value {
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
    async fn with_echo(
        extra: &[&str],
        versions: usize,
        spec: Value,
        ready: u64,
    ) -> (Env, tempfile::TempDir) {
        let (env, home) = Env::start(extra);
        env.deploy_echo(versions, spec).await;
        env.wait_ready(ready).await;
        (env, home)
    }

    /// A new API key of the admin: (id, secret).
    async fn key(&self, body: Value) -> (String, String) {
        let (s, b) = self
            .console(reqwest::Method::POST, "/api/v1/keys", Some(body))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        (
            b["id"].as_str().unwrap().to_owned(),
            b["secret"].as_str().unwrap().to_owned(),
        )
    }

    fn chat(&self, key: &str, model: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}/v1/chat/completions", self.up.gateway))
            .bearer_auth(key)
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
    }
}

/// The spec of a service serving version 1 alone on `replicas` replicas.
fn one_version(replicas: u64) -> Value {
    json!({"versions": [{"version": "1", "weight": 100}], "replicas": replicas})
}

/// Sends `n` chats, `concurrency` at a time; returns how many each version answered.
async fn versions_of(
    env: &Env,
    key: &str,
    n: usize,
    concurrency: usize,
    sticky: Option<&str>,
) -> HashMap<String, usize> {
    let results: Vec<String> = futures_util::stream::iter(0..n)
        .map(|_| {
            let mut req = env.chat(key, "echo");
            if let Some(s) = sticky {
                req = req.header("x-autoglm-sticky-key", s);
            }
            async move {
                let resp = req.send().await.unwrap();
                assert_eq!(resp.status(), StatusCode::OK);
                resp.headers()["x-autoglm-version"]
                    .to_str()
                    .unwrap()
                    .to_owned()
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut counts = HashMap::new();
    for v in results {
        *counts.entry(v).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_weighted_split_holds_and_pins_and_sticky_keys_override_it() {
    let (env, _home) = Env::with_echo(&[], 2, json!({"versions": [{"version": "1", "weight": 90}, {"version": "2", "weight": 10}], "replicas": 1}), 2).await;
    let token = env.up.console.token.clone();

    let counts = versions_of(&env, &token, 2000, 8, None).await;
    let v2 = counts.get("2").copied().unwrap_or(0);
    assert_eq!(counts.values().sum::<usize>(), 2000);
    // 10% of 2,000 is 200; +/-3 points is 140..=260.
    assert!(
        (140..=260).contains(&v2),
        "version 2 answered {v2} of 2000: {counts:?}"
    );

    // The pin header and the model suffix both pin; the replica sees the plain name.
    for _ in 0..30 {
        let r = env
            .chat(&token, "echo")
            .header("x-autoglm-version", "2")
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-autoglm-version"], "2");
        let r: Value = env
            .chat(&token, "echo:2")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r["seen"]["version"], "2");
        assert_eq!(r["seen"]["model"], "echo");
    }
    // A pin that contradicts the model suffix is refused, not guessed.
    let r = env
        .chat(&token, "echo:1")
        .header("x-autoglm-version", "2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // A sticky key always lands on the same version; different keys still split.
    for user in ["alice", "bob", "carol"] {
        let counts = versions_of(&env, &token, 40, 4, Some(user)).await;
        assert_eq!(counts.len(), 1, "{user} moved between versions: {counts:?}");
    }
    let mut on_v2 = 0;
    for i in 0..300 {
        let r = env
            .chat(&token, "echo")
            .header("x-autoglm-sticky-key", format!("user-{i}"))
            .send()
            .await
            .unwrap();
        if r.headers()["x-autoglm-version"] == "2" {
            on_v2 += 1;
        }
    }
    assert!(
        (10..=60).contains(&on_v2),
        "{on_v2} of 300 sticky users on version 2"
    );

    // The gateway's own credential never reaches the replica; trace context does.
    let trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let r: Value = env
        .chat(&token, "echo")
        .header("traceparent", trace)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Same trace, the gateway's span as the parent (see the OTLP test).
    let sent = r["seen"]["traceparent"].as_str().unwrap();
    assert!(
        sent.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
        "{sent}"
    );
    assert!(!sent.contains("b7ad6b7169203331"), "{sent}");
    assert_eq!(r["seen"]["authorization"], Value::Null);
    let r: Value = env
        .chat(&token, "echo")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        r["seen"]["traceparent"]
            .as_str()
            .unwrap()
            .starts_with("00-")
    );

    let models: Value = env
        .http
        .get(format!("{}/v1/models", env.up.gateway))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], "echo");
    let metrics = env
        .http
        .get(format!("{}/metrics", env.up.gateway))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("autoglm_gateway_requests_total{")
                && l.contains("version=\"2\"")
                && l.contains("code=\"200\"")
        })
        .unwrap_or_else(|| panic!("no request counter for version 2 in\n{metrics}"));
    let counted: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(counted >= (v2 + 60) as f64, "{line}");
    assert!(
        metrics.contains(
            "autoglm_gateway_replicas_ready{tenant=\"default\",model=\"echo\",version=\"1\"} 1"
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limits_admit_the_configured_amount_and_usage_is_counted() {
    let (env, _home) = Env::with_echo(&[], 1, one_version(1), 1).await;

    // 5 requests per second: a burst of 20 gets 5 through.
    let (_, key) = env
        .key(json!({"rate_limit": {"requests_per_second": 5}}))
        .await;
    let started = Instant::now();
    let answers: Vec<(StatusCode, reqwest::header::HeaderMap)> = futures_util::stream::iter(0..20)
        .map(|_| {
            let req = env.chat(&key, "echo");
            async move {
                let r = req.send().await.unwrap();
                (r.status(), r.headers().clone())
            }
        })
        .buffer_unordered(20)
        .collect()
        .await;
    let refill = (started.elapsed().as_secs_f64() * 5.0).floor() as usize;
    let ok = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert!(
        (5..=5 + refill).contains(&ok),
        "{ok} admitted of 20 at 5/s (refill {refill})"
    );
    let (_, limited) = answers
        .iter()
        .find(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS)
        .unwrap();
    assert_eq!(limited["retry-after"], "1");
    assert_eq!(limited["x-ratelimit-limit-requests"], "5");
    assert_eq!(limited["x-ratelimit-remaining-requests"], "0");

    // 30 tokens a minute, 20 used per answer: two get through, the third waits.
    let (id, key) = env
        .key(json!({"rate_limit": {"tokens_per_minute": 30}}))
        .await;
    // An answer tells what was left when it was admitted.
    for left in ["30", "10"] {
        let r = env.chat(&key, "echo").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["x-ratelimit-limit-tokens"], "30");
        assert_eq!(r.headers()["x-ratelimit-remaining-tokens"], left);
        assert_eq!(r.headers()["x-autoglm-version"], "1");
        r.bytes().await.unwrap();
        // Tokens are charged as the answer ends, just after the client has it.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = env.chat(&key, "echo").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (20..=24).contains(&wait),
        "10 tokens short at 0.5/s: {wait} s"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(body["error"]["type"], "rate_limit_error");

    // Usage per key, as the replica reported it, readable from the console.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (s, usage) = env
        .console(
            reqwest::Method::GET,
            &format!("/api/v1/usage?key={id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{usage}");
    let rows = usage.as_array().unwrap();
    let sum = |f: &str| rows.iter().map(|r| r[f].as_u64().unwrap()).sum::<u64>();
    assert_eq!(
        (
            sum("requests"),
            sum("prompt_tokens"),
            sum("completion_tokens")
        ),
        (2, 20, 20),
        "{usage}"
    );
    assert_eq!(rows[0]["service"], "echo");
    assert_eq!(rows[0]["version"], "1");

    // A tenant limit covers every key of the tenant, including unlimited ones.
    let (s, b) = env
        .console(
            reqwest::Method::PUT,
            "/api/v1/tenants/default/rate-limit",
            Some(json!({"requests_per_second": 2})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, a) = env.key(json!({})).await;
    let (_, b2) = env.key(json!({})).await;
    let mut ok = 0;
    let started = Instant::now();
    for key in [&a, &b2, &a, &b2, &a, &b2] {
        let r = env.chat(key, "echo").send().await.unwrap();
        if r.status() == StatusCode::OK {
            ok += 1;
        } else {
            assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        }
    }
    let refill = (started.elapsed().as_secs_f64() * 2.0).floor() as usize;
    assert!(
        (2..=2 + refill).contains(&ok),
        "{ok} of 6 at a tenant limit of 2/s (refill {refill})"
    );
    let (s, _) = env
        .console(
            reqwest::Method::PUT,
            "/api/v1/tenants/default/rate-limit",
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = env
        .console(
            reqwest::Method::PUT,
            "/api/v1/tenants/default/rate-limit",
            Some(json!({"requests_per_second": 0})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(
        b["detail"]
            .as_str()
            .unwrap()
            .contains("requests_per_second"),
        "{b}"
    );
}

fn raw(gateway: &str) -> TcpStream {
    let addr = gateway.trim_start_matches("http://");
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_gets_a_clear_4xx_and_disturbs_no_one() {
    let (env, _home) = Env::with_echo(
        &[
            "--body-timeout",
            "5",
            "--header-timeout",
            "5",
            "--request-timeout",
            "2",
        ],
        1,
        one_version(1),
        1,
    )
    .await;
    let token = env.up.console.token.clone();
    let gw = env.up.gateway.clone();
    let post = |path: &str| env.http.post(format!("{gw}{path}"));

    async fn code(r: reqwest::Response) -> (StatusCode, String) {
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        (
            status,
            body["error"]["code"]
                .as_str()
                .map_or_else(|| body["error"].to_string(), str::to_owned),
        )
    }
    let chat = json!({"model": "echo", "messages": []});
    let cases = vec![
        (
            post("/v1/chat/completions").json(&chat),
            StatusCode::UNAUTHORIZED,
            "missing_api_key",
        ),
        (
            post("/v1/chat/completions")
                .bearer_auth("agk_nope")
                .json(&chat),
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
        ),
        (
            post("/v1/chat/completions")
                .bearer_auth(&token)
                .json(&json!({"model": "nope"})),
            StatusCode::NOT_FOUND,
            "model_not_found",
        ),
        (
            post("/v1/chat/completions")
                .bearer_auth(&token)
                .body("{not json"),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            post("/v1/chat/completions")
                .bearer_auth(&token)
                .header("x-test-delay-ms", "4000")
                .json(&chat),
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
        ),
        (
            post("/v1/chat/completions")
                .bearer_auth(&token)
                .json(&json!({"messages": []})),
            StatusCode::BAD_REQUEST,
            "missing_model",
        ),
        (
            post("/v1/chat/completions")
                .bearer_auth(&token)
                .json(&json!({"model": "echo:7"})),
            StatusCode::NOT_FOUND,
            "version_not_found",
        ),
        (
            env.http
                .get(format!("{gw}/v1/chat/completions"))
                .bearer_auth(&token),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            env.http.get(format!("{gw}/v1/nothing")).bearer_auth(&token),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (req, status, expected) in cases {
        let (got, c) = code(req.send().await.unwrap()).await;
        assert_eq!((got, c.as_str()), (status, expected));
    }
    // A replica that stalls mid-stream for longer than the request timeout:
    // the answer is cut short, not left hanging.
    let stalled = post("/v1/chat/completions")
        .bearer_auth(&token)
        .header("x-test-stall-ms", "6000")
        .json(&json!({"model": "echo", "stream": true, "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(stalled.status(), StatusCode::OK);
    let waited = Instant::now();
    let cut = stalled.bytes().await;
    assert!(cut.is_err(), "a stalled stream ended as if whole: {cut:?}");
    assert!(
        waited.elapsed() < Duration::from_secs(5),
        "{:?}",
        waited.elapsed()
    );
    // An oversized body is refused from its announced length, before it is sent;
    // one that hides its length is cut off at the limit.
    let mut big = raw(&gw);
    write!(
        big,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\ncontent-length: {}\r\n\r\n",
        9 * 1024 * 1024
    )
    .unwrap();
    let mut answer = String::new();
    big.read_to_string(&mut answer).unwrap_or_default();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
    assert!(answer.contains("body_too_large"), "{answer:?}");
    let chunks = futures_util::stream::iter(
        (0..9).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024 * 1024])),
    );
    // Its own client: the gateway closes that connection, which must not be pooled.
    let r = reqwest::Client::new()
        .post(format!("{gw}/v1/chat/completions"))
        .bearer_auth(&token)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await;
    if let Ok(r) = r {
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
    // The Open Inference Protocol's clients get its own error shape.
    let r = post("/v2/models/nope/infer")
        .bearer_auth(&token)
        .json(&json!({"inputs": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("nope"), "{body}");

    // A key without services:invoke is refused; a revoked key stops at once.
    let (_, narrow) = env.key(json!({"scopes": ["models:read"]})).await;
    let (got, c) = code(env.chat(&narrow, "echo").send().await.unwrap()).await;
    assert_eq!(
        (got, c.as_str()),
        (StatusCode::FORBIDDEN, "permission_denied")
    );
    let (id, key) = env.key(json!({})).await;
    assert_eq!(
        env.chat(&key, "echo").send().await.unwrap().status(),
        StatusCode::OK
    );
    let (s, _) = env
        .console(reqwest::Method::DELETE, &format!("/api/v1/keys/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (got, c) = code(env.chat(&key, "echo").send().await.unwrap()).await;
    assert_eq!(
        (got, c.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_api_key")
    );

    // Slow-loris clients: one dribbles its headers, one its body. Both are cut
    // off after the timeouts, while other requests are served meanwhile.
    let mut slow_headers = raw(&gw);
    slow_headers
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut slow_body = raw(&gw);
    write!(
        slow_body,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"model\""
    )
    .unwrap();
    let opened = Instant::now();
    // Others are served meanwhile: all of them before the slow ones are cut
    // off, so none waited behind them. (No tighter bound: the other tests of
    // this file load the same two CPUs.)
    for _ in 0..10 {
        assert_eq!(
            env.chat(&token, "echo").send().await.unwrap().status(),
            StatusCode::OK
        );
    }
    assert!(
        opened.elapsed() < Duration::from_secs(5),
        "others waited {:?}",
        opened.elapsed()
    );
    let mut answer = String::new();
    slow_body.read_to_string(&mut answer).unwrap_or_default();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains("body_timeout"), "{answer:?}");
    let mut rest = Vec::new();
    let n = slow_headers.read_to_end(&mut rest).unwrap_or(0);
    assert!(
        n == 0 || String::from_utf8_lossy(&rest).starts_with("HTTP/1.1 408"),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
    let held = opened.elapsed();
    assert!(
        held >= Duration::from_millis(4500) && held < Duration::from_secs(9),
        "slow clients were cut off after {held:?}, not the 5 s configured"
    );
}

/// The gateway speaks HTTP/1.1 itself (crates/autoglm-gateway/src/wire.rs),
/// so the corners clients rely on are tried here on a raw socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_in_every_http1_shape_are_served_and_broken_ones_refused() {
    let (env, _home) = Env::with_echo(&[], 1, one_version(1), 1).await;
    let token = env.up.console.token.clone();
    let gw = env.up.gateway.clone();
    let body = r#"{"model": "echo", "messages": []}"#;
    let post = |fields: &str, body: &str| {
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\ncontent-type: application/json\r\n{fields}\r\n{body}"
        )
    };
    let exchange = |request: String| {
        let gw = gw.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let mut s = raw(&gw);
                s.write_all(request.as_bytes()).unwrap();
                let mut answer = String::new();
                s.read_to_string(&mut answer).unwrap();
                answer
            })
            .await
            .unwrap()
        }
    };
    let length = format!("content-length: {}\r\n", body.len());

    // Two requests in one write, the second asking to close: two answers.
    let pipelined = post(&length, body) + &post(&format!("{length}connection: close\r\n"), body);
    let answer = exchange(pipelined).await;
    assert_eq!(answer.matches("HTTP/1.1 200 OK").count(), 2, "{answer}");
    assert_eq!(
        answer.matches("x-autoglm-version: 1").count(),
        2,
        "{answer}"
    );
    assert!(answer.contains("connection: close"), "{answer}");

    // A chunked body, split anywhere.
    let chunked = post(
        "transfer-encoding: chunked\r\nconnection: close\r\n",
        &format!(
            "5\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n",
            &body[..5],
            body.len() - 5,
            &body[5..]
        ),
    );
    let answer = exchange(chunked).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.contains("chat.completion"), "{answer}");

    // HTTP/1.0 without keep-alive: answered, then closed.
    let answer = exchange(post(&length, body).replacen("HTTP/1.1", "HTTP/1.0", 1)).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.contains("chat.completion"), "{answer}");

    // HTTP/1.0 keeping the connection, for an answer of unknown length (a
    // stream whose usage event the gateway hides): delimited by closing, at once.
    let stream = r#"{"model": "echo", "messages": [], "stream": true}"#;
    let answer = exchange(
        post(
            &format!(
                "content-length: {}\r\nconnection: keep-alive\r\n",
                stream.len()
            ),
            stream,
        )
        .replacen("HTTP/1.1", "HTTP/1.0", 1),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(answer.contains("[DONE]"), "{answer}");

    // A HEAD answer has no body, even one the gateway makes itself: the next
    // answer follows the head at once.
    let answer = exchange(format!(
        "HEAD /v1/nothing HTTP/1.1\r\nAuthorization: Bearer {token}\r\n\r\nGET /healthz HTTP/1.1\r\nconnection: close\r\n\r\n"
    ))
    .await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(answer.contains("\r\n\r\nHTTP/1.1 200 OK"), "{answer}");

    // Expect: 100-continue: the body is asked for once the caller is known.
    let gw2 = gw.clone();
    let head = post(
        &format!("{length}expect: 100-continue\r\nconnection: close\r\n"),
        "",
    );
    let body2 = body.to_owned();
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = raw(&gw2);
        s.write_all(head.as_bytes()).unwrap();
        let mut interim = [0u8; 25];
        s.read_exact(&mut interim).unwrap();
        assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
        s.write_all(body2.as_bytes()).unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        answer
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");

    // Broken framing and endless heads are refused, and the connection closed.
    let answer = exchange(post("transfer-encoding: gzip\r\n", "")).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("chunked"), "{answer}");
    let answer = exchange(post(&format!("{length}content-length: 3\r\n"), body)).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("disagree"), "{answer}");
    let answer = exchange(post(&format!("x-big: {}\r\n", "a".repeat(70_000)), "")).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    let answer = exchange("NOT HTTP AT ALL\r\n\r\n".to_owned()).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");

    // And the gateway still serves everyone else.
    assert_eq!(
        env.chat(&token, "echo").send().await.unwrap().status(),
        StatusCode::OK
    );
}

/// Runs `workers` clients in a loop until `stop`; counts (ok, failed) and the versions seen.
fn load(
    env: &Env,
    key: &str,
    workers: usize,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(u64, u64, HashMap<String, u64>)> {
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for _ in 0..workers {
        let (http, gw, key) = (env.http.clone(), env.up.gateway.clone(), key.to_owned());
        let (ok, failed, stop) = (ok.clone(), failed.clone(), stop.clone());
        handles.push(tokio::spawn(async move {
            let mut seen = HashMap::new();
            while !stop.load(Ordering::Relaxed) {
                let r = http
                    .post(format!("{gw}/v1/chat/completions"))
                    .bearer_auth(&key)
                    .header("x-test-delay-ms", "20")
                    .json(&json!({"model": "echo", "messages": []}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == StatusCode::OK => {
                        *seen
                            .entry(
                                r.headers()["x-autoglm-version"]
                                    .to_str()
                                    .unwrap()
                                    .to_owned(),
                            )
                            .or_insert(0) += 1;
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => {
                        eprintln!(
                            "failed: {} {}",
                            r.status(),
                            r.text().await.unwrap_or_default()
                        );
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("failed: {e}");
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            seen
        }));
    }
    tokio::spawn(async move {
        let mut seen = HashMap::new();
        for h in handles {
            for (v, n) in h.await.unwrap() {
                *seen.entry(v).or_insert(0) += n;
            }
        }
        (
            ok.load(Ordering::Relaxed),
            failed.load(Ordering::Relaxed),
            seen,
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_replica_stops_when_autoglm_up_is_killed_outright() {
    let (mut env, _home) = Env::with_echo(&[], 1, one_version(1), 1).await;
    // The platform runs the command under `autoglm supervise`: the replica's
    // pid is the supervisor's, the upstream program its child. (Read again
    // while a replica that failed to start on a loaded machine is replaced:
    // its program has exited, and until it is reaped its cmdline reads empty.)
    let cmdline =
        |pid: &str| std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(20);
    let (supervisor, programs) = loop {
        let status = env.wait_ready(1).await;
        let ready = status["replicas"].as_array().unwrap().iter();
        let ready = ready.filter(|r| r["state"] == "ready").collect::<Vec<_>>();
        let supervisor = ready[0]["pid"].as_u64().unwrap().to_string();
        let programs = common::children(&supervisor);
        let settled = programs.len() == 1 && cmdline(&programs[0]).contains("openai_upstream.py");
        if settled || Instant::now() > deadline {
            break (supervisor, programs);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        programs.len(),
        1,
        "one program under the supervisor: {programs:?}"
    );
    let program = programs[0].clone();
    assert!(
        cmdline(&program).contains("openai_upstream.py"),
        "the supervisor's child runs the command: {:?}",
        cmdline(&program)
    );
    // SIGKILL: `up` cannot stop anything itself.
    env.up.console.child.kill().unwrap();
    env.up.console.child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !(common::exited(&program) && common::exited(&supervisor)) {
        assert!(
            Instant::now() < deadline,
            "the command replica (supervisor {supervisor}, program {program}) outlived its platform"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_a_replica_under_load_fails_almost_nothing_and_it_comes_back() {
    let (env, _home) = Env::with_echo(&[], 1, one_version(2), 2).await;
    let status = env.wait_ready(2).await;
    let victim = status["replicas"][0]["pid"].as_u64().unwrap();
    let victim_id = status["replicas"][0]["id"].as_str().unwrap().to_owned();
    let stop = Arc::new(AtomicBool::new(false));
    let running = load(&env, &env.up.console.token, 4, stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed = std::process::Command::new("kill")
        .args(["-9", &victim.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    tokio::time::sleep(Duration::from_secs(8)).await;
    stop.store(true, Ordering::Relaxed);
    let (ok, failed, _) = running.await.unwrap();
    let total = ok + failed;
    assert!(total > 300, "only {total} requests");
    assert!(
        (failed as f64) < 0.005 * total as f64,
        "{failed} of {total} failed"
    );
    // The platform restarts it.
    let status = env.wait_ready(2).await;
    let restarted = status["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == victim_id.as_str())
        .unwrap();
    assert!(restarted["restarts"].as_u64().unwrap() >= 1, "{status}");

    // Its log, through the API, shows both starts.
    let logs = |replica: &str, query: &str| {
        env.http
            .get(env.up.console.api(&format!(
                "/api/v1/services/echo/replicas/{replica}/logs{query}"
            )))
            .bearer_auth(&env.up.console.token)
            .send()
    };
    let r = logs(&victim_id, "").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().await.unwrap();
    assert!(text.matches("--- autoglm: starting").count() >= 2, "{text}");
    let tail = logs(&victim_id, "?bytes=10")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(tail.len(), 10, "{tail:?}");
    assert_eq!(
        logs("default.other-1-1", "").await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        logs("default.echo-..%2F..%2Fetc", "")
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        logs(&victim_id, "?bytes=0").await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_version_update_under_load_fails_no_request() {
    let (env, _home) = Env::with_echo(&[], 2, one_version(2), 2).await;
    let stop = Arc::new(AtomicBool::new(false));
    let running = load(&env, &env.up.console.token, 4, stop.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, current) = env
        .console(reqwest::Method::GET, "/api/v1/services/echo", None)
        .await;
    let mut manifest = current.clone();
    manifest.as_object_mut().unwrap().remove("status");
    manifest["spec"]["versions"] = json!([{"version": "2", "weight": 100}]);
    let (s, b) = env
        .console(
            reqwest::Method::PUT,
            "/api/v1/services/echo",
            Some(manifest),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // Until only version 2 runs, then a little longer.
    env.wait_for("only version 2", Duration::from_secs(30), |b| {
        b["status"]["replicas"].as_array().is_some_and(|r| {
            !r.is_empty()
                && r.iter()
                    .all(|r| r["version"] == "2" && r["state"] == "ready")
        })
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let (ok, failed, seen) = running.await.unwrap();
    assert_eq!(failed, 0, "{failed} of {} failed", ok + failed);
    assert!(
        seen.get("1").copied().unwrap_or(0) > 0 && seen.get("2").copied().unwrap_or(0) > 0,
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_service_scaled_to_zero_serves_its_first_request_and_bounds_the_queue() {
    let (env, _home) = Env::with_echo(
        &["--max-waiting", "3", "--hold-timeout", "30"],
        1,
        json!({"versions": [{"version": "1", "weight": 100}],
               "autoscaling": {"minReplicas": 0, "maxReplicas": 3, "targetInFlight": 1,
                               "scaleToZeroAfter": "2s", "scaleDownStabilization": "1s"}}),
        1,
    )
    .await;
    // Idle: down to zero.
    env.wait_for("scale to zero", Duration::from_secs(20), |b| {
        b["status"]["desiredReplicas"] == 0
            && b["status"]["replicas"]
                .as_array()
                .is_none_or(|r| r.iter().all(|r| r["state"] == "stopped"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let token = env.up.console.token.clone();
    // Six at once against a queue of three: three wait and are served, three are refused.
    let started = Instant::now();
    let answers: Vec<(StatusCode, Option<String>)> = futures_util::stream::iter(0..6)
        .map(|_| {
            let req = env.chat(&token, "echo");
            async move {
                let r = req.send().await.unwrap();
                (
                    r.status(),
                    r.headers()
                        .get("retry-after")
                        .map(|v| v.to_str().unwrap().to_owned()),
                )
            }
        })
        .buffer_unordered(6)
        .collect()
        .await;
    let first = started.elapsed();
    let served = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    let refused: Vec<_> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert_eq!(served, 3, "{answers:?}");
    assert_eq!(refused.len(), 3, "{answers:?}");
    assert!(refused.iter().all(|(_, retry)| retry.is_some()));
    assert!(
        first < Duration::from_secs(10),
        "first answer from zero took {first:?}"
    );
    eprintln!("time to first response from zero: {first:?}");

    // Back down, then a load step: 3 requests in flight at a target of 1
    // ask for 3 replicas within 2 s.
    env.wait_for("scale down", Duration::from_secs(20), |b| {
        b["status"]["desiredReplicas"]
            .as_u64()
            .is_some_and(|d| d <= 1)
    })
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let step = Instant::now();
    let running = load(&env, &token, 3, stop.clone());
    let decided = loop {
        let (_, b) = env
            .console(reqwest::Method::GET, "/api/v1/services/echo", None)
            .await;
        if b["status"]["desiredReplicas"].as_u64() == Some(3) {
            break step.elapsed();
        }
        assert!(
            step.elapsed() < Duration::from_secs(5),
            "no scale-up decision: {b}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop.store(true, Ordering::Relaxed);
    let (_, failed, _) = running.await.unwrap();
    assert_eq!(failed, 0);
    assert!(
        decided < Duration::from_secs(2),
        "scale-up decided after {decided:?}"
    );
    eprintln!("scale-up decision after a load step: {decided:?}");
}

/// An OTLP/HTTP receiver: answers every POST with 200 and hands over the
/// decoded trace exports. (No OpenTelemetry Collector is installable here;
/// this is the receiving end of the same protocol, decoded with the
/// protocol's own generated types.)
fn otlp_receiver() -> (
    String,
    std::sync::mpsc::Receiver<
        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
    >,
) {
    use prost::Message;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    let mut path = String::new();
                    loop {
                        line.clear();
                        if std::io::BufRead::read_line(&mut reader, &mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if path.is_empty() {
                            path = line.split(' ').nth(1).unwrap_or_default().to_owned();
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    assert_eq!(path, "/v1/traces");
                    tx.send(
                        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(
                            body.as_slice(),
                        )
                        .unwrap(),
                    )
                    .unwrap();
                    stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n")
                        .unwrap();
                }
            });
        }
    });
    (url, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_are_spans_of_the_callers_trace_exported_over_otlp() {
    let (collector, exports) = otlp_receiver();
    let (env, _home) = Env::with_echo(&["--otlp-endpoint", &collector], 1, one_version(1), 1).await;
    let (trace, parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let r: Value = env
        .chat(&env.up.console.token, "echo")
        .header("traceparent", format!("00-{trace}-{parent}-01"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The replica is called as a child of the gateway's span, in the caller's trace.
    let sent = r["seen"]["traceparent"].as_str().unwrap().to_owned();
    let fields: Vec<&str> = sent.split('-').collect();
    assert_eq!(
        (fields[0], fields[1], fields[3]),
        ("00", trace, "01"),
        "{sent}"
    );
    assert_ne!(fields[2], parent);

    let deadline = Instant::now() + Duration::from_secs(10);
    let span = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let export = exports
            .recv_timeout(left)
            .expect("no span exported within 10 s");
        let found = export
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .find(|s| hex(&s.trace_id) == trace)
            .cloned();
        if let Some(span) = found {
            break span;
        }
    };
    assert_eq!(span.name, "POST /v1/chat/completions");
    assert_eq!(hex(&span.parent_span_id), parent);
    assert_eq!(
        hex(&span.span_id),
        fields[2],
        "the exported span is the replica's parent"
    );
    let attribute = |key: &str| {
        span.attributes
            .iter()
            .find(|a| a.key == key)
            .and_then(|a| a.value.clone())
            .and_then(|v| v.value)
            .map(|v| format!("{v:?}"))
            .unwrap_or_default()
    };
    assert!(
        attribute("http.response.status_code").contains("200"),
        "{span:?}"
    );
    assert!(attribute("autoglm.model").contains("echo"), "{span:?}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
