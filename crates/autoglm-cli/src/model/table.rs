//! How `model list` and `model get` read for people: the tables and the
//! field lists drawn with `-o table`.

use std::collections::BTreeMap;

use autoglm_core::artifact::{ArtifactFile, ArtifactFormat};
use autoglm_core::registry::{Model, ModelVersion};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use crate::output::{
    NONE, age, human_size, indent, or_none, render_fields, render_table, sanitize, short_digest,
};

/// The wire name of a format.
pub fn format_name(format: ArtifactFormat) -> &'static str {
    match format {
        ArtifactFormat::Safetensors => "safetensors",
        ArtifactFormat::Gguf => "gguf",
        ArtifactFormat::Onnx => "onnx",
        ArtifactFormat::Other => "other",
    }
}

/// The `model list` table.
pub fn models_table(models: &[Model], now: DateTime<Utc>) -> String {
    let rows: Vec<Vec<String>> = models
        .iter()
        .map(|m| {
            vec![
                sanitize(&m.name),
                m.version_count.to_string(),
                or_none(m.latest_version),
                labels_text(&m.labels),
                age(m.created_at, now),
            ]
        })
        .collect();
    render_table(&["NAME", "VERSIONS", "LATEST", "LABELS", "AGE"], &rows)
}

/// The versions table of `model get`.
pub fn versions_table(versions: &[ModelVersion], now: DateTime<Utc>) -> String {
    let rows: Vec<Vec<String>> = versions
        .iter()
        .map(|v| {
            vec![
                v.version.to_string(),
                v.stage.as_str().to_owned(),
                format_name(v.format).to_owned(),
                human_size(v.size),
                sanitize(&short_digest(&v.digest)),
                or_none(v.spec.parent),
                age(v.created_at, now),
            ]
        })
        .collect();
    render_table(
        &[
            "VERSION", "STAGE", "FORMAT", "SIZE", "DIGEST", "PARENT", "AGE",
        ],
        &rows,
    )
}

/// A model's details followed by its versions.
pub fn model_details(model: &Model, versions: &[ModelVersion], now: DateTime<Utc>) -> String {
    let mut out = render_fields(&[
        ("Name", sanitize(&model.name)),
        ("Tenant", sanitize(&model.tenant)),
        ("Description", or_none(model.description.as_deref())),
        ("Labels", labels_text(&model.labels)),
        ("Versions", model.version_count.to_string()),
        ("Latest", or_none(model.latest_version)),
        ("Created", timestamp(model.created_at, now)),
        ("Updated", timestamp(model.updated_at, now)),
    ]);
    out.push('\n');
    if versions.is_empty() {
        out.push_str("No versions.\n");
    } else {
        out.push_str(&versions_table(versions, now));
    }
    out
}

/// One version's details, with its files.
pub fn version_details(version: &ModelVersion, now: DateTime<Utc>) -> String {
    let mut out = render_fields(&[
        ("Model", sanitize(&version.model)),
        ("Version", version.version.to_string()),
        (
            "Stage",
            format!(
                "{} (since {})",
                version.stage.as_str(),
                timestamp(version.stage_changed_at, now)
            ),
        ),
        ("Source", version.source.as_str().to_owned()),
        ("Digest", sanitize(&version.digest)),
        (
            "Size",
            format!("{} ({} bytes)", human_size(version.size), version.size),
        ),
        ("Format", format_name(version.format).to_owned()),
        ("Parent", or_none(version.spec.parent)),
        ("Framework", or_none(version.spec.framework.as_deref())),
        ("Task", or_none(version.spec.task.as_deref())),
        ("Description", or_none(version.spec.description.as_deref())),
        ("Params", map_text(&version.spec.params)),
        ("Created by", sanitize(&version.created_by)),
        ("Created", timestamp(version.created_at, now)),
    ]);
    out.push_str(&format!("Files ({}):\n", version.files.len()));
    out.push_str(&indent(&files_table(&version.files), 2));
    out
}

fn files_table(files: &[ArtifactFile]) -> String {
    let rows: Vec<Vec<String>> = files
        .iter()
        .map(|f| {
            vec![
                sanitize(&f.path),
                format_name(f.format).to_owned(),
                human_size(f.size),
                sanitize(&f.sha256.chars().take(12).collect::<String>()),
                if f.details.is_empty() {
                    String::new()
                } else {
                    map_text(&f.details)
                },
            ]
        })
        .collect();
    render_table(&["PATH", "FORMAT", "SIZE", "SHA256", "DETAILS"], &rows)
}

fn timestamp(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!(
        "{} ({} ago)",
        at.to_rfc3339_opts(SecondsFormat::Secs, true),
        age(at, now)
    )
}

fn labels_text(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return NONE.to_owned();
    }
    let joined: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    sanitize(&joined.join(","))
}

/// `key=value, ...` with strings unquoted, or `<none>`.
fn map_text(map: &Map<String, Value>) -> String {
    if map.is_empty() {
        return NONE.to_owned();
    }
    let parts: Vec<String> = map
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect();
    sanitize(&parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoglm_core::registry::{VersionSource, VersionSpec};
    use autoglm_core::stage::Stage;
    use chrono::Duration;

    fn model(now: DateTime<Utc>) -> Model {
        Model {
            name: "llama".to_owned(),
            tenant: "default".to_owned(),
            description: None,
            labels: [("team".to_owned(), "nlp".to_owned())].into(),
            version_count: 2,
            latest_version: Some(2),
            created_at: now - Duration::hours(2),
            updated_at: now - Duration::minutes(5),
        }
    }

    fn version(now: DateTime<Utc>) -> ModelVersion {
        ModelVersion {
            model: "llama".to_owned(),
            version: 2,
            digest: format!("sha256:{}", "ab".repeat(32)),
            size: 3 * 1024 * 1024,
            format: ArtifactFormat::Safetensors,
            files: vec![ArtifactFile {
                path: "model.safetensors".to_owned(),
                size: 3 * 1024 * 1024,
                sha256: "ab".repeat(32),
                format: ArtifactFormat::Safetensors,
                details: [("tensors".to_owned(), serde_json::json!(291))]
                    .into_iter()
                    .collect(),
            }],
            spec: VersionSpec {
                parent: Some(1),
                ..VersionSpec::default()
            },
            stage: Stage::Staging,
            source: VersionSource::Upload,
            created_by: "admin".to_owned(),
            created_at: now - Duration::days(3),
            stage_changed_at: now - Duration::days(1),
        }
    }

    #[test]
    fn model_tables_have_the_kubectl_columns() {
        let now = Utc::now();
        let mut unlabelled = model(now);
        unlabelled.name = "bert".to_owned();
        unlabelled.labels.clear();
        unlabelled.latest_version = None;
        unlabelled.version_count = 0;
        let table = models_table(&[model(now), unlabelled], now);
        assert_eq!(
            table,
            "NAME    VERSIONS   LATEST   LABELS     AGE\n\
             llama   2          2        team=nlp   2h\n\
             bert    0          <none>   <none>     2h\n"
        );
    }

    #[test]
    fn version_tables_shorten_digests_and_sizes() {
        let now = Utc::now();
        let table = versions_table(&[version(now)], now);
        assert_eq!(
            table,
            "VERSION   STAGE     FORMAT        SIZE      DIGEST                PARENT   AGE\n\
             2         staging   safetensors   3.0 MiB   sha256:abababababab   1        3d\n"
        );
        let details = model_details(&model(now), &[version(now)], now);
        assert!(details.starts_with("Name:         llama\n"), "{details}");
        assert!(details.contains("\nVERSION   STAGE"), "{details}");
        assert!(model_details(&model(now), &[], now).ends_with("No versions.\n"));
    }

    #[test]
    fn version_details_list_files() {
        let now = Utc::now();
        let text = version_details(&version(now), now);
        assert!(
            text.contains("Size:         3.0 MiB (3145728 bytes)\n"),
            "{text}"
        );
        assert!(text.contains("Parent:       1\n"), "{text}");
        assert!(text.contains("Files (1):\n  PATH "), "{text}");
        assert!(
            text.contains("model.safetensors   safetensors   3.0 MiB   abababababab   tensors=291"),
            "{text}"
        );
    }
}
