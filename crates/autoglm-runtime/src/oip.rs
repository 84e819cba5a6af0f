//! The Open Inference Protocol (KServe v2) over every kind of model:
//! embeddings take a BYTES `text` tensor, generation a BYTES `text_input`,
//! ONNX models their own declared tensors.

use std::sync::Arc;
use std::time::Instant;

use autoglm_inference::{
    ChatMessage, DataType, GenerationEvent, GenerationRequest, InferenceError, SamplingParams,
    Tensor, TensorData, TensorSpec,
};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::error::{ApiError, Body, Dialect};
use crate::served::Served;
use crate::usage::TokenUsage;
use crate::{Engine, Runtime};

const D: Dialect = Dialect::Oip;
/// Most elements accepted in one request's tensors.
pub const MAX_ELEMENTS: usize = 1 << 22;

/// `GET /v2/health/live`.
pub async fn live() -> Json<Value> {
    Json(json!({"live": true}))
}

/// `GET /v2/health/ready`.
pub async fn ready(State(runtime): State<Arc<Runtime>>) -> Response {
    let ready = runtime.metrics().is_ready();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({"ready": ready}))).into_response()
}

fn resolve(runtime: &Runtime, name: &str, version: Option<&str>) -> Result<Arc<Served>, ApiError> {
    let served = runtime.current().ok_or_else(|| ApiError::not_ready(D))?;
    if name != runtime.config().name || version.is_some_and(|v| v != served.version) {
        let requested = version.map_or_else(|| name.to_owned(), |v| format!("{name} version {v}"));
        return Err(ApiError::unknown_model(
            D,
            &requested,
            &format!("{} version {}", runtime.config().name, served.version),
        ));
    }
    Ok(served)
}

fn spec(name: &str, datatype: DataType, shape: Vec<i64>) -> TensorSpec {
    TensorSpec {
        name: name.into(),
        datatype,
        shape,
    }
}

/// The declared inputs and outputs of what is served.
fn signature(served: &Served) -> (Vec<TensorSpec>, Vec<TensorSpec>) {
    match &served.engine {
        Engine::Embeddings(e) => (
            vec![spec("text", DataType::Bytes, vec![-1])],
            vec![spec(
                "embedding",
                DataType::Fp32,
                vec![-1, e.dimensions() as i64],
            )],
        ),
        Engine::Generation(_) => (
            vec![spec("text_input", DataType::Bytes, vec![1])],
            vec![spec("text_output", DataType::Bytes, vec![1])],
        ),
        Engine::Tensor(t) => (t.inputs().to_vec(), t.outputs().to_vec()),
    }
}

fn describe(runtime: &Runtime, name: &str, version: Option<&str>) -> Result<Json<Value>, ApiError> {
    let served = resolve(runtime, name, version)?;
    let (inputs, outputs) = signature(&served);
    Ok(Json(json!({
        "name": runtime.config().name, "versions": [served.version],
        "platform": format!("autoglm-{}", served.engine.kind()),
        "inputs": inputs, "outputs": outputs
    })))
}

/// `GET /v2/models/{name}`.
pub async fn metadata(
    State(runtime): State<Arc<Runtime>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    describe(&runtime, &name, None)
}

/// `GET /v2/models/{name}/versions/{version}`.
pub async fn metadata_version(
    State(runtime): State<Arc<Runtime>>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    describe(&runtime, &name, Some(&version))
}

/// `GET /v2/models/{name}/ready`.
pub async fn model_ready(
    State(runtime): State<Arc<Runtime>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    resolve(&runtime, &name, None).map(|_| Json(json!({"name": name, "ready": true})))
}

/// `GET /v2/models/{name}/versions/{version}/ready`.
pub async fn model_ready_version(
    State(runtime): State<Arc<Runtime>>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    resolve(&runtime, &name, Some(&version)).map(|_| Json(json!({"name": name, "ready": true})))
}

/// One tensor of an infer request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireTensor {
    name: String,
    shape: Vec<i64>,
    datatype: DataType,
    data: Value,
    #[serde(default)]
    parameters: Option<Value>,
}

/// An infer request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferRequest {
    #[serde(default)]
    id: Option<String>,
    inputs: Vec<WireTensor>,
    #[serde(default)]
    outputs: Option<Vec<Value>>,
    #[serde(default)]
    parameters: Option<serde_json::Map<String, Value>>,
}

/// `POST /v2/models/{name}/infer`.
pub async fn infer(
    State(runtime): State<Arc<Runtime>>,
    Path(name): Path<String>,
    Body(req): Body<InferRequest, true>,
) -> Result<Json<Value>, ApiError> {
    run(&runtime, &name, None, req).await
}

/// `POST /v2/models/{name}/versions/{version}/infer`.
pub async fn infer_version(
    State(runtime): State<Arc<Runtime>>,
    Path((name, version)): Path<(String, String)>,
    Body(req): Body<InferRequest, true>,
) -> Result<Json<Value>, ApiError> {
    run(&runtime, &name, Some(&version), req).await
}

/// Reads a wire tensor: flattens nested `data`, checks each element's type.
fn read_tensor(wire: WireTensor) -> Result<Tensor, String> {
    let _ = wire.parameters;
    let shape: Vec<usize> = wire
        .shape
        .iter()
        .map(|d| {
            usize::try_from(*d)
                .map_err(|_| format!("tensor {:?} has a negative dimension", wire.name))
        })
        .collect::<Result<_, _>>()?;
    let mut flat = Vec::new();
    flatten(wire.data, &mut flat);
    if flat.len() > MAX_ELEMENTS {
        return Err(format!(
            "tensor {:?} has {} elements; the limit is {MAX_ELEMENTS}",
            wire.name,
            flat.len()
        ));
    }
    let bad = |what: &str| {
        format!(
            "tensor {:?} is {:?} but holds a value that is not {what}",
            wire.name, wire.datatype
        )
    };
    let data = match wire.datatype {
        DataType::Bool => TensorData::Bool(
            flat.iter()
                .map(|v| v.as_bool().ok_or_else(|| bad("a boolean")))
                .collect::<Result<_, _>>()?,
        ),
        DataType::Uint8 => TensorData::Uint8(
            flat.iter()
                .map(|v| {
                    v.as_u64()
                        .and_then(|x| u8::try_from(x).ok())
                        .ok_or_else(|| bad("a UINT8"))
                })
                .collect::<Result<_, _>>()?,
        ),
        DataType::Int32 => TensorData::Int32(
            flat.iter()
                .map(|v| {
                    v.as_i64()
                        .and_then(|x| i32::try_from(x).ok())
                        .ok_or_else(|| bad("an INT32"))
                })
                .collect::<Result<_, _>>()?,
        ),
        DataType::Int64 => TensorData::Int64(
            flat.iter()
                .map(|v| v.as_i64().ok_or_else(|| bad("an INT64")))
                .collect::<Result<_, _>>()?,
        ),
        DataType::Fp32 => TensorData::Fp32(
            flat.iter()
                .map(|v| v.as_f64().map(|x| x as f32).ok_or_else(|| bad("a number")))
                .collect::<Result<_, _>>()?,
        ),
        DataType::Fp64 => TensorData::Fp64(
            flat.iter()
                .map(|v| v.as_f64().ok_or_else(|| bad("a number")))
                .collect::<Result<_, _>>()?,
        ),
        DataType::Bytes => TensorData::Bytes(
            flat.iter()
                .map(|v| {
                    v.as_str()
                        .map(|s| s.as_bytes().to_vec())
                        .ok_or_else(|| bad("a string"))
                })
                .collect::<Result<_, _>>()?,
        ),
    };
    let tensor = Tensor {
        name: wire.name,
        shape,
        data,
    };
    tensor.check().map_err(|e| e.to_string())?;
    Ok(tensor)
}

fn flatten(value: Value, out: &mut Vec<Value>) {
    match value {
        Value::Array(items) => items.into_iter().for_each(|v| flatten(v, out)),
        other => out.push(other),
    }
}

fn write_tensor(tensor: &Tensor) -> Value {
    let data = match &tensor.data {
        TensorData::Bool(v) => json!(v),
        TensorData::Uint8(v) => json!(v),
        TensorData::Int32(v) => json!(v),
        TensorData::Int64(v) => json!(v),
        TensorData::Fp32(v) => json!(v),
        TensorData::Fp64(v) => json!(v),
        TensorData::Bytes(v) => json!(
            v.iter()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect::<Vec<_>>()
        ),
    };
    json!({"name": tensor.name, "shape": tensor.shape, "datatype": tensor.data.datatype(), "data": data})
}

fn texts(tensor: &Tensor, spec: &TensorSpec) -> Result<Vec<String>, ApiError> {
    tensor
        .fits(spec)
        .map_err(|e| ApiError::invalid(D, e.to_string()))?;
    let TensorData::Bytes(items) = &tensor.data else {
        return Err(ApiError::invalid(
            D,
            format!("input {:?} must be BYTES", spec.name),
        ));
    };
    items
        .iter()
        .map(|b| {
            String::from_utf8(b.clone())
                .map_err(|_| ApiError::invalid(D, format!("input {:?} is not UTF-8", spec.name)))
        })
        .collect()
}

fn param_f32(params: &Option<serde_json::Map<String, Value>>, key: &str) -> Option<f32> {
    params
        .as_ref()
        .and_then(|p| p.get(key))
        .and_then(Value::as_f64)
        .map(|v| v as f32)
}

async fn run(
    runtime: &Arc<Runtime>,
    name: &str,
    version: Option<&str>,
    req: InferRequest,
) -> Result<Json<Value>, ApiError> {
    let _ = req.outputs;
    let served = resolve(runtime, name, version)?;
    let (input_specs, _) = signature(&served);
    let mut tensors = Vec::with_capacity(req.inputs.len());
    for wire in req.inputs {
        tensors.push(read_tensor(wire).map_err(|m| ApiError::invalid(D, m))?);
    }
    for tensor in &tensors {
        if !input_specs.iter().any(|s| s.name == tensor.name) {
            return Err(ApiError::invalid(
                D,
                format!("unknown input {:?}", tensor.name),
            ));
        }
    }
    let find = |spec: &TensorSpec| {
        tensors
            .iter()
            .find(|t| t.name == spec.name)
            .ok_or_else(|| ApiError::invalid(D, format!("missing input {:?}", spec.name)))
    };
    let start = Instant::now();
    let outputs = match &served.engine {
        Engine::Embeddings(e) => {
            let inputs = texts(find(&input_specs[0])?, &input_specs[0])?;
            if inputs.is_empty() || inputs.len() > crate::openai::MAX_EMBEDDING_INPUTS {
                return Err(ApiError::invalid(
                    D,
                    format!(
                        "text must hold 1 to {} items",
                        crate::openai::MAX_EMBEDDING_INPUTS
                    ),
                ));
            }
            let batcher = served
                .batcher
                .as_ref()
                .ok_or_else(|| ApiError::not_ready(D))?;
            let result = batcher
                .embed(inputs)
                .await
                .map_err(|e| ApiError::from_inference(D, e))?;
            let rows = result.vectors.len();
            let flat: Vec<f32> = result.vectors.into_iter().flatten().collect();
            vec![Tensor {
                name: "embedding".into(),
                shape: vec![rows, e.dimensions()],
                data: TensorData::Fp32(flat),
            }]
        }
        Engine::Generation(g) => {
            let prompt = texts(find(&input_specs[0])?, &input_specs[0])?.remove(0);
            let params = SamplingParams {
                temperature: param_f32(&req.parameters, "temperature").unwrap_or(0.0),
                top_p: param_f32(&req.parameters, "top_p").unwrap_or(1.0),
                top_k: 0,
                seed: None,
                max_tokens: param_f32(&req.parameters, "max_tokens")
                    .map_or(crate::openai::DEFAULT_MAX_TOKENS, |v| v as u32),
                stop: Vec::new(),
            };
            let rendered = g
                .render_chat(&[ChatMessage {
                    role: "user".into(),
                    content: prompt,
                }])
                .map_err(|e| ApiError::from_inference(D, e))?;
            let _ticket = served.admit().ok_or_else(|| ApiError::overloaded(D))?;
            let (tx, mut rx) = mpsc::unbounded_channel();
            g.submit(
                GenerationRequest {
                    prompt: rendered,
                    params,
                },
                tx,
            )
            .map_err(|e| ApiError::from_inference(D, e))?;
            let mut text = String::new();
            loop {
                match rx.recv().await {
                    Some(GenerationEvent::Text(piece)) => text.push_str(&piece),
                    Some(GenerationEvent::Done {
                        prompt_tokens,
                        cached_tokens,
                        completion_tokens,
                        ..
                    }) => {
                        runtime.metrics().observe_generation(&TokenUsage {
                            prompt_tokens,
                            cached_tokens,
                            completion_tokens,
                        });
                        break;
                    }
                    Some(GenerationEvent::Failed(e)) => return Err(ApiError::from_inference(D, e)),
                    None => {
                        return Err(ApiError::from_inference(
                            D,
                            InferenceError::Engine("generation ended early".into()),
                        ));
                    }
                }
            }
            vec![Tensor {
                name: "text_output".into(),
                shape: vec![1],
                data: TensorData::Bytes(vec![text.into_bytes()]),
            }]
        }
        Engine::Tensor(model) => {
            let model = model.clone();
            tokio::task::spawn_blocking(move || model.infer(&tensors))
                .await
                .map_err(|e| {
                    ApiError::from_inference(
                        D,
                        InferenceError::Engine(format!("inference panicked: {e}")),
                    )
                })?
                .map_err(|e| ApiError::from_inference(D, e))?
        }
    };
    runtime
        .metrics()
        .observe_inference(served.engine.kind(), start.elapsed());
    Ok(Json(json!({
        "model_name": runtime.config().name, "model_version": served.version,
        "id": req.id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        "outputs": outputs.iter().map(write_tensor).collect::<Vec<_>>()
    })))
}
