//! Classic ONNX models (scikit-learn exports through skl2onnx, small
//! numeric graphs) served as [`TensorModel`]s with tract, a pure-Rust engine.
//!
//! # What is served
//!
//! Inputs and outputs are the graph's own, by name and in order, with the
//! types and shapes tract infers through the graph. The plan is optimised
//! once, at load, with a symbolic batch `N`, so one plan serves every batch
//! size; dimensions that stay symbolic are reported as `-1`.
//!
//! The leading dimension of every input of rank 2 or more is the batch and
//! is freed even where the file fixes it: converters write the shape of the
//! sample they traced. A graph that cannot be typed with a free batch (a
//! Reshape to constants) is served with its declared shapes, and the load
//! logs a warning. Rank-1 inputs keep their size: they may be one sample.
//!
//! Declared shapes are otherwise trusted, except the feature count of an
//! input read by a `LinearClassifier` or `LinearRegressor`, which is set to
//! what the coefficients hold (with a warning when it differs): old
//! converters declared garbage there, and the onnxruntime iris model
//! (OnnxMLTools 1.2) declares `[3, 2]` for a 4-feature classifier.
//!
//! Input element types are FP32, FP64, INT64, INT32, BOOL and UINT8; a model
//! with any other input type is refused at load. Outputs may also be strings
//! (a classifier with string labels), served as BYTES.
//!
//! # ZipMap
//!
//! skl2onnx classifiers end in an `ai.onnx.ml` `ZipMap` that turns the
//! `[N, classes]` probability tensor into a sequence of `{label: probability}`
//! maps. tract has no sequence or map values, and the Open Inference Protocol
//! has no such datatype either, so a `ZipMap` whose result is a graph output
//! (and nothing else's input) is replaced by an identity: that output is
//! served under its own name as the tensor the `ZipMap` was given, FP32
//! `[N, classes]`, with column `i` the probability of the `i`-th class label
//! of the `ZipMap` ([`OnnxModel::class_labels`] tells them). These are the
//! same numbers onnxruntime puts into the maps; nothing is computed that the
//! graph does not compute. Any other non-tensor input or output refuses the
//! model at load.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use autoglm_inference::{
    DataType, InferenceError, Result, Tensor, TensorData, TensorModel, TensorSpec,
};
use tract_onnx::pb;
use tract_onnx::prelude::{
    DatumType, Framework, InferenceFact, InferenceModelExt, IntoRunnable, TDim, TValue, TVec,
    Tensor as TractTensor, TractError, TractResult, TypedModel, TypedRunnableModel,
};
use tract_onnx::tract_hir::internal::{DimFact, Factoid};

/// The symbol every open leading input dimension shares.
const BATCH: &str = "N";

/// The labels of a `ZipMap` that was removed, in the order of the columns of
/// the tensor served in its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassLabels {
    /// `classlabels_int64s`.
    Int64(Vec<i64>),
    /// `classlabels_strings`.
    Strings(Vec<String>),
}

/// One input as the plan wants it.
#[derive(Debug, Clone)]
struct InputPlan {
    /// Per dimension, the symbol it stands for, when it is exactly one.
    symbols: Vec<Option<String>>,
}

/// A loaded ONNX model, optimised once, run from any number of threads.
pub struct OnnxModel {
    inputs: Vec<TensorSpec>,
    input_plans: Vec<InputPlan>,
    outputs: Vec<TensorSpec>,
    class_labels: HashMap<String, ClassLabels>,
    // `run` spawns a fresh state per call, so one plan serves every thread.
    plan: std::sync::Arc<TypedRunnableModel>,
}

impl fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnnxModel")
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .field("class_labels", &self.class_labels)
            .finish_non_exhaustive()
    }
}

impl OnnxModel {
    /// Loads, checks and optimises the model at `path`.
    ///
    /// A file that cannot be read is [`InferenceError::Engine`]; a file that
    /// is not a model this crate can serve (not ONNX, an operator tract lacks,
    /// an unsupported datatype, a non-tensor value) is
    /// [`InferenceError::InvalidInput`], with the reason.
    pub fn load(path: &Path) -> Result<OnnxModel> {
        let started = std::time::Instant::now();
        let bytes = std::fs::read(path)
            .map_err(|e| InferenceError::Engine(format!("reading {}: {e}", path.display())))?;
        let invalid =
            |msg: String| InferenceError::InvalidInput(format!("{}: {msg}", path.display()));
        let onnx = tract_onnx::onnx();
        let mut proto = onnx
            .proto_model_for_read(&mut bytes.as_slice())
            .map_err(|e| invalid(format!("not an ONNX model: {e:#}")))?;
        let graph = proto
            .graph
            .as_mut()
            .ok_or_else(|| invalid("the model has no graph".into()))?;
        let class_labels = unzip_maps(graph).map_err(invalid)?;
        check_values_are_tensors(graph).map_err(invalid)?;
        let mut unsupported: Vec<&str> = graph
            .node
            .iter()
            .map(|n| n.op_type.as_str())
            .filter(|op| !onnx.op_register.0.contains_key(*op))
            .collect();
        unsupported.sort_unstable();
        unsupported.dedup();
        if !unsupported.is_empty() {
            return Err(invalid(format!(
                "tract does not implement operator(s) {unsupported:?}"
            )));
        }
        for fix in fix_feature_counts(graph) {
            tracing::warn!(path = %path.display(), "{fix}");
        }
        let output_names: Vec<String> = graph.output.iter().map(|o| o.name.clone()).collect();

        // Converters write the shape of the sample they traced (iris: 3
        // rows), so the batch is freed first; a graph that needs its
        // declared batch (a Reshape to constants) gets it on the second try.
        let (typed, input_names) = match plan_graph(&onnx, &proto, path, true) {
            Ok(planned) => planned,
            Err(free) => {
                let planned = plan_graph(&onnx, &proto, path, false)?;
                tracing::warn!(
                    path = %path.display(),
                    error = %free,
                    "the batch dimension cannot be freed; serving the declared shapes"
                );
                planned
            }
        };
        let input_count = input_names.len();

        let mut inputs = Vec::with_capacity(input_count);
        let mut input_plans = Vec::with_capacity(input_count);
        for (ix, name) in input_names.into_iter().enumerate() {
            let fact = typed
                .input_fact(ix)
                .map_err(|e| InferenceError::Engine(format!("input {name:?}: {e:#}")))?;
            let datatype = input_datatype(fact.datum_type)
                .ok_or_else(|| invalid(format!("input {name:?} became {:?}", fact.datum_type)))?;
            input_plans.push(InputPlan {
                symbols: fact
                    .shape
                    .iter()
                    .map(|d| match d {
                        TDim::Sym(s) => Some(s.to_string()),
                        _ => None,
                    })
                    .collect(),
            });
            inputs.push(TensorSpec {
                name,
                datatype,
                shape: spec_shape(fact.shape.iter()),
            });
        }
        let mut outputs = Vec::with_capacity(output_names.len());
        for (ix, name) in output_names.into_iter().enumerate() {
            let fact = typed
                .output_fact(ix)
                .map_err(|e| InferenceError::Engine(format!("output {name:?}: {e:#}")))?;
            let datatype = output_datatype(fact.datum_type).ok_or_else(|| {
                invalid(format!(
                    "output {name:?} is {:?}, which has no Open Inference Protocol datatype",
                    fact.datum_type
                ))
            })?;
            outputs.push(TensorSpec {
                name,
                datatype,
                shape: spec_shape(fact.shape.iter()),
            });
        }

        let plan = typed
            .into_runnable()
            .map_err(|e| InferenceError::Engine(format!("{}: planning: {e:#}", path.display())))?;
        tracing::info!(
            path = %path.display(),
            inputs = ?inputs,
            outputs = ?outputs,
            unzipped = ?class_labels.keys().collect::<Vec<_>>(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loaded ONNX model"
        );
        Ok(OnnxModel {
            inputs,
            input_plans,
            outputs,
            class_labels,
            plan,
        })
    }

    /// For an output that a `ZipMap` produced in the file, the class label
    /// of each column of the tensor served instead (see the crate doc).
    pub fn class_labels(&self, output: &str) -> Option<&ClassLabels> {
        self.class_labels.get(output)
    }

    /// Orders `given` as the plan's inputs, refusing anything that does not fit.
    fn check_inputs<'a>(&self, given: &'a [Tensor]) -> Result<Vec<&'a Tensor>> {
        let invalid = InferenceError::InvalidInput;
        let mut ordered: Vec<Option<&Tensor>> = vec![None; self.inputs.len()];
        for tensor in given {
            let ix = self
                .inputs
                .iter()
                .position(|s| s.name == tensor.name)
                .ok_or_else(|| {
                    invalid(format!(
                        "unknown input {:?}; the model takes {:?}",
                        tensor.name,
                        self.input_names()
                    ))
                })?;
            if ordered[ix].replace(tensor).is_some() {
                return Err(invalid(format!("input {:?} given twice", tensor.name)));
            }
            tensor
                .fits(&self.inputs[ix])
                .map_err(|e| invalid(e.to_string()))?;
        }
        let mut bound: HashMap<&str, (usize, &str)> = HashMap::new();
        let mut tensors = Vec::with_capacity(ordered.len());
        for (ix, tensor) in ordered.into_iter().enumerate() {
            let spec = &self.inputs[ix];
            let tensor = tensor.ok_or_else(|| {
                invalid(format!(
                    "missing input {:?}; the model takes {:?}",
                    spec.name,
                    self.input_names()
                ))
            })?;
            for (axis, symbol) in self.input_plans[ix].symbols.iter().enumerate() {
                let Some(symbol) = symbol else { continue };
                let size = tensor.shape[axis];
                if size == 0 {
                    return Err(invalid(format!(
                        "input {:?} has an empty dimension {axis}",
                        spec.name
                    )));
                }
                match bound.get(symbol.as_str()) {
                    Some((other, by)) if *other != size => {
                        return Err(invalid(format!(
                            "inputs {by:?} and {:?} disagree on dimension {symbol}: {other} and {size}",
                            spec.name
                        )));
                    }
                    Some(_) => {}
                    None => {
                        bound.insert(symbol, (size, spec.name.as_str()));
                    }
                }
            }
            tensors.push(tensor);
        }
        Ok(tensors)
    }

    fn input_names(&self) -> Vec<&str> {
        self.inputs.iter().map(|s| s.name.as_str()).collect()
    }
}

impl TensorModel for OnnxModel {
    fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }

    fn outputs(&self) -> &[TensorSpec] {
        &self.outputs
    }

    fn infer(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let ordered = self.check_inputs(inputs)?;
        let values = ordered
            .into_iter()
            .map(|t| to_tract(t).map(TValue::from))
            .collect::<TractResult<TVec<TValue>>>()
            .map_err(|e| InferenceError::Engine(format!("converting inputs: {e:#}")))?;
        let results = self
            .plan
            .run(values)
            .map_err(|e| InferenceError::Engine(format!("running the model: {e:#}")))?;
        if results.len() != self.outputs.len() {
            return Err(InferenceError::Engine(format!(
                "the model returned {} outputs, not {}",
                results.len(),
                self.outputs.len()
            )));
        }
        results
            .iter()
            .zip(&self.outputs)
            .map(|(value, spec)| {
                from_tract(value, spec).map_err(|e| {
                    InferenceError::Engine(format!("converting output {:?}: {e:#}", spec.name))
                })
            })
            .collect()
    }
}

/// Types and optimises the graph; with `free_batch`, the leading dimension of
/// every input is the shared batch symbol whatever the file declares.
fn plan_graph(
    onnx: &tract_onnx::Onnx,
    proto: &pb::ModelProto,
    path: &Path,
    free_batch: bool,
) -> Result<(TypedModel, Vec<String>)> {
    let invalid = |msg: String| InferenceError::InvalidInput(format!("{}: {msg}", path.display()));
    // Value info records intermediate shapes of the traced sample, which a
    // free batch contradicts.
    let onnx = onnx.clone().with_ignore_value_info(free_batch);
    // External tensor data, if any, lives beside the model file.
    let dir = path.parent().and_then(Path::to_str);
    let parsed = onnx
        .parse(proto, dir)
        .map_err(|e| invalid(format!("cannot parse the graph: {e:#}")))?;
    if !parsed.unresolved_inputs.is_empty() {
        return Err(invalid(format!(
            "the graph uses values nothing defines: {:?}",
            parsed.unresolved_inputs
        )));
    }
    let mut model = parsed.model;
    let mut input_names = Vec::with_capacity(model.inputs.len());
    for ix in 0..model.inputs.len() {
        let outlet = model.inputs[ix];
        let name = model.node(outlet.node).name.clone();
        let fact = model
            .input_fact(ix)
            .map_err(|e| invalid(format!("input {ix}: {e:#}")))?
            .clone();
        let dt = fact
            .datum_type
            .concretize()
            .ok_or_else(|| invalid(format!("input {name:?} declares no element type")))?;
        if input_datatype(dt).is_none() {
            return Err(invalid(format!(
                "input {name:?} is {dt:?}; only FP32, FP64, INT64, INT32, BOOL and UINT8 inputs are supported"
            )));
        }
        if fact.shape.is_open() {
            return Err(invalid(format!("input {name:?} declares no shape")));
        }
        let dims: Vec<DimFact> = fact.shape.dims().cloned().collect();
        let mut shape: Vec<TDim> = Vec::with_capacity(dims.len());
        for (axis, dim) in dims.iter().enumerate() {
            shape.push(match dim.concretize() {
                // Rank 1 may be one sample's features rather than a batch.
                _ if axis == 0 && free_batch && dims.len() > 1 => model.sym(BATCH).into(),
                Some(d) => d,
                // One symbol for every open leading dimension, so ops that
                // join two inputs still type-check.
                None if axis == 0 => model.sym(BATCH).into(),
                None => model.new_sym_with_prefix(&format!("{name}_{axis}_")).into(),
            });
        }
        model
            .set_input_fact(ix, InferenceFact::dt_shape(dt, shape))
            .map_err(|e| invalid(format!("input {name:?}: {e:#}")))?;
        input_names.push(name);
    }
    let typed = model
        .into_typed()
        .map_err(|e| invalid(format!("cannot infer types and shapes: {e:#}")))?;
    let typed = typed
        .into_optimized()
        .map_err(|e| InferenceError::Engine(format!("{}: optimising: {e:#}", path.display())))?;
    Ok((typed, input_names))
}

/// Sets the feature count of inputs read by a linear `ai.onnx.ml` model to
/// what its coefficients hold, returning what was changed.
///
/// Old converters declared the traced sample's shape; logreg_iris.onnx
/// (OnnxMLTools 1.2) says `[3, 2]` for a 4-feature model, and tract, whose
/// linear ops do not check it, would type a plan that cannot run.
fn fix_feature_counts(graph: &mut pb::GraphProto) -> Vec<String> {
    let mut fixes = Vec::new();
    let mut wanted: Vec<(String, i64, String)> = Vec::new();
    for node in &graph.node {
        let attr = |name: &str| node.attribute.iter().find(|a| a.name == name);
        let models = match node.op_type.as_str() {
            "LinearRegressor" => attr("targets").map_or(1, |a| a.i),
            "LinearClassifier" => match attr("intercepts") {
                Some(a) => a.floats.len() as i64,
                None => {
                    let classes = attr("classlabels_ints")
                        .map(|a| a.ints.len())
                        .or_else(|| attr("classlabels_strings").map(|a| a.strings.len()))
                        .unwrap_or(0) as i64;
                    let multi_class = attr("multi_class").map_or(0, |a| a.i);
                    if classes == 2 && multi_class == 0 {
                        1
                    } else {
                        classes
                    }
                }
            },
            _ => continue,
        };
        let coefficients = attr("coefficients").map_or(0, |a| a.floats.len()) as i64;
        let Some(input) = node.input.first() else {
            continue;
        };
        if models > 0 && coefficients > 0 && coefficients % models == 0 {
            wanted.push((input.clone(), coefficients / models, node.op_type.clone()));
        }
    }
    for (input, features, op) in wanted {
        let Some(value) = graph.input.iter_mut().find(|v| v.name == input) else {
            continue;
        };
        let Some(pb::type_proto::Value::TensorType(tensor)) =
            value.r#type.as_mut().and_then(|t| t.value.as_mut())
        else {
            continue;
        };
        let Some(shape) = tensor.shape.as_mut() else {
            continue;
        };
        // Rank 1 is one sample; only [batch, features] has a feature axis.
        let [_, last] = shape.dim.as_mut_slice() else {
            continue;
        };
        use pb::tensor_shape_proto::dimension::Value as Dim;
        match last.value {
            Some(Dim::DimValue(declared)) if declared == features => {}
            Some(Dim::DimValue(declared)) => fixes.push(format!(
                "input {input:?} declares {declared} features but its {op} has coefficients \
                 for {features}; serving {features}"
            )),
            _ => {}
        }
        last.value = Some(Dim::DimValue(features));
    }
    fixes
}

/// Replaces each `ZipMap` that ends the graph with an identity and returns
/// its labels by output name (see the crate doc for why).
fn unzip_maps(graph: &mut pb::GraphProto) -> Result<HashMap<String, ClassLabels>, String> {
    let mut labels = HashMap::new();
    let consumed: Vec<String> = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter().cloned())
        .collect();
    for node in graph.node.iter_mut().filter(|n| n.op_type == "ZipMap") {
        if node.input.len() != 1 || node.output.len() != 1 {
            return Err(format!(
                "ZipMap node {:?} is not one input to one output",
                node.name
            ));
        }
        let out = node.output[0].clone();
        let Some(graph_output) = graph.output.iter_mut().find(|o| o.name == out) else {
            return Err(format!(
                "ZipMap output {out:?} is not a graph output; sequences of maps are not supported"
            ));
        };
        if consumed.contains(&out) {
            return Err(format!(
                "ZipMap output {out:?} feeds other nodes; sequences of maps are not supported"
            ));
        }
        let attr = |name: &str| node.attribute.iter().find(|a| a.name == name);
        let class_labels = if let Some(a) = attr("classlabels_int64s") {
            ClassLabels::Int64(a.ints.clone())
        } else if let Some(a) = attr("classlabels_strings") {
            ClassLabels::Strings(
                a.strings
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect(),
            )
        } else {
            return Err(format!("ZipMap node {:?} has no class labels", node.name));
        };
        // The declared type was a sequence of maps; tract infers the tensor's.
        graph_output.r#type = None;
        node.op_type = "Identity".into();
        node.domain = String::new();
        node.attribute.clear();
        labels.insert(out, class_labels);
    }
    Ok(labels)
}

/// Refuses graph inputs and outputs whose declared type is not a tensor.
fn check_values_are_tensors(graph: &pb::GraphProto) -> Result<(), String> {
    // tract's ONNX schema knows only tensor types, so a sequence, map or
    // optional type decodes as a type with no value.
    let not_tensor = |v: &pb::ValueInfoProto| v.r#type.as_ref().is_some_and(|t| t.value.is_none());
    let initialised: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    if let Some(v) = graph
        .input
        .iter()
        .filter(|v| !initialised.contains(&v.name.as_str()))
        .find(|v| not_tensor(v) || v.r#type.is_none())
    {
        return Err(format!(
            "input {:?} is not a tensor; only tensor inputs are supported",
            v.name
        ));
    }
    if let Some(v) = graph.output.iter().find(|v| not_tensor(v)) {
        return Err(format!(
            "output {:?} is not a tensor (a sequence or map); only tensor outputs are supported",
            v.name
        ));
    }
    Ok(())
}

fn input_datatype(dt: DatumType) -> Option<DataType> {
    Some(match dt {
        DatumType::F32 => DataType::Fp32,
        DatumType::F64 => DataType::Fp64,
        DatumType::I64 => DataType::Int64,
        DatumType::I32 => DataType::Int32,
        DatumType::Bool => DataType::Bool,
        DatumType::U8 => DataType::Uint8,
        _ => return None,
    })
}

fn output_datatype(dt: DatumType) -> Option<DataType> {
    match dt {
        DatumType::String => Some(DataType::Bytes),
        // Shape arithmetic is i64 in ONNX; tract may keep it symbolic until the end.
        DatumType::TDim => Some(DataType::Int64),
        dt => input_datatype(dt),
    }
}

fn spec_shape<'a>(dims: impl Iterator<Item = &'a TDim>) -> Vec<i64> {
    dims.map(|d| d.as_i64().unwrap_or(-1)).collect()
}

fn to_tract(t: &Tensor) -> TractResult<TractTensor> {
    match &t.data {
        TensorData::Bool(v) => TractTensor::from_shape(&t.shape, v),
        TensorData::Uint8(v) => TractTensor::from_shape(&t.shape, v),
        TensorData::Int32(v) => TractTensor::from_shape(&t.shape, v),
        TensorData::Int64(v) => TractTensor::from_shape(&t.shape, v),
        TensorData::Fp32(v) => TractTensor::from_shape(&t.shape, v),
        TensorData::Fp64(v) => TractTensor::from_shape(&t.shape, v),
        // No input spec is BYTES, so `fits` has already refused this.
        TensorData::Bytes(_) => Err(TractError::msg("BYTES inputs are not supported")),
    }
}

fn from_tract(value: &TractTensor, spec: &TensorSpec) -> TractResult<Tensor> {
    let data = match spec.datatype {
        DataType::Bool => TensorData::Bool(slice::<bool>(value, DatumType::Bool)?),
        DataType::Uint8 => TensorData::Uint8(slice::<u8>(value, DatumType::U8)?),
        DataType::Int32 => TensorData::Int32(slice::<i32>(value, DatumType::I32)?),
        DataType::Int64 => TensorData::Int64(slice::<i64>(value, DatumType::I64)?),
        DataType::Fp32 => TensorData::Fp32(slice::<f32>(value, DatumType::F32)?),
        DataType::Fp64 => TensorData::Fp64(slice::<f64>(value, DatumType::F64)?),
        DataType::Bytes => TensorData::Bytes(
            value
                .cast_to_dt(DatumType::String)?
                .try_as_plain_ram()?
                .as_slice::<String>()?
                .iter()
                .map(|s| s.as_bytes().to_vec())
                .collect(),
        ),
    };
    Ok(Tensor {
        name: spec.name.clone(),
        shape: value.shape().to_vec(),
        data,
    })
}

/// The elements as `T`, cast when the plan produced another type (TDim for i64).
fn slice<T: tract_onnx::prelude::Datum + Copy>(
    value: &TractTensor,
    dt: DatumType,
) -> TractResult<Vec<T>> {
    Ok(value
        .cast_to_dt(dt)?
        .try_as_plain_ram()?
        .as_slice::<T>()?
        .to_vec())
}
