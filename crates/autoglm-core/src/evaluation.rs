//! Evaluations: a JSONL dataset run through one version of a model, and
//! what came of it (latency percentiles, throughput, errors, and for
//! labelled lines a score against the labels), kept with the version in the
//! registry.
//!
//! A dataset line is the body of one request, as the OpenAI API or the Open
//! Inference Protocol takes it, with an optional `label`:
//!
//! - `{"messages": [...], "label": "Paris"}`: a chat completion; its label is
//!   compared with the answer's text (exact match, trimmed, any case);
//! - `{"prompt": "...", "label": "..."}`: a text completion, the same way;
//! - `{"input": "text", "label": "sports"}`: an embedding; labelled lines are
//!   scored by nearest neighbour (each line's nearest other line by cosine
//!   similarity must carry its label), the usual check that an embedding
//!   keeps classes apart;
//! - `{"inputs": [tensors], "label": 2}`: an inference (classification): the
//!   label is compared with the model's predicted label (an integer output
//!   with one value, or else the index of the largest output value).
//!
//! Parsing, reading answers and summarising are pure; the task that sends
//! the requests is `autoglm-tasks`'.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Most lines in one dataset.
pub const MAX_SAMPLES: usize = 10_000;
/// Most requests in flight at once.
pub const MAX_CONCURRENCY: u32 = 64;
/// Requests in flight when the caller names no number.
pub const DEFAULT_CONCURRENCY: u32 = 4;
/// Errors kept, word for word, in a result.
const ERRORS_KEPT: usize = 5;

/// What kind of request every line of a dataset is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RequestKind {
    /// `POST /v1/chat/completions`.
    Chat,
    /// `POST /v1/completions`.
    Completion,
    /// `POST /v1/embeddings`.
    Embedding,
    /// `POST /v2/models/{name}/infer`.
    Infer,
}

impl RequestKind {
    /// The key a line of this kind carries, and the kind's name in words.
    const KEYS: [(&'static str, RequestKind); 4] = [
        ("messages", RequestKind::Chat),
        ("prompt", RequestKind::Completion),
        ("input", RequestKind::Embedding),
        ("inputs", RequestKind::Infer),
    ];

    /// The path of the request on a replica serving `service`.
    pub fn path(self, service: &str) -> String {
        match self {
            RequestKind::Chat => "/v1/chat/completions".to_owned(),
            RequestKind::Completion => "/v1/completions".to_owned(),
            RequestKind::Embedding => "/v1/embeddings".to_owned(),
            RequestKind::Infer => format!("/v2/models/{service}/infer"),
        }
    }

    /// What a labelled dataset of this kind is scored by.
    pub fn score_metric(self) -> &'static str {
        match self {
            RequestKind::Chat | RequestKind::Completion => "exactMatch",
            RequestKind::Embedding => "nearestNeighbourAccuracy",
            RequestKind::Infer => "accuracy",
        }
    }

    fn key(self) -> &'static str {
        RequestKind::KEYS
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("", |(key, _)| key)
    }
}

/// One line of a dataset: the request body (without its label) and the label.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The body to send (its `model` is set when it is sent).
    pub body: serde_json::Map<String, Value>,
    /// What the answer should be.
    pub label: Option<Value>,
}

/// A parsed dataset: one kind of request, at least one line.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// What every line is.
    pub kind: RequestKind,
    /// The lines, in order.
    pub samples: Vec<Sample>,
}

/// Why a dataset was refused: the line (from 1; 0 for the whole) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetError {
    /// 1-based line number, 0 when no one line is at fault.
    pub line: usize,
    /// In words.
    pub message: String,
}

impl std::fmt::Display for DatasetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

/// Parses a JSONL dataset. Blank lines are skipped; every other line must be
/// a JSON object of one kind, the same kind as the first.
pub fn parse_dataset(text: &str) -> Result<Dataset, DatasetError> {
    let fail = |line: usize, message: String| DatasetError { line, message };
    let mut kind = None;
    let mut samples = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        if samples.len() == MAX_SAMPLES {
            return Err(fail(
                line,
                format!("a dataset holds at most {MAX_SAMPLES} lines"),
            ));
        }
        let mut body = match serde_json::from_str::<Value>(raw) {
            Ok(Value::Object(body)) => body,
            Ok(_) => return Err(fail(line, "is not a JSON object".to_owned())),
            Err(e) => return Err(fail(line, format!("is not JSON: {e}"))),
        };
        let found: Vec<RequestKind> = RequestKind::KEYS
            .iter()
            .filter(|(key, _)| body.contains_key(*key))
            .map(|(_, k)| *k)
            .collect();
        let this = match found.as_slice() {
            [one] => *one,
            [] => {
                return Err(fail(
                    line,
                    "has none of messages (chat), prompt (completion), input (embedding) or inputs (inference)".to_owned(),
                ));
            }
            _ => {
                let keys: Vec<&str> = found.iter().map(|k| k.key()).collect();
                return Err(fail(
                    line,
                    format!("has {}: a line is one request", keys.join(" and ")),
                ));
            }
        };
        match kind {
            None => kind = Some(this),
            Some(first) if first != this => {
                return Err(fail(
                    line,
                    format!(
                        "is a {} request, and the first line a {} request: a dataset holds one kind",
                        this.key(),
                        first.key()
                    ),
                ));
            }
            Some(_) => {}
        }
        check_request(this, &body).map_err(|m| fail(line, m))?;
        let label = body.remove("label");
        if let Some(l) = &label
            && !(l.is_string() || l.is_number() || l.is_boolean())
        {
            return Err(fail(
                line,
                "label must be a string, a number or a boolean".to_owned(),
            ));
        }
        body.remove("model");
        samples.push(Sample { body, label });
    }
    match kind {
        Some(kind) => Ok(Dataset { kind, samples }),
        None => Err(fail(0, "the dataset has no lines".to_owned())),
    }
}

fn check_request(kind: RequestKind, body: &serde_json::Map<String, Value>) -> Result<(), String> {
    match kind {
        RequestKind::Chat => match &body["messages"] {
            Value::Array(m) if !m.is_empty() => Ok(()),
            _ => Err("messages must be a list of at least one message".to_owned()),
        },
        RequestKind::Completion => match &body["prompt"] {
            Value::String(_) => Ok(()),
            _ => Err("prompt must be text".to_owned()),
        },
        // One text per line: a line is one sample with one label.
        RequestKind::Embedding => match &body["input"] {
            Value::String(_) => Ok(()),
            _ => Err("input must be one text".to_owned()),
        },
        RequestKind::Infer => match &body["inputs"] {
            Value::Array(t) if !t.is_empty() => Ok(()),
            _ => Err("inputs must be a list of at least one tensor".to_owned()),
        },
    }
}

/// What an answer said, in the form its kind is scored by.
#[derive(Debug, Clone, PartialEq)]
pub enum Prediction {
    /// A chat or completion's text.
    Text(String),
    /// An embedding.
    Vector(Vec<f64>),
    /// A predicted class.
    Label(String),
}

/// One request's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// From sending the request to the end of its answer.
    pub latency: Duration,
    /// The answer, or why there was none.
    pub answer: Result<Answer, String>,
}

/// A successful answer: what it predicted, and the tokens it generated.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// `None` when the answer had no shape this kind reads.
    pub prediction: Option<Prediction>,
    /// `usage.completion_tokens`, when it says.
    pub completion_tokens: Option<u64>,
}

/// Reads a successful answer of `kind`.
pub fn read_answer(kind: RequestKind, body: &Value) -> Answer {
    let prediction = match kind {
        RequestKind::Chat => body["choices"][0]["message"]["content"]
            .as_str()
            .map(|t| Prediction::Text(t.to_owned())),
        RequestKind::Completion => body["choices"][0]["text"]
            .as_str()
            .map(|t| Prediction::Text(t.to_owned())),
        RequestKind::Embedding => body["data"][0]["embedding"].as_array().and_then(|v| {
            v.iter()
                .map(Value::as_f64)
                .collect::<Option<Vec<f64>>>()
                .map(Prediction::Vector)
        }),
        RequestKind::Infer => predicted_label(body),
    };
    Answer {
        prediction,
        completion_tokens: body["usage"]["completion_tokens"].as_u64(),
    }
}

/// An inference's predicted class: an integer output with one value (as
/// scikit-learn's converted classifiers give), else the index of the first
/// output's largest value.
fn predicted_label(body: &Value) -> Option<Prediction> {
    let outputs = body["outputs"].as_array()?;
    let single_integer = outputs.iter().find(|o| {
        o["datatype"].as_str().is_some_and(|d| d.starts_with("INT"))
            && o["data"].as_array().is_some_and(|d| d.len() == 1)
    });
    if let Some(o) = single_integer {
        return Some(Prediction::Label(o["data"][0].to_string()));
    }
    let data = outputs.first()?["data"].as_array()?;
    let (index, _) = data
        .iter()
        .filter_map(Value::as_f64)
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    Some(Prediction::Label(index.to_string()))
}

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Mean.
    pub mean: f64,
    /// Slowest.
    pub max: f64,
}

/// A score against the dataset's labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Score {
    /// `exactMatch`, `accuracy` or `nearestNeighbourAccuracy`.
    pub metric: String,
    /// From 0 to 1.
    pub value: f64,
    /// Labelled lines it was computed over (answered ones only).
    pub labelled: usize,
}

/// What an evaluation measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EvaluationResult {
    /// Requests sent.
    pub requests: usize,
    /// Requests that failed (an error status, a broken connection, a timeout).
    pub errors: usize,
    /// `errors / requests`.
    pub error_ratio: f64,
    /// Of every request, answered or not.
    pub latency_ms: Latency,
    /// Requests per second over the whole run.
    pub throughput: f64,
    /// Generated tokens per second over the whole run (chat and completion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_second: Option<f64>,
    /// Wall time of the run.
    pub duration_seconds: f64,
    /// Against the labels; `None` when no answered line had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<Score>,
    /// The first few errors, word for word.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub first_errors: Vec<String>,
}

/// The `q`-quantile (0..=1) of sorted `values`, by nearest rank.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Summarises the outcomes of `dataset`'s lines (in line order) that took
/// `wall` in all.
pub fn summarise(dataset: &Dataset, outcomes: &[Outcome], wall: Duration) -> EvaluationResult {
    let mut ms: Vec<f64> = outcomes
        .iter()
        .map(|o| o.latency.as_secs_f64() * 1000.0)
        .collect();
    ms.sort_by(f64::total_cmp);
    let requests = outcomes.len();
    let errors: Vec<&String> = outcomes
        .iter()
        .filter_map(|o| o.answer.as_ref().err())
        .collect();
    let seconds = wall.as_secs_f64().max(f64::EPSILON);
    let tokens: Option<u64> = outcomes
        .iter()
        .filter_map(|o| o.answer.as_ref().ok()?.completion_tokens)
        .reduce(|a, b| a + b);
    EvaluationResult {
        requests,
        errors: errors.len(),
        error_ratio: if requests == 0 {
            0.0
        } else {
            errors.len() as f64 / requests as f64
        },
        latency_ms: Latency {
            p50: quantile(&ms, 0.50),
            p95: quantile(&ms, 0.95),
            p99: quantile(&ms, 0.99),
            mean: if ms.is_empty() {
                0.0
            } else {
                ms.iter().sum::<f64>() / ms.len() as f64
            },
            max: ms.last().copied().unwrap_or(0.0),
        },
        throughput: requests as f64 / seconds,
        tokens_per_second: tokens.map(|t| t as f64 / seconds),
        duration_seconds: wall.as_secs_f64(),
        score: score(dataset, outcomes),
        first_errors: errors.into_iter().take(ERRORS_KEPT).cloned().collect(),
    }
}

fn label_text(label: &Value) -> String {
    match label {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn same_text(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

/// The score of the labelled, answered lines.
fn score(dataset: &Dataset, outcomes: &[Outcome]) -> Option<Score> {
    let labelled: Vec<(String, &Prediction)> = dataset
        .samples
        .iter()
        .zip(outcomes)
        .filter_map(|(s, o)| {
            let prediction = o.answer.as_ref().ok()?.prediction.as_ref()?;
            Some((label_text(s.label.as_ref()?), prediction))
        })
        .collect();
    if labelled.is_empty() {
        return None;
    }
    let hits = match dataset.kind {
        RequestKind::Embedding => nearest_neighbour_hits(&labelled),
        _ => labelled
            .iter()
            .filter(|(label, p)| match p {
                Prediction::Text(t) | Prediction::Label(t) => same_text(t, label),
                Prediction::Vector(_) => false,
            })
            .count(),
    };
    Some(Score {
        metric: dataset.kind.score_metric().to_owned(),
        value: hits as f64 / labelled.len() as f64,
        labelled: labelled.len(),
    })
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b)).max(f64::MIN_POSITIVE)
}

/// Lines whose nearest other line (by cosine similarity) has their label.
fn nearest_neighbour_hits(labelled: &[(String, &Prediction)]) -> usize {
    let vectors: Vec<(&str, &[f64])> = labelled
        .iter()
        .filter_map(|(l, p)| match p {
            Prediction::Vector(v) => Some((l.as_str(), v.as_slice())),
            _ => None,
        })
        .collect();
    (0..vectors.len())
        .filter(|&i| {
            let nearest = (0..vectors.len()).filter(|&j| j != i).max_by(|&a, &b| {
                cosine(vectors[i].1, vectors[a].1).total_cmp(&cosine(vectors[i].1, vectors[b].1))
            });
            nearest.is_some_and(|j| vectors[j].0 == vectors[i].0)
        })
        .count()
}

/// An evaluation of a version, as the registry keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Evaluation {
    /// Unique, increasing.
    pub id: i64,
    /// The model.
    pub model: String,
    /// The version evaluated.
    pub version: i64,
    /// The service whose replicas of the version answered.
    pub service: String,
    /// What every line of the dataset asked.
    pub kind: RequestKind,
    /// Lines in the dataset.
    pub samples: usize,
    /// Of them, with a label.
    pub labelled: usize,
    /// Requests in flight at once.
    pub concurrency: u32,
    /// The task that runs it.
    pub task: i64,
    /// The task's state: `pending`, `running`, `succeeded`, `failed`, `cancelled`.
    pub state: crate::task::TaskState,
    /// What it measured, once it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<EvaluationResult>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::task::TaskError>,
    /// Who asked for it.
    pub created_by: String,
    /// RFC 3339.
    pub created_at: String,
}

#[cfg(test)]
mod tests;
