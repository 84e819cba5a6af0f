//! Weighted splits, pinning and sticky keys, counted over many requests.

use std::collections::HashMap;

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::env::Env;

/// Sends `n` chats, `concurrency` at a time; returns how many each version
/// answered, by the replica's own report of its version (the upstream's
/// `x-upstream-version`), which the gateway's `x-autoglm-version` must match.
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
                let replica = resp.headers()["x-upstream-version"]
                    .to_str()
                    .unwrap()
                    .to_owned();
                assert_eq!(
                    resp.headers()["x-autoglm-version"],
                    replica,
                    "the gateway names another version than the replica that answered"
                );
                replica
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
    let env = Env::with_echo(&[], 2, json!({"versions": [{"version": "1", "weight": 90}, {"version": "2", "weight": 10}], "replicas": 1}), 2).await;
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
    let metrics = env.metrics().await;
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
