//! Why a credential was refused, or could not be checked: a stable code and
//! words for the caller, which the console and the gateway each answer in
//! their own protocol.

use autoglm_core::error::ErrorCode;
use autoglm_store::StoreError;
use thiserror::Error;

/// A refused or unchecked credential.
#[derive(Debug, Clone, Error)]
#[error("{detail}")]
pub struct AuthError {
    /// The stable code.
    pub code: ErrorCode,
    /// What went wrong, for the caller.
    pub detail: String,
}

impl AuthError {
    /// A refusal with `code` and a detail for the caller.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> AuthError {
        AuthError {
            code,
            detail: detail.into(),
        }
    }

    /// A server-side failure: logged in full, reported as `internal` in the
    /// same words as the console's own internal errors.
    pub fn internal(context: &str, error: &dyn std::error::Error) -> AuthError {
        let mut chain = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            chain.push_str(": ");
            chain.push_str(&cause.to_string());
            source = cause.source();
        }
        tracing::error!(context, error = %chain, "internal error");
        AuthError::new(
            ErrorCode::Internal,
            "the console failed to handle the request; see its log",
        )
    }
}

impl From<StoreError> for AuthError {
    fn from(error: StoreError) -> AuthError {
        match error {
            StoreError::Rejected(code, detail) => AuthError::new(code, detail),
            // The lookups of credentials name no fields, so none can be refused.
            other => AuthError::internal("store", &other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_refusals_pass_through_and_failures_become_internal() {
        let refused = AuthError::from(StoreError::rejected(ErrorCode::NotFound, "no tenant x"));
        assert_eq!(refused.code, ErrorCode::NotFound);
        assert_eq!(refused.detail, "no tenant x");

        let failed = AuthError::from(StoreError::Poisoned);
        assert_eq!(failed.code, ErrorCode::Internal);
        assert_eq!(
            failed.detail,
            "the console failed to handle the request; see its log"
        );
    }
}
