//! `services.*`: model services. Bodies are the manifests `autoglm apply`
//! sends (JSON here); answers are manifests with the status the platform
//! reports, or a pending one while none does.
//!
//! A manifest is checked in two steps: its own rules (`autoglm-core`, every
//! field error at once), then, in the write transaction, that the model and
//! each listed version exist in the tenant (`autoglm-store`). Both refuse
//! with `invalid_body` and an `errors` array of `{path, message}`.

use std::sync::Arc;

use autoglm_contract::ServicePlatform;
use autoglm_core::error::{ErrorCode, FieldError};
use autoglm_core::registry::Page;
use autoglm_core::service::{
    Condition, ConditionStatus, ModelServiceManifest, ModelServiceSpec, ModelServiceStatus, Scale,
};
use autoglm_core::task::Task;
use autoglm_core::traffic::{KEPT_INTERVALS, ServiceTraffic};
use autoglm_store::changes::{self, Committed, Requester};
use autoglm_store::{ServiceFilter, StoredService, services};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{page, page_limit, parse_selector, read};
use crate::AppState;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::policies::Judged;

/// Query of `GET /api/v1/services`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListServices {
    limit: Option<i64>,
    page_token: Option<String>,
    label: Option<String>,
    model: Option<String>,
}

/// What a service looks like while no platform reports on it: the replicas
/// its spec asks for, none ready, and `Ready` unknown for reason `Pending`.
pub fn pending_status(spec: &ModelServiceSpec) -> ModelServiceStatus {
    let per_version = spec.replica_bounds().initial;
    ModelServiceStatus::without_replicas(
        spec,
        per_version.saturating_mul(spec.versions.len() as u32),
        Condition::new(
            "Ready",
            ConditionStatus::Unknown,
            "Pending",
            "no platform has taken this service up yet".to_owned(),
        ),
    )
}

/// The answer for a stored service: its manifest with the platform's status.
fn answer(
    source: &dyn ServicePlatform,
    tenant: &str,
    stored: StoredService,
) -> ModelServiceManifest {
    let mut status = source
        .status(tenant, &stored)
        .unwrap_or_else(|| pending_status(&stored.manifest.spec));
    status.rollout = stored.rollout.clone();
    ModelServiceManifest {
        status: Some(status),
        ..stored.manifest
    }
}

/// Reads a manifest body: every rule of the spec, each failure with its path.
fn manifest(body: Value) -> ApiResult<ModelServiceManifest> {
    ModelServiceManifest::from_value(body).map_err(ApiError::fields)
}

/// What a write to a service answers: the task that takes the change to
/// the platform (202), or the service itself when nothing changed (200).
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Started {
    Task(Box<Task>),
    Unchanged(Box<ModelServiceManifest>),
}

impl Started {
    fn status(&self) -> StatusCode {
        match self {
            Started::Task(_) => StatusCode::ACCEPTED,
            Started::Unchanged(_) => StatusCode::OK,
        }
    }
}

/// Commits a change to one service with the task that carries it to the
/// platform, in one transaction, and wakes the task scheduler. `change`
/// returns the service after the change (`None`: deleted); `restart` says
/// the change is a restart, which the spec alone does not show.
pub(crate) async fn write_service<F>(
    state: &AppState,
    ctx: &Ctx,
    name: &str,
    restart: bool,
    change: F,
) -> ApiResult<Response>
where
    F: FnOnce(
            &autoglm_store::Transaction<'_>,
            &str,
        ) -> autoglm_store::Result<Option<StoredService>>
        + Send
        + 'static,
{
    let tenant = ctx.tenant().to_owned();
    let source: Arc<dyn ServicePlatform> = state.platform.clone();
    let by = Requester {
        actor: ctx.principal.actor.clone(),
        request_id: ctx.request_id.clone(),
    };
    let judged = Judged::new(state, ctx).await?;
    let name = name.to_owned();
    let (_, status, body) = ctx
        .apply_with(state, Started::status, format!("services/{name}"), {
            let judged = judged.clone();
            move |tx, audit| {
                // Judged inside the change, on the service as it will be.
                let change = |tx: &autoglm_store::Transaction<'_>, tenant: &str| {
                    let before = services::find_service(tx, tenant, &name)?;
                    let after = change(tx, tenant)?;
                    if let Some(after) = &after {
                        judged.service(tx, tenant, before.as_ref(), after, audit)?;
                    }
                    Ok(after)
                };
                Ok(
                    match changes::commit_with_task(tx, &tenant, &name, restart, &by, change)? {
                        Committed::Task(task) => Started::Task(task),
                        Committed::Unchanged(stored) => {
                            Started::Unchanged(Box::new(answer(source.as_ref(), &tenant, *stored)))
                        }
                    },
                )
            }
        })
        .await?;
    if status == StatusCode::ACCEPTED {
        state.tasks.wake();
    }
    Ok(judged.respond(status, body))
}

/// `GET /api/v1/services`.
pub async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<ListServices>,
) -> ApiResult<Json<Page<ModelServiceManifest>>> {
    let limit = page_limit(q.limit)?;
    let tenant = ctx.tenant().to_owned();
    let filter = ServiceFilter {
        tenant: tenant.clone(),
        model: q.model,
        labels: q
            .label
            .as_deref()
            .map(parse_selector)
            .transpose()?
            .unwrap_or_default(),
        after: q.page_token,
        limit: limit + 1,
    };
    let stored = read(&state, move |s| s.list_services(&filter)).await?;
    let items = stored
        .into_iter()
        .map(|s| answer(state.platform.as_ref(), &tenant, s))
        .collect();
    Ok(Json(page(items, limit, |m| m.metadata.name.clone())))
}

/// `POST /api/v1/services`.
pub async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Response> {
    let manifest = manifest(body)?;
    let name = manifest.metadata.name.clone();
    super::filters::check(&state, ctx.tenant(), &manifest.spec.filters, "spec.filters").await?;
    write_service(&state, &ctx, &name, false, move |tx, tenant| {
        services::create_service(tx, tenant, &manifest).map(Some)
    })
    .await
}

/// `GET /api/v1/services/{name}`.
pub async fn get_one(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<ModelServiceManifest>> {
    let tenant = ctx.tenant().to_owned();
    let stored = {
        let tenant = tenant.clone();
        read(&state, move |s| s.service(&tenant, &name)).await?
    };
    Ok(Json(answer(state.platform.as_ref(), &tenant, stored)))
}

/// `PUT /api/v1/services/{name}`: replaces labels, annotations and spec; the
/// generation goes up only when the spec changed.
pub async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Response> {
    let manifest = manifest(body)?;
    if manifest.metadata.name != name {
        return Err(ApiError::fields(vec![FieldError::new(
            "metadata.name",
            format!(
                "name {:?} does not match {name:?} in the path; a service cannot be renamed",
                manifest.metadata.name
            ),
        )]));
    }
    super::filters::check(&state, ctx.tenant(), &manifest.spec.filters, "spec.filters").await?;
    write_service(&state, &ctx, &name, false, move |tx, tenant| {
        services::update_service(tx, tenant, &manifest).map(Some)
    })
    .await
}

/// `POST /api/v1/services/{name}/scale`.
pub async fn scale(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<Scale>,
) -> ApiResult<Response> {
    scale_by_name(&state, &ctx, name, body).await
}

/// Scales `name` as a task (also `POST /api/v1/tasks`).
pub async fn scale_by_name(
    state: &AppState,
    ctx: &Ctx,
    name: String,
    body: Scale,
) -> ApiResult<Response> {
    let target = name.clone();
    write_service(state, ctx, &target, false, move |tx, tenant| {
        services::scale_service(tx, tenant, &name, body.replicas).map(Some)
    })
    .await
}

/// `POST /api/v1/services/{name}/restart`.
pub async fn restart(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Response> {
    restart_by_name(&state, &ctx, name).await
}

/// Restarts `name` as a task (also `POST /api/v1/tasks`).
pub async fn restart_by_name(state: &AppState, ctx: &Ctx, name: String) -> ApiResult<Response> {
    let target = name.clone();
    write_service(state, ctx, &target, true, move |tx, tenant| {
        services::restart_service(tx, tenant, &name).map(Some)
    })
    .await
}

/// `DELETE /api/v1/services/{name}`.
pub async fn delete_one(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Response> {
    delete_by_name(&state, &ctx, name).await
}

/// Deletes `name` as a task (also `POST /api/v1/tasks`).
pub async fn delete_by_name(state: &AppState, ctx: &Ctx, name: String) -> ApiResult<Response> {
    let target = name.clone();
    write_service(state, ctx, &target, false, move |tx, tenant| {
        services::delete_service(tx, tenant, &name).map(|()| None)
    })
    .await
}

/// Query of `GET /api/v1/services/{name}/replicas/{replica}/logs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    bytes: Option<u64>,
    trace_id: Option<String>,
}

/// Most of a log one request reads.
const MAX_LOG_BYTES: u64 = 1024 * 1024;

/// `GET /api/v1/services/{name}/replicas/{replica}/logs`: the end of a replica's log.
pub async fn logs(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath((name, replica)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> ApiResult<Response> {
    // A trace's lines are looked for in as much of the log as one read takes.
    let default = if q.trace_id.is_some() {
        MAX_LOG_BYTES
    } else {
        64 * 1024
    };
    let bytes = q.bytes.unwrap_or(default);
    if let Some(id) = &q.trace_id
        && (id.len() != 32
            || !id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("trace_id {id:?} is not a W3C trace id: 32 lowercase hex digits"),
        ));
    }
    if bytes == 0 || bytes > MAX_LOG_BYTES {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("bytes must be 1 to {MAX_LOG_BYTES}, got {bytes}"),
        ));
    }
    let tenant = ctx.tenant().to_owned();
    {
        let (tenant, name) = (tenant.clone(), name.clone());
        read(&state, move |s| s.service(&tenant, &name)).await?;
    }
    let platform = state.platform.clone();
    let tail = tokio::task::spawn_blocking({
        let replica = replica.clone();
        move || platform.log_tail(&tenant, &name, &replica, bytes)
    })
    .await?
    .map_err(|e| ApiError::internal("cannot read a replica log", &e))?;
    // The lines of one trace: every line autoglm writes about a request
    // carries its `trace_id`, in JSON and in plain text alike.
    let tail = match &q.trace_id {
        Some(id) => tail.map(|text| {
            text.lines().filter(|line| line.contains(id.as_str())).fold(
                String::new(),
                |mut out, line| {
                    out.push_str(line);
                    out.push('\n');
                    out
                },
            )
        }),
        None => tail,
    };
    match tail {
        Some(text) => Ok((
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            )],
            text,
        )
            .into_response()),
        None => Err(ApiError::new(
            ErrorCode::NotFound,
            format!("service has no replica {replica:?} with a log"),
        )),
    }
}

/// `GET /api/v1/services/{name}/traffic`: the last hour of the service's
/// traffic per version, as the gateway in this process counted it.
pub async fn traffic(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<ServiceTraffic>> {
    let tenant = ctx.tenant().to_owned();
    {
        let (tenant, name) = (tenant.clone(), name.clone());
        read(&state, move |s| s.service(&tenant, &name)).await?;
    }
    state
        .traffic
        .traffic(&tenant, &name, KEPT_INTERVALS)
        .map(Json)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unavailable,
                "this console keeps no traffic history: its gateway runs in another process \
             (read the gateway's autoglm_gateway_* metrics from Prometheus instead)",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoglm_core::service::{Autoscaling, VersionWeight};

    fn spec() -> ModelServiceSpec {
        ModelServiceSpec {
            model: "m".into(),
            versions: vec![
                VersionWeight {
                    version: "1".into(),
                    weight: 90,
                },
                VersionWeight {
                    version: "2".into(),
                    weight: 10,
                },
            ],
            runtime: Default::default(),
            replicas: Some(3),
            autoscaling: None,
            resources: None,
            env: Vec::new(),
            config_ref: None,
            stateful: None,
            ingress: None,
            load_balancing: None,
            rollout: None,
            filters: Vec::new(),
        }
    }

    #[test]
    fn pending_status_asks_for_the_spec_replicas_of_every_version() {
        let status = pending_status(&spec());
        assert_eq!(status.desired_replicas, 6);
        assert_eq!(status.ready_replicas, 0);
        assert_eq!(status.versions[1].version, "2");
        assert_eq!(status.versions[1].weight, 10);
        assert_eq!(status.conditions[0].reason, "Pending");
        assert_eq!(status.conditions[0].status, ConditionStatus::Unknown);

        let autoscaled = ModelServiceSpec {
            replicas: None,
            autoscaling: Some(Autoscaling {
                min_replicas: 0,
                max_replicas: 4,
                target_in_flight: 2,
                scale_to_zero_after: None,
                scale_down_stabilization: None,
                hpa: None,
            }),
            ..spec()
        };
        assert_eq!(pending_status(&autoscaled).desired_replicas, 2);
    }
}
