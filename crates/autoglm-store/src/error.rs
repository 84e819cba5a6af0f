//! Errors of the store: refusals the caller should pass on, and failures it should not.

use autoglm_core::error::{ErrorCode, FieldError, PolicyViolation};
use r2d2_sqlite::rusqlite;
use thiserror::Error;

/// Why a store operation did not happen.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The request was refused by a rule (not found, conflict, in use...); nothing changed.
    #[error("{1}")]
    Rejected(ErrorCode, String),
    /// Fields of the request refer to what does not exist (a model, a
    /// version); `invalid_body` listing each. Nothing changed.
    #[error("{}", join(.0))]
    Invalid(Vec<FieldError>),
    /// Policies refuse the write (`policy_violation`, listing each finding).
    /// Nothing changed.
    #[error("{}", join(.0))]
    Denied(Vec<PolicyViolation>),
    /// SQLite failed.
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
    /// No reader connection could be had.
    #[error("database pool error")]
    Pool(#[source] r2d2::Error),
    /// A writer panicked while holding the lock.
    #[error("database writer lock poisoned")]
    Poisoned,
    /// The WAL could not be synced to disk: nothing written since is acknowledged.
    #[error("database sync failed: {0}")]
    Sync(String),
    /// The database was written by a newer autoglm.
    #[error("database schema version {found} is newer than this autoglm knows ({known})")]
    TooNew { found: i64, known: i64 },
}

impl StoreError {
    /// A refusal with `code`.
    pub fn rejected(code: ErrorCode, detail: impl Into<String>) -> StoreError {
        StoreError::Rejected(code, detail.into())
    }

    /// Whether the thing asked for does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::Rejected(ErrorCode::NotFound, _))
    }
}

fn join(errors: &[impl ToString]) -> String {
    let parts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    parts.join("; ")
}
