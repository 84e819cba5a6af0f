//! `usage.*` and tenant limits: what the gateway counted, and what it allows.

use autoglm_core::error::ErrorCode;
use autoglm_core::security::{RateLimit, UsageRecord};
use autoglm_store::{UsageFilter, tenancy};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::{check_time, read};
use crate::AppState;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};

/// Query of `GET /api/v1/usage`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListUsage {
    key: Option<String>,
    service: Option<String>,
    since: Option<String>,
}

/// `GET /api/v1/usage`: per key, service, version and minute, oldest first.
pub async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<ListUsage>,
) -> ApiResult<Json<Vec<UsageRecord>>> {
    let filter = UsageFilter {
        tenant: ctx.tenant().to_owned(),
        credential: q.key,
        service: q.service,
        since: check_time("since", &q.since)?,
    };
    Ok(Json(read(&state, move |s| s.list_usage(&filter)).await?))
}

/// `GET /api/v1/tenants/{name}/rate-limit`.
pub async fn get_tenant_limit(
    State(state): State<AppState>,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<Json<RateLimit>> {
    let limit = read(&state, move |s| s.tenant_rate_limit(&tenant)).await?;
    Ok(Json(limit.unwrap_or_default()))
}

/// `PUT /api/v1/tenants/{name}/rate-limit`: `{}` lifts every limit.
pub async fn set_tenant_limit(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(body): ApiJson<RateLimit>,
) -> ApiResult<Response> {
    body.validate()
        .map_err(|m| ApiError::new(ErrorCode::InvalidBody, m))?;
    let target = format!("tenants/{tenant}/rate-limit");
    ctx.write(&state, StatusCode::OK, target, move |tx, _| {
        let stored = (body != RateLimit::default()).then_some(&body);
        tenancy::set_tenant_rate_limit(tx, &tenant, stored)?;
        Ok(body)
    })
    .await
}
