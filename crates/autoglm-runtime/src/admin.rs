//! `/admin/v1`: load another version beside the running one and switch to it.
//! Off unless the runtime was given an admin token.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

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

type AdminResult = Result<Json<LoadReport>, (StatusCode, Json<Value>)>;

fn refuse(status: StatusCode, message: &str) -> (StatusCode, Json<Value>) {
    (status, Json(json!({"error": message})))
}

/// `POST /admin/v1/load`: answers once the new version serves.
pub async fn load(
    State(runtime): State<Arc<Runtime>>,
    headers: HeaderMap,
    body: Option<Json<LoadRequest>>,
) -> AdminResult {
    let Some(expected) = &runtime.config().admin_token else {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            "the admin API is off; start the runtime with an admin token",
        ));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if presented != Some(expected.as_str()) {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "missing or wrong admin token",
        ));
    }
    let Some(Json(req)) = body else {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "send JSON {\"path\": ..., \"version\": ...}",
        ));
    };
    if req.version.is_empty() || req.version.len() > 63 {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "version must be 1 to 63 characters",
        ));
    }
    runtime
        .load(std::path::Path::new(&req.path), &req.version)
        .await
        .map(Json)
        .map_err(|e| refuse(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()))
}
