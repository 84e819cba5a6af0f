//! The iris ONNX model over the Open Inference Protocol.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn iris_rows_are_labelled_and_bad_tensors_refused() {
    let model = autoglm_testmodels::file(autoglm_testmodels::IRIS, "onnx");
    let (_rt, app) = serve("iris", &model, config("iris")).await;
    let meta = get(&app, "/v2/models/iris").await.json();
    assert_eq!(meta["platform"], "autoglm-tensor");
    let input = meta["inputs"][0]["name"].as_str().unwrap().to_owned();
    let rows = json!([
        [5.1, 3.5, 1.4, 0.2],
        [6.7, 3.0, 5.2, 2.3],
        [5.9, 3.0, 4.2, 1.5]
    ]);
    let answer = post(
        &app,
        "/v2/models/iris/infer",
        json!({"inputs": [{"name": input, "shape": [3, 4], "datatype": "FP32", "data": rows}]}),
    )
    .await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let body = answer.json();
    let label = body["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["datatype"] == "INT64")
        .unwrap();
    assert_eq!(label["data"], json!([0, 2, 1]));

    oip_error(&post(&app, "/v2/models/iris/infer", json!({"inputs": [{"name": input, "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]})).await, 400);
    oip_error(&post(&app, "/v2/models/iris/infer", json!({"inputs": [{"name": input, "shape": [1, 5], "datatype": "FP32", "data": [1, 2, 3, 4, 5]}]})).await, 400);
    oip_error(&post(&app, "/v2/models/iris/infer", json!({"inputs": [{"name": input, "shape": [1, 4], "datatype": "FP32", "data": ["a", 2, 3, 4]}]})).await, 400);
    oip_error(
        &post(&app, "/v2/models/iris/infer", json!({"inputs": []})).await,
        400,
    );
    oip_error(
        &post(&app, "/v2/models/other/infer", json!({"inputs": []})).await,
        404,
    );
    assert_eq!(get(&app, "/v2/health/ready").await.status, 200);
}
