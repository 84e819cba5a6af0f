//! Unhappy paths on the real SmolLM2 weights: an engine that fails in the
//! middle of a streamed generation, and a corrupt model sent to the hot-swap
//! admin endpoint while a good one serves.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use autoglm_inference::{
    ChatMessage, GenerationEvent, GenerationRequest, Generator, GeneratorInfo, InferenceError,
};
use autoglm_runtime::{Engine, Runtime};
use axum::body::Body;
use axum::http::Request;
use common::*;
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;
use tower::ServiceExt;

fn smollm() -> std::path::PathBuf {
    autoglm_testmodels::file(autoglm_testmodels::SMOLLM2, "gguf")
}

/// How the engine lets a generation down after its first pieces of text.
#[derive(Clone, Copy)]
enum Fault {
    /// It reports the failure, as llama.cpp's scheduler does when a decode fails.
    Reports,
    /// It drops the generation without a word, as a dead engine thread does.
    Vanishes,
}

/// The real llama.cpp generator, with a fault injected after `after` pieces
/// of text. llama.cpp offers no way to make a decode fail on purpose once a
/// request is admitted (a prompt that would overflow the context is refused
/// before it starts), so the failure is injected here, in the test, between
/// the real engine and the runtime under test; the product has no knob for it.
struct Faulty {
    inner: Arc<dyn Generator>,
    after: usize,
    fault: Fault,
}

impl Generator for Faulty {
    fn info(&self) -> GeneratorInfo {
        self.inner.info()
    }

    fn render_chat(&self, messages: &[ChatMessage]) -> Result<String, InferenceError> {
        self.inner.render_chat(messages)
    }

    fn count_tokens(&self, text: &str) -> Result<usize, InferenceError> {
        self.inner.count_tokens(text)
    }

    fn submit(
        &self,
        request: GenerationRequest,
        events: UnboundedSender<GenerationEvent>,
    ) -> Result<(), InferenceError> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        self.inner.submit(request, tx)?;
        let (after, fault) = (self.after, self.fault);
        std::thread::spawn(move || {
            let mut pieces = 0;
            while let Some(event) = rx.blocking_recv() {
                if matches!(event, GenerationEvent::Text(_)) {
                    pieces += 1;
                }
                let _ = events.send(event);
                if pieces == after {
                    if let Fault::Reports = fault {
                        let why = InferenceError::Engine("decoding failed: injected".into());
                        let _ = events.send(GenerationEvent::Failed(why));
                    }
                    // Dropping the real engine's receiver stops its sequence.
                    return;
                }
            }
        });
        Ok(())
    }
}

async fn serve_faulty(fault: Fault) -> axum::Router {
    let options = options();
    let runtime = Runtime::new(
        config("smollm2"),
        Arc::new(
            move |p: &Path| match autoglm_runtime::engines::load(p, &options)? {
                Engine::Generation(inner) => Ok(Engine::Generation(Arc::new(Faulty {
                    inner,
                    after: 3,
                    fault,
                }))),
                other => Ok(other),
            },
        ),
    );
    runtime.load(&smollm(), "1").await.unwrap();
    autoglm_runtime::router(runtime)
}

/// The `data:` payloads of an SSE answer, in order.
fn events(body: &[u8]) -> Vec<String> {
    String::from_utf8(body.to_vec())
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("data: ").map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn an_engine_failing_mid_stream_ends_the_stream_in_an_error_not_done() {
    for fault in [Fault::Reports, Fault::Vanishes] {
        let app = serve_faulty(fault).await;
        let answer = post(
            &app,
            "/v1/chat/completions",
            json!({"model": "smollm2", "messages": [{"role": "user", "content": "Write a long story about a dragon."}],
                   "temperature": 0, "max_tokens": 40, "stream": true}),
        )
        .await;
        // The stream had started: its status was already sent.
        assert_eq!(answer.status, 200);
        let events = events(&answer.body);
        let (last, before) = events.split_last().unwrap();
        // What an OpenAI client raises: an error object as the last event...
        let error: Value = serde_json::from_str(last).unwrap();
        assert_eq!(error["error"]["type"], "server_error", "{last}");
        assert_eq!(error["error"]["code"], "engine_failure", "{last}");
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{last}"
        );
        // ... after the text that did arrive, with no finish and no [DONE].
        assert_eq!(before.len(), 3, "{events:?}");
        for chunk in before {
            let chunk: Value = serde_json::from_str(chunk).unwrap();
            assert!(chunk["choices"][0]["finish_reason"].is_null(), "{chunk}");
        }
        assert!(!events.iter().any(|e| e == "[DONE]"), "{events:?}");

        // A plain request over the same failure is a 500 in OpenAI's shape.
        let plain = post(
            &app,
            "/v1/chat/completions",
            json!({"model": "smollm2", "messages": [{"role": "user", "content": "Write a long story about a dragon."}],
                   "temperature": 0, "max_tokens": 40}),
        )
        .await;
        openai_error(&plain, 500);
    }
}

async fn load(app: &axum::Router, path: &Path, version: &str) -> Answer {
    send_request(
        app,
        Request::post("/admin/v1/load")
            .header("content-type", "application/json")
            .header("authorization", "Bearer admin-token-for-tests")
            .body(Body::from(
                json!({"path": path, "version": version}).to_string(),
            ))
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn a_corrupt_model_at_the_admin_load_is_refused_and_the_old_version_keeps_serving() {
    let (runtime, app) = serve("smollm2", &smollm(), config("smollm2")).await;
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(smollm()).unwrap();
    // A download cut short, a file of noise, a header whose counts are absurd.
    let truncated = dir.path().join("truncated.gguf");
    std::fs::write(&truncated, &good[..good.len() / 3]).unwrap();
    let noise = dir.path().join("noise.gguf");
    std::fs::write(
        &noise,
        (0..4096u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let mut absurd = good[..4096].to_vec();
    absurd[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    let absurd_counts = dir.path().join("absurd.gguf");
    std::fs::write(&absurd_counts, absurd).unwrap();

    for (corrupt, version) in [(&truncated, "2"), (&noise, "3"), (&absurd_counts, "4")] {
        let refused = load(&app, corrupt, version).await;
        assert_eq!(
            refused.status.as_u16(),
            422,
            "{}",
            String::from_utf8_lossy(&refused.body)
        );
        assert_eq!(refused.headers["content-type"], "application/problem+json");
        let problem = refused.json();
        assert_eq!(problem["code"], "invalid_artifact", "{problem}");
        assert_eq!(problem["status"], 422, "{problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains(&*corrupt.to_string_lossy())
                && detail.contains("version 1 keeps serving"),
            "{detail}"
        );

        // Version 1 still serves, and says so.
        assert_eq!(runtime.current().unwrap().version, "1");
        let chat = post(
            &app,
            "/v1/chat/completions",
            json!({"model": "smollm2:1", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}),
        )
        .await;
        assert_eq!(chat.status, 200, "{}", String::from_utf8_lossy(&chat.body));
        assert_eq!(
            get(&app, "/v2/models/smollm2/versions/1/ready")
                .await
                .status,
            200
        );
        assert_eq!(
            get(
                &app,
                &format!("/v2/models/smollm2/versions/{version}/ready")
            )
            .await
            .status,
            404
        );
        assert_eq!(get(&app, "/readyz").await.status, 200);
    }

    // A wrong token is a problem too, and loads nothing.
    let wrong = app
        .clone()
        .oneshot(
            Request::post("/admin/v1/load")
                .header("content-type", "application/json")
                .header("authorization", "Bearer admin-token-for-tests-but-not")
                .body(Body::from(
                    json!({"path": smollm(), "version": "5"}).to_string(),
                ))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(wrong.headers()["content-type"], "application/problem+json");
    assert_eq!(runtime.current().unwrap().version, "1");
}
