//! Fuzz target: the gateway's chunked-body decoder
//! (properties/chunked_body.rs says what must hold).
#![no_main]

#[path = "../properties/chunked_body.rs"]
mod property;

libfuzzer_sys::fuzz_target!(|data: &[u8]| property::check(data));
