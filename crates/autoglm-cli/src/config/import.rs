//! `autoglm config import DIR`: publishes each file of an exported folder
//! whose content differs from its key's (so a second import changes
//! nothing), reporting `created`, `configured`, `unchanged` or `pruned` per
//! key as `kubectl apply` does. The index maps files to keys; a file added
//! under a group's folder is a new key named as the file. Everything is read
//! and checked before the first publish, so a broken file imports nothing.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use autoglm_core::config::{
    ConfigFormat, ConfigVersion, ProposedKey, PublishConfig, RequestChange, check_publish, md5_hex,
};
use reqwest::Method;

use super::index::{self, INDEX_FILE, Index};
use super::keys::read_content;
use super::{KeyName, PASS_REQUEST, api, label, protected_hint};
use crate::ClientArgs;
use crate::client::{Client, ClientError, io_reason};
use crate::output::{print_stderr, print_stdout, sanitize};

/// `autoglm config import`.
#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// A folder written by `autoglm config export`.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The environment to import into (default: the one the index names).
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
    /// Say what would change, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also delete the environment's keys that the folder does not hold.
    #[arg(long)]
    pub prune: bool,
    /// Why (each new version's message).
    #[arg(short = 'm', long, value_name = "MESSAGE", default_value = "")]
    pub message: String,
    /// File one change request with every change, for a second user to approve.
    #[arg(long, conflicts_with = "dry_run")]
    pub request: bool,
}

/// A key as the folder holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    /// The key.
    pub key: KeyName,
    /// Its format.
    pub format: ConfigFormat,
    /// Its file, relative to the folder.
    pub file: String,
    /// The content, byte for byte.
    pub content: String,
    /// The md5 the index says was exported.
    pub exported_md5: Option<String>,
}

/// What the folder holds: the index (if any), the keys, and warnings.
#[derive(Debug, Default)]
pub struct Folder {
    /// The index, when the folder has one.
    pub index: Option<Index>,
    /// Every key with its content, sorted.
    pub keys: Vec<Wanted>,
    /// Things skipped, in words.
    pub warnings: Vec<String>,
}

fn local(what: &str, path: &Path, e: &std::io::Error) -> ClientError {
    ClientError::Local(format!(
        "cannot {what} {}: {}",
        path.display(),
        io_reason(e)
    ))
}

fn hidden(name: &str) -> bool {
    name.starts_with('.')
}

/// Reads the folder: the index's entries (their files must lie inside the
/// folder), then files no entry names under a group's folder.
pub fn read_folder(dir: &Path) -> Result<Folder, ClientError> {
    let mut folder = Folder::default();
    let index_path = dir.join(INDEX_FILE);
    match std::fs::read_to_string(&index_path) {
        Ok(text) => {
            let index = index::parse(&text)
                .map_err(|e| ClientError::Local(format!("{}: {e}", index_path.display())))?;
            folder.index = Some(index);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(local("read", &index_path, &e)),
    }
    let at = |i: usize, e: String| ClientError::Local(format!("{INDEX_FILE}: keys[{i}]: {e}"));
    let mut named: HashSet<String> = HashSet::new();
    for (i, entry) in folder.index.iter().flat_map(|x| x.keys.iter()).enumerate() {
        let key = KeyName::new(&entry.group, &entry.key).map_err(|e| at(i, e))?;
        let path = index::resolve(dir, &entry.file).map_err(|e| at(i, e))?;
        named.insert(normal(&entry.file));
        if std::fs::symlink_metadata(&path).is_err() {
            folder.warnings.push(format!(
                "{} is missing: {key} is not imported (--prune deletes it)",
                sanitize(&entry.file)
            ));
            continue;
        }
        folder.keys.push(Wanted {
            key,
            format: entry.format,
            file: entry.file.clone(),
            content: read_content(&path)?,
            exported_md5: Some(entry.md5.clone()),
        });
    }
    discover(dir, &named, &mut folder)?;
    folder.keys.sort_by(|a, b| a.key.cmp(&b.key));
    if let Some(twice) = folder.keys.windows(2).find(|w| w[0].key == w[1].key) {
        return Err(ClientError::Local(format!(
            "{} is in the folder twice: {} and {}",
            twice[0].key,
            sanitize(&twice[0].file),
            sanitize(&twice[1].file)
        )));
    }
    Ok(folder)
}

/// `GROUP/./KEY` and `GROUP/KEY` are one file.
fn normal(file: &str) -> String {
    file.split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// Files under `DIR/GROUP/` that no index entry names: new keys, named as
/// the file, the format from its extension. Hidden files and folders (`.git`)
/// and links are left alone.
fn discover(dir: &Path, named: &HashSet<String>, folder: &mut Folder) -> Result<(), ClientError> {
    let entries = std::fs::read_dir(dir).map_err(|e| local("read", dir, &e))?;
    for group in entries.flatten() {
        let group_name = group.file_name().to_string_lossy().into_owned();
        if hidden(&group_name) || !group.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let files =
            std::fs::read_dir(group.path()).map_err(|e| local("read", &group.path(), &e))?;
        for file in files.flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            let relative = format!("{group_name}/{name}");
            if hidden(&name)
                || named.contains(&relative)
                || !file.file_type().is_ok_and(|t| t.is_file())
            {
                continue;
            }
            match KeyName::new(&group_name, &name) {
                Ok(key) => folder.keys.push(Wanted {
                    key,
                    format: ConfigFormat::of_key(&name),
                    file: relative,
                    content: read_content(&file.path())?,
                    exported_md5: None,
                }),
                Err(e) => folder
                    .warnings
                    .push(format!("{} skipped: {e}", sanitize(&relative))),
            }
        }
    }
    Ok(())
}

/// What importing does to one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// New in the environment.
    Created,
    /// New content or format.
    Configured,
    /// Already so.
    Unchanged,
    /// Deleted: the folder does not hold it (with --prune).
    Pruned,
}

impl Outcome {
    fn word(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
            Outcome::Pruned => "pruned",
        }
    }
}

/// One step of the import: the key, what happens to it, and the version it
/// is based on (the environment's as read before the first publish).
#[derive(Debug)]
pub struct Step<'a> {
    /// The key.
    pub key: KeyName,
    /// What happens.
    pub outcome: Outcome,
    /// What the folder holds (none for a prune).
    pub wanted: Option<&'a Wanted>,
    /// The environment's version.
    pub live: Option<&'a ConfigVersion>,
}

/// Decides each key's outcome by comparing md5s and formats.
pub fn plan<'a>(wanted: &'a [Wanted], live: &'a [ConfigVersion], prune: bool) -> Vec<Step<'a>> {
    let live: BTreeMap<KeyName, &ConfigVersion> = live
        .iter()
        .filter(|v| !v.deleted)
        .map(|v| {
            let key = KeyName {
                group: v.group.clone(),
                key: v.key.clone(),
            };
            (key, v)
        })
        .collect();
    let mut steps: Vec<Step<'a>> = wanted
        .iter()
        .map(|w| {
            let now = live.get(&w.key).copied();
            let outcome = match now {
                None => Outcome::Created,
                Some(v) if v.md5 == md5_hex(&w.content) && v.format == w.format => {
                    Outcome::Unchanged
                }
                Some(_) => Outcome::Configured,
            };
            Step {
                key: w.key.clone(),
                outcome,
                wanted: Some(w),
                live: now,
            }
        })
        .collect();
    if prune {
        let held: HashSet<&KeyName> = wanted.iter().map(|w| &w.key).collect();
        for (key, v) in live.iter().filter(|(k, _)| !held.contains(k)) {
            steps.push(Step {
                key: key.clone(),
                outcome: Outcome::Pruned,
                wanted: None,
                live: Some(v),
            });
        }
    }
    steps.sort_by(|a, b| a.key.cmp(&b.key));
    steps
}

/// Checks every file as a publish would, so that one bad file imports nothing.
fn check_all(keys: &[Wanted]) -> Result<(), ClientError> {
    let problems: Vec<String> = keys
        .iter()
        .filter_map(|w| {
            check_publish(&w.key.group, &w.key.key, w.format, &w.content)
                .err()
                .map(|errors| {
                    let listed: Vec<String> = errors.iter().map(|e| e.message.clone()).collect();
                    format!("{}: {}", sanitize(&w.file), listed.join("; "))
                })
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ClientError::Local(format!(
            "nothing was imported:\n  {}",
            problems.join("\n  ")
        )))
    }
}

/// `autoglm config import`.
pub async fn run(args: &ClientArgs, a: &ImportArgs) -> Result<(), ClientError> {
    let folder = read_folder(&a.dir)?;
    let env = match (&a.env, &folder.index) {
        (Some(env), _) => env.clone(),
        (None, Some(index)) => index.environment.clone(),
        (None, None) => {
            return Err(ClientError::Local(format!(
                "{} has no {INDEX_FILE}; name the environment with --env",
                a.dir.display()
            )));
        }
    };
    for warning in &folder.warnings {
        print_stderr(&format!("warning: {warning}"));
    }
    check_all(&folder.keys)?;
    let client = Client::new(args)?;
    let live = api::live_keys(&client, &env, None).await?;
    let steps = plan(&folder.keys, &live, a.prune);
    for s in &steps {
        if let (Some(w), Some(v)) = (s.wanted, s.live)
            && s.outcome == Outcome::Configured
            && w.exported_md5.as_deref() == Some(md5_hex(&w.content).as_str())
        {
            print_stderr(&format!(
                "warning: {} is as exported, but {} has moved since (version {}); importing sets it back",
                sanitize(&w.file),
                label(&env, &s.key),
                v.version
            ));
        }
    }
    if a.request {
        return request(args, &client, &env, &steps, &a.message).await;
    }
    let suffix = if a.dry_run { " (dry run)" } else { "" };
    let mut counts: BTreeMap<Outcome, usize> = BTreeMap::new();
    let mut done = 0;
    for step in &steps {
        if !a.dry_run && step.outcome != Outcome::Unchanged {
            apply(&client, &env, step, &a.message)
                .await
                .inspect_err(|_| {
                    if done > 0 {
                        print_stderr(&format!(
                            "{done} key(s) were imported before this error; importing again \
                             once it is fixed changes only the rest"
                        ));
                    }
                })?;
            done += 1;
        }
        *counts.entry(step.outcome).or_default() += 1;
        print_stdout(&format!(
            "{} {}{suffix}\n",
            label(&env, &step.key),
            step.outcome.word()
        ));
    }
    let summary: Vec<String> = [
        Outcome::Created,
        Outcome::Configured,
        Outcome::Unchanged,
        Outcome::Pruned,
    ]
    .iter()
    .map(|o| format!("{} {}", counts.get(o).copied().unwrap_or(0), o.word()))
    .collect();
    print_stderr(&format!(
        "import into {}: {}{suffix}",
        sanitize(&env),
        summary.join(", ")
    ));
    Ok(())
}

/// Publishes or deletes one key, based on the version read before: a key
/// changed by someone else meanwhile is refused, not overwritten.
async fn apply(
    client: &Client,
    env: &str,
    step: &Step<'_>,
    message: &str,
) -> Result<(), ClientError> {
    let base_md5 = step.live.map(|v| v.md5.clone()).unwrap_or_default();
    let url = api::key_url(client, env, &step.key, &[])?;
    let result = match step.wanted {
        Some(w) => {
            let body = PublishConfig {
                format: Some(w.format),
                content: w.content.clone(),
                message: message.to_owned(),
                base_md5: Some(base_md5),
                base_version: None,
            };
            api::send::<ConfigVersion>(client, Method::PUT, url, &body)
                .await
                .map(drop)
        }
        None => {
            let mut url = url;
            url.query_pairs_mut()
                .append_pair("base_md5", &base_md5)
                .append_pair("message", message);
            client
                .send(client.request(Method::DELETE, url))
                .await
                .map(drop)
        }
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) => {
            let e = protected_hint(client, env, e, PASS_REQUEST).await;
            Err(e.within(&label(env, &step.key)))
        }
    }
}

/// `--request`: every change in one change request.
async fn request(
    args: &ClientArgs,
    client: &Client,
    env: &str,
    steps: &[Step<'_>],
    message: &str,
) -> Result<(), ClientError> {
    let publish: Vec<ProposedKey> = steps
        .iter()
        .filter(|s| s.outcome != Outcome::Unchanged)
        .map(|s| ProposedKey {
            group: s.key.group.clone(),
            key: s.key.key.clone(),
            format: s.wanted.map(|w| w.format),
            content: s.wanted.map(|w| w.content.clone()).unwrap_or_default(),
            delete: s.outcome == Outcome::Pruned,
        })
        .collect();
    if publish.is_empty() {
        print_stderr(&format!(
            "nothing to request: {} already holds the folder",
            sanitize(env)
        ));
        return Ok(());
    }
    let body = RequestChange {
        from: None,
        keys: Vec::new(),
        prune: false,
        publish,
        message: message.to_owned(),
    };
    super::promote::file_request(args, client, env, &body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(key: &str, content: &str) -> ConfigVersion {
        ConfigVersion {
            environment: "dev".into(),
            group: "g".into(),
            key: key.into(),
            version: 1,
            format: ConfigFormat::of_key(key),
            content: content.into(),
            md5: md5_hex(content),
            author: "a".into(),
            message: String::new(),
            created_at: chrono::DateTime::UNIX_EPOCH,
            deleted: false,
            revision: 1,
        }
    }

    #[test]
    fn outcomes_follow_md5_and_format() {
        let folder = tempfile::tempdir().expect("temp dir");
        let dir = folder.path();
        std::fs::create_dir_all(dir.join("g")).expect("mkdir");
        std::fs::create_dir_all(dir.join(".git")).expect("mkdir");
        std::fs::write(dir.join(".git/config"), "x").expect("write");
        std::fs::write(dir.join("g/same.txt"), "same").expect("write");
        std::fs::write(dir.join("g/new.yaml"), "a: 1\n").expect("write");
        std::fs::write(dir.join("g/edit.json"), "{\"b\": 2}").expect("write");
        std::fs::write(dir.join("g/bad name"), "x").expect("write");
        std::fs::write(dir.join("README.md"), "top-level files are not keys").expect("write");
        let read = read_folder(dir).expect("reads");
        assert!(read.index.is_none());
        assert_eq!(read.warnings.len(), 1, "{:?}", read.warnings);
        let names: Vec<String> = read.keys.iter().map(|w| w.key.to_string()).collect();
        assert_eq!(names, ["g/edit.json", "g/new.yaml", "g/same.txt"]);

        let envs = [
            live("same.txt", "same"),
            live("edit.json", "{}"),
            live("old.txt", "o"),
        ];
        let outcomes: Vec<(String, Outcome)> = plan(&read.keys, &envs, true)
            .iter()
            .map(|s| (s.key.key.clone(), s.outcome))
            .collect();
        assert_eq!(
            outcomes,
            [
                ("edit.json".into(), Outcome::Configured),
                ("new.yaml".into(), Outcome::Created),
                ("old.txt".into(), Outcome::Pruned),
                ("same.txt".into(), Outcome::Unchanged),
            ]
        );
        assert_eq!(plan(&read.keys, &envs, false).len(), 3, "no prune");
    }

    #[test]
    fn an_index_cannot_name_a_file_outside_the_folder() {
        let folder = tempfile::tempdir().expect("temp dir");
        let index = "environment: dev\nkeys:\n- group: g\n  key: k\n  format: text\n  file: ../../etc/passwd\n  md5: ''\n  version: 1\n";
        std::fs::write(folder.path().join(INDEX_FILE), index).expect("write");
        let error = read_folder(folder.path()).expect_err("refused");
        assert_eq!(error.exit_code(), 2);
        assert!(error.to_string().contains("escapes the folder"), "{error}");
    }

    #[test]
    fn a_broken_file_imports_nothing() {
        let wanted = Wanted {
            key: "g/a.json".parse().expect("key"),
            format: ConfigFormat::Json,
            file: "g/a.json".into(),
            content: "{\n  \"a\": }".into(),
            exported_md5: None,
        };
        let error = check_all(&[wanted]).expect_err("refused");
        assert!(
            error
                .to_string()
                .contains("g/a.json: not valid json at line 2"),
            "{error}"
        );
    }
}
