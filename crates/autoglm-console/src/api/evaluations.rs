//! `evaluations.*`: a JSONL dataset run through one version by an
//! `evaluate` task (answered 202 with the task), and the version's
//! evaluations with what each measured.

use autoglm_core::evaluation::{DEFAULT_CONCURRENCY, Evaluation, MAX_CONCURRENCY, parse_dataset};
use autoglm_core::registry::Page;
use autoglm_core::task::Task;
use autoglm_store::NewEvaluation;
use autoglm_store::evaluations::insert_evaluation;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{invalid_body, read};
use crate::AppState;
use crate::context::{Ctx, json_response};
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath};

/// Largest request that starts an evaluation (its dataset inline).
pub const DATASET_LIMIT: usize = 16 * 1024 * 1024;
/// Most evaluations a version's list shows.
const LISTED: usize = 100;

/// `POST /api/v1/models/{name}/versions/{version}/evaluations`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StartEvaluation {
    /// The service whose replicas of the version answer; it must serve the
    /// version (a weight of 0 will do).
    pub service: String,
    /// JSON lines, one request each: `{"messages": [...]}` (chat),
    /// `{"prompt": "..."}` (completion), `{"input": "..."}` (embedding) or
    /// `{"inputs": [...]}` (inference), each with an optional `label` to score
    /// the answer against. One kind per dataset, at most 10,000 lines.
    pub dataset: String,
    /// Requests in flight at once, 1 to 64 (default 4).
    #[serde(default)]
    pub concurrency: Option<u32>,
}

/// `POST /api/v1/models/{name}/versions/{version}/evaluations`.
pub async fn start(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath((model, version)): ApiPath<(String, i64)>,
    ApiJson(body): ApiJson<StartEvaluation>,
) -> ApiResult<Response> {
    let concurrency = body.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
    if !(1..=MAX_CONCURRENCY).contains(&concurrency) {
        return Err(invalid_body(format!(
            "concurrency: {concurrency} is outside 1 to {MAX_CONCURRENCY}"
        )));
    }
    let dataset =
        parse_dataset(&body.dataset).map_err(|e| invalid_body(format!("dataset: {e}")))?;
    let new = NewEvaluation {
        model: model.clone(),
        version,
        service: body.service,
        kind: dataset.kind,
        samples: dataset.samples.len(),
        labelled: dataset.samples.iter().filter(|s| s.label.is_some()).count(),
        concurrency,
        dataset: body.dataset,
    };
    let tenant = ctx.tenant().to_owned();
    let (actor, request_id) = (ctx.principal.actor.clone(), ctx.request_id.clone());
    let (_, status, body) = ctx
        .apply_with(
            &state,
            |_: &Task| StatusCode::ACCEPTED,
            format!("models/{model}/versions/{version}/evaluations"),
            move |tx, _| {
                let (_, task) = insert_evaluation(tx, &tenant, &new, &actor, &request_id)?;
                Ok(task)
            },
        )
        .await?;
    state.tasks.wake();
    Ok(json_response(status, body))
}

/// `GET /api/v1/models/{name}/versions/{version}/evaluations`: newest first.
pub async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath((model, version)): ApiPath<(String, i64)>,
) -> ApiResult<Json<Page<Evaluation>>> {
    let tenant = ctx.tenant().to_owned();
    let items = read(&state, move |s| {
        s.evaluations_of(&tenant, &model, version, LISTED)
    })
    .await?;
    Ok(Json(Page::whole(items)))
}

/// `GET /api/v1/models/{name}/versions/{version}/evaluations/{id}`.
pub async fn get_one(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath((model, version, id)): ApiPath<(String, i64, i64)>,
) -> ApiResult<Json<Evaluation>> {
    let tenant = ctx.tenant().to_owned();
    let found = read(&state, move |s| {
        let e = s.evaluation(&tenant, id)?;
        if e.model != model || e.version != version {
            return Err(autoglm_store::StoreError::rejected(
                autoglm_core::error::ErrorCode::NotFound,
                format!("version {version} of model {model:?} has no evaluation {id}"),
            ));
        }
        Ok(e)
    })
    .await?;
    Ok(Json(found))
}
