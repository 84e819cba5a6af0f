//! The pages' form and query extractors, named as axum's so that handlers
//! read the same, whose refusals are RFC 9457 problem documents (with the
//! console API's codes) instead of axum's plain text.

use autoglm_console::error::ApiError;
use autoglm_core::error::ErrorCode;
use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// A submitted form: a field of the wrong kind is `invalid_body`, a body
/// that is not form-encoded `unsupported_media_type`, one over the route's
/// limit `payload_too_large`.
#[derive(Debug)]
pub struct Form<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Form<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        axum::Form::<T>::from_request(req, state)
            .await
            .map(|axum::Form(value)| Form(value))
            .map_err(form_rejection)
    }
}

fn form_rejection(rejection: FormRejection) -> ApiError {
    match rejection {
        FormRejection::FailedToDeserializeFormBody(e) => {
            ApiError::new(ErrorCode::InvalidBody, format!("the form: {}", inner(&e)))
        }
        FormRejection::InvalidFormContentType(_) => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the form as Content-Type: application/x-www-form-urlencoded",
        ),
        FormRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                "the form is larger than this page takes",
            )
        }
        other => ApiError::new(ErrorCode::MalformedBody, other.body_text()),
    }
}

/// A page's query: a parameter of the wrong kind is `invalid_query`, as the
/// console API's own extractor answers it.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        autoglm_console::extract::ApiQuery::<T>::from_request_parts(parts, state)
            .await
            .map(|autoglm_console::extract::ApiQuery(value)| Query(value))
    }
}

/// serde's message without axum's prefix, which repeats the rejection kind.
fn inner(e: &dyn std::error::Error) -> String {
    e.source()
        .map_or_else(|| e.to_string(), ToString::to_string)
}
