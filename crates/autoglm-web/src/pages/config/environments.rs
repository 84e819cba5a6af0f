//! `/ui/config`: the tenant's environments with their live key counts, each
//! linking to its page, the ways to promotions and change requests, and, for
//! roles holding `config:protected` (whom the API lets add one), the form
//! that adds an environment.

use crate::extract::Form;
use autoglm_console::AppState;
use autoglm_core::config::Environment;
use autoglm_core::rbac::Permission;
use autoglm_core::registry::Page;
use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::{HERE, Refused, env_badges, env_href, send};
use crate::api::Api;
use crate::fields;
use crate::layout;
use crate::session::{self, Session, SignedIn};

const TITLE: &str = "Config";

/// The new environment's fields, each with the API paths it shows refusals of.
const FIELDS: [(&str, &[&str]); 2] = [
    ("env-name", &["name"]),
    ("env-description", &["description"]),
];

/// The form as submitted.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct EnvironmentForm {
    csrf: String,
    name: String,
    description: String,
    /// `on` when ticked; absent otherwise.
    protected: Option<String>,
}

fn table(envs: &[Environment]) -> Markup {
    html! {
        table id="environments" {
            thead { tr {
                th scope="col" { "Environment" } th scope="col" { "Description" }
                th scope="col" { "" } th.num scope="col" { "Keys" }
            } }
            tbody {
                @for env in envs {
                    tr id={"env-" (env.name)} {
                        th scope="row" { a href=(env_href(&env.name)) { (env.name) } }
                        td { (env.description) }
                        td.badges { (env_badges(env)) }
                        td.num.keys { (env.keys) }
                    }
                }
            }
        }
    }
}

fn form(session: &Session, f: &EnvironmentForm, refused: Option<&Refused>) -> Markup {
    let errors = refused.map(|r| r.errors.clone()).unwrap_or_default();
    let err = |id: &str| fields::beside(&errors, &FIELDS, id);
    html! {
        h2 { "New environment" }
        @if let Some(refused) = refused { (refused.summary("env-error", &FIELDS)) }
        form.fields method="post" action=(HERE) id="new-environment" {
            input type="hidden" name="csrf" value=(session.csrf);
            fieldset {
                div.row {
                    label for="env-name" { "Name" }
                    input id="env-name" name="name" value=(f.name) placeholder="perf" aria-describedby="error-env-name";
                    label for="env-description" { "Description" }
                    input id="env-description" name="description" value=(f.description) placeholder="load tests";
                    label { input type="checkbox" name="protected" checked[f.protected.is_some()]; " protected" }
                }
                (err("env-name"))
                (err("env-description"))
            }
            button type="submit" id="create-environment" { "Add environment" }
        }
    }
}

async fn render(
    api: &Api,
    (session, credential): (&Session, &str),
    (f, refused): (&EnvironmentForm, Option<&Refused>),
    status: StatusCode,
) -> Response {
    let envs: Page<Environment> = match api.get_as("/api/v1/config/environments", credential).await
    {
        Ok(envs) => envs,
        Err(unread) => return unread.page(session, HERE, TITLE),
    };
    let may_add = session
        .principal
        .require(Permission::ConfigProtected)
        .is_ok();
    let body = html! {
        p.muted {
            "Each environment holds groups of keys; every publish is a checked, immutable version. "
            a href={(HERE) "/promote"} id="promote-link" { "Promote" } " · "
            a href={(HERE) "/requests"} id="requests-link" { "Change requests" }
        }
        (table(&envs.items))
        @if may_add { (form(session, f, refused)) }
    };
    (status, layout::page(session, HERE, TITLE, body)).into_response()
}

/// `GET /ui/config`.
pub async fn page(
    SignedIn {
        session,
        credential,
    }: SignedIn,
    Extension(api): Extension<Api>,
) -> Response {
    let fresh = EnvironmentForm::default();
    render(
        &api,
        (&session, &credential),
        (&fresh, None),
        StatusCode::OK,
    )
    .await
}

/// `POST /ui/config`: adds an environment; back to the list, or the list
/// with the form as typed and the refusal.
pub async fn create(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    headers: HeaderMap,
    Form(f): Form<EnvironmentForm>,
) -> Response {
    let (session, credential) = match session::require_form(&state, &headers, HERE, &f.csrf).await {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    let body = json!({"name": f.name.trim(), "description": f.description.trim(), "protected": f.protected.is_some()});
    let path = "/api/v1/config/environments";
    match send(&api, &credential, (Method::POST, path), Some(body)).await {
        Ok(_) => Redirect::to(HERE).into_response(),
        Err(refused) => {
            let status = refused.status;
            render(&api, (&session, &credential), (&f, Some(&refused)), status).await
        }
    }
}
