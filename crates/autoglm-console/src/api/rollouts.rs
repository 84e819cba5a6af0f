//! `rollouts.*`: a service's rollout, and a user's pause, resume, promote
//! and abort. A command runs the rollout state machine in the write that
//! saves its new state with the split it asks for, and makes sure a
//! `rolloutStep` task carries it on (a new one when none is queued or
//! running: a resumed or promoted rollout that waited for the user).

use autoglm_core::error::ErrorCode;
use autoglm_core::rollout::{Event, ReadyStep, Rollout};
use autoglm_store::changes::{self, Requester};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use schemars::JsonSchema;
use serde::Serialize;

use super::read;
use crate::AppState;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiPath;

/// `GET /api/v1/services/{name}/rollout`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutView {
    /// The state machine's state.
    #[serde(flatten)]
    pub rollout: Rollout,
    /// The steps as they run (with the default guard after each canary
    /// weight when the spec names no analysis), in words.
    pub steps: Vec<String>,
}

fn words(step: &ReadyStep) -> String {
    match step {
        ReadyStep::SetWeight(w) => format!("setWeight {w}"),
        ReadyStep::Pause(Some(d)) => format!("pause {}s", d.as_secs()),
        ReadyStep::Pause(None) => "pause until promoted".to_owned(),
        ReadyStep::Analysis(metrics) => {
            let names: Vec<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
            format!("analysis {}", names.join(", "))
        }
    }
}

/// `GET /api/v1/services/{name}/rollout`.
pub async fn get_one(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<RolloutView>> {
    let tenant = ctx.tenant().to_owned();
    let view = read(&state, move |s| {
        let stored = s.service(&tenant, &name)?;
        let rollout = s
            .service_rollout(&tenant, &name)?
            .ok_or_else(|| changes::no_rollout(&name))?;
        let steps = changes::rollout_steps(&stored).iter().map(words).collect();
        Ok(RolloutView { rollout, steps })
    })
    .await?;
    Ok(Json(view))
}

/// `POST /api/v1/services/{name}/rollout/{action}`: `pause`, `resume`,
/// `promote` or `abort`; the rollout as it is after.
pub async fn act(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath((name, action)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    let event = match action.as_str() {
        "pause" => Event::Pause,
        "resume" => Event::Resume,
        "promote" => Event::Promote,
        "abort" => Event::Abort,
        other => {
            return Err(ApiError::new(
                ErrorCode::InvalidPath,
                format!("{other:?} is not a rollout action: pause, resume, promote or abort"),
            ));
        }
    };
    let tenant = ctx.tenant().to_owned();
    let by = Requester {
        actor: ctx.principal.actor.clone(),
        request_id: ctx.request_id.clone(),
    };
    let target = format!("services/{name}");
    let response = ctx
        .write(&state, StatusCode::OK, target, move |tx, _| {
            let (rollout, steps, _) = changes::command_rollout(tx, &tenant, &name, event, &by)?;
            let steps = steps.iter().map(words).collect();
            Ok(RolloutView { rollout, steps })
        })
        .await?;
    state.tasks.wake();
    Ok(response)
}
