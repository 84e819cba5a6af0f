//! `/admin/v1`: load another version beside the running one and switch to it.
//! Off unless the runtime was given an admin token.
//!
//! Refusals are RFC 9457 problem documents with the console's codes for the
//! same cases (`docs/errors.md`): this is autoglm's own API, not OpenAI's.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::{LoadReport, Runtime};

/// `POST /admin/v1/load` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadRequest {
    /// Model file or folder.
    path: String,
    /// Version label.
    version: String,
}

/// A refusal of the admin API.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: String,
}

impl Refusal {
    fn new(
        status: StatusCode,
        (code, title): (&'static str, &'static str),
        detail: impl Into<String>,
    ) -> Refusal {
        Refusal {
            status,
            code,
            title,
            detail: detail.into(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = json!({
            "type": format!("https://autoglm.io/problems/{}", self.code),
            "title": self.title, "status": self.status.as_u16(),
            "detail": self.detail, "code": self.code, "instance": "/admin/v1/load",
        });
        let mut response = (self.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

const OFF: (&str, &str) = ("route_not_found", "No such endpoint");
const UNAUTHENTICATED: (&str, &str) = ("unauthenticated", "Credentials are missing");
const INVALID_CREDENTIALS: (&str, &str) = ("invalid_credentials", "The credentials are not valid");
const MALFORMED_BODY: (&str, &str) = ("malformed_body", "The request body is not well-formed JSON");
const INVALID_BODY: (&str, &str) = ("invalid_body", "The request body does not match the schema");
const INVALID_ARTIFACT: (&str, &str) = ("invalid_artifact", "The artifact failed its format check");

/// Whether `presented` is `expected`, in time that does not depend on where
/// they differ, so the token cannot be found byte by byte from answer times.
fn token_matches(presented: &str, expected: &str) -> bool {
    bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

/// `POST /admin/v1/load`: answers once the new version serves. A model that
/// cannot be loaded is refused and the current version keeps serving.
pub async fn load(
    State(runtime): State<Arc<Runtime>>,
    headers: HeaderMap,
    body: Result<Json<LoadRequest>, JsonRejection>,
) -> Result<Json<LoadReport>, Refusal> {
    let Some(expected) = &runtime.config().admin_token else {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            OFF,
            "the admin API is off; start the runtime with an admin token",
        ));
    };
    let Some(presented) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            UNAUTHENTICATED,
            "send the admin token as Authorization: Bearer <token>",
        ));
    };
    if !token_matches(presented, expected) {
        return Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            INVALID_CREDENTIALS,
            "the admin token is wrong",
        ));
    }
    let req = match body {
        Ok(Json(req)) => req,
        Err(JsonRejection::JsonDataError(e)) => {
            let detail =
                std::error::Error::source(&e).map_or_else(|| e.to_string(), |s| s.to_string());
            return Err(Refusal::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                INVALID_BODY,
                format!("send JSON {{\"path\": ..., \"version\": ...}}: {detail}"),
            ));
        }
        Err(other) => {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                MALFORMED_BODY,
                format!(
                    "send JSON {{\"path\": ..., \"version\": ...}}: {}",
                    other.body_text()
                ),
            ));
        }
    };
    if req.version.is_empty() || req.version.len() > 63 {
        return Err(Refusal::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            INVALID_BODY,
            "version must be 1 to 63 characters",
        ));
    }
    runtime
        .load(std::path::Path::new(&req.path), &req.version)
        .await
        .map(Json)
        .map_err(|e| {
            let kept = runtime
                .current()
                .map(|s| format!("; version {} keeps serving", s.version))
                .unwrap_or_default();
            Refusal::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                INVALID_ARTIFACT,
                format!("{} was not loaded{kept}: {e}", req.path),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::token_matches;

    #[test]
    fn only_the_whole_token_matches() {
        assert!(token_matches(
            "admin-token-for-tests",
            "admin-token-for-tests"
        ));
        assert!(!token_matches(
            "admin-token-for-test",
            "admin-token-for-tests"
        ));
        assert!(!token_matches(
            "admin-token-for-testz",
            "admin-token-for-tests"
        ));
        assert!(!token_matches("", "admin-token-for-tests"));
    }
}
