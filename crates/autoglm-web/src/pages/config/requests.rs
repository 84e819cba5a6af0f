//! `/ui/config/requests`: change requests, newest first, filtered by state,
//! each with its frozen changes and their diffs; for sessions holding
//! `config:protected`, approve and reject (with a reason) on the requests
//! that someone else filed, as the API allows. An approval refused because a
//! key moved since the request was filed says so: nothing was applied.

use crate::extract::{Form, Query};
use autoglm_console::AppState;
use autoglm_core::config::ChangeRequest;
use autoglm_core::rbac::Permission;
use autoglm_core::registry::Page;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::diff::side_by_side;
use super::{HERE, action_badge, env_href, send};
use crate::api::{Api, segment};
use crate::layout::{self, short_time};
use crate::session::{self, Session, SignedIn};

const TITLE: &str = "Change requests";

fn here() -> String {
    format!("{HERE}/requests")
}

/// A request's state as a badge.
fn state_badge(state: &str) -> Markup {
    let class = match state {
        "pending" => "warn",
        "approved" => "ok",
        "rejected" => "bad",
        _ => "",
    };
    html! { span class={"badge " (class)} { (state) } }
}

/// `?state=` of the page.
#[derive(Debug, Default, Deserialize)]
pub struct StateFilter {
    #[serde(default)]
    state: String,
}

fn filters(chosen: &str) -> Markup {
    html! {
        nav.filters aria-label="State" {
            @for (wanted, words) in [("", "all"), ("pending", "pending"), ("approved", "approved"), ("rejected", "rejected")] {
                @let href = if wanted.is_empty() { here() } else { format!("{}?state={wanted}", here()) };
                @if chosen == wanted {
                    a href=(href) aria-current="page" { strong { (words) } }
                } @else {
                    a href=(href) { (words) }
                }
                " "
            }
        }
    }
}

/// Approve and reject, with the reason both carry.
fn decision(session: &Session, r: &ChangeRequest) -> Markup {
    let action = format!("{}/{}", here(), r.id);
    html! {
        form.stack method="post" action={(action) "/approve"} id={"decide-" (r.id)} {
            input type="hidden" name="csrf" value=(session.csrf);
            label for={"reason-" (r.id)} { "Reason" }
            input id={"reason-" (r.id)} name="reason" placeholder="checked with the team";
            button type="submit" id={"approve-" (r.id)} { "Approve" }
            button.danger type="submit" formaction={(action) "/reject"} id={"reject-" (r.id)} { "Reject" }
        }
    }
}

fn request(session: &Session, r: &ChangeRequest) -> Markup {
    // The API lets only a second user with config:protected decide.
    let may_decide = r.state == "pending"
        && r.requested_by != session.principal.actor
        && session
            .principal
            .require(Permission::ConfigProtected)
            .is_ok();
    html! {
        article.request id={"request-" (r.id)} data-state=(r.state) {
            h2 {
                "#" (r.id) " · " a href=(env_href(&r.environment)) { (r.environment) }
                @if let Some(from) = &r.from { span.muted { " from " (from) } }
                " " span.state { (state_badge(&r.state)) }
            }
            p.muted {
                "Requested by " (r.requested_by) " at " (short_time(&r.requested_at.to_rfc3339()))
                @if !r.message.is_empty() { ": " (r.message) }
            }
            @if let (Some(by), Some(at)) = (&r.decided_by, r.decided_at) {
                p.muted.decided { (r.state) " by " (by) " at " (short_time(&at.to_rfc3339())) @if !r.reason.is_empty() { ": " (r.reason) } }
            }
            @for (i, c) in r.changes.iter().enumerate() {
                h3 { (action_badge(c.action)) " " (c.group) "/" (c.key)
                    span.muted { " " (c.format.as_str()) @if c.base_version > 0 { " · planned against version " (c.base_version) } } }
                (side_by_side(&format!("request-{}-change-{i}", r.id), &c.diff))
            }
            @if may_decide { (decision(session, r)) }
        }
    }
}

async fn render(
    api: &Api,
    (session, credential): (&Session, &str),
    state: &str,
    notice: Markup,
    status: StatusCode,
) -> Response {
    let path = if state.is_empty() {
        "/api/v1/config/requests".to_owned()
    } else {
        format!("/api/v1/config/requests?state={}", segment(state))
    };
    let requests: Page<ChangeRequest> = match api.get_as(&path, credential).await {
        Ok(requests) => requests,
        Err(unread) => return unread.page(session, HERE, TITLE),
    };
    let body = html! {
        p {
            a href=(HERE) { "← Environments" } " · "
            span.muted { "A change of a protected environment waits here until a second user with " code { "config:protected" } " approves it." }
        }
        (filters(state))
        (notice)
        @if requests.items.is_empty() { p.empty id="no-requests" { "No change requests." } }
        @for r in &requests.items { (request(session, r)) }
    };
    (status, layout::page(session, HERE, TITLE, body)).into_response()
}

/// `GET /ui/config/requests[?state=]`.
pub async fn page(
    SignedIn {
        session,
        credential,
    }: SignedIn,
    Extension(api): Extension<Api>,
    Query(filter): Query<StateFilter>,
) -> Response {
    let signed_in = (&session, credential.as_str());
    render(&api, signed_in, &filter.state, html! {}, StatusCode::OK).await
}

/// The decision form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DecisionForm {
    csrf: String,
    reason: String,
}

/// `POST /ui/config/requests/{id}/{decision}`: approve or reject; back to
/// the requests, or them with the refusal above.
pub async fn decide(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    headers: HeaderMap,
    Path((id, decision)): Path<(String, String)>,
    Form(form): Form<DecisionForm>,
) -> Response {
    let (session, credential) =
        match session::require_form(&state, &headers, &here(), &form.csrf).await {
            Ok(s) => s,
            Err(answer) => return answer,
        };
    let path = format!(
        "/api/v1/config/requests/{}/{}",
        segment(&id),
        segment(&decision)
    );
    let body = json!({"reason": form.reason});
    let Err(refused) = send(&api, &credential, (Method::POST, &path), Some(body)).await else {
        return Redirect::to(&here()).into_response();
    };
    let notice = if refused.is_stale() {
        refused.explained("request-error", html! {
            p id="request-stale" {
                "A key moved since request #" (id) " was filed, so nothing was applied and it stays pending. "
                "Reject it, and file it again against the environment as it is now."
            }
        })
    } else {
        refused.summary("request-error", &[])
    };
    render(&api, (&session, &credential), "", notice, refused.status).await
}
