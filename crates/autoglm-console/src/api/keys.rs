//! `keys.*`: API keys, shown once, stored hashed.

use autoglm_auth::new_api_key;
use autoglm_core::error::ErrorCode;
use autoglm_core::rbac::Permission;
use autoglm_core::security::{ApiKey, CreateApiKey, CreatedApiKey};
use autoglm_store::tenancy;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::{invalid_body, read};
use crate::AppState;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};

/// Longest lifetime a key may be given: ten years.
const MAX_LIFETIME_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// Query of `GET /api/v1/keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListKeys {
    all: Option<bool>,
}

/// `GET /api/v1/keys`.
pub async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<ListKeys>,
) -> ApiResult<Json<Vec<ApiKey>>> {
    let owner = if q.all.unwrap_or(false) {
        ctx.principal.require(Permission::UsersWrite)?;
        None
    } else {
        Some(ctx.principal.username.clone())
    };
    let tenant = ctx.tenant().to_owned();
    Ok(Json(
        read(&state, move |s| s.list_keys(&tenant, owner.as_deref())).await?,
    ))
}

/// `POST /api/v1/keys`: the new key never holds more than the credential that made it.
pub async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<CreateApiKey>,
) -> ApiResult<Response> {
    if let Some(name) = &body.name
        && (name.is_empty() || name.chars().count() > 63 || name.chars().any(char::is_control))
    {
        return Err(ApiError::new(
            ErrorCode::InvalidBody,
            "name must be 1 to 63 printable characters",
        ));
    }
    let scopes = match body.scopes {
        Some(scopes) => {
            if let Some(p) = scopes.iter().find(|p| !ctx.principal.grant.allows(**p)) {
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    format!("scope {} exceeds what your credential allows", p.as_str()),
                ));
            }
            Some(scopes)
        }
        None => ctx.principal.grant.scopes.clone(),
    };
    let expires_at = match body.expires_in_seconds {
        None => None,
        Some(s) if (60..=MAX_LIFETIME_SECONDS).contains(&s) => {
            Some(chrono::Utc::now() + chrono::Duration::seconds(s as i64))
        }
        Some(s) => {
            return Err(ApiError::new(
                ErrorCode::InvalidBody,
                format!("expires_in_seconds must be 60 to {MAX_LIFETIME_SECONDS}, got {s}"),
            ));
        }
    };
    if let Some(limit) = &body.rate_limit {
        limit.validate().map_err(invalid_body)?;
    }
    let (secret, mut row) = new_api_key(
        &ctx.principal.username,
        ctx.tenant(),
        body.name,
        scopes,
        expires_at,
    );
    row.rate_limit = body.rate_limit;
    let target = format!("keys/{}", row.id);
    ctx.write(&state, StatusCode::CREATED, target, move |tx, _| {
        Ok(CreatedApiKey {
            key: tenancy::insert_key(tx, &row)?,
            secret,
        })
    })
    .await
}

/// `DELETE /api/v1/keys/{id}`: one's own key, or any key of the tenant for admins.
pub async fn revoke(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let owner = (!ctx.principal.grant.allows(Permission::UsersWrite))
        .then(|| ctx.principal.username.clone());
    let tenant = ctx.tenant().to_owned();
    let target = format!("keys/{id}");
    ctx.write(&state, StatusCode::OK, target, move |tx, _| {
        tenancy::revoke_key(tx, &tenant, owner.as_deref(), &id)
    })
    .await
}
