//! The kubectl-like client of the autoglm console API.
//!
//! The `autoglm` binary flattens [`ClientArgs`] into its clap tree and mounts
//! [`ModelCommand`] as `autoglm model ...`; [`run_model`] runs one command and
//! returns the process exit code:
//!
//! * `0`: the command succeeded;
//! * `1`: the console refused or failed the request, or could not be reached;
//! * `2`: bad local input (unreadable file, bad `--label` syntax...).
//!
//! Errors are printed as one line on stderr, `error: CODE: DETAIL` for the
//! console's problem documents.
//!
//! The binary also mounts [`ResourceCommand`] at its top (`autoglm apply`,
//! `get`, `delete`, `scale`, `restart`), run by [`run_resource`] with the
//! same exit codes.
//!
//! The binary mounts [`ConfigCommand`] as `autoglm config ...` (the config
//! center's keys, history, promotions, export and import), run by
//! [`run_config`] with the same exit codes.
//!
//! Modules: [`client`] speaks HTTP to the console, [`output`] formats tables,
//! sizes and ages, [`upload`] streams local files as multipart parts,
//! [`manifests`] reads YAML manifests, and [`model`], [`resource`] and
//! [`config`] implement the commands.

pub mod alerts;
pub mod client;
pub mod config;
pub mod evaluate;
pub mod manifests;
pub mod model;
pub mod output;
mod pull;
pub mod resource;
pub mod rollout;
pub mod tasks;
pub mod upload;

use std::path::PathBuf;

pub use client::{Client, ClientError};
pub use config::{ConfigCommand, run_config};
pub use model::{ModelCommand, run_model};
pub use resource::{ResourceCommand, run_resource};

/// The console URL used when neither `--server` nor `AUTOGLM_SERVER` is given.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";
/// Where `autoglm up` writes the admin token, relative to the working directory.
pub const DEFAULT_TOKEN_FILE: &str = "./.autoglm/admin-token";

/// How results are printed on stdout.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// Aligned columns for people.
    #[default]
    Table,
    /// The console's JSON, pretty-printed, for scripts.
    Json,
    /// The same as YAML documents (what `apply -f` reads).
    Yaml,
}

/// Connection and output options shared by every client command.
#[derive(clap::Args, Debug, Clone)]
pub struct ClientArgs {
    /// Console URL.
    #[arg(
        long,
        env = "AUTOGLM_SERVER",
        global = true,
        default_value = DEFAULT_SERVER,
        value_name = "URL"
    )]
    pub server: String,

    /// Bearer token (API key or session JWT). When absent, read from --token-file.
    #[arg(
        long,
        env = "AUTOGLM_TOKEN",
        global = true,
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,

    /// File holding the bearer token, read when --token is absent (`autoglm up` writes it).
    #[arg(
        long,
        env = "AUTOGLM_TOKEN_FILE",
        global = true,
        default_value = DEFAULT_TOKEN_FILE,
        value_name = "PATH"
    )]
    pub token_file: PathBuf,

    /// Accept any TLS certificate (for a console started with --tls-self-signed).
    #[arg(long, global = true)]
    pub insecure_skip_tls_verify: bool,

    /// Output format.
    #[arg(
        short = 'o',
        long,
        global = true,
        value_enum,
        default_value_t = OutputFormat::Table
    )]
    pub output: OutputFormat,
}

impl Default for ClientArgs {
    fn default() -> ClientArgs {
        ClientArgs {
            server: DEFAULT_SERVER.to_owned(),
            token: None,
            token_file: PathBuf::from(DEFAULT_TOKEN_FILE),
            insecure_skip_tls_verify: false,
            output: OutputFormat::Table,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser, Subcommand};

    /// A tree shaped like the binary's, with the settings most likely to clash.
    #[derive(Parser, Debug)]
    #[command(name = "autoglm", version, propagate_version = true)]
    struct Cli {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: Top,
    }

    #[derive(Subcommand, Debug)]
    enum Top {
        Model {
            #[command(subcommand)]
            command: ModelCommand,
        },
    }

    /// The binary's top: the resource verbs bring their own client options.
    #[derive(Parser, Debug)]
    #[command(name = "autoglm", version, propagate_version = true)]
    struct Verbs {
        #[command(subcommand)]
        command: ResourceCommand,
    }

    #[test]
    fn clap_tree_is_consistent() {
        Cli::command().debug_assert();
        Verbs::command().debug_assert();
    }

    #[test]
    fn global_options_parse_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "autoglm",
            "model",
            "list",
            "-l",
            "team=nlp,tier=gold",
            "-o",
            "json",
            "--server",
            "https://console:8443",
            "--insecure-skip-tls-verify",
        ])
        .expect("parses");
        assert_eq!(cli.client.output, OutputFormat::Json);
        assert_eq!(cli.client.server, "https://console:8443");
        assert!(cli.client.insecure_skip_tls_verify);
        let Top::Model {
            command: ModelCommand::List { labels, .. },
        } = cli.command
        else {
            panic!("not a list command");
        };
        assert_eq!(labels, ["team=nlp", "tier=gold"]);
    }

    #[test]
    fn resource_verbs_sit_at_the_top_with_the_client_options() {
        let cli = Verbs::try_parse_from([
            "autoglm", "apply", "-f", "a.yaml", "-f", "dir", "-o", "yaml",
        ])
        .expect("parses");
        let ResourceCommand::Apply(apply) = cli.command else {
            panic!("not apply");
        };
        assert_eq!(apply.files.len(), 2);
        assert_eq!(apply.client.output, OutputFormat::Yaml);

        let cli = Verbs::try_parse_from([
            "autoglm",
            "scale",
            "svc",
            "chat",
            "--replicas",
            "3",
            "--server",
            "http://console:8080",
        ])
        .expect("parses");
        let ResourceCommand::Scale(scale) = cli.command else {
            panic!("not scale");
        };
        assert_eq!(scale.target.name, "chat");
        assert_eq!(scale.replicas, 3);
        assert_eq!(scale.target.client.server, "http://console:8080");
        assert!(
            Verbs::try_parse_from(["autoglm", "apply"]).is_err(),
            "-f is required"
        );
        assert!(Verbs::try_parse_from(["autoglm", "get", "pods"]).is_err());
        assert!(
            Verbs::try_parse_from(["autoglm", "scale", "svc", "chat", "--replicas", "-1"]).is_err()
        );
    }

    #[test]
    fn version_flag_is_the_model_version() {
        let cli = Cli::try_parse_from(["autoglm", "model", "get", "llama", "--version", "3"])
            .expect("parses");
        let Top::Model {
            command: ModelCommand::Get { name, version },
        } = cli.command
        else {
            panic!("not a get command");
        };
        assert_eq!((name.as_str(), version), ("llama", Some(3)));
        assert!(
            Cli::try_parse_from(["autoglm", "model", "delete", "llama", "--version", "0"]).is_err()
        );
    }

    #[test]
    fn push_collects_repeated_params() {
        let cli = Cli::try_parse_from([
            "autoglm",
            "model",
            "push",
            "llama",
            "./weights",
            "--param",
            "lr=0.001",
            "--param",
            "quant=q4",
            "--parent",
            "1",
            "--server-path",
        ])
        .expect("parses");
        let Top::Model {
            command:
                ModelCommand::Push {
                    params,
                    parent,
                    server_path,
                    ..
                },
        } = cli.command
        else {
            panic!("not a push command");
        };
        assert_eq!(params, ["lr=0.001", "quant=q4"]);
        assert_eq!(parent, Some(1));
        assert!(server_path);
    }
}
