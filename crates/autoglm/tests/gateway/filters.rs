//! Gateway filters end to end: the example proxy-wasm filters, built from
//! source with the public SDK, uploaded through the console API, attached
//! to the tenant and to a service, change real traffic to real replicas;
//! faulty ones are stopped by the sandbox and fail as attached; swapping a
//! filter under load fails no request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use autoglm_testfilters as examples;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::env::{Env, one_version};

impl Env {
    /// Uploads `module` as filter `name`: the status and answer.
    async fn upload(&self, name: &str, module: Vec<u8>) -> (StatusCode, Value) {
        let r = self
            .http
            .put(self.up.console.api(&format!("/api/v1/filters/{name}")))
            .bearer_auth(&self.up.console.token)
            .header("content-type", "application/wasm")
            .body(module)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Posts `body` to `path`, expecting `want`.
    async fn expect(&self, path: &str, body: Value, want: StatusCode) -> Value {
        let (s, b) = self.console(Method::POST, path, Some(body)).await;
        assert_eq!(s, want, "{path}: {b}");
        b
    }

    /// Sends chats with `key` until `done` holds of one (the gateway loads
    /// filters within a tenth of a second of a change), within 10 s.
    async fn chat_until(
        &self,
        key: &str,
        headers: &[(&str, &str)],
        what: &str,
        done: impl Fn(StatusCode, &reqwest::header::HeaderMap, &Value) -> bool,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut req = self.chat(key, "echo");
            for (n, v) in headers {
                req = req.header(*n, *v);
            }
            let r = req.send().await.unwrap();
            let (status, head) = (r.status(), r.headers().clone());
            let body: Value = r.json().await.unwrap_or(Value::Null);
            if done(status, &head, &body) {
                return (status, head, body);
            }
            assert!(
                Instant::now() < deadline,
                "{what} within 10 s: {status} {head:?} {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploaded_filters_change_real_traffic_and_fail_as_attached() {
    // A deadline for a busy machine: the spinning filter still meets it at once.
    let env = Env::with_echo(&["--filter-deadline-ms", "1000"], 1, one_version(1), 1).await;
    let (_, key) = env.key(json!({})).await;
    let (_, me) = env.console(Method::GET, "/api/v1/auth/whoami", None).await;
    let tenant = me["tenant"].as_str().unwrap().to_owned();

    // Bad modules are refused at upload with the reason, and nothing is kept.
    let (s, b) = env.upload("junk", b"not wasm".to_vec()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(
        b["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not valid WebAssembly"),
        "{b}"
    );
    let (s, b) = env.upload("empty", b"\0asm\x01\0\0\0".to_vec()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(
        b["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not a proxy-wasm filter"),
        "{b}"
    );
    // Over the cap: refused from its declared length, before the upload (as
    // curl sends it, waiting for 100 Continue).
    let huge = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(huge.path(), vec![0u8; 17 * 1024 * 1024]).unwrap();
    let curl = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "PUT",
            "-H",
            "content-type: application/wasm",
        ])
        .arg("-H")
        .arg(format!("authorization: Bearer {}", env.up.console.token))
        .arg("--data-binary")
        .arg(format!("@{}", huge.path().display()))
        .arg(env.up.console.api("/api/v1/filters/huge"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&curl.stdout), "413");
    for route in ["chain", "counters"] {
        // Refused before its body is read, so on a connection of its own:
        // the console closes it rather than read a body it refused.
        let r = reqwest::Client::new()
            .put(env.up.console.api(&format!("/api/v1/filters/{route}")))
            .bearer_auth(&env.up.console.token)
            .header("content-type", "application/wasm")
            .header("connection", "close")
            .body(examples::module(examples::HEADER_INJECTOR))
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_client_error(),
            "{route} names a route: {}",
            r.status()
        );
    }
    let (_, listed) = env.console(Method::GET, "/api/v1/filters", None).await;
    assert_eq!(listed, json!([]));

    for (name, module) in [
        ("inject", examples::HEADER_INJECTOR),
        ("redact", examples::PII_REDACTOR),
        ("template", examples::PROMPT_TEMPLATE),
        ("teams", examples::AUTH_CHECK),
        ("faulty", examples::MISBEHAVE),
    ] {
        let (s, b) = env.upload(name, examples::module(module)).await;
        assert_eq!(s, StatusCode::CREATED, "{name}: {b}");
        assert_eq!(b["abi"], "0.2.1");
        assert_eq!(b["digest"].as_str().unwrap().len(), 64);
    }

    // The header injector on the whole tenant: the replica sees its
    // request header, the client its response header.
    env.expect(
        "/api/v1/filters/inject/attach",
        json!({"config": {"request": {"x-tenant-tier": "gold"}, "response": {"x-served-by": "autoglm"}}}),
        StatusCode::OK,
    )
    .await;
    let (_, head, body) = env
        .chat_until(&key, &[], "the injected headers", |s, h, _| {
            s == StatusCode::OK && h.contains_key("x-served-by")
        })
        .await;
    assert_eq!(head["x-served-by"], "autoglm");
    assert_eq!(body["seen"]["headers"]["x-tenant-tier"], "gold");
    assert_eq!(
        body["seen"]["authorization"],
        Value::Null,
        "the autoglm key is never passed on"
    );

    // On the service, in order: redact, then the tenant's prompt template.
    env.expect(
        "/api/v1/filters/redact/attach",
        json!({"service": "echo"}),
        StatusCode::ACCEPTED,
    )
    .await;
    env.expect(
        "/api/v1/filters/template/attach",
        json!({"service": "echo", "config": {"system": "You answer for {tenant} through {service}."}}),
        StatusCode::ACCEPTED,
    )
    .await;
    let (_, service) = env
        .console(Method::GET, "/api/v1/services/echo", None)
        .await;
    assert_eq!(service["spec"]["filters"][0]["name"], "redact", "{service}");
    assert_eq!(
        service["spec"]["filters"][1]["config"]["system"],
        "You answer for {tenant} through {service}."
    );
    let secret = "write to jane.doe@example.com, card 4111 1111 1111 1111";
    let deadline = Instant::now() + Duration::from_secs(10);
    let seen = loop {
        let r = env
            .http
            .post(format!("{}/v1/chat/completions", env.up.gateway))
            .bearer_auth(&key)
            .json(&json!({"model": "echo", "messages": [{"role": "user", "content": secret}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.unwrap();
        if body["seen"]["messages"].as_array().unwrap().len() == 2 {
            break body["seen"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "the service's filters within 10 s: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        seen["messages"][0],
        json!({"role": "system", "content": format!("You answer for {tenant} through echo.")})
    );
    let user = seen["messages"][1]["content"].as_str().unwrap();
    assert_eq!(user, "write to [REDACTED EMAIL], card [REDACTED CARD]");
    assert_eq!(
        seen["headers"]["x-tenant-tier"], "gold",
        "the tenant's chain still runs first"
    );

    // Answers too: the replica echoes the request's headers, one of them an address.
    env.expect(
        "/api/v1/filters/redact/attach",
        json!({"service": "echo", "config": {"responses": true}}),
        StatusCode::ACCEPTED,
    )
    .await;
    let (_, head, answer) = env
        .chat_until(
            &key,
            &[("x-contact", "ops@example.com")],
            "the answer's redaction",
            |s, _, b| {
                s == StatusCode::OK && b["seen"]["headers"]["x-contact"] == "[REDACTED EMAIL]"
            },
        )
        .await;
    assert_eq!(answer["choices"][0]["message"]["content"], "v1");
    assert!(
        head.get("content-length").is_none(),
        "a filtered answer is passed on chunked: {head:?}"
    );

    // A configuration the filter refuses is refused at attach time.
    let b = env
        .expect(
            "/api/v1/filters/teams/attach",
            json!({"service": "echo", "config": {"allowed": []}}),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    assert!(
        b["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("refused its configuration"),
        "{b}"
    );
    // The auth check answers for itself unless the team is allowed.
    env.expect(
        "/api/v1/filters/teams/attach",
        json!({"service": "echo", "config": {"header": "x-team", "allowed": ["red", "blue"]}, "position": 0}),
        StatusCode::ACCEPTED,
    )
    .await;
    let (_, _, refused) = env
        .chat_until(&key, &[], "the auth check", |s, _, _| {
            s == StatusCode::FORBIDDEN
        })
        .await;
    assert_eq!(refused["error"]["code"], "filter_denied");
    let (s, _, _) = env
        .chat_until(&key, &[("x-team", "red")], "an allowed team", |s, _, _| {
            s == StatusCode::OK
        })
        .await;
    assert_eq!(s, StatusCode::OK);

    // A filter that spins is stopped by its deadline: failing closed the
    // request is refused, failing open it passes without it.
    env.expect(
        "/api/v1/filters/faulty/attach",
        json!({"config": {"mode": "spin"}}),
        StatusCode::OK,
    )
    .await;
    let (_, _, failed) = env
        .chat_until(&key, &[("x-team", "red")], "the deadline", |s, _, _| {
            s == StatusCode::SERVICE_UNAVAILABLE
        })
        .await;
    assert_eq!(failed["error"]["code"], "filter_failed");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("deadline"),
        "{failed}"
    );
    env.expect(
        "/api/v1/filters/faulty/attach",
        json!({"config": {"mode": "hog"}, "failMode": "open"}),
        StatusCode::OK,
    )
    .await;
    env.chat_until(&key, &[("x-team", "red")], "failing open", |s, _, _| {
        s == StatusCode::OK
    })
    .await;
    let (_, counters) = env
        .console(Method::GET, "/api/v1/filters/counters", None)
        .await;
    let faulty = counters
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["filter"] == "faulty")
        .unwrap();
    assert!(
        faulty["failures"]["deadline"].as_u64().unwrap() >= 1,
        "{counters}"
    );
    assert!(
        faulty["failures"]["memory"].as_u64().unwrap() >= 1,
        "{counters}"
    );
    let teams = counters
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["filter"] == "teams")
        .unwrap();
    assert_eq!(teams["scope"], "service/echo");
    assert!(teams["localResponses"].as_u64().unwrap() >= 1, "{counters}");
    let metrics = env.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("autoglm_gateway_filter_failures_total{")
                && l.contains("reason=\"memory\"")
                && !l.ends_with(" 0")),
        "{metrics}"
    );
    assert!(
        env.up
            .console
            .client()
            .get(format!("{}/healthz", env.up.gateway))
            .send()
            .await
            .unwrap()
            .status()
            .is_success(),
        "the gateway lives on"
    );

    // In use: refused; detached: deleted.
    let (s, b) = env
        .console(Method::DELETE, "/api/v1/filters/faulty", None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    env.expect("/api/v1/filters/faulty/detach", json!({}), StatusCode::OK)
        .await;
    let (s, b) = env
        .console(Method::DELETE, "/api/v1/filters/faulty", None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swapping_filters_under_load_fails_no_request() {
    let env = Env::with_echo(&[], 1, one_version(1), 1).await;
    let (_, key) = env.key(json!({})).await;
    let (s, b) = env
        .upload("swap", examples::module(examples::HEADER_INJECTOR))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    env.expect(
        "/api/v1/filters/swap/attach",
        json!({"config": {"request": {"x-gen": "0"}}}),
        StatusCode::OK,
    )
    .await;
    env.chat_until(&key, &[], "the first filter", |s, _, b| {
        s == StatusCode::OK && b["seen"]["headers"]["x-gen"] == "0"
    })
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        // Each answer takes the replica 20 ms: requests are in flight across every swap.
        let req = env.chat(&key, "echo").header("x-test-delay-ms", "20");
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let r = req.try_clone().unwrap().send().await;
                match r {
                    Ok(r) if r.status() == StatusCode::OK => {
                        r.bytes().await.unwrap();
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    other => {
                        eprintln!("failed under the swap: {other:?}");
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    // Configurations and modules swapped back and forth while the clients run:
    // the header injector and the redactor both take `{}`.
    for round in 1..=6 {
        let generation = round.to_string();
        env.expect(
            "/api/v1/filters/swap/attach",
            json!({"config": {"request": {"x-gen": generation}}}),
            StatusCode::OK,
        )
        .await;
        env.chat_until(&key, &[], "the new configuration", |s, _, b| {
            s == StatusCode::OK && b["seen"]["headers"]["x-gen"] == generation.as_str()
        })
        .await;
    }
    env.expect(
        "/api/v1/filters/swap/attach",
        json!({"config": {}}),
        StatusCode::OK,
    )
    .await;
    for round in 0..6 {
        let module = if round % 2 == 0 {
            examples::PII_REDACTOR
        } else {
            examples::HEADER_INJECTOR
        };
        let (s, b) = env.upload("swap", examples::module(module)).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        // The redactor hides the address the replica is sent; the injector does not.
        let redacting = module == examples::PII_REDACTOR;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = env
                .http
                .post(format!("{}/v1/chat/completions", env.up.gateway))
                .bearer_auth(&key)
                .json(&json!({"model": "echo", "messages": [{"role": "user", "content": "to a@example.com"}]}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            let body: Value = r.json().await.unwrap();
            let content = body["seen"]["messages"][0]["content"].clone();
            if (content == "to [REDACTED EMAIL]") == redacting {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "module {module} within 10 s: {content}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed during the swaps",
        ok + failed
    );
    assert!(ok > 50, "only {ok} requests ran during the swaps");
}
