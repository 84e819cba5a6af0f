//! Wire types describing a stored artifact: its files, formats and digest.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A model file format autoglm recognises and checks on upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactFormat {
    /// Hugging Face safetensors: an 8-byte header length, a JSON header, raw tensor data.
    Safetensors,
    /// GGUF (llama.cpp): magic `GGUF`, version, tensor and metadata counts, typed metadata.
    Gguf,
    /// ONNX: a protobuf `ModelProto`.
    Onnx,
    /// Any other file (configs, tokenizers, READMEs): stored and digested, not interpreted.
    Other,
}

/// One file of an artifact, as recorded with its version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ArtifactFile {
    /// Path relative to the artifact root, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Lower-case hex sha256 of the file's bytes.
    pub sha256: String,
    /// The recognised format.
    pub format: ArtifactFormat,
    /// What the format check read from the file (tensor count, architecture, opset...).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub details: serde_json::Map<String, serde_json::Value>,
}
