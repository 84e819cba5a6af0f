//! Fuzz target: the runtime's OpenAI request bodies, through its router
//! over stand-in engines (properties/openai_bodies.rs says what must hold).
#![no_main]

use std::sync::OnceLock;

#[path = "../properties/openai_bodies.rs"]
mod property;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

fn runtimes() -> &'static property::Runtimes {
    static RUNTIMES: OnceLock<property::Runtimes> = OnceLock::new();
    RUNTIMES.get_or_init(|| runtime().block_on(property::Runtimes::start()))
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| runtime().block_on(runtimes().check(data)));
