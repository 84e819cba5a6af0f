//! Fuzz target: a ModelService manifest as the console API reads a JSON
//! body (properties/service_json.rs says what must hold).
#![no_main]

#[path = "../properties/service_json.rs"]
mod property;

libfuzzer_sys::fuzz_target!(|data: &[u8]| property::check(data));
