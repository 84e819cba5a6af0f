//! One incident: what fired, its labels, and its timeline in order (fired,
//! silenced, notified, playbook tasks, acknowledged, resolved), refreshed
//! live until it is resolved; for roles that may write alerts, the
//! acknowledge and resolve buttons, through the console's API.

use crate::extract::Form;
use autoglm_console::AppState;
use autoglm_core::alert::{Incident, IncidentState};
use autoglm_core::rbac::Permission;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::{HERE, took};
use crate::api::{Api, refusal, segment};
use crate::layout::{self, short_time};
use crate::pages::alerts::badge;
use crate::session::{self, CsrfForm, Session, SignedIn};

fn here(id: &str) -> String {
    format!("{HERE}/{}", segment(id))
}

fn facts(i: &Incident) -> Markup {
    let time = |t: chrono::DateTime<chrono::Utc>| short_time(&t.to_rfc3339());
    html! {
        dl.facts {
            dt { "State" } dd id="incident-state" { (badge(i.state.as_str())) }
            dt { "Rule" } dd { (i.rule) }
            dt { "Service" } dd { a href={"/ui/services/" (segment(&i.service))} { (i.service) } @if !i.version.is_empty() { " v" (i.version) } }
            dt { "Severity" } dd { (badge(&i.severity)) }
            dt { "Labels" } dd { @for (k, v) in &i.labels { span.label { (k) "=" (v) } } }
            dt { "From" } dd { (i.source) }
            dt { "Opened" } dd { (time(i.opened_at)) }
            dt { "Acknowledged" } dd { @match (i.acknowledged_at, &i.acknowledged_by) {
                (Some(t), Some(by)) => { (time(t)) " by " (by) },
                (Some(t), None) => (time(t)),
                _ => "–",
            } }
            dt { "Resolved" } dd { @if let Some(t) = i.resolved_at { (time(t)) " · after " (took(i.seconds_to_resolve)) } @else { "–" } }
        }
    }
}

fn timeline(i: &Incident) -> Markup {
    html! {
        table id="timeline" {
            thead { tr { th scope="col" { "Time" } th scope="col" { "What" } th scope="col" { "Message" } th scope="col" { "By" } th scope="col" { "Task" } } }
            tbody {
                @for e in &i.timeline {
                    tr data-kind=(e.kind.as_str()) {
                        td { (short_time(&e.at.to_rfc3339())) }
                        td.kind { (e.kind.as_str()) }
                        td { (e.message) }
                        td { (e.actor) }
                        td { @if let Some(task) = e.task_id { a href={"/ui/tasks#task-" (task)} { "task " (task) } } }
                    }
                }
            }
        }
    }
}

/// The buttons the incident's state and the session's role allow.
fn actions(i: &Incident, session: &Session) -> Markup {
    let can_write = session.principal.require(Permission::AlertsWrite).is_ok();
    let offered: Vec<(&str, &str)> = match i.state {
        _ if !can_write => Vec::new(),
        IncidentState::Open => vec![("acknowledge", "Acknowledge"), ("resolve", "Resolve")],
        IncidentState::Acknowledged => vec![("resolve", "Resolve")],
        IncidentState::Resolved => Vec::new(),
    };
    html! {
        @if !offered.is_empty() {
            div.actions id="incident-actions" {
                @for (action, label) in offered {
                    form method="post" action={(here(&i.id.to_string())) "/" (action)} {
                        input type="hidden" name="csrf" value=(session.csrf);
                        button type="submit" id=(action) { (label) }
                    }
                }
            }
        }
    }
}

async fn render(
    api: &Api,
    session: &Session,
    credential: &str,
    id: &str,
    notice: Markup,
    status: StatusCode,
) -> Response {
    let title = format!("Incident {id}");
    let path = format!("/api/v1/incidents/{}", segment(id));
    let incident: Incident = match api.get_as(&path, credential).await {
        Ok(incident) => incident,
        Err(unread) => return unread.page(session, HERE, &title),
    };
    let part = html! {
        (facts(&incident))
        (actions(&incident, session))
        h2 { "Timeline" }
        (timeline(&incident))
    };
    let body = html! {
        p { a href=(HERE) { "← Incidents" } }
        (notice)
        // Nothing changes a resolved incident, so only an unresolved one is refreshed.
        @if incident.state == IncidentState::Resolved {
            section id="incident" { (part) }
        } @else {
            section id="incident" data-live { (part) }
        }
    };
    (status, layout::page(session, HERE, &title, body)).into_response()
}

/// `GET /ui/incidents/{id}`.
pub async fn page(
    SignedIn {
        session,
        credential,
    }: SignedIn,
    Extension(api): Extension<Api>,
    Path(id): Path<String>,
) -> Response {
    render(&api, &session, &credential, &id, html! {}, StatusCode::OK).await
}

/// `POST /ui/incidents/{id}/{action}`: acknowledge or resolve; back to the
/// incident, or it with the refusal above it.
pub async fn act(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let back = here(&id);
    let (session, credential) =
        match session::require_form(&state, &headers, &back, &form.csrf).await {
            Ok(s) => s,
            Err(answer) => return answer,
        };
    let path = format!("/api/v1/incidents/{}/{}", segment(&id), segment(&action));
    let (status, answer) = api.call(Method::POST, &path, &credential, None).await;
    if status.is_success() {
        return Redirect::to(&back).into_response();
    }
    let notice = refusal("incident-error", &answer);
    render(&api, &session, &credential, &id, notice, status).await
}
