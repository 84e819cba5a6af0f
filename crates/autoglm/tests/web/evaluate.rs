//! An evaluation from the browser: the model's page links each version to
//! its own page; there a dataset file runs through the version in a service
//! that serves it, and the evaluations table follows it live to what it
//! measured (errors, latency percentiles, the score against the labels).

use std::time::Duration;

use fantoccini::Locator;
use serde_json::json;

use crate::browser::{
    arrive, browser, click, driver, log_in, shoot, submit, text, type_into, wait_text,
};
use crate::common::Up;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_is_evaluated_from_its_page() {
    let home = tempfile::tempdir().unwrap();
    let up = Up::start(&home.path().join("home"), &[]);
    let base = up.console.url.clone();
    let http = up.console.client();
    let iris = autoglm_testmodels::path(autoglm_testmodels::IRIS);
    let post = |path: &'static str, body: serde_json::Value| {
        let (console, http) = (&up.console, &http);
        async move {
            console
                .call(http, reqwest::Method::POST, path, Some(body))
                .await
        }
    };
    let (s, b) = post("/api/v1/models", json!({"name": "iris"})).await;
    assert_eq!(s, reqwest::StatusCode::CREATED, "{b}");
    let (s, b) = post(
        "/api/v1/models/iris/versions",
        json!({"path": iris.to_str().unwrap(), "framework": "onnx"}),
    )
    .await;
    assert_eq!(s, reqwest::StatusCode::CREATED, "{b}");
    let (s, task) = post(
        "/api/v1/services",
        json!({"apiVersion": "autoglm.io/v1alpha1", "kind": "ModelService", "metadata": {"name": "flowers"},
               "spec": {"model": "iris", "versions": [{"version": "1", "weight": 100}], "replicas": 1}}),
    )
    .await;
    assert_eq!(s, reqwest::StatusCode::ACCEPTED, "{task}");
    // Three rows, one of each species, labelled.
    let dataset = home.path().join("iris.jsonl");
    let rows = [
        ([5.1, 3.5, 1.4, 0.2], 0),
        ([7.0, 3.2, 4.7, 1.4], 1),
        ([7.6, 3.0, 6.6, 2.1], 2),
    ];
    let lines: String = rows
        .iter()
        .map(|(row, label)| {
            json!({"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": row}], "label": label})
                .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(&dataset, lines).unwrap();

    let driver = driver();
    let profile = tempfile::tempdir().unwrap();
    let client = browser(&driver, profile.path()).await;
    log_in(&client, &base, &[("api_key", &up.console.token)]).await;
    arrive(&client, "/ui").await;
    client
        .goto(&format!("{base}/ui/models/iris"))
        .await
        .unwrap();
    submit(
        &client,
        Locator::Css("#version-1 th a"),
        "/ui/models/iris/versions/1",
    )
    .await;
    assert_eq!(
        text(&client, "#live-evaluations").await,
        "Not evaluated yet."
    );
    // The form offers the service that serves the version.
    assert_eq!(text(&client, "#service").await, "flowers");
    type_into(&client, Locator::Id("dataset"), dataset.to_str().unwrap()).await;
    submit(
        &client,
        Locator::Css("#evaluate button[type=submit]"),
        "/ui/models/iris/versions/1",
    )
    .await;
    wait_text(
        &client,
        "#evaluation-1 .state",
        Duration::from_secs(60),
        |t| t.starts_with("succeeded"),
    )
    .await;
    assert_eq!(text(&client, "#evaluation-1 .errors").await, "0 (0.0%)");
    let score = text(&client, "#evaluation-1 .score").await;
    assert_eq!(score, "accuracy 1.000 over 3 labelled");
    let p95: f64 = text(&client, "#evaluation-1 .p95").await.parse().unwrap();
    assert!(p95 > 0.0);
    shoot(&client, "evaluations.png").await;

    // A dataset that is not JSON lines is refused on the page, in words.
    std::fs::write(&dataset, "not json\n").unwrap();
    type_into(&client, Locator::Id("dataset"), dataset.to_str().unwrap()).await;
    click(&client, Locator::Css("#evaluate button[type=submit]")).await;
    let refusal = text(&client, "#evaluate-error").await;
    assert!(
        refusal.contains("dataset: line 1: is not JSON"),
        "{refusal}"
    );
    client.close().await.unwrap();
}
