//! What an `evaluate` task does: sends each line of an evaluation's dataset
//! to the ready replicas of its version (straight to them, round robin, so
//! that the split, the keys and the limits of the gateway play no part in
//! what the version itself measures), `concurrency` requests at a time, and
//! returns the summary (`autoglm-core`'s, pure) as its result. It only
//! reads, so a resumed task simply runs the lines again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use autoglm_core::evaluation::{
    Dataset, Evaluation, Outcome, parse_dataset, read_answer, summarise,
};
use autoglm_core::task::{Task, TaskError, TaskProgress};
use serde_json::{Value, json};

use crate::Reporter;
use crate::service::ServiceWork;

/// Longest one request may take, answer included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How often the replicas are looked for while none of the version is ready.
const LOOK: Duration = Duration::from_millis(200);
/// Longest the words of one failed answer kept.
const ERROR_WORDS: usize = 300;

impl ServiceWork {
    /// Runs `task`'s evaluation.
    pub(crate) async fn evaluate(
        &self,
        task: &Task,
        progress: &Reporter,
    ) -> Result<Value, TaskError> {
        let id: i64 = task
            .target
            .strip_prefix("evaluations/")
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| {
                TaskError::new(
                    "internal",
                    format!("an evaluate task cannot act on {:?}", task.target),
                )
            })?;
        let (store, tenant) = (self.store.clone(), task.tenant.clone());
        let found = tokio::task::spawn_blocking(move || store.evaluation_dataset(&tenant, id))
            .await
            .map_err(|e| TaskError::new("internal", e.to_string()))?;
        let (evaluation, text) = match found {
            Ok(found) => found,
            Err(e) if e.is_not_found() => {
                return Err(TaskError::new(
                    "superseded",
                    format!("evaluation {id} was deleted with its version"),
                ));
            }
            Err(e) => return Err(TaskError::transient(e.to_string())),
        };
        // Checked when it was asked for; checked again, as the code may have
        // changed since the dataset was stored.
        let dataset = parse_dataset(&text)
            .map_err(|e| TaskError::new("refused", format!("the dataset: {e}")))?;
        let replicas = self.replicas(task, &evaluation, progress).await?;
        let started = Instant::now();
        let outcomes = self
            .send_all(&evaluation, &dataset, &replicas, progress)
            .await?;
        let result = summarise(&dataset, &outcomes, started.elapsed());
        let score = result
            .score
            .as_ref()
            .map_or_else(String::new, |s| format!(", {} {:.3}", s.metric, s.value));
        Ok(json!({
            "message": format!(
                "{} requests, {} errors, p95 {:.1} ms, {:.1} requests/s{score}",
                result.requests, result.errors, result.latency_ms.p95, result.throughput
            ),
            "evaluation": result,
        }))
    }

    /// The ready replicas of the evaluated version, waiting while it has
    /// none (a service still deploying).
    async fn replicas(
        &self,
        task: &Task,
        evaluation: &Evaluation,
        progress: &Reporter,
    ) -> Result<Vec<SocketAddr>, TaskError> {
        let version = evaluation.version.to_string();
        loop {
            let (store, tenant, name) = (
                self.store.clone(),
                task.tenant.clone(),
                evaluation.service.clone(),
            );
            let stored = tokio::task::spawn_blocking(move || store.service(&tenant, &name))
                .await
                .map_err(|e| TaskError::new("internal", e.to_string()))?;
            let serves = match &stored {
                Ok(s) => s
                    .manifest
                    .spec
                    .versions
                    .iter()
                    .any(|v| v.version == version),
                Err(e) if e.is_not_found() => false,
                Err(e) => return Err(TaskError::transient(e.to_string())),
            };
            if !serves {
                return Err(TaskError::new(
                    "superseded",
                    format!(
                        "service {:?} no longer serves version {version}",
                        evaluation.service
                    ),
                ));
            }
            let ready = self
                .platform
                .endpoints(&task.tenant, &evaluation.service)
                .into_iter()
                .find(|e| e.version == version)
                .map(|e| e.ready)
                .unwrap_or_default();
            if !ready.is_empty() {
                return Ok(ready);
            }
            if !self.platform.runs_services() {
                return Err(TaskError::refused(
                    "NoPlatform",
                    "no platform runs services here, so no replica can answer",
                ));
            }
            progress
                .report(TaskProgress {
                    percent: 0,
                    message: format!(
                        "waiting for a ready replica of version {version} of service {:?}",
                        evaluation.service
                    ),
                })
                .await;
            tokio::time::sleep(LOOK).await;
        }
    }

    /// Every line's outcome, in line order.
    async fn send_all(
        &self,
        evaluation: &Evaluation,
        dataset: &Dataset,
        replicas: &[SocketAddr],
        progress: &Reporter,
    ) -> Result<Vec<Outcome>, TaskError> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| TaskError::new("internal", e.to_string()))?;
        let total = dataset.samples.len();
        let next = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let errors = Arc::new(AtomicUsize::new(0));
        let path = dataset.kind.path(&evaluation.service);
        let mut workers = tokio::task::JoinSet::new();
        let shared = Arc::new((dataset.clone(), replicas.to_vec()));
        for _ in 0..(evaluation.concurrency as usize).min(total) {
            let (client, next, done, errors, shared, path) = (
                client.clone(),
                next.clone(),
                done.clone(),
                errors.clone(),
                shared.clone(),
                path.clone(),
            );
            let service = evaluation.service.clone();
            workers.spawn(async move {
                let (dataset, replicas) = &*shared;
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(sample) = dataset.samples.get(i) else {
                        return mine;
                    };
                    let mut body = sample.body.clone();
                    if dataset.kind != autoglm_core::evaluation::RequestKind::Infer {
                        body.insert("model".to_owned(), Value::String(service.clone()));
                    }
                    let url = format!("http://{}{path}", replicas[i % replicas.len()]);
                    let started = Instant::now();
                    let answer = send(&client, &url, &body, dataset.kind).await;
                    if answer.is_err() {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    mine.push((
                        i,
                        Outcome {
                            latency: started.elapsed(),
                            answer,
                        },
                    ));
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let mut outcomes: Vec<Option<Outcome>> = vec![None; total];
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                joined = workers.join_next() => match joined {
                    Some(Ok(mine)) => {
                        for (i, outcome) in mine {
                            outcomes[i] = Some(outcome);
                        }
                    }
                    Some(Err(e)) => return Err(TaskError::new("internal", e.to_string())),
                    None => break,
                },
                _ = tick.tick() => {
                    let finished = done.load(Ordering::Relaxed);
                    progress.report(TaskProgress {
                        percent: (finished * 100 / total.max(1)).min(99) as u8,
                        message: format!(
                            "{finished} of {total} lines sent, {} errors",
                            errors.load(Ordering::Relaxed)
                        ),
                    }).await;
                }
            }
        }
        Ok(outcomes.into_iter().flatten().collect())
    }
}

/// Sends one line and reads its answer.
async fn send(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Map<String, Value>,
    kind: autoglm_core::evaluation::RequestKind,
) -> Result<autoglm_core::evaluation::Answer, String> {
    let response = client
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|e| format!("no answer: {e}"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| format!("{status}: the answer broke off: {e}"))?;
    if !status.is_success() {
        let words: String = text.chars().take(ERROR_WORDS).collect();
        return Err(format!("{}: {words}", status.as_u16()));
    }
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{status}: the answer is not JSON: {e}"))?;
    Ok(read_answer(kind, &value))
}
