//! Property of `autoglm apply -f` on a YAML file: the manifest reader of
//! autoglm-cli (`manifests::parse`) then the ModelService rules of
//! autoglm-core, shared by the `service_yaml` fuzz target and the bounded
//! run of it in crates/autoglm-cli/tests/fuzzed.rs.
//!
//! Any text is refused with one line naming the file, or read as documents;
//! a document accepted as a ModelService prints (`autoglm get -o yaml`) as
//! YAML that reads back as the same manifest.

use autoglm_cli::manifests;
use autoglm_cli::output::yaml_documents;
use autoglm_core::service::ModelServiceManifest;

/// Checks the property on the file contents `data`.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let documents = match manifests::parse("fuzz.yaml", text) {
        Ok(documents) => documents,
        Err(error) => {
            assert!(error.starts_with("fuzz.yaml: "), "{error}");
            assert!(!error.contains('\n'), "{error}");
            return;
        }
    };
    for document in documents {
        let Ok(manifest) = ModelServiceManifest::from_value(document.value) else {
            continue;
        };
        let printed = yaml_documents(&[serde_json::to_value(&manifest).expect("JSON")]);
        let again = match manifests::parse("get.yaml", &printed) {
            Ok(again) => again,
            Err(error) => panic!("printed YAML does not read back ({error}):\n{printed}"),
        };
        assert_eq!(again.len(), 1, "{printed}");
        let value = again.into_iter().map(|d| d.value).next().expect("one");
        assert_eq!(
            ModelServiceManifest::from_value(value),
            Ok(manifest),
            "{printed}"
        );
    }
}
