//! Which engine a model path needs, read from its files.

use std::path::{Path, PathBuf};

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

/// Recognises `path` (a file, or a folder holding one model).
pub fn detect(path: &Path) -> Result<ModelKind, String> {
    let by_extension = |p: &Path| match p.extension().and_then(|e| e.to_str()) {
        Some("gguf") => Some(ModelKind::Generation(p.to_owned())),
        Some("onnx") => Some(ModelKind::Tensor(p.to_owned())),
        _ => None,
    };
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("cannot read model path {}: {e}", path.display()))?;
    if meta.is_file() {
        return by_extension(path)
            .ok_or_else(|| format!("{} is neither a .gguf nor an .onnx file", path.display()));
    }
    let files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| format!("cannot list {}: {e}", path.display()))?
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
        0 => Err(format!(
            "{} holds no model: expected a .gguf or .onnx file, or config.json + tokenizer.json + *.safetensors",
            path.display()
        )),
        n => Err(format!(
            "{} holds {n} model files; point at one of them",
            path.display()
        )),
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
        assert_eq!(detect(&emb), Ok(ModelKind::Embeddings(emb.clone())));

        let gen_dir = dir.join("gen");
        std::fs::create_dir_all(&gen_dir).unwrap();
        std::fs::write(gen_dir.join("m.gguf"), b"x").unwrap();
        assert_eq!(
            detect(&gen_dir),
            Ok(ModelKind::Generation(gen_dir.join("m.gguf")))
        );
        assert_eq!(
            detect(&gen_dir.join("m.gguf")),
            Ok(ModelKind::Generation(gen_dir.join("m.gguf")))
        );

        std::fs::write(gen_dir.join("n.onnx"), b"x").unwrap();
        assert!(detect(&gen_dir).unwrap_err().contains("2 model files"));
        let empty = dir.join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        assert!(detect(&empty).unwrap_err().contains("holds no model"));
        assert!(
            detect(&dir.join("missing"))
                .unwrap_err()
                .contains("cannot read")
        );
        std::fs::write(dir.join("x.bin"), b"x").unwrap();
        assert!(detect(&dir.join("x.bin")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
