//! The engines the runtime ships with, chosen by what the model's files are.

use std::path::Path;
use std::sync::Arc;

use autoglm_inference::InferenceError;

use crate::Engine;
use crate::detect::{ModelKind, detect};

/// Engine settings the runtime passes through.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Sequences llama.cpp decodes together.
    pub max_sequences: usize,
    /// Context per sequence, in tokens.
    pub context_per_sequence: usize,
    /// CPU threads for llama.cpp.
    pub threads: usize,
}

/// Loads `path` with the engine its files call for.
pub fn load(path: &Path, options: &EngineOptions) -> Result<Engine, InferenceError> {
    match detect(path).map_err(|e| InferenceError::InvalidInput(e.to_string()))? {
        ModelKind::Embeddings(dir) => Ok(Engine::Embeddings(Arc::new(
            autoglm_embed::BertEmbedder::load(&dir)?,
        ))),
        ModelKind::Generation(file) => {
            let llama = autoglm_llama::LlamaOptions {
                max_sequences: options.max_sequences,
                context_per_sequence: options.context_per_sequence,
                threads: options.threads,
                ..Default::default()
            };
            Ok(Engine::Generation(Arc::new(
                autoglm_llama::LlamaGenerator::load(&file, llama)?,
            )))
        }
        ModelKind::Tensor(file) => Ok(Engine::Tensor(Arc::new(autoglm_onnx::OnnxModel::load(
            &file,
        )?))),
    }
}
