//! The `service_yaml` fuzz target (docs/fuzzing.md) as a bounded run on
//! stable: its seeds and a few thousand inputs derived from them through
//! the same property, and the inputs the fuzzer found as regression tests.

#[path = "../../../fuzz/properties/bounded.rs"]
mod bounded;
#[path = "../../../fuzz/properties/service_yaml.rs"]
mod service_yaml;

#[test]
fn yaml_manifests_are_refused_on_one_line_or_print_as_they_read() {
    bounded::run("service_yaml", 3000, service_yaml::check);
}
