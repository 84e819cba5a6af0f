//! The `safetensors`, `gguf` and `onnx` fuzz targets (docs/fuzzing.md) as a
//! bounded run on stable: their seeds and a few thousand inputs derived
//! from them through the same property, and the inputs the fuzzers found
//! as regression tests.

#[path = "../../../fuzz/properties/bounded.rs"]
mod bounded;
#[path = "../../../fuzz/properties/model_formats.rs"]
mod model_formats;

#[test]
fn safetensors_files_are_accepted_or_refused_as_safetensors() {
    bounded::run("safetensors", 3000, |data| {
        model_formats::check("model.safetensors", data)
    });
}

#[test]
fn gguf_files_are_accepted_or_refused_as_gguf() {
    bounded::run("gguf", 3000, |data| {
        model_formats::check("model.gguf", data)
    });
}

#[test]
fn onnx_files_are_accepted_or_refused_as_onnx() {
    bounded::run("onnx", 3000, |data| {
        model_formats::check("model.onnx", data)
    });
}
