//! `autoglm evaluate MODEL --version N --service S -f DATASET.jsonl`: runs a
//! dataset through a version (waiting with progress unless `--no-wait`) and
//! prints what it measured; without `-f`, lists the version's evaluations.

use std::path::PathBuf;
use std::time::Duration;

use autoglm_core::evaluation::Evaluation;
use autoglm_core::task::Task;
use serde_json::{Value, json};

use crate::client::{Client, ClientError};
use crate::output::{print_stderr, print_stdout, render_table, sanitize};
use crate::tasks::{Started, wait_all};
use crate::{ClientArgs, OutputFormat};

/// `autoglm evaluate`.
#[derive(clap::Args, Debug)]
pub struct EvaluateArgs {
    /// Connection and output.
    #[command(flatten)]
    pub client: ClientArgs,
    /// The model.
    #[arg(value_name = "MODEL")]
    pub model: String,
    /// The version to evaluate.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
    pub version: i64,
    /// The dataset: JSON lines, one request each (messages, prompt, input or
    /// inputs), each with an optional label. Without it, list the version's evaluations.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE",
        requires = "service"
    )]
    pub file: Option<PathBuf>,
    /// The service whose replicas of the version answer.
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Requests in flight at once (1 to 64; the console's default is 4).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<u32>,
    /// Return once the evaluation is queued.
    #[arg(long)]
    pub no_wait: bool,
    /// Give up waiting after this long, e.g. 10m.
    #[arg(long, default_value = "60m", value_parser = parse_timeout)]
    pub timeout: Duration,
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    autoglm_core::service::parse_duration(s).map_err(|e| e.to_string())
}

/// Runs `autoglm evaluate`.
pub async fn run(args: &EvaluateArgs) -> Result<(), ClientError> {
    let client = Client::new(&args.client)?;
    let version = args.version.to_string();
    let path = [
        "api",
        "v1",
        "models",
        &args.model,
        "versions",
        &version,
        "evaluations",
    ];
    let (Some(file), Some(service)) = (&args.file, &args.service) else {
        let page: Value = client.get_json(client.url(&path)?).await?;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if args.client.output != OutputFormat::Table {
            crate::resource::print_documents(args.client.output, items);
            return Ok(());
        }
        let evaluations: Vec<Evaluation> = serde_json::from_value(Value::Array(items))
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        if evaluations.is_empty() {
            print_stderr("No evaluations found.");
        } else {
            print_stdout(&evaluations_table(&evaluations));
        }
        return Ok(());
    };
    let dataset = std::fs::read_to_string(file).map_err(|e| {
        ClientError::Local(format!(
            "cannot read {}: {}",
            file.display(),
            crate::client::io_reason(&e)
        ))
    })?;
    let mut body = json!({"service": service, "dataset": dataset});
    if let Some(n) = args.concurrency {
        body["concurrency"] = json!(n);
    }
    let url = client.url(&path)?;
    let task: Task = client
        .json(
            client
                .send(client.request(reqwest::Method::POST, url).json(&body))
                .await?,
        )
        .await?;
    let id = task.target.trim_start_matches("evaluations/").to_owned();
    let label = format!("evaluation/{id}");
    if args.no_wait {
        print_stdout(&format!("{label} queued (task {})", task.id));
        return Ok(());
    }
    wait_all(&client, vec![Started { label, task }], args.timeout).await?;
    let mut one = path.to_vec();
    one.push(&id);
    let evaluation: Value = client.get_json(client.url(&one)?).await?;
    match args.client.output {
        OutputFormat::Table => {
            let evaluation: Evaluation = serde_json::from_value(evaluation)
                .map_err(|e| ClientError::Decode(e.to_string()))?;
            print_stdout(&evaluations_table(std::slice::from_ref(&evaluation)));
            for e in evaluation.result.iter().flat_map(|r| &r.first_errors) {
                print_stderr(&format!("error: {}", sanitize(e)));
            }
        }
        format => crate::resource::print_documents(format, vec![evaluation]),
    }
    Ok(())
}

/// Evaluations as a table: one row each, what it measured once it succeeded.
pub fn evaluations_table(evaluations: &[Evaluation]) -> String {
    let none = || crate::output::NONE.to_owned();
    let rows: Vec<Vec<String>> = evaluations
        .iter()
        .map(|e| {
            let r = e.result.as_ref();
            vec![
                e.id.to_string(),
                sanitize(&e.service),
                e.state.as_str().to_owned(),
                e.samples.to_string(),
                r.map_or_else(none, |r| r.errors.to_string()),
                r.map_or_else(none, |r| format!("{:.1}", r.latency_ms.p50)),
                r.map_or_else(none, |r| format!("{:.1}", r.latency_ms.p95)),
                r.map_or_else(none, |r| format!("{:.1}", r.latency_ms.p99)),
                r.map_or_else(none, |r| format!("{:.1}", r.throughput)),
                r.and_then(|r| r.score.as_ref())
                    .map_or_else(none, |s| format!("{} {:.3}", s.metric, s.value)),
            ]
        })
        .collect();
    render_table(
        &[
            "ID", "SERVICE", "STATE", "LINES", "ERRORS", "P50 MS", "P95 MS", "P99 MS", "REQ/S",
            "SCORE",
        ],
        &rows,
    )
}
