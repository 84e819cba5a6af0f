//! `spec.loadBalancing: prefixHash` through the real gateway: each
//! conversation's turns reach one replica while its load is within the bound,
//! conversations spread over the replicas, a burst of one conversation past
//! the bound spills over to the others, and the metrics count both.

use std::collections::{HashMap, HashSet};

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::env::Env;

/// The body of turn `turns` of conversation `conversation`: a long system
/// prompt of its own, then alternating user and assistant messages.
fn turn(conversation: usize, turns: usize) -> Value {
    let mut messages = vec![json!({"role": "system", "content": format!(
        "You are assistant number {conversation}. {}", "Answer briefly and politely. ".repeat(20))})];
    for t in 0..turns {
        messages.push(
            json!({"role": "user", "content": format!("question {t} of chat {conversation}")}),
        );
        if t + 1 < turns {
            messages.push(json!({"role": "assistant", "content": format!("answer {t}")}));
        }
    }
    json!({"model": "echo", "messages": messages})
}

/// The port of the replica that answered `body`, sent with `delay_ms` of
/// work at the replica.
async fn replica_of(env: &Env, key: &str, body: &Value, delay_ms: u64) -> u64 {
    let resp = env
        .http
        .post(format!("{}/v1/chat/completions", env.up.gateway))
        .bearer_auth(key)
        .header("x-test-delay-ms", delay_ms.to_string())
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let answer: Value = resp.json().await.unwrap();
    answer["seen"]["port"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_conversation_stays_on_its_replica_until_the_load_bound_spills_it() {
    let spec = json!({"versions": [{"version": "1", "weight": 100}], "replicas": 3,
                      "loadBalancing": {"strategy": "prefixHash"}});
    let env = Env::with_echo(&[], 1, spec, 3).await;
    let token = env.up.console.token.clone();

    // Twelve conversations of four turns, one request at a time: every turn
    // of a conversation reaches the replica its first turn reached.
    let mut home_of = HashMap::new();
    let labels = r#"{tenant="default",model="echo",version="1"}"#;
    for conversation in 0..12 {
        for turns in 1..=4 {
            // The gateway counts a request out after the answer's last
            // write: the next turn waits for that, or the home replica
            // still counts one in flight and the load bound may spill it.
            let in_flight = format!("autoglm_gateway_in_flight_requests{labels}");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while env.sample(&in_flight).await != 0.0 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "a request stayed in flight"
                );
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            let port = replica_of(&env, &token, &turn(conversation, turns), 0).await;
            let home = *home_of.entry(conversation).or_insert(port);
            assert_eq!(port, home, "turn {turns} of chat {conversation} moved");
        }
    }
    let homes: HashSet<u64> = home_of.values().copied().collect();
    assert!(homes.len() >= 2, "twelve chats all hashed to {homes:?}");
    assert_eq!(
        env.sample(&format!("autoglm_gateway_prefix_hits_total{labels}"))
            .await,
        48.0
    );

    // Eight turns of one conversation at once, each held 1 s at the
    // replica: past the bound (125% of the mean) the later ones go to the
    // least loaded replicas instead.
    let body = turn(0, 2);
    let ports: Vec<u64> = futures_util::stream::iter(0..8)
        .map(|_| replica_of(&env, &token, &body, 1000))
        .buffer_unordered(8)
        .collect()
        .await;
    let spread: HashSet<u64> = ports.iter().copied().collect();
    assert!(
        spread.len() >= 2,
        "a burst of one chat stayed on {spread:?}"
    );
    let over_bound = r#"autoglm_gateway_prefix_fallbacks_total{tenant="default",model="echo",version="1",reason="over_bound"}"#;
    assert!(env.sample(over_bound).await >= 1.0);
}
