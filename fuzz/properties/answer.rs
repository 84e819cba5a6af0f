//! A router's answer read whole (status, content type, body), for the
//! properties that drive a router in process; each includes this file.

use axum::body::{Body, Bytes};
use axum::http::{Response, StatusCode, header};
use http_body_util::BodyExt;

/// The status, the `Content-Type` (empty when absent) and the whole body.
pub async fn read(response: Response<Body>) -> (StatusCode, String, Bytes) {
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("a whole body")
        .to_bytes();
    (status, content_type, bytes)
}
