//! The pages that change things go through the console's own API, in
//! process, with the browser's credential as the Bearer token: validation,
//! RBAC, idempotency and the audit stay in one place.

use autoglm_auth::random_string;
use autoglm_core::replay::{NONCE_HEADER, TIMESTAMP_HEADER};
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;

/// The console's API router, for the pages' calls.
#[derive(Clone, Debug)]
pub struct Api(pub Router);

/// Largest API answer a page reads.
const ANSWER_LIMIT: usize = 4 * 1024 * 1024;

impl Api {
    /// Calls `method path` as the holder of `credential`; the status and the JSON answer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        credential: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let body = body.map(|b| ("application/json", Body::from(b.to_string())));
        let (status, bytes) = self.send(method, path, credential, body).await;
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Calls `method path` without a body; the status and the answer as text.
    pub async fn text(&self, method: Method, path: &str, credential: &str) -> (StatusCode, String) {
        let (status, bytes) = self.send(method, path, credential, None).await;
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Calls a command (`method path` with a JSON body and the freshness
    /// headers a command needs); the status and the JSON answer.
    pub async fn command(
        &self,
        method: Method,
        path: &str,
        credential: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let fresh = [
            (TIMESTAMP_HEADER, chrono::Utc::now().timestamp().to_string()),
            (NONCE_HEADER, random_string(32)),
        ];
        let body = Some(("application/json", Body::from(body.to_string())));
        let (status, bytes) = self.send_with(method, path, credential, body, &fresh).await;
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Calls `method path` with `body` of its content type; the status and the answer's bytes.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        credential: &str,
        body: Option<(&str, Body)>,
    ) -> (StatusCode, axum::body::Bytes) {
        self.send_with(method, path, credential, body, &[]).await
    }

    async fn send_with(
        &self,
        method: Method,
        path: &str,
        credential: &str,
        body: Option<(&str, Body)>,
        headers: &[(&str, String)],
    ) -> (StatusCode, axum::body::Bytes) {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {credential}"));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let body = match body {
            Some((content_type, body)) => {
                request = request.header(header::CONTENT_TYPE, content_type);
                body
            }
            None => Body::empty(),
        };
        let Ok(request) = request.body(body) else {
            return (StatusCode::BAD_REQUEST, axum::body::Bytes::new());
        };
        let Ok(response) = self.0.clone().oneshot(request).await;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), ANSWER_LIMIT)
            .await
            .unwrap_or_default();
        (status, bytes)
    }
}

/// A record a page could not read: the status to answer the page with and
/// the API's words.
#[derive(Debug)]
pub struct Unread {
    /// The API's own status, or 502 when it answered with something else
    /// than the record.
    pub status: StatusCode,
    /// What it said.
    pub words: Vec<String>,
}

impl Unread {
    /// The page `title` (under `here` in the menu) saying why.
    pub fn page(
        self,
        session: &crate::session::Session,
        here: &str,
        title: &str,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        let body = maud::html! { p.error role="alert" { (self.words.join("; ")) } };
        (self.status, crate::layout::page(session, here, title, body)).into_response()
    }
}

impl Api {
    /// `GET path` read as a `T`, the record a page shows.
    pub async fn get_as<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        credential: &str,
    ) -> Result<T, Unread> {
        let (status, answer) = self.call(Method::GET, path, credential, None).await;
        let unread = |status| Unread {
            status,
            words: problem_words(&answer),
        };
        if !status.is_success() {
            return Err(unread(status));
        }
        serde_json::from_value(answer.clone()).map_err(|_| unread(StatusCode::BAD_GATEWAY))
    }

    /// The names of the items the API lists at `path`, each found at
    /// `pointer` in its item (`/name`, `/metadata/name`), for a form to
    /// offer; none when the API refuses.
    pub async fn names(&self, path: &str, credential: &str, pointer: &str) -> Vec<String> {
        let (_, page) = self.call(Method::GET, path, credential, None).await;
        page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| item.pointer(pointer)?.as_str().map(str::to_owned))
            .collect()
    }
}

/// A problem document's words for people: its detail and each refused field.
pub fn problem_words(problem: &Value) -> Vec<String> {
    let mut words = vec![
        problem["detail"]
            .as_str()
            .unwrap_or("the request failed")
            .to_owned(),
    ];
    for error in problem["errors"].as_array().into_iter().flatten() {
        let field = error["path"].as_str().unwrap_or("");
        let message = error["message"].as_str().unwrap_or("");
        if !message.is_empty() {
            words.push(format!("{field}: {message}"));
        }
    }
    words
}

/// What the API said when it refused, in words, for the page to show beside
/// the form it came from (`id` names the place).
pub fn refusal(id: &str, problem: &Value) -> maud::Markup {
    maud::html! { div.error role="alert" id=(id) { @for line in problem_words(problem) { p { (line) } } } }
}

/// `s` as one segment of a URL path or one query value: everything but
/// letters, digits and `-._~` percent-encoded, so a name taken from a page's
/// URL cannot reach another API route or add parameters.
pub fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
