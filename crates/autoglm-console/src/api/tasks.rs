//! `tasks.*`: the operations the task scheduler runs. Lists newest first
//! with filters; one task, optionally waiting (`?wait=30s`) until it is
//! final; cancel; and starting a restart, scale or delete as a task by
//! name, the same as the service endpoints do.

use std::time::{Duration, Instant};

use autoglm_core::error::ErrorCode;
use autoglm_core::registry::Page;
use autoglm_core::service::Scale;
use autoglm_core::service::parse_duration;
use autoglm_core::task::{Task, TaskKind, TaskState};
use autoglm_store::{TaskFilter, tasks};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{page, page_limit, read, services};
use crate::AppState;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};

/// The longest `?wait=` a request may hold.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// Query of `GET /api/v1/tasks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListTasks {
    limit: Option<i64>,
    page_token: Option<String>,
    state: Option<String>,
    kind: Option<String>,
    target: Option<String>,
}

/// `GET /api/v1/tasks`: newest first.
pub async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<ListTasks>,
) -> ApiResult<Json<Page<Task>>> {
    let limit = page_limit(q.limit)?;
    let bad = |what: &str, value: &str, known: Vec<&str>| {
        ApiError::new(
            ErrorCode::InvalidQuery,
            format!("{what} {value:?} is not one of {}", known.join(", ")),
        )
    };
    let task_state = q
        .state
        .as_deref()
        .map(|s| {
            TaskState::parse(s).ok_or_else(|| {
                bad(
                    "state",
                    s,
                    TaskState::ALL.iter().map(|s| s.as_str()).collect(),
                )
            })
        })
        .transpose()?;
    let kind = q
        .kind
        .as_deref()
        .map(|k| {
            TaskKind::parse(k).ok_or_else(|| {
                bad(
                    "kind",
                    k,
                    TaskKind::ALL.iter().map(|k| k.as_str()).collect(),
                )
            })
        })
        .transpose()?;
    let before = q
        .page_token
        .as_deref()
        .map(|t| {
            t.parse::<i64>().map_err(|_| {
                ApiError::new(
                    ErrorCode::InvalidQuery,
                    format!("page_token {t:?} is not one this API gave"),
                )
            })
        })
        .transpose()?;
    let filter = TaskFilter {
        tenant: ctx.tenant().to_owned(),
        state: task_state,
        kind,
        target: q.target,
        before,
        limit: limit + 1,
    };
    let found = read(&state, move |s| s.list_tasks(&filter)).await?;
    Ok(Json(page(found, limit, |t| t.id.to_string())))
}

/// Query of `GET /api/v1/tasks/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetTask {
    wait: Option<String>,
}

/// `GET /api/v1/tasks/{id}`: with `?wait=30s`, answers once the task is
/// final or the wait is over, whichever comes first.
pub async fn get_one(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<GetTask>,
) -> ApiResult<Json<Task>> {
    let wait = match q.wait.as_deref() {
        None => Duration::ZERO,
        Some(w) => {
            let d = parse_duration(w)
                .map_err(|e| ApiError::new(ErrorCode::InvalidQuery, format!("wait {w:?}: {e}")))?;
            if d > MAX_WAIT {
                return Err(ApiError::new(
                    ErrorCode::InvalidQuery,
                    format!(
                        "wait {w:?} is longer than the most a request may wait, {}s",
                        MAX_WAIT.as_secs()
                    ),
                ));
            }
            d
        }
    };
    let deadline = Instant::now() + wait;
    // Subscribed before the first read, so no change between them is missed.
    let mut changes = state.tasks.subscribe();
    let tenant = ctx.tenant().to_owned();
    loop {
        let task = {
            let tenant = tenant.clone();
            read(&state, move |s| s.task(Some(&tenant), id)).await?
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if task.state.is_final() || left.is_zero() {
            return Ok(Json(task));
        }
        // Another console's scheduler tells this one nothing: look again now and then.
        let _ = tokio::time::timeout(left.min(Duration::from_secs(1)), changes.changed()).await;
    }
}

/// `POST /api/v1/tasks/{id}/cancel`: a pending task is cancelled at once,
/// a running one as soon as its worker stops it; either way its service is
/// put back as it was before the task's change, unless a later change
/// superseded it.
pub async fn cancel(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Response> {
    let tenant = ctx.tenant().to_owned();
    let (task, _) = ctx
        .apply(&state, StatusCode::ACCEPTED, format!("tasks/{id}"), {
            let tenant = tenant.clone();
            move |tx, _| tasks::request_cancel(tx, &tenant, id)
        })
        .await?;
    state.tasks.wake();
    if task.state == TaskState::Cancelled
        && let Some(name) = task.target.strip_prefix("services/")
    {
        state.platform.changed(&tenant, name);
    }
    Ok(crate::context::json_response(
        StatusCode::ACCEPTED,
        serde_json::to_vec(&task).unwrap_or_default(),
    ))
}

/// Body of `POST /api/v1/tasks`: an operation on a service by name.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateTask {
    /// `restart`, `scale` or `delete` (deploys, updates and traffic splits
    /// carry a manifest: `POST`/`PUT /api/v1/services`).
    pub kind: String,
    /// What it acts on: `services/NAME`.
    pub target: String,
    /// For `scale`: replicas per version.
    #[serde(default)]
    pub replicas: Option<u32>,
}

/// `POST /api/v1/tasks`.
pub async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<CreateTask>,
) -> ApiResult<Response> {
    let field = |path: &str, message: String| {
        ApiError::fields(vec![autoglm_core::error::FieldError::new(path, message)])
    };
    let Some(name) = body.target.strip_prefix("services/") else {
        return Err(field(
            "target",
            format!(
                "{:?} is not a target tasks act on; name a service as services/NAME",
                body.target
            ),
        ));
    };
    let name = name.to_owned();
    match (TaskKind::parse(&body.kind), body.replicas) {
        (Some(TaskKind::Restart), None) => services::restart_by_name(&state, &ctx, name).await,
        (Some(TaskKind::Delete), None) => services::delete_by_name(&state, &ctx, name).await,
        (Some(TaskKind::Scale), Some(replicas)) => {
            services::scale_by_name(&state, &ctx, name, Scale { replicas }).await
        }
        (Some(TaskKind::Scale), None) => {
            Err(field("replicas", "a scale task needs replicas".to_owned()))
        }
        (Some(TaskKind::Restart | TaskKind::Delete), Some(_)) => Err(field(
            "replicas",
            format!("only a scale task takes replicas, not {}", body.kind),
        )),
        (Some(kind), _) => Err(field(
            "kind",
            format!(
                "a {} task carries a manifest: send it to POST or PUT /api/v1/services",
                kind.as_str()
            ),
        )),
        (None, _) => Err(field(
            "kind",
            format!("{:?} is not one of restart, scale, delete", body.kind),
        )),
    }
}
