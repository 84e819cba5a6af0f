//! Wire types and rules of the model registry: models, versions, metadata.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::artifact::{ArtifactFile, ArtifactFormat};
use crate::stage::Stage;

/// Most labels one model may carry.
pub const MAX_LABELS: usize = 64;
/// Longest description accepted.
pub const MAX_DESCRIPTION: usize = 4096;

/// A registered model: a name and metadata; its weights live in versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Model {
    /// DNS-1123 label, unique in the tenant.
    pub name: String,
    /// The owning tenant.
    pub tenant: String,
    /// Free text.
    pub description: Option<String>,
    /// Key/value labels, for filtering.
    pub labels: BTreeMap<String, String>,
    /// Number of versions.
    pub version_count: i64,
    /// The highest version number, if any.
    pub latest_version: Option<i64>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its metadata last changed.
    pub updated_at: DateTime<Utc>,
}

/// `POST /api/v1/models`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateModel {
    /// DNS-1123 label.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Key/value labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `PATCH /api/v1/models/{name}`: fields present are replaced, absent ones kept.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateModel {
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// New labels (the whole map).
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

/// A page of results.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Pass as `page_token` to get the next page; absent on the last page.
    pub next_page_token: Option<String>,
}

/// What a version records about how it was trained and what it is for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionSpec {
    /// The version this one was derived from (fine-tuned, quantised...).
    #[serde(default)]
    pub parent: Option<i64>,
    /// e.g. `pytorch`, `llama.cpp`, `onnx`.
    #[serde(default)]
    pub framework: Option<String>,
    /// e.g. `text-generation`, `embeddings`, `classification`.
    #[serde(default)]
    pub task: Option<String>,
    /// Free-form parameters (hyper-parameters, quantisation, context length).
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// `POST /api/v1/models/{name}/versions` with a JSON body: register files
/// already on the console's machine. They are copied into the artifact store.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterPath {
    /// Absolute path of a file or directory on the console's machine.
    pub path: String,
    /// Metadata and lineage.
    #[serde(default, flatten)]
    pub spec: VersionSpec,
}

/// How a version's files arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VersionSource {
    /// Streamed through the API.
    Upload,
    /// Copied from a path on the console's machine.
    Path,
}

impl VersionSource {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            VersionSource::Upload => "upload",
            VersionSource::Path => "path",
        }
    }
}

/// An immutable model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelVersion {
    /// The model.
    pub model: String,
    /// Version number, from 1, never reused.
    pub version: i64,
    /// `sha256:` and the hex digest: of the file for a single-file artifact,
    /// of the sorted `digest  path` manifest for several files.
    pub digest: String,
    /// Total size in bytes.
    pub size: u64,
    /// The main format (the first non-`other` file's).
    pub format: ArtifactFormat,
    /// Every file with its own digest and format details.
    pub files: Vec<ArtifactFile>,
    /// Metadata and lineage.
    #[serde(flatten)]
    pub spec: VersionSpec,
    /// Lifecycle stage.
    pub stage: Stage,
    /// How the files arrived.
    pub source: VersionSource,
    /// Who created it.
    pub created_by: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its stage last changed.
    pub stage_changed_at: DateTime<Utc>,
}

/// `PUT /api/v1/models/{name}/versions/{version}/stage`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetStage {
    /// The new stage.
    pub stage: Stage,
    /// When moving to production, archive the model's other production versions.
    #[serde(default)]
    pub archive_others: bool,
}

/// Checks labels: keys like Kubernetes label keys, values at most 63 characters.
pub fn validate_labels(labels: &BTreeMap<String, String>) -> Result<(), String> {
    if labels.len() > MAX_LABELS {
        return Err(format!(
            "{} labels; the limit is {MAX_LABELS}",
            labels.len()
        ));
    }
    for (key, value) in labels {
        let key_ok = !key.is_empty()
            && key.len() <= 63
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
        if !key_ok {
            return Err(format!(
                "label key {key:?} must be 1 to 63 characters of [A-Za-z0-9._/-]"
            ));
        }
        if value.chars().count() > 63 || value.chars().any(char::is_control) {
            return Err(format!(
                "label {key:?} value must be at most 63 printable characters"
            ));
        }
    }
    Ok(())
}

/// Checks a description's length.
pub fn validate_description(description: Option<&str>) -> Result<(), String> {
    match description {
        Some(d) if d.chars().count() > MAX_DESCRIPTION => Err(format!(
            "description is longer than {MAX_DESCRIPTION} characters"
        )),
        _ => Ok(()),
    }
}

/// Checks a version's metadata.
pub fn validate_version_spec(spec: &VersionSpec) -> Result<(), String> {
    validate_description(spec.description.as_deref())?;
    for (field, value) in [("framework", &spec.framework), ("task", &spec.task)] {
        if let Some(v) = value
            && (v.is_empty() || v.len() > 63 || v.chars().any(char::is_control))
        {
            return Err(format!("{field} must be 1 to 63 printable characters"));
        }
    }
    if spec.parent.is_some_and(|p| p < 1) {
        return Err("parent must be a version number, from 1".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_kubernetes_conventions() {
        let ok: BTreeMap<_, _> = [("team".to_owned(), "nlp".to_owned())].into();
        assert!(validate_labels(&ok).is_ok());
        let bad_key: BTreeMap<_, _> = [("bad key".to_owned(), "v".to_owned())].into();
        assert!(validate_labels(&bad_key).is_err());
        let long_value: BTreeMap<_, _> = [("k".to_owned(), "v".repeat(64))].into();
        assert!(validate_labels(&long_value).is_err());
        let many: BTreeMap<_, _> = (0..65).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(validate_labels(&many).is_err());
    }

    #[test]
    fn version_spec_rules() {
        assert!(validate_version_spec(&VersionSpec::default()).is_ok());
        let bad_parent = VersionSpec {
            parent: Some(0),
            ..Default::default()
        };
        assert!(validate_version_spec(&bad_parent).is_err());
        let bad_task = VersionSpec {
            task: Some(String::new()),
            ..Default::default()
        };
        assert!(validate_version_spec(&bad_task).is_err());
        let long = VersionSpec {
            description: Some("x".repeat(MAX_DESCRIPTION + 1)),
            ..Default::default()
        };
        assert!(validate_version_spec(&long).is_err());
    }
}
