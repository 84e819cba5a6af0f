//! Shared helpers of the console's integration tests: a console over a
//! temporary home folder driven through `oneshot`, JSON and multipart
//! requests with bearer tokens, users with roles and their sessions, API
//! keys, a tiny valid safetensors file, and the "did anything change" probes
//! (model count, audit chain) that the refusal tests rely on.
#![allow(dead_code, clippy::unwrap_used)]

use autoglm_console::AppState;
use autoglm_core::rbac::Role;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

/// The password of the bootstrap admin and of every user the tests create.
pub const PASSWORD: &str = "admin-password-123";

/// A console over its own temporary home folder.
#[derive(Debug)]
pub struct Console {
    /// Kept alive for the test's duration; the home folder.
    pub dir: tempfile::TempDir,
    /// The shared state (store, artifacts, sessions).
    pub state: AppState,
    /// The router.
    pub app: Router,
    /// An API key of the bootstrap admin (system tenant "default").
    pub admin: String,
}

/// Bootstraps a console in a fresh temporary folder.
pub fn console() -> Console {
    let dir = tempfile::tempdir().unwrap();
    let opened = autoglm_console::bootstrap::open(dir.path(), Some(PASSWORD)).unwrap();
    let app = autoglm_console::router(opened.state.clone());
    Console {
        admin: opened
            .new_admin_token
            .expect("first start creates the admin key"),
        state: opened.state,
        app,
        dir,
    }
}

/// Starts the task scheduler over `c`'s store (no platform: a change is
/// done once stored), as `autoglm console` runs it.
pub async fn start_tasks(c: &Console) -> autoglm_tasks::TaskScheduler {
    autoglm_tasks::TaskScheduler::start(
        c.state.store.clone(),
        c.state.tasks.clone(),
        autoglm_tasks::ServiceWork::new(
            c.state.store.clone(),
            c.state.platform.clone(),
            c.state.traffic.clone(),
        ),
        autoglm_tasks::Settings::default(),
    )
    .await
    .unwrap()
}

/// An answer, fully read.
#[derive(Debug)]
pub struct Resp {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Bytes,
}

impl Resp {
    /// The body as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} answered a body that is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `content-type` header.
    pub fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The problem `code`, when the body is a problem document.
    pub fn code(&self) -> Option<String> {
        serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|v| v["code"].as_str().map(str::to_owned))
    }

    /// Short description for assertion messages.
    pub fn describe(&self) -> String {
        let mut text = self.text();
        if text.len() > 400 {
            text.truncate(400);
            text.push('…');
        }
        format!("{} {} {}", self.status, self.content_type(), text)
    }

    /// Asserts a successful status, with the body in the message otherwise.
    pub fn expect(self, status: u16) -> Resp {
        assert_eq!(self.status.as_u16(), status, "{}", self.describe());
        self
    }
}

/// Asserts that `resp` is an RFC 9457 problem with `status` and `code`,
/// whose body agrees with the status line.
pub fn assert_problem(resp: &Resp, status: u16, code: &str) {
    assert_eq!(resp.status.as_u16(), status, "{}", resp.describe());
    assert_eq!(
        resp.content_type(),
        "application/problem+json",
        "{}",
        resp.describe()
    );
    let body = resp.json();
    assert_eq!(body["code"], code, "{}", resp.describe());
    assert_eq!(body["status"], status, "{}", resp.describe());
    assert_eq!(
        body["type"],
        format!("https://autoglm.io/problems/{code}"),
        "{}",
        resp.describe()
    );
}

/// Sends a request through the router and reads the whole answer.
pub async fn send(app: &Router, req: Request<Body>) -> Resp {
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Resp {
        status,
        headers,
        body,
    }
}

/// A request builder with a bearer token when given.
pub fn request(method: Method, uri: &str, token: Option<&str>) -> axum::http::request::Builder {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    builder
}

/// Sends `body` as JSON (or nothing) with a bearer token (or none).
pub async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Resp {
    let builder = request(method, uri, token);
    let req = match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(&body).unwrap())),
        None => builder.body(Body::empty()),
    }
    .unwrap();
    send(app, req).await
}

/// `GET` with a token.
pub async fn get(app: &Router, uri: &str, token: &str) -> Resp {
    call(app, Method::GET, uri, Some(token), None).await
}

/// `POST` JSON with a token.
pub async fn post(app: &Router, uri: &str, token: &str, body: Value) -> Resp {
    call(app, Method::POST, uri, Some(token), Some(body)).await
}

/// `POST` JSON with a token and an `Idempotency-Key`.
pub async fn post_with_key(app: &Router, token: &str, uri: &str, key: &str, body: Value) -> Resp {
    let req = request(Method::POST, uri, Some(token))
        .header(header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", key)
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap();
    send(app, req).await
}

/// `DELETE` with a token.
pub async fn delete(app: &Router, uri: &str, token: &str) -> Resp {
    call(app, Method::DELETE, uri, Some(token), None).await
}

/// `PATCH` JSON with a token.
pub async fn patch(app: &Router, uri: &str, token: &str, body: Value) -> Resp {
    call(app, Method::PATCH, uri, Some(token), Some(body)).await
}

/// `GET` with a token, expecting 200; the body as JSON.
pub async fn get_json(app: &Router, uri: &str, token: &str) -> Value {
    get(app, uri, token).await.expect(200).json()
}

/// `GET` a page with a token, expecting 200; its `items`.
pub async fn get_items(app: &Router, uri: &str, token: &str) -> Vec<Value> {
    get_json(app, uri, token).await["items"]
        .as_array()
        .unwrap()
        .clone()
}

/// The string `field` of every object in the JSON array `items`.
pub fn str_fields<'a>(items: &'a Value, field: &str) -> Vec<&'a str> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item[field].as_str().unwrap())
        .collect()
}

/// `PUT /api/v1/users/{username}/role` with a token.
pub async fn set_role(app: &Router, token: &str, username: &str, role: &str) -> Resp {
    call(
        app,
        Method::PUT,
        &format!("/api/v1/users/{username}/role"),
        Some(token),
        Some(json!({"role": role})),
    )
    .await
}

/// Creates a user with `role` in the caller's tenant.
pub async fn create_user(app: &Router, admin_token: &str, username: &str, role: Role) {
    post(
        app,
        "/api/v1/users",
        admin_token,
        json!({"username": username, "password": PASSWORD, "role": role}),
    )
    .await
    .expect(201);
}

/// `POST /api/v1/auth/login` with `body`, without credentials.
pub async fn try_login(app: &Router, body: Value) -> Resp {
    call(app, Method::POST, "/api/v1/auth/login", None, Some(body)).await
}

/// Logs in and returns the session token.
pub async fn login(app: &Router, username: &str, tenant: Option<&str>) -> String {
    let mut body = json!({"username": username, "password": PASSWORD});
    if let Some(tenant) = tenant {
        body["tenant"] = json!(tenant);
    }
    let resp = try_login(app, body).await.expect(200);
    resp.json()["token"].as_str().unwrap().to_owned()
}

/// Creates a user with `role` in the admin's tenant and returns their session token.
pub async fn user_session(app: &Router, admin_token: &str, username: &str, role: Role) -> String {
    create_user(app, admin_token, username, role).await;
    login(app, username, None).await
}

/// Creates an API key with `token`; returns `(secret, id)`.
pub async fn create_key(app: &Router, token: &str, body: Value) -> (String, String) {
    let resp = post(app, "/api/v1/keys", token, body).await.expect(201);
    let json = resp.json();
    (
        json["secret"].as_str().unwrap().to_owned(),
        json["id"].as_str().unwrap().to_owned(),
    )
}

/// Creates a model.
pub async fn create_model(app: &Router, token: &str, name: &str) -> Value {
    post(app, "/api/v1/models", token, json!({"name": name}))
        .await
        .expect(201)
        .json()
}

/// A valid safetensors file holding one F32 tensor `w` of the two values.
pub fn safetensors(values: [f32; 2]) -> Vec<u8> {
    let header = br#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header);
    for v in values {
        file.extend_from_slice(&v.to_le_bytes());
    }
    file
}

/// Lower-case hex sha256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The multipart boundary the helpers use.
pub const BOUNDARY: &str = "autoglm-test-boundary-7d1f3c";

/// One part of a multipart body.
#[derive(Debug, Clone)]
pub struct Part<'a> {
    /// The form field name (`metadata`, `artifact`).
    pub name: &'a str,
    /// The part's filename, for file parts.
    pub file_name: Option<&'a str>,
    /// The part's bytes.
    pub bytes: Vec<u8>,
}

impl<'a> Part<'a> {
    /// A `metadata` part.
    pub fn metadata(spec: &Value) -> Part<'a> {
        Part {
            name: "metadata",
            file_name: None,
            bytes: serde_json::to_vec(spec).unwrap(),
        }
    }

    /// An `artifact` part.
    pub fn artifact(path: &'a str, bytes: &[u8]) -> Part<'a> {
        Part {
            name: "artifact",
            file_name: Some(path),
            bytes: bytes.to_vec(),
        }
    }
}

/// A `multipart/form-data` body of `parts`.
pub fn multipart(parts: &[Part<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match part.file_name {
            Some(file) => {
                body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{}\"; filename=\"{file}\"\r\n\
                         Content-Type: application/octet-stream\r\n\r\n",
                        part.name
                    )
                    .as_bytes(),
                );
            }
            None => {
                body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{}\"\r\n\
                         Content-Type: application/json\r\n\r\n",
                        part.name
                    )
                    .as_bytes(),
                );
            }
        }
        body.extend_from_slice(&part.bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// The `content-type` of the helpers' multipart bodies.
pub fn multipart_content_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// A multipart upload request to `model`'s versions, without a Content-Length.
pub fn multipart_request(model: &str, token: &str) -> axum::http::request::Builder {
    request(
        Method::POST,
        &format!("/api/v1/models/{model}/versions"),
        Some(token),
    )
    .header(header::CONTENT_TYPE, multipart_content_type())
}

/// A multipart upload request to `model`'s versions, with a Content-Length.
pub fn upload_request(
    model: &str,
    token: &str,
    parts: &[Part<'_>],
) -> axum::http::request::Builder {
    let body_len = multipart(parts).len();
    multipart_request(model, token).header(header::CONTENT_LENGTH, body_len)
}

/// Uploads `parts` as a new version of `model`.
pub async fn upload(app: &Router, token: &str, model: &str, parts: &[Part<'_>]) -> Resp {
    let req = upload_request(model, token, parts)
        .body(Body::from(multipart(parts)))
        .unwrap();
    send(app, req).await
}

/// Uploads one file `path` of `bytes` as a new version of `model`, expecting
/// 201; the version as JSON.
pub async fn upload_file(
    app: &Router,
    token: &str,
    model: &str,
    path: &str,
    bytes: &[u8],
) -> Value {
    upload(app, token, model, &[Part::artifact(path, bytes)])
        .await
        .expect(201)
        .json()
}

/// A fresh command nonce (24 URL-safe characters).
pub fn nonce() -> String {
    autoglm_auth::random_string(24)
}

/// Current Unix time in seconds, as the timestamp header wants it.
pub fn now_header() -> HeaderValue {
    HeaderValue::from(chrono::Utc::now().timestamp())
}

/// `PUT .../stage` with explicit command headers (`None` leaves one out).
pub async fn set_stage_with(
    app: &Router,
    token: &str,
    model: &str,
    version: i64,
    body: Value,
    timestamp: Option<HeaderValue>,
    nonce: Option<&str>,
) -> Resp {
    let mut builder = request(
        Method::PUT,
        &format!("/api/v1/models/{model}/versions/{version}/stage"),
        Some(token),
    )
    .header(header::CONTENT_TYPE, "application/json");
    if let Some(ts) = timestamp {
        builder = builder.header("x-autoglm-timestamp", ts);
    }
    if let Some(nonce) = nonce {
        builder = builder.header("x-autoglm-nonce", nonce);
    }
    let req = builder
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap();
    send(app, req).await
}

/// Moves a version to `stage` with fresh command headers.
pub async fn set_stage(app: &Router, token: &str, model: &str, version: i64, stage: &str) -> Resp {
    set_stage_with(
        app,
        token,
        model,
        version,
        json!({"stage": stage}),
        Some(now_header()),
        Some(&nonce()),
    )
    .await
}

/// The `name` of every item of a page.
pub fn item_names(page: &Value) -> Vec<String> {
    str_fields(&page["items"], "name")
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// Names of the models the token's tenant sees.
pub async fn model_names(app: &Router, token: &str) -> Vec<String> {
    item_names(&get_json(app, "/api/v1/models?limit=1000", token).await)
}

/// How many models the token's tenant sees.
pub async fn model_count(app: &Router, token: &str) -> usize {
    model_names(app, token).await.len()
}

/// The audit chain verification, asserting it is valid; returns the record count.
pub async fn assert_audit_valid(app: &Router, admin_token: &str) -> i64 {
    let v = get_json(app, "/api/v1/audit/verify", admin_token).await;
    assert_eq!(v["valid"], true, "audit chain broken: {v}");
    v["records"].as_i64().unwrap()
}

/// Audit records matching the query string (as a system admin: every tenant).
pub async fn audit(app: &Router, admin_token: &str, query: &str) -> Vec<Value> {
    get_items(
        app,
        &format!("/api/v1/audit?limit=1000&{query}"),
        admin_token,
    )
    .await
}

/// Folders under `<home>/artifacts/` other than `.staging`, and the entries of `.staging`.
pub fn artifact_dirs(console: &Console) -> (Vec<String>, Vec<String>) {
    let root = console.dir.path().join("artifacts");
    let names = |dir: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    let committed = names(&root)
        .into_iter()
        .filter(|n| n != ".staging")
        .collect();
    (committed, names(&root.join(".staging")))
}
