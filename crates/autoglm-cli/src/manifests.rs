//! Reading manifests for `autoglm apply -f`: a file, a directory of
//! `*.yaml`/`*.yml`/`*.json` files (not recursive, by name), or `-` for
//! stdin; each holding one or more YAML documents separated by `---`.
//!
//! Everything is read and parsed before anything is sent, so a broken file
//! anywhere applies nothing. A parse error names the file and the line.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::client::io_reason;

/// One document of a manifest file.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The file it came from (`-` for stdin).
    pub file: String,
    /// Its position in the file, from 1.
    pub index: usize,
    /// The document, as JSON.
    pub value: Value,
}

impl Document {
    /// `FILE` for a file's only document, `FILE (document N)` otherwise.
    pub fn origin(&self, documents_in_file: usize) -> String {
        if documents_in_file > 1 {
            format!("{} (document {})", self.file, self.index)
        } else {
            self.file.clone()
        }
    }
}

/// Reads every document of `paths`, in order; empty documents are skipped.
pub fn read_all(paths: &[PathBuf]) -> Result<Vec<Document>, String> {
    let mut documents = Vec::new();
    for path in paths {
        for file in expand(path)? {
            let (name, text) = read_text(&file)?;
            documents.extend(parse(&name, &text)?);
        }
    }
    Ok(documents)
}

/// A path as the files it stands for: a directory's manifest files by name.
fn expand(path: &Path) -> Result<Vec<PathBuf>, String> {
    if path.as_os_str() == "-" || !path.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| {
        format!(
            "cannot read directory {}: {}",
            path.display(),
            io_reason(&e)
        )
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            format!(
                "cannot read directory {}: {}",
                path.display(),
                io_reason(&e)
            )
        })?;
        let file = entry.path();
        let manifest = file
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
        if manifest && file.is_file() {
            files.push(file);
        }
    }
    if files.is_empty() {
        return Err(format!(
            "directory {} holds no .yaml, .yml or .json file",
            path.display()
        ));
    }
    files.sort();
    Ok(files)
}

fn read_text(path: &Path) -> Result<(String, String), String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read stdin: {}", io_reason(&e)))?;
        return Ok(("-".to_owned(), text));
    }
    let name = path.display().to_string();
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read {name}: {}", io_reason(&e)))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        format!(
            "{name}: not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })?;
    Ok((name, text))
}

/// Parses the YAML documents of one file.
pub fn parse(file: &str, text: &str) -> Result<Vec<Document>, String> {
    let mut documents = Vec::new();
    for (i, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(document).map_err(|e| yaml_error(file, &e))?;
        if !value.is_null() {
            documents.push(Document {
                file: file.to_owned(),
                index: i + 1,
                value,
            });
        }
    }
    if documents.is_empty() {
        return Err(format!("{file}: no document to apply"));
    }
    Ok(documents)
}

/// One line: the file, the line and column when known, and what is wrong.
fn yaml_error(file: &str, error: &serde_yaml_ng::Error) -> String {
    let message = error.to_string().replace('\n', " ");
    match error.location() {
        Some(at) if !message.contains(" line ") => format!(
            "{file}: line {}, column {}: {message}",
            at.line(),
            at.column()
        ),
        _ => format!("{file}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_split_on_dashes_and_skip_empty_ones() {
        let text = "---\na: 1\n---\n# only a comment\n---\nb: [x, y]\n";
        let docs = parse("f.yaml", text).expect("parses");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].value, serde_json::json!({"a": 1}));
        assert_eq!(docs[1].value, serde_json::json!({"b": ["x", "y"]}));
        assert_eq!(docs[1].index, 3);
        assert_eq!(docs[1].origin(2), "f.yaml (document 3)");
        assert_eq!(docs[0].origin(1), "f.yaml");
    }

    #[test]
    fn errors_name_the_file_and_line_on_one_line() {
        let error = parse("svc.yaml", "a: 1\nb: [unclosed\nc: 2\n").expect_err("bad");
        assert!(error.starts_with("svc.yaml: "), "{error}");
        assert!(error.contains("line "), "{error}");
        assert!(!error.contains('\n'), "{error}");
        let error = parse("svc.yaml", "a: 1\n  b: 2\n").expect_err("bad indent");
        assert!(error.contains("line 2"), "{error}");
        assert_eq!(
            parse("empty.yaml", "# nothing\n").expect_err("empty"),
            "empty.yaml: no document to apply"
        );
    }

    #[test]
    fn directories_expand_to_their_manifests_by_name() {
        let dir = std::env::temp_dir().join(format!("autoglm-manifests-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("b.yaml"), "kind: B\n").expect("write");
        std::fs::write(dir.join("a.yml"), "kind: A\n").expect("write");
        std::fs::write(dir.join("notes.txt"), "not: read\n").expect("write");
        let docs = read_all(std::slice::from_ref(&dir)).expect("reads");
        let kinds: Vec<&Value> = docs.iter().map(|d| &d.value["kind"]).collect();
        assert_eq!(kinds, ["A", "B"]);
        std::fs::remove_dir_all(&dir).ok();
        let missing = read_all(&[dir.join("missing.yaml")]).expect_err("missing");
        assert!(missing.contains("no such file"), "{missing}");
    }
}
