//! `autoglm config export ENV DIR`: every live key of the environment as
//! its own file, `DIR/GROUP/KEY[.ext]`, byte for byte, and the index
//! `DIR/autoglm-config.yaml` that maps the files back to keys. Files an
//! earlier export wrote for keys gone since are removed, so that the folder
//! mirrors the environment and `git diff` shows what changed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::index::{self, Entry, INDEX_FILE, Index};
use super::{KeyName, api, label};
use crate::ClientArgs;
use crate::client::{Client, ClientError, io_reason};
use crate::output::{print_stderr, print_stdout, sanitize};

/// `autoglm config export`.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// The environment.
    #[arg(value_name = "ENV")]
    pub env: String,
    /// The folder to write (made when missing).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

fn local(what: &str, path: &Path, e: &std::io::Error) -> ClientError {
    ClientError::Local(format!(
        "cannot {what} {}: {}",
        path.display(),
        io_reason(e)
    ))
}

/// The files an earlier export listed, read from its index when there is one.
fn earlier_files(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join(INDEX_FILE))
        .ok()
        .and_then(|text| index::parse(&text).ok())
        .map(|i| i.keys.into_iter().map(|e| e.file).collect())
        .unwrap_or_default()
}

fn write(path: &Path, content: &[u8]) -> Result<(), ClientError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| local("create", parent, &e))?;
    }
    // Unchanged files stay untouched: their times keep meaning something to make and rsync.
    if std::fs::read(path).is_ok_and(|old| old == content) {
        return Ok(());
    }
    std::fs::write(path, content).map_err(|e| local("write", path, &e))
}

/// `autoglm config export`.
pub async fn run(args: &ClientArgs, a: &ExportArgs) -> Result<(), ClientError> {
    let client = Client::new(args)?;
    let versions = api::live_keys(&client, &a.env, None).await?;
    let entries: Vec<Entry> = index::entries(&versions);
    let earlier = earlier_files(&a.dir);
    std::fs::create_dir_all(&a.dir).map_err(|e| local("create", &a.dir, &e))?;
    for entry in &entries {
        let version = versions
            .iter()
            .find(|v| v.group == entry.group && v.key == entry.key)
            .ok_or_else(|| ClientError::Decode(format!("{} vanished", entry.key)))?;
        // Names are checked by the console; checked again here because they become paths.
        let path = index::resolve(&a.dir, &entry.file)
            .and_then(|p| KeyName::new(&entry.group, &entry.key).map(|_| p))
            .map_err(|e| ClientError::Decode(format!("key {}: {e}", sanitize(&entry.key))))?;
        write(&path, version.content.as_bytes())?;
        print_stdout(&format!(
            "{} exported to {} (version {})\n",
            label(
                &a.env,
                &KeyName {
                    group: entry.group.clone(),
                    key: entry.key.clone()
                }
            ),
            sanitize(&entry.file),
            entry.version
        ));
    }
    let now: HashSet<&str> = entries.iter().map(|e| e.file.as_str()).collect();
    for gone in earlier.iter().filter(|f| !now.contains(f.as_str())) {
        // Only files the earlier index named and that lie inside the folder.
        if let Ok(path) = index::resolve(&a.dir, gone)
            && std::fs::remove_file(&path).is_ok()
            && let Some(parent) = path.parent()
        {
            // The group's folder goes with its last file; a non-empty one stays.
            let _ = std::fs::remove_dir(parent);
        }
    }
    let index = Index {
        environment: a.env.clone(),
        keys: entries,
    };
    write(&a.dir.join(INDEX_FILE), index::render(&index).as_bytes())?;
    print_stderr(&format!(
        "exported {} key(s) of environment {} to {}",
        index.keys.len(),
        sanitize(&a.env),
        a.dir.display()
    ));
    Ok(())
}
