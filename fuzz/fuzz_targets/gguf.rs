//! Fuzz target: the gguf format check of uploaded artifacts
//! (properties/model_formats.rs says what must hold).
#![no_main]

#[path = "../properties/model_formats.rs"]
mod property;

libfuzzer_sys::fuzz_target!(|data: &[u8]| property::check("model.gguf", data));
