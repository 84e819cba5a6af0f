//! An environment's snapshots on its page: the list (each with the key
//! versions it holds and, where the session may write the environment, a
//! restore button that asks first), and the form that takes one.

use crate::extract::Form;
use autoglm_console::AppState;
use autoglm_core::config::Snapshot;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::environment::{self, Shown};
use super::{Refused, Writes, count, env_api, env_href, send};
use crate::api::{Api, segment};
use crate::fields;
use crate::layout::short_time;
use crate::session::{self, CsrfForm, Session};

/// The snapshot form's fields, each with the API paths it shows refusals of.
const FIELDS: [(&str, &[&str]); 2] = [
    ("snapshot-name", &["name"]),
    ("snapshot-description", &["description"]),
];

/// The form as submitted.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SnapshotForm {
    csrf: String,
    name: String,
    description: String,
}

fn table(session: &Session, (env, writes): (&str, Writes), taken: &[Snapshot]) -> Markup {
    html! {
        table id="snapshots" {
            thead { tr {
                th scope="col" { "Snapshot" } th scope="col" { "Description" } th scope="col" { "Keys" }
                th scope="col" { "By" } th scope="col" { "Taken" }
                @if writes == Writes::Directly { th scope="col" { span.muted { "Restore" } } }
            } }
            tbody {
                @for s in taken {
                    tr id={"snapshot-" (s.name)} {
                        th scope="row" { (s.name) }
                        td { (s.description) }
                        td { details {
                            summary { (count(s.items.len(), "key")) }
                            ul { @for i in &s.items { li { (i.group) "/" (i.key) " v" (i.version) } } }
                        } }
                        td { (s.created_by) }
                        td { (short_time(&s.created_at.to_rfc3339())) }
                        @if writes == Writes::Directly {
                            td { form method="post" action={(env_href(env)) "/snapshots/" (segment(&s.name)) "/restore"}
                                data-confirm={"Restore snapshot " (s.name) "? " (env) " will hold exactly its keys again; keys made since are deleted."} {
                                input type="hidden" name="csrf" value=(session.csrf);
                                button.danger type="submit" id={"restore-" (s.name)} { "Restore" }
                            } }
                        }
                    }
                }
            }
        }
    }
}

/// The snapshots part of an environment's page.
pub fn section(
    session: &Session,
    (env, writes): (&str, Writes),
    taken: &[Snapshot],
    f: &SnapshotForm,
    refused: Option<&Refused>,
) -> Markup {
    let errors = refused.map(|r| r.errors.clone()).unwrap_or_default();
    let err = |id: &str| fields::beside(&errors, &FIELDS, id);
    html! {
        h2 { "Snapshots" }
        @if taken.is_empty() { p.empty id="no-snapshots" { "No snapshots yet." } } @else { (table(session, (env, writes), taken)) }
        // The API lets anyone who may write config take one, protected or not.
        @if writes != Writes::No {
            @if let Some(refused) = refused { (refused.summary("snapshot-error", &FIELDS)) }
            form.stack method="post" action={(env_href(env)) "/snapshots"} id="new-snapshot" {
                input type="hidden" name="csrf" value=(session.csrf);
                label for="snapshot-name" { "Name" }
                input id="snapshot-name" name="name" value=(f.name) placeholder="before-release" aria-describedby="error-snapshot-name";
                label for="snapshot-description" { "Description" }
                input id="snapshot-description" name="description" value=(f.description);
                button type="submit" id="take-snapshot" { "Take snapshot" }
            }
            (err("snapshot-name"))
            (err("snapshot-description"))
        }
    }
}

/// `POST /ui/config/{env}/snapshots`.
pub async fn take(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    headers: HeaderMap,
    Path(env): Path<String>,
    Form(f): Form<SnapshotForm>,
) -> Response {
    let back = env_href(&env);
    let (session, credential) = match session::require_form(&state, &headers, &back, &f.csrf).await
    {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    let body = json!({"name": f.name.trim(), "description": f.description.trim()});
    let path = format!("{}/snapshots", env_api(&env));
    match send(&api, &credential, (Method::POST, &path), Some(body)).await {
        Ok(_) => Redirect::to(&back).into_response(),
        Err(refused) => {
            let status = refused.status;
            let shown = Shown {
                snapshot: (f, Some(refused)),
                ..Shown::fresh()
            };
            environment::render(&api, (&session, &credential), (&env, ""), shown, status).await
        }
    }
}

/// `POST /ui/config/{env}/snapshots/{name}/restore`.
pub async fn restore(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    headers: HeaderMap,
    Path((env, name)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let back = env_href(&env);
    let (session, credential) =
        match session::require_form(&state, &headers, &back, &form.csrf).await {
            Ok(s) => s,
            Err(answer) => return answer,
        };
    let path = format!("{}/snapshots/{}/restore", env_api(&env), segment(&name));
    match send(&api, &credential, (Method::POST, &path), None).await {
        Ok(_) => Redirect::to(&back).into_response(),
        Err(refused) => {
            let status = refused.status;
            let shown = Shown {
                notice: refused.summary("restore-error", &[]),
                ..Shown::fresh()
            };
            environment::render(&api, (&session, &credential), (&env, ""), shown, status).await
        }
    }
}
