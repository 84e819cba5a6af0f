//! Fuzz target: a manifest file as `autoglm apply -f` reads it
//! (properties/service_yaml.rs says what must hold).
#![no_main]

#[path = "../properties/service_yaml.rs"]
mod property;

libfuzzer_sys::fuzz_target!(|data: &[u8]| property::check(data));
