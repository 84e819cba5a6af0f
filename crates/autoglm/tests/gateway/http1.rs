//! Bad input and the HTTP/1 corners, on raw sockets: clear 4xx answers
//! that disturb no other client.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::env::{Env, one_version};

fn raw(gateway: &str) -> TcpStream {
    let addr = gateway.trim_start_matches("http://");
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_gets_a_clear_4xx_and_disturbs_no_one() {
    let env = Env::with_echo(
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
    // The Bearer scheme in any case (RFC 9110 §11.1), as the console takes it too.
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let credentials = format!("{scheme} {token}");
        let r = post("/v1/chat/completions")
            .header("authorization", &credentials)
            .json(&chat)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "the gateway refused {scheme}");
        let r = env
            .http
            .get(env.up.console.api("/api/v1/services"))
            .header("authorization", &credentials)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "the console refused {scheme}");
    }
    let (got, c) = code(
        post("/v1/chat/completions")
            .header("authorization", format!("Basic {token}"))
            .json(&chat)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (got, c.as_str()),
        (StatusCode::UNAUTHORIZED, "missing_api_key")
    );
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
    let env = Env::with_echo(&[], 1, one_version(1), 1).await;
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
