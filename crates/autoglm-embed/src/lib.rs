//! Sentence embeddings with candle: BERT-family sentence-transformers models
//! (a folder with `config.json`, `model.safetensors`, `tokenizer.json`,
//! `modules.json` and the pooling config) on the CPU, behind
//! [`autoglm_inference::Embedder`].
//!
//! A batch is padded to its longest input and runs as one forward pass; the
//! attention mask keeps padding out of both attention and pooling, so a
//! sentence gets the same vector alone or in any batch. Inputs longer than
//! the model's `max_seq_length` are refused, never truncated.
//!
//! The model is read-only after [`BertEmbedder::load`]; `embed` takes `&self`
//! and may run on several threads at once (candle spreads each matrix
//! product over the CPU's cores as well).

mod st_config;

use std::fmt;
use std::path::Path;
use std::time::Instant;

use autoglm_inference::{Embedder, Embeddings, InferenceError};
use candle_core::{D, DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{Encoding, Tokenizer};

use st_config::{Pooling, bad_model, io_error, read_json, read_pipeline};

/// A BERT sentence-transformers model loaded for embedding.
pub struct BertEmbedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    pooling: Vec<Pooling>,
    normalize: bool,
    hidden_size: usize,
    max_tokens: usize,
    pad_id: u32,
}

impl fmt::Debug for BertEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BertEmbedder")
            .field("pooling", &self.pooling)
            .field("normalize", &self.normalize)
            .field("hidden_size", &self.hidden_size)
            .field("max_tokens", &self.max_tokens)
            .finish_non_exhaustive()
    }
}

fn engine(e: impl fmt::Display) -> InferenceError {
    InferenceError::Engine(e.to_string())
}

impl BertEmbedder {
    /// Loads the model in `dir`.
    ///
    /// # Errors
    /// [`InferenceError::InvalidInput`] when the folder is not a model this
    /// engine can run (missing or malformed files, weights that do not fit
    /// `config.json`, a pipeline with modules other than Transformer,
    /// Pooling and Normalize); [`InferenceError::Engine`] when reading fails
    /// for reasons of the machine.
    pub fn load(dir: &Path) -> Result<BertEmbedder, InferenceError> {
        let started = Instant::now();
        tracing::info!(dir = %dir.display(), "loading embedding model");
        let pipeline = read_pipeline(dir)?;
        let model_dir = &pipeline.transformer_dir;

        let config_path = model_dir.join("config.json");
        let config: Config = read_json(&config_path)?;
        if let Some(pooled) = pipeline.pooling_dimension
            && pooled != config.hidden_size
        {
            return Err(bad_model(format!(
                "the pooling config expects {pooled}-wide token states but {} says hidden_size {}",
                config_path.display(),
                config.hidden_size
            )));
        }
        // Positions past max_position_embeddings have no embedding, so a
        // larger max_seq_length could not run anyway.
        let max_tokens = pipeline
            .max_seq_length
            .map_or(config.max_position_embeddings, |m| {
                m.min(config.max_position_embeddings)
            });

        let tokenizer_path = model_dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| bad_model(format!("{}: {e}", tokenizer_path.display())))?;
        // tokenizer.json files commonly carry truncation (all-MiniLM-L6-v2:
        // 128) and fixed padding; both would hide too-long inputs and waste
        // work, and this engine pads batches itself.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| bad_model(format!("{}: {e}", tokenizer_path.display())))?;

        let device = Device::Cpu;
        let weights_path = model_dir.join("model.safetensors");
        // Read into memory rather than mmap: mmap needs unsafe, and the
        // buffer is dropped once the weights are copied into tensors.
        let weights = std::fs::read(&weights_path).map_err(|e| io_error(&weights_path, &e))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
            .map_err(|e| bad_model(format!("{}: {e}", weights_path.display())))?;
        let model = BertModel::load(vb, &config).map_err(|e| {
            bad_model(format!(
                "{} does not fit {}: {e}",
                weights_path.display(),
                config_path.display()
            ))
        })?;

        let pad_id = u32::try_from(config.pad_token_id).map_err(engine)?;
        let embedder = BertEmbedder {
            model,
            tokenizer,
            device,
            pooling: pipeline.pooling,
            normalize: pipeline.normalize,
            hidden_size: config.hidden_size,
            max_tokens,
            pad_id,
        };
        tracing::info!(
            dir = %dir.display(),
            elapsed_ms = started.elapsed().as_millis(),
            dimensions = embedder.dimensions(),
            max_tokens,
            pooling = ?embedder.pooling,
            normalize = embedder.normalize,
            "loaded embedding model"
        );
        Ok(embedder)
    }

    /// The model's last hidden state for each token of `text` (with `[CLS]`
    /// and `[SEP]`), before pooling.
    ///
    /// # Errors
    /// As [`Embedder::embed`] for one input.
    pub fn token_states(&self, text: &str) -> Result<Vec<Vec<f32>>, InferenceError> {
        let encodings = self.encode(std::slice::from_ref(&text))?;
        let (states, _) = self.forward(&encodings)?;
        states
            .squeeze(0)
            .and_then(|s| s.to_vec2::<f32>())
            .map_err(engine)
    }

    /// Tokenizes every input, refusing empty and too-long ones.
    fn encode<S: AsRef<str>>(&self, inputs: &[S]) -> Result<Vec<Encoding>, InferenceError> {
        if inputs.is_empty() {
            return Err(InferenceError::InvalidInput("no inputs to embed".into()));
        }
        inputs
            .iter()
            .enumerate()
            .map(|(i, input)| {
                let encoding = self
                    .tokenizer
                    .encode_fast(input.as_ref(), true)
                    .map_err(engine)?;
                // Whitespace alone also encodes to nothing but [CLS] [SEP]:
                // its vector would say nothing about the input.
                if encoding
                    .get_special_tokens_mask()
                    .iter()
                    .all(|&special| special == 1)
                {
                    return Err(InferenceError::InvalidInput(format!("input {i} is empty")));
                }
                if encoding.len() > self.max_tokens {
                    return Err(InferenceError::TooLong {
                        tokens: encoding.len(),
                        limit: self.max_tokens,
                    });
                }
                Ok(encoding)
            })
            .collect()
    }

    /// One forward pass over the batch padded to its longest input: the last
    /// hidden state `(batch, len, hidden)` and the attention mask `(batch, len)`.
    fn forward(&self, encodings: &[Encoding]) -> Result<(Tensor, Tensor), InferenceError> {
        let batch = encodings.len();
        let len = encodings.iter().map(Encoding::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(batch * len);
        let mut type_ids = Vec::with_capacity(batch * len);
        let mut mask = Vec::with_capacity(batch * len);
        for encoding in encodings {
            let padding = len - encoding.len();
            ids.extend_from_slice(encoding.get_ids());
            ids.extend(std::iter::repeat_n(self.pad_id, padding));
            type_ids.extend_from_slice(encoding.get_type_ids());
            type_ids.extend(std::iter::repeat_n(0, padding));
            mask.extend(std::iter::repeat_n(1u32, encoding.len()));
            mask.extend(std::iter::repeat_n(0u32, padding));
        }
        let run = || -> candle_core::Result<(Tensor, Tensor)> {
            let ids = Tensor::from_vec(ids, (batch, len), &self.device)?;
            let type_ids = Tensor::from_vec(type_ids, (batch, len), &self.device)?;
            let mask = Tensor::from_vec(mask, (batch, len), &self.device)?;
            let states = self.model.forward(&ids, &type_ids, Some(&mask))?;
            Ok((states, mask))
        };
        run().map_err(engine)
    }

    /// Pools `(batch, len, hidden)` states into `(batch, dimensions)` vectors.
    fn pool(&self, states: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let counts = mask.sum(1)?;
        let mut parts = Vec::with_capacity(self.pooling.len());
        for mode in &self.pooling {
            let part = match mode {
                Pooling::Cls => states.narrow(1, 0, 1)?.squeeze(1)?,
                Pooling::Max => {
                    // As sentence-transformers does: padding set to -1e9
                    // can never be the maximum.
                    let offset = ((&mask - 1.0)? * 1e9)?;
                    states.broadcast_add(&offset)?.max(1)?
                }
                Pooling::Mean => states
                    .broadcast_mul(&mask)?
                    .sum(1)?
                    .broadcast_div(&counts)?,
                Pooling::MeanSqrtLen => states
                    .broadcast_mul(&mask)?
                    .sum(1)?
                    .broadcast_div(&counts.sqrt()?)?,
            };
            parts.push(part);
        }
        let pooled = Tensor::cat(&parts, 1)?;
        if !self.normalize {
            return Ok(pooled);
        }
        // torch's F.normalize clamps the norm at 1e-12 the same way.
        let norms = pooled
            .sqr()?
            .sum_keepdim(D::Minus1)?
            .sqrt()?
            .clamp(1e-12, f32::MAX)?;
        pooled.broadcast_div(&norms)
    }
}

impl Embedder for BertEmbedder {
    fn dimensions(&self) -> usize {
        self.hidden_size * self.pooling.len()
    }

    fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    fn embed(&self, inputs: &[String]) -> Result<Embeddings, InferenceError> {
        let started = Instant::now();
        let encodings = self.encode(inputs)?;
        let (states, mask) = self.forward(&encodings)?;
        let vectors = self
            .pool(&states, &mask)
            .and_then(|v| v.to_vec2::<f32>())
            .map_err(engine)?;
        let tokens: Vec<usize> = encodings.iter().map(Encoding::len).collect();
        tracing::debug!(
            batch = inputs.len(),
            padded_len = tokens.iter().max().copied().unwrap_or(0),
            elapsed_ms = started.elapsed().as_millis(),
            "embedded batch"
        );
        Ok(Embeddings { vectors, tokens })
    }
}
