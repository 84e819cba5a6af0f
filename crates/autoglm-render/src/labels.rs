//! The labels every child carries: the recommended `app.kubernetes.io/*`
//! set, and autoglm's own, by which the operator and the gateway find a
//! service's and a version's objects.

use std::collections::BTreeMap;

/// `app.kubernetes.io/managed-by` on every child.
pub const MANAGED_BY: &str = "autoglm";
/// `app.kubernetes.io/managed-by` (and the field manager) of the
/// ModelServices the console writes: their rollouts are the console's to
/// drive, and the operator renders them as they are.
pub const CONSOLE_MANAGER: &str = "autoglm-console";
/// Names the ModelService a child belongs to.
pub const MODEL_SERVICE_LABEL: &str = "autoglm.io/model-service";
/// Names the model version a workload serves.
pub const MODEL_VERSION_LABEL: &str = "autoglm.io/model-version";

/// The labels of a child of service `service`; `version` for the children of one version.
pub(crate) fn labels(
    service: &str,
    model: &str,
    version: Option<&str>,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), model.to_owned()),
        ("app.kubernetes.io/instance".to_owned(), service.to_owned()),
        (
            "app.kubernetes.io/component".to_owned(),
            "model-server".to_owned(),
        ),
        ("app.kubernetes.io/part-of".to_owned(), "autoglm".to_owned()),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            MANAGED_BY.to_owned(),
        ),
        (MODEL_SERVICE_LABEL.to_owned(), service.to_owned()),
    ]);
    if let Some(version) = version {
        labels.insert("app.kubernetes.io/version".to_owned(), version.to_owned());
        labels.insert(MODEL_VERSION_LABEL.to_owned(), version.to_owned());
    }
    labels
}

/// The pod selector of service `service`, or of one of its versions. It
/// holds only autoglm's own labels: selectors are immutable, and these never
/// change for the life of a workload.
pub fn selector(service: &str, version: Option<&str>) -> BTreeMap<String, String> {
    let mut selector = BTreeMap::from([(MODEL_SERVICE_LABEL.to_owned(), service.to_owned())]);
    if let Some(version) = version {
        selector.insert(MODEL_VERSION_LABEL.to_owned(), version.to_owned());
    }
    selector
}
