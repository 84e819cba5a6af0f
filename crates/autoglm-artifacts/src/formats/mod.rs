//! Recognises model file formats and checks that a file is what it claims to be.
//!
//! GGUF is recognised by its magic bytes, safetensors and ONNX by their extension; anything else
//! is [`ArtifactFormat::Other`] and is not interpreted. A file that claims a format and fails its
//! check is a [`FormatError`], so a corrupt upload is refused with a message naming the problem.
//!
//! The checks read only headers and metadata, seeking over tensor data, and every length read from
//! the file is bounded by the file size and a sane maximum before anything is allocated.

mod gguf;
mod onnx;
mod reader;
mod safetensors;

use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use autoglm_core::artifact::ArtifactFormat;
use serde_json::{Map, Value};

use reader::Source;

/// What [`inspect`] found: the format and the facts its check read (tensor count, architecture...).
#[derive(Debug, Clone, PartialEq)]
pub struct FormatReport {
    /// The recognised format; [`ArtifactFormat::Other`] for files that are not interpreted.
    pub format: ArtifactFormat,
    /// Per-format facts (see each check); empty for [`ArtifactFormat::Other`].
    pub details: Map<String, Value>,
}

/// Why a file that claims a format failed its check.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The bytes are not a valid file of this format.
    #[error("{}: {message}", format_name(.format))]
    Invalid {
        /// The format the file claimed to be.
        format: ArtifactFormat,
        /// What is wrong, with the offset where it helps.
        message: String,
    },
    /// Reading the file failed.
    #[error("{}: read failed: {source}", format_name(.format))]
    Io {
        /// The format the file claimed to be.
        format: ArtifactFormat,
        #[source]
        source: std::io::Error,
    },
}

impl FormatError {
    /// The format the file claimed to be.
    pub fn format(&self) -> ArtifactFormat {
        match self {
            Self::Invalid { format, .. } | Self::Io { format, .. } => *format,
        }
    }
}

fn format_name(format: &ArtifactFormat) -> &'static str {
    match format {
        ArtifactFormat::Safetensors => "safetensors",
        ArtifactFormat::Gguf => "GGUF",
        ArtifactFormat::Onnx => "ONNX",
        ArtifactFormat::Other => "file",
    }
}

const GGUF_MAGIC: &[u8; 4] = b"GGUF";

/// Inspect a file. `name` is its file name (extension hints), `file` is readable and seekable,
/// `len` is its size.
///
/// The file is read from offset 0 whatever its current position.
pub fn inspect<R: Read + Seek>(
    name: &str,
    file: &mut R,
    len: u64,
) -> Result<FormatReport, FormatError> {
    let claimed = claimed_by_name(name);
    let io = |source| FormatError::Io {
        format: claimed,
        source,
    };
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut magic = Vec::with_capacity(GGUF_MAGIC.len());
    Read::take(&mut *file, 4)
        .read_to_end(&mut magic)
        .map_err(io)?;
    let format = if len >= 4 && magic == GGUF_MAGIC {
        ArtifactFormat::Gguf
    } else {
        claimed
    };
    if format == ArtifactFormat::Other {
        return Ok(FormatReport {
            format,
            details: Map::new(),
        });
    }
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut src = Source::new(BufReader::new(file), len, format);
    let details = match format {
        ArtifactFormat::Gguf => gguf::check(&mut src)?,
        ArtifactFormat::Safetensors => safetensors::check(&mut src)?,
        ArtifactFormat::Onnx => onnx::check(&mut src)?,
        ArtifactFormat::Other => Map::new(),
    };
    Ok(FormatReport { format, details })
}

/// The format a file name claims; `.gguf` counts so that a GGUF file without its magic is refused
/// rather than stored as an opaque file.
fn claimed_by_name(name: &str) -> ArtifactFormat {
    let ext = Path::new(name).extension().and_then(|e| e.to_str());
    match ext {
        Some(e) if e.eq_ignore_ascii_case("safetensors") => ArtifactFormat::Safetensors,
        Some(e) if e.eq_ignore_ascii_case("onnx") => ArtifactFormat::Onnx,
        Some(e) if e.eq_ignore_ascii_case("gguf") => ArtifactFormat::Gguf,
        _ => ArtifactFormat::Other,
    }
}

#[cfg(test)]
mod tests {

    use std::io::Cursor;

    use super::*;

    fn run(name: &str, bytes: &[u8]) -> Result<FormatReport, FormatError> {
        let mut cursor = Cursor::new(bytes);
        inspect(name, &mut cursor, bytes.len() as u64)
    }

    fn safetensors_file() -> Vec<u8> {
        let header = br#"{"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(&[7, 7]);
        bytes
    }

    #[test]
    fn unknown_files_are_other_with_no_details() {
        for (name, bytes) in [
            ("README.md", &b"# hello, this is not a model"[..]),
            ("config.json", b"{}"),
            ("tiny", b"GG"),
            ("empty.bin", b""),
        ] {
            let report = run(name, bytes).unwrap();
            assert_eq!(report.format, ArtifactFormat::Other, "{name}");
            assert!(report.details.is_empty(), "{name}");
        }
    }

    #[test]
    fn gguf_is_recognised_by_magic_whatever_the_name() {
        let err = run("model.bin", b"GGUF\x01\x00\x00\x00").unwrap_err();
        assert_eq!(err.format(), ArtifactFormat::Gguf);
        assert_eq!(
            err.to_string(),
            "GGUF: unsupported version 1 (expected 2 or 3)"
        );
    }

    #[test]
    fn a_gguf_name_without_the_magic_is_refused() {
        let err = run("model.gguf", b"not a gguf file").unwrap_err();
        assert_eq!(err.format(), ArtifactFormat::Gguf);
        assert!(err.to_string().contains("missing magic"), "{err}");
    }

    #[test]
    fn extensions_pick_the_check_case_insensitively() {
        let report = run("dir/Model.SafeTensors", &safetensors_file()).unwrap();
        assert_eq!(report.format, ArtifactFormat::Safetensors);
        assert_eq!(report.details["tensors"], 1);

        let err = run("model.onnx", b"").unwrap_err();
        assert_eq!(err.format(), ArtifactFormat::Onnx);
    }

    #[test]
    fn the_file_is_read_from_the_start_whatever_its_position() {
        let bytes = safetensors_file();
        let mut cursor = Cursor::new(&bytes[..]);
        cursor.seek(SeekFrom::End(0)).unwrap();
        let report = inspect("m.safetensors", &mut cursor, bytes.len() as u64).unwrap();
        assert_eq!(report.details["parameters"], 2);
    }

    #[test]
    fn errors_name_the_format_and_the_problem() {
        let mut bytes = 9_999_999u64.to_le_bytes().to_vec();
        bytes.resize(120, b' ');
        let err = run("m.safetensors", &bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "safetensors: header length 9999999 exceeds file size 120"
        );
    }

    #[test]
    fn io_errors_keep_their_source() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk on fire"))
            }
        }
        impl Seek for Broken {
            fn seek(&mut self, _: SeekFrom) -> std::io::Result<u64> {
                Ok(0)
            }
        }
        let err = inspect("m.onnx", &mut Broken, 10).unwrap_err();
        assert!(matches!(err, FormatError::Io { .. }), "{err:?}");
        assert_eq!(err.format(), ArtifactFormat::Onnx);
        let source = std::error::Error::source(&err).unwrap();
        assert_eq!(source.to_string(), "disk on fire");
    }
}
