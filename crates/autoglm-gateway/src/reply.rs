//! Answers the gateway makes itself: errors in the shape each protocol's
//! clients parse (OpenAI's `{"error": {...}}`, the Open Inference Protocol's
//! `{"error": "..."}`), and small JSON documents.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde_json::json;

/// The gateway's response body.
pub type GatewayBody = UnsyncBoxBody<Bytes, hyper::Error>;

/// Which error shape a path's clients expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OpenAI `/v1/...`.
    OpenAi,
    /// Open Inference Protocol `/v2/...`.
    Oip,
}

impl Protocol {
    /// The protocol of `path`.
    pub fn of(path: &str) -> Protocol {
        if path.starts_with("/v2/") {
            Protocol::Oip
        } else {
            Protocol::OpenAi
        }
    }
}

/// A body of bytes.
pub fn full(bytes: impl Into<Bytes>) -> GatewayBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A JSON answer.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<GatewayBody> {
    let mut r = Response::new(full(value.to_string()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// A refusal or failure the gateway itself answers.
#[derive(Debug, Clone)]
pub struct Refused {
    /// HTTP status.
    pub status: StatusCode,
    /// A stable code, e.g. `model_not_found`.
    pub code: &'static str,
    /// In words.
    pub message: String,
    /// Seconds, for `Retry-After`.
    pub retry_after: Option<u64>,
    /// Extra headers, e.g. `x-ratelimit-*`.
    pub headers: Vec<(&'static str, String)>,
}

impl Refused {
    /// A refusal without `Retry-After`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Refused {
        Refused {
            status,
            code,
            message: message.into(),
            retry_after: None,
            headers: Vec::new(),
        }
    }

    /// The same, asking the client to retry after `seconds`.
    pub fn retry_after(self, seconds: u64) -> Refused {
        Refused {
            retry_after: Some(seconds.max(1)),
            ..self
        }
    }

    /// The response in `protocol`'s shape.
    pub fn into_response(self, protocol: Protocol) -> Response<GatewayBody> {
        let body = match protocol {
            Protocol::OpenAi => {
                let kind = match self.status.as_u16() {
                    401 => "authentication_error",
                    403 => "permission_error",
                    429 => "rate_limit_error",
                    s if s >= 500 => "server_error",
                    _ => "invalid_request_error",
                };
                json!({"error": {"message": self.message, "type": kind, "param": null, "code": self.code}})
            }
            Protocol::Oip => json!({"error": self.message}),
        };
        let mut r = json(self.status, &body);
        if let Some(s) = self.retry_after {
            r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(s));
        }
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                r.headers_mut().insert(HeaderName::from_static(name), v);
            }
        }
        r
    }
}
