//! Property of the artifact format checks (autoglm-artifacts' `formats`),
//! shared by the `safetensors`, `gguf` and `onnx` fuzz targets and the
//! bounded runs of them in crates/autoglm-artifacts/tests/fuzzed.rs.
//!
//! Any file under a model's name is accepted with the format it claims, or
//! refused as not being that format. It is never a read failure: every
//! length the checks read is bounded by the file's size, so they never read
//! past its end (a read failure would be a 500 to the uploader, not a 4xx).

use std::io::Cursor;

use autoglm_artifacts::formats::{FormatError, inspect};
use autoglm_core::artifact::ArtifactFormat;

/// Checks the property on the file `name` holding `data`.
pub fn check(name: &str, data: &[u8]) {
    let claimed = match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("safetensors") => ArtifactFormat::Safetensors,
        Some("gguf") => ArtifactFormat::Gguf,
        Some("onnx") => ArtifactFormat::Onnx,
        _ => ArtifactFormat::Other,
    };
    let format = if data.starts_with(b"GGUF") {
        ArtifactFormat::Gguf
    } else {
        claimed
    };
    match inspect(name, &mut Cursor::new(data), data.len() as u64) {
        Ok(report) => {
            assert_eq!(report.format, format, "{name}");
            assert_eq!(
                report.details.is_empty(),
                format == ArtifactFormat::Other,
                "{name}: {:?}",
                report.details
            );
        }
        Err(FormatError::Invalid {
            format: refused,
            message,
        }) => {
            assert_eq!(refused, format, "{name}: {message}");
            assert!(!message.is_empty(), "{name}");
        }
        Err(error @ FormatError::Io { .. }) => {
            panic!(
                "{name}: a check read past the end of a {}-byte file: {error}",
                data.len()
            )
        }
    }
}
