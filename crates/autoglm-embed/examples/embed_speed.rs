//! Embedding throughput on all-MiniLM-L6-v2 at batch 1, 4 and 16.
//!
//! `cargo run --release -p autoglm-embed --example embed_speed [MODEL_DIR]`

use std::path::PathBuf;
use std::time::{Duration, Instant};

use autoglm_embed::BertEmbedder;
use autoglm_inference::{Embedder, InferenceError};

const SENTENCES: [&str; 8] = [
    "A cat sits on the mat.",
    "The weather in the mountains changes quickly in spring.",
    "How do I reset my password?",
    "Embeddings map sentences to points in a vector space.",
    "He plays the guitar on stage every Friday night.",
    "The train to the airport leaves every fifteen minutes.",
    "Rust programs are fast and memory safe.",
    "She ordered a coffee and a slice of lemon cake.",
];

fn main() -> Result<(), InferenceError> {
    let dir = std::env::args_os().nth(1).map_or_else(
        || autoglm_testmodels::path(autoglm_testmodels::MINILM),
        PathBuf::from,
    );
    let started = Instant::now();
    let model = BertEmbedder::load(&dir)?;
    println!("loaded in {} ms", started.elapsed().as_millis());
    for batch in [1, 4, 16] {
        let inputs: Vec<String> = SENTENCES
            .iter()
            .cycle()
            .take(batch)
            .map(|s| (*s).to_owned())
            .collect();
        // The first pass pays for allocation and thread-pool start-up.
        model.embed(&inputs)?;
        let mut embedded = 0usize;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(3) {
            embedded += model.embed(&inputs)?.vectors.len();
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "batch {batch:>2}: {:.0} embeddings/s ({:.1} ms per batch)",
            embedded as f64 / seconds,
            seconds * 1000.0 * batch as f64 / embedded as f64
        );
    }
    Ok(())
}
