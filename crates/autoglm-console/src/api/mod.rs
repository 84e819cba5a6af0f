//! Handlers of the console API, one module per resource.

pub mod alerts;
pub mod audit;
pub mod auth;
pub mod config;
pub mod evaluations;
pub mod filters;
pub mod keys;
pub mod models;
pub mod policies;
pub mod quota;
pub mod rollouts;
pub mod services;
pub mod tasks;
pub mod tenancy;
pub mod usage;
pub mod versions;

use autoglm_core::error::ErrorCode;
use autoglm_store::{Store, StoreError};

use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// Runs a read off the async runtime.
pub async fn read<T, F>(state: &AppState, f: F) -> ApiResult<T>
where
    T: Send + 'static,
    F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
{
    let store = state.store.clone();
    Ok(tokio::task::spawn_blocking(move || f(&store)).await??)
}

/// Checks a page size: 1 to 1000, 100 when absent.
pub fn page_limit(limit: Option<i64>) -> ApiResult<i64> {
    match limit {
        None => Ok(100),
        Some(n) if (1..=1000).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("limit must be 1 to 1000, got {n}"),
        )),
    }
}

/// Turns `limit + 1` fetched items into a page: the extra item, when there
/// is one, only says that another page follows, named by the last item kept.
pub fn page<T>(
    mut items: Vec<T>,
    limit: i64,
    token_of: impl Fn(&T) -> String,
) -> autoglm_core::registry::Page<T> {
    let next_page_token = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(token_of)
    } else {
        None
    };
    autoglm_core::registry::Page {
        items,
        next_page_token,
    }
}

/// Maps a name rule's refusal to `invalid_name`.
pub fn check_name(kind: &'static str, name: &str) -> ApiResult<()> {
    autoglm_core::names::validate(kind, name)
        .map_err(|e| ApiError::new(ErrorCode::InvalidName, e.to_string()))
}

/// Maps another validation refusal to `invalid_body`; generic so that the
/// core's typed refusals and ad-hoc messages map alike.
pub fn invalid_body(detail: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::InvalidBody, detail.to_string())
}

/// Parses a label selector, `key=value[,key=value...]`; a bad one is `invalid_query`.
pub fn parse_selector(selector: &str) -> ApiResult<Vec<(String, String)>> {
    selector
        .split(',')
        .map(|pair| {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidQuery,
                    format!("label selector {pair:?} must be key=value"),
                )
            })?;
            let labels = [(k.to_owned(), v.to_owned())].into();
            autoglm_core::registry::validate_labels(&labels)
                .map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.to_string()))?;
            Ok((k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// Parses an RFC 3339 query parameter.
pub fn check_time(
    field: &str,
    value: &Option<String>,
) -> ApiResult<Option<chrono::DateTime<chrono::Utc>>> {
    value
        .as_deref()
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|e| {
                    ApiError::new(
                        ErrorCode::InvalidQuery,
                        format!("{field} must be an RFC 3339 time: {e}"),
                    )
                })
        })
        .transpose()
}
