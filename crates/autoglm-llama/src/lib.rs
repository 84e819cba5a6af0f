//! Text generation on GGUF llama-family models with llama.cpp (through the
//! `llama-cpp-2` bindings), implementing [`autoglm_inference::Generator`].
//!
//! One model and one llama.cpp context serve every request: a scheduler
//! thread owns the context and decodes up to [`LlamaOptions::max_sequences`]
//! sequences together, one token each per `llama_decode`, admitting new
//! sequences between steps (continuous batching). The KV cache holds
//! `max_sequences × context_per_sequence` cells, one stream per sequence.
//!
//! ```no_run
//! use autoglm_inference::{ChatMessage, GenerationRequest, Generator, SamplingParams};
//! use autoglm_llama::{LlamaGenerator, LlamaOptions};
//!
//! let generator = LlamaGenerator::load("model.gguf".as_ref(), LlamaOptions::default())?;
//! let prompt = generator.render_chat(&[ChatMessage { role: "user".into(), content: "Hi".into() }])?;
//! let params = SamplingParams { temperature: 0.0, top_p: 1.0, top_k: 0, seed: None, max_tokens: 32, stop: vec![] };
//! let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
//! generator.submit(GenerationRequest { prompt, params }, events)?;
//! while let Some(event) = received.blocking_recv() {
//!     println!("{event:?}");
//! }
//! # Ok::<(), autoglm_inference::InferenceError>(())
//! ```

mod scheduler;
mod text;
pub mod validate;

use std::fmt;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Instant;

use autoglm_inference::{
    ChatMessage, GenerationEvent, GenerationRequest, Generator, GeneratorInfo, InferenceError,
    Result,
};
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::{LogOptions, send_logs_to_tracing};
use tokio::sync::mpsc::UnboundedSender;

use scheduler::{ContextConfig, Job, Shared};

/// How a [`LlamaGenerator`] is sized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlamaOptions {
    /// Sequences decoded together; further requests queue.
    pub max_sequences: usize,
    /// Tokens each sequence may hold, prompt and completion together; capped
    /// at the model's training context.
    pub context_per_sequence: usize,
    /// Threads llama.cpp computes with.
    pub threads: usize,
    /// Most prompt tokens evaluated in one step, shared by the sequences
    /// being prefilled: bounds how long one step can delay the others.
    pub prefill_chunk: usize,
}

impl Default for LlamaOptions {
    fn default() -> Self {
        Self {
            max_sequences: 8,
            context_per_sequence: 2048,
            threads: default_threads(),
            prefill_chunk: 512,
        }
    }
}

/// Physical cores, within what the process may use: llama.cpp's matrix
/// kernels gain nothing from hyper-threads and lose from oversubscription.
fn default_threads() -> usize {
    let allowed = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    num_cpus::get_physical().clamp(1, allowed)
}

/// The process-wide llama.cpp backend, initialised once with its logs
/// routed to `tracing` instead of stderr.
pub(crate) fn backend() -> &'static LlamaBackend {
    static BACKEND: OnceLock<LlamaBackend> = OnceLock::new();
    BACKEND.get_or_init(|| {
        send_logs_to_tracing(LogOptions::default());
        // Another library in the process may have initialised it already;
        // the backend value is only proof of initialisation, so make our own.
        LlamaBackend::init().unwrap_or(LlamaBackend {})
    })
}

/// A GGUF model served by one llama.cpp context with continuous batching.
pub struct LlamaGenerator {
    model: Arc<LlamaModel>,
    template: Option<LlamaChatTemplate>,
    info: GeneratorInfo,
    shared: Arc<Shared>,
    scheduler: Option<JoinHandle<()>>,
}

impl fmt::Debug for LlamaGenerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlamaGenerator")
            .field("info", &self.info)
            .field("active_sequences", &self.active_sequences())
            .finish_non_exhaustive()
    }
}

fn engine(context: &str, error: impl fmt::Display) -> InferenceError {
    InferenceError::Engine(format!("{context}: {error}"))
}

impl LlamaGenerator {
    /// Loads the GGUF file at `path` and starts the scheduler thread.
    ///
    /// # Errors
    /// [`InferenceError::InvalidInput`] for unusable options,
    /// [`InferenceError::Engine`] when llama.cpp cannot load the file or
    /// create the context.
    pub fn load(path: &Path, options: LlamaOptions) -> Result<LlamaGenerator> {
        if options.max_sequences == 0 || options.context_per_sequence == 0 || options.threads == 0 {
            return Err(InferenceError::InvalidInput(
                "max_sequences, context_per_sequence and threads must be at least 1".into(),
            ));
        }
        if options.prefill_chunk == 0 {
            return Err(InferenceError::InvalidInput(
                "prefill_chunk must be at least 1".into(),
            ));
        }
        let started = Instant::now();
        let size = std::fs::metadata(path)
            .map_err(|e| engine(&format!("cannot read {}", path.display()), e))?
            .len();
        tracing::info!(path = %path.display(), bytes = size, "loading GGUF model");

        let mut last_quarter = 0;
        let params = LlamaModelParams::default().with_progress_callback(move |progress| {
            // Quarter steps: enough to see a big file moving, not a flood.
            let quarter = (progress * 4.0) as u32;
            if quarter > last_quarter {
                last_quarter = quarter;
                tracing::debug!(percent = quarter * 25, "loading GGUF model");
            }
            true
        });
        let model = LlamaModel::load_from_file(backend(), path, &params)
            .map_err(|e| engine(&format!("cannot load {}", path.display()), e))?;
        let model = Arc::new(model);

        let architecture = model
            .meta_val_str("general.architecture")
            .unwrap_or_else(|_| "unknown".into());
        let trained = usize::try_from(model.n_ctx_train()).unwrap_or(usize::MAX);
        let context_per_sequence = options.context_per_sequence.min(trained.max(1));
        // Templates llama.cpp cannot apply are refused at render time; a
        // missing one only means the model cannot chat.
        let template = model.chat_template(None).ok();

        let config = ContextConfig {
            max_sequences: options.max_sequences,
            context_per_sequence,
            threads: options.threads,
            prefill_chunk: options.prefill_chunk,
        };
        let shared = Arc::new(Shared::default());
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let scheduler = std::thread::Builder::new()
            .name("llama-scheduler".into())
            .spawn({
                let model = Arc::clone(&model);
                let shared = Arc::clone(&shared);
                move || scheduler::run(model, config, shared, ready_tx)
            })
            .map_err(|e| engine("cannot start the scheduler thread", e))?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(why)) => {
                let _ = scheduler.join();
                return Err(InferenceError::Engine(why));
            }
            Err(_) => {
                let _ = scheduler.join();
                return Err(InferenceError::Engine(
                    "the scheduler thread died while starting".into(),
                ));
            }
        }

        tracing::info!(
            path = %path.display(),
            %architecture,
            n_params = model.n_params(),
            context_per_sequence,
            trained_context = trained,
            max_sequences = options.max_sequences,
            threads = options.threads,
            chat_template = template.is_some(),
            elapsed_ms = started.elapsed().as_millis(),
            "GGUF model loaded"
        );
        Ok(LlamaGenerator {
            model,
            template,
            info: GeneratorInfo {
                context_length: context_per_sequence,
                architecture,
                max_sequences: options.max_sequences,
            },
            shared,
            scheduler: Some(scheduler),
        })
    }

    /// Requests accepted and not yet finished: decoding or queued for a slot.
    /// A request whose receiver was dropped leaves this count at the next step.
    pub fn active_sequences(&self) -> usize {
        self.shared.unfinished()
    }

    /// Tokens as the prompt is evaluated: BOS added as the model wants, and
    /// special-token text (`<|im_start|>`) read as those tokens, since the
    /// rendered chat template contains them.
    fn tokenize(&self, text: &str) -> Vec<LlamaToken> {
        self.model.vocab().tokenize(text.as_bytes(), true, true)
    }
}

impl Drop for LlamaGenerator {
    fn drop(&mut self) {
        self.shared.close();
        if let Some(scheduler) = self.scheduler.take() {
            // The thread fails what it still holds before ending; it only
            // panics on a bug, already logged, and drop must not re-panic.
            let _ = scheduler.join();
        }
    }
}

impl Generator for LlamaGenerator {
    fn info(&self) -> GeneratorInfo {
        self.info.clone()
    }

    fn render_chat(&self, messages: &[ChatMessage]) -> Result<String> {
        validate::chat(messages)?;
        let Some(template) = &self.template else {
            return Err(InferenceError::InvalidInput(
                "this model has no chat template".into(),
            ));
        };
        let chat = messages
            .iter()
            .map(|m| LlamaChatMessage::new(m.role.clone(), m.content.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| InferenceError::InvalidInput(e.to_string()))?;
        self.model
            .apply_chat_template(template, &chat, true)
            .map_err(|e| engine("cannot apply the model's chat template", e))
    }

    fn count_tokens(&self, text: &str) -> Result<usize> {
        Ok(self.tokenize(text).len())
    }

    fn submit(
        &self,
        request: GenerationRequest,
        events: UnboundedSender<GenerationEvent>,
    ) -> Result<()> {
        validate::sampling(&request.params)?;
        if request.prompt.is_empty() {
            return Err(InferenceError::InvalidInput("the prompt is empty".into()));
        }
        let prompt = self.tokenize(&request.prompt);
        if prompt.is_empty() {
            return Err(InferenceError::InvalidInput(
                "the prompt encodes to no tokens".into(),
            ));
        }
        let max_tokens = usize::try_from(request.params.max_tokens).unwrap_or(usize::MAX);
        let tokens = prompt.len().saturating_add(max_tokens);
        let limit = self.info.context_length;
        if tokens > limit {
            return Err(InferenceError::TooLong { tokens, limit });
        }
        self.shared.enqueue(Job {
            prompt,
            params: request.params,
            events,
            queued_at: std::time::Instant::now(),
        })
    }
}
