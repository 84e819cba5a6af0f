//! Wire types and rules of the model registry: models, versions, metadata.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use thiserror::Error;

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

impl<T> Page<T> {
    /// Every item in one page: for lists the store already bounds.
    pub fn whole(items: Vec<T>) -> Page<T> {
        Page {
            items,
            next_page_token: None,
        }
    }
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

/// Why a set of labels was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LabelError {
    /// More than [`MAX_LABELS`] labels.
    #[error("{count} labels; the limit is {MAX_LABELS}")]
    TooMany {
        /// How many were given.
        count: usize,
    },
    /// A key is empty, too long or has a character Kubernetes refuses.
    #[error("label key {key:?} must be 1 to 63 characters of [A-Za-z0-9._/-]")]
    BadKey {
        /// The key.
        key: String,
    },
    /// A value is too long or holds a control character.
    #[error("label {key:?} value must be at most 63 printable characters")]
    BadValue {
        /// The key of the value.
        key: String,
    },
}

/// A description longer than [`MAX_DESCRIPTION`] characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("description is longer than {MAX_DESCRIPTION} characters")]
pub struct DescriptionTooLong;

/// Why a version's metadata was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VersionSpecError {
    /// The description is too long.
    #[error(transparent)]
    Description(#[from] DescriptionTooLong),
    /// `framework` or `task` is empty, too long or not printable.
    #[error("{field} must be 1 to 63 printable characters")]
    BadField {
        /// `framework` or `task`.
        field: &'static str,
    },
    /// `parent` is below 1.
    #[error("parent must be a version number, from 1")]
    BadParent,
}

/// Checks labels: keys like Kubernetes label keys, values at most 63 characters.
pub fn validate_labels(labels: &BTreeMap<String, String>) -> Result<(), LabelError> {
    if labels.len() > MAX_LABELS {
        return Err(LabelError::TooMany {
            count: labels.len(),
        });
    }
    for (key, value) in labels {
        let key_ok = !key.is_empty()
            && key.len() <= 63
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
        if !key_ok {
            return Err(LabelError::BadKey { key: key.clone() });
        }
        if value.chars().count() > 63 || value.chars().any(char::is_control) {
            return Err(LabelError::BadValue { key: key.clone() });
        }
    }
    Ok(())
}

/// Checks a description's length.
pub fn validate_description(description: Option<&str>) -> Result<(), DescriptionTooLong> {
    match description {
        Some(d) if d.chars().count() > MAX_DESCRIPTION => Err(DescriptionTooLong),
        _ => Ok(()),
    }
}

/// Checks a version's metadata.
pub fn validate_version_spec(spec: &VersionSpec) -> Result<(), VersionSpecError> {
    validate_description(spec.description.as_deref())?;
    for (field, value) in [("framework", &spec.framework), ("task", &spec.task)] {
        if let Some(v) = value
            && (v.is_empty() || v.len() > 63 || v.chars().any(char::is_control))
        {
            return Err(VersionSpecError::BadField { field });
        }
    }
    if spec.parent.is_some_and(|p| p < 1) {
        return Err(VersionSpecError::BadParent);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_kubernetes_conventions() {
        let ok: BTreeMap<_, _> = [("team".to_owned(), "nlp".to_owned())].into();
        assert_eq!(validate_labels(&ok), Ok(()));
        let bad_key: BTreeMap<_, _> = [("bad key".to_owned(), "v".to_owned())].into();
        assert_eq!(
            validate_labels(&bad_key).map_err(|e| e.to_string()),
            Err("label key \"bad key\" must be 1 to 63 characters of [A-Za-z0-9._/-]".to_owned())
        );
        let long_value: BTreeMap<_, _> = [("k".to_owned(), "v".repeat(64))].into();
        assert!(matches!(
            validate_labels(&long_value),
            Err(LabelError::BadValue { key }) if key == "k"
        ));
        let many: BTreeMap<_, _> = (0..65).map(|i| (format!("k{i}"), String::new())).collect();
        assert_eq!(
            validate_labels(&many),
            Err(LabelError::TooMany { count: 65 })
        );
    }

    #[test]
    fn description_length_is_limited() {
        assert_eq!(validate_description(None), Ok(()));
        let long = "x".repeat(MAX_DESCRIPTION + 1);
        assert_eq!(
            validate_description(Some(&long)).map_err(|e| e.to_string()),
            Err("description is longer than 4096 characters".to_owned())
        );
    }

    #[test]
    fn version_spec_rules() {
        assert_eq!(validate_version_spec(&VersionSpec::default()), Ok(()));
        let bad_parent = VersionSpec {
            parent: Some(0),
            ..Default::default()
        };
        assert_eq!(
            validate_version_spec(&bad_parent).map_err(|e| e.to_string()),
            Err("parent must be a version number, from 1".to_owned())
        );
        let bad_task = VersionSpec {
            task: Some(String::new()),
            ..Default::default()
        };
        assert_eq!(
            validate_version_spec(&bad_task),
            Err(VersionSpecError::BadField { field: "task" })
        );
        let long = VersionSpec {
            description: Some("x".repeat(MAX_DESCRIPTION + 1)),
            ..Default::default()
        };
        assert_eq!(
            validate_version_spec(&long),
            Err(VersionSpecError::Description(DescriptionTooLong))
        );
    }
}
