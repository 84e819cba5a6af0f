//! What the guard layer learned about a request, and the one way handlers write.

use std::sync::Arc;

use autoglm_auth::Principal;
use autoglm_core::audit::AuditEvent;
use autoglm_core::error::ErrorCode;
use autoglm_store::{IdempotencyKey, Mutation, StoreError, StoredResponse, Transaction, timestamp};
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::routes::RouteSpec;

/// The authenticated caller of a guarded route, with what it sent for replay protection.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Who calls.
    pub principal: Principal,
    /// The route being served.
    pub spec: Arc<RouteSpec>,
    /// The request id.
    pub request_id: String,
    pub(crate) idempotency: Option<IdempotencyKey>,
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Ctx>()
            .cloned()
            .ok_or_else(|| ApiError::new(ErrorCode::Internal, "route has no authenticated context"))
    }
}

impl Ctx {
    /// The tenant the request acts in.
    pub fn tenant(&self) -> &str {
        &self.principal.grant.tenant
    }

    /// The audit record of this request, before its outcome is known.
    pub fn audit_event(&self, target: String) -> AuditEvent {
        AuditEvent {
            time: timestamp(chrono::Utc::now()),
            actor: self.principal.actor.clone(),
            tenant: self.tenant().to_owned(),
            action: self.spec.action.to_owned(),
            target,
            request_id: self.request_id.clone(),
            outcome: String::new(),
        }
    }

    /// Applies a change in one transaction with its audit record (and its
    /// idempotency record and nonce), off the async runtime, and answers
    /// `status` with the result as JSON.
    pub async fn write<T, F>(
        &self,
        state: &AppState,
        status: StatusCode,
        target: String,
        change: F,
    ) -> ApiResult<Response>
    where
        T: Serialize + Send + 'static,
        F: FnOnce(&Transaction<'_>, &mut AuditEvent) -> Result<T, StoreError> + Send + 'static,
    {
        let (_, body) = self.apply(state, status, target, change).await?;
        Ok(json_response(status, body))
    }

    /// Like [`Ctx::write`], but hands back the committed value with the
    /// serialised answer, for handlers with work to do after the commit.
    pub async fn apply<T, F>(
        &self,
        state: &AppState,
        status: StatusCode,
        target: String,
        change: F,
    ) -> ApiResult<(T, Vec<u8>)>
    where
        T: Serialize + Send + 'static,
        F: FnOnce(&Transaction<'_>, &mut AuditEvent) -> Result<T, StoreError> + Send + 'static,
    {
        let (value, _, body) = self
            .apply_with(state, move |_| status, target, change)
            .await?;
        Ok((value, body))
    }

    /// Like [`Ctx::apply`], with the answer's status chosen from the
    /// committed value (202 when it started a task, 200 when nothing
    /// changed), and recorded so for replay.
    pub async fn apply_with<T, F>(
        &self,
        state: &AppState,
        status_of: impl Fn(&T) -> StatusCode + Send + Copy + 'static,
        target: String,
        change: F,
    ) -> ApiResult<(T, StatusCode, Vec<u8>)>
    where
        T: Serialize + Send + 'static,
        F: FnOnce(&Transaction<'_>, &mut AuditEvent) -> Result<T, StoreError> + Send + 'static,
    {
        self.commit(state, status_of, target, change, None::<fn(&T)>)
            .await
    }

    /// Like [`Ctx::apply_with`], and runs `committed` right after the commit,
    /// before the next write can commit: for what must follow commit order
    /// (the config center's notifications). Such a write ends the transaction
    /// it joins and waits for its sync holding the writer.
    pub async fn apply_then<T, F>(
        &self,
        state: &AppState,
        status_of: impl Fn(&T) -> StatusCode + Send + Copy + 'static,
        target: String,
        change: F,
        committed: impl FnOnce(&T) + Send + 'static,
    ) -> ApiResult<(T, StatusCode, Vec<u8>)>
    where
        T: Serialize + Send + 'static,
        F: FnOnce(&Transaction<'_>, &mut AuditEvent) -> Result<T, StoreError> + Send + 'static,
    {
        self.commit(state, status_of, target, change, Some(committed))
            .await
    }

    /// The write of every `apply`: [`autoglm_store::Store::write`], whose sync concurrent
    /// writes share, unless there is a `committed` to run in commit order.
    async fn commit<T, F, C>(
        &self,
        state: &AppState,
        status_of: impl Fn(&T) -> StatusCode + Send + Copy + 'static,
        target: String,
        change: F,
        committed: Option<C>,
    ) -> ApiResult<(T, StatusCode, Vec<u8>)>
    where
        T: Serialize + Send + 'static,
        F: FnOnce(&Transaction<'_>, &mut AuditEvent) -> Result<T, StoreError> + Send + 'static,
        C: FnOnce(&T) + Send + 'static,
    {
        let mutation = Mutation {
            audit: self.audit_event(target),
            idempotency: self.idempotency.clone(),
        };
        let store = state.store.clone();
        let result = tokio::task::spawn_blocking(move || {
            let respond = |value: &T| StoredResponse {
                status: status_of(value).as_u16(),
                body: serde_json::to_vec(value).unwrap_or_default(),
            };
            let value = match committed {
                Some(committed) => store.write_then(mutation, change, respond, committed)?,
                None => store.write(mutation, change, respond)?,
            };
            let body = serde_json::to_vec(&value).unwrap_or_default();
            let status = status_of(&value);
            Ok::<_, StoreError>((value, status, body))
        })
        .await??;
        Ok(result)
    }
}

/// A JSON answer from already-serialised bytes (fresh or replayed). Every
/// 202 of this API answers a task: its `Location` is the task's address,
/// made here so that a replayed answer carries it too.
pub fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    if status == StatusCode::NO_CONTENT {
        return status.into_response();
    }
    if status == StatusCode::ACCEPTED
        && let Some(id) = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|task| task["id"].as_i64())
    {
        return (
            status,
            [
                (
                    axum::http::header::CONTENT_TYPE,
                    "application/json".to_owned(),
                ),
                (axum::http::header::LOCATION, format!("/api/v1/tasks/{id}")),
            ],
            body,
        )
            .into_response();
    }
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}
