//! Errors in each API's own shape: OpenAI's `{"error": {...}}` and the Open
//! Inference Protocol's `{"error": "..."}`.

use autoglm_inference::InferenceError;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Which API is answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAI-compatible `/v1`.
    OpenAi,
    /// Open Inference Protocol `/v2`.
    Oip,
}

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong, in words.
    pub message: String,
    /// OpenAI `code` (`model_not_found`, `context_length_exceeded`...).
    pub code: Option<&'static str>,
    /// Which request field is at fault.
    pub param: Option<&'static str>,
    /// Answer shape.
    pub dialect: Dialect,
}

impl ApiError {
    /// A 400 for a bad request.
    pub fn invalid(dialect: Dialect, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            code: None,
            param: None,
            dialect,
        }
    }

    /// Names the field at fault.
    pub fn param(mut self, param: &'static str) -> ApiError {
        self.param = Some(param);
        self
    }

    /// A 404 for a model name or version this runtime does not serve.
    pub fn unknown_model(dialect: Dialect, requested: &str, served: &str) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!(
                "model {requested:?} is not served here; this runtime serves {served:?}"
            ),
            code: Some("model_not_found"),
            param: Some("model"),
            dialect,
        }
    }

    /// A 503 while no model is ready.
    pub fn not_ready(dialect: Dialect) -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the model is loading; retry shortly".into(),
            code: Some("model_not_ready"),
            param: None,
            dialect,
        }
    }

    /// A 429 when the queue is full.
    pub fn overloaded(dialect: Dialect) -> ApiError {
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: "the runtime's queue is full; retry after a second".into(),
            code: Some("queue_full"),
            param: None,
            dialect,
        }
    }

    /// From an engine's error.
    pub fn from_inference(dialect: Dialect, error: InferenceError) -> ApiError {
        let (status, code) = match &error {
            InferenceError::InvalidInput(_) => (StatusCode::BAD_REQUEST, None),
            InferenceError::TooLong { .. } => {
                (StatusCode::BAD_REQUEST, Some("context_length_exceeded"))
            }
            InferenceError::Engine(_) => {
                tracing::error!(%error, "engine failure");
                (StatusCode::INTERNAL_SERVER_ERROR, Some("engine_failure"))
            }
        };
        ApiError {
            status,
            message: error.to_string(),
            code,
            param: None,
            dialect,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.dialect {
            Dialect::OpenAi => {
                let kind = match self.status.as_u16() {
                    401 => "authentication_error",
                    404 => "not_found_error",
                    429 => "rate_limit_error",
                    400..=499 => "invalid_request_error",
                    _ => "server_error",
                };
                json!({"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}})
            }
            Dialect::Oip => json!({"error": self.message}),
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS
            || self.status == StatusCode::SERVICE_UNAVAILABLE
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// A JSON body whose rejections answer in the API's own error shape.
#[derive(Debug)]
pub struct Body<T, const OIP: bool>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned, const OIP: bool> axum::extract::FromRequest<S>
    for Body<T, OIP>
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let dialect = if OIP { Dialect::Oip } else { Dialect::OpenAi };
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            Err(rejection) => {
                let message = match &rejection {
                    axum::extract::rejection::JsonRejection::JsonDataError(e) => {
                        std::error::Error::source(e)
                            .map_or_else(|| e.to_string(), ToString::to_string)
                    }
                    other => other.body_text(),
                };
                let status = rejection.status();
                Err(ApiError {
                    status,
                    message,
                    code: None,
                    param: None,
                    dialect,
                })
            }
        }
    }
}
