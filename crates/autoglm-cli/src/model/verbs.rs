//! The model commands' requests to `/api/v1/models` and what each prints:
//! the console's value with `-o json|yaml`, one line or a table otherwise.

use std::path::Path;

use autoglm_core::registry::{CreateModel, Model, ModelVersion, RegisterPath, VersionSpec};
use chrono::Utc;
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::parse::{parse_label, parse_labels};
use super::table::{format_name, model_details, models_table, version_details};
use crate::client::{Client, ClientError, IDEMPOTENCY_KEY_HEADER, io_reason};
use crate::output::{print_stderr, print_stdout, print_value, sanitize};
use crate::upload::{Progress, collect_files, file_part};
use crate::{ClientArgs, OutputFormat};

/// Most items asked of the console in one page.
const PAGE_SIZE: usize = 100;

/// A model name about to become a URL path segment. `.` and `..` cannot
/// travel as one, so they are refused here with the console's own words.
pub(super) fn name_segment(name: &str) -> Result<&str, ClientError> {
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

/// `path` made absolute against the working directory, as a string.
fn absolute_path(path: &Path) -> Result<String, ClientError> {
    let absolute = std::path::absolute(path).map_err(|e| {
        ClientError::Local(format!(
            "cannot make {} absolute: {}",
            path.display(),
            io_reason(&e)
        ))
    })?;
    absolute.into_os_string().into_string().map_err(|p| {
        ClientError::Local(format!(
            "path {} is not valid UTF-8",
            Path::new(&p).display()
        ))
    })
}

/// `model create`.
pub(super) async fn create(
    args: &ClientArgs,
    name: String,
    description: Option<String>,
    labels: &[String],
) -> Result<(), ClientError> {
    let labels = parse_labels(labels)?;
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

/// `model push`: uploads `path`, or with `server_path` has the console copy it.
pub(super) async fn push(
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

/// `model list`.
pub(super) async fn list(
    args: &ClientArgs,
    labels: &[String],
    search: Option<String>,
    stage: Option<String>,
    limit: Option<u64>,
) -> Result<(), ClientError> {
    let labels = labels
        .iter()
        .map(|l| parse_label(l))
        .collect::<Result<Vec<_>, _>>()?;
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

/// `model get`: the model and its versions, or one version.
pub(super) async fn get(
    args: &ClientArgs,
    name: &str,
    version: Option<i64>,
) -> Result<(), ClientError> {
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

/// `model delete`: the model with all its versions, or one version.
pub(super) async fn delete(
    args: &ClientArgs,
    name: &str,
    version: Option<i64>,
) -> Result<(), ClientError> {
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
    use crate::model::parse_params;

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
