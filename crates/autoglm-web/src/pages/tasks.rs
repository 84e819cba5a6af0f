//! The tasks page: every operation of the tenant, newest first, filtered by
//! state and kind, each with its progress bar (refreshed live), its error
//! or outcome, and, for roles that may change services, a cancel button
//! while it is pending or running. A service's page shows its own tasks
//! with [`tasks_table`].

use crate::extract::{Form, Query};
use autoglm_core::rbac::Permission;
use autoglm_core::task::{Task, TaskKind, TaskState};
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use crate::api::{Api, problem_words, refusal, segment};
use crate::layout;
use crate::session::{self, CsrfForm, Session, SignedIn};
use autoglm_console::AppState;

const HERE: &str = "/ui/tasks";

/// The filters of the page.
#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    #[serde(default)]
    state: String,
    #[serde(default)]
    kind: String,
}

fn state_badge(state: TaskState) -> Markup {
    let class = match state {
        TaskState::Succeeded => "ok",
        TaskState::Failed => "bad",
        TaskState::Pending | TaskState::Running => "warn",
        TaskState::Cancelled => "",
    };
    html! { span class={"badge " (class)} { (state.as_str()) } }
}

/// Tasks as a table with id `id`; cancel buttons when `session` may change
/// services, coming back to `back` afterwards.
pub fn tasks_table(id: &str, tasks: &[Task], session: &Session, back: &str) -> Markup {
    let can_cancel = session.principal.require(Permission::ServicesWrite).is_ok();
    html! {
        table id=(id) {
            thead { tr {
                th.num scope="col" { "Task" } th scope="col" { "Kind" } th scope="col" { "Target" }
                th scope="col" { "State" } th scope="col" { "Progress" } th.num scope="col" { "Attempts" }
                th scope="col" { "Created" } th scope="col" { "By" }
                @if can_cancel { th scope="col" { span.muted { "Cancel" } } }
            } }
            tbody {
                @for t in tasks {
                    tr id={"task-" (t.id)} data-state=(t.state.as_str()) {
                        td.num { (t.id) }
                        td.kind { (t.kind.as_str()) }
                        td { @match t.target.strip_prefix("services/") {
                            Some(name) => a href={"/ui/services/" (segment(name))} { (t.target) },
                            None => (t.target),
                        } }
                        td.state { (state_badge(t.state)) }
                        td.progress {
                            progress value=(t.progress.percent) max="100" aria-label={"task " (t.id) " progress"} { (t.progress.percent) "%" }
                            " " span.percent { (t.progress.percent) "%" }
                            @if let Some(e) = &t.error {
                                p.error.message { (e.code) ": " (e.message) }
                            } @else if !t.progress.message.is_empty() {
                                p.muted.message { (t.progress.message) }
                            }
                        }
                        td.num { (t.attempt) " of " (t.max_attempts) }
                        td { time datetime=(t.created_at) { (layout::short_time(&t.created_at)) } }
                        td { (t.created_by) }
                        @if can_cancel {
                            td { @if !t.state.is_final() && !t.cancel_requested {
                                form method="post" action={(HERE) "/" (t.id) "/cancel"} {
                                    input type="hidden" name="csrf" value=(session.csrf);
                                    input type="hidden" name="back" value=(back);
                                    button.danger type="submit" id={"cancel-" (t.id)} { "Cancel" }
                                }
                            } }
                        }
                    }
                }
            }
        }
    }
}

/// The tasks the API lists at `query`, or the words of its refusal.
pub async fn list(api: &Api, credential: &str, query: &str) -> Result<Vec<Task>, Vec<String>> {
    let (status, answer) = api
        .call(
            Method::GET,
            &format!("/api/v1/tasks?{query}"),
            credential,
            None,
        )
        .await;
    if !status.is_success() {
        return Err(problem_words(&answer));
    }
    serde_json::from_value(answer["items"].clone()).map_err(|e| vec![e.to_string()])
}

async fn render(
    api: &Api,
    session: &Session,
    credential: &str,
    filters: &Filters,
    notice: Option<Markup>,
    status: StatusCode,
) -> Response {
    let mut query = vec!["limit=200".to_owned()];
    if !filters.state.is_empty() {
        query.push(format!("state={}", segment(&filters.state)));
    }
    if !filters.kind.is_empty() {
        query.push(format!("kind={}", segment(&filters.kind)));
    }
    let listed = list(api, credential, &query.join("&")).await;
    let body = html! {
        p.muted { "Every change to a service runs as a task: deploys, updates, scaling, restarts, traffic splits and deletes. Cancelling puts the service back as it was before the task's change." }
        form.search method="get" action=(HERE) role="search" {
            label for="state" class="muted" { "State" }
            select id="state" name="state" {
                option value="" selected[filters.state.is_empty()] { "any" }
                @for s in TaskState::ALL { option value=(s.as_str()) selected[filters.state == s.as_str()] { (s.as_str()) } }
            }
            label for="kind" class="muted" { "Kind" }
            select id="kind" name="kind" {
                option value="" selected[filters.kind.is_empty()] { "any" }
                @for k in TaskKind::ALL { option value=(k.as_str()) selected[filters.kind == k.as_str()] { (k.as_str()) } }
            }
            button type="submit" { "Filter" }
        }
        @if let Some(notice) = notice { (notice) }
        section id="live-tasks" data-live {
            @match &listed {
                Ok(tasks) if tasks.is_empty() => p.empty { "No task matches." },
                Ok(tasks) => (tasks_table("tasks", tasks, session, HERE)),
                Err(words) => div.error role="alert" { @for w in words { p { (w) } } },
            }
        }
    };
    let status = if listed.is_err() && status == StatusCode::OK {
        StatusCode::BAD_REQUEST
    } else {
        status
    };
    (status, layout::page(session, HERE, "Tasks", body)).into_response()
}

/// `GET /ui/tasks`.
pub async fn page(
    SignedIn {
        session,
        credential,
    }: SignedIn,
    Extension(api): Extension<Api>,
    Query(filters): Query<Filters>,
) -> Response {
    render(&api, &session, &credential, &filters, None, StatusCode::OK).await
}

#[derive(Debug, Deserialize)]
pub struct CancelForm {
    #[serde(flatten)]
    csrf: CsrfForm,
    #[serde(default)]
    back: String,
}

/// `POST /ui/tasks/{id}/cancel`: back to the page it came from (the tasks
/// page or a service's), or the tasks page with the refusal.
pub async fn cancel(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CancelForm>,
) -> Response {
    let (session, credential) =
        match session::require_form(&state, &headers, HERE, &form.csrf.csrf).await {
            Ok(s) => s,
            Err(answer) => return answer,
        };
    let path = format!("/api/v1/tasks/{}/cancel", segment(&id));
    let (status, answer) = api.call(Method::POST, &path, &credential, None).await;
    if status.is_success() {
        // Only back to a page of this console.
        let back = if form.back.starts_with("/ui/") && !form.back.contains("//") {
            form.back.as_str()
        } else {
            HERE
        };
        return Redirect::to(back).into_response();
    }
    let notice = refusal("cancel-error", &answer);
    render(
        &api,
        &session,
        &credential,
        &Filters::default(),
        Some(notice),
        status,
    )
    .await
}
