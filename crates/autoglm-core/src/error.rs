//! The one table of stable error codes and the RFC 9457 problem document.
//!
//! Clients match on `code`, never on `title` or `detail`. A code, once
//! published, keeps its meaning and status; `docs/errors.md` is checked
//! against this table by a test.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A table of stable codes: an enum with each code's status, snake_case
/// name and title. The console's and the gateway's tables share it.
macro_rules! error_codes {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = ($status:literal, $code:literal, $title:literal);)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant,)* }

        impl $name {
            /// All codes, in table order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The HTTP status the code is sent with.
            pub fn status(self) -> u16 {
                match self { $($name::$variant => $status,)* }
            }

            /// The stable, snake_case code.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $code,)* }
            }

            /// A short summary that does not change from one occurrence to the next.
            pub fn title(self) -> &'static str {
                match self { $($name::$variant => $title,)* }
            }
        }
    };
}

error_codes! {
    /// Every error the console API can return.
    ErrorCode {
        MalformedBody = (400, "malformed_body", "The request body is not well-formed JSON");
        InvalidQuery = (400, "invalid_query", "A query parameter is invalid");
        InvalidPath = (400, "invalid_path", "A path parameter is invalid");
        InvalidHeader = (400, "invalid_header", "A request header is invalid");
        Unauthenticated = (401, "unauthenticated", "Credentials are missing");
        InvalidCredentials = (401, "invalid_credentials", "The credentials are not valid");
        TokenExpired = (401, "token_expired", "The credentials have expired");
        Forbidden = (403, "forbidden", "The credentials do not allow this action");
        RouteNotFound = (404, "route_not_found", "No such endpoint");
        NotFound = (404, "not_found", "The resource does not exist");
        MethodNotAllowed = (405, "method_not_allowed", "The endpoint does not accept this method");
        AlreadyExists = (409, "already_exists", "The resource already exists");
        InUse = (409, "in_use", "The resource is in use");
        GenerationMismatch = (409, "generation_mismatch", "The resource changed since the generation the request names");
        InvalidTransition = (409, "invalid_transition", "The state change is not allowed");
        IdempotencyInProgress = (409, "idempotency_in_progress", "A request with this idempotency key is still being processed");
        StaleCommand = (409, "stale_command", "The command's timestamp is outside the accepted window");
        NonceReused = (409, "nonce_reused", "The command's nonce was already used");
        PayloadTooLarge = (413, "payload_too_large", "The request body is too large");
        UnsupportedMediaType = (415, "unsupported_media_type", "The request body has an unsupported content type");
        InvalidBody = (422, "invalid_body", "The request body does not match the schema");
        InvalidName = (422, "invalid_name", "A name is not valid");
        InvalidArtifact = (422, "invalid_artifact", "The artifact failed its format check");
        IdempotencyKeyReused = (422, "idempotency_key_reused", "The idempotency key was used with a different request");
        PolicyViolation = (422, "policy_violation", "Policies refuse the resource");
        Internal = (500, "internal", "Internal error");
        Unavailable = (503, "unavailable", "The service is not ready");
    }
}

error_codes! {
    /// Every error the gateway answers with itself, in the OpenAI error shape
    /// (`{"error": {"code", "message", "type"}}`, or `{"error": "..."}` on the
    /// Open Inference Protocol's paths).
    GatewayCode {
        BadRequest = (400, "bad_request", "The request is not valid HTTP");
        InvalidHeader = (400, "invalid_header", "A request header is invalid");
        InvalidJson = (400, "invalid_json", "The body is not a valid request");
        MissingModel = (400, "missing_model", "The body names no model");
        ConflictingVersion = (400, "conflicting_version", "The model and the version header name different versions");
        BodyUnreadable = (400, "body_unreadable", "The body could not be read");
        MissingApiKey = (401, "missing_api_key", "No API key was sent");
        InvalidApiKey = (401, "invalid_api_key", "The API key is not valid");
        PermissionDenied = (403, "permission_denied", "The credential may not invoke services");
        NotFound = (404, "not_found", "No such route");
        ModelNotFound = (404, "model_not_found", "The model is not served in the caller's tenant");
        VersionNotFound = (404, "version_not_found", "The pinned version is not served");
        MethodNotAllowed = (405, "method_not_allowed", "The route does not take this method");
        BodyTimeout = (408, "body_timeout", "The body did not arrive in time");
        HeaderTimeout = (408, "header_timeout", "The request head did not arrive in time");
        BodyTooLarge = (413, "body_too_large", "The body is larger than the gateway's limit");
        RateLimitExceeded = (429, "rate_limit_exceeded", "A rate limit is reached");
        InsufficientQuota = (429, "insufficient_quota", "The tenant's token quota for the day or month is spent");
        HeaderTooLarge = (431, "header_too_large", "The request head is too large");
        Internal = (500, "internal", "Internal error");
        NoReplica = (502, "no_replica", "No replica of the version could take the request");
        UpstreamError = (502, "upstream_error", "The replica failed");
        NoTraffic = (503, "no_traffic", "No version of the model takes traffic");
        TooManyWaiting = (503, "too_many_waiting", "Too many requests already wait for a replica");
        NoReplicaReady = (503, "no_replica_ready", "No replica became ready in time");
        FilterFailed = (503, "filter_failed", "A gateway filter that fails closed failed, or is attached but not uploaded");
        UpstreamTimeout = (504, "upstream_timeout", "The replica did not answer in time");
    }
}

/// Base of the `type` URI of every problem; the code is appended.
pub const PROBLEM_TYPE_BASE: &str = "https://autoglm.io/problems/";

/// An RFC 9457 problem document, as every error response carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Problem {
    /// A URI naming the problem type: [`PROBLEM_TYPE_BASE`] followed by `code`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short summary of the problem type.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// What went wrong in this occurrence, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The request path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The stable error code.
    pub code: String,
    /// The request id, to find the request in the logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Each field of the request body that was refused, when there are any
    /// (an extension member: `detail` lists the same in words).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// What each refusing policy found, for `policy_violation` (an
    /// extension member: `detail` lists the same in words).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<PolicyViolation>,
}

/// One finding of a policy that refused a write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PolicyViolation {
    /// The policy's name.
    pub policy: String,
    /// The rule that found it: `deny`, `violation`, or `error` when the
    /// policy could not be evaluated.
    pub rule: String,
    /// What it found.
    pub message: String,
}

impl std::fmt::Display for PolicyViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "policy {} ({}): {}",
            self.policy, self.rule, self.message
        )
    }
}

/// One problem with one field of a request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FieldError {
    /// Where, e.g. `spec.versions[1].weight`.
    pub path: String,
    /// What is wrong, in words.
    pub message: String,
}

impl FieldError {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for FieldError {}

impl Problem {
    /// A problem of `code` with a detail message.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Problem {
        Problem {
            type_uri: format!("{PROBLEM_TYPE_BASE}{}", code.as_str()),
            title: code.title().to_owned(),
            status: code.status(),
            detail: Some(detail.into()),
            instance: None,
            code: code.as_str().to_owned(),
            request_id: None,
            errors: Vec::new(),
            violations: Vec::new(),
        }
    }

    /// The `policy_violation` problem listing every finding, in `detail` and
    /// in `violations`.
    pub fn policy_violations(violations: Vec<PolicyViolation>) -> Problem {
        let detail: Vec<String> = violations.iter().map(ToString::to_string).collect();
        Problem {
            violations,
            ..Problem::new(ErrorCode::PolicyViolation, detail.join("; "))
        }
    }

    /// The `invalid_body` problem listing every field error, in `detail` and in `errors`.
    pub fn invalid_fields(errors: Vec<FieldError>) -> Problem {
        let detail: Vec<String> = errors.iter().map(ToString::to_string).collect();
        Problem {
            errors,
            ..Problem::new(ErrorCode::InvalidBody, detail.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_snake_case_and_errors() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "duplicate {}", code.as_str());
            assert!(
                code.as_str()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_')
            );
            assert!((400..600).contains(&code.status()));
        }
    }

    #[test]
    fn problem_carries_code_and_type() {
        let p = Problem::new(ErrorCode::InvalidName, "bad");
        assert_eq!(p.status, 422);
        assert_eq!(p.type_uri, "https://autoglm.io/problems/invalid_name");
        let json = serde_json::to_value(&p).ok();
        assert_eq!(
            json.as_ref().and_then(|j| j["code"].as_str()),
            Some("invalid_name")
        );
    }
}
