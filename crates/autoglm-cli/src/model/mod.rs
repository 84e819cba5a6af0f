//! `autoglm model ...`: create, push, list, get and delete registered models
//! through the console's `/api/v1/models` endpoints.
//!
//! This file holds the clap tree and its dispatch; `parse` reads the
//! `KEY=VALUE` flags, `verbs` makes the requests, and `table` draws what
//! `-o table` prints. `model pull` lives in `crate::pull`.

mod parse;
mod table;
mod verbs;

use std::path::PathBuf;

use autoglm_core::registry::VersionSpec;

pub use parse::{KeyValueError, parse_label, parse_labels, parse_param, parse_params};
pub use table::{format_name, model_details, models_table, version_details, versions_table};

use crate::ClientArgs;
use crate::client::ClientError;
use crate::output::print_stderr;

/// `autoglm model ...`.
#[derive(clap::Subcommand, Debug)]
pub enum ModelCommand {
    /// Register a model: a name and metadata (its versions hold the weights).
    Create {
        /// Model name: lower-case letters, digits and '-'.
        #[arg(value_name = "NAME")]
        name: String,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
        /// A label; repeat for several.
        #[arg(short = 'l', long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
    },
    /// Create a version: upload a file or a directory (or, with --server-path,
    /// copy one already on the console's machine).
    Push {
        /// Model name.
        #[arg(value_name = "NAME")]
        name: String,
        /// A file or a directory of files.
        #[arg(value_name = "PATH")]
        path: PathBuf,
        /// The version this one derives from (fine-tuned, quantised...).
        #[arg(long, value_name = "VERSION", value_parser = clap::value_parser!(i64).range(1..))]
        parent: Option<i64>,
        /// e.g. pytorch, llama.cpp, onnx.
        #[arg(long)]
        framework: Option<String>,
        /// e.g. text-generation, embeddings, classification.
        #[arg(long)]
        task: Option<String>,
        /// A parameter; VALUE is read as JSON when it parses, else as a string. Repeat for several.
        #[arg(long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
        /// PATH is on the console's machine: the console copies it, nothing is uploaded.
        #[arg(long)]
        server_path: bool,
    },
    /// List models.
    #[command(visible_alias = "ls")]
    List {
        /// Only models with all these labels.
        #[arg(
            short = 'l',
            long = "label",
            value_name = "KEY=VALUE,...",
            value_delimiter = ','
        )]
        labels: Vec<String>,
        /// Only models whose name or description contains TEXT.
        #[arg(long, value_name = "TEXT")]
        search: Option<String>,
        /// Only models with a version in this stage.
        #[arg(long, value_parser = ["none", "staging", "production", "archived"])]
        stage: Option<String>,
        /// At most this many models.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        limit: Option<u64>,
    },
    /// Show a model and its versions, or one version with its files.
    #[command(disable_version_flag = true)]
    Get {
        /// Model name.
        #[arg(value_name = "NAME")]
        name: String,
        /// Show this version.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
        version: Option<i64>,
    },
    /// Download a version's files into a folder, each checked against its
    /// recorded sha256; files already there with that digest are kept.
    #[command(disable_version_flag = true)]
    Pull {
        /// Model name.
        #[arg(value_name = "NAME")]
        name: String,
        /// The version to download.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
        version: i64,
        /// The folder to write into; created when missing.
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
    },
    /// Delete a model with all its versions, or one version.
    #[command(disable_version_flag = true)]
    Delete {
        /// Model name.
        #[arg(value_name = "NAME")]
        name: String,
        /// Delete only this version.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
        version: Option<i64>,
    },
}

/// Runs a model command; returns the process exit code: 0 ok, 1 the server
/// refused or failed (or could not be reached), 2 bad local input
/// (unreadable file, bad `--label` syntax). Errors are printed on stderr as
/// one `error: ...` line.
pub async fn run_model(args: &ClientArgs, command: ModelCommand) -> i32 {
    match run(args, command).await {
        Ok(()) => 0,
        Err(error) => {
            print_stderr(&format!("error: {error}"));
            error.exit_code()
        }
    }
}

async fn run(args: &ClientArgs, command: ModelCommand) -> Result<(), ClientError> {
    match command {
        ModelCommand::Create {
            name,
            description,
            labels,
        } => verbs::create(args, name, description, &labels).await,
        ModelCommand::Push {
            name,
            path,
            parent,
            framework,
            task,
            params,
            description,
            server_path,
        } => {
            let spec = VersionSpec {
                parent,
                framework,
                task,
                params: parse_params(&params)?,
                description,
            };
            verbs::push(args, &name, &path, spec, server_path).await
        }
        ModelCommand::List {
            labels,
            search,
            stage,
            limit,
        } => verbs::list(args, &labels, search, stage, limit).await,
        ModelCommand::Get { name, version } => verbs::get(args, &name, version).await,
        ModelCommand::Pull { name, version, to } => {
            crate::pull::pull(args, verbs::name_segment(&name)?, version, &to).await
        }
        ModelCommand::Delete { name, version } => verbs::delete(args, &name, version).await,
    }
}
