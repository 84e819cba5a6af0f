//! `models.*`: the registry's models.

use autoglm_core::registry::{
    CreateModel, Model, Page, UpdateModel, validate_description, validate_labels,
};
use autoglm_core::stage::Stage;
use autoglm_store::{ModelFilter, registry};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{check_name, invalid_body, page, page_limit, parse_selector, read};
use crate::AppState;
use crate::context::Ctx;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::policies::Judged;

/// Query of `GET /api/v1/models`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListModels {
    limit: Option<i64>,
    page_token: Option<String>,
    q: Option<String>,
    label: Option<String>,
    stage: Option<Stage>,
}

/// `GET /api/v1/models`.
pub async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<ListModels>,
) -> ApiResult<Json<Page<Model>>> {
    let limit = page_limit(q.limit)?;
    let filter = ModelFilter {
        tenant: ctx.tenant().to_owned(),
        name_contains: q.q,
        labels: q
            .label
            .as_deref()
            .map(parse_selector)
            .transpose()?
            .unwrap_or_default(),
        stage: q.stage,
        after: q.page_token,
        limit: limit + 1,
    };
    let items = read(&state, move |s| s.list_models(&filter)).await?;
    Ok(Json(page(items, limit, |m| m.name.clone())))
}

/// `POST /api/v1/models`.
pub async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<CreateModel>,
) -> ApiResult<Response> {
    check_name("model", &body.name)?;
    validate_labels(&body.labels).map_err(invalid_body)?;
    validate_description(body.description.as_deref()).map_err(invalid_body)?;
    let tenant = ctx.tenant().to_owned();
    let target = format!("models/{}", body.name);
    let judged = Judged::new(&state, &ctx).await?;
    let (_, body) = ctx
        .apply(&state, StatusCode::CREATED, target, {
            let judged = judged.clone();
            move |tx, audit| {
                let model = registry::create_model(
                    tx,
                    &tenant,
                    &body.name,
                    body.description.as_deref(),
                    &body.labels,
                )?;
                judged.model(tx, &tenant, None, &model, audit)?;
                Ok(model)
            }
        })
        .await?;
    Ok(judged.respond(StatusCode::CREATED, body))
}

/// `GET /api/v1/models/{name}`.
pub async fn get_one(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Model>> {
    let tenant = ctx.tenant().to_owned();
    Ok(Json(read(&state, move |s| s.model(&tenant, &name)).await?))
}

/// `PATCH /api/v1/models/{name}`.
pub async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateModel>,
) -> ApiResult<Response> {
    if let Some(labels) = &body.labels {
        validate_labels(labels).map_err(invalid_body)?;
    }
    validate_description(body.description.as_deref()).map_err(invalid_body)?;
    let tenant = ctx.tenant().to_owned();
    let target = format!("models/{name}");
    let judged = Judged::new(&state, &ctx).await?;
    let (_, body) = ctx
        .apply(&state, StatusCode::OK, target, {
            let judged = judged.clone();
            move |tx, audit| {
                let before = registry::get_model(tx, &tenant, &name)?;
                let model = registry::update_model(tx, &tenant, &name, &body)?;
                judged.model(tx, &tenant, Some(&before), &model, audit)?;
                Ok(model)
            }
        })
        .await?;
    Ok(judged.respond(StatusCode::OK, body))
}

/// `DELETE /api/v1/models/{name}`: refused while a version is in use; the
/// files go after the rows are gone.
pub async fn delete_one(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Response> {
    let tenant = ctx.tenant().to_owned();
    let target = format!("models/{name}");
    let (dirs, _) = ctx
        .apply(&state, StatusCode::NO_CONTENT, target, move |tx, _| {
            registry::delete_model(tx, &tenant, &name)
        })
        .await?;
    for dir in dirs {
        state.artifacts.remove(&dir).await;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoglm_core::error::ErrorCode;

    #[test]
    fn selectors_parse_or_explain() {
        assert_eq!(
            parse_selector("team=nlp,env=prod").ok(),
            Some(vec![
                ("team".into(), "nlp".into()),
                ("env".into(), "prod".into())
            ])
        );
        assert_eq!(
            parse_selector("team").err().map(|e| e.code),
            Some(ErrorCode::InvalidQuery)
        );
        assert_eq!(
            parse_selector("bad key=v").err().map(|e| e.code),
            Some(ErrorCode::InvalidQuery)
        );
    }
}
