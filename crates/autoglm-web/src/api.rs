//! The pages that change things go through the console's own API, in
//! process, with the browser's credential as the Bearer token: validation,
//! RBAC, idempotency and the audit stay in one place.

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
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {credential}"));
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let Ok(request) = request.body(body) else {
            return (StatusCode::BAD_REQUEST, Value::Null);
        };
        let Ok(response) = self.0.clone().oneshot(request).await;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), ANSWER_LIMIT)
            .await
            .unwrap_or_default();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
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
