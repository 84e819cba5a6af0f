//! Changes of many keys at once, each all or nothing: snapshots and their
//! restore, promotions between environments (shown as a plan first), and
//! change requests that freeze a plan for a second user to approve.

use autoglm_core::config::{
    ChangeAction, ChangeRequest, ConfigFormat, ConfigVersion, CreateSnapshot, Decide,
    PlannedChange, Promote, PromotionPlan, RequestChange, Snapshot, check_publish, plan_promotion,
    unified_diff,
};
use autoglm_core::error::{ErrorCode, FieldError};
use autoglm_core::registry::Page;
use autoglm_store::config as stored;
use autoglm_store::{StoreError, Transaction};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{commit, may_write_protected, writable};
use crate::AppState;
use crate::api::{check_name, read};
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};

/// A plan that was applied, with the versions it made.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// What changed, key by key.
    #[serde(flatten)]
    pub plan: PromotionPlan,
    /// The new versions, in the order of the plan.
    pub versions: Vec<ConfigVersion>,
}

fn applied_versions(a: &Applied) -> Vec<&ConfigVersion> {
    a.versions.iter().collect()
}

/// Re-checks each change's content against its format before it lands: a
/// key stored before a rule existed must not slip into another environment.
fn check_changes(changes: &[PlannedChange]) -> Result<(), StoreError> {
    let errors: Vec<FieldError> = changes
        .iter()
        .enumerate()
        .filter(|(_, c)| c.action != ChangeAction::Delete)
        .filter_map(|(i, c)| {
            check_publish(&c.group, &c.key, c.format, &c.content)
                .err()
                .map(|errors| {
                    FieldError::new(
                        format!("changes[{i}]"),
                        format!(
                            "{}/{}: {}",
                            c.group,
                            c.key,
                            errors
                                .iter()
                                .map(|e| e.message.clone())
                                .collect::<Vec<_>>()
                                .join("; ")
                        ),
                    )
                })
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Invalid(errors))
    }
}

/// Plans a promotion from the environments as they are in `conn`.
fn plan(
    conn: &autoglm_store::Connection,
    tenant: &str,
    body: &Promote,
) -> Result<PromotionPlan, StoreError> {
    if body.from == body.to {
        return Err(StoreError::Invalid(vec![FieldError::new(
            "to",
            "a promotion needs two different environments",
        )]));
    }
    let source = stored::live_keys(conn, tenant, &body.from, None)?;
    let target = stored::live_keys(conn, tenant, &body.to, None)?;
    let (changes, unchanged) = plan_promotion(
        &body.from, &body.to, &source, &target, &body.keys, body.prune,
    )
    .map_err(StoreError::Invalid)?;
    Ok(PromotionPlan {
        from: body.from.clone(),
        to: body.to.clone(),
        changes,
        unchanged,
    })
}

/// `POST /api/v1/config/promotions/preview`: what a promotion would change,
/// with each key's diff; writes nothing.
pub async fn preview(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<Promote>,
) -> ApiResult<Json<PromotionPlan>> {
    let tenant = ctx.tenant().to_owned();
    Ok(Json(
        read(&state, move |s| s.read(|c| plan(c, &tenant, &body))).await?,
    ))
}

fn apply_plan(
    tx: &Transaction<'_>,
    tenant: &str,
    plan: PromotionPlan,
    author: &str,
    message: &str,
) -> Result<Applied, StoreError> {
    check_changes(&plan.changes)?;
    let versions = stored::apply_changes(tx, tenant, &plan.to, &plan.changes, author, message)?;
    Ok(Applied { plan, versions })
}

/// `POST /api/v1/config/promotions`: make `to` hold what `from` holds, as one
/// change (all keys or none).
pub async fn promote(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<Promote>,
) -> ApiResult<Response> {
    let tenant = ctx.tenant().to_owned();
    let author = ctx.principal.actor.clone();
    let protected_ok = may_write_protected(&ctx);
    let message = if body.message.is_empty() {
        format!("promoted from {}", body.from)
    } else {
        body.message.clone()
    };
    let (_, response) = commit(
        &state,
        &ctx,
        format!("config/{}", body.to),
        |_| StatusCode::OK,
        applied_versions,
        move |tx| {
            writable(tx, &tenant, &body.to, protected_ok)?;
            let plan = plan(tx, &tenant, &body)?;
            apply_plan(tx, &tenant, plan, &author, &message)
        },
    )
    .await?;
    Ok(response)
}

/// `GET /api/v1/config/environments/{env}/snapshots`.
pub async fn snapshots(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(env): ApiPath<String>,
) -> ApiResult<Json<Page<Snapshot>>> {
    let tenant = ctx.tenant().to_owned();
    let all = read(&state, move |s| {
        s.read(|c| stored::snapshots(c, &tenant, &env))
    })
    .await?;
    Ok(Json(Page::whole(all)))
}

/// The path of one snapshot.
#[derive(Debug, Deserialize)]
pub struct SnapshotAt {
    /// The environment.
    pub env: String,
    /// The snapshot.
    pub name: String,
}

/// `GET /api/v1/config/environments/{env}/snapshots/{name}`.
pub async fn snapshot(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(at): ApiPath<SnapshotAt>,
) -> ApiResult<Json<Snapshot>> {
    let tenant = ctx.tenant().to_owned();
    Ok(Json(
        read(&state, move |s| {
            s.read(|c| stored::snapshot(c, &tenant, &at.env, &at.name))
        })
        .await?,
    ))
}

/// `POST /api/v1/config/environments/{env}/snapshots`.
pub async fn create_snapshot(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(env): ApiPath<String>,
    ApiJson(body): ApiJson<CreateSnapshot>,
) -> ApiResult<Response> {
    check_name("snapshot", &body.name)?;
    let tenant = ctx.tenant().to_owned();
    let actor = ctx.principal.actor.clone();
    ctx.write(
        &state,
        StatusCode::CREATED,
        format!("config/{env}/snapshots/{}", body.name),
        move |tx, _| {
            stored::create_snapshot(tx, &tenant, &env, &body.name, &body.description, &actor)
        },
    )
    .await
}

/// `POST .../snapshots/{name}/restore`: the environment holds exactly the
/// snapshot's keys again (new versions with their bytes; keys made since are deleted).
pub async fn restore(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(at): ApiPath<SnapshotAt>,
) -> ApiResult<Response> {
    let tenant = ctx.tenant().to_owned();
    let author = ctx.principal.actor.clone();
    let protected_ok = may_write_protected(&ctx);
    let (_, response) = commit(
        &state,
        &ctx,
        format!("config/{}/snapshots/{}", at.env, at.name),
        |_| StatusCode::OK,
        applied_versions,
        move |tx| {
            writable(tx, &tenant, &at.env, protected_ok)?;
            let held = stored::snapshot_versions(tx, &tenant, &at.env, &at.name)?;
            let live = stored::live_keys(tx, &tenant, &at.env, None)?;
            let from = format!("snapshot/{}", at.name);
            let (changes, unchanged) = plan_promotion(&from, &at.env, &held, &live, &[], true)
                .map_err(StoreError::Invalid)?;
            let plan = PromotionPlan {
                from,
                to: at.env.clone(),
                changes,
                unchanged,
            };
            let message = format!("restored snapshot {}", at.name);
            apply_plan(tx, &tenant, plan, &author, &message)
        },
    )
    .await?;
    Ok(response)
}

/// Plans the changes a request asks for, against the target as it is now.
fn plan_request(
    tx: &Transaction<'_>,
    tenant: &str,
    env: &str,
    body: &RequestChange,
) -> Result<Vec<PlannedChange>, StoreError> {
    match (&body.from, body.publish.is_empty()) {
        (Some(from), true) => {
            let promote = Promote {
                from: from.clone(),
                to: env.to_owned(),
                keys: body.keys.clone(),
                prune: body.prune,
                message: body.message.clone(),
            };
            Ok(plan(tx, tenant, &promote)?.changes)
        }
        (None, false) => {
            let mut changes = Vec::new();
            for proposed in &body.publish {
                let path = stored::KeyPath {
                    tenant,
                    environment: env,
                    group: &proposed.group,
                    key: &proposed.key,
                };
                let now = stored::current(tx, path)?.filter(|v| !v.deleted);
                let format = proposed
                    .format
                    .or(now.as_ref().map(|v| v.format))
                    .unwrap_or_else(|| ConfigFormat::of_key(&proposed.key));
                let old = now.as_ref().map_or("", |v| v.content.as_str());
                let label = format!("{env}/{}/{}", proposed.group, proposed.key);
                let (action, content) = match (proposed.delete, &now) {
                    (true, None) => {
                        return Err(StoreError::rejected(
                            ErrorCode::NotFound,
                            format!("{path} does not exist, so it cannot be deleted"),
                        ));
                    }
                    (true, Some(_)) => (ChangeAction::Delete, String::new()),
                    (false, None) => (ChangeAction::Create, proposed.content.clone()),
                    (false, Some(_)) => (ChangeAction::Update, proposed.content.clone()),
                };
                changes.push(PlannedChange {
                    group: proposed.group.clone(),
                    key: proposed.key.clone(),
                    action,
                    format,
                    diff: unified_diff(&label, &label, old, &content),
                    content,
                    base_md5: now.as_ref().map(|v| v.md5.clone()).unwrap_or_default(),
                    base_version: now.as_ref().map_or(0, |v| v.version),
                    source_version: None,
                });
            }
            Ok(changes)
        }
        _ => Err(StoreError::Invalid(vec![FieldError::new(
            "from",
            "name either `from` (a promotion) or `publish` (keys to publish or delete), not both nor neither",
        )])),
    }
}

/// `POST /api/v1/config/environments/{env}/requests`: freeze a change of the
/// environment (a promotion into it, or publishes) for a second user to approve.
pub async fn request(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(env): ApiPath<String>,
    ApiJson(body): ApiJson<RequestChange>,
) -> ApiResult<Response> {
    let tenant = ctx.tenant().to_owned();
    let actor = ctx.principal.actor.clone();
    ctx.write(
        &state,
        StatusCode::CREATED,
        format!("config/{env}/requests"),
        move |tx, _| {
            let changes = plan_request(tx, &tenant, &env, &body)?;
            if changes.is_empty() {
                return Err(StoreError::rejected(
                    ErrorCode::InvalidTransition,
                    format!("environment {env} already holds what the request asks for"),
                ));
            }
            check_changes(&changes)?;
            stored::create_request(
                tx,
                &tenant,
                &env,
                body.from.as_deref(),
                &changes,
                &body.message,
                &actor,
            )
        },
    )
    .await
}

/// `?state=` of the request list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestsQuery {
    /// `pending`, `approved` or `rejected`.
    pub state: Option<String>,
}

/// `GET /api/v1/config/requests`: newest first.
pub async fn requests(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiQuery(query): ApiQuery<RequestsQuery>,
) -> ApiResult<Json<Page<ChangeRequest>>> {
    if let Some(s) = &query.state
        && !["pending", "approved", "rejected"].contains(&s.as_str())
    {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("state must be pending, approved or rejected, got {s:?}"),
        ));
    }
    let tenant = ctx.tenant().to_owned();
    let all = read(&state, move |s| {
        s.read(|c| stored::requests(c, &tenant, query.state.as_deref()))
    })
    .await?;
    Ok(Json(Page::whole(all)))
}

/// `GET /api/v1/config/requests/{id}`.
pub async fn get_request(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<u64>,
) -> ApiResult<Json<ChangeRequest>> {
    let tenant = ctx.tenant().to_owned();
    Ok(Json(
        read(&state, move |s| s.read(|c| stored::request(c, &tenant, id))).await?,
    ))
}

/// A decided request, with the versions an approval made.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Decided {
    /// The request.
    #[serde(flatten)]
    pub request: ChangeRequest,
    /// The new versions (none for a rejection).
    pub versions: Vec<ConfigVersion>,
}

/// `POST /api/v1/config/requests/{id}/approve`: applies the frozen changes,
/// all or none (409 when a key moved since the request; it stays pending).
pub async fn approve(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<u64>,
    ApiJson(body): ApiJson<Decide>,
) -> ApiResult<Response> {
    let tenant = ctx.tenant().to_owned();
    let actor = ctx.principal.actor.clone();
    let (_, response) = commit(
        &state,
        &ctx,
        format!("config/requests/{id}"),
        |_| StatusCode::OK,
        |d: &Decided| d.versions.iter().collect(),
        move |tx| {
            let request =
                stored::decide_request(tx, &tenant, id, "approved", &actor, &body.reason)?;
            let message = if request.message.is_empty() {
                format!("change request {id}")
            } else {
                format!("change request {id}: {}", request.message)
            };
            let versions = stored::apply_changes(
                tx,
                &tenant,
                &request.environment,
                &request.changes,
                &request.requested_by,
                &message,
            )?;
            Ok(Decided { request, versions })
        },
    )
    .await?;
    Ok(response)
}

/// `POST /api/v1/config/requests/{id}/reject`.
pub async fn reject(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<u64>,
    ApiJson(body): ApiJson<Decide>,
) -> ApiResult<Response> {
    let tenant = ctx.tenant().to_owned();
    let actor = ctx.principal.actor.clone();
    ctx.write(
        &state,
        StatusCode::OK,
        format!("config/requests/{id}"),
        move |tx, _| {
            let request =
                stored::decide_request(tx, &tenant, id, "rejected", &actor, &body.reason)?;
            Ok(Decided {
                request,
                versions: Vec::new(),
            })
        },
    )
    .await
}
