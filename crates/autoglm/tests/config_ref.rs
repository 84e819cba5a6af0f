//! A service's `configRef` on the local platform of `autoglm up`: each
//! replica reads the referenced config key as a file; publishing a new
//! version rolls the replicas to it while traffic flows, without a failed
//! request; a deleted key leaves the replicas on what they have; a
//! reference to a key or environment that does not exist is refused.
//! The replicas are the tests' small OpenAI server (a `command` runtime),
//! which reports the file's content as it read it at start, and its pid.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Local, UPSTREAM};
use parking_lot::Mutex;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const KEY: &str = "/api/v1/config/environments/dev/keys/DEFAULT_GROUP/echo.yaml";

/// One answer through the gateway: status (0 when the request failed), the
/// config the replica read, and the replica's pid.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    config: String,
    pid: String,
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

async fn ask(http: &reqwest::Client, gateway: &str, token: &str) -> Answer {
    let sent = http
        .post(format!("{gateway}/v1/chat/completions"))
        .bearer_auth(token)
        .json(&json!({"model": "echo", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await;
    match sent {
        Ok(r) => {
            let status = r.status().as_u16();
            let config = urlencoding_decode(&header(&r, "x-upstream-config"));
            let pid = header(&r, "x-upstream-pid");
            // The whole answer, so a cut body counts as a failure.
            let status = if r.bytes().await.is_err() { 0 } else { status };
            Answer {
                status,
                config,
                pid,
            }
        }
        Err(_) => Answer {
            status: 0,
            config: String::new(),
            pid: String::new(),
        },
    }
}

/// Python's `urllib.parse.quote` undone.
fn urlencoding_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// Publishes `content` to the key; the status.
async fn publish(env: &Local, content: &str) -> StatusCode {
    let (s, body) = env
        .call(Method::PUT, KEY, Some(json!({"content": content})))
        .await;
    assert!(s.is_success(), "{s} {body}");
    s
}

/// Waits until the last `n` answers all read `config`; their pids.
async fn settled_on(
    seen: &Mutex<Vec<Answer>>,
    config: &str,
    n: usize,
    within: Duration,
) -> BTreeSet<String> {
    let deadline = Instant::now() + within;
    loop {
        {
            let seen = seen.lock();
            if seen.len() >= n && seen[seen.len() - n..].iter().all(|a| a.config == config) {
                return seen[seen.len() - n..]
                    .iter()
                    .map(|a| a.pid.clone())
                    .collect();
            }
        }
        assert!(
            Instant::now() < deadline,
            "replicas never all read {config:?} within {within:?}: last {:?}",
            seen.lock().last()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn service(config_ref: Value) -> Value {
    json!({"apiVersion": "autoglm.io/v1alpha1", "kind": "ModelService", "metadata": {"name": "echo"},
        "spec": {"model": "echo", "versions": [{"version": "1", "weight": 100}], "replicas": 2,
                 "configRef": config_ref,
                 "runtime": {"command": {"command": ["python3", UPSTREAM, "{port}", "{version}", "{name}"]}}}})
}

#[tokio::test]
async fn replicas_read_their_config_key_and_roll_to_each_new_version_without_a_failed_request() {
    let home = tempfile::tempdir().unwrap();
    let env = Local::start(home.path());
    env.echo_model(1).await;

    // References that lead nowhere are refused, naming the field; nothing is made.
    for (reference, why) in [
        (json!({"key": "echo.yaml"}), "does not exist"),
        (
            json!({"environment": "nowhere", "key": "echo.yaml"}),
            "environment \\\"nowhere\\\"",
        ),
        (json!({"key": "../echo.yaml"}), "contains '/'"),
    ] {
        let (s, body) = env
            .call(Method::POST, "/api/v1/services", Some(service(reference)))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(body.to_string().contains("spec.configRef"), "{body}");
        assert!(body.to_string().contains(why), "{why}: {body}");
    }
    let (s, _) = env.call(Method::GET, "/api/v1/services/echo", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    assert_eq!(
        publish(&env, "greeting: hello\n").await,
        StatusCode::CREATED
    );
    let task = env
        .start_task(
            Method::POST,
            "/api/v1/services",
            Some(service(json!({"key": "echo.yaml"}))),
        )
        .await;
    assert_eq!(env.final_task(&task["id"]).await["state"], "succeeded");

    let running = Arc::new(AtomicBool::new(true));
    let seen: Arc<Mutex<Vec<Answer>>> = Arc::default();
    let traffic = {
        let (running, seen) = (running.clone(), seen.clone());
        let (gateway, token) = (env.up.gateway.clone(), env.up.console.token.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            while running.load(Ordering::Relaxed) {
                let answer = ask(&http, &gateway, &token).await;
                seen.lock().push(answer);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let first = settled_on(&seen, "greeting: hello\n", 20, Duration::from_secs(30)).await;

    // A new version rolls every replica onto it.
    assert_eq!(publish(&env, "greeting: bonjour\n").await, StatusCode::OK);
    let second = settled_on(&seen, "greeting: bonjour\n", 40, Duration::from_secs(60)).await;
    assert!(
        first.is_disjoint(&second),
        "replicas that read the old content still answer: {first:?} then {second:?}"
    );

    // The key deleted: the replicas keep what they read, and keep serving.
    let (s, body) = env.call(Method::DELETE, KEY, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
    let before = seen.lock().len();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.lock().len() < before + 30 {
        assert!(
            Instant::now() < deadline,
            "traffic stopped after the delete"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        seen.lock()[before..]
            .iter()
            .all(|a| a.config == "greeting: bonjour\n"),
        "a deleted key changed what replicas read"
    );

    // Published again: the replicas roll to it.
    publish(&env, "greeting: hallo\n").await;
    settled_on(&seen, "greeting: hallo\n", 20, Duration::from_secs(60)).await;

    running.store(false, Ordering::Relaxed);
    traffic.await.unwrap();
    let seen = std::mem::take(&mut *seen.lock());
    let failed: Vec<&Answer> = seen.iter().filter(|a| a.status != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed across the rolls: {:?}",
        failed.len(),
        seen.len(),
        &failed[..failed.len().min(5)]
    );

    // The service shows what it references.
    let (s, svc) = env.call(Method::GET, "/api/v1/services/echo", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(svc["spec"]["configRef"], json!({"key": "echo.yaml"}));
}
