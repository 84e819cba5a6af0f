//! The `multipart_upload` fuzz target (docs/fuzzing.md) as a bounded run on
//! stable: its seeds and inputs derived from them, each an upload through
//! the console's router over a real store, through the same property; and
//! the inputs the fuzzer found as regression tests.

#[path = "../../../fuzz/properties/bounded.rs"]
mod bounded;
#[path = "../../../fuzz/properties/multipart_upload.rs"]
mod multipart_upload;

#[test]
fn uploads_are_stored_or_refused_with_a_problem_that_changes_nothing() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let console = runtime.block_on(multipart_upload::Console::start());
    bounded::run("multipart_upload", 300, |body| {
        runtime.block_on(console.check(body))
    });
}
