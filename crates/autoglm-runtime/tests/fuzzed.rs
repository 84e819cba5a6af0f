//! The `openai_bodies` fuzz target (docs/fuzzing.md) as a bounded run on
//! stable: its seeds and inputs derived from them, each a request through
//! the runtime's router over stand-in engines, through the same property;
//! and the inputs the fuzzer found as regression tests.

#[path = "../../../fuzz/properties/bounded.rs"]
mod bounded;
#[path = "../../../fuzz/properties/openai_bodies.rs"]
mod openai_bodies;

#[test]
fn openai_bodies_are_answered_or_refused_in_openai_shape() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let runtimes = runtime.block_on(openai_bodies::Runtimes::start());
    bounded::run("openai_bodies", 2000, |body| {
        runtime.block_on(runtimes.check(body))
    });
}
