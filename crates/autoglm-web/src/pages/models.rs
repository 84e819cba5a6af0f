//! The model registry: every model of the tenant, searchable by name.

use autoglm_console::AppState;
use autoglm_core::rbac::Permission;
use autoglm_store::ModelFilter;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::Place;

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
    let query = search.q.trim().to_owned();
    let store = state.store.clone();
    let filter = ModelFilter {
        tenant: session.principal.grant.tenant.clone(),
        name_contains: (!query.is_empty()).then(|| query.clone()),
        limit: 1000,
        ..ModelFilter::default()
    };
    let models = match tokio::task::spawn_blocking(move || store.list_models(&filter)).await {
        Ok(Ok(models)) => models,
        _ => return PLACE.unreadable(&session),
    };
    let body = html! {
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
                            th scope="row" { (model.name) }
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
    PLACE.show(&session, body)
}
