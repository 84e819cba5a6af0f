//! A service's rollout panel: its phase, the canary's weight, the steps as
//! a timeline (done, now, to come), each analysis measurement against the
//! stable version, and for roles that may change services the pause,
//! resume, promote and abort buttons, all through the console's API.

use crate::extract::Form;
use autoglm_core::rbac::Permission;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde_json::Value;

use crate::api::{Api, refusal, segment};
use crate::session::{self, CsrfForm, Session};
use autoglm_console::AppState;

/// The rollout of service `name`, as the API answers it; `None` when it never had one.
pub async fn read(api: &Api, credential: &str, name: &str) -> Option<Value> {
    let path = format!("/api/v1/services/{}/rollout", segment(name));
    let (status, answer) = api.call(Method::GET, &path, credential, None).await;
    status.is_success().then_some(answer)
}

fn phase_badge(phase: &str) -> Markup {
    let class = match phase {
        "Healthy" => "ok",
        "Degraded" => "bad",
        _ => "warn",
    };
    html! { span class={"badge " (class)} id="rollout-phase" { (phase) } }
}

/// The panel; `here` is the service's page.
pub fn panel(rollout: &Value, session: &Session, here: &str, notice: Markup) -> Markup {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let step = rollout["step"].as_u64().unwrap_or(0) as usize;
    let phase = text(&rollout["phase"]);
    let running = phase == "Progressing" || phase == "Paused";
    let can_write = session.principal.require(Permission::ServicesWrite).is_ok();
    html! {
        h2 { "Rollout " (phase_badge(&phase)) }
        p id="rollout-summary" {
            "Version " strong { (text(&rollout["canary"])) } " at " strong id="rollout-weight" { (rollout["weight"]) "%" }
            ", stable version " (text(&rollout["stable"])) ". " (text(&rollout["message"]))
        }
        ol.timeline id="rollout-steps" {
            @for (i, s) in rollout["steps"].as_array().into_iter().flatten().enumerate() {
                @let state = if i < step { "done" } else if i == step && running { "now" } else { "next" };
                li class=(state) data-step=(i) { (text(s)) @if state == "now" { " ← now" } }
            }
        }
        @let measured: Vec<(String, Value, Value)> = rollout["analysis"].as_array().into_iter().flatten()
            .flat_map(|a| a["measurements"].as_array().cloned().unwrap_or_default().into_iter()
                .map(move |m| (text(&a["name"]), a["step"].clone(), m)))
            .collect();
        @if !measured.is_empty() {
            table id="rollout-analysis" {
                thead { tr { th scope="col" { "Step" } th scope="col" { "Metric" } th.num scope="col" { "Canary" } th.num scope="col" { "Stable" } th scope="col" { "Result" } th scope="col" { "At" } } }
                tbody {
                    @for (name, step, m) in &measured {
                        tr {
                            td { (step) }
                            td { (name) }
                            td.num { @match m["value"].as_f64() { Some(v) => (format!("{v:.4}")), None => "no data" } }
                            td.num { @match m["baseline"].as_f64() { Some(v) => (format!("{v:.4}")), None => "–" } }
                            td { @match m["phase"].as_str() {
                                Some("Successful") => span.badge.ok { "Successful" },
                                Some("Failed") => span.badge.bad { "Failed" },
                                other => span.badge.warn { (other.unwrap_or_default()) },
                            } }
                            td { (crate::layout::short_time(m["at"].as_str().unwrap_or_default())) }
                        }
                    }
                }
            }
        }
        (notice)
        @if can_write && running {
            div.actions id="rollout-actions" {
                @for (action, label) in [("pause", "Pause"), ("resume", "Resume"), ("promote", "Promote"), ("abort", "Abort")] {
                    form method="post" action={(here) "/rollout/" (action)} {
                        input type="hidden" name="csrf" value=(session.csrf);
                        button type="submit" id={"rollout-" (action)} class=[(action == "abort").then_some("danger")] { (label) }
                    }
                }
            }
        }
    }
}

/// `POST /ui/services/{name}/rollout/{action}`: back to the service's page,
/// or it with the refusal beside the panel.
pub async fn act(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    Extension(config): Extension<crate::WebConfig>,
    headers: HeaderMap,
    Path((name, action)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let here = super::here(&name);
    let (session, credential) =
        match session::require_form(&state, &headers, &here, &form.csrf).await {
            Ok(s) => s,
            Err(answer) => return answer,
        };
    let path = format!(
        "/api/v1/services/{}/rollout/{}",
        segment(&name),
        segment(&action)
    );
    let (status, answer) = api.call(Method::POST, &path, &credential, None).await;
    if status.is_success() {
        return Redirect::to(&here).into_response();
    }
    let notices = std::collections::HashMap::from([("rollout", refusal("rollout-error", &answer))]);
    super::render(
        (&api, config),
        &session,
        &credential,
        &name,
        (&notices, &std::collections::HashMap::new()),
        status,
    )
    .await
}
