//! Property of the ModelService manifest reader as the console API runs it
//! on a JSON body (autoglm-core's `ModelServiceManifest::from_value`),
//! shared by the `service_json` fuzz target and the bounded run of it in
//! crates/autoglm-core/tests/fuzzed.rs.
//!
//! Any document is refused with at least one error that names its field, or
//! accepted as a manifest that passes its own validation and reads back the
//! same from the JSON the console answers with (`get` then `apply` changes
//! nothing).

use autoglm_core::service::ModelServiceManifest;
use serde_json::Value;

/// Checks the property on the JSON body `data`.
pub fn check(data: &[u8]) {
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        check_value(value);
    }
}

/// Checks the property on one parsed document; the manifest when accepted.
pub fn check_value(value: Value) -> Option<ModelServiceManifest> {
    let manifest = match ModelServiceManifest::from_value(value) {
        Ok(manifest) => manifest,
        Err(errors) => {
            assert!(!errors.is_empty(), "refused without a reason");
            for error in &errors {
                assert!(!error.message.trim().is_empty(), "{errors:?}");
            }
            return None;
        }
    };
    assert_eq!(manifest.validate(), Ok(()));
    let answered = serde_json::to_value(&manifest).expect("a manifest is JSON");
    assert_eq!(
        ModelServiceManifest::from_value(answered.clone()).as_ref(),
        Ok(&manifest),
        "{answered}"
    );
    Some(manifest)
}
