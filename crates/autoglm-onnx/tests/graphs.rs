//! Small graphs written here, for what the iris model cannot show: every
//! element type in and out, refused types and operators, free and fixed
//! dimensions, inputs that disagree on the batch, ZipMaps that cannot go.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use autoglm_inference::{DataType, InferenceError, Tensor, TensorData, TensorModel, TensorSpec};
use autoglm_onnx::OnnxModel;
use prost::Message;
use tract_onnx::pb::{
    self, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};

// ONNX TensorProto.DataType codes.
const FLOAT: i32 = 1;
const UINT8: i32 = 2;
const INT32: i32 = 6;
const INT64: i32 = 7;
const STRING: i32 = 8;
const BOOL: i32 = 9;
const FLOAT16: i32 = 10;
const DOUBLE: i32 = 11;

/// A dimension: a size, a named parameter, or `None` for none given.
enum D {
    V(i64),
    P(&'static str),
    Unknown,
}

fn value(name: &str, elem_type: i32, dims: &[D]) -> ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: match d {
                D::V(v) => Some(Value::DimValue(*v)),
                D::P(p) => Some(Value::DimParam((*p).into())),
                D::Unknown => None,
            },
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// What a sequence or map type decodes to with tract's tensor-only schema.
fn not_a_tensor(name: &str) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto::default()),
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        input: inputs.iter().map(|s| (*s).into()).collect(),
        output: outputs.iter().map(|s| (*s).into()).collect(),
        ..Default::default()
    }
}

fn int_attr(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i,
        r#type: 2,
        ..Default::default()
    }
}

/// Writes the graph as a model file; each test has its own file name.
fn write(name: &str, graph: GraphProto) -> PathBuf {
    let model = ModelProto {
        ir_version: 8,
        opset_import: vec![
            OperatorSetIdProto {
                domain: String::new(),
                version: 13,
            },
            OperatorSetIdProto {
                domain: "ai.onnx.ml".into(),
                version: 1,
            },
        ],
        graph: Some(graph),
        ..Default::default()
    };
    let dir = std::env::temp_dir().join(format!("autoglm-onnx-graphs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.onnx"));
    std::fs::write(&path, model.encode_to_vec()).unwrap();
    path
}

fn refused(path: PathBuf) -> String {
    match OnnxModel::load(&path) {
        Err(InferenceError::InvalidInput(msg)) => msg,
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

fn identity(name: &str, elem_type: i32, dims: &[D]) -> PathBuf {
    write(
        name,
        GraphProto {
            node: vec![node("Identity", &["x"], &["y"])],
            input: vec![value("x", elem_type, dims)],
            output: vec![value("y", elem_type, dims)],
            ..Default::default()
        },
    )
}

#[test]
fn every_supported_type_goes_through() {
    let cases = [
        (FLOAT, TensorData::Fp32(vec![1.5, -2.0])),
        (DOUBLE, TensorData::Fp64(vec![1.5, -2.0])),
        (INT64, TensorData::Int64(vec![i64::MAX, -7])),
        (INT32, TensorData::Int32(vec![i32::MIN, 7])),
        (UINT8, TensorData::Uint8(vec![0, 255])),
        (BOOL, TensorData::Bool(vec![true, false])),
    ];
    for (code, data) in cases {
        let path = identity(&format!("identity-{code}"), code, &[D::P("batch")]);
        let model = OnnxModel::load(&path).unwrap();
        let datatype = data.datatype();
        assert_eq!(
            model.inputs(),
            [TensorSpec {
                name: "x".into(),
                datatype,
                shape: vec![-1],
            }]
        );
        assert_eq!(model.outputs()[0].datatype, datatype);
        let out = model
            .infer(&[Tensor {
                name: "x".into(),
                shape: vec![2],
                data: data.clone(),
            }])
            .unwrap();
        assert_eq!(
            out,
            [Tensor {
                name: "y".into(),
                shape: vec![2],
                data,
            }]
        );
    }
}

#[test]
fn casts_compute() {
    let path = write(
        "cast",
        GraphProto {
            node: vec![NodeProto {
                attribute: vec![int_attr("to", DOUBLE.into())],
                ..node("Cast", &["x"], &["y"])
            }],
            input: vec![value("x", INT64, &[D::Unknown, D::V(2)])],
            output: vec![value("y", DOUBLE, &[D::Unknown, D::V(2)])],
            ..Default::default()
        },
    );
    let model = OnnxModel::load(&path).unwrap();
    assert_eq!(model.outputs()[0].shape, [-1, 2]);
    let out = model
        .infer(&[Tensor {
            name: "x".into(),
            shape: vec![2, 2],
            data: TensorData::Int64(vec![1, 2, 3, -4]),
        }])
        .unwrap();
    assert_eq!(out[0].data, TensorData::Fp64(vec![1.0, 2.0, 3.0, -4.0]));
    assert_eq!(out[0].shape, [2, 2]);
}

#[test]
fn unsupported_input_types_are_refused_at_load() {
    let msg = refused(identity("string", STRING, &[D::V(1)]));
    assert!(msg.contains("\"x\"") && msg.contains("String"), "{msg}");
    assert!(msg.contains("only FP32"), "{msg}");
    let msg = refused(identity("half", FLOAT16, &[D::V(1)]));
    assert!(msg.contains("F16"), "{msg}");
}

#[test]
fn unknown_operators_are_named() {
    let path = write(
        "unknown-op",
        GraphProto {
            node: vec![node("Frobnicate", &["x"], &["y"])],
            input: vec![value("x", FLOAT, &[D::V(1)])],
            output: vec![value("y", FLOAT, &[D::V(1)])],
            ..Default::default()
        },
    );
    let msg = refused(path);
    assert!(msg.contains("Frobnicate"), "{msg}");
}

#[test]
fn non_tensor_values_are_refused() {
    let path = write(
        "sequence-out",
        GraphProto {
            node: vec![node("Identity", &["x"], &["y"])],
            input: vec![value("x", FLOAT, &[D::V(1)])],
            output: vec![not_a_tensor("y")],
            ..Default::default()
        },
    );
    let msg = refused(path);
    assert!(msg.contains("output \"y\" is not a tensor"), "{msg}");

    let path = write(
        "sequence-in",
        GraphProto {
            node: vec![node("Identity", &["x"], &["y"])],
            input: vec![not_a_tensor("x")],
            output: vec![value("y", FLOAT, &[D::V(1)])],
            ..Default::default()
        },
    );
    let msg = refused(path);
    assert!(msg.contains("input \"x\" is not a tensor"), "{msg}");
}

#[test]
fn a_zipmap_feeding_another_node_is_refused() {
    let zipmap = NodeProto {
        domain: "ai.onnx.ml".into(),
        attribute: vec![AttributeProto {
            name: "classlabels_int64s".into(),
            ints: vec![0, 1],
            r#type: 7,
            ..Default::default()
        }],
        ..node("ZipMap", &["x"], &["maps"])
    };
    let path = write(
        "zipmap-inside",
        GraphProto {
            node: vec![zipmap, node("Identity", &["maps"], &["y"])],
            input: vec![value("x", FLOAT, &[D::Unknown, D::V(2)])],
            output: vec![not_a_tensor("maps"), not_a_tensor("y")],
            ..Default::default()
        },
    );
    let msg = refused(path);
    assert!(
        msg.contains("ZipMap output \"maps\" feeds other nodes"),
        "{msg}"
    );
}

#[test]
fn inputs_must_agree_on_the_batch() {
    let path = write(
        "add",
        GraphProto {
            node: vec![node("Add", &["a", "b"], &["sum"])],
            input: vec![
                value("a", FLOAT, &[D::P("n"), D::V(2)]),
                value("b", FLOAT, &[D::P("n"), D::V(2)]),
            ],
            output: vec![value("sum", FLOAT, &[D::P("n"), D::V(2)])],
            ..Default::default()
        },
    );
    let model = OnnxModel::load(&path).unwrap();
    let input = |name: &str, rows: usize| Tensor {
        name: name.into(),
        shape: vec![rows, 2],
        data: TensorData::Fp32((0..rows * 2).map(|x| x as f32).collect()),
    };
    let out = model.infer(&[input("b", 2), input("a", 2)]).unwrap();
    assert_eq!(out[0].data, TensorData::Fp32(vec![0.0, 2.0, 4.0, 6.0]));
    match model.infer(&[input("a", 2), input("b", 3)]) {
        Err(InferenceError::InvalidInput(msg)) => assert!(msg.contains("disagree"), "{msg}"),
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

#[test]
fn a_graph_that_needs_its_declared_batch_keeps_it() {
    let shape = TensorProto {
        name: "shape".into(),
        dims: vec![2],
        data_type: INT64,
        int64_data: vec![2, 3],
        ..Default::default()
    };
    let path = write(
        "reshape",
        GraphProto {
            node: vec![node("Reshape", &["x", "shape"], &["y"])],
            initializer: vec![shape],
            input: vec![value("x", FLOAT, &[D::V(1), D::V(6)])],
            output: vec![value("y", FLOAT, &[D::V(2), D::V(3)])],
            ..Default::default()
        },
    );
    let model = OnnxModel::load(&path).unwrap();
    assert_eq!(model.inputs()[0].shape, [1, 6]);
    assert_eq!(model.outputs()[0].shape, [2, 3]);
    let out = model
        .infer(&[Tensor {
            name: "x".into(),
            shape: vec![1, 6],
            data: TensorData::Fp32(vec![1.0; 6]),
        }])
        .unwrap();
    assert_eq!(out[0].shape, [2, 3]);
}

#[test]
fn fixed_batches_are_freed_and_features_kept() {
    let model = OnnxModel::load(&identity("spec", FLOAT, &[D::V(3), D::V(2)])).unwrap();
    assert_eq!(model.inputs()[0].datatype, DataType::Fp32);
    // The batch is free even where the file fixed it to the traced sample.
    assert_eq!(model.inputs()[0].shape, [-1, 2]);
    assert_eq!(model.outputs()[0].shape, [-1, 2]);
    // A rank-1 input may be one sample's features: its size stays.
    let model = OnnxModel::load(&identity("one-sample", FLOAT, &[D::V(4)])).unwrap();
    assert_eq!(model.inputs()[0].shape, [4]);
}
