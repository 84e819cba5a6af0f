//! The `service_json` fuzz target (docs/fuzzing.md) as a bounded run on
//! stable: its seeds and a few thousand inputs derived from them through
//! the same property, and the inputs the fuzzer found as regression tests.

#[path = "../../../fuzz/properties/bounded.rs"]
mod bounded;
#[path = "../../../fuzz/properties/service_json.rs"]
mod service_json;

#[test]
fn json_manifests_are_refused_with_reasons_or_read_back_the_same() {
    bounded::run("service_json", 3000, service_json::check);
}
