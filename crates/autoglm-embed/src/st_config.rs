//! The sentence-transformers files around a BERT checkpoint: `modules.json`
//! (the pipeline), the pooling module's `config.json` and
//! `sentence_bert_config.json`. Only the pipelines this engine reproduces
//! exactly are accepted; anything else is refused at load rather than
//! served with vectors that differ from the model's own.

use std::path::{Path, PathBuf};

use autoglm_inference::InferenceError;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// One way of turning token states into a sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pooling {
    /// The first token's state (`[CLS]`).
    Cls,
    /// Element-wise maximum over the real tokens.
    Max,
    /// Average over the real tokens.
    Mean,
    /// Sum over the real tokens divided by the square root of their count.
    MeanSqrtLen,
}

/// What the sentence-transformers pipeline asks of the engine.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pipeline {
    /// Folder of the transformer module: `config.json`, weights, tokenizer.
    pub transformer_dir: PathBuf,
    /// Pooling modes, in the order sentence-transformers concatenates them.
    pub pooling: Vec<Pooling>,
    /// The token-state width the pooling module was configured for.
    pub pooling_dimension: Option<usize>,
    /// Whether a `Normalize` module follows pooling.
    pub normalize: bool,
    /// `max_seq_length`, when the model declares one.
    pub max_seq_length: Option<usize>,
}

#[derive(Deserialize)]
struct ModuleEntry {
    #[serde(default)]
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

// Unknown pooling flags are kept as errors below, not ignored: a mode we do
// not implement silently dropped would change the vectors.
#[derive(Deserialize)]
struct PoolingConfig {
    word_embedding_dimension: Option<usize>,
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
    #[serde(default)]
    pooling_mode_weightedmean_tokens: bool,
    #[serde(default)]
    pooling_mode_lasttoken: bool,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

/// An error about the model folder itself: the request to load it was wrong.
pub(crate) fn bad_model(message: impl Into<String>) -> InferenceError {
    InferenceError::InvalidInput(message.into())
}

/// Reads `path` as JSON, naming the file in any error.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, InferenceError> {
    let text = std::fs::read_to_string(path).map_err(|e| io_error(path, &e))?;
    serde_json::from_str(&text).map_err(|e| bad_model(format!("{}: {e}", path.display())))
}

/// A missing or unreadable file is the folder's fault; other IO failures are the machine's.
pub(crate) fn io_error(path: &Path, e: &std::io::Error) -> InferenceError {
    let message = format!("{}: {e}", path.display());
    match e.kind() {
        std::io::ErrorKind::NotFound
        | std::io::ErrorKind::PermissionDenied
        | std::io::ErrorKind::InvalidData => bad_model(message),
        _ => InferenceError::Engine(message),
    }
}

/// Reads the pipeline of the model in `dir`. Whether `pooling_dimension`
/// matches the transformer's width is for the caller to check.
pub(crate) fn read_pipeline(dir: &Path) -> Result<Pipeline, InferenceError> {
    let modules_path = dir.join("modules.json");
    if !modules_path.exists() {
        // What sentence-transformers itself does with a bare transformer
        // checkpoint: mean pooling, no normalisation.
        tracing::warn!(dir = %dir.display(), "no modules.json; using mean pooling without normalisation");
        return Ok(Pipeline {
            transformer_dir: dir.to_path_buf(),
            pooling: vec![Pooling::Mean],
            pooling_dimension: None,
            normalize: false,
            max_seq_length: read_max_seq_length(dir)?,
        });
    }
    let modules: Vec<ModuleEntry> = read_json(&modules_path)?;
    let mut transformer_dir = None;
    let mut pooling = None;
    let mut normalize = false;
    for module in &modules {
        // Older releases spell the type with the submodule
        // (`sentence_transformers.models.Pooling.Pooling` and the like).
        let kind = module
            .kind
            .rsplit('.')
            .find(|part| !part.is_empty())
            .unwrap_or_default();
        match kind {
            "Transformer" if transformer_dir.is_none() && pooling.is_none() => {
                transformer_dir = Some(dir.join(&module.path));
            }
            "Pooling" if transformer_dir.is_some() && pooling.is_none() => {
                pooling = Some(read_pooling(&dir.join(&module.path).join("config.json"))?);
            }
            "Normalize" if pooling.is_some() && !normalize => normalize = true,
            _ => {
                return Err(bad_model(format!(
                    "{}: module {} is not supported here (this engine runs Transformer, Pooling, then optionally Normalize)",
                    modules_path.display(),
                    module.kind
                )));
            }
        }
    }
    let (Some(transformer_dir), Some((pooling, pooling_dimension))) = (transformer_dir, pooling)
    else {
        return Err(bad_model(format!(
            "{}: a Transformer module followed by a Pooling module is required",
            modules_path.display()
        )));
    };
    let max_seq_length = read_max_seq_length(&transformer_dir)?;
    Ok(Pipeline {
        transformer_dir,
        pooling,
        pooling_dimension,
        normalize,
        max_seq_length,
    })
}

fn read_max_seq_length(dir: &Path) -> Result<Option<usize>, InferenceError> {
    let path = dir.join("sentence_bert_config.json");
    if !path.exists() {
        return Ok(None);
    }
    let config: SentenceBertConfig = read_json(&path)?;
    Ok(config.max_seq_length)
}

fn read_pooling(path: &Path) -> Result<(Vec<Pooling>, Option<usize>), InferenceError> {
    let config: PoolingConfig = read_json(path)?;
    if config.pooling_mode_weightedmean_tokens || config.pooling_mode_lasttoken {
        return Err(bad_model(format!(
            "{}: weighted-mean and last-token pooling are not supported (only cls, max, mean, mean_sqrt_len)",
            path.display()
        )));
    }
    // sentence-transformers concatenates the chosen modes in this order.
    let modes = [
        (config.pooling_mode_cls_token, Pooling::Cls),
        (config.pooling_mode_max_tokens, Pooling::Max),
        (config.pooling_mode_mean_tokens, Pooling::Mean),
        (
            config.pooling_mode_mean_sqrt_len_tokens,
            Pooling::MeanSqrtLen,
        ),
    ];
    let pooling: Vec<Pooling> = modes
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, mode)| *mode)
        .collect();
    if pooling.is_empty() {
        return Err(bad_model(format!(
            "{}: no pooling mode is enabled",
            path.display()
        )));
    }
    Ok((pooling, config.word_embedding_dimension))
}
