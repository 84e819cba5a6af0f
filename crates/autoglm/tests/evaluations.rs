//! Evaluations on the local platform with real models: the iris classifier
//! (ONNX) over labelled rows of Fisher's iris data, and MiniLM embeddings
//! over labelled sentences, each scored against its labels, with the same
//! data under shuffled labels as the control that the score reads the
//! labels; a version that fails every request is measured as failing; bad
//! requests are refused with their field and store nothing; the CLI runs one
//! and prints what it measured.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Local, UPSTREAM};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Ten rows of each species of Fisher's iris data (setosa 0, versicolor 1,
/// virginica 2).
const IRIS: [([f32; 4], u8); 30] = [
    ([5.1, 3.5, 1.4, 0.2], 0),
    ([4.9, 3.0, 1.4, 0.2], 0),
    ([4.7, 3.2, 1.3, 0.2], 0),
    ([4.6, 3.1, 1.5, 0.2], 0),
    ([5.0, 3.6, 1.4, 0.2], 0),
    ([5.4, 3.9, 1.7, 0.4], 0),
    ([4.6, 3.4, 1.4, 0.3], 0),
    ([5.0, 3.4, 1.5, 0.2], 0),
    ([4.4, 2.9, 1.4, 0.2], 0),
    ([4.9, 3.1, 1.5, 0.1], 0),
    ([7.0, 3.2, 4.7, 1.4], 1),
    ([6.4, 3.2, 4.5, 1.5], 1),
    ([6.9, 3.1, 4.9, 1.5], 1),
    ([5.5, 2.3, 4.0, 1.3], 1),
    ([6.5, 2.8, 4.6, 1.5], 1),
    ([5.7, 2.8, 4.5, 1.3], 1),
    ([6.3, 3.3, 4.7, 1.6], 1),
    ([4.9, 2.4, 3.3, 1.0], 1),
    ([6.6, 2.9, 4.6, 1.3], 1),
    ([5.2, 2.7, 3.9, 1.4], 1),
    ([6.3, 3.3, 6.0, 2.5], 2),
    ([5.8, 2.7, 5.1, 1.9], 2),
    ([7.1, 3.0, 5.9, 2.1], 2),
    ([6.3, 2.9, 5.6, 1.8], 2),
    ([6.5, 3.0, 5.8, 2.2], 2),
    ([7.6, 3.0, 6.6, 2.1], 2),
    ([4.9, 2.5, 4.5, 1.7], 2),
    ([7.3, 2.9, 6.3, 1.8], 2),
    ([6.7, 2.5, 5.8, 1.8], 2),
    ([7.2, 3.6, 6.1, 2.5], 2),
];

/// Four sentences on each of three topics, in topic order.
const SENTENCES: [&str; 12] = [
    "The striker scored a late goal to win the football match.",
    "The tennis player served an ace in the final set.",
    "The basketball team won the championship game last night.",
    "The marathon runner crossed the finish line in record time.",
    "Heavy rain and strong winds are expected tomorrow.",
    "The forecast says it will be sunny and warm this weekend.",
    "A snowstorm closed the roads and schools this morning.",
    "Thunderstorms will bring lightning and hail in the afternoon.",
    "Chop the onions and fry them in olive oil until golden.",
    "Bake the bread in a hot oven for forty minutes.",
    "Stir the sauce and add salt, pepper and fresh basil.",
    "Whisk the eggs with sugar before folding in the flour.",
];

fn jsonl(lines: impl IntoIterator<Item = Value>) -> String {
    lines.into_iter().map(|l| l.to_string() + "\n").collect()
}

/// The iris rows, labelled by `label` (of the true class).
fn iris_dataset(label: impl Fn(u8) -> u8) -> String {
    jsonl(IRIS.iter().map(|(row, class)| {
        json!({"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": row}],
               "label": label(*class)})
    }))
}

/// The sentences, labelled by `label` (of the line's index).
fn sentence_dataset(label: impl Fn(usize) -> &'static str) -> String {
    jsonl(
        SENTENCES
            .iter()
            .enumerate()
            .map(|(i, s)| json!({"input": s, "label": label(i)})),
    )
}

/// Registers `name` with the model in `folder` as version 1 and deploys
/// service `name` of it on the built-in runtime.
async fn deploy(env: &Local, name: &str, folder: &std::path::Path, task: &str, framework: &str) {
    let (s, b) = env
        .call(Method::POST, "/api/v1/models", Some(json!({"name": name})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = env
        .call(
            Method::POST,
            &format!("/api/v1/models/{name}/versions"),
            Some(json!({"path": folder.to_str().unwrap(), "task": task, "framework": framework})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let task = env
        .start_task(
            Method::POST,
            "/api/v1/services",
            Some(json!({"apiVersion": "autoglm.io/v1alpha1", "kind": "ModelService",
                        "metadata": {"name": name},
                        "spec": {"model": name, "versions": [{"version": "1", "weight": 100}], "replicas": 1}})),
        )
        .await;
    let done = env.final_task(&task["id"]).await;
    assert_eq!(done["state"], "succeeded", "{done}");
}

/// Starts an evaluation of version 1 of `model` in `service`; its final record.
async fn evaluate(env: &Local, model: &str, service: &str, dataset: &str) -> Value {
    let task = env
        .start_task(
            Method::POST,
            &format!("/api/v1/models/{model}/versions/1/evaluations"),
            Some(json!({"service": service, "dataset": dataset, "concurrency": 3})),
        )
        .await;
    assert_eq!(task["kind"], "evaluate", "{task}");
    let done = env.final_task(&task["id"]).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let id = task["target"]
        .as_str()
        .unwrap()
        .strip_prefix("evaluations/")
        .unwrap()
        .to_owned();
    let (s, e) = env
        .call(
            Method::GET,
            &format!("/api/v1/models/{model}/versions/1/evaluations/{id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    assert_eq!(e["state"], "succeeded", "{e}");
    assert_eq!(e["task"], task["id"], "{e}");
    e
}

fn score(e: &Value) -> f64 {
    e["result"]["score"]["value"].as_f64().unwrap()
}

#[tokio::test]
async fn real_models_are_scored_against_their_labels_and_failures_are_measured() {
    let home = tempfile::tempdir().unwrap();
    let env = Local::start(home.path());
    deploy(
        &env,
        "iris",
        &autoglm_testmodels::path(autoglm_testmodels::IRIS),
        "classification",
        "onnx",
    )
    .await;
    deploy(
        &env,
        "minilm",
        &autoglm_testmodels::path(autoglm_testmodels::MINILM),
        "embeddings",
        "sentence-transformers",
    )
    .await;

    // The classifier against the true species, and against labels moved
    // one species along: the score is the labels', not a constant.
    let iris = evaluate(&env, "iris", "iris", &iris_dataset(|c| c)).await;
    let result = &iris["result"];
    assert_eq!(result["requests"], 30, "{iris}");
    assert_eq!(result["errors"], 0, "{iris}");
    assert_eq!(result["score"]["metric"], "accuracy", "{iris}");
    assert_eq!(result["score"]["labelled"], 30, "{iris}");
    assert!(score(&iris) >= 0.9, "{iris}");
    let p = |q: &str| result["latencyMs"][q].as_f64().unwrap();
    assert!(
        0.0 < p("p50") && p("p50") <= p("p95") && p("p95") <= p("p99"),
        "{iris}"
    );
    assert!(p("p99") <= p("max"), "{iris}");
    assert!(result["throughput"].as_f64().unwrap() > 0.0, "{iris}");
    let moved = evaluate(&env, "iris", "iris", &iris_dataset(|c| (c + 1) % 3)).await;
    assert!(score(&moved) <= 0.1, "{moved}");

    // Embeddings: each sentence's nearest other sentence is on its topic;
    // under labels that cycle through the topics, at most half can be.
    let topics = ["sport", "weather", "cooking"];
    let minilm = evaluate(
        &env,
        "minilm",
        "minilm",
        &sentence_dataset(|i| topics[i / 4]),
    )
    .await;
    assert_eq!(
        minilm["result"]["score"]["metric"], "nearestNeighbourAccuracy",
        "{minilm}"
    );
    assert!(score(&minilm) >= 0.9, "{minilm}");
    let cycled = evaluate(
        &env,
        "minilm",
        "minilm",
        &sentence_dataset(|i| topics[i % 3]),
    )
    .await;
    assert!(score(&cycled) <= 0.5, "{cycled}");

    // The version's list has them all, newest first.
    let (s, list) = env
        .call(
            Method::GET,
            "/api/v1/models/iris/versions/1/evaluations",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let ids: Vec<&Value> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["id"])
        .collect();
    assert_eq!(ids, [&moved["id"], &iris["id"]], "{list}");

    // A version that answers every request with 500: measured, not scored.
    env.echo_model(1).await;
    let task = env
        .start_task(
            Method::POST,
            "/api/v1/services",
            Some(json!({"apiVersion": "autoglm.io/v1alpha1", "kind": "ModelService", "metadata": {"name": "echo"},
                "spec": {"model": "echo", "versions": [{"version": "1", "weight": 100}], "replicas": 1,
                         "runtime": {"command": {"command": ["python3", UPSTREAM, "{port}", "{version}", "{name}"]}},
                         "env": [{"name": "FAIL_VERSIONS", "value": "1"}]}})),
        )
        .await;
    assert_eq!(env.final_task(&task["id"]).await["state"], "succeeded");
    let chats = jsonl((0..8).map(
        |i| json!({"messages": [{"role": "user", "content": format!("hello {i}")}], "label": "hi"}),
    ));
    let failing = evaluate(&env, "echo", "echo", &chats).await;
    let r = &failing["result"];
    assert_eq!(
        (r["requests"].as_u64(), r["errors"].as_u64()),
        (Some(8), Some(8)),
        "{failing}"
    );
    assert_eq!(r["errorRatio"], 1.0, "{failing}");
    assert!(r.get("score").is_none(), "no answer, no score: {failing}");
    let first = r["firstErrors"][0].as_str().unwrap();
    assert!(
        first.starts_with("500: ") && first.contains("fails on purpose"),
        "{failing}"
    );

    // The CLI runs one, waits with progress, and prints what it measured.
    let file = home.path().join("iris.jsonl");
    std::fs::write(&file, iris_dataset(|c| c)).unwrap();
    let printed = env.cli(&[
        "evaluate",
        "iris",
        "--version",
        "1",
        "--service",
        "iris",
        "-f",
        file.to_str().unwrap(),
    ]);
    assert!(
        printed.contains("SCORE") && printed.contains("accuracy"),
        "{printed}"
    );
    let listed = env.cli(&["evaluate", "iris", "--version", "1"]);
    assert_eq!(
        listed.lines().count(),
        4,
        "a header and three evaluations: {listed}"
    );
}

#[tokio::test]
async fn bad_evaluations_are_refused_with_their_field_and_store_nothing() {
    let home = tempfile::tempdir().unwrap();
    let env = Local::start(home.path());
    env.echo_model(2).await;
    let task = env
        .start_task(
            Method::POST,
            "/api/v1/services",
            Some(json!({"apiVersion": "autoglm.io/v1alpha1", "kind": "ModelService", "metadata": {"name": "echo"},
                "spec": {"model": "echo", "versions": [{"version": "1", "weight": 100}], "replicas": 1,
                         "runtime": {"command": {"command": ["python3", UPSTREAM, "{port}", "{version}", "{name}"]}}}})),
        )
        .await;
    assert_eq!(env.final_task(&task["id"]).await["state"], "succeeded");
    let good = "{\"prompt\": \"hi\"}\n";
    let cases: [(u64, Value, StatusCode, &str, &str); 8] = [
        (
            1,
            json!({"service": "nope", "dataset": good}),
            StatusCode::NOT_FOUND,
            "not_found",
            "service \"nope\"",
        ),
        (
            2,
            json!({"service": "echo", "dataset": good}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "service: \"echo\" serves model echo version 1, not version 2",
        ),
        (
            9,
            json!({"service": "echo", "dataset": good}),
            StatusCode::NOT_FOUND,
            "not_found",
            "version 9",
        ),
        (
            1,
            json!({"service": "echo", "dataset": "{\"prompt\": \"a\"}\n{\"prompt\": 3}"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "dataset: line 2: prompt must be text",
        ),
        (
            1,
            json!({"service": "echo", "dataset": "{\"prompt\": \"a\"}\n{\"input\": \"b\"}"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "dataset: line 2: is a input request",
        ),
        (
            1,
            json!({"service": "echo", "dataset": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "dataset: the dataset has no lines",
        ),
        (
            1,
            json!({"service": "echo", "dataset": good, "concurrency": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "concurrency: 0 is outside 1 to 64",
        ),
        (
            1,
            json!({"service": "echo", "dataset": good, "extra": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "extra",
        ),
    ];
    for (version, body, status, code, words) in cases {
        let (s, problem) = env
            .call(
                Method::POST,
                &format!("/api/v1/models/echo/versions/{version}/evaluations"),
                Some(body.clone()),
            )
            .await;
        assert_eq!(s, status, "{body}: {problem}");
        assert_eq!(problem["code"], code, "{body}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(words),
            "{body}: {problem}"
        );
    }
    // A dataset over the limit is refused before it is sent: curl asks with
    // `Expect: 100-continue` for a body this size, and the console answers 413
    // without asking for the body.
    let big = "{\"prompt\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}\n".repeat(400_000);
    let body = serde_json::to_vec(&json!({"service": "echo", "dataset": big})).unwrap();
    let answer = expect_continue(
        &env,
        "/api/v1/models/echo/versions/1/evaluations",
        body.len(),
    );
    assert!(
        answer.starts_with("HTTP/1.1 413 "),
        "refused without a 100 Continue first: {answer}"
    );
    assert!(answer.contains("declares"), "the reason: {answer}");
    for version in [1, 2] {
        let (s, list) = env
            .call(
                Method::GET,
                &format!("/api/v1/models/echo/versions/{version}/evaluations"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{list}");
        assert_eq!(list["items"], json!([]), "nothing stored: {list}");
    }
    let (_, tasks) = env
        .call(Method::GET, "/api/v1/tasks?kind=evaluate", None)
        .await;
    assert_eq!(tasks["items"], json!([]), "no task queued: {tasks}");
}

/// Sends only the head of a POST of `length` bytes with `Expect:
/// 100-continue`, as curl does for large bodies, and reads what the console
/// answers before any of the body is sent.
fn expect_continue(env: &Local, path: &str, length: usize) -> String {
    use std::io::{Read, Write};
    let url = reqwest::Url::parse(&env.up.console.api(path)).unwrap();
    let mut stream = std::net::TcpStream::connect((
        url.host_str().unwrap(),
        url.port_or_known_default().unwrap(),
    ))
    .unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "POST {} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\nExpect: 100-continue\r\n\r\n",
        url.path(),
        url.authority(),
        env.up.console.token
    )
    .unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "the console closed without answering");
        answer.extend_from_slice(&chunk[..n]);
    }
    // The problem's body follows the head, as long as it says.
    let text = String::from_utf8_lossy(&answer).to_lowercase();
    let head_end = text.find("\r\n\r\n").unwrap() + 4;
    let length: usize = text
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    while answer.len() < head_end + length {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "the console closed mid-answer");
        answer.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}
