//! `quota.*`: what each tenant may hold and spend, and what it holds and
//! has spent now. System admins set quotas (a tenant's admin may not raise
//! its own); every member of a tenant sees its own with its use.

use autoglm_core::quota::{Quota, QuotaUse, TenantQuota};
use autoglm_store::tenancy;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::read;
use crate::AppState;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};

/// A tenant's quota with its use: the platform's replicas and the tokens
/// the gateway has flushed for today and this month.
async fn with_use(state: &AppState, tenant: String) -> ApiResult<TenantQuota> {
    let held = state.platform.held(&tenant);
    let name = tenant.clone();
    let (quota, tokens) = read(state, move |s| {
        Ok((
            s.tenant_quota(&name)?,
            s.tokens_spent(&name, chrono::Utc::now())?,
        ))
    })
    .await?;
    Ok(TenantQuota {
        tenant,
        quota,
        used: QuotaUse::new(held, tokens),
    })
}

/// `GET /api/v1/quota`: the caller's tenant's.
pub async fn get_own(State(state): State<AppState>, ctx: Ctx) -> ApiResult<Json<TenantQuota>> {
    Ok(Json(with_use(&state, ctx.tenant().to_owned()).await?))
}

/// `GET /api/v1/tenants/{name}/quota`.
pub async fn get_tenant(
    State(state): State<AppState>,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<Json<TenantQuota>> {
    Ok(Json(with_use(&state, tenant).await?))
}

/// `PUT /api/v1/tenants/{name}/quota`: `{}` lifts every limit. Lowering a
/// quota stops nothing that runs; it refuses replicas from then on.
pub async fn set_tenant(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(body): ApiJson<Quota>,
) -> ApiResult<Response> {
    body.limits().map_err(ApiError::fields)?;
    let target = format!("tenants/{tenant}/quota");
    ctx.write(&state, StatusCode::OK, target, move |tx, _| {
        let stored = (body != Quota::default()).then_some(&body);
        tenancy::set_tenant_quota(tx, &tenant, stored)?;
        Ok(body)
    })
    .await
}
