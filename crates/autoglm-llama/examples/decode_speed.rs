//! Measures single-stream decode speed and time to first token, then the
//! aggregate speed of 8 concurrent chat requests, on SmolLM2-135M (or the
//! GGUF given as the first argument). `THREADS` overrides the thread count.
//!
//! ```text
//! cargo run --release -p autoglm-llama --example decode_speed [model.gguf]
//! ```

use std::path::PathBuf;
use std::time::{Duration, Instant};

use autoglm_inference::{
    ChatMessage, GenerationEvent, GenerationRequest, Generator, InferenceError, SamplingParams,
};
use autoglm_llama::{LlamaGenerator, LlamaOptions};

const MAX_TOKENS: u32 = 128;

const PROMPTS: [&str; 8] = [
    "Write a long story about a dragon.",
    "Explain how a steam engine works, in detail.",
    "Describe a day in the life of a medieval baker.",
    "Write a poem about the sea and the moon.",
    "Give me ten tips for learning to cook.",
    "Explain the water cycle to a child.",
    "Describe the history of the bicycle.",
    "Write a letter to a friend about a trip to the mountains.",
];

/// Timing of one request.
struct Run {
    first_token: Duration,
    total: Duration,
    completion_tokens: usize,
}

fn run(generator: &LlamaGenerator, chat: &str) -> Result<Run, InferenceError> {
    let prompt = generator.render_chat(&[ChatMessage {
        role: "user".into(),
        content: chat.into(),
    }])?;
    // Sampled like a typical chat client, so that the answer is long.
    let params = SamplingParams {
        temperature: 0.7,
        top_p: 0.95,
        top_k: 40,
        seed: Some(1),
        max_tokens: MAX_TOKENS,
        stop: vec![],
    };
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
    let started = Instant::now();
    generator.submit(GenerationRequest { prompt, params }, events)?;
    let mut first_token = None;
    while let Some(event) = received.blocking_recv() {
        match event {
            GenerationEvent::Text(_) => {
                first_token.get_or_insert_with(|| started.elapsed());
            }
            GenerationEvent::Done {
                completion_tokens, ..
            } => {
                let total = started.elapsed();
                return Ok(Run {
                    first_token: first_token.unwrap_or(total),
                    total,
                    completion_tokens,
                });
            }
            GenerationEvent::Failed(error) => return Err(error),
        }
    }
    Err(InferenceError::Engine("events ended without Done".into()))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let path = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| autoglm_testmodels::file(autoglm_testmodels::SMOLLM2, "gguf"));
    let mut options = LlamaOptions::default();
    if let Some(threads) = std::env::var("THREADS").ok().and_then(|t| t.parse().ok()) {
        options.threads = threads;
    }
    println!("model {}, {options:?}", path.display());
    let generator = LlamaGenerator::load(&path, options)?;

    // Warm-up: first-touch of the weights and the compute buffers.
    run(&generator, "Hi")?;

    let mut rates = Vec::new();
    let mut ttfts = Vec::new();
    for chat in &PROMPTS[..3] {
        let r = run(&generator, chat)?;
        let decode = r.total.saturating_sub(r.first_token).as_secs_f64();
        let rate = r.completion_tokens.saturating_sub(1) as f64 / decode;
        println!(
            "single: {} tokens, ttft {:.1} ms, decode {rate:.1} tokens/s",
            r.completion_tokens,
            r.first_token.as_secs_f64() * 1e3
        );
        rates.push(rate);
        ttfts.push(r.first_token.as_secs_f64() * 1e3);
    }
    println!(
        "single-stream: decode {:.1} tokens/s, ttft {:.1} ms (mean of {})",
        rates.iter().sum::<f64>() / rates.len() as f64,
        ttfts.iter().sum::<f64>() / ttfts.len() as f64,
        rates.len()
    );

    let started = Instant::now();
    let runs: Vec<Run> = std::thread::scope(|scope| {
        let handles: Vec<_> = PROMPTS
            .iter()
            .map(|chat| scope.spawn(|| run(&generator, chat)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| InferenceError::Engine("panicked".into()))?
            })
            .collect::<Result<Vec<Run>, InferenceError>>()
    })?;
    let wall = started.elapsed().as_secs_f64();
    let tokens: usize = runs.iter().map(|r| r.completion_tokens).sum();
    let mean_ttft = runs
        .iter()
        .map(|r| r.first_token.as_secs_f64() * 1e3)
        .sum::<f64>()
        / runs.len() as f64;
    println!(
        "8 concurrent: {tokens} tokens in {wall:.2} s = {:.1} tokens/s aggregate, mean ttft {mean_ttft:.1} ms",
        tokens as f64 / wall
    );
    Ok(())
}
