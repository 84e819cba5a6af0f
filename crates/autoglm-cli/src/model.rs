//! `autoglm model ...`: create, push, list, get and delete registered models
//! through the console's `/api/v1/models` endpoints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use autoglm_core::artifact::{ArtifactFile, ArtifactFormat};
use autoglm_core::registry::{CreateModel, Model, ModelVersion, RegisterPath, VersionSpec};
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::client::{Client, ClientError, IDEMPOTENCY_KEY_HEADER};
use crate::output::{
    age, human_size, indent, or_none, print_stderr, print_stdout, print_value, render_fields,
    render_table, sanitize, short_digest,
};
use crate::upload::{Progress, collect_files, file_part};
use crate::{ClientArgs, OutputFormat};

/// Most items asked of the console in one page.
const PAGE_SIZE: usize = 100;

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
        } => create(args, name, description, &labels).await,
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
                params: parse_params(&params).map_err(ClientError::Local)?,
                description,
            };
            push(args, &name, &path, spec, server_path).await
        }
        ModelCommand::List {
            labels,
            search,
            stage,
            limit,
        } => list(args, &labels, search, stage, limit).await,
        ModelCommand::Get { name, version } => get(args, &name, version).await,
        ModelCommand::Pull { name, version, to } => {
            crate::pull::pull(args, name_segment(&name)?, version, &to).await
        }
        ModelCommand::Delete { name, version } => delete(args, &name, version).await,
    }
}

/// Parses `KEY=VALUE`. The key must not be empty; the value may be.
pub fn parse_label(item: &str) -> Result<(String, String), String> {
    let (key, value) = item
        .split_once('=')
        .ok_or_else(|| format!("invalid --label {item:?}: expected KEY=VALUE"))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(format!("invalid --label {item:?}: the key is empty"));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// Parses repeated `--label KEY=VALUE`; a key given twice is an error.
pub fn parse_labels(items: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    for item in items {
        let (key, value) = parse_label(item)?;
        if labels.insert(key.clone(), value).is_some() {
            return Err(format!("--label {key:?} is given twice"));
        }
    }
    Ok(labels)
}

/// Parses `KEY=VALUE` where VALUE is JSON when it parses (`0.001`, `true`,
/// `[1,2]`, `"4"`), else the string itself.
pub fn parse_param(item: &str) -> Result<(String, Value), String> {
    let (key, raw) = item
        .split_once('=')
        .ok_or_else(|| format!("invalid --param {item:?}: expected KEY=VALUE"))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(format!("invalid --param {item:?}: the key is empty"));
    }
    let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()));
    Ok((key.to_owned(), value))
}

/// Parses repeated `--param KEY=VALUE`; a key given twice is an error.
pub fn parse_params(items: &[String]) -> Result<Map<String, Value>, String> {
    let mut params = Map::new();
    for item in items {
        let (key, value) = parse_param(item)?;
        if params.insert(key.clone(), value).is_some() {
            return Err(format!("--param {key:?} is given twice"));
        }
    }
    Ok(params)
}

/// The wire name of a format.
pub fn format_name(format: ArtifactFormat) -> &'static str {
    match format {
        ArtifactFormat::Safetensors => "safetensors",
        ArtifactFormat::Gguf => "gguf",
        ArtifactFormat::Onnx => "onnx",
        ArtifactFormat::Other => "other",
    }
}

/// A model name about to become a URL path segment. `.` and `..` cannot
/// travel as one, so they are refused here with the console's own words.
fn name_segment(name: &str) -> Result<&str, ClientError> {
    if matches!(name, "." | "..") {
        let reason = autoglm_core::names::validate("model", name)
            .err()
            .map_or_else(
                || format!("model name {name:?} is not valid"),
                |e| e.to_string(),
            );
        return Err(ClientError::Local(format!("invalid_name: {reason}")));
    }
    Ok(name)
}

fn idempotency_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn decode<T: DeserializeOwned>(value: Value) -> Result<T, ClientError> {
    serde_json::from_value(value).map_err(|e| ClientError::Decode(e.to_string()))
}

fn timestamp(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!(
        "{} ({} ago)",
        at.to_rfc3339_opts(SecondsFormat::Secs, true),
        age(at, now)
    )
}

fn labels_text(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return crate::output::NONE.to_owned();
    }
    let joined: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    sanitize(&joined.join(","))
}

/// `key=value, ...` with strings unquoted, or `<none>`.
fn map_text(map: &Map<String, Value>) -> String {
    if map.is_empty() {
        return crate::output::NONE.to_owned();
    }
    let parts: Vec<String> = map
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect();
    sanitize(&parts.join(", "))
}

async fn create(
    args: &ClientArgs,
    name: String,
    description: Option<String>,
    labels: &[String],
) -> Result<(), ClientError> {
    let labels = parse_labels(labels).map_err(ClientError::Local)?;
    let client = Client::new(args)?;
    let url = client.url(&["api", "v1", "models"])?;
    let body = CreateModel {
        name,
        description,
        labels,
    };
    let request = client
        .request(Method::POST, url)
        .header(IDEMPOTENCY_KEY_HEADER, idempotency_key())
        .json(&body);
    let response = client.send(request).await?;
    let value: Value = client.json(response).await?;
    match args.output {
        format @ (OutputFormat::Json | OutputFormat::Yaml) => print_value(format, &value),
        OutputFormat::Table => print_stdout(&format!("model/{} created\n", sanitize(&body.name))),
    }
    Ok(())
}

/// `path` made absolute against the working directory, as a string.
fn absolute_path(path: &Path) -> Result<String, ClientError> {
    let absolute = std::path::absolute(path).map_err(|e| {
        ClientError::Local(format!(
            "cannot make {} absolute: {}",
            path.display(),
            crate::client::io_reason(&e)
        ))
    })?;
    absolute.into_os_string().into_string().map_err(|p| {
        ClientError::Local(format!(
            "path {} is not valid UTF-8",
            Path::new(&p).display()
        ))
    })
}

async fn push(
    args: &ClientArgs,
    name: &str,
    path: &Path,
    spec: VersionSpec,
    server_path: bool,
) -> Result<(), ClientError> {
    let segment = name_segment(name)?;
    let response = if server_path {
        let body = RegisterPath {
            path: absolute_path(path)?,
            spec,
        };
        let client = Client::new(args)?;
        let url = client.url(&["api", "v1", "models", segment, "versions"])?;
        let request = client
            .request(Method::POST, url)
            .header(IDEMPOTENCY_KEY_HEADER, idempotency_key())
            .json(&body);
        let response = client.send(request).await?;
        client.json::<Value>(response).await?
    } else {
        let artifact = collect_files(path).map_err(ClientError::Local)?;
        for skipped in &artifact.skipped {
            print_stderr(&format!(
                "warning: skipping {} (not a regular file)",
                sanitize(skipped)
            ));
        }
        let client = Client::new(args)?;
        let url = client.url(&["api", "v1", "models", segment, "versions"])?;
        let metadata = serde_json::to_string(&spec)
            .map_err(|e| ClientError::Local(format!("cannot encode the metadata: {e}")))?;
        let progress = Progress::start(artifact.total_size(), artifact.files.len());
        let mut form = Form::new().part(
            "metadata",
            Part::text(metadata)
                .mime_str("application/json")
                .map_err(|e| ClientError::Local(format!("cannot build the upload: {e}")))?,
        );
        for file in &artifact.files {
            form = form.part(
                "artifact",
                file_part(file, progress.counter()).map_err(ClientError::Local)?,
            );
        }
        let request = client
            .request(Method::POST, url)
            .header(IDEMPOTENCY_KEY_HEADER, idempotency_key())
            .multipart(form);
        let sent = client.send(request).await;
        progress.finish(sent.is_ok());
        client.json::<Value>(sent?).await?
    };
    match args.output {
        format @ (OutputFormat::Json | OutputFormat::Yaml) => print_value(format, &response),
        OutputFormat::Table => {
            let version: ModelVersion = decode(response)?;
            print_stdout(&format!(
                "model/{} version {} created ({}, {} bytes, {})\n",
                sanitize(&version.model),
                version.version,
                sanitize(&version.digest),
                version.size,
                format_name(version.format)
            ));
        }
    }
    Ok(())
}

async fn list(
    args: &ClientArgs,
    labels: &[String],
    search: Option<String>,
    stage: Option<String>,
    limit: Option<u64>,
) -> Result<(), ClientError> {
    let labels = labels
        .iter()
        .map(|l| parse_label(l))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ClientError::Local)?;
    let client = Client::new(args)?;
    let mut url = client.url(&["api", "v1", "models"])?;
    {
        let mut query = url.query_pairs_mut();
        if !labels.is_empty() {
            let selector: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            query.append_pair("label", &selector.join(","));
        }
        if let Some(search) = &search {
            query.append_pair("q", search);
        }
        if let Some(stage) = &stage {
            query.append_pair("stage", stage);
        }
    }
    let limit = limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX));
    let items: Vec<Value> = client.get_all(url, limit, PAGE_SIZE).await?;
    match args.output {
        format @ (OutputFormat::Json | OutputFormat::Yaml) => {
            print_value(format, &Value::Array(items))
        }
        OutputFormat::Table => {
            let models: Vec<Model> = items.into_iter().map(decode).collect::<Result<_, _>>()?;
            if models.is_empty() {
                print_stderr("No models found.");
            } else {
                print_stdout(&models_table(&models, Utc::now()));
            }
        }
    }
    Ok(())
}

/// The `model list` table.
pub fn models_table(models: &[Model], now: DateTime<Utc>) -> String {
    let rows: Vec<Vec<String>> = models
        .iter()
        .map(|m| {
            vec![
                sanitize(&m.name),
                m.version_count.to_string(),
                or_none(m.latest_version),
                labels_text(&m.labels),
                age(m.created_at, now),
            ]
        })
        .collect();
    render_table(&["NAME", "VERSIONS", "LATEST", "LABELS", "AGE"], &rows)
}

/// The versions table of `model get`.
pub fn versions_table(versions: &[ModelVersion], now: DateTime<Utc>) -> String {
    let rows: Vec<Vec<String>> = versions
        .iter()
        .map(|v| {
            vec![
                v.version.to_string(),
                v.stage.as_str().to_owned(),
                format_name(v.format).to_owned(),
                human_size(v.size),
                sanitize(&short_digest(&v.digest)),
                or_none(v.spec.parent),
                age(v.created_at, now),
            ]
        })
        .collect();
    render_table(
        &[
            "VERSION", "STAGE", "FORMAT", "SIZE", "DIGEST", "PARENT", "AGE",
        ],
        &rows,
    )
}

/// A model's details followed by its versions.
pub fn model_details(model: &Model, versions: &[ModelVersion], now: DateTime<Utc>) -> String {
    let mut out = render_fields(&[
        ("Name", sanitize(&model.name)),
        ("Tenant", sanitize(&model.tenant)),
        ("Description", or_none(model.description.as_deref())),
        ("Labels", labels_text(&model.labels)),
        ("Versions", model.version_count.to_string()),
        ("Latest", or_none(model.latest_version)),
        ("Created", timestamp(model.created_at, now)),
        ("Updated", timestamp(model.updated_at, now)),
    ]);
    out.push('\n');
    if versions.is_empty() {
        out.push_str("No versions.\n");
    } else {
        out.push_str(&versions_table(versions, now));
    }
    out
}

fn files_table(files: &[ArtifactFile]) -> String {
    let rows: Vec<Vec<String>> = files
        .iter()
        .map(|f| {
            vec![
                sanitize(&f.path),
                format_name(f.format).to_owned(),
                human_size(f.size),
                sanitize(&f.sha256.chars().take(12).collect::<String>()),
                if f.details.is_empty() {
                    String::new()
                } else {
                    map_text(&f.details)
                },
            ]
        })
        .collect();
    render_table(&["PATH", "FORMAT", "SIZE", "SHA256", "DETAILS"], &rows)
}

/// One version's details, with its files.
pub fn version_details(version: &ModelVersion, now: DateTime<Utc>) -> String {
    let mut out = render_fields(&[
        ("Model", sanitize(&version.model)),
        ("Version", version.version.to_string()),
        (
            "Stage",
            format!(
                "{} (since {})",
                version.stage.as_str(),
                timestamp(version.stage_changed_at, now)
            ),
        ),
        ("Source", version.source.as_str().to_owned()),
        ("Digest", sanitize(&version.digest)),
        (
            "Size",
            format!("{} ({} bytes)", human_size(version.size), version.size),
        ),
        ("Format", format_name(version.format).to_owned()),
        ("Parent", or_none(version.spec.parent)),
        ("Framework", or_none(version.spec.framework.as_deref())),
        ("Task", or_none(version.spec.task.as_deref())),
        ("Description", or_none(version.spec.description.as_deref())),
        ("Params", map_text(&version.spec.params)),
        ("Created by", sanitize(&version.created_by)),
        ("Created", timestamp(version.created_at, now)),
    ]);
    out.push_str(&format!("Files ({}):\n", version.files.len()));
    out.push_str(&indent(&files_table(&version.files), 2));
    out
}

async fn get(args: &ClientArgs, name: &str, version: Option<i64>) -> Result<(), ClientError> {
    let segment = name_segment(name)?;
    let client = Client::new(args)?;
    let now = Utc::now();
    if let Some(version) = version {
        let number = version.to_string();
        let url = client.url(&["api", "v1", "models", segment, "versions", &number])?;
        let value: Value = client.get_json(url).await?;
        match args.output {
            format @ (OutputFormat::Json | OutputFormat::Yaml) => print_value(format, &value),
            OutputFormat::Table => print_stdout(&version_details(&decode(value)?, now)),
        }
        return Ok(());
    }
    let url = client.url(&["api", "v1", "models", segment])?;
    let value: Value = client.get_json(url).await?;
    match args.output {
        format @ (OutputFormat::Json | OutputFormat::Yaml) => print_value(format, &value),
        OutputFormat::Table => {
            let model: Model = decode(value)?;
            let url = client.url(&["api", "v1", "models", segment, "versions"])?;
            let versions: Vec<ModelVersion> = client.get_all(url, None, PAGE_SIZE).await?;
            print_stdout(&model_details(&model, &versions, now));
        }
    }
    Ok(())
}

async fn delete(args: &ClientArgs, name: &str, version: Option<i64>) -> Result<(), ClientError> {
    let segment = name_segment(name)?;
    let client = Client::new(args)?;
    let number = version.map(|v| v.to_string());
    let url = match &number {
        Some(number) => client.url(&["api", "v1", "models", segment, "versions", number])?,
        None => client.url(&["api", "v1", "models", segment])?,
    };
    client.send(client.request(Method::DELETE, url)).await?;
    let message = match version {
        Some(version) => format!("model/{} version {version} deleted\n", sanitize(name)),
        None => format!("model/{} deleted\n", sanitize(name)),
    };
    print_stdout(&message);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoglm_core::registry::VersionSource;
    use autoglm_core::stage::Stage;
    use chrono::Duration;

    #[test]
    fn labels_parse_and_reject_bad_syntax() {
        assert_eq!(
            parse_label("team=nlp").expect("ok"),
            ("team".to_owned(), "nlp".to_owned())
        );
        assert_eq!(
            parse_label("expr=a=b").expect("ok"),
            ("expr".to_owned(), "a=b".to_owned())
        );
        assert_eq!(
            parse_label("empty=").expect("ok"),
            ("empty".to_owned(), String::new())
        );
        assert_eq!(
            parse_label("team").expect_err("no ="),
            "invalid --label \"team\": expected KEY=VALUE"
        );
        assert!(parse_label("=nlp").is_err());
        assert!(parse_label("").is_err());

        let labels = parse_labels(&["team=nlp".to_owned(), "tier=gold".to_owned()]).expect("ok");
        assert_eq!(labels.len(), 2);
        assert_eq!(labels["tier"], "gold");
        assert!(parse_labels(&["a=1".to_owned(), "a=2".to_owned()]).is_err());
    }

    #[test]
    fn params_are_json_when_they_parse() {
        let params = parse_params(&[
            "lr=0.001".to_owned(),
            "quant=q4_k_m".to_owned(),
            "ctx=4096".to_owned(),
            "chat=true".to_owned(),
            "layers=[1,2]".to_owned(),
            "quoted=\"7\"".to_owned(),
            "blank=".to_owned(),
        ])
        .expect("ok");
        assert_eq!(params["lr"], serde_json::json!(0.001));
        assert_eq!(params["quant"], serde_json::json!("q4_k_m"));
        assert_eq!(params["ctx"], serde_json::json!(4096));
        assert_eq!(params["chat"], serde_json::json!(true));
        assert_eq!(params["layers"], serde_json::json!([1, 2]));
        assert_eq!(params["quoted"], serde_json::json!("7"));
        assert_eq!(params["blank"], serde_json::json!(""));
        assert!(parse_param("novalue").is_err());
        assert!(parse_param("=1").is_err());
        assert!(parse_params(&["a=1".to_owned(), "a=2".to_owned()]).is_err());
    }

    #[test]
    fn dot_names_are_refused_locally_in_the_consoles_words() {
        let error = name_segment("..").expect_err("refused");
        assert_eq!(error.exit_code(), 2);
        assert_eq!(
            error.to_string(),
            "invalid_name: model name \"..\" contains '.'; use lower-case letters, digits and '-'"
        );
        assert!(name_segment("../x").is_ok(), "the console judges the rest");
    }

    #[test]
    fn relative_server_paths_become_absolute() {
        let absolute = absolute_path(Path::new("weights/model.gguf")).expect("absolute");
        assert!(Path::new(&absolute).is_absolute());
        assert!(absolute.ends_with("model.gguf"));
    }

    fn model(now: DateTime<Utc>) -> Model {
        Model {
            name: "llama".to_owned(),
            tenant: "default".to_owned(),
            description: None,
            labels: [("team".to_owned(), "nlp".to_owned())].into(),
            version_count: 2,
            latest_version: Some(2),
            created_at: now - Duration::hours(2),
            updated_at: now - Duration::minutes(5),
        }
    }

    fn version(now: DateTime<Utc>) -> ModelVersion {
        ModelVersion {
            model: "llama".to_owned(),
            version: 2,
            digest: format!("sha256:{}", "ab".repeat(32)),
            size: 3 * 1024 * 1024,
            format: ArtifactFormat::Safetensors,
            files: vec![ArtifactFile {
                path: "model.safetensors".to_owned(),
                size: 3 * 1024 * 1024,
                sha256: "ab".repeat(32),
                format: ArtifactFormat::Safetensors,
                details: [("tensors".to_owned(), serde_json::json!(291))]
                    .into_iter()
                    .collect(),
            }],
            spec: VersionSpec {
                parent: Some(1),
                ..VersionSpec::default()
            },
            stage: Stage::Staging,
            source: VersionSource::Upload,
            created_by: "admin".to_owned(),
            created_at: now - Duration::days(3),
            stage_changed_at: now - Duration::days(1),
        }
    }

    #[test]
    fn model_tables_have_the_kubectl_columns() {
        let now = Utc::now();
        let mut unlabelled = model(now);
        unlabelled.name = "bert".to_owned();
        unlabelled.labels.clear();
        unlabelled.latest_version = None;
        unlabelled.version_count = 0;
        let table = models_table(&[model(now), unlabelled], now);
        assert_eq!(
            table,
            "NAME    VERSIONS   LATEST   LABELS     AGE\n\
             llama   2          2        team=nlp   2h\n\
             bert    0          <none>   <none>     2h\n"
        );
    }

    #[test]
    fn version_tables_shorten_digests_and_sizes() {
        let now = Utc::now();
        let table = versions_table(&[version(now)], now);
        assert_eq!(
            table,
            "VERSION   STAGE     FORMAT        SIZE      DIGEST                PARENT   AGE\n\
             2         staging   safetensors   3.0 MiB   sha256:abababababab   1        3d\n"
        );
        let details = model_details(&model(now), &[version(now)], now);
        assert!(details.starts_with("Name:         llama\n"), "{details}");
        assert!(details.contains("\nVERSION   STAGE"), "{details}");
        assert!(model_details(&model(now), &[], now).ends_with("No versions.\n"));
    }

    #[test]
    fn version_details_list_files() {
        let now = Utc::now();
        let text = version_details(&version(now), now);
        assert!(
            text.contains("Size:         3.0 MiB (3145728 bytes)\n"),
            "{text}"
        );
        assert!(text.contains("Parent:       1\n"), "{text}");
        assert!(text.contains("Files (1):\n  PATH "), "{text}");
        assert!(
            text.contains("model.safetensors   safetensors   3.0 MiB   abababababab   tensors=291"),
            "{text}"
        );
    }

    #[test]
    fn version_specs_serialise_for_the_metadata_part() {
        let spec = VersionSpec {
            parent: Some(1),
            framework: Some("pytorch".to_owned()),
            task: None,
            params: parse_params(&["lr=0.1".to_owned()]).expect("ok"),
            description: None,
        };
        let json = serde_json::to_value(&spec).expect("serialises");
        assert_eq!(json["parent"], 1);
        assert_eq!(json["params"]["lr"], 0.1);
        let register = RegisterPath {
            path: "/models/llama".to_owned(),
            spec,
        };
        let json = serde_json::to_value(&register).expect("serialises");
        assert_eq!(json["path"], "/models/llama");
        assert_eq!(json["framework"], "pytorch");
    }
}
