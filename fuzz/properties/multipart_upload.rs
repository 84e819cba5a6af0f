//! Property of the console's multipart upload reader
//! (`POST /api/v1/models/{name}/versions`), driven through the real router
//! over a real store in a temporary home; shared by the `multipart_upload`
//! fuzz target and the bounded run of it in
//! crates/autoglm-console/tests/fuzzed.rs.
//!
//! Any body is a new version (201) or a 4xx problem document that changes
//! nothing: the model keeps its versions, the artifact folder its folders,
//! and no staging folder is left behind. No body is a 5xx.

#[path = "answer.rs"]
mod answer;

use std::path::PathBuf;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;

/// The boundary of the bodies the property sends.
pub const BOUNDARY: &str = "autoglm-fuzz-boundary";

/// A console over its own temporary home, holding one model, `kept`.
#[derive(Debug)]
pub struct Console {
    _home: tempfile::TempDir,
    artifacts: PathBuf,
    app: Router,
    admin: String,
}

impl Console {
    /// Bootstraps a console in a fresh temporary folder (`TMPDIR`) and
    /// creates the model `kept`.
    pub async fn start() -> Console {
        let home = tempfile::tempdir().expect("a temporary home");
        let opened = autoglm_console::bootstrap::open(home.path(), Some("fuzz-password-123"))
            .expect("the console opens");
        let console = Console {
            artifacts: home.path().join("artifacts"),
            app: autoglm_console::router(opened.state),
            admin: opened.new_admin_token.expect("an admin key"),
            _home: home,
        };
        let created = console
            .send(
                Method::POST,
                "/api/v1/models",
                Some(("application/json", br#"{"name":"kept"}"#.to_vec())),
            )
            .await;
        assert_eq!(created.0, StatusCode::CREATED, "{:?}", created.2);
        console
    }

    async fn send(
        &self,
        method: Method,
        uri: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> (StatusCode, String, Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.admin));
        let request = match body {
            Some((content_type, bytes)) => request
                .header(header::CONTENT_TYPE, content_type)
                .body(Body::from(bytes)),
            None => request.body(Body::empty()),
        }
        .expect("a request");
        let response = self
            .app
            .clone()
            .oneshot(request)
            .await
            .expect("the router answers");
        let (status, content_type, bytes) = answer::read(response).await;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, content_type, body)
    }

    /// What a refused upload must leave as it was: the versions of `kept`
    /// and the artifact folder's folders, staging ones included.
    async fn snapshot(&self) -> (Value, Vec<String>, Vec<String>) {
        let (status, _, versions) = self
            .send(Method::GET, "/api/v1/models/kept/versions?limit=100", None)
            .await;
        assert_eq!(status, StatusCode::OK, "{versions}");
        let names = |dir: PathBuf| {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .map(|e| e.expect("an entry").file_name().to_string_lossy().into())
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            names
        };
        (
            versions["items"].clone(),
            names(self.artifacts.clone()),
            names(self.artifacts.join(".staging")),
        )
    }

    /// Checks the property on the multipart body `body` (boundary [`BOUNDARY`]).
    pub async fn check(&self, body: &[u8]) {
        let before = self.snapshot().await;
        let (status, content_type, answer) = self
            .send(
                Method::POST,
                "/api/v1/models/kept/versions",
                Some((
                    &format!("multipart/form-data; boundary={BOUNDARY}"),
                    body.to_vec(),
                )),
            )
            .await;
        if status == StatusCode::CREATED {
            // Back to the state before, so that the next input starts there.
            let version = answer["version"].as_i64().expect("a version number");
            let (deleted, _, problem) = self
                .send(
                    Method::DELETE,
                    &format!("/api/v1/models/kept/versions/{version}"),
                    None,
                )
                .await;
            assert_eq!(deleted, StatusCode::NO_CONTENT, "{problem}");
        } else {
            assert!(status.is_client_error(), "{status}: {answer}");
            assert_eq!(content_type, "application/problem+json", "{answer}");
            assert!(answer["code"].is_string(), "{answer}");
            assert_eq!(answer["status"], status.as_u16(), "{answer}");
        }
        assert_eq!(self.snapshot().await, before, "after {status}: {answer}");
    }
}
