//! Chat and text completions on the real SmolLM2 weights: determinism,
//! streaming, limits, bounded queue, cancellation, and hot swap.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use common::*;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

fn smollm() -> std::path::PathBuf {
    autoglm_testmodels::file(autoglm_testmodels::SMOLLM2, "gguf")
}

fn chat(content: &str, extra: Value) -> Value {
    let mut body = json!({"model": "smollm2", "messages": [{"role": "user", "content": content}], "temperature": 0});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// The text of an SSE answer's chunks, its finish reason and whether it ended with [DONE].
fn read_stream(body: &[u8]) -> (String, Option<String>, bool, Option<Value>) {
    let text = String::from_utf8(body.to_vec()).unwrap();
    let mut out = String::new();
    let mut finish = None;
    let mut done = false;
    let mut usage = None;
    for line in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if line == "[DONE]" {
            done = true;
            continue;
        }
        let chunk: Value = serde_json::from_str(line).unwrap();
        if let Some(u) = chunk.get("usage") {
            usage = Some(u.clone());
        }
        if let Some(choice) = chunk["choices"].get(0) {
            if let Some(t) = choice["delta"]["content"]
                .as_str()
                .or(choice["text"].as_str())
            {
                out.push_str(t);
            }
            if let Some(f) = choice["finish_reason"].as_str() {
                finish = Some(f.to_owned());
            }
        }
    }
    (out, finish, done, usage)
}

#[tokio::test]
async fn greedy_chat_is_deterministic_and_streams_the_same_text() {
    let (_rt, app) = serve("smollm2", &smollm(), config("smollm2")).await;
    let question = chat("What is the capital of France?", json!({"max_tokens": 40}));
    let first = post(&app, "/v1/chat/completions", question.clone()).await;
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    let first = first.json();
    let second = post(&app, "/v1/chat/completions", question.clone())
        .await
        .json();
    let text = first["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!text.is_empty());
    assert_eq!(
        second["choices"][0]["message"]["content"],
        text.as_str(),
        "greedy decoding is deterministic"
    );
    assert!(text.contains("Paris"), "{text}");
    assert_eq!(first["object"], "chat.completion");
    let usage = &first["usage"];
    assert_eq!(
        usage["total_tokens"],
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );

    let mut streamed = question;
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let answer = post(&app, "/v1/chat/completions", streamed).await;
    assert_eq!(answer.status, 200);
    assert!(
        answer.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let (streamed_text, finish, done, usage) = read_stream(&answer.body);
    assert_eq!(streamed_text, text, "streamed and plain outputs agree");
    assert_eq!(
        finish.as_deref(),
        first["choices"][0]["finish_reason"].as_str()
    );
    assert!(done, "the stream ends with [DONE]");
    assert_eq!(
        usage.unwrap()["completion_tokens"],
        first["usage"]["completion_tokens"]
    );
}

#[tokio::test]
async fn limits_stops_and_end_of_turn() {
    let (_rt, app) = serve("smollm2", &smollm(), config("smollm2")).await;
    let short = post(
        &app,
        "/v1/chat/completions",
        chat(
            "Write a long story about a dragon.",
            json!({"max_tokens": 5}),
        ),
    )
    .await
    .json();
    assert_eq!(short["choices"][0]["finish_reason"], "length");
    assert_eq!(short["usage"]["completion_tokens"], 5);

    let answer = post(
        &app,
        "/v1/chat/completions",
        chat("Say only the word yes.", json!({"max_tokens": 200})),
    )
    .await
    .json();
    assert_eq!(answer["choices"][0]["finish_reason"], "stop", "{answer}");
    assert!(answer["usage"]["completion_tokens"].as_u64().unwrap() < 200);
    assert!(
        !answer["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("<|im_end|>")
    );

    let counted = post(
        &app,
        "/v1/chat/completions",
        chat(
            "Count from 1 to 20, separated by commas.",
            json!({"max_tokens": 80}),
        ),
    )
    .await
    .json();
    let full = counted["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(full.contains('5'), "{full}");
    let cut = post(
        &app,
        "/v1/chat/completions",
        chat(
            "Count from 1 to 20, separated by commas.",
            json!({"max_tokens": 80, "stop": ["5"]}),
        ),
    )
    .await
    .json();
    let cut_text = cut["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(cut["choices"][0]["finish_reason"], "stop");
    assert!(
        !cut_text.contains('5') && full.starts_with(cut_text),
        "{cut_text:?} vs {full:?}"
    );

    let text = post(
        &app,
        "/v1/completions",
        json!({"model": "smollm2", "prompt": "The sky is", "max_tokens": 4, "temperature": 0}),
    )
    .await;
    assert_eq!(text.status, 200, "{}", String::from_utf8_lossy(&text.body));
    assert_eq!(text.json()["object"], "text_completion");
}

#[tokio::test]
async fn bad_requests_get_openai_errors_and_the_server_keeps_serving() {
    let (_rt, app) = serve("smollm2", &smollm(), config("smollm2")).await;
    for extra in [
        json!({"temperature": 3}),
        json!({"temperature": -1}),
        json!({"top_p": 0}),
        json!({"top_p": 1.5}),
        json!({"max_tokens": 0}),
        json!({"n": 2}),
        json!({"stop": ["", "x"]}),
        json!({"stop": ["a", "b", "c", "d", "e"]}),
    ] {
        openai_error(
            &post(&app, "/v1/chat/completions", chat("hi", extra.clone())).await,
            400,
        );
    }
    let long = "word ".repeat(3000);
    let body = openai_error(
        &post(&app, "/v1/chat/completions", chat(&long, json!({}))).await,
        400,
    );
    assert_eq!(body["error"]["code"], "context_length_exceeded");
    openai_error(
        &post(
            &app,
            "/v1/chat/completions",
            json!({"model": "smollm2", "messages": []}),
        )
        .await,
        400,
    );
    openai_error(
        &post(
            &app,
            "/v1/chat/completions",
            json!({"model": "smollm2", "messages": [{"role": "wizard", "content": "x"}]}),
        )
        .await,
        400,
    );
    openai_error(
        &post(
            &app,
            "/v1/chat/completions",
            chat("hi", json!({"model": "gpt-4"})),
        )
        .await,
        404,
    );
    openai_error(
        &post(
            &app,
            "/v1/completions",
            json!({"model": "smollm2", "prompt": ""}),
        )
        .await,
        400,
    );
    openai_error(
        &post(
            &app,
            "/v1/embeddings",
            json!({"model": "smollm2", "input": "x"}),
        )
        .await,
        400,
    );
    let ok = post(
        &app,
        "/v1/chat/completions",
        chat("hi", json!({"max_tokens": 2})),
    )
    .await;
    assert_eq!(ok.status, 200);
}

#[tokio::test]
async fn a_full_queue_answers_429_and_a_dropped_stream_stops_its_generation() {
    let mut cfg = config("smollm2");
    cfg.queue_capacity = 0;
    let options = autoglm_runtime::engines::EngineOptions {
        max_sequences: 1,
        context_per_sequence: 1024,
        threads: 2,
    };
    let runtime = autoglm_runtime::Runtime::new(
        cfg,
        std::sync::Arc::new(move |p: &std::path::Path| autoglm_runtime::engines::load(p, &options)),
    );
    runtime.load(&smollm(), "1").await.unwrap();
    let app = autoglm_runtime::router(runtime.clone());

    let long = chat(
        "Write a very long story about the sea.",
        json!({"max_tokens": 900, "stream": true}),
    );
    let request = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&long).unwrap()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.is_data());

    let refused = post(
        &app,
        "/v1/chat/completions",
        chat("hi", json!({"max_tokens": 2})),
    )
    .await;
    openai_error(&refused, 429);
    assert_eq!(refused.headers["retry-after"], "1");

    // The client goes away: its generation must stop, freeing the only slot.
    drop(body);
    let start = Instant::now();
    loop {
        let answer = post(
            &app,
            "/v1/chat/completions",
            chat("hi", json!({"max_tokens": 2})),
        )
        .await;
        if answer.status == 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the abandoned generation kept its slot"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_hot_swap_drops_no_request() {
    let (runtime, app) = serve("smollm2", &smollm(), config("smollm2")).await;
    let clients: Vec<_> = (0..6)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                let stream = i % 2 == 0;
                let answer = post(
                    &app,
                    "/v1/chat/completions",
                    chat(
                        &format!("Name a colour, {i}."),
                        json!({"max_tokens": 30, "stream": stream}),
                    ),
                )
                .await;
                (answer.status, stream, answer.body)
            })
        })
        .collect();
    // One stream held open across the swap: its first event is read before
    // the swap starts, the rest only after the swap is done, so it is in
    // flight on version 1 the whole time (its forwarding task, which holds
    // the version, cannot finish before the client reads: its channel is
    // bounded below the 60 tokens asked for).
    let held = app
        .clone()
        .oneshot(
            Request::post("/v1/chat/completions")
                .header("content-type", "application/json")
                .body(Body::from(
                    serde_json::to_vec(&chat(
                        "Write a long story about a dragon.",
                        json!({"max_tokens": 60, "stream": true, "stream_options": {"include_usage": true}}),
                    ))
                    .unwrap(),
                ))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(held.status(), 200);
    let mut held = held.into_body();
    let before_swap = held.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(before_swap.starts_with(b"data: "), "{before_swap:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let swap = send(
        &app,
        "POST",
        "/admin/v1/load",
        Some(serde_json::to_vec(&json!({"path": smollm(), "version": "2"})).unwrap()),
    )
    .await;
    // No admin token: refused.
    assert_eq!(swap.status, 401);
    let request = Request::post("/admin/v1/load")
        .header("content-type", "application/json")
        .header("authorization", "Bearer admin-token-for-tests")
        .body(Body::from(
            serde_json::to_vec(&json!({"path": smollm(), "version": "2"})).unwrap(),
        ))
        .unwrap();
    let swapped = app.clone().oneshot(request).await.unwrap();
    assert_eq!(swapped.status(), 200);
    assert_eq!(runtime.current().unwrap().version, "2");
    let after_swap = held.collect().await.unwrap().to_bytes();
    let whole = [before_swap.as_ref(), after_swap.as_ref()].concat();
    let (_, finish, done, usage) = read_stream(&whole);
    assert!(done, "the held stream ended with [DONE]");
    assert_eq!(finish.as_deref(), Some("length"));
    assert_eq!(usage.unwrap()["completion_tokens"], 60);
    for client in clients {
        let (status, stream, body) = client.await.unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        if stream {
            assert!(read_stream(&body).2, "stream finished with [DONE]");
        }
    }
    assert_eq!(runtime.current().unwrap().version, "2");
    assert_eq!(
        get(&app, "/v2/models/smollm2/versions/2/ready")
            .await
            .status,
        200
    );
    assert_eq!(
        get(&app, "/v2/models/smollm2/versions/1/ready")
            .await
            .status,
        404
    );
    let after = post(
        &app,
        "/v1/chat/completions",
        chat("hi", json!({"max_tokens": 2, "model": "smollm2:2"})),
    )
    .await;
    assert_eq!(after.status, 200);
}

#[tokio::test]
async fn configured_sampling_defaults_fill_what_a_request_leaves_out() {
    // As a service's configRef sets them: greedy, at most 4 new tokens.
    let mut configured = config("smollm2");
    configured.sampling = autoglm_runtime::SamplingDefaults {
        temperature: 0.0,
        max_tokens: 4,
        ..Default::default()
    };
    let (_rt, app) = serve("smollm2", &smollm(), configured).await;
    let story = json!({"model": "smollm2", "messages": [{"role": "user", "content": "Write a long story about a dragon."}]});
    let short = post(&app, "/v1/chat/completions", story.clone())
        .await
        .json();
    assert_eq!(short["choices"][0]["finish_reason"], "length", "{short}");
    assert_eq!(short["usage"]["completion_tokens"], 4, "{short}");
    // Greedy by default: the same text twice.
    let again = post(&app, "/v1/chat/completions", story.clone())
        .await
        .json();
    assert_eq!(
        short["choices"][0]["message"]["content"],
        again["choices"][0]["message"]["content"]
    );
    // The request's own value wins over the default.
    let mut longer = story;
    longer["max_tokens"] = json!(9);
    let longer = post(&app, "/v1/chat/completions", longer).await.json();
    assert_eq!(longer["usage"]["completion_tokens"], 9, "{longer}");
}
