//! The folder layout of `config export` and `config import`: which file
//! each key is written to, the index file that maps files back to keys, and
//! the check that no index entry reaches outside the folder.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use autoglm_core::config::{ConfigFormat, ConfigVersion};
use serde::{Deserialize, Serialize};

/// The index file at the top of an exported folder.
pub const INDEX_FILE: &str = "autoglm-config.yaml";

/// Written above the entries, so that a reader of the folder knows what it is.
const INDEX_HEADER: &str = "\
# Written by `autoglm config export`: one entry per key, the file holding its
# content byte for byte. `autoglm config import DIR` publishes the files whose
# content differs from the environment's.
";

/// The index: which environment the folder came from and where each key is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Index {
    /// The environment exported (import's default).
    pub environment: String,
    /// The keys, sorted by group and key.
    #[serde(default)]
    pub keys: Vec<Entry>,
}

/// One key of the index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The group.
    pub group: String,
    /// The key.
    pub key: String,
    /// Its format.
    pub format: ConfigFormat,
    /// The file, relative to the folder, `/`-separated.
    pub file: String,
    /// The md5 exported.
    pub md5: String,
    /// The version exported.
    pub version: u64,
}

/// The file name of a key: the key itself when its extension already names
/// its format, else the key with the format's extension added, so that
/// editors and `git diff` know the language.
pub fn file_name(key: &str, format: ConfigFormat) -> String {
    let named = key
        .rsplit_once('.')
        .and_then(|(_, ext)| ConfigFormat::parse(ext))
        == Some(format);
    if named {
        key.to_owned()
    } else {
        format!("{key}.{}", format.extension())
    }
}

/// The index entries of `versions` (live keys), sorted by group and key. Two
/// keys whose files would be the same (`app` as YAML and `app.yaml`), also
/// on a case-insensitive disk, get `~2`, `~3` before the extension: `~` is
/// in no key name, so such a file can never be another key's own name.
pub fn entries(versions: &[ConfigVersion]) -> Vec<Entry> {
    let mut sorted: Vec<&ConfigVersion> = versions.iter().filter(|v| !v.deleted).collect();
    sorted.sort_by(|a, b| (&a.group, &a.key).cmp(&(&b.group, &b.key)));
    // Keys whose file is their own name choose first.
    let mut taken: HashSet<String> = sorted
        .iter()
        .filter(|v| file_name(&v.key, v.format) == v.key)
        .map(|v| format!("{}/{}", v.group, v.key).to_lowercase())
        .collect();
    sorted
        .iter()
        .map(|v| {
            let name = file_name(&v.key, v.format);
            let mut file = format!("{}/{name}", v.group);
            if name != v.key {
                let (stem, ext) = name.rsplit_once('.').unwrap_or((&name, ""));
                let mut n = 1;
                while !taken.insert(file.to_lowercase()) {
                    n += 1;
                    file = format!("{}/{stem}~{n}.{ext}", v.group);
                }
            }
            Entry {
                group: v.group.clone(),
                key: v.key.clone(),
                format: v.format,
                file,
                md5: v.md5.clone(),
                version: v.version,
            }
        })
        .collect()
}

/// The index as written: the header, then YAML.
pub fn render(index: &Index) -> String {
    let body = serde_yaml_ng::to_string(index).unwrap_or_default();
    format!("{INDEX_HEADER}{body}")
}

/// Reads an index file's text.
pub fn parse(text: &str) -> Result<Index, String> {
    serde_yaml_ng::from_str(text).map_err(|e| e.to_string())
}

/// Where an index entry's file is: inside `dir`, or an error. Absolute paths,
/// `..` and a symbolic link leading out are refused, so that a folder from
/// elsewhere (a pull request) cannot make import read any file of the machine.
pub fn resolve(dir: &Path, file: &str) -> Result<PathBuf, String> {
    let relative = Path::new(file);
    let plain = !file.is_empty()
        && relative
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !plain {
        return Err(format!(
            "file {file:?} escapes the folder; an index names files inside it, relative to it"
        ));
    }
    let path = dir.join(relative);
    // The deepest part that exists, links followed: a file not written yet
    // may still sit under a linked folder.
    let real = path.ancestors().find_map(|p| p.canonicalize().ok());
    if let (Some(real), Ok(root)) = (real, dir.canonicalize())
        && !real.starts_with(&root)
    {
        return Err(format!(
            "file {file:?} leads out of the folder (to {})",
            real.display()
        ));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(group: &str, key: &str, format: ConfigFormat) -> ConfigVersion {
        ConfigVersion {
            environment: "dev".into(),
            group: group.into(),
            key: key.into(),
            version: 2,
            format,
            content: "x".into(),
            md5: "m".into(),
            author: "ann".into(),
            message: String::new(),
            created_at: chrono::DateTime::UNIX_EPOCH,
            deleted: false,
            revision: 9,
        }
    }

    #[test]
    fn files_carry_their_format_extension_once() {
        assert_eq!(file_name("app.yaml", ConfigFormat::Yaml), "app.yaml");
        assert_eq!(file_name("app.yml", ConfigFormat::Yaml), "app.yml");
        assert_eq!(file_name("app", ConfigFormat::Yaml), "app.yaml");
        assert_eq!(file_name("notes", ConfigFormat::Text), "notes.txt");
        assert_eq!(file_name("notes.txt", ConfigFormat::Text), "notes.txt");
        assert_eq!(file_name("a.json", ConfigFormat::Text), "a.json.txt");
        assert_eq!(
            file_name("db.properties", ConfigFormat::Properties),
            "db.properties"
        );
        assert_eq!(file_name("c", ConfigFormat::Toml), "c.toml");
    }

    #[test]
    fn entries_are_sorted_and_never_share_a_file() {
        let all = [
            version("g", "app", ConfigFormat::Yaml),
            version("g", "app.yaml", ConfigFormat::Yaml),
            version("a", "z.json", ConfigFormat::Json),
            version("g", "APP", ConfigFormat::Yaml),
        ];
        let files: Vec<(String, String)> =
            entries(&all).into_iter().map(|e| (e.key, e.file)).collect();
        assert_eq!(
            files,
            [
                ("z.json".into(), "a/z.json".into()),
                ("APP".into(), "g/APP~2.yaml".into()),
                ("app".into(), "g/app~3.yaml".into()),
                ("app.yaml".into(), "g/app.yaml".into()),
            ]
        );
    }

    #[test]
    fn an_index_reads_back_what_was_written() {
        let index = Index {
            environment: "dev".into(),
            keys: entries(&[version("DEFAULT_GROUP", "on", ConfigFormat::Text)]),
        };
        let text = render(&index);
        assert!(text.starts_with("# Written by `autoglm config export`"));
        assert!(text.contains("file: DEFAULT_GROUP/on.txt"), "{text}");
        assert_eq!(parse(&text), Ok(index));
        assert!(parse("environment: dev\nextra: 1\n").is_err());
    }

    #[test]
    fn entries_cannot_leave_the_folder() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        assert_eq!(resolve(root, "g/a.yaml"), Ok(root.join("g/a.yaml")));
        for bad in ["", "../x", "g/../../x", "/etc/passwd", "g/../.."] {
            assert!(resolve(root, bad).is_err(), "{bad:?} passed");
        }
        let outside = tempfile::tempdir().expect("temp dir");
        std::fs::write(outside.path().join("secret"), "s").expect("write");
        std::os::unix::fs::symlink(outside.path(), root.join("link")).expect("symlink");
        let error = resolve(root, "link/secret").expect_err("a link out is refused");
        assert!(error.contains("leads out of the folder"), "{error}");
        assert!(
            resolve(root, "link/not-yet").is_err(),
            "nor a file to write there"
        );
    }
}
