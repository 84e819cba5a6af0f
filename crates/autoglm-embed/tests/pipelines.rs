//! Other sentence-transformers pipelines over the MiniLM weights: cls and
//! max pooling, no normalisation, no `modules.json`, and pipelines the
//! engine must refuse. Each case is a temporary folder that links the real
//! model files and writes its own configs.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use autoglm_embed::BertEmbedder;
use autoglm_inference::{Embedder, InferenceError};
use tempfile::TempDir;

const TEXT: &str = "A cat sits on the mat.";

/// A model folder with MiniLM's transformer files and the given pipeline files.
fn folder(files: &[(&str, &str)]) -> TempDir {
    let source = autoglm_testmodels::path(autoglm_testmodels::MINILM);
    let dir = TempDir::new().unwrap();
    for name in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::os::unix::fs::symlink(source.join(name), dir.path().join(name)).unwrap();
    }
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

fn modules(kinds: &[&str]) -> String {
    let entries: Vec<String> = kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            let path = match *kind {
                "Pooling" => "1_Pooling",
                "Transformer" => "",
                _ => "2_Other",
            };
            format!(r#"{{"idx": {i}, "name": "{i}", "path": "{path}", "type": "sentence_transformers.models.{kind}"}}"#)
        })
        .collect();
    format!("[{}]", entries.join(","))
}

fn pooling(mode: &str) -> String {
    format!(r#"{{"word_embedding_dimension": 384, "pooling_mode_{mode}": true}}"#)
}

fn load(dir: &Path) -> BertEmbedder {
    BertEmbedder::load(dir).unwrap()
}

fn embed_one(model: &BertEmbedder, text: &str) -> Vec<f32> {
    model.embed(&[text.to_owned()]).unwrap().vectors.remove(0)
}

fn unit(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / norm).collect()
}

fn assert_close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-4, "{x} vs {y}");
    }
}

#[test]
fn cls_pooling_takes_the_first_token() {
    let dir = folder(&[
        (
            "modules.json",
            &modules(&["Transformer", "Pooling", "Normalize"]),
        ),
        ("1_Pooling/config.json", &pooling("cls_token")),
    ]);
    let model = load(dir.path());
    let states = model.token_states(TEXT).unwrap();
    assert_close(&embed_one(&model, TEXT), &unit(&states[0]));
    // Padding behind it changes nothing.
    let batch = model
        .embed(&[TEXT.to_owned(), format!("{TEXT} {TEXT} {TEXT}")])
        .unwrap();
    assert_close(&batch.vectors[0], &unit(&states[0]));
}

#[test]
fn max_pooling_ignores_padding() {
    let dir = folder(&[
        ("modules.json", &modules(&["Transformer", "Pooling"])),
        ("1_Pooling/config.json", &pooling("max_tokens")),
    ]);
    let model = load(dir.path());
    let states = model.token_states(TEXT).unwrap();
    let expected: Vec<f32> = (0..384)
        .map(|d| {
            states
                .iter()
                .map(|s| s[d])
                .fold(f32::NEG_INFINITY, f32::max)
        })
        .collect();
    assert_close(&embed_one(&model, TEXT), &expected);
    let batch = model
        .embed(&[format!("{TEXT} {TEXT} {TEXT}"), TEXT.to_owned()])
        .unwrap();
    assert_close(&batch.vectors[1], &expected);
}

#[test]
fn without_normalize_mean_pooling_is_the_plain_average() {
    let dir = folder(&[
        ("modules.json", &modules(&["Transformer", "Pooling"])),
        ("1_Pooling/config.json", &pooling("mean_tokens")),
        ("sentence_bert_config.json", r#"{"max_seq_length": 128}"#),
    ]);
    let model = load(dir.path());
    assert_eq!(model.max_tokens(), 128);
    let states = model.token_states(TEXT).unwrap();
    let n = states.len() as f32;
    let expected: Vec<f32> = (0..384)
        .map(|d| states.iter().map(|s| s[d]).sum::<f32>() / n)
        .collect();
    let got = embed_one(&model, TEXT);
    assert_close(&got, &expected);
    assert!((got.iter().map(|x| x * x).sum::<f32>().sqrt() - 1.0).abs() > 0.01);
}

#[test]
fn several_modes_are_concatenated() {
    let dir = folder(&[
        ("modules.json", &modules(&["Transformer", "Pooling"])),
        (
            "1_Pooling/config.json",
            r#"{"word_embedding_dimension": 384, "pooling_mode_cls_token": true, "pooling_mode_mean_tokens": true}"#,
        ),
    ]);
    let model = load(dir.path());
    assert_eq!(model.dimensions(), 768);
    let states = model.token_states(TEXT).unwrap();
    let got = embed_one(&model, TEXT);
    assert_close(&got[..384], &states[0]);
}

#[test]
fn a_bare_checkpoint_gets_mean_pooling_and_the_position_limit() {
    let dir = folder(&[]);
    let model = load(dir.path());
    assert_eq!(model.dimensions(), 384);
    assert_eq!(model.max_tokens(), 512);
    let states = model.token_states(TEXT).unwrap();
    let n = states.len() as f32;
    let expected: Vec<f32> = (0..384)
        .map(|d| states.iter().map(|s| s[d]).sum::<f32>() / n)
        .collect();
    assert_close(&embed_one(&model, TEXT), &expected);
}

#[test]
fn refuses_pipelines_it_cannot_reproduce() {
    let cases = [
        folder(&[
            (
                "modules.json",
                &modules(&["Transformer", "Pooling", "Dense", "Normalize"]),
            ),
            ("1_Pooling/config.json", &pooling("mean_tokens")),
        ]),
        folder(&[
            ("modules.json", &modules(&["Transformer", "Pooling"])),
            ("1_Pooling/config.json", &pooling("weightedmean_tokens")),
        ]),
        folder(&[
            ("modules.json", &modules(&["Transformer", "Pooling"])),
            (
                "1_Pooling/config.json",
                r#"{"word_embedding_dimension": 384}"#,
            ),
        ]),
        folder(&[
            ("modules.json", &modules(&["Transformer", "Pooling"])),
            (
                "1_Pooling/config.json",
                r#"{"word_embedding_dimension": 768, "pooling_mode_mean_tokens": true}"#,
            ),
        ]),
        folder(&[("modules.json", &modules(&["Transformer", "Normalize"]))]),
        folder(&[("modules.json", "not json")]),
    ];
    for dir in &cases {
        match BertEmbedder::load(dir.path()) {
            Err(InferenceError::InvalidInput(message)) => assert!(!message.is_empty()),
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }
    let missing = TempDir::new().unwrap();
    assert!(matches!(
        BertEmbedder::load(missing.path()),
        Err(InferenceError::InvalidInput(_))
    ));
}
