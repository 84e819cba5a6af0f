//! Fuzz target: the gateway's HTTP/1 request and response heads
//! (properties/http_head.rs says what must hold).
#![no_main]

#[path = "../properties/http_head.rs"]
mod property;

libfuzzer_sys::fuzz_target!(|data: &[u8]| property::check(data));
