//! Tasks from the command line: `autoglm get tasks`, `autoglm wait task
//! ID`, and the waiting `apply` and `delete` do by default, with progress
//! on stderr (one line each time a task's state or progress moves).

use std::time::{Duration, Instant};

use autoglm_core::task::{Task, TaskState};
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::client::{Client, ClientError};
use crate::output::{age, pretty_json, print_stderr, print_stdout, render_table, sanitize};
use crate::{ClientArgs, OutputFormat};

/// Most items asked of the console in one page.
const PAGE_SIZE: usize = 100;
/// How long one long-poll holds; progress shows at least this often.
const POLL: &str = "2s";

/// `autoglm wait`.
#[derive(clap::Args, Debug)]
pub struct WaitArgs {
    /// Connection and output.
    #[command(flatten)]
    pub client: ClientArgs,
    /// What to wait for: task.
    #[arg(value_name = "TYPE", value_enum)]
    pub resource: WaitFor,
    /// The task's id.
    #[arg(value_name = "ID")]
    pub id: i64,
    /// Give up after this long, e.g. 10m or 90s.
    #[arg(long, default_value = "30m", value_parser = parse_timeout)]
    pub timeout: Duration,
}

/// What `autoglm wait` waits for.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitFor {
    /// A task, by id.
    #[value(alias = "tasks")]
    Task,
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    autoglm_core::service::parse_duration(s).map_err(|e| e.to_string())
}

/// A task to wait for, with what the user knows it as.
#[derive(Debug, Clone)]
pub struct Started {
    /// e.g. `modelservice/chat`.
    pub label: String,
    /// The task as the console answered it.
    pub task: Task,
}

fn describe(task: &Task) -> String {
    let mut line = format!(
        "task {} {} {}: {}",
        task.id,
        task.kind.as_str(),
        sanitize(&task.target),
        task.state.as_str()
    );
    if task.state == TaskState::Running || task.state == TaskState::Pending {
        line.push_str(&format!(" {}%", task.progress.percent));
    }
    if !task.progress.message.is_empty() {
        line.push_str(&format!(", {}", sanitize(&task.progress.message)));
    }
    line
}

/// The error for a task that ended other than succeeded.
fn ended_badly(label: &str, task: &Task) -> ClientError {
    let why = match &task.error {
        Some(e) => format!("{}: {}", e.code, e.message),
        None => task.progress.message.clone(),
    };
    ClientError::Task(format!(
        "{label}: task {} ({}) {}: {}",
        task.id,
        task.kind.as_str(),
        task.state.as_str(),
        sanitize(&why)
    ))
}

/// Waits until every task is final, printing progress on stderr; an error
/// names each task that did not succeed.
pub async fn wait_all(
    client: &Client,
    started: Vec<Started>,
    timeout: Duration,
) -> Result<Vec<Task>, ClientError> {
    let deadline = Instant::now() + timeout;
    let mut done = Vec::new();
    let mut failures = Vec::new();
    for Started { label, mut task } in started {
        let mut shown = String::new();
        loop {
            let line = describe(&task);
            if line != shown {
                print_stderr(&format!("{label}: {line}"));
                shown = line;
            }
            if task.state.is_final() {
                break;
            }
            if Instant::now() >= deadline {
                return Err(ClientError::Task(format!(
                    "{label}: task {} is still {} after {}s; `autoglm wait task {}` waits on",
                    task.id,
                    task.state.as_str(),
                    timeout.as_secs(),
                    task.id
                )));
            }
            let mut url = client.url(&["api", "v1", "tasks", &task.id.to_string()])?;
            url.query_pairs_mut().append_pair("wait", POLL);
            task = client.get_json(url).await?;
        }
        if task.state != TaskState::Succeeded {
            failures.push(ended_badly(&label, &task).to_string());
        }
        done.push(task);
    }
    if failures.is_empty() {
        Ok(done)
    } else {
        Err(ClientError::Task(failures.join("; ")))
    }
}

/// `autoglm wait task ID`.
pub async fn wait(args: &WaitArgs) -> Result<(), ClientError> {
    let client = Client::new(&args.client)?;
    let url = client.url(&["api", "v1", "tasks", &args.id.to_string()])?;
    let task: Task = client.get_json(url).await?;
    let label = format!("task/{}", args.id);
    let done = wait_all(&client, vec![Started { label, task }], args.timeout).await?;
    if args.client.output != OutputFormat::Table
        && let Some(task) = done.into_iter().next()
    {
        let value = serde_json::to_value(task).map_err(|e| ClientError::Decode(e.to_string()))?;
        crate::resource::print_documents(args.client.output, vec![value]);
    }
    Ok(())
}

/// `autoglm get tasks [ID]`.
pub async fn get(args: &ClientArgs, id: Option<&str>) -> Result<(), ClientError> {
    let client = Client::new(args)?;
    let values: Vec<Value> = match id {
        Some(id) => {
            let id: i64 = id
                .parse()
                .map_err(|_| ClientError::Local(format!("a task id is a number, not {id:?}")))?;
            vec![
                client
                    .get_json(client.url(&["api", "v1", "tasks", &id.to_string()])?)
                    .await?,
            ]
        }
        None => {
            client
                .get_all(
                    client.url(&["api", "v1", "tasks"])?,
                    Some(PAGE_SIZE),
                    PAGE_SIZE,
                )
                .await?
        }
    };
    if args.output != OutputFormat::Table {
        if id.is_none() && args.output == OutputFormat::Json {
            print_stdout(&pretty_json(&Value::Array(values)));
        } else {
            crate::resource::print_documents(args.output, values);
        }
        return Ok(());
    }
    let tasks: Vec<Task> = values
        .into_iter()
        .map(|v| serde_json::from_value(v).map_err(|e| ClientError::Decode(e.to_string())))
        .collect::<Result<_, _>>()?;
    if tasks.is_empty() {
        print_stderr("No tasks found.");
    } else {
        print_stdout(&tasks_table(&tasks, Utc::now()));
    }
    Ok(())
}

/// The `get tasks` table, newest first as the console lists them.
pub fn tasks_table(tasks: &[Task], now: DateTime<Utc>) -> String {
    let rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|t| {
            let created = DateTime::parse_from_rfc3339(&t.created_at)
                .map(|c| age(c.with_timezone(&Utc), now))
                .unwrap_or_else(|_| crate::output::NONE.to_owned());
            vec![
                t.id.to_string(),
                t.kind.as_str().to_owned(),
                sanitize(&t.target),
                t.state.as_str().to_owned(),
                format!("{}%", t.progress.percent),
                t.attempt.to_string(),
                created,
                sanitize(&t.progress.message),
            ]
        })
        .collect();
    render_table(
        &[
            "ID", "KIND", "TARGET", "STATE", "PROGRESS", "ATTEMPTS", "AGE", "MESSAGE",
        ],
        &rows,
    )
}
