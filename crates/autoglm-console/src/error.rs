//! The console's one HTTP error type: an RFC 9457 problem with a stable code.
//!
//! Client mistakes carry their detail to the client; server failures are
//! logged with their cause and reach the client only as `internal`.

use autoglm_artifacts::ArtifactError;
use autoglm_auth::AuthError;
use autoglm_core::error::{ErrorCode, FieldError, PolicyViolation, Problem};
use autoglm_store::StoreError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// The stable code.
    pub code: ErrorCode,
    /// What went wrong, for the client.
    pub detail: String,
    /// The refused fields of the body, sent as the problem's `errors`.
    pub errors: Vec<FieldError>,
    /// What the refusing policies found, sent as the problem's `violations`.
    pub violations: Vec<PolicyViolation>,
}

/// Result of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with `code` and a detail for the client.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> ApiError {
        ApiError {
            code,
            detail: detail.into(),
            errors: Vec::new(),
            violations: Vec::new(),
        }
    }

    /// `invalid_body` naming each refused field.
    pub fn fields(errors: Vec<FieldError>) -> ApiError {
        let problem = Problem::invalid_fields(errors);
        ApiError {
            code: ErrorCode::InvalidBody,
            detail: problem.detail.unwrap_or_default(),
            errors: problem.errors,
            violations: Vec::new(),
        }
    }

    /// `policy_violation` listing what each refusing policy found.
    pub fn policy_violations(violations: Vec<PolicyViolation>) -> ApiError {
        let problem = Problem::policy_violations(violations);
        ApiError {
            code: ErrorCode::PolicyViolation,
            detail: problem.detail.unwrap_or_default(),
            errors: Vec::new(),
            violations: problem.violations,
        }
    }

    /// A server-side failure: logged in full, reported as `internal`
    /// (the same words whether it happened in a handler or a credential check).
    pub fn internal(context: &str, error: &dyn std::error::Error) -> ApiError {
        AuthError::internal(context, error).into()
    }
}

/// Fills `request_id` and `instance` into problem documents on their way
/// out, where the request is known; handlers and extractors need not carry it.
pub async fn add_problem_context(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let request_id = crate::request_id(req.headers());
    let instance = req.uri().path().to_owned();
    let response = next.run(req).await;
    if response.extensions().get::<ErrorOutcome>().is_none() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return Response::from_parts(parts, axum::body::Body::empty());
    };
    let body = match serde_json::from_slice::<Problem>(&bytes) {
        Ok(mut problem) => {
            problem.request_id = Some(request_id).filter(|r| !r.is_empty());
            problem.instance = Some(instance);
            serde_json::to_vec(&problem)
                .map(axum::body::Body::from)
                .unwrap_or_else(|_| bytes.into())
        }
        Err(_) => bytes.into(),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, body)
}

/// The code of an error response, left in the response's extensions so that
/// the audit layer can record the outcome without parsing the body.
#[derive(Debug, Clone, Copy)]
pub struct ErrorOutcome(pub ErrorCode);

/// What the policies found that refused a write, left in the response's
/// extensions so that the audit layer records the decision beside the
/// refusal (the write's own transaction, and the decision in it, rolled back).
#[derive(Debug, Clone)]
pub struct PolicyRefusal(pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = Problem {
            errors: self.errors,
            violations: self.violations,
            ..Problem::new(self.code, self.detail)
        };
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let refusal = (self.code == ErrorCode::PolicyViolation)
            .then(|| PolicyRefusal(problem.detail.clone().unwrap_or_default()));
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        if let Some(refusal) = refusal {
            response.extensions_mut().insert(refusal);
        }
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response.extensions_mut().insert(ErrorOutcome(self.code));
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::Rejected(code, detail) => ApiError::new(code, detail),
            StoreError::Invalid(errors) => ApiError::fields(errors),
            StoreError::Denied(violations) => ApiError::policy_violations(violations),
            other => ApiError::internal("store", &other),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> ApiError {
        // An internal failure was logged with its cause where it happened.
        ApiError::new(error.code, error.detail)
    }
}

impl From<ArtifactError> for ApiError {
    fn from(error: ArtifactError) -> ApiError {
        match &error {
            ArtifactError::Format { .. } => {
                ApiError::new(ErrorCode::InvalidArtifact, error.to_string())
            }
            ArtifactError::InvalidPath(_)
            | ArtifactError::Duplicate(_)
            | ArtifactError::Source(_) => ApiError::new(ErrorCode::InvalidBody, error.to_string()),
            ArtifactError::Empty | ArtifactError::TooManyFiles => {
                ApiError::new(ErrorCode::InvalidBody, error.to_string())
            }
            ArtifactError::Upload(_) => ApiError::new(ErrorCode::MalformedBody, error.to_string()),
            ArtifactError::Io(_) => ApiError::internal("artifacts", &error),
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(error: tokio::task::JoinError) -> ApiError {
        ApiError::internal("blocking task", &error)
    }
}
