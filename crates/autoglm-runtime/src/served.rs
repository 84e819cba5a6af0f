//! One served version: its engine, its embeddings batcher, its generation gate.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use autoglm_inference::{
    ChatMessage, GenerationEvent, GenerationRequest, InferenceError, SamplingParams, Tensor,
    TensorData,
};
use tokio::sync::mpsc;

use crate::batcher::EmbedBatcher;
use crate::metrics::Metrics;
use crate::{Engine, RuntimeConfig};

/// A loaded, warmed-up version.
#[derive(Debug)]
pub struct Served {
    /// The version label.
    pub version: String,
    /// Where it was loaded from.
    pub path: PathBuf,
    /// The engine.
    pub engine: Engine,
    /// Present for embeddings models.
    pub batcher: Option<EmbedBatcher>,
    gate: Gate,
    metrics: Arc<Metrics>,
}

/// Bounds generation requests: those being decoded plus a waiting queue.
#[derive(Debug)]
struct Gate {
    outstanding: Arc<AtomicUsize>,
    decoding: usize,
    capacity: usize,
}

/// Holds a place in the gate until dropped (request finished or abandoned).
#[derive(Debug)]
pub struct Ticket {
    outstanding: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
    decoding: usize,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let left = self.outstanding.fetch_sub(1, Ordering::SeqCst) - 1;
        self.metrics
            .observe_queue_depth(left.saturating_sub(self.decoding));
    }
}

impl Served {
    pub(crate) fn start(
        engine: Engine,
        version: &str,
        path: &Path,
        config: &RuntimeConfig,
        metrics: Arc<Metrics>,
    ) -> Arc<Served> {
        let batcher = match &engine {
            Engine::Embeddings(e) => Some(EmbedBatcher::start(
                e.clone(),
                config.max_batch,
                config.max_batch_wait,
                metrics.clone(),
            )),
            _ => None,
        };
        let decoding = match &engine {
            Engine::Generation(g) => g.info().max_sequences.max(1),
            _ => 1,
        };
        Arc::new(Served {
            version: version.to_owned(),
            path: path.to_owned(),
            engine,
            batcher,
            gate: Gate {
                outstanding: Arc::default(),
                decoding,
                capacity: decoding + config.queue_capacity,
            },
            metrics,
        })
    }

    /// A place for one generation request, or `None` when the queue is full.
    pub fn admit(&self) -> Option<Ticket> {
        let taken = self
            .gate
            .outstanding
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.gate.capacity).then_some(n + 1)
            })
            .ok()?;
        self.metrics
            .observe_queue_depth((taken + 1).saturating_sub(self.gate.decoding));
        Some(Ticket {
            outstanding: self.gate.outstanding.clone(),
            metrics: self.metrics.clone(),
            decoding: self.gate.decoding,
        })
    }

    /// One real inference, so that readiness means the engine answers.
    pub(crate) async fn warm_up(&self) -> Result<(), InferenceError> {
        match &self.engine {
            Engine::Embeddings(_) => {
                if let Some(batcher) = &self.batcher {
                    batcher.embed(vec!["warm up".into()]).await?;
                }
            }
            Engine::Generation(g) => {
                let prompt = g.render_chat(&[ChatMessage {
                    role: "user".into(),
                    content: "Hi".into(),
                }])?;
                let params = SamplingParams {
                    temperature: 0.0,
                    top_p: 1.0,
                    top_k: 0,
                    seed: None,
                    max_tokens: 1,
                    stop: Vec::new(),
                };
                let (tx, mut rx) = mpsc::unbounded_channel();
                g.submit(GenerationRequest { prompt, params }, tx)?;
                loop {
                    match rx.recv().await {
                        Some(GenerationEvent::Done { .. }) => break,
                        Some(GenerationEvent::Failed(e)) => return Err(e),
                        Some(GenerationEvent::Text(_)) => {}
                        None => {
                            return Err(InferenceError::Engine(
                                "warm-up generation ended without an answer".into(),
                            ));
                        }
                    }
                }
            }
            Engine::Tensor(t) => {
                let inputs: Vec<Tensor> = t.inputs().iter().map(zeros).collect();
                let model = t.clone();
                tokio::task::spawn_blocking(move || model.infer(&inputs))
                    .await
                    .map_err(|e| InferenceError::Engine(format!("warm-up panicked: {e}")))??;
            }
        }
        Ok(())
    }
}

/// A tensor of zeros fitting `spec`, with 1 for every free dimension.
fn zeros(spec: &autoglm_inference::TensorSpec) -> Tensor {
    let shape: Vec<usize> = spec
        .shape
        .iter()
        .map(|d| if *d < 0 { 1 } else { *d as usize })
        .collect();
    let n = shape.iter().product();
    use autoglm_inference::DataType as D;
    let data = match spec.datatype {
        D::Bool => TensorData::Bool(vec![false; n]),
        D::Uint8 => TensorData::Uint8(vec![0; n]),
        D::Int32 => TensorData::Int32(vec![0; n]),
        D::Int64 => TensorData::Int64(vec![0; n]),
        D::Fp32 => TensorData::Fp32(vec![0.0; n]),
        D::Fp64 => TensorData::Fp64(vec![0.0; n]),
        D::Bytes => TensorData::Bytes(vec![Vec::new(); n]),
    };
    Tensor {
        name: spec.name.clone(),
        shape,
        data,
    }
}
