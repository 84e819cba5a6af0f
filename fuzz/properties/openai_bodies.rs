//! Property of the runtime's OpenAI request bodies (`/v1/chat/completions`,
//! `/v1/completions`, `/v1/embeddings`), driven through autoglm-runtime's
//! real router over stand-in engines; shared by the `openai_bodies` fuzz
//! target and the bounded run of it in crates/autoglm-runtime/tests/fuzzed.rs.
//!
//! Any body is answered, never a 5xx: a 200 in the shape OpenAI clients
//! read, or a 4xx in OpenAI's error shape. What reaches an engine keeps the
//! contract of `SamplingParams` (the stand-ins panic otherwise), since a
//! real engine trusts it.

#[path = "answer.rs"]
mod answer;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use autoglm_inference::{
    ChatMessage, Embedder, Embeddings, FinishReason, GenerationEvent, GenerationRequest, Generator,
    GeneratorInfo, InferenceError,
};
use autoglm_runtime::{Engine, LoadFn, Runtime, RuntimeConfig};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;
use tower::ServiceExt;

/// The model name the runtimes serve.
pub const MODEL: &str = "fuzz";

/// A generator that answers one piece of text, checking what it is handed.
#[derive(Debug)]
struct StandInGenerator;

impl Generator for StandInGenerator {
    fn info(&self) -> GeneratorInfo {
        GeneratorInfo {
            context_length: 4096,
            architecture: "stand-in".into(),
            max_sequences: 2,
        }
    }

    fn render_chat(&self, messages: &[ChatMessage]) -> Result<String, InferenceError> {
        Ok(messages
            .iter()
            .map(|m| format!("{}: {}\n", m.role, m.content))
            .collect())
    }

    fn count_tokens(&self, text: &str) -> Result<usize, InferenceError> {
        Ok(text.len())
    }

    fn submit(
        &self,
        request: GenerationRequest,
        events: UnboundedSender<GenerationEvent>,
    ) -> Result<(), InferenceError> {
        let p = &request.params;
        assert!((0.0..=2.0).contains(&p.temperature), "{p:?}");
        assert!(p.top_p > 0.0 && p.top_p <= 1.0, "{p:?}");
        assert!(p.max_tokens >= 1, "{p:?}");
        assert!(
            p.stop.len() <= 4 && p.stop.iter().all(|s| !s.is_empty()),
            "{p:?}"
        );
        let _ = events.send(GenerationEvent::Text("stand-in".into()));
        let _ = events.send(GenerationEvent::Done {
            prompt_tokens: request.prompt.len(),
            cached_tokens: 0,
            completion_tokens: 1,
            queue_wait: Duration::ZERO,
            finish_reason: FinishReason::Length,
        });
        Ok(())
    }
}

/// An embedder that answers one fixed vector per input.
#[derive(Debug)]
struct StandInEmbedder;

impl Embedder for StandInEmbedder {
    fn dimensions(&self) -> usize {
        2
    }

    fn max_tokens(&self) -> usize {
        512
    }

    fn embed(&self, inputs: &[String]) -> Result<Embeddings, InferenceError> {
        Ok(Embeddings {
            vectors: inputs.iter().map(|_| vec![0.6, 0.8]).collect(),
            tokens: inputs.iter().map(String::len).collect(),
        })
    }
}

/// A runtime serving a stand-in generator and one serving a stand-in
/// embedder, both as [`MODEL`].
#[derive(Debug)]
pub struct Runtimes {
    generation: Router,
    embeddings: Router,
}

async fn serve(engine: Engine) -> Router {
    let config = RuntimeConfig {
        name: MODEL.into(),
        max_batch: 8,
        max_batch_wait: Duration::ZERO,
        queue_capacity: 4,
        admin_token: None,
        sampling: Default::default(),
        tracing: Arc::default(),
    };
    let loader: LoadFn = Arc::new(move |_: &Path| Ok(engine.clone()));
    let runtime = Runtime::new(config, loader);
    runtime
        .load(Path::new("stand-in"), "1")
        .await
        .expect("the stand-in loads");
    autoglm_runtime::router(runtime)
}

impl Runtimes {
    /// Loads both stand-ins.
    pub async fn start() -> Runtimes {
        Runtimes {
            generation: serve(Engine::Generation(Arc::new(StandInGenerator))).await,
            embeddings: serve(Engine::Embeddings(Arc::new(StandInEmbedder))).await,
        }
    }

    /// Checks the property on `data`: its first byte picks the endpoint,
    /// the rest is the body.
    pub async fn check(&self, data: &[u8]) {
        let Some((&pick, body)) = data.split_first() else {
            return;
        };
        let (app, uri) = match pick % 3 {
            0 => (&self.generation, "/v1/chat/completions"),
            1 => (&self.generation, "/v1/completions"),
            _ => (&self.embeddings, "/v1/embeddings"),
        };
        let request = Request::post(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_vec()))
            .expect("a request");
        let response = app.clone().oneshot(request).await.expect("an answer");
        let (status, content_type, bytes) = answer::read(response).await;
        let text = String::from_utf8_lossy(&bytes);
        match status {
            StatusCode::OK if content_type.starts_with("text/event-stream") => {
                assert!(text.ends_with("data: [DONE]\n\n"), "{uri}: {text}");
            }
            StatusCode::OK => {
                let answer: Value = serde_json::from_slice(&bytes).expect("a JSON answer");
                let list = if uri == "/v1/embeddings" {
                    "data"
                } else {
                    "choices"
                };
                assert!(answer[list].is_array(), "{uri}: {answer}");
            }
            _ => {
                assert!(status.is_client_error(), "{uri}: {status} {text}");
                let answer: Value = serde_json::from_slice(&bytes).expect("a JSON error");
                let message = answer["error"]["message"].as_str().unwrap_or_default();
                assert!(!message.is_empty(), "{uri}: {answer}");
                assert!(answer["error"]["type"].is_string(), "{uri}: {answer}");
            }
        }
    }
}
