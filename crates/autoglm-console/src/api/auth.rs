//! `auth.*`: login and whoami.

use autoglm_auth::{dummy_hash, verify_password};
use autoglm_core::audit::AuditEvent;
use autoglm_core::error::ErrorCode;
use autoglm_core::rbac::SYSTEM_TENANT;
use autoglm_core::security::{Identity, LoginRequest, LoginResponse};
use autoglm_store::timestamp;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;

use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::{AppState, request_id};

/// `POST /api/v1/auth/login`.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    password_login(&state, body, &request_id(&headers))
        .await
        .map(Json)
}

/// Checks a user's password and role in the tenant, audits the login and
/// issues a session token: the API's login and the web console's.
pub async fn password_login(
    state: &AppState,
    body: LoginRequest,
    request_id: &str,
) -> ApiResult<LoginResponse> {
    let tenant = body
        .tenant
        .clone()
        .unwrap_or_else(|| SYSTEM_TENANT.to_owned());
    let store = state.store.clone();
    let role = tokio::task::spawn_blocking(move || {
        let credential = store.user_credential(&body.username)?;
        let hash = credential
            .as_ref()
            .map_or(dummy_hash(), |c| c.password_hash.as_str());
        let password_ok = verify_password(&body.password, hash);
        let role = credential
            .filter(|_| password_ok)
            .and_then(|c| c.roles.into_iter().find(|m| m.tenant == tenant))
            .map(|m| m.role);
        Ok::<_, autoglm_store::StoreError>((body.username, tenant, role))
    })
    .await??;
    let (username, tenant, role) = role;
    let role = role.ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidCredentials,
            "wrong user name or password, or no role in that tenant",
        )
    })?;
    let now = chrono::Utc::now();
    let (token, expires_at) = state.sessions.issue(&username, &tenant, now)?;
    let event = AuditEvent {
        time: timestamp(now),
        actor: format!("user:{username}"),
        tenant: tenant.clone(),
        action: "auth.login".into(),
        target: format!("users/{username}"),
        request_id: request_id.to_owned(),
        outcome: "success".into(),
    };
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || store.audit_only(&event)).await??;
    Ok(LoginResponse {
        token,
        expires_at,
        tenant,
        role,
    })
}

/// `GET /api/v1/auth/whoami`.
pub async fn whoami(ctx: Ctx) -> Json<Identity> {
    Json(ctx.principal.identity())
}
