//! The contract between the autoglm runtime (HTTP, batching, queues, hot
//! swap) and its engines (candle for embeddings, llama.cpp for generation,
//! tract for ONNX). Engines implement one of three traits; the runtime never
//! sees an engine's own types.
//!
//! **API Boundary:** engines are blocking and CPU-bound; the runtime calls
//! them from worker threads, never from the async executor.

pub mod tensor;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::mpsc::UnboundedSender;

pub use tensor::{DataType, Tensor, TensorData, TensorError, TensorSpec};

/// Why an engine refused or failed a request.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum InferenceError {
    /// The request is wrong (shape, datatype, empty input, bad parameter): a 4xx.
    #[error("{0}")]
    InvalidInput(String),
    /// The input does not fit the model's context: a 4xx.
    #[error("input has {tokens} tokens; the model's context holds {limit}")]
    TooLong {
        /// Tokens in the input (with what must be generated, for generation).
        tokens: usize,
        /// The model's limit.
        limit: usize,
    },
    /// The engine failed: a 5xx.
    #[error("engine failure: {0}")]
    Engine(String),
}

/// Result of engine calls.
pub type Result<T, E = InferenceError> = std::result::Result<T, E>;

/// Sentence embeddings.
pub trait Embedder: Send + Sync {
    /// Length of each vector.
    fn dimensions(&self) -> usize;
    /// Most tokens one input may have (longer inputs are refused, not truncated).
    fn max_tokens(&self) -> usize;
    /// Embeds a batch; vectors are pooled and normalised as the model's config says.
    fn embed(&self, inputs: &[String]) -> Result<Embeddings>;
}

/// A batch of embeddings.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// One vector per input, in order.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens per input, for usage accounting.
    pub tokens: Vec<usize>,
}

/// One message of a chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// How to pick tokens. `temperature == 0` is greedy and deterministic.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 for greedy, otherwise > 0 and <= 2.
    pub temperature: f32,
    /// Nucleus sampling, (0, 1].
    pub top_p: f32,
    /// 0 disables top-k.
    pub top_k: u32,
    /// Seed for reproducible sampling.
    pub seed: Option<u64>,
    /// Most tokens to generate.
    pub max_tokens: u32,
    /// Generation stops before any of these strings; they are not returned.
    pub stop: Vec<String>,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended its turn or a stop sequence matched.
    Stop,
    /// `max_tokens` was reached.
    Length,
}

/// A request to a generator: the prompt already rendered (chat template applied).
#[derive(Debug, Clone)]
pub struct GenerationRequest {
    /// The full prompt text.
    pub prompt: String,
    /// Sampling.
    pub params: SamplingParams,
}

/// What a generation reports, in order: text pieces, then one `Done` or `Failed`.
#[derive(Debug, Clone, PartialEq)]
pub enum GenerationEvent {
    /// Newly decoded text (whole UTF-8 characters; stop sequences held back until ruled out).
    Text(String),
    /// Finished.
    Done {
        /// Tokens in the prompt.
        prompt_tokens: usize,
        /// Of those, the leading ones the engine found in its cache and
        /// did not evaluate again.
        cached_tokens: usize,
        /// Tokens generated.
        completion_tokens: usize,
        /// How long it waited for a free sequence before its prompt was
        /// evaluated (a trace's queue span).
        queue_wait: std::time::Duration,
        /// Why it ended.
        finish_reason: FinishReason,
    },
    /// Failed after it started.
    Failed(InferenceError),
}

/// Facts about a generator.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorInfo {
    /// Context length in tokens.
    pub context_length: usize,
    /// e.g. `llama`.
    pub architecture: String,
    /// Sequences it decodes at once; more wait in the runtime's queue.
    pub max_sequences: usize,
}

/// Text generation. `submit` returns at once; events arrive on `events` from
/// the engine's own threads. When the receiver is dropped (the client went
/// away) the engine stops that sequence at its next token.
pub trait Generator: Send + Sync {
    /// Facts.
    fn info(&self) -> GeneratorInfo;
    /// Applies the model's chat template, with the assistant turn opened.
    fn render_chat(&self, messages: &[ChatMessage]) -> Result<String>;
    /// Number of tokens `text` encodes to (with the model's BOS if it adds one).
    fn count_tokens(&self, text: &str) -> Result<usize>;
    /// Starts a generation. Refuses at once what cannot run (too long, bad params).
    fn submit(
        &self,
        request: GenerationRequest,
        events: UnboundedSender<GenerationEvent>,
    ) -> Result<()>;
}

/// A model over typed tensors (classic ONNX models).
pub trait TensorModel: Send + Sync {
    /// Declared inputs.
    fn inputs(&self) -> &[TensorSpec];
    /// Declared outputs.
    fn outputs(&self) -> &[TensorSpec];
    /// Runs the model; inputs are checked against [`TensorModel::inputs`].
    fn infer(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>>;
}
