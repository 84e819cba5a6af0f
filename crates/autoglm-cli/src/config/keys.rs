//! One key: `config get` (the content byte for byte, or the environment's
//! keys as a table), `set`, `delete`, `history`, `diff` and `rollback`.

use std::io::Read;
use std::path::{Path, PathBuf};

use autoglm_core::config::{
    ConfigDiff, ConfigFormat, ConfigVersion, ProposedKey, PublishConfig, RequestChange,
    RollbackConfig,
};
use autoglm_core::registry::Page;
use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::{KeyName, PASS_REQUEST, api, label, protected_hint};
use crate::client::{Client, ClientError, io_reason};
use crate::output::{NONE, age, print_stderr, print_stdout, print_value, render_table, sanitize};
use crate::resource::print_documents;
use crate::{ClientArgs, OutputFormat};

/// An environment and one of its keys.
#[derive(clap::Args, Debug)]
pub struct KeyArgs {
    /// The environment (dev, test, staging, prod...).
    #[arg(value_name = "ENV")]
    pub env: String,
    /// The key, in DEFAULT_GROUP unless GROUP/ is given.
    #[arg(value_name = "[GROUP/]KEY")]
    pub key: KeyName,
}

/// `autoglm config get`.
#[derive(clap::Args, Debug)]
pub struct GetArgs {
    /// The environment.
    #[arg(value_name = "ENV")]
    pub env: String,
    /// The key; without it, the environment's keys are listed.
    #[arg(value_name = "[GROUP/]KEY")]
    pub key: Option<KeyName>,
    /// An earlier version of the key instead of its current one.
    #[arg(long, value_name = "N", requires = "key")]
    pub version: Option<u64>,
    /// List only this group's keys.
    #[arg(long, value_name = "GROUP", conflicts_with = "key")]
    pub group: Option<String>,
}

/// `autoglm config set`.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["file", "literal", "stdin"])))]
pub struct SetArgs {
    /// The key.
    #[command(flatten)]
    pub at: KeyArgs,
    /// `-` reads the content from stdin.
    #[arg(value_name = "-", value_parser = ["-"])]
    pub stdin: Option<String>,
    /// The file holding the content, sent byte for byte (`-` for stdin).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The content itself.
    #[arg(long = "from-literal", value_name = "TEXT")]
    pub literal: Option<String>,
    /// How the content is checked: yaml, json, toml, properties or text
    /// (default: the key's current format, else its extension's).
    #[arg(long, value_name = "FORMAT", value_parser = parse_format)]
    pub format: Option<ConfigFormat>,
    /// Why (kept in the history).
    #[arg(short = 'm', long, value_name = "MESSAGE", default_value = "")]
    pub message: String,
    /// Publish only if the key's md5 is still this one (empty: only if it does not exist).
    #[arg(long, value_name = "MD5")]
    pub base_md5: Option<String>,
    /// Publish only if the key's version is still this one (0: only if it does not exist).
    #[arg(long, value_name = "N")]
    pub base_version: Option<u64>,
    /// File a change request for a second user to approve instead of publishing.
    #[arg(long, conflicts_with_all = ["base_md5", "base_version"])]
    pub request: bool,
}

/// `autoglm config delete`.
#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    /// The key.
    #[command(flatten)]
    pub at: KeyArgs,
    /// Delete only if the key's md5 is still this one.
    #[arg(long, value_name = "MD5")]
    pub base_md5: Option<String>,
    /// Why (kept in the history).
    #[arg(short = 'm', long, value_name = "MESSAGE", default_value = "")]
    pub message: String,
    /// File a change request for a second user to approve instead of deleting.
    #[arg(long, conflicts_with = "base_md5")]
    pub request: bool,
}

/// `autoglm config diff`.
#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    /// The key.
    #[command(flatten)]
    pub at: KeyArgs,
    /// The older version (default: the one before --to; 0 is empty).
    #[arg(long, value_name = "N")]
    pub from: Option<u64>,
    /// The newer version (default: the current one).
    #[arg(long, value_name = "M")]
    pub to: Option<u64>,
}

/// `autoglm config rollback`.
#[derive(clap::Args, Debug)]
pub struct RollbackArgs {
    /// The key.
    #[command(flatten)]
    pub at: KeyArgs,
    /// The version whose content comes back.
    #[arg(long, value_name = "N")]
    pub to_version: u64,
    /// Why (default: `rollback to version N`).
    #[arg(short = 'm', long, value_name = "MESSAGE", default_value = "")]
    pub message: String,
}

/// A format by its name (`yml` and `txt` too).
pub fn parse_format(s: &str) -> Result<ConfigFormat, String> {
    ConfigFormat::parse(s)
        .ok_or_else(|| format!("unknown format {s:?}; use yaml, json, toml, properties or text"))
}

/// `autoglm config get`.
pub async fn get(args: &ClientArgs, a: &GetArgs) -> Result<(), ClientError> {
    let client = Client::new(args)?;
    let Some(key) = &a.key else {
        return list(args, &client, &a.env, a.group.as_deref()).await;
    };
    let version: ConfigVersion = match a.version {
        Some(n) => {
            let url = api::key_url(&client, &a.env, key, &["versions", &n.to_string()])?;
            client.get_json(url).await?
        }
        None => {
            client
                .get_json(api::key_url(&client, &a.env, key, &[])?)
                .await?
        }
    };
    match args.output {
        OutputFormat::Table if version.deleted => Err(ClientError::Local(format!(
            "version {} of {} is a delete; it has no content",
            version.version,
            label(&a.env, key)
        ))),
        // The bytes as published: no newline added, nothing escaped.
        OutputFormat::Table => {
            print_stdout(&version.content);
            Ok(())
        }
        format => {
            print_value(format, &to_value(&version));
            Ok(())
        }
    }
}

fn to_value<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

async fn list(
    args: &ClientArgs,
    client: &Client,
    env: &str,
    group: Option<&str>,
) -> Result<(), ClientError> {
    let keys = api::live_keys(client, env, group).await?;
    match args.output {
        OutputFormat::Table if keys.is_empty() => {
            print_stderr(&format!("No keys found in environment {}.", sanitize(env)));
        }
        OutputFormat::Table => print_stdout(&keys_table(&keys, Utc::now())),
        OutputFormat::Json => print_stdout(&crate::output::pretty_json(&to_value(&keys))),
        OutputFormat::Yaml => print_documents(args.output, keys.iter().map(to_value).collect()),
    }
    Ok(())
}

/// The `config get ENV` table.
pub fn keys_table(keys: &[ConfigVersion], now: chrono::DateTime<Utc>) -> String {
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            vec![
                sanitize(&k.group),
                sanitize(&k.key),
                k.format.as_str().to_owned(),
                k.version.to_string(),
                k.md5.clone(),
                age(k.created_at, now),
            ]
        })
        .collect();
    render_table(
        &["GROUP", "KEY", "FORMAT", "VERSION", "MD5", "UPDATED"],
        &rows,
    )
}

/// Reads content to publish, byte for byte; it must be UTF-8 text.
pub fn read_content(path: &Path) -> Result<String, ClientError> {
    let (bytes, name) = if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| ClientError::Local(format!("cannot read stdin: {}", io_reason(&e))))?;
        (bytes, "stdin".to_owned())
    } else {
        let bytes = std::fs::read(path).map_err(|e| {
            ClientError::Local(format!("cannot read {}: {}", path.display(), io_reason(&e)))
        })?;
        (bytes, path.display().to_string())
    };
    String::from_utf8(bytes).map_err(|e| {
        ClientError::Local(format!(
            "{name} is not UTF-8 text (invalid byte at offset {}); the config center holds text",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// `autoglm config set`.
pub async fn set(args: &ClientArgs, a: &SetArgs) -> Result<(), ClientError> {
    let content = match (&a.literal, &a.file) {
        (Some(text), _) => text.clone(),
        (None, Some(file)) => read_content(file)?,
        (None, None) => read_content(Path::new("-"))?,
    };
    let client = Client::new(args)?;
    let (env, key) = (&a.at.env, &a.at.key);
    let before = api::current(&client, env, key).await?;
    // A new version keeps the key's format unless told otherwise (the
    // console would take it from the key's extension).
    let format = a.format.or(before.as_ref().map(|v| v.format));
    if a.request {
        let body = RequestChange {
            from: None,
            keys: Vec::new(),
            prune: false,
            publish: vec![ProposedKey {
                group: key.group.clone(),
                key: key.key.clone(),
                format,
                content,
                delete: false,
            }],
            message: a.message.clone(),
        };
        return super::promote::file_request(args, &client, env, &body).await;
    }
    let body = PublishConfig {
        format,
        content,
        message: a.message.clone(),
        base_md5: a.base_md5.clone(),
        base_version: a.base_version,
    };
    let url = api::key_url(&client, env, key, &[])?;
    let (_, version): (StatusCode, ConfigVersion) =
        match api::send(&client, Method::PUT, url, &body).await {
            Ok(answer) => answer,
            Err(e) => return Err(protected_hint(&client, env, e, PASS_REQUEST).await),
        };
    let unchanged = before.is_some_and(|b| b.version == version.version);
    let verb = if unchanged { "unchanged" } else { "published" };
    match args.output {
        OutputFormat::Table => print_stdout(&format!(
            "{} {verb} (version {})\n",
            label(env, key),
            version.version
        )),
        format => print_value(format, &to_value(&version)),
    }
    Ok(())
}

/// `autoglm config delete`.
pub async fn delete(args: &ClientArgs, a: &DeleteArgs) -> Result<(), ClientError> {
    let client = Client::new(args)?;
    let (env, key) = (&a.at.env, &a.at.key);
    if a.request {
        let body = RequestChange {
            from: None,
            keys: Vec::new(),
            prune: false,
            publish: vec![ProposedKey {
                group: key.group.clone(),
                key: key.key.clone(),
                format: None,
                content: String::new(),
                delete: true,
            }],
            message: a.message.clone(),
        };
        return super::promote::file_request(args, &client, env, &body).await;
    }
    let mut url = api::key_url(&client, env, key, &[])?;
    {
        let mut query = url.query_pairs_mut();
        if let Some(md5) = &a.base_md5 {
            query.append_pair("base_md5", md5);
        }
        if !a.message.is_empty() {
            query.append_pair("message", &a.message);
        }
    }
    if let Err(e) = client.send(client.request(Method::DELETE, url)).await {
        return Err(protected_hint(&client, env, e, PASS_REQUEST).await);
    }
    print_stdout(&format!("{} deleted\n", label(env, key)));
    Ok(())
}

/// `autoglm config history`.
pub async fn history(args: &ClientArgs, a: &KeyArgs) -> Result<(), ClientError> {
    let client = Client::new(args)?;
    let url = api::key_url(&client, &a.env, &a.key, &["versions"])?;
    let page: Page<ConfigVersion> = client.get_json(url).await?;
    match args.output {
        OutputFormat::Table => print_stdout(&history_table(&page.items, Utc::now())),
        OutputFormat::Json => print_stdout(&crate::output::pretty_json(&to_value(&page.items))),
        OutputFormat::Yaml => {
            print_documents(args.output, page.items.iter().map(to_value).collect());
        }
    }
    Ok(())
}

/// The `config history` table, newest first as the console answers.
pub fn history_table(versions: &[ConfigVersion], now: chrono::DateTime<Utc>) -> String {
    let rows: Vec<Vec<String>> = versions
        .iter()
        .map(|v| {
            vec![
                v.version.to_string(),
                v.format.as_str().to_owned(),
                if v.deleted {
                    "<deleted>".to_owned()
                } else {
                    v.md5.clone()
                },
                sanitize(&v.author),
                age(v.created_at, now),
                if v.message.is_empty() {
                    NONE.to_owned()
                } else {
                    sanitize(&v.message)
                },
            ]
        })
        .collect();
    render_table(
        &["VERSION", "FORMAT", "MD5", "AUTHOR", "UPDATED", "MESSAGE"],
        &rows,
    )
}

/// `autoglm config diff`.
pub async fn diff(args: &ClientArgs, a: &DiffArgs) -> Result<(), ClientError> {
    let client = Client::new(args)?;
    let mut url = api::key_url(&client, &a.at.env, &a.at.key, &["diff"])?;
    {
        let mut query = url.query_pairs_mut();
        if let Some(from) = a.from {
            query.append_pair("from", &from.to_string());
        }
        if let Some(to) = a.to {
            query.append_pair("to", &to.to_string());
        }
    }
    let diff: ConfigDiff = client.get_json(url).await?;
    match args.output {
        OutputFormat::Table if diff.unified.is_empty() => print_stderr(&format!(
            "versions {} and {} hold the same content",
            diff.from, diff.to
        )),
        // As `diff -u` prints it, so that it can go to `patch` or a pager.
        OutputFormat::Table => print_stdout(&diff.unified),
        format => print_value(format, &to_value(&diff)),
    }
    Ok(())
}

/// `autoglm config rollback`.
pub async fn rollback(args: &ClientArgs, a: &RollbackArgs) -> Result<(), ClientError> {
    let client = Client::new(args)?;
    let (env, key) = (&a.at.env, &a.at.key);
    let before = api::current(&client, env, key).await?;
    let url = api::key_url(&client, env, key, &["rollback"])?;
    let body = RollbackConfig {
        version: a.to_version,
        message: a.message.clone(),
    };
    let (_, version): (StatusCode, ConfigVersion) = match api::send(
        &client,
        Method::POST,
        url,
        &body,
    )
    .await
    {
        Ok(answer) => answer,
        Err(e) => {
            let instead = "file a change request instead: `autoglm config get ENV KEY --version N | autoglm config set ENV KEY - --request`";
            return Err(protected_hint(&client, env, e, instead).await);
        }
    };
    match args.output {
        OutputFormat::Table if before.is_some_and(|b| b.version == version.version) => {
            print_stdout(&format!(
                "{} unchanged (version {} already holds version {}'s content)\n",
                label(env, key),
                version.version,
                a.to_version
            ));
        }
        OutputFormat::Table => print_stdout(&format!(
            "{} rolled back to version {} (version {})\n",
            label(env, key),
            a.to_version,
            version.version
        )),
        format => print_value(format, &to_value(&version)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(key: &str, v: u64, deleted: bool, message: &str) -> ConfigVersion {
        let at = chrono::DateTime::UNIX_EPOCH;
        ConfigVersion {
            environment: "dev".into(),
            group: "DEFAULT_GROUP".into(),
            key: key.into(),
            version: v,
            format: ConfigFormat::of_key(key),
            content: String::new(),
            md5: if deleted {
                String::new()
            } else {
                "d41d8cd98f00b204e9800998ecf8427e".into()
            },
            author: "admin".into(),
            message: message.into(),
            created_at: at,
            deleted,
            revision: v,
        }
    }

    #[test]
    fn tables_read_like_kubectl() {
        let now = chrono::DateTime::UNIX_EPOCH + chrono::Duration::minutes(3);
        assert_eq!(
            keys_table(&[version("app.yaml", 2, false, "")], now),
            "GROUP           KEY        FORMAT   VERSION   MD5                                UPDATED\n\
             DEFAULT_GROUP   app.yaml   yaml     2         d41d8cd98f00b204e9800998ecf8427e   3m\n"
        );
        let history = history_table(
            &[
                version("a.json", 2, true, ""),
                version("a.json", 1, false, "first\nline"),
            ],
            now,
        );
        assert_eq!(
            history.lines().collect::<Vec<_>>(),
            [
                "VERSION   FORMAT   MD5                                AUTHOR   UPDATED   MESSAGE",
                "2         json     <deleted>                          admin    3m        <none>",
                "1         json     d41d8cd98f00b204e9800998ecf8427e   admin    3m        first\\nline",
            ]
        );
    }

    #[test]
    fn content_is_read_byte_for_byte_and_must_be_text() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("a.txt");
        std::fs::write(&file, "no newline at the end — ünïcödé\r\n\tx").expect("write");
        assert_eq!(
            read_content(&file).expect("reads"),
            "no newline at the end — ünïcödé\r\n\tx"
        );
        std::fs::write(&file, b"ok\xff").expect("write");
        let error = read_content(&file).expect_err("not UTF-8");
        assert_eq!(error.exit_code(), 2);
        assert!(error.to_string().contains("offset 2"), "{error}");
        let missing = read_content(&dir.path().join("nope")).expect_err("missing");
        assert_eq!(missing.exit_code(), 2);
    }
}
