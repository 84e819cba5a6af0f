//! `autoglm config ...`: the config center from the command line, a
//! kubectl-like client of the console's `/api/v1/config` endpoints.
//!
//! This file holds the clap tree, the `[GROUP/]KEY` argument and how errors
//! are reported; [`keys`] reads and writes one key (get, set, delete,
//! history, diff, rollback), [`watch`] long-polls for changes, [`promote`]
//! moves keys between environments and decides change requests, and
//! [`export`] and [`import`] mirror an environment in a folder laid out by
//! [`index`]. [`api`] holds the URLs and reads they share.

mod api;
mod export;
mod import;
mod index;
mod keys;
mod promote;
mod watch;

use std::fmt;
use std::str::FromStr;

use autoglm_core::config::{DEFAULT_GROUP, check_key_name};
use autoglm_core::error::Problem;
use reqwest::StatusCode;

use crate::ClientArgs;
use crate::client::{Client, ClientError};
use crate::output::{print_stderr, sanitize};

/// `autoglm config ...`.
#[derive(clap::Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print a key's content byte for byte, or list an environment's keys.
    #[command(disable_version_flag = true)]
    Get(keys::GetArgs),
    /// Publish a key's next version from a file, a literal or stdin.
    Set(keys::SetArgs),
    /// Delete a key (its history stays).
    Delete(keys::DeleteArgs),
    /// List every version of a key, newest first.
    History(keys::KeyArgs),
    /// Show the unified diff between two versions of a key.
    Diff(keys::DiffArgs),
    /// Publish an earlier version's content again.
    Rollback(keys::RollbackArgs),
    /// Print one line per change of the keys, until interrupted.
    Watch(watch::WatchArgs),
    /// Make one environment hold another's keys: the plan with its diffs, then the change.
    Promote(promote::PromoteArgs),
    /// List change requests, newest first.
    Requests(promote::RequestsArgs),
    /// Approve another user's change request: its changes land.
    Approve(promote::DecideArgs),
    /// Reject another user's change request.
    Reject(promote::DecideArgs),
    /// Write every key of an environment to a folder, one file each, with an index.
    Export(export::ExportArgs),
    /// Publish the files of an exported folder whose content changed.
    Import(import::ImportArgs),
}

/// Runs a config command; returns the process exit code as
/// [`run_model`](crate::run_model) does: 0 ok, 1 refused by the console or
/// unreachable, 2 bad local input.
pub async fn run_config(args: &ClientArgs, command: ConfigCommand) -> i32 {
    let result = match &command {
        ConfigCommand::Get(a) => keys::get(args, a).await,
        ConfigCommand::Set(a) => keys::set(args, a).await,
        ConfigCommand::Delete(a) => keys::delete(args, a).await,
        ConfigCommand::History(a) => keys::history(args, a).await,
        ConfigCommand::Diff(a) => keys::diff(args, a).await,
        ConfigCommand::Rollback(a) => keys::rollback(args, a).await,
        ConfigCommand::Watch(a) => watch::run(args, a).await,
        ConfigCommand::Promote(a) => promote::run(args, a).await,
        ConfigCommand::Requests(a) => promote::requests(args, a).await,
        ConfigCommand::Approve(a) => promote::decide(args, a, "approve").await,
        ConfigCommand::Reject(a) => promote::decide(args, a, "reject").await,
        ConfigCommand::Export(a) => export::run(args, a).await,
        ConfigCommand::Import(a) => import::run(args, a).await,
    };
    match result {
        Ok(()) => 0,
        Err(error) => {
            report(&error);
            error.exit_code()
        }
    }
}

/// A key on the command line: `GROUP/KEY`, or `KEY` in `DEFAULT_GROUP`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyName {
    /// The group.
    pub group: String,
    /// The key.
    pub key: String,
}

impl KeyName {
    /// A key, checked by the console's rules.
    pub fn new(group: &str, key: &str) -> Result<KeyName, String> {
        check_key_name("group", group)?;
        check_key_name("key", key)?;
        Ok(KeyName {
            group: group.to_owned(),
            key: key.to_owned(),
        })
    }
}

impl FromStr for KeyName {
    type Err = String;

    /// Checked here, so that a typo is a usage error before anything is sent.
    fn from_str(s: &str) -> Result<KeyName, String> {
        match s.split_once('/') {
            Some((group, key)) => KeyName::new(group, key),
            None => KeyName::new(DEFAULT_GROUP, s),
        }
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.group, self.key)
    }
}

/// `config/ENV/GROUP/KEY`, as the commands name a key in what they print.
pub fn label(env: &str, key: &KeyName) -> String {
    sanitize(&format!("config/{env}/{key}"))
}

/// The console's problem document inside an error, if any.
fn problem(error: &ClientError) -> Option<&Problem> {
    match error {
        ClientError::Problem { problem, .. } => Some(problem),
        ClientError::Within { error, .. } => problem(error),
        _ => None,
    }
}

/// Prints an error on stderr: one line, then one line per field error (the
/// detail already lists them on one line; a content error with its line and
/// column reads better alone).
fn report(error: &ClientError) {
    match problem(error) {
        Some(p) if !p.errors.is_empty() => {
            let first = match error {
                ClientError::Within { context, .. } => format!("{context}: "),
                _ => String::new(),
            };
            print_stderr(&format!(
                "error: {first}{}: {}",
                sanitize(&p.code),
                sanitize(&p.title)
            ));
            for e in &p.errors {
                print_stderr(&format!("  {}", sanitize(&e.to_string())));
            }
            if let ClientError::Problem {
                hint: Some(hint), ..
            } = error
            {
                print_stderr(&format!("  {hint}"));
            }
        }
        _ => print_stderr(&format!("error: {error}")),
    }
}

/// What a refused write of a protected environment suggests, for the
/// commands that take `--request`.
pub const PASS_REQUEST: &str = "pass --request to file a change request instead";

/// Adds how to go on from the command line when a write was refused because
/// `env` is protected (the console's detail names the HTTP endpoint):
/// `instead`, e.g. to pass `--request`. Another refusal (no
/// `config:write` at all) is left as it is.
pub async fn protected_hint(
    client: &Client,
    env: &str,
    mut error: ClientError,
    instead: &str,
) -> ClientError {
    if error.status() != Some(StatusCode::FORBIDDEN) {
        return error;
    }
    if let Ok(environment) = api::environment(client, env).await
        && environment.protected
        && let ClientError::Problem { hint, .. } = &mut error
    {
        *hint = Some(format!(
            "{instead}; a second user approves it with `autoglm config approve ID`"
        ));
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser, Debug)]
    #[command(name = "autoglm", version, propagate_version = true)]
    struct Cli {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: ConfigCommand,
    }

    fn parse(args: &[&str]) -> Result<ConfigCommand, clap::Error> {
        let mut all = vec!["autoglm"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).map(|c| c.command)
    }

    #[test]
    fn the_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn keys_default_to_the_default_group_and_are_checked() {
        assert_eq!(
            "app.yaml".parse::<KeyName>(),
            Ok(KeyName {
                group: DEFAULT_GROUP.into(),
                key: "app.yaml".into()
            })
        );
        let k: KeyName = "models/chat.json".parse().expect("valid");
        assert_eq!((k.group.as_str(), k.key.as_str()), ("models", "chat.json"));
        assert_eq!(k.to_string(), "models/chat.json");
        for bad in ["a/b/c", "../x", "", "g/", "/k", "a b"] {
            assert!(bad.parse::<KeyName>().is_err(), "{bad:?} passed");
        }
        assert_eq!(label("dev", &k), "config/dev/models/chat.json");
    }

    #[test]
    fn set_takes_one_source() {
        let Ok(ConfigCommand::Set(set)) = parse(&[
            "set",
            "dev",
            "g/app.yaml",
            "-f",
            "app.yaml",
            "-m",
            "why",
            "--base-version",
            "3",
        ]) else {
            panic!("not set");
        };
        assert_eq!(set.base_version, Some(3));
        assert!(parse(&["set", "dev", "k"]).is_err(), "a source is required");
        assert!(parse(&["set", "dev", "k", "-f", "a", "--from-literal", "x"]).is_err());
        assert!(parse(&["set", "dev", "k", "-"]).is_ok(), "stdin");
        assert!(
            parse(&["set", "dev", "k", "x"]).is_err(),
            "only - is a source"
        );
        assert!(parse(&["set", "dev", "k", "--from-literal", "x", "--format", "ini"]).is_err());
        assert!(parse(&["get", "dev", "k", "--version", "2", "-o", "json"]).is_ok());
    }

    #[test]
    fn promote_takes_keys_and_refuses_a_dry_run_request() {
        let Ok(ConfigCommand::Promote(p)) = parse(&[
            "promote", "dev", "test", "--key", "a.yaml", "--key", "g/b", "--prune", "-y",
        ]) else {
            panic!("not promote");
        };
        assert_eq!(p.keys.len(), 2);
        assert!(p.prune && p.yes);
        assert!(parse(&["promote", "dev", "test", "--dry-run", "--request"]).is_err());
        assert!(
            parse(&["rollback", "dev", "k"]).is_err(),
            "--to-version is required"
        );
        assert!(parse(&["watch", "dev"]).is_err(), "a key is required");
    }
}
