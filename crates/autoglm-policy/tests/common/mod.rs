//! What the policy tests share: the repository's `policies/` folder and
//! reviews of ModelService manifests.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;

use autoglm_policy::{Caller, Kind, Operation, Review};
use serde_json::{Value, json};

/// The default policies and their Rego tests.
pub fn policies_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies")
}

/// Every `*.rego` file of `policies/`, as (file name, source), sorted.
pub fn policy_files() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(policies_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rego"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// A create of `manifest` by an admin of tenant `acme`, with `context`.
pub fn review(manifest: Value, context: Value) -> Review {
    Review {
        kind: Kind::ModelService,
        operation: Operation::Create,
        resource: manifest,
        old_resource: None,
        caller: Caller {
            actor: "user:alice".into(),
            username: "alice".into(),
            role: "admin".into(),
        },
        tenant: "acme".into(),
        context,
    }
}

/// A ModelService manifest named `chat` with these labels and spec.
pub fn manifest(labels: Value, spec: Value) -> Value {
    json!({
        "apiVersion": "autoglm.io/v1alpha1",
        "kind": "ModelService",
        "metadata": {"name": "chat", "labels": labels},
        "spec": spec,
    })
}

/// OPA, built by `scripts/opa.sh` (from the Go module proxy, cached).
pub fn opa() -> PathBuf {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/opa.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg("build")
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("could not run scripts/opa.sh: {e}"));
    assert!(
        out.status.success(),
        "scripts/opa.sh build failed ({}); run it by hand to see why",
        out.status
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Gatekeeper's k8srequiredlabels ConstraintTemplate, its Rego unchanged
/// (v0, `input.review`, `input.parameters`).
pub const K8S_REQUIRED_LABELS: &str = r#"package k8srequiredlabels

get_message(parameters, _default) = msg {
  not parameters.message
  msg := _default
}

get_message(parameters, _default) = msg {
  msg := parameters.message
}

violation[{"msg": msg, "details": {"missing_labels": missing}}] {
  provided := {label | input.review.object.metadata.labels[label]}
  required := {label | label := input.parameters.labels[_].key}
  missing := required - provided
  count(missing) > 0
  def_msg := sprintf("you must provide labels: %v", [missing])
  msg := get_message(input.parameters, def_msg)
}

violation[{"msg": msg}] {
  value := input.review.object.metadata.labels[key]
  expected := input.parameters.labels[_]
  expected.key == key
  expected.allowedRegex != ""
  not re_match(expected.allowedRegex, value)
  def_msg := sprintf("Label <%v: %v> does not satisfy allowed regex: %v", [key, value, expected.allowedRegex])
  msg := get_message(input.parameters, def_msg)
}
"#;
