//! Fuzz target: the console's multipart upload reader, through its router
//! over a real store (properties/multipart_upload.rs says what must hold).
//!
//! One console serves a run of inputs; every `FRESH_EVERY` inputs a new one
//! replaces it, so that the store's audit log and version counter do not
//! grow without bound over a million runs. Set TMPDIR to a tmpfs
//! (/dev/shm) so the uploads' fsyncs cost little.
#![no_main]

use std::cell::RefCell;

#[path = "../properties/multipart_upload.rs"]
mod property;

const FRESH_EVERY: u32 = 20_000;

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    static CONSOLE: RefCell<Option<(property::Console, u32)>> = const { RefCell::new(None) };
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    RUNTIME.with(|runtime| {
        CONSOLE.with_borrow_mut(|slot| {
            if slot.as_ref().is_none_or(|(_, runs)| *runs >= FRESH_EVERY) {
                *slot = None;
                *slot = Some((runtime.block_on(property::Console::start()), 0));
            }
            if let Some((console, runs)) = slot.as_mut() {
                *runs += 1;
                runtime.block_on(console.check(data));
            }
        })
    })
});
