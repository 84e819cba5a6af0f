//! Answers the gateway makes itself: errors in the shape each protocol's
//! clients parse (OpenAI's `{"error": {...}}`, the Open Inference Protocol's
//! `{"error": "..."}`), and small JSON documents.

use autoglm_core::error::GatewayCode;
use bytes::Bytes;
use http::StatusCode;
use serde_json::json;

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

/// An answer the gateway makes itself, whole.
#[derive(Debug, Clone)]
pub struct Local {
    /// HTTP status.
    pub status: StatusCode,
    /// Its media type.
    pub content_type: &'static str,
    /// Extra header fields, e.g. `retry-after`.
    pub headers: Vec<(&'static str, String)>,
    /// Header fields a filter's answer carries (its content type among
    /// them, when it names one).
    pub filtered: autoglm_filters::Headers,
    /// The body.
    pub body: Bytes,
}

/// A JSON answer.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Local {
    Local {
        status,
        content_type: "application/json",
        headers: Vec::new(),
        filtered: Vec::new(),
        body: Bytes::from(value.to_string()),
    }
}

/// A refusal or failure the gateway itself answers.
#[derive(Debug, Clone)]
pub struct Refused {
    /// A stable code from the gateway's table, with its status.
    pub code: GatewayCode,
    /// In words.
    pub message: String,
    /// Seconds, for `Retry-After`.
    pub retry_after: Option<u64>,
    /// Extra headers, e.g. `x-ratelimit-*`.
    pub headers: Vec<(&'static str, String)>,
}

impl Refused {
    /// A refusal without `Retry-After`.
    pub fn new(code: GatewayCode, message: impl Into<String>) -> Refused {
        Refused {
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

    /// The HTTP status of the code.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The answer in `protocol`'s shape.
    pub fn into_answer(self, protocol: Protocol) -> Local {
        let status = self.status();
        let body = match protocol {
            Protocol::OpenAi => {
                let kind = match status.as_u16() {
                    // OpenAI's own type for a spent quota.
                    _ if self.code == GatewayCode::InsufficientQuota => "insufficient_quota",
                    401 => "authentication_error",
                    403 => "permission_error",
                    429 => "rate_limit_error",
                    s if s >= 500 => "server_error",
                    _ => "invalid_request_error",
                };
                json!({"error": {"message": self.message, "type": kind, "param": null, "code": self.code.as_str()}})
            }
            Protocol::Oip => json!({"error": self.message}),
        };
        let mut answer = json(status, &body);
        if let Some(s) = self.retry_after {
            answer.headers.push(("retry-after", s.to_string()));
        }
        answer.headers.extend(self.headers);
        answer
    }
}
