//! `usage.*` and tenant limits: what the gateway counted, and what it allows.

use autoglm_core::error::ErrorCode;
use autoglm_core::security::{RateLimit, UsageRecord};
use autoglm_core::service::parse_duration;
use autoglm_store::{UsageFilter, tenancy};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::{check_time, invalid_body, read};
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
    step: Option<String>,
}

/// Longest step a usage read sums over: a day.
const MAX_STEP_SECONDS: u64 = 86_400;

/// The `step` query: a duration of whole minutes, one to a day.
fn check_step(step: &Option<String>) -> ApiResult<Option<u32>> {
    let Some(step) = step else { return Ok(None) };
    let refused = |why: String| ApiError::new(ErrorCode::InvalidQuery, format!("step: {why}"));
    let seconds = parse_duration(step)
        .map_err(|e| refused(e.to_string()))?
        .as_secs();
    if seconds == 0 || seconds % 60 != 0 || seconds > MAX_STEP_SECONDS {
        return Err(refused(format!(
            "{step:?} is not a whole number of minutes from 1m to 24h"
        )));
    }
    Ok(Some(seconds as u32))
}

/// `GET /api/v1/usage`: per key, service, version and minute (or `step`),
/// oldest first.
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
        step_seconds: check_step(&q.step)?,
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
    body.validate().map_err(invalid_body)?;
    let target = format!("tenants/{tenant}/rate-limit");
    ctx.write(&state, StatusCode::OK, target, move |tx, _| {
        let stored = (body != RateLimit::default()).then_some(&body);
        tenancy::set_tenant_rate_limit(tx, &tenant, stored)?;
        Ok(body)
    })
    .await
}
