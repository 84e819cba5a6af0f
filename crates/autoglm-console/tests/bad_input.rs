//! Hostile and broken input: malformed, truncated, mistyped, oversized and
//! non-UTF-8 bodies, bad names and labels, unknown and out-of-range query
//! parameters, unparsable and traversing path parameters, unknown routes and
//! methods, and broken or escaping multipart uploads.
//!
//! Each refusal must be a problem document with its stable `code`, and must
//! leave everything as it was: the model count, the versions, the artifact
//! folder (no leftovers, `.staging` empty) and a valid audit chain.
#![allow(clippy::unwrap_used)]

mod common;

use axum::body::Body;
use axum::http::{Method, header};
use common::*;
use serde_json::json;

/// What must not change when a request is refused.
#[derive(Debug, PartialEq)]
struct Snapshot {
    models: Vec<String>,
    versions: usize,
    artifacts: (Vec<String>, Vec<String>),
}

async fn snapshot(c: &Console) -> Snapshot {
    let versions = get_items(&c.app, "/api/v1/models/kept/versions", &c.admin)
        .await
        .len();
    let mut artifacts = artifact_dirs(c);
    artifacts.0.sort();
    Snapshot {
        models: model_names(&c.app, &c.admin).await,
        versions,
        artifacts,
    }
}

/// A console with one model, `kept`, holding one uploaded version.
async fn seeded() -> (Console, Snapshot) {
    let c = console();
    create_model(&c.app, &c.admin, "kept").await;
    upload_file(
        &c.app,
        &c.admin,
        "kept",
        "model.safetensors",
        &safetensors([1.0, 2.0]),
    )
    .await;
    let before = snapshot(&c).await;
    assert_eq!(before.models, ["kept"]);
    assert_eq!(before.versions, 1);
    assert_eq!(before.artifacts.0.len(), 1, "{:?}", before.artifacts);
    assert!(before.artifacts.1.is_empty(), "{:?}", before.artifacts);
    (c, before)
}

async fn assert_unchanged(c: &Console, before: &Snapshot, after_what: &str) {
    assert_eq!(
        &snapshot(c).await,
        before,
        "state changed after {after_what}"
    );
    assert_audit_valid(&c.app, &c.admin).await;
}

/// Asserts that `resp` is a problem document with a 4xx status; `what` names
/// the request in the messages.
fn assert_client_problem(resp: &Resp, what: &str) {
    let status = resp.status.as_u16();
    assert!((400..500).contains(&status), "{what}: {}", resp.describe());
    assert_eq!(
        resp.content_type(),
        "application/problem+json",
        "{what}: {}",
        resp.describe()
    );
}

/// Sends raw bytes to `POST /api/v1/models` with an optional content type.
async fn post_raw(c: &Console, content_type: Option<&str>, body: Vec<u8>) -> Resp {
    let mut builder = request(Method::POST, "/api/v1/models", Some(&c.admin));
    if let Some(ct) = content_type {
        builder = builder.header(header::CONTENT_TYPE, ct);
    }
    send(&c.app, builder.body(Body::from(body)).unwrap()).await
}

/// What is sent, with which content type, and the status and code expected.
type BodyCase = (
    &'static str,
    Option<&'static str>,
    Vec<u8>,
    u16,
    &'static str,
);

#[tokio::test]
async fn broken_json_bodies_are_refused_with_their_code() {
    let (c, before) = seeded().await;
    let json = Some("application/json");
    let cases: Vec<BodyCase> = vec![
        (
            "malformed",
            json,
            br#"{"name":"#.to_vec(),
            400,
            "malformed_body",
        ),
        (
            "truncated",
            json,
            br#"{"name":"abc""#.to_vec(),
            400,
            "malformed_body",
        ),
        ("empty body", json, Vec::new(), 400, "malformed_body"),
        (
            "not an object",
            json,
            b"[1,2,3]".to_vec(),
            422,
            "invalid_body",
        ),
        (
            "wrong type",
            json,
            br#"{"name":5}"#.to_vec(),
            422,
            "invalid_body",
        ),
        ("missing name", json, br#"{}"#.to_vec(), 422, "invalid_body"),
        (
            "unknown field",
            json,
            br#"{"name":"a","bogus":1}"#.to_vec(),
            422,
            "invalid_body",
        ),
        (
            "labels not a map",
            json,
            br#"{"name":"a","labels":["x"]}"#.to_vec(),
            422,
            "invalid_body",
        ),
        (
            "invalid UTF-8",
            json,
            b"{\"name\":\"a\xff\xfeb\"}".to_vec(),
            400,
            "malformed_body",
        ),
        (
            "no content type",
            None,
            br#"{"name":"no-ct"}"#.to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "text/plain",
            Some("text/plain"),
            br#"{"name":"text-ct"}"#.to_vec(),
            415,
            "unsupported_media_type",
        ),
    ];
    for (what, content_type, body, status, code) in cases {
        let resp = post_raw(&c, content_type, body).await;
        assert_problem(&resp, status, code);
        assert!(
            resp.json()["detail"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{what}: a refusal explains itself: {}",
            resp.describe()
        );
        assert_unchanged(&c, &before, what).await;
    }
}

#[tokio::test]
async fn a_ten_megabyte_json_body_is_refused_as_too_large() {
    let (c, before) = seeded().await;
    let big = format!(
        r#"{{"name":"big","description":"{}"}}"#,
        "x".repeat(10 * 1024 * 1024)
    );
    let resp = post_raw(&c, Some("application/json"), big.clone().into_bytes()).await;
    assert_problem(&resp, 413, "payload_too_large");
    assert_unchanged(&c, &before, "a 10 MB body").await;

    // The same through the idempotency path, which buffers the body itself.
    let req = request(Method::POST, "/api/v1/models", Some(&c.admin))
        .header(header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", "big-body")
        .body(Body::from(big))
        .unwrap();
    assert_problem(&send(&c.app, req).await, 413, "payload_too_large");
    assert_unchanged(&c, &before, "a 10 MB idempotent body").await;
}

#[tokio::test]
async fn a_body_declared_too_large_is_refused_before_any_of_it_is_read() {
    let (c, before) = seeded().await;
    // A body that never yields: answering at all proves nothing read it.
    let never = Body::from_stream(futures_util::stream::pending::<
        Result<Vec<u8>, std::io::Error>,
    >());
    let req = request(Method::POST, "/api/v1/models", Some(&c.admin))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, (2 * 1024 * 1024).to_string())
        .body(never)
        .unwrap();
    let resp = send(&c.app, req).await;
    assert_problem(&resp, 413, "payload_too_large");
    assert!(
        resp.json()["detail"]
            .as_str()
            .unwrap()
            .contains("declares 2097152"),
        "{}",
        resp.text()
    );
    assert_unchanged(&c, &before, "a body declared as 2 MiB").await;
}

#[tokio::test]
async fn bad_model_names_and_labels_are_refused() {
    let (c, before) = seeded().await;
    let long = "a".repeat(64);
    for name in [
        "../x", "", &long, "UPPER", "a b", "modèle", "名前", "-edge", "edge-", "a/b", "a.b",
    ] {
        let resp = post(&c.app, "/api/v1/models", &c.admin, json!({"name": name})).await;
        assert_problem(&resp, 422, "invalid_name");
        assert_unchanged(&c, &before, &format!("name {name:?}")).await;
    }
    // The longest allowed name is accepted (the limit is 63, not less).
    let ok = "a".repeat(63);
    post(&c.app, "/api/v1/models", &c.admin, json!({"name": ok}))
        .await
        .expect(201);
    let mut before = snapshot(&c).await;
    assert_eq!(before.models.len(), 2);

    let too_many: serde_json::Map<String, serde_json::Value> =
        (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
    for labels in [
        json!({"bad key": "v"}),
        json!({"": "v"}),
        json!({"k\"ey": "v"}),
        json!({ "k".repeat(64): "v" }),
        json!({"k": "v".repeat(64)}),
        json!({"k": "line\nbreak"}),
        serde_json::Value::Object(too_many),
    ] {
        let resp = post(
            &c.app,
            "/api/v1/models",
            &c.admin,
            json!({"name": "labelled", "labels": labels}),
        )
        .await;
        assert_problem(&resp, 422, "invalid_body");
        let resp = patch(
            &c.app,
            "/api/v1/models/kept",
            &c.admin,
            json!({"labels": labels}),
        )
        .await;
        assert_problem(&resp, 422, "invalid_body");
        before.models.sort();
        assert_unchanged(&c, &before, &format!("labels {labels}")).await;
    }
    // PATCH left the labels alone.
    let kept = get(&c.app, "/api/v1/models/kept", &c.admin)
        .await
        .expect(200);
    assert_eq!(kept.json()["labels"], json!({}));
}

#[tokio::test]
async fn bad_query_and_path_parameters_are_refused() {
    let (c, before) = seeded().await;
    for (uri, status, code) in [
        ("/api/v1/models?bogus=1", 400, "invalid_query"),
        ("/api/v1/models?limit=0", 400, "invalid_query"),
        ("/api/v1/models?limit=5000", 400, "invalid_query"),
        ("/api/v1/models?limit=-1", 400, "invalid_query"),
        ("/api/v1/models?limit=ten", 400, "invalid_query"),
        ("/api/v1/models?stage=live", 400, "invalid_query"),
        ("/api/v1/models?label=team", 400, "invalid_query"),
        ("/api/v1/models?label=bad%20key=v", 400, "invalid_query"),
        ("/api/v1/models/kept/versions?limit=0", 400, "invalid_query"),
        (
            "/api/v1/models/kept/versions?page_token=x",
            400,
            "invalid_query",
        ),
        ("/api/v1/audit?since=yesterday", 400, "invalid_query"),
        ("/api/v1/keys?all=maybe", 400, "invalid_query"),
        ("/api/v1/usage?step=30s", 400, "invalid_query"),
        ("/api/v1/usage?step=90s", 400, "invalid_query"),
        ("/api/v1/usage?step=25h", 400, "invalid_query"),
        ("/api/v1/usage?step=0m", 400, "invalid_query"),
        ("/api/v1/usage?step=hourly", 400, "invalid_query"),
        ("/api/v1/models/kept/versions/one", 400, "invalid_path"),
        ("/api/v1/models/kept/versions/1.5", 400, "invalid_path"),
        (
            "/api/v1/models/kept/versions/99999999999999999999",
            400,
            "invalid_path",
        ),
        (
            "/api/v1/models/kept/versions/x/artifact",
            400,
            "invalid_path",
        ),
        ("/api/v1/models/kept/versions/2", 404, "not_found"),
        ("/api/v1/models/missing", 404, "not_found"),
    ] {
        let resp = get(&c.app, uri, &c.admin).await;
        assert_problem(&resp, status, code);
    }
    // The boundary values are accepted.
    get(&c.app, "/api/v1/models?limit=1", &c.admin)
        .await
        .expect(200);
    get(&c.app, "/api/v1/models?limit=1000", &c.admin)
        .await
        .expect(200);
    for step in ["1m", "24h", "1h30m"] {
        get(&c.app, &format!("/api/v1/usage?step={step}"), &c.admin)
            .await
            .expect(200);
    }
    // A mutation with an unparsable version changes nothing.
    let resp = call(
        &c.app,
        Method::DELETE,
        "/api/v1/models/kept/versions/one",
        Some(&c.admin),
        None,
    )
    .await;
    assert_problem(&resp, 400, "invalid_path");
    assert_unchanged(&c, &before, "bad query and path parameters").await;
}

#[tokio::test]
async fn file_download_never_leaves_the_version() {
    let (c, before) = seeded().await;
    // A file next to the artifact store that a traversal would reach.
    std::fs::write(c.dir.path().join("secret.txt"), "TOP-SECRET").unwrap();
    for uri in [
        "/api/v1/models/kept/versions/1/files/..%2F..%2Fetc%2Fpasswd",
        "/api/v1/models/kept/versions/1/files/../../x",
        "/api/v1/models/kept/versions/1/files/../../../secret.txt",
        "/api/v1/models/kept/versions/1/files/..%2F..%2F..%2Fsecret.txt",
        "/api/v1/models/kept/versions/1/files/%2Fetc%2Fpasswd",
        "/api/v1/models/kept/versions/1/files//etc/passwd",
        "/api/v1/models/kept/versions/1/files/./model.safetensors",
        "/api/v1/models/kept/versions/1/files/a%5C..%5C..%5Csecret.txt",
        "/api/v1/models/kept/versions/1/files/autoglm.db",
        "/api/v1/models/kept/versions/1/files/other.bin",
    ] {
        let resp = get(&c.app, uri, &c.admin).await;
        assert_client_problem(&resp, uri);
        let text = resp.text();
        assert!(
            !text.contains("TOP-SECRET") && !text.contains("root:"),
            "{uri} leaked a file: {text}"
        );
    }
    // The real file is served.
    let ok = get(
        &c.app,
        "/api/v1/models/kept/versions/1/files/model.safetensors",
        &c.admin,
    )
    .await
    .expect(200);
    assert_eq!(&ok.body[..], &safetensors([1.0, 2.0])[..]);
    assert_unchanged(&c, &before, "traversal attempts").await;
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let (c, before) = seeded().await;
    for uri in [
        "/api/v1/nope",
        "/api/v2/models",
        "/",
        "/api/v1/models/kept/nope",
    ] {
        let resp = get(&c.app, uri, &c.admin).await;
        assert_problem(&resp, 404, "route_not_found");
    }
    // Unknown routes answer 404 without credentials too: the fallback runs
    // no guard, and says nothing about what exists.
    let resp = call(&c.app, Method::GET, "/api/v1/nope", None, None).await;
    assert_problem(&resp, 404, "route_not_found");

    for (method, uri) in [
        (Method::PUT, "/api/v1/models"),
        (Method::DELETE, "/api/v1/models"),
        (Method::POST, "/api/v1/models/kept"),
        (Method::GET, "/api/v1/auth/login"),
        (Method::PATCH, "/api/v1/models/kept/versions/1"),
        (Method::GET, "/api/v1/models/kept/versions/1/stage"),
    ] {
        let resp = call(&c.app, method.clone(), uri, Some(&c.admin), None).await;
        assert_problem(&resp, 405, "method_not_allowed");
    }
    assert_unchanged(&c, &before, "unknown routes and methods").await;
}

#[tokio::test]
async fn problems_name_the_request_they_answer() {
    let c = console();
    let req = request(Method::GET, "/api/v1/models/ghost", Some(&c.admin))
        .header("x-request-id", "trace-me-42")
        .body(Body::empty())
        .unwrap();
    let resp = send(&c.app, req).await;
    assert_problem(&resp, 404, "not_found");
    assert_eq!(resp.headers["x-request-id"], "trace-me-42");
    let problem = resp.json();
    assert_eq!(problem["request_id"], "trace-me-42");
    assert_eq!(problem["instance"], "/api/v1/models/ghost");
    assert_eq!(problem["title"], "The resource does not exist");
    // Without one, the console makes one up and reports it both ways.
    let resp = get(&c.app, "/api/v1/nope", &c.admin).await;
    let id = resp.headers["x-request-id"].to_str().unwrap().to_owned();
    assert!(!id.is_empty());
    assert_eq!(resp.json()["request_id"], id);
}

#[tokio::test]
async fn a_corrupt_safetensors_upload_leaves_nothing_behind() {
    let (c, before) = seeded().await;
    let valid = safetensors([3.0, 4.0]);
    // Header length beyond the file, header not JSON, data shorter than the
    // offsets, and plain garbage.
    let mut short_data = valid.clone();
    short_data.truncate(valid.len() - 4);
    let mut not_json = 8u64.to_le_bytes().to_vec();
    not_json.extend_from_slice(b"not json");
    let cases: [(&str, Vec<u8>); 4] = [
        ("garbage", b"this is not a safetensors file at all".to_vec()),
        ("huge header length", u64::MAX.to_le_bytes().to_vec()),
        ("header not JSON", not_json),
        ("tensor data cut short", short_data),
    ];
    for (what, bytes) in cases {
        let resp = upload(
            &c.app,
            &c.admin,
            "kept",
            &[
                Part::artifact("config.json", b"{}"),
                Part::artifact("model.safetensors", &bytes),
            ],
        )
        .await;
        assert_problem(&resp, 422, "invalid_artifact");
        assert_unchanged(&c, &before, what).await;
    }
    // The refusal is audited with its code.
    let refused = audit(&c.app, &c.admin, "outcome=invalid_artifact").await;
    assert_eq!(refused.len(), 4, "{refused:?}");
    assert!(refused.iter().all(|r| r["action"] == "versions.create"));
}

#[tokio::test]
async fn broken_uploads_are_refused_and_cleaned_up() {
    let (c, before) = seeded().await;
    let file = safetensors([5.0, 6.0]);
    let cases: Vec<(&str, Vec<Part<'_>>)> = vec![
        ("filename ../evil", vec![Part::artifact("../evil", &file)]),
        (
            "filename a/../../evil",
            vec![Part::artifact("a/../../evil", &file)],
        ),
        (
            "absolute filename",
            vec![Part::artifact("/tmp/evil.safetensors", &file)],
        ),
        (
            "backslash filename",
            vec![Part::artifact("..\\evil.safetensors", &file)],
        ),
        (
            "same file twice",
            vec![
                Part::artifact("model.safetensors", &file),
                Part::artifact("model.safetensors", &file),
            ],
        ),
        ("no artifact part", vec![Part::metadata(&json!({}))]),
        (
            "metadata after the files",
            vec![
                Part::artifact("model.safetensors", &file),
                Part::metadata(&json!({})),
            ],
        ),
        (
            "metadata with an unknown field",
            vec![
                Part::metadata(&json!({"bogus": 1})),
                Part::artifact("model.safetensors", &file),
            ],
        ),
        (
            "parent version that does not exist",
            vec![
                Part::metadata(&json!({"parent": 99})),
                Part::artifact("model.safetensors", &file),
            ],
        ),
        (
            "unexpected part",
            vec![Part {
                name: "surprise",
                file_name: None,
                bytes: b"x".to_vec(),
            }],
        ),
    ];
    for (what, parts) in cases {
        let resp = upload(&c.app, &c.admin, "kept", &parts).await;
        assert_client_problem(&resp, what);
        assert_unchanged(&c, &before, what).await;
    }
    // Nothing was written outside the artifact store either.
    assert!(!c.dir.path().join("evil").exists());
    assert!(!c.dir.path().join("artifacts").join("evil").exists());

    // Neither multipart nor JSON.
    let req = request(Method::POST, "/api/v1/models/kept/versions", Some(&c.admin))
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(Body::from(file.clone()))
        .unwrap();
    assert_problem(&send(&c.app, req).await, 415, "unsupported_media_type");
    assert_unchanged(&c, &before, "an octet-stream upload").await;
}

#[tokio::test]
async fn uploads_to_a_missing_model_are_not_found() {
    let (c, before) = seeded().await;
    let resp = upload(
        &c.app,
        &c.admin,
        "ghost",
        &[Part::artifact(
            "model.safetensors",
            &safetensors([1.0, 1.0]),
        )],
    )
    .await;
    assert_problem(&resp, 404, "not_found");
    assert_unchanged(&c, &before, "an upload to a missing model").await;
}

/// A body cut off inside a file part is as malformed as one cut off between
/// parts (which `next_field` reports as `malformed_body`): the client sent
/// broken multipart, not a well-formed body that fails a rule.
#[tokio::test]
async fn a_truncated_multipart_body_is_malformed_and_leaves_nothing() {
    let (c, before) = seeded().await;
    let file = safetensors([5.0, 6.0]);
    let mut body = multipart(&[Part::artifact("model.safetensors", &file)]);
    body.truncate(body.len() - 30);
    let req = multipart_request("kept", &c.admin)
        .body(Body::from(body))
        .unwrap();
    let resp = send(&c.app, req).await;
    assert_unchanged(&c, &before, "a truncated multipart body").await;
    assert_problem(&resp, 400, "malformed_body");
}

/// One file path may not be both a file and a folder: that is the client's
/// mistake (4xx), not a server failure (500), and it leaves nothing behind.
#[tokio::test]
async fn a_path_that_is_both_file_and_folder_is_a_client_error() {
    let (c, before) = seeded().await;
    let file = safetensors([1.0, 2.0]);
    for parts in [
        [
            Part::artifact("weights", &file),
            Part::artifact("weights/extra.bin", &file),
        ],
        [
            Part::artifact("weights/extra.bin", &file),
            Part::artifact("weights", &file),
        ],
    ] {
        let resp = upload(&c.app, &c.admin, "kept", &parts).await;
        assert_unchanged(&c, &before, "a file/folder clash").await;
        assert_problem(&resp, 422, "invalid_body");
    }
}

/// The metadata part is JSON and limited like any JSON body: an oversized one
/// is refused as soon as it passes the limit, not after the whole part has
/// been read into memory (which lets one request exhaust the server's memory).
#[tokio::test]
async fn an_oversized_metadata_part_is_refused_without_buffering_it() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let (c, before) = seeded().await;
    const MB: usize = 1024 * 1024;
    const CHUNKS: usize = 64;
    let head = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\
         Content-Type: application/json\r\n\r\n{{\"description\":\""
    );
    let tail = format!("\"}}\r\n--{BOUNDARY}--\r\n");
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    let chunks = std::iter::once(axum::body::Bytes::from(head))
        .chain((0..CHUNKS).map(|_| axum::body::Bytes::from(vec![b'x'; MB])))
        .chain(std::iter::once(axum::body::Bytes::from(tail)))
        .map(move |chunk| {
            counter.fetch_add(chunk.len(), Ordering::SeqCst);
            Ok::<_, std::convert::Infallible>(chunk)
        });
    let req = multipart_request("kept", &c.admin)
        // Like a socket, the body is not all ready at once: multer drains
        // whatever a stream has ready, so an always-ready in-memory stream
        // would be read whole before the handler sees the first chunk.
        .body(Body::from_stream(futures_util::StreamExt::then(
            futures_util::stream::iter(chunks),
            |chunk| async move {
                tokio::task::yield_now().await;
                chunk
            },
        )))
        .unwrap();
    let resp = send(&c.app, req).await;
    assert_problem(&resp, 413, "payload_too_large");
    assert_unchanged(&c, &before, "an oversized metadata part").await;
    let read = pulled.load(Ordering::SeqCst);
    assert!(
        read < 8 * MB,
        "the console read {} MB of a metadata part limited to 1 MB",
        read / MB
    );
}
