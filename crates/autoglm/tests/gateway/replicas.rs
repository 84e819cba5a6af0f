//! Replicas that misbehave (tests/fixtures/openai_upstream.py, told how by
//! a request header or on its own port): a request that reached a replica is
//! never sent again, whatever the replica then does; what it does wrong is a
//! 502 for that request alone; a replica is ejected for its own failures and
//! never for a caller's.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::env::{Env, one_version};

/// What the replica on `port` counted (received, closed, pid), asked on
/// its own port; `None` while nothing listens there.
async fn counts(http: &reqwest::Client, port: u64) -> Option<Value> {
    let r = http
        .get(format!("http://127.0.0.1:{port}/test/counts"))
        .send()
        .await
        .ok()?;
    r.json().await.ok()
}

/// The POSTs the replicas on `ports` received, each.
async fn received(http: &reqwest::Client, ports: &[u64]) -> Vec<u64> {
    let mut all = Vec::new();
    for &port in ports {
        let c = counts(http, port).await.unwrap();
        all.push(c["received"].as_u64().unwrap());
    }
    all
}

/// The ports of the service's ready replicas.
async fn ports(env: &Env, ready: u64) -> Vec<u64> {
    let status = env.wait_ready(ready).await;
    status["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["state"] == "ready")
        .map(|r| r["port"].as_u64().unwrap())
        .collect()
}

/// A chat request through the gateway on `client`, with `fields` added.
async fn chat(
    env: &Env,
    client: &reqwest::Client,
    body: &Value,
    fields: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut req = client
        .post(format!("{}/v1/chat/completions", env.up.gateway))
        .bearer_auth(&env.up.console.token)
        .json(body);
    for (name, value) in fields {
        req = req.header(*name, *value);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn hello() -> Value {
    json!({"model": "echo", "messages": [{"role": "user", "content": "hi"}]})
}

/// Sends plain requests on `client` until every replica on `ports` has
/// answered one: the gateway worker that serves this client's connection
/// then holds an open connection to each.
async fn warm(env: &Env, client: &reqwest::Client, ports: &[u64]) {
    let before = received(&env.http, ports).await;
    for _ in 0..100 {
        let (s, b) = chat(env, client, &hello(), &[]).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let now = received(&env.http, ports).await;
        if now.iter().zip(&before).all(|(n, b)| n > b) {
            return;
        }
    }
    panic!("100 requests did not reach every replica");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_that_reached_a_replica_is_never_sent_again() {
    let env = Env::with_echo(&[], 1, one_version(2), 2).await;
    let ports = ports(&env, 2).await;
    // One connection to the gateway, so one worker and its pool of
    // connections to the replicas.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    warm(&env, &client, &ports).await;

    // Each replica answers, then closes the connection it kept open, as a
    // server ends an idle keep-alive connection: the gateway's pooled
    // connections are all closed. A request taken to one was not written,
    // so it goes on a new connection, unseen by the client.
    let mut rounds = 0;
    loop {
        let (s, b) = chat(
            &env,
            &client,
            &hello(),
            &[("x-test-misbehave", "then-close")],
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let mut closed = Vec::new();
        for &port in &ports {
            closed.push(
                counts(&env.http, port).await.unwrap()["closed"]
                    .as_u64()
                    .unwrap(),
            );
        }
        if closed.iter().all(|&c| c > 0) {
            break;
        }
        rounds += 1;
        assert!(rounds < 100, "the replicas closed {closed:?}");
    }
    let before: u64 = received(&env.http, &ports).await.iter().sum();
    for _ in 0..4 {
        let (s, b) = chat(&env, &client, &hello(), &[]).await;
        assert_eq!(
            s,
            StatusCode::OK,
            "a stale pooled connection failed a request: {b}"
        );
    }
    let after: u64 = received(&env.http, &ports).await.iter().sum();
    assert_eq!(after, before + 4, "each request reached a replica once");

    // A replica that reads the request and closes without an answer, and
    // one that answers bytes that are not HTTP: a 502 each, and the request
    // reached one replica, once (neither sent again on a new connection nor
    // to the other replica).
    for (misbehave, why) in [
        ("close", "the connection closed before an answer"),
        ("malformed", "the answer is not HTTP/1"),
    ] {
        warm(&env, &client, &ports).await;
        let before: u64 = received(&env.http, &ports).await.iter().sum();
        let (s, b) = chat(&env, &client, &hello(), &[("x-test-misbehave", misbehave)]).await;
        assert_eq!(s, StatusCode::BAD_GATEWAY, "{misbehave}: {b}");
        assert_eq!(b["error"]["code"], "upstream_error", "{b}");
        assert!(b["error"]["message"].as_str().unwrap().contains(why), "{b}");
        let after: u64 = received(&env.http, &ports).await.iter().sum();
        assert_eq!(
            after,
            before + 1,
            "a request the replica took ({misbehave}) was sent again"
        );
        // And the gateway serves on.
        let (s, b) = chat(&env, &client, &hello(), &[]).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }

    // A replica that exits with the request in hand: a 502, and the other
    // replica never sees the request (it might act on it twice).
    warm(&env, &client, &ports).await;
    let mut before = Vec::new();
    for &port in &ports {
        before.push(counts(&env.http, port).await.unwrap());
    }
    let (s, b) = chat(&env, &client, &hello(), &[("x-test-misbehave", "exit")]).await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{b}");
    assert_eq!(b["error"]["code"], "upstream_error", "{b}");
    let mut survivors = 0;
    for (&port, was) in ports.iter().zip(&before) {
        let Some(now) = counts(&env.http, port).await else {
            continue;
        };
        if now["pid"] == was["pid"] {
            survivors += 1;
            assert_eq!(
                now["received"], was["received"],
                "the request went on to replica {port} after the other one died with it"
            );
        }
    }
    assert_eq!(survivors, 1, "one replica exited: {before:?}");
    // The platform starts it again, and the gateway serves on.
    env.wait_ready(2).await;
    let (s, b) = chat(&env, &client, &hello(), &[]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_are_ejected_for_their_own_failures_never_for_a_callers() {
    // Balanced by prefix hash, one conversation has a home replica: it goes
    // elsewhere only while its home is ejected, which makes ejection visible.
    let spec = json!({"versions": [{"version": "1", "weight": 100}], "replicas": 2,
                      "loadBalancing": {"strategy": "prefixHash"}});
    let env = Env::with_echo(
        &["--request-timeout", "1", "--body-timeout", "1"],
        1,
        spec,
        2,
    )
    .await;
    let token = env.up.console.token.clone();
    let conversation = json!({"model": "echo",
        "messages": [{"role": "user", "content": "one conversation, one home"}]});
    let port_of = |b: &Value| b["seen"]["port"].as_u64().unwrap();
    let (s, b) = chat(&env, &env.http, &conversation, &[]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let home = port_of(&b);

    // A caller's own slow requests: three in a row that outlast the request
    // timeout at the home replica (504 each), three whose callers leave
    // before the answer, three whose bodies never arrive (408 each).
    for _ in 0..3 {
        let (s, b) = chat(
            &env,
            &env.http,
            &conversation,
            &[("x-test-delay-ms", "3000")],
        )
        .await;
        assert_eq!(s, StatusCode::GATEWAY_TIMEOUT, "{b}");
    }
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    for _ in 0..3 {
        let left = impatient
            .post(format!("{}/v1/chat/completions", env.up.gateway))
            .bearer_auth(&token)
            .header("x-test-delay-ms", "3000")
            .json(&conversation)
            .send()
            .await;
        assert!(left.is_err(), "{left:?}");
    }
    let addr = env.up.gateway.trim_start_matches("http://").to_owned();
    let stalled: Vec<_> = (0..3)
        .map(|_| {
            let (addr, token) = (addr.clone(), token.clone());
            tokio::task::spawn_blocking(move || {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                write!(
                    s,
                    "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\ncontent-length: 100\r\n\r\n{{\"model\""
                )
                .unwrap();
                let mut answer = String::new();
                s.read_to_string(&mut answer).unwrap_or_default();
                answer
            })
        })
        .collect();
    for answer in stalled {
        let answer = answer.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    }
    // The gateway is done with the callers who left (their requests timed out).
    let in_flight =
        r#"autoglm_gateway_in_flight_requests{tenant="default",model="echo",version="1"}"#;
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.sample(in_flight).await != 0.0 {
        assert!(Instant::now() < deadline, "requests stayed in flight");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The home replica was not ejected for any of it: it still takes the conversation.
    for _ in 0..5 {
        let (s, b) = chat(&env, &env.http, &conversation, &[]).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(
            port_of(&b),
            home,
            "the home replica was ejected for its callers' slowness"
        );
    }

    // The home replica fails every request with a 500 (each passed on, not
    // sent again): after three in a row it is ejected, and the conversation
    // goes to the healthy replica.
    let fail = |status: u16| {
        env.http
            .post(format!("http://127.0.0.1:{home}/test/fail"))
            .json(&json!({"status": status}))
            .send()
    };
    assert_eq!(fail(500).await.unwrap().status(), StatusCode::OK);
    for _ in 0..3 {
        let (s, b) = chat(&env, &env.http, &conversation, &[]).await;
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{b}");
        assert_eq!(port_of(&b["error"]), home, "{b}");
    }
    let ejected = Instant::now();
    for _ in 0..5 {
        let (s, b) = chat(&env, &env.http, &conversation, &[]).await;
        assert_eq!(s, StatusCode::OK, "a failing replica kept its traffic: {b}");
        assert_ne!(port_of(&b), home, "{b}");
    }
    // Healed, it takes its conversation back once the ejection is over.
    assert_eq!(fail(0).await.unwrap().status(), StatusCode::OK);
    loop {
        let (s, b) = chat(&env, &env.http, &conversation, &[]).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        if port_of(&b) == home {
            break;
        }
        assert!(
            ejected.elapsed() < Duration::from_secs(15),
            "the healed replica never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ejected.elapsed() >= Duration::from_millis(1500),
        "the ejection ended after {:?}, not the 2 s it lasts",
        ejected.elapsed()
    );
}
