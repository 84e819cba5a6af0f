//! The scikit-learn iris classifier from the onnxruntime wheel, run for real:
//! labels of known flowers, probabilities, batch sizes, refusals, threads.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, OnceLock};

use autoglm_inference::{DataType, InferenceError, Tensor, TensorData, TensorModel, TensorSpec};
use autoglm_onnx::{ClassLabels, OnnxModel};

/// Loading optimises the graph; one model serves every test, as in production.
fn model() -> &'static OnnxModel {
    static MODEL: OnceLock<OnnxModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let path = autoglm_testmodels::file(autoglm_testmodels::IRIS, "onnx");
        OnnxModel::load(&path).unwrap()
    })
}

fn features(rows: &[[f32; 4]]) -> Tensor {
    Tensor {
        name: "float_input".into(),
        shape: vec![rows.len(), 4],
        data: TensorData::Fp32(rows.iter().flatten().copied().collect()),
    }
}

const SETOSA: [f32; 4] = [5.1, 3.5, 1.4, 0.2];
const VIRGINICA: [f32; 4] = [6.7, 3.0, 5.2, 2.3];
const VERSICOLOR: [f32; 4] = [5.9, 3.0, 4.2, 1.5];

fn output<'a>(outputs: &'a [Tensor], name: &str) -> &'a Tensor {
    outputs.iter().find(|t| t.name == name).unwrap()
}

fn labels(outputs: &[Tensor]) -> Vec<i64> {
    match &output(outputs, "label").data {
        TensorData::Int64(v) => v.clone(),
        other => panic!("label is {:?}", other.datatype()),
    }
}

fn probabilities(outputs: &[Tensor]) -> (Vec<usize>, Vec<f32>) {
    let t = output(outputs, "probabilities");
    match &t.data {
        TensorData::Fp32(v) => (t.shape.clone(), v.clone()),
        other => panic!("probabilities is {:?}", other.datatype()),
    }
}

fn invalid(result: Result<Vec<Tensor>, InferenceError>) -> String {
    match result {
        Err(InferenceError::InvalidInput(msg)) => msg,
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

#[test]
fn specs_come_from_the_graph() {
    let m = model();
    assert_eq!(
        m.inputs(),
        [TensorSpec {
            name: "float_input".into(),
            datatype: DataType::Fp32,
            shape: vec![-1, 4],
        }]
    );
    assert_eq!(
        m.outputs(),
        [
            TensorSpec {
                name: "label".into(),
                datatype: DataType::Int64,
                shape: vec![-1],
            },
            TensorSpec {
                name: "probabilities".into(),
                datatype: DataType::Fp32,
                shape: vec![-1, 3],
            },
        ]
    );
    assert_eq!(
        m.class_labels("probabilities"),
        Some(&ClassLabels::Int64(vec![0, 1, 2]))
    );
    assert_eq!(m.class_labels("label"), None);
}

#[test]
fn known_flowers_are_labelled_in_one_batch() {
    let out = model()
        .infer(&[features(&[SETOSA, VIRGINICA, VERSICOLOR])])
        .unwrap();
    assert_eq!(labels(&out), [0, 2, 1]);
    assert_eq!(output(&out, "label").shape, [3]);

    let (shape, p) = probabilities(&out);
    assert_eq!(shape, [3, 3]);
    for (row, label) in p.chunks(3).zip([0usize, 2, 1]) {
        let sum: f32 = row.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5, "row {row:?} sums to {sum}");
        assert!(row.iter().all(|x| (0.0..=1.0).contains(x)), "{row:?}");
        // The label is the most probable class, column i being class label i.
        let best = (0..3).max_by(|a, b| row[*a].total_cmp(&row[*b])).unwrap();
        assert_eq!(best, label, "{row:?}");
    }
}

#[test]
fn probabilities_are_the_graphs_own() {
    // sigmoid(x·w + b) per class, then L1-normalised: the LinearClassifier
    // and Normalizer of the file, computed outside tract from its weights.
    let expected = [
        [0.875453, 0.124512, 0.000035],
        [0.001557, 0.266714, 0.731729],
        [0.044005, 0.600822, 0.355173],
    ];
    let out = model()
        .infer(&[features(&[SETOSA, VIRGINICA, VERSICOLOR])])
        .unwrap();
    let (_, p) = probabilities(&out);
    for (got, want) in p.iter().zip(expected.iter().flatten()) {
        assert!((got - want).abs() < 1e-5, "{p:?}");
    }
}

#[test]
fn batches_of_one_and_a_hundred() {
    let one = model().infer(&[features(&[VIRGINICA])]).unwrap();
    assert_eq!(labels(&one), [2]);
    assert_eq!(probabilities(&one).0, [1, 3]);

    let rows: Vec<[f32; 4]> = [SETOSA, VIRGINICA, VERSICOLOR]
        .into_iter()
        .cycle()
        .take(100)
        .collect();
    let hundred = model().infer(&[features(&rows)]).unwrap();
    let expected: Vec<i64> = [0, 2, 1].into_iter().cycle().take(100).collect();
    assert_eq!(labels(&hundred), expected);
    let (shape, p) = probabilities(&hundred);
    assert_eq!(shape, [100, 3]);
    // A row's result does not depend on the batch it is in.
    assert_eq!(p[3..6], probabilities(&one).1[..]);
}

#[test]
fn wrong_datatype_is_refused() {
    let fp64 = Tensor {
        name: "float_input".into(),
        shape: vec![1, 4],
        data: TensorData::Fp64(SETOSA.iter().map(|x| f64::from(*x)).collect()),
    };
    let msg = invalid(model().infer(&[fp64]));
    assert!(msg.contains("Fp32") && msg.contains("Fp64"), "{msg}");
}

#[test]
fn wrong_shapes_are_refused() {
    let flat = Tensor {
        shape: vec![4],
        ..features(&[SETOSA])
    };
    let msg = invalid(model().infer(&[flat]));
    assert!(msg.contains("shape"), "{msg}");

    let five = Tensor {
        name: "float_input".into(),
        shape: vec![1, 5],
        data: TensorData::Fp32(vec![1.0; 5]),
    };
    let msg = invalid(model().infer(&[five]));
    assert!(msg.contains("[-1, 4]"), "{msg}");

    let short_data = Tensor {
        data: TensorData::Fp32(vec![1.0; 7]),
        ..features(&[SETOSA, SETOSA])
    };
    invalid(model().infer(&[short_data]));

    let empty = Tensor {
        shape: vec![0, 4],
        data: TensorData::Fp32(vec![]),
        ..features(&[])
    };
    let msg = invalid(model().infer(&[empty]));
    assert!(msg.contains("empty"), "{msg}");
}

#[test]
fn missing_unknown_and_repeated_inputs_are_refused() {
    let msg = invalid(model().infer(&[]));
    assert!(
        msg.contains("missing input") && msg.contains("float_input"),
        "{msg}"
    );

    let renamed = Tensor {
        name: "input".into(),
        ..features(&[SETOSA])
    };
    let msg = invalid(model().infer(std::slice::from_ref(&renamed)));
    assert!(msg.contains("unknown input \"input\""), "{msg}");

    let msg = invalid(model().infer(&[features(&[SETOSA]), renamed]));
    assert!(msg.contains("unknown input"), "{msg}");

    let msg = invalid(model().infer(&[features(&[SETOSA]), features(&[SETOSA])]));
    assert!(msg.contains("twice"), "{msg}");
}

#[test]
fn threads_share_one_model() {
    let model: Arc<dyn TensorModel> = Arc::new(
        OnnxModel::load(&autoglm_testmodels::file(autoglm_testmodels::IRIS, "onnx")).unwrap(),
    );
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let model = Arc::clone(&model);
            std::thread::spawn(move || {
                let rows = vec![[SETOSA, VIRGINICA, VERSICOLOR][i % 3]; 10 + i];
                for _ in 0..50 {
                    let out = model.infer(&[features(&rows)]).unwrap();
                    assert_eq!(labels(&out), vec![[0, 2, 1][i % 3]; 10 + i]);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn files_that_are_not_models_are_refused() {
    let dir = std::env::temp_dir().join(format!("autoglm-onnx-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let garbage = dir.join("garbage.onnx");
    std::fs::write(&garbage, b"\xff\xff not protobuf").unwrap();
    assert!(matches!(
        OnnxModel::load(&garbage),
        Err(InferenceError::InvalidInput(_))
    ));
    assert!(matches!(
        OnnxModel::load(&dir.join("absent.onnx")),
        Err(InferenceError::Engine(_))
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}
