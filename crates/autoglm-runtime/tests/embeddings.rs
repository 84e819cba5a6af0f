//! Embeddings over the OpenAI and Open Inference Protocol APIs, on the real
//! all-MiniLM-L6-v2 weights: vectors, encodings, usage, batching, bad input.
#![allow(clippy::unwrap_used)]

mod common;

use base64::Engine as _;
use common::*;
use serde_json::json;

fn vector(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn cos(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[tokio::test]
async fn embeddings_are_unit_vectors_that_keep_meaning() {
    let (_rt, app) = serve(
        "minilm",
        &autoglm_testmodels::path(autoglm_testmodels::MINILM),
        config("minilm"),
    )
    .await;
    let answer = post(
        &app,
        "/v1/embeddings",
        json!({"model": "minilm", "input": ["cat", "kitten", "guitar"]}),
    )
    .await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let body = answer.json();
    let vectors: Vec<Vec<f32>> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| vector(&d["embedding"]))
        .collect();
    assert_eq!(vectors.len(), 3);
    assert_eq!(vectors[0].len(), 384);
    for v in &vectors {
        assert!((cos(v, v).sqrt() - 1.0).abs() < 1e-4);
    }
    assert!(cos(&vectors[0], &vectors[1]) > cos(&vectors[0], &vectors[2]));
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() >= 3);
    assert_eq!(body["data"][2]["index"], 2);

    // A single string, base64-encoded: the same vector as little-endian f32.
    let answer = post(
        &app,
        "/v1/embeddings",
        json!({"model": "minilm", "input": "cat", "encoding_format": "base64"}),
    )
    .await;
    let encoded = answer.json()["data"][0]["embedding"]
        .as_str()
        .unwrap()
        .to_owned();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert!(
        decoded
            .iter()
            .zip(&vectors[0])
            .all(|(a, b)| (a - b).abs() < 1e-5)
    );
}

#[tokio::test]
async fn concurrent_requests_share_batches_and_get_their_own_answers() {
    let (rt, app) = serve(
        "minilm",
        &autoglm_testmodels::path(autoglm_testmodels::MINILM),
        config("minilm"),
    )
    .await;
    let alone = vector(
        &post(
            &app,
            "/v1/embeddings",
            json!({"model": "minilm", "input": "word 7"}),
        )
        .await
        .json()["data"][0]["embedding"],
    );
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                let a = post(
                    &app,
                    "/v1/embeddings",
                    json!({"model": "minilm", "input": format!("word {i}")}),
                )
                .await;
                (i, vector(&a.json()["data"][0]["embedding"]))
            })
        })
        .collect();
    for task in tasks {
        let (i, v) = task.await.unwrap();
        if i == 7 {
            assert!(
                v.iter().zip(&alone).all(|(a, b)| (a - b).abs() < 1e-4),
                "batched result differs from alone"
            );
        }
    }
    let metrics = String::from_utf8(get(&app, "/metrics").await.body).unwrap();
    assert!(
        metrics.contains("autoglm_runtime_batch_size_bucket"),
        "{metrics}"
    );
    drop(rt);
}

#[tokio::test]
async fn bad_input_gets_openai_errors_and_the_server_keeps_serving() {
    let (_rt, app) = serve(
        "minilm",
        &autoglm_testmodels::path(autoglm_testmodels::MINILM),
        config("minilm"),
    )
    .await;
    let too_many: Vec<String> = (0..10_000).map(|i| format!("x{i}")).collect();
    openai_error(
        &post(
            &app,
            "/v1/embeddings",
            json!({"model": "minilm", "input": too_many}),
        )
        .await,
        400,
    );
    openai_error(
        &post(
            &app,
            "/v1/embeddings",
            json!({"model": "minilm", "input": []}),
        )
        .await,
        400,
    );
    openai_error(
        &post(
            &app,
            "/v1/embeddings",
            json!({"model": "minilm", "input": ""}),
        )
        .await,
        400,
    );
    let long = "word ".repeat(2000);
    let body = openai_error(
        &post(
            &app,
            "/v1/embeddings",
            json!({"model": "minilm", "input": long}),
        )
        .await,
        400,
    );
    assert_eq!(body["error"]["code"], "context_length_exceeded");
    let body = openai_error(
        &post(
            &app,
            "/v1/embeddings",
            json!({"model": "nope", "input": "x"}),
        )
        .await,
        404,
    );
    assert_eq!(body["error"]["code"], "model_not_found");
    openai_error(
        &post(
            &app,
            "/v1/embeddings",
            json!({"model": "minilm", "input": "x", "encoding_format": "hex"}),
        )
        .await,
        400,
    );
    openai_error(
        &post(
            &app,
            "/v1/embeddings",
            json!({"model": "minilm", "input": 5}),
        )
        .await,
        422,
    );
    openai_error(
        &send(
            &app,
            "POST",
            "/v1/embeddings",
            Some(b"{\"model\": \"minilm\", \"input\": \"\xff\xfe\"}".to_vec()),
        )
        .await,
        400,
    );
    openai_error(
        &send(
            &app,
            "POST",
            "/v1/embeddings",
            Some(b"{\"model\":".to_vec()),
        )
        .await,
        400,
    );
    openai_error(
        &post(
            &app,
            "/v1/chat/completions",
            json!({"model": "minilm", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await,
        400,
    );
    let ok = post(
        &app,
        "/v1/embeddings",
        json!({"model": "minilm", "input": "still serving"}),
    )
    .await;
    assert_eq!(ok.status, 200);
}

#[tokio::test]
async fn the_open_inference_protocol_embeds_bytes_tensors() {
    let (_rt, app) = serve(
        "minilm",
        &autoglm_testmodels::path(autoglm_testmodels::MINILM),
        config("minilm"),
    )
    .await;
    let meta = get(&app, "/v2/models/minilm").await.json();
    assert_eq!(meta["inputs"][0]["datatype"], "BYTES");
    assert_eq!(meta["outputs"][0]["shape"], json!([-1, 384]));
    let answer = post(
        &app,
        "/v2/models/minilm/versions/1/infer",
        json!({"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["cat", "guitar"]}]}),
    )
    .await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let out = &answer.json()["outputs"][0];
    assert_eq!(out["shape"], json!([2, 384]));
    assert_eq!(out["data"].as_array().unwrap().len(), 768);
    oip_error(&get(&app, "/v2/models/minilm/versions/9").await, 404);
    oip_error(
        &post(&app, "/v2/models/minilm/infer", json!({"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["one"]}]})).await,
        400,
    );
    oip_error(
        &post(
            &app,
            "/v2/models/minilm/infer",
            json!({"inputs": [{"name": "text", "shape": [1], "datatype": "FP32", "data": [1.0]}]}),
        )
        .await,
        400,
    );
    oip_error(&post(&app, "/v2/models/minilm/infer", json!({"inputs": [{"name": "other", "shape": [1], "datatype": "BYTES", "data": ["x"]}]})).await, 400);
}
