//! The Kubernetes-shaped document `autoglm apply -f` reads and `autoglm get`
//! writes: `apiVersion`, `kind`, `metadata` and `spec`.
//!
//! The type is checked before the spec is parsed: a Deployment given by
//! mistake should be told it is the wrong kind, not that `replicas` is fine
//! but `template` is an unknown field.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::validate::{FieldError, finish};
use super::{ModelService, ModelServiceSpec, ModelServiceStatus};
use crate::names;
use crate::registry::validate_labels;

/// The API group and version of the ModelService resource.
pub const API_VERSION: &str = "autoglm.io/v1alpha1";
/// The kind of the ModelService resource.
pub const KIND: &str = "ModelService";

/// A ModelService document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelServiceManifest {
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// Always [`KIND`].
    pub kind: String,
    /// Name and where it lives.
    pub metadata: ObjectMeta,
    /// What to serve and how.
    pub spec: ModelServiceSpec,
    /// As last observed; ignored on apply, so `get` output can be applied back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ModelServiceStatus>,
}

/// The part of Kubernetes' object metadata a user writes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    /// DNS-1123 label.
    pub name: String,
    /// The Kubernetes namespace; the console ignores it (it scopes by tenant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Key/value labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Key/value annotations, kept as written.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Set by the server: 1 on creation, one more on every change of `spec`.
    /// Given on an update, the update applies only while it is still current.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Set by the server: when the object was created; ignored on apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<DateTime<Utc>>,
}

/// Checks `apiVersion` and `kind`, each with what to write instead.
pub fn check_type_meta(
    api_version: Option<&str>,
    kind: Option<&str>,
) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    match api_version {
        None => errors.push(FieldError::new(
            "apiVersion",
            format!("apiVersion is required; use {API_VERSION:?}"),
        )),
        Some(API_VERSION) => {}
        Some(other) => errors.push(FieldError::new(
            "apiVersion",
            format!("apiVersion {other:?} is not supported; use {API_VERSION:?}"),
        )),
    }
    match kind {
        None => errors.push(FieldError::new(
            "kind",
            format!("kind is required; use {KIND:?}"),
        )),
        Some(KIND) => {}
        Some(other) if other.eq_ignore_ascii_case(KIND) => errors.push(FieldError::new(
            "kind",
            format!("kind {other:?} must be spelled {KIND:?}"),
        )),
        Some(other) => errors.push(FieldError::new(
            "kind",
            format!("kind {other:?} is not supported; autoglm applies only kind {KIND:?}"),
        )),
    }
    finish(errors)
}

impl ModelServiceManifest {
    /// A manifest for `service`, as `autoglm get -o yaml` prints it.
    pub fn new(service: ModelService, status: Option<ModelServiceStatus>) -> Self {
        ModelServiceManifest {
            api_version: API_VERSION.to_owned(),
            kind: KIND.to_owned(),
            metadata: ObjectMeta {
                name: service.name,
                ..ObjectMeta::default()
            },
            spec: service.spec,
            status,
        }
    }

    /// Reads a parsed document (JSON, or YAML read into a `serde_json::Value`):
    /// checks the type first, then parses each section, then validates. Any
    /// `status` is dropped: the platform owns it.
    pub fn from_value(value: Value) -> Result<Self, Vec<FieldError>> {
        let Value::Object(mut doc) = value else {
            return Err(vec![FieldError::new(
                "",
                "a manifest must be a mapping with apiVersion, kind, metadata and spec",
            )]);
        };
        check_type_meta(
            doc.get("apiVersion").and_then(Value::as_str),
            doc.get("kind").and_then(Value::as_str),
        )?;
        let mut errors = Vec::new();
        for key in doc.keys() {
            if !["apiVersion", "kind", "metadata", "spec", "status"].contains(&key.as_str()) {
                errors.push(FieldError::new(
                    key.clone(),
                    format!(
                        "unknown field {key:?}; expected apiVersion, kind, metadata, spec or status"
                    ),
                ));
            }
        }
        let metadata = section::<ObjectMeta>(&mut doc, "metadata", &mut errors);
        let spec = section::<ModelServiceSpec>(&mut doc, "spec", &mut errors);
        let (Some(metadata), Some(spec)) = (metadata, spec) else {
            return Err(errors);
        };
        finish(errors)?;
        let manifest = ModelServiceManifest {
            api_version: API_VERSION.to_owned(),
            kind: KIND.to_owned(),
            metadata,
            spec,
            status: None,
        };
        manifest.validate()?;
        Ok(manifest)
    }

    /// Checks the type, the metadata and the spec.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = match check_type_meta(Some(&self.api_version), Some(&self.kind)) {
            Ok(()) => Vec::new(),
            Err(errors) => errors,
        };
        if let Err(e) = names::validate("service", &self.metadata.name) {
            errors.push(FieldError::new("metadata.name", e.to_string()));
        }
        if let Some(ns) = &self.metadata.namespace
            && let Err(e) = names::validate("namespace", ns)
        {
            errors.push(FieldError::new("metadata.namespace", e.to_string()));
        }
        if let Err(e) = validate_labels(&self.metadata.labels) {
            errors.push(FieldError::new("metadata.labels", e.to_string()));
        }
        if let Some(g) = self.metadata.generation
            && g < 1
        {
            errors.push(FieldError::new(
                "metadata.generation",
                format!("generation {g} is not one the server hands out; they start at 1"),
            ));
        }
        self.spec.check(&mut errors);
        finish(errors)
    }

    /// The service as the console API takes it.
    pub fn into_service(self) -> ModelService {
        ModelService {
            name: self.metadata.name,
            spec: self.spec,
        }
    }
}

/// Parses one required section, reporting a failure under its name: serde
/// names the offending field but not where it is.
fn section<T: serde::de::DeserializeOwned>(
    doc: &mut serde_json::Map<String, Value>,
    key: &str,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    let Some(value) = doc.remove(key) else {
        errors.push(FieldError::new(key, format!("{key} is required")));
        return None;
    };
    serde_json::from_value(value)
        .map_err(|e| errors.push(FieldError::new(key, e.to_string())))
        .ok()
}
