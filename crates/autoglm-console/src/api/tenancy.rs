//! `tenants.*` and `users.*`.

use autoglm_auth::hash_password;
use autoglm_core::error::ErrorCode;
use autoglm_core::security::{CreateTenant, CreateUser, SetRole, Tenant, User};
use autoglm_store::tenancy;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::{check_name, read};
use crate::AppState;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};

/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 12;

/// `GET /api/v1/tenants`.
pub async fn list_tenants(State(state): State<AppState>) -> ApiResult<Json<Vec<Tenant>>> {
    Ok(Json(read(&state, |s| s.list_tenants()).await?))
}

/// `POST /api/v1/tenants`.
pub async fn create_tenant(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<CreateTenant>,
) -> ApiResult<Response> {
    check_name("tenant", &body.name)?;
    let target = format!("tenants/{}", body.name);
    ctx.write(&state, StatusCode::CREATED, target, move |tx, _| {
        tenancy::create_tenant(tx, &body.name)
    })
    .await
}

/// `GET /api/v1/users`.
pub async fn list_users(State(state): State<AppState>, ctx: Ctx) -> ApiResult<Json<Vec<User>>> {
    let tenant = ctx.tenant().to_owned();
    Ok(Json(read(&state, move |s| s.list_users(&tenant)).await?))
}

/// `POST /api/v1/users`.
pub async fn create_user(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<CreateUser>,
) -> ApiResult<Response> {
    check_name("user", &body.username)?;
    if body.password.chars().count() < MIN_PASSWORD {
        return Err(ApiError::new(
            ErrorCode::InvalidBody,
            format!("password must be at least {MIN_PASSWORD} characters"),
        ));
    }
    let hash = tokio::task::spawn_blocking(move || hash_password(&body.password)).await??;
    let tenant = ctx.tenant().to_owned();
    let target = format!("users/{}", body.username);
    ctx.write(&state, StatusCode::CREATED, target, move |tx, _| {
        tenancy::create_user(tx, &body.username, &hash, &tenant, body.role)
    })
    .await
}

/// `PUT /api/v1/users/{username}/role`: in the caller's tenant, or (system
/// admins) in the tenant the body names.
pub async fn set_role(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(username): ApiPath<String>,
    ApiJson(body): ApiJson<SetRole>,
) -> ApiResult<Response> {
    if username == ctx.principal.username {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "you cannot change your own role; ask another admin",
        ));
    }
    let tenant = match body.tenant {
        Some(other) if other != ctx.tenant() => {
            if !ctx.principal.grant.is_system_admin() {
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    "only admins of the system tenant may set roles in another tenant",
                ));
            }
            other
        }
        _ => ctx.tenant().to_owned(),
    };
    let target = format!("tenants/{tenant}/users/{username}");
    ctx.write(&state, StatusCode::OK, target, move |tx, _| {
        tenancy::set_role(tx, &username, &tenant, body.role)
    })
    .await
}
