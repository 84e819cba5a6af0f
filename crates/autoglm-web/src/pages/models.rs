//! The model registry: every model of the tenant, searchable by name, and a
//! form to register a new one.

use crate::extract::{Form, Query};
use autoglm_console::AppState;
use autoglm_core::rbac::Permission;
use autoglm_store::ModelFilter;
use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::Place;
use crate::api::{Api, problem_words};
use crate::session::{self, Session};

#[derive(Debug, Deserialize)]
pub struct Search {
    #[serde(default)]
    q: String,
}

const PLACE: Place = Place {
    here: "/ui/models",
    title: "Models",
    permission: Permission::ModelsRead,
    denied: "Your role cannot read models.",
    unreadable: "The models could not be read; try again.",
};

/// `GET /ui/models?q=`.
pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(search): Query<Search>,
) -> Response {
    let session = match PLACE.open(&state, &headers).await {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    list(
        &state,
        &session,
        &search.q,
        &NewModel::default(),
        html! {},
        StatusCode::OK,
    )
    .await
}

/// The new-model form as submitted.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NewModel {
    csrf: String,
    name: String,
    description: String,
}

/// `POST /ui/models`: registers a model, then shows it.
pub async fn create(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    headers: HeaderMap,
    Form(form): Form<NewModel>,
) -> Response {
    let (session, credential) =
        match session::require_form(&state, &headers, PLACE.here, &form.csrf).await {
            Ok(s) => s,
            Err(answer) => return answer,
        };
    let mut body = json!({"name": form.name.trim()});
    if !form.description.trim().is_empty() {
        body["description"] = json!(form.description.trim());
    }
    let (status, answer) = api
        .call(Method::POST, "/api/v1/models", &credential, Some(body))
        .await;
    if status.is_success() {
        return Redirect::to(&format!("/ui/models/{}", form.name.trim())).into_response();
    }
    let refusal = html! { p.field-error role="alert" id="error-model-name" { (problem_words(&answer).join("; ")) } };
    list(&state, &session, "", &form, refusal, status).await
}

/// The list, searched by `query`, under the new-model form (with `refusal`
/// beside its name when it was refused).
async fn list(
    state: &AppState,
    session: &Session,
    query: &str,
    form: &NewModel,
    refusal: Markup,
    status: StatusCode,
) -> Response {
    let query = query.trim().to_owned();
    let store = state.store.clone();
    let filter = ModelFilter {
        tenant: session.principal.grant.tenant.clone(),
        name_contains: (!query.is_empty()).then(|| query.clone()),
        limit: 1000,
        ..ModelFilter::default()
    };
    let models = match tokio::task::spawn_blocking(move || store.list_models(&filter)).await {
        Ok(Ok(models)) => models,
        _ => return PLACE.unreadable(session),
    };
    let can_create = session.principal.require(Permission::ModelsWrite).is_ok();
    let body = html! {
        @if can_create {
            details.new-model open[!form.name.is_empty()] {
                summary { "New model" }
                form.search method="post" action="/ui/models" id="new-model" {
                    input type="hidden" name="csrf" value=(session.csrf);
                    label for="model-name" class="muted" { "Name" }
                    input id="model-name" name="name" value=(form.name) required aria-describedby="error-model-name";
                    label for="model-description" class="muted" { "Description" }
                    input id="model-description" name="description" value=(form.description);
                    button type="submit" { "Create model" }
                    (refusal)
                }
            }
        }
        form.search method="get" action="/ui/models" role="search" {
            label for="q" class="muted" { "Name contains" }
            input id="q" name="q" value=(query) type="search";
            button type="submit" { "Search" }
        }
        @if models.is_empty() {
            p.empty { @if query.is_empty() { "No models yet." } @else { "No model name contains “" (query) "”." } }
        } @else {
            table id="models" {
                thead { tr {
                    th scope="col" { "Model" } th scope="col" { "Description" } th scope="col" { "Labels" }
                    th.num scope="col" { "Versions" } th.num scope="col" { "Latest" } th scope="col" { "Updated" }
                } }
                tbody {
                    @for model in &models {
                        tr {
                            th scope="row" { a href={"/ui/models/" (model.name)} { (model.name) } }
                            td { (model.description.as_deref().unwrap_or("")) }
                            td { @for (k, v) in &model.labels { span.label { (k) "=" (v) } } }
                            td.num { (model.version_count) }
                            td.num { @if let Some(v) = model.latest_version { (v) } @else { "–" } }
                            td { time datetime=(model.updated_at.to_rfc3339()) { (model.updated_at.format("%Y-%m-%d %H:%M UTC")) } }
                        }
                    }
                }
            }
        }
    };
    (status, PLACE.show(session, body)).into_response()
}
