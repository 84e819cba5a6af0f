//! Helpers shared by the integration tests: the real SmolLM2 model, and a
//! way to run one request to its end.

#![allow(clippy::unwrap_used, dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use autoglm_inference::{
    ChatMessage, FinishReason, GenerationEvent, GenerationRequest, Generator, SamplingParams,
};
use autoglm_llama::{LlamaGenerator, LlamaOptions};
use tokio::sync::mpsc::UnboundedReceiver;

pub fn model_path() -> PathBuf {
    autoglm_testmodels::file(autoglm_testmodels::SMOLLM2, "gguf")
}

/// One compute thread per generator: tests run side by side, each with its
/// own generator, and llama.cpp's thread barriers stall badly when its
/// threads outnumber the free cores.
pub const THREADS: usize = 1;

pub fn load(max_sequences: usize, context_per_sequence: usize) -> LlamaGenerator {
    let options = LlamaOptions {
        max_sequences,
        context_per_sequence,
        threads: THREADS,
        ..LlamaOptions::default()
    };
    LlamaGenerator::load(&model_path(), options).unwrap()
}

pub fn user(content: &str) -> Vec<ChatMessage> {
    vec![ChatMessage {
        role: "user".into(),
        content: content.into(),
    }]
}

pub fn greedy(max_tokens: u32) -> SamplingParams {
    SamplingParams {
        temperature: 0.0,
        top_p: 1.0,
        top_k: 0,
        seed: None,
        max_tokens,
        stop: vec![],
    }
}

/// What one request produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub text: String,
    pub pieces: usize,
    pub prompt_tokens: usize,
    pub cached_tokens: usize,
    pub completion_tokens: usize,
    pub finish_reason: FinishReason,
}

/// Equal output; how much of the prompt was cached depends on what ran
/// before, and the tests that care assert it themselves.
impl PartialEq for Outcome {
    fn eq(&self, other: &Outcome) -> bool {
        (
            &self.text,
            self.pieces,
            self.prompt_tokens,
            self.completion_tokens,
            self.finish_reason,
        ) == (
            &other.text,
            other.pieces,
            other.prompt_tokens,
            other.completion_tokens,
            other.finish_reason,
        )
    }
}

pub fn submit(
    generator: &LlamaGenerator,
    chat: &str,
    params: SamplingParams,
) -> UnboundedReceiver<GenerationEvent> {
    let prompt = generator.render_chat(&user(chat)).unwrap();
    let (events, received) = tokio::sync::mpsc::unbounded_channel();
    generator
        .submit(GenerationRequest { prompt, params }, events)
        .unwrap();
    received
}

/// Reads events to `Done`, checking their order; fails the test on
/// `Failed`, on a closed channel, or after two minutes.
pub fn collect(mut received: UnboundedReceiver<GenerationEvent>) -> Outcome {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut text = String::new();
    let mut pieces = 0;
    loop {
        match received.try_recv() {
            Ok(GenerationEvent::Text(piece)) => {
                assert!(!piece.is_empty(), "empty text events are noise");
                text.push_str(&piece);
                pieces += 1;
            }
            Ok(GenerationEvent::Done {
                prompt_tokens,
                cached_tokens,
                completion_tokens,
                finish_reason,
                ..
            }) => {
                assert!(received.try_recv().is_err(), "nothing may follow Done");
                return Outcome {
                    text,
                    pieces,
                    prompt_tokens,
                    cached_tokens,
                    completion_tokens,
                    finish_reason,
                };
            }
            Ok(GenerationEvent::Failed(error)) => panic!("generation failed: {error}"),
            Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                panic!("events ended without Done")
            }
            Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                assert!(
                    Instant::now() < deadline,
                    "generation took over two minutes"
                );
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

pub fn generate(generator: &LlamaGenerator, chat: &str, params: SamplingParams) -> Outcome {
    collect(submit(generator, chat, params))
}

/// Waits up to `limit` for `condition`.
pub fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    condition()
}
