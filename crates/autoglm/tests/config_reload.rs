//! Hot reload from the config center: the gateway of `autoglm up` applies
//! `autoglm/gateway.yaml` (of the system tenant's default environment) while
//! traffic flows. A changed default rate limit takes effect within a second
//! of the publish and lifts within a second of the delete; settings that
//! refuse nothing change without one request failing; a wrong settings key
//! is refused at publish and changes nothing.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Local, UPSTREAM};
use parking_lot::Mutex;
use reqwest::{Method, StatusCode};
use serde_json::json;

const SETTINGS: &str = "/api/v1/config/environments/dev/keys/autoglm/gateway.yaml";

/// Every answer (status, or 0 when the request itself failed) with when it came.
type Seen = Arc<Mutex<Vec<(Instant, u16)>>>;

fn traffic(env: &Local, running: Arc<AtomicBool>, seen: Seen) -> tokio::task::JoinHandle<()> {
    let (gateway, token, http) = (
        env.up.gateway.clone(),
        env.up.console.token.clone(),
        reqwest::Client::new(),
    );
    tokio::spawn(async move {
        while running.load(Ordering::Relaxed) {
            let answer = http
                .post(format!("{gateway}/v1/chat/completions"))
                .bearer_auth(&token)
                .json(&json!({"model": "echo", "messages": [{"role": "user", "content": "hi"}]}))
                .send()
                .await;
            let status = match answer {
                Ok(r) => {
                    let status = r.status().as_u16();
                    // The whole answer, so a cut body counts as a failure.
                    if r.bytes().await.is_err() { 0 } else { status }
                }
                Err(_) => 0,
            };
            seen.lock().push((Instant::now(), status));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

/// Waits until `seen` holds an answer after `since` that `wanted` accepts; when.
async fn first_after(
    seen: &Seen,
    since: Instant,
    within: Duration,
    wanted: impl Fn(u16) -> bool,
) -> Instant {
    let deadline = Instant::now() + within;
    loop {
        if let Some((at, _)) = seen.lock().iter().find(|(at, s)| *at > since && wanted(*s)) {
            return *at;
        }
        assert!(
            Instant::now() < deadline,
            "no such answer within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_gateway_applies_its_settings_from_the_config_center_while_traffic_flows() {
    let home = tempfile::tempdir().unwrap();
    let env = Local::start(home.path());
    env.echo_model(1).await;
    let task = env
        .start_task(
            Method::POST,
            "/api/v1/services",
            Some(json!({"apiVersion": "autoglm.io/v1alpha1", "kind": "ModelService", "metadata": {"name": "echo"},
                "spec": {"model": "echo", "versions": [{"version": "1", "weight": 100}], "replicas": 1,
                         "runtime": {"command": {"command": ["python3", UPSTREAM, "{port}", "{version}", "{name}"]}}}})),
        )
        .await;
    assert_eq!(env.final_task(&task["id"]).await["state"], "succeeded");

    // A wrong settings key is refused at publish, field by field.
    let (s, body) = env
        .call(
            Method::PUT,
            SETTINGS,
            Some(json!({"content": "request_timeout: soon\nretrys: 1\n"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.to_string().contains("content"), "{body}");

    let running = Arc::new(AtomicBool::new(true));
    let seen: Seen = Arc::default();
    let load = traffic(&env, running.clone(), seen.clone());
    let started = Instant::now();
    first_after(&seen, started, Duration::from_secs(30), |s| s == 200).await;

    // Settings that refuse nothing: no request may fail across the change.
    let (s, body) = env
        .call(
            Method::PUT,
            SETTINGS,
            Some(json!({"content": "request_timeout: 30s\nretries: 1\nhold_timeout: 20s\n"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let calm = Instant::now();
    first_after(
        &seen,
        calm + Duration::from_secs(1),
        Duration::from_secs(10),
        |s| s == 200,
    )
    .await;

    // A default limit of 2 requests a second for tenants without their own.
    let (s, body) = env.call(Method::PUT, SETTINGS, Some(json!({"content": "request_timeout: 30s\nretries: 1\nhold_timeout: 20s\ndefault_rate_limit: {requests_per_second: 2}\n"}))).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let limited = Instant::now();
    let first_429 = first_after(&seen, limited, Duration::from_secs(5), |s| s == 429).await;
    assert!(
        first_429 - limited <= Duration::from_secs(1),
        "applied after {:?}",
        first_429 - limited
    );
    // Traffic goes on under the limit for two seconds.
    first_after(
        &seen,
        limited + Duration::from_secs(2),
        Duration::from_secs(10),
        |_| true,
    )
    .await;

    // Deleting the key brings back the start-up values: no limit.
    let (s, body) = env.call(Method::DELETE, SETTINGS, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
    let lifted = Instant::now();
    first_after(
        &seen,
        lifted + Duration::from_secs(2),
        Duration::from_secs(10),
        |s| s == 200,
    )
    .await;
    running.store(false, Ordering::Relaxed);
    load.await.unwrap();

    let seen = seen.lock().clone();
    let failed: Vec<_> = seen
        .iter()
        .filter(|(_, s)| ![200, 429].contains(s))
        .collect();
    assert!(
        failed.is_empty(),
        "requests failed across the changes: {failed:?}"
    );
    let refused: Vec<Instant> = seen
        .iter()
        .filter(|(_, s)| *s == 429)
        .map(|(at, _)| *at)
        .collect();
    assert!(
        refused.len() > 3,
        "the limit refused too little: {} of {} answers",
        refused.len(),
        seen.len()
    );
    assert!(
        refused.iter().all(|at| *at > limited),
        "a 429 before the limit was published"
    );
    assert!(
        refused
            .iter()
            .all(|at| *at < lifted + Duration::from_secs(1)),
        "429s went on more than a second after the delete"
    );
    assert!(
        seen.iter()
            .filter(|(at, s)| *at > lifted + Duration::from_secs(1) && *s == 200)
            .count()
            > 10
    );
}
