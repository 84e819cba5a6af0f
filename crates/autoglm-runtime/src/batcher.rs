//! Dynamic batching of embeddings: requests that arrive within a short wait
//! share one forward pass, up to a maximum batch size.
//!
//! The wait is paid only under concurrency: when the previous batch held a
//! single request, the next one runs with whatever is already queued, so a
//! lone client sees no added latency; requests that arrive while a pass runs
//! queue up and form the next batch anyway.

use std::sync::Arc;
use std::time::{Duration, Instant};

use autoglm_inference::{Embedder, Embeddings, InferenceError};
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;

struct Job {
    inputs: Vec<String>,
    reply: oneshot::Sender<Result<Embeddings, InferenceError>>,
}

/// Handle to a batching worker; the worker stops when every handle is gone.
#[derive(Debug, Clone)]
pub struct EmbedBatcher {
    jobs: mpsc::UnboundedSender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("inputs", &self.inputs.len())
            .finish()
    }
}

impl EmbedBatcher {
    /// Starts the worker for `embedder`.
    pub fn start(
        embedder: Arc<dyn Embedder>,
        max_batch: usize,
        max_wait: Duration,
        metrics: Arc<Metrics>,
    ) -> EmbedBatcher {
        let (jobs, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(embedder, rx, max_batch.max(1), max_wait, metrics));
        EmbedBatcher { jobs }
    }

    /// Embeds `inputs`, sharing a batch with concurrent requests.
    pub async fn embed(&self, inputs: Vec<String>) -> Result<Embeddings, InferenceError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { inputs, reply })
            .map_err(|_| InferenceError::Engine("the batching worker has stopped".into()))?;
        answer
            .await
            .map_err(|_| InferenceError::Engine("the batching worker dropped the request".into()))?
    }
}

async fn run(
    embedder: Arc<dyn Embedder>,
    mut rx: mpsc::UnboundedReceiver<Job>,
    max_batch: usize,
    max_wait: Duration,
    metrics: Arc<Metrics>,
) {
    let mut carried: Option<Job> = None;
    let mut concurrent = false;
    loop {
        let first = match carried.take() {
            Some(job) => job,
            None => match rx.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let mut batch = vec![first];
        let mut size = batch[0].inputs.len();
        let deadline = Instant::now() + if concurrent { max_wait } else { Duration::ZERO };
        while size < max_batch {
            let wait = deadline.saturating_duration_since(Instant::now());
            let next = if wait.is_zero() {
                rx.try_recv().map_err(|_| ())
            } else {
                tokio::time::timeout(wait, rx.recv())
                    .await
                    .map_err(|_| ())
                    .and_then(|job| job.ok_or(()))
            };
            match next {
                Ok(job) if size + job.inputs.len() <= max_batch => {
                    size += job.inputs.len();
                    batch.push(job);
                }
                // Too big to join this batch: it starts the next one.
                Ok(job) => {
                    carried = Some(job);
                    break;
                }
                Err(()) => break,
            }
        }
        concurrent = batch.len() > 1 || carried.is_some() || !rx.is_empty();
        metrics.observe_queue_depth(rx.len());
        run_batch(&embedder, batch, max_batch, &metrics).await;
    }
}

/// Runs the jobs' inputs in forward passes of at most `max_batch` and hands
/// each job its slice of the results.
async fn run_batch(
    embedder: &Arc<dyn Embedder>,
    batch: Vec<Job>,
    max_batch: usize,
    metrics: &Metrics,
) {
    let inputs: Vec<String> = batch
        .iter()
        .flat_map(|j| j.inputs.iter().cloned())
        .collect();
    let worker = embedder.clone();
    let start = Instant::now();
    let sizes: Vec<usize> = inputs.chunks(max_batch).map(<[String]>::len).collect();
    let result = tokio::task::spawn_blocking(move || {
        let mut all = Embeddings {
            vectors: Vec::with_capacity(inputs.len()),
            tokens: Vec::with_capacity(inputs.len()),
        };
        for chunk in inputs.chunks(max_batch) {
            let part = worker.embed(chunk)?;
            all.vectors.extend(part.vectors);
            all.tokens.extend(part.tokens);
        }
        Ok(all)
    })
    .await
    .unwrap_or_else(|e| {
        Err(InferenceError::Engine(format!(
            "embedding worker panicked: {e}"
        )))
    });
    for size in sizes {
        metrics.observe_batch(size);
    }
    metrics.observe_inference("embeddings", start.elapsed());
    match result {
        Ok(mut all) => {
            for job in batch.into_iter().rev() {
                let at = all.vectors.len() - job.inputs.len();
                let part = Embeddings {
                    vectors: all.vectors.split_off(at),
                    tokens: all.tokens.split_off(at),
                };
                let _ = job.reply.send(Ok(part));
            }
        }
        // One bad input must not fail the others that shared its batch: retry each job alone.
        Err(_) if batch.len() > 1 => {
            for job in batch {
                let embedder = embedder.clone();
                let inputs = job.inputs;
                let alone = tokio::task::spawn_blocking(move || embedder.embed(&inputs))
                    .await
                    .unwrap_or_else(|e| {
                        Err(InferenceError::Engine(format!(
                            "embedding worker panicked: {e}"
                        )))
                    });
                let _ = job.reply.send(alone);
            }
        }
        Err(error) => {
            for job in batch {
                let _ = job.reply.send(Err(error.clone()));
            }
        }
    }
}
