//! `audit.*`: reading and verifying the audit log.

use autoglm_core::audit::{AuditRecord, ChainVerification};
use autoglm_core::error::ErrorCode;
use autoglm_core::registry::Page;
use autoglm_store::AuditFilter;
use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::{check_time, page, page_limit, read};
use crate::AppState;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;

/// Query of `GET /api/v1/audit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListAudit {
    limit: Option<i64>,
    page_token: Option<i64>,
    tenant: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    outcome: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

/// `GET /api/v1/audit`: the caller's tenant; system admins may name any tenant or none.
pub async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<ListAudit>,
) -> ApiResult<Json<Page<AuditRecord>>> {
    let limit = page_limit(q.limit)?;
    let tenant = if ctx.principal.grant.is_system_admin() {
        q.tenant
    } else {
        match q.tenant {
            Some(t) if t != ctx.tenant() => {
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    "only system admins may read other tenants' records",
                ));
            }
            _ => Some(ctx.tenant().to_owned()),
        }
    };
    let filter = AuditFilter {
        tenant,
        actor: q.actor,
        action: q.action,
        target_prefix: q.target,
        outcome: q.outcome,
        since: check_time("since", &q.since)?.map(autoglm_store::timestamp),
        until: check_time("until", &q.until)?.map(autoglm_store::timestamp),
        before_seq: q.page_token,
        limit: limit + 1,
    };
    let items = read(&state, move |s| s.audit_list(&filter)).await?;
    Ok(Json(page(items, limit, |r| r.seq.to_string())))
}

/// `GET /api/v1/audit/verify`.
pub async fn verify(State(state): State<AppState>) -> ApiResult<Json<ChainVerification>> {
    Ok(Json(read(&state, |s| s.audit_verify()).await?))
}
