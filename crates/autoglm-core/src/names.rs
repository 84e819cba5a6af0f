//! Validation of the names users give to models, tenants, users and versions.
//!
//! Names end up in URLs, file paths and (later) Kubernetes object names, so
//! they follow DNS-1123 labels: lower-case alphanumerics and `-`, starting and
//! ending with an alphanumeric, at most 63 characters.

use thiserror::Error;

/// The longest name accepted, as for a Kubernetes label value.
pub const MAX_NAME_LEN: usize = 63;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    /// The name is empty.
    #[error("{kind} name must not be empty")]
    Empty { kind: &'static str },
    /// The name is longer than [`MAX_NAME_LEN`].
    #[error("{kind} name is {len} characters long; the limit is {MAX_NAME_LEN}")]
    TooLong { kind: &'static str, len: usize },
    /// The name contains a character outside `[a-z0-9-]`.
    #[error("{kind} name {name:?} contains {bad:?}; use lower-case letters, digits and '-'")]
    BadCharacter {
        kind: &'static str,
        name: String,
        bad: char,
    },
    /// The name starts or ends with `-`.
    #[error("{kind} name {name:?} must start and end with a letter or digit")]
    BadEdge { kind: &'static str, name: String },
}

/// Checks `name` as a DNS-1123 label; `kind` names the thing in the error ("model", "tenant").
pub fn validate(kind: &'static str, name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty { kind });
    }
    let len = name.chars().count();
    if len > MAX_NAME_LEN {
        return Err(NameError::TooLong { kind, len });
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(NameError::BadCharacter {
            kind,
            name: name.to_owned(),
            bad,
        });
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err(NameError::BadEdge {
            kind,
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Why a file path inside an artifact was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ArtifactPathError {
    /// Empty, or longer than 255 bytes.
    #[error("file path {path:?} must be 1 to 255 bytes")]
    Length {
        /// The path given.
        path: String,
    },
    /// Absolute, or written with `\`.
    #[error("file path {path:?} must be relative and use '/'")]
    NotRelative {
        /// The path given.
        path: String,
    },
    /// A component is empty, `.` or `..`.
    #[error("file path {path:?} has an empty, '.' or '..' component")]
    BadComponent {
        /// The path given.
        path: String,
    },
    /// A component holds a control character.
    #[error("file path {path:?} contains a control character")]
    ControlCharacter {
        /// The path given.
        path: String,
    },
}

/// Checks a relative file path inside an artifact: `/`-separated, no `..`, no
/// absolute paths, no empty or hidden-traversal components, printable only.
pub fn validate_artifact_path(path: &str) -> Result<(), ArtifactPathError> {
    if path.is_empty() || path.len() > 255 {
        return Err(ArtifactPathError::Length {
            path: path.to_owned(),
        });
    }
    if path.starts_with('/') || path.contains('\\') {
        return Err(ArtifactPathError::NotRelative {
            path: path.to_owned(),
        });
    }
    for part in path.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return Err(ArtifactPathError::BadComponent {
                path: path.to_owned(),
            });
        }
        if part.chars().any(|c| c.is_control()) {
            return Err(ArtifactPathError::ControlCharacter {
                path: path.to_owned(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_labels() {
        for ok in ["a", "smollm2", "all-minilm-l6-v2", &"x".repeat(63)] {
            assert_eq!(validate("model", ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        assert_eq!(
            validate("model", ""),
            Err(NameError::Empty { kind: "model" })
        );
        assert!(matches!(
            validate("model", &"x".repeat(64)),
            Err(NameError::TooLong { len: 64, .. })
        ));
        assert!(matches!(
            validate("model", "../x"),
            Err(NameError::BadCharacter { bad: '.', .. })
        ));
        assert!(matches!(
            validate("model", "Big"),
            Err(NameError::BadCharacter { bad: 'B', .. })
        ));
        assert!(matches!(
            validate("model", "a b"),
            Err(NameError::BadCharacter { bad: ' ', .. })
        ));
        assert!(matches!(
            validate("model", "é"),
            Err(NameError::BadCharacter { .. })
        ));
        assert!(matches!(
            validate("model", "-a"),
            Err(NameError::BadEdge { .. })
        ));
        assert!(matches!(
            validate("model", "a-"),
            Err(NameError::BadEdge { .. })
        ));
    }

    #[test]
    fn artifact_paths_stay_inside() {
        assert_eq!(validate_artifact_path("model.safetensors"), Ok(()));
        assert_eq!(validate_artifact_path("onnx/model.onnx"), Ok(()));
        let component = |p: &str| ArtifactPathError::BadComponent { path: p.to_owned() };
        assert_eq!(
            validate_artifact_path(""),
            Err(ArtifactPathError::Length {
                path: String::new()
            })
        );
        assert_eq!(
            validate_artifact_path("/etc/passwd"),
            Err(ArtifactPathError::NotRelative {
                path: "/etc/passwd".to_owned()
            })
        );
        assert!(matches!(
            validate_artifact_path("a\\b"),
            Err(ArtifactPathError::NotRelative { .. })
        ));
        for bad in ["../x", "a/../../x", "a//b", "./a"] {
            assert_eq!(validate_artifact_path(bad), Err(component(bad)), "{bad:?}");
        }
        assert!(matches!(
            validate_artifact_path("a\u{0}b"),
            Err(ArtifactPathError::ControlCharacter { .. })
        ));
        assert_eq!(
            validate_artifact_path("../x").map_err(|e| e.to_string()),
            Err("file path \"../x\" has an empty, '.' or '..' component".to_owned())
        );
    }
}
