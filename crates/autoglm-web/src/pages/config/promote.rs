//! `/ui/config/promote`: make one environment hold what another holds. The
//! form previews first (a GET, since a preview writes nothing): the plan key
//! by key with its action and diff. Then "Promote" applies it, or, where the
//! target is protected and the session lacks `config:protected`, "Request
//! approval" files it as a change request. The API plans again on apply,
//! all or nothing.

use crate::extract::{Form, Query};
use autoglm_console::AppState;
use autoglm_core::config::{Environment, PlannedChange, PromotionPlan};
use autoglm_core::registry::Page;
use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::diff::side_by_side;
use super::{HERE, Refused, Writes, action_badge, count, env_api, env_href, send};
use crate::api::Api;
use crate::layout;
use crate::session::{self, Session, SignedIn};

const TITLE: &str = "Promote";

fn here() -> String {
    format!("{HERE}/promote")
}

/// The promotion as chosen: on the page's query for a preview, posted to apply it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Promotion {
    csrf: String,
    from: String,
    to: String,
    /// `on` when ticked.
    prune: Option<String>,
    message: String,
    /// `promote`, or `request` for a change request.
    intent: String,
}

impl Promotion {
    fn chosen(&self) -> bool {
        !self.from.is_empty() && !self.to.is_empty()
    }

    /// The API's body of a preview or a promotion.
    fn body(&self) -> serde_json::Value {
        json!({"from": self.from, "to": self.to, "prune": self.prune.is_some(), "message": self.message})
    }
}

fn env_select(id: &str, envs: &[Environment], chosen: &str) -> Markup {
    html! {
        select id=(id) name=(id) {
            @for env in envs {
                option value=(env.name) selected[env.name == chosen] {
                    (env.name) @if env.protected { " (protected)" }
                }
            }
        }
    }
}

/// The form choosing the two sides, the first two environments until chosen.
fn chooser(envs: &[Environment], p: &Promotion) -> Markup {
    let nth = |i: usize| envs.get(i).map_or("", |e| e.name.as_str());
    let from = if p.from.is_empty() { nth(0) } else { &p.from };
    let to = if p.to.is_empty() { nth(1) } else { &p.to };
    html! {
        form.stack method="get" action=(here()) id="promotion" {
            label for="from" { "From" } (env_select("from", envs, from))
            label for="to" { "to" } (env_select("to", envs, to))
            label { input type="checkbox" name="prune" id="prune" checked[p.prune.is_some()]; " also delete the keys the source does not hold" }
            label for="promotion-message" { "Message" }
            input id="promotion-message" name="message" value=(p.message) placeholder="why";
            button type="submit" id="preview" { "Preview" }
        }
    }
}

fn change(c: &PlannedChange, i: usize) -> Markup {
    html! {
        section.change id={"change-" (i)} data-key={(c.group) "/" (c.key)} {
            h3 { (action_badge(c.action)) " " (c.group) "/" (c.key) " "
                span.muted {
                    (c.format.as_str())
                    @if c.base_version > 0 { " · target at version " (c.base_version) }
                    @if let Some(v) = c.source_version { " · source version " (v) }
                }
            }
            (side_by_side(&format!("change-{i}-diff"), &c.diff))
        }
    }
}

/// The plan key by key, and the button that applies it (or requests it).
fn plan(session: &Session, p: &Promotion, plan: &PromotionPlan, writes: Writes) -> Markup {
    let (intent, label) = match writes {
        Writes::Directly => ("promote", "Promote"),
        Writes::ByRequest => ("request", "Request approval"),
        Writes::No => ("", ""),
    };
    html! {
        h2 { "Plan: " (plan.from) " → " (plan.to) }
        p.muted id="plan-summary" {
            (count(plan.changes.len(), "key")) " to change, " (plan.unchanged) " already equal."
        }
        @for (i, c) in plan.changes.iter().enumerate() { (change(c, i)) }
        @if !plan.changes.is_empty() && !intent.is_empty() {
            form method="post" action=(here()) id="apply-promotion" {
                input type="hidden" name="csrf" value=(session.csrf);
                input type="hidden" name="from" value=(p.from);
                input type="hidden" name="to" value=(p.to);
                @if p.prune.is_some() { input type="hidden" name="prune" value="on"; }
                input type="hidden" name="message" value=(p.message);
                @if writes == Writes::ByRequest {
                    p.muted { (p.to) " is protected: a second user with " code { "config:protected" } " approves the request." }
                }
                button type="submit" name="intent" value=(intent) id="apply" { (label) }
            }
        }
    }
}

async fn render(
    api: &Api,
    (session, credential): (&Session, &str),
    p: &Promotion,
    refused: Option<&Refused>,
) -> Response {
    let envs: Page<Environment> = match api.get_as("/api/v1/config/environments", credential).await
    {
        Ok(envs) => envs,
        Err(unread) => return unread.page(session, HERE, TITLE),
    };
    let previewed = if p.chosen() {
        let path = "/api/v1/config/promotions/preview";
        Some(send(api, credential, (Method::POST, path), Some(p.body())).await)
    } else {
        None
    };
    let target = envs.items.iter().find(|e| e.name == p.to);
    let writes = target.map_or(Writes::No, |env| Writes::of(session, env));
    let status = refused.map_or(StatusCode::OK, |r| r.status);
    let body = html! {
        p { a href=(HERE) { "← Environments" } }
        (chooser(&envs.items, p))
        @if let Some(refused) = refused { (refused.summary("promotion-error", &[])) }
        @match previewed {
            Some(Ok(answer)) => @match serde_json::from_value::<PromotionPlan>(answer) {
                Ok(planned) => (plan(session, p, &planned, writes)),
                Err(_) => p.error role="alert" { "The console answered the preview with something else than a plan." },
            },
            Some(Err(refused)) => (refused.summary("preview-error", &[])),
            None => p.muted { "Choose two environments and preview what would change." },
        }
        @if target.is_some() { p { a href=(env_href(&p.to)) { "Open " (p.to) } } }
    };
    (status, layout::page(session, HERE, TITLE, body)).into_response()
}

/// `GET /ui/config/promote[?from=&to=&prune=on&message=]`: the form, and
/// the plan when two environments are chosen.
pub async fn page(
    SignedIn {
        session,
        credential,
    }: SignedIn,
    Extension(api): Extension<Api>,
    Query(p): Query<Promotion>,
) -> Response {
    render(&api, (&session, &credential), &p, None).await
}

/// `POST /ui/config/promote`: promotes (on to the target) or files the
/// promotion as a change request (on to the requests).
pub async fn apply(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    headers: HeaderMap,
    Form(p): Form<Promotion>,
) -> Response {
    let (session, credential) =
        match session::require_form(&state, &headers, &here(), &p.csrf).await {
            Ok(s) => s,
            Err(answer) => return answer,
        };
    let sent = if p.intent == "request" {
        let path = format!("{}/requests", env_api(&p.to));
        let body = json!({"from": p.from, "prune": p.prune.is_some(), "message": p.message});
        send(&api, &credential, (Method::POST, &path), Some(body)).await
    } else {
        let path = "/api/v1/config/promotions";
        send(&api, &credential, (Method::POST, path), Some(p.body())).await
    };
    match sent {
        Ok(_) if p.intent == "request" => Redirect::to(&format!("{HERE}/requests")).into_response(),
        Ok(_) => Redirect::to(&env_href(&p.to)).into_response(),
        Err(refused) => render(&api, (&session, &credential), &p, Some(&refused)).await,
    }
}
