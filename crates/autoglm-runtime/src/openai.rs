//! The OpenAI-compatible API: models, embeddings, chat and text completions
//! (plain or streamed as server-sent events ending in `[DONE]`, or in an
//! error event when the engine fails mid-way).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use autoglm_inference::{
    ChatMessage, FinishReason, GenerationEvent, GenerationRequest, SamplingParams,
};
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::error::{ApiError, Body, Dialect};
use crate::served::{Served, Ticket};
use crate::traced::Traced;
use crate::usage::TokenUsage;
use crate::{Engine, Runtime};

/// Most inputs in one embeddings request (OpenAI's own limit).
pub const MAX_EMBEDDING_INPUTS: usize = 2048;
/// Tokens generated when the request does not say.
pub const DEFAULT_MAX_TOKENS: u32 = 256;

const D: Dialect = Dialect::OpenAi;

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The served version, if `model` names it (`name` or `name:version`).
fn resolve(runtime: &Runtime, model: &str) -> Result<Arc<Served>, ApiError> {
    let served = runtime.current().ok_or_else(|| ApiError::not_ready(D))?;
    let name = &runtime.config().name;
    let matches = model == name
        || model
            .split_once(':')
            .is_some_and(|(n, v)| n == name && v == served.version);
    if !matches {
        return Err(ApiError::unknown_model(
            D,
            model,
            &format!("{name}:{}", served.version),
        ));
    }
    Ok(served)
}

/// `GET /v1/models`.
pub async fn models(State(runtime): State<Arc<Runtime>>) -> Json<Value> {
    let data: Vec<Value> = runtime
        .current()
        .map(|s| {
            json!({"id": runtime.config().name, "object": "model", "created": 0, "owned_by": "autoglm",
                   "version": s.version, "kind": s.engine.kind()})
        })
        .into_iter()
        .collect();
    Json(json!({"object": "list", "data": data}))
}

/// `POST /v1/embeddings` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingsRequest {
    model: String,
    input: EmbeddingInput,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum EmbeddingInput {
    One(String),
    Many(Vec<String>),
}

/// `POST /v1/embeddings`.
pub async fn embeddings(
    State(runtime): State<Arc<Runtime>>,
    Body(req): Body<EmbeddingsRequest, false>,
) -> Result<Json<Value>, ApiError> {
    let _ = req.user;
    let served = resolve(&runtime, &req.model)?;
    let Some(batcher) = &served.batcher else {
        return Err(ApiError::invalid(D, "this model does not produce embeddings").param("model"));
    };
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                D,
                format!("encoding_format must be float or base64, got {other:?}"),
            )
            .param("encoding_format"));
        }
    };
    let inputs = match req.input {
        EmbeddingInput::One(s) => vec![s],
        EmbeddingInput::Many(v) => v,
    };
    if inputs.is_empty() {
        return Err(ApiError::invalid(D, "input must not be empty").param("input"));
    }
    if inputs.len() > MAX_EMBEDDING_INPUTS {
        return Err(ApiError::invalid(
            D,
            format!(
                "input has {} items; the limit is {MAX_EMBEDDING_INPUTS}",
                inputs.len()
            ),
        )
        .param("input"));
    }
    let result = batcher
        .embed(inputs)
        .await
        .map_err(|e| ApiError::from_inference(D, e).param("input"))?;
    let tokens: usize = result.tokens.iter().sum();
    let data: Vec<Value> = result
        .vectors
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    Ok(Json(json!({
        "object": "list", "data": data, "model": runtime.config().name,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}
    })))
}

/// Either one stop string or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

/// Sampling fields shared by chat and text completions.
#[derive(Debug, Deserialize)]
pub struct Sampling {
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    top_p: Option<f32>,
    #[serde(default)]
    top_k: Option<u32>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    stop: Option<Stop>,
    #[serde(default)]
    n: Option<u32>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

impl Sampling {
    fn params(&self, defaults: &crate::SamplingDefaults) -> Result<SamplingParams, ApiError> {
        let _ = &self.user;
        if self.n.is_some_and(|n| n != 1) {
            return Err(ApiError::invalid(D, "only n = 1 is supported").param("n"));
        }
        let temperature = self.temperature.unwrap_or(defaults.temperature);
        if !(0.0..=2.0).contains(&temperature) {
            return Err(ApiError::invalid(
                D,
                format!("temperature must be 0 to 2, got {temperature}"),
            )
            .param("temperature"));
        }
        let top_p = self.top_p.unwrap_or(defaults.top_p);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(
                ApiError::invalid(D, format!("top_p must be in (0, 1], got {top_p}"))
                    .param("top_p"),
            );
        }
        let max_tokens = self
            .max_completion_tokens
            .or(self.max_tokens)
            .unwrap_or(defaults.max_tokens);
        if max_tokens == 0 {
            return Err(ApiError::invalid(D, "max_tokens must be at least 1").param("max_tokens"));
        }
        let stop = match &self.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) => v.clone(),
        };
        if stop.len() > 4 || stop.iter().any(String::is_empty) {
            return Err(
                ApiError::invalid(D, "stop takes at most 4 non-empty strings").param("stop"),
            );
        }
        Ok(SamplingParams {
            temperature,
            top_p,
            top_k: self.top_k.unwrap_or(defaults.top_k),
            seed: self.seed,
            max_tokens,
            stop,
        })
    }
}

/// A chat message as clients send it: content as a string or as text parts.
#[derive(Debug, Deserialize)]
struct WireMessage {
    role: String,
    content: WireContent,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum WireContent {
    Text(String),
    Parts(Vec<WirePart>),
}

#[derive(Debug, Deserialize)]
struct WirePart {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

/// `POST /v1/chat/completions` body.
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    model: String,
    messages: Vec<WireMessage>,
    #[serde(flatten)]
    sampling: Sampling,
}

/// `POST /v1/completions` body.
#[derive(Debug, Deserialize)]
pub struct CompletionRequest {
    model: String,
    prompt: String,
    #[serde(flatten)]
    sampling: Sampling,
}

fn messages(wire: Vec<WireMessage>) -> Result<Vec<ChatMessage>, ApiError> {
    if wire.is_empty() {
        return Err(ApiError::invalid(D, "messages must not be empty").param("messages"));
    }
    wire.into_iter()
        .map(|m| {
            let _ = m.name;
            if !matches!(m.role.as_str(), "system" | "user" | "assistant") {
                return Err(
                    ApiError::invalid(D, format!("role {:?} is not supported", m.role))
                        .param("messages"),
                );
            }
            let content = match m.content {
                WireContent::Text(t) => t,
                WireContent::Parts(parts) => parts
                    .into_iter()
                    .map(|p| match (p.kind.as_str(), p.text) {
                        ("text", Some(t)) => Ok(t),
                        _ => Err(
                            ApiError::invalid(D, "only text content parts are supported")
                                .param("messages"),
                        ),
                    })
                    .collect::<Result<Vec<_>, _>>()?
                    .join(""),
            };
            Ok(ChatMessage {
                role: m.role,
                content,
            })
        })
        .collect()
}

/// `POST /v1/chat/completions`.
pub async fn chat_completions(
    State(runtime): State<Arc<Runtime>>,
    headers: HeaderMap,
    Body(req): Body<ChatRequest, false>,
) -> Result<Response, ApiError> {
    let traced = Traced::start(&runtime, &headers, "/v1/chat/completions");
    let served = resolve(&runtime, &req.model)?;
    let Engine::Generation(generator) = &served.engine else {
        return Err(ApiError::invalid(D, "this model does not generate text").param("model"));
    };
    let params = req.sampling.params(&runtime.config().sampling)?;
    let messages = messages(req.messages)?;
    let prompt = generator
        .render_chat(&messages)
        .map_err(|e| ApiError::from_inference(D, e).param("messages"))?;
    let include_usage = req
        .sampling
        .stream_options
        .as_ref()
        .is_some_and(|o| o.include_usage);
    generate(
        &runtime,
        served.clone(),
        (prompt, params),
        (Kind::Chat, req.sampling.stream, include_usage),
        traced,
    )
    .await
}

/// `POST /v1/completions`.
pub async fn completions(
    State(runtime): State<Arc<Runtime>>,
    headers: HeaderMap,
    Body(req): Body<CompletionRequest, false>,
) -> Result<Response, ApiError> {
    let traced = Traced::start(&runtime, &headers, "/v1/completions");
    let served = resolve(&runtime, &req.model)?;
    if !matches!(served.engine, Engine::Generation(_)) {
        return Err(ApiError::invalid(D, "this model does not generate text").param("model"));
    }
    if req.prompt.is_empty() {
        return Err(ApiError::invalid(D, "prompt must not be empty").param("prompt"));
    }
    let params = req.sampling.params(&runtime.config().sampling)?;
    let include_usage = req
        .sampling
        .stream_options
        .as_ref()
        .is_some_and(|o| o.include_usage);
    generate(
        &runtime,
        served,
        (req.prompt, params),
        (Kind::Text, req.sampling.stream, include_usage),
        traced,
    )
    .await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chat,
    Text,
}

impl Kind {
    fn object(self, streamed: bool) -> &'static str {
        match (self, streamed) {
            (Kind::Chat, false) => "chat.completion",
            (Kind::Chat, true) => "chat.completion.chunk",
            (Kind::Text, _) => "text_completion",
        }
    }

    fn choice(
        self,
        text: Option<&str>,
        finish: Option<FinishReason>,
        first: bool,
        streamed: bool,
    ) -> Value {
        match (self, streamed) {
            (Kind::Chat, false) => {
                json!({"index": 0, "message": {"role": "assistant", "content": text.unwrap_or("")},
                                          "finish_reason": finish, "logprobs": null})
            }
            (Kind::Chat, true) => {
                let mut delta = serde_json::Map::new();
                if first {
                    delta.insert("role".into(), json!("assistant"));
                }
                if let Some(t) = text {
                    delta.insert("content".into(), json!(t));
                }
                json!({"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null})
            }
            (Kind::Text, _) => {
                json!({"index": 0, "text": text.unwrap_or(""), "finish_reason": finish, "logprobs": null})
            }
        }
    }
}

/// A running generation: the ticket keeps its place in the queue until the
/// response (or the stream) is dropped.
struct Running {
    events: mpsc::UnboundedReceiver<GenerationEvent>,
    _ticket: Ticket,
    _served: Arc<Served>,
    started: Instant,
    first_seen: bool,
    /// Until the generation ends (and the trace with it).
    traced: Option<Traced>,
}

impl Running {
    /// Ends the trace of a generation that failed.
    fn end_failed(&mut self, model: &str) {
        if let Some(traced) = self.traced.take() {
            traced.failed(model);
        }
    }

    /// Counts the first token once: time to first token, and the trace's
    /// cut between prefill and decode.
    fn saw_text(&mut self, runtime: &Runtime) {
        if !self.first_seen {
            self.first_seen = true;
            runtime
                .metrics()
                .observe_first_token(self.started.elapsed());
            if let Some(traced) = &mut self.traced {
                traced.first_token();
            }
        }
    }
}

async fn generate(
    runtime: &Arc<Runtime>,
    served: Arc<Served>,
    (prompt, params): (String, SamplingParams),
    (kind, stream, include_usage): (Kind, bool, bool),
    traced: Traced,
) -> Result<Response, ApiError> {
    let Engine::Generation(generator) = &served.engine else {
        return Err(ApiError::invalid(D, "this model does not generate text"));
    };
    let ticket = served.admit().ok_or_else(|| ApiError::overloaded(D))?;
    let (tx, rx) = mpsc::unbounded_channel();
    generator
        .submit(GenerationRequest { prompt, params }, tx)
        .map_err(|e| {
            ApiError::from_inference(D, e).param(if kind == Kind::Chat {
                "messages"
            } else {
                "prompt"
            })
        })?;
    let running = Running {
        events: rx,
        _ticket: ticket,
        _served: served.clone(),
        started: Instant::now(),
        first_seen: false,
        traced: Some(traced),
    };
    let id = format!(
        "{}-{}",
        if kind == Kind::Chat {
            "chatcmpl"
        } else {
            "cmpl"
        },
        uuid::Uuid::new_v4().simple()
    );
    let model = runtime.config().name.clone();
    if stream {
        let sse = stream_events(runtime.clone(), running, id, model, kind, include_usage);
        return Ok(Sse::new(sse).into_response());
    }
    collect(runtime, running, id, model, kind).await
}

async fn collect(
    runtime: &Arc<Runtime>,
    mut running: Running,
    id: String,
    model: String,
    kind: Kind,
) -> Result<Response, ApiError> {
    let mut text = String::new();
    loop {
        match running.events.recv().await {
            Some(GenerationEvent::Text(piece)) => {
                running.saw_text(runtime);
                text.push_str(&piece);
            }
            Some(GenerationEvent::Done {
                prompt_tokens,
                cached_tokens,
                completion_tokens,
                queue_wait,
                finish_reason,
            }) => {
                let usage = TokenUsage {
                    prompt_tokens,
                    cached_tokens,
                    completion_tokens,
                };
                runtime.metrics().observe_generation(&usage);
                runtime
                    .metrics()
                    .observe_inference("generation", running.started.elapsed());
                if let Some(traced) = running.traced.take() {
                    traced.done(&model, &usage, queue_wait);
                }
                let body = json!({
                    "id": id, "object": kind.object(false), "created": unix_now(), "model": model,
                    "choices": [kind.choice(Some(&text), Some(finish_reason), true, false)],
                    "usage": usage.openai(),
                });
                return Ok(Json(body).into_response());
            }
            Some(GenerationEvent::Failed(e)) => {
                running.end_failed(&model);
                return Err(ApiError::from_inference(D, e));
            }
            None => {
                running.end_failed(&model);
                return Err(ApiError::from_inference(
                    D,
                    autoglm_inference::InferenceError::Engine(
                        "generation ended without an answer".into(),
                    ),
                ));
            }
        }
    }
}

/// A failure after the stream started, as OpenAI sends one: an event whose
/// data is the usual error object, and no `[DONE]` after it (clients raise it).
fn failure(error: autoglm_inference::InferenceError) -> Event {
    let error = ApiError::from_inference(D, error);
    let kind = if error.status.is_client_error() {
        "invalid_request_error"
    } else {
        "server_error"
    };
    let body = json!({"error": {"message": error.message, "type": kind, "param": null, "code": error.code}});
    Event::default().data(body.to_string())
}

/// Streams the generation as server-sent events. A forwarding task owns the
/// generation; when the client goes away its channel closes, the task ends
/// and drops the engine's receiver, which stops the sequence at its next token.
fn stream_events(
    runtime: Arc<Runtime>,
    running: Running,
    id: String,
    model: String,
    kind: Kind,
    include_usage: bool,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let created = unix_now();
    let traced_model = model.clone();
    let chunk = move |choices: Vec<Value>, usage: Option<Value>| {
        let mut body = json!({"id": id, "object": kind.object(true), "created": created, "model": model, "choices": choices});
        if let Some(u) = usage {
            body["usage"] = u;
        }
        Event::default().data(body.to_string())
    };
    let (out, rx) = mpsc::channel::<Event>(16);
    tokio::spawn(async move {
        // Move all of `running` in: its ticket and served version must live
        // as long as the stream, not just the fields the loop touches.
        let mut running = running;
        let mut first = true;
        while let Some(event) = running.events.recv().await {
            let events = match event {
                GenerationEvent::Text(piece) => {
                    running.saw_text(&runtime);
                    vec![chunk(
                        vec![kind.choice(Some(&piece), None, first, true)],
                        None,
                    )]
                }
                GenerationEvent::Done {
                    prompt_tokens,
                    cached_tokens,
                    completion_tokens,
                    queue_wait,
                    finish_reason,
                } => {
                    let usage = TokenUsage {
                        prompt_tokens,
                        cached_tokens,
                        completion_tokens,
                    };
                    runtime.metrics().observe_generation(&usage);
                    runtime
                        .metrics()
                        .observe_inference("generation", running.started.elapsed());
                    if let Some(traced) = running.traced.take() {
                        traced.done(&traced_model, &usage, queue_wait);
                    }
                    let mut closing = vec![chunk(
                        vec![kind.choice(None, Some(finish_reason), first, true)],
                        None,
                    )];
                    if include_usage {
                        closing.push(chunk(Vec::new(), Some(usage.openai())));
                    }
                    closing.push(Event::default().data("[DONE]"));
                    closing
                }
                GenerationEvent::Failed(e) => {
                    running.end_failed(&traced_model);
                    vec![failure(e)]
                }
            };
            first = false;
            for event in events {
                if out.send(event).await.is_err() {
                    return;
                }
            }
        }
        // The engine let go of the generation without saying how it ended
        // (its thread died): a stream that just stopped would read as a
        // short answer, so it ends in an error like any other failure.
        if running.traced.is_some() {
            running.end_failed(&traced_model);
            let lost = autoglm_inference::InferenceError::Engine(
                "generation ended without an answer".into(),
            );
            let _ = out.send(failure(lost)).await;
        }
    });
    futures_util::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
    )
}
