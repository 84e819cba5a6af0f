//! Which engine a model path needs, read from its files.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// The kinds of model the runtime serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelKind {
    /// A sentence-transformers folder: `config.json`, `*.safetensors`, `tokenizer.json`.
    Embeddings(PathBuf),
    /// A GGUF file.
    Generation(PathBuf),
    /// An ONNX file.
    Tensor(PathBuf),
}

/// Why a model path names no model the runtime can serve.
#[derive(Debug, Error)]
pub enum DetectError {
    /// The path cannot be read.
    #[error("cannot read model path {}: {source}", path.display())]
    Unreadable {
        /// The model path.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
    /// A file that is not `.gguf` or `.onnx`.
    #[error("{} is neither a .gguf nor an .onnx file", path.display())]
    NotAModelFile {
        /// The file.
        path: PathBuf,
    },
    /// A folder that cannot be listed.
    #[error("cannot list {}: {source}", path.display())]
    Unlistable {
        /// The folder.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
    /// A folder holding no model's files.
    #[error(
        "{} holds no model: expected a .gguf or .onnx file, or config.json + tokenizer.json + *.safetensors",
        path.display()
    )]
    NoModel {
        /// The folder.
        path: PathBuf,
    },
    /// A folder holding several model files, so which to serve is a guess.
    #[error("{} holds {count} model files; point at one of them", path.display())]
    Ambiguous {
        /// The folder.
        path: PathBuf,
        /// How many `.gguf` and `.onnx` files it holds.
        count: usize,
    },
}

/// Recognises `path` (a file, or a folder holding one model).
pub fn detect(path: &Path) -> Result<ModelKind, DetectError> {
    let by_extension = |p: &Path| match p.extension().and_then(|e| e.to_str()) {
        Some("gguf") => Some(ModelKind::Generation(p.to_owned())),
        Some("onnx") => Some(ModelKind::Tensor(p.to_owned())),
        _ => None,
    };
    let meta = std::fs::metadata(path).map_err(|source| DetectError::Unreadable {
        path: path.to_owned(),
        source,
    })?;
    if meta.is_file() {
        return by_extension(path).ok_or_else(|| DetectError::NotAModelFile {
            path: path.to_owned(),
        });
    }
    let files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|source| DetectError::Unlistable {
            path: path.to_owned(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    let has = |name: &str| {
        files
            .iter()
            .any(|f| f.file_name().is_some_and(|n| n == name))
    };
    let safetensors = files
        .iter()
        .any(|f| f.extension().is_some_and(|e| e == "safetensors"));
    if has("config.json") && has("tokenizer.json") && safetensors {
        return Ok(ModelKind::Embeddings(path.to_owned()));
    }
    let mut found: Vec<ModelKind> = files.iter().filter_map(|f| by_extension(f)).collect();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(DetectError::NoModel {
            path: path.to_owned(),
        }),
        count => Err(DetectError::Ambiguous {
            path: path.to_owned(),
            count,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_each_layout_and_explains_the_rest() {
        let dir = std::env::temp_dir().join(format!("autoglm-detect-{}", std::process::id()));
        let emb = dir.join("emb");
        std::fs::create_dir_all(&emb).unwrap();
        for f in ["config.json", "tokenizer.json", "model.safetensors"] {
            std::fs::write(emb.join(f), b"x").unwrap();
        }
        assert_eq!(detect(&emb).ok(), Some(ModelKind::Embeddings(emb.clone())));

        let gen_dir = dir.join("gen");
        std::fs::create_dir_all(&gen_dir).unwrap();
        std::fs::write(gen_dir.join("m.gguf"), b"x").unwrap();
        assert_eq!(
            detect(&gen_dir).ok(),
            Some(ModelKind::Generation(gen_dir.join("m.gguf")))
        );
        assert_eq!(
            detect(&gen_dir.join("m.gguf")).ok(),
            Some(ModelKind::Generation(gen_dir.join("m.gguf")))
        );

        std::fs::write(gen_dir.join("n.onnx"), b"x").unwrap();
        assert!(matches!(
            detect(&gen_dir),
            Err(DetectError::Ambiguous { count: 2, .. })
        ));
        assert_eq!(
            detect(&gen_dir).unwrap_err().to_string(),
            format!(
                "{} holds 2 model files; point at one of them",
                gen_dir.display()
            )
        );
        let empty = dir.join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        assert!(matches!(detect(&empty), Err(DetectError::NoModel { path }) if path == empty));
        let missing = detect(&dir.join("missing")).unwrap_err();
        assert!(
            missing.to_string().starts_with(&format!(
                "cannot read model path {}: ",
                dir.join("missing").display()
            )),
            "{missing}"
        );
        assert!(
            std::error::Error::source(&missing).is_some(),
            "the io::Error stays reachable"
        );
        std::fs::write(dir.join("x.bin"), b"x").unwrap();
        assert!(matches!(
            detect(&dir.join("x.bin")),
            Err(DetectError::NotAModelFile { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
