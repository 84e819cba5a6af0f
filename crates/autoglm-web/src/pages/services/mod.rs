//! A service's page: its health, conditions, replicas and alerts (refreshed live),
//! charts of the last hour per version, and, for roles that may change it,
//! the traffic split, scale and restart, all through the console's API.

pub mod charts;
pub mod form;
pub mod rollout;

use std::collections::HashMap;

use crate::extract::{Form, Query};
use autoglm_console::AppState;
use autoglm_core::rbac::Permission;
use autoglm_core::service::{ConditionStatus, LoadBalancing, ModelServiceManifest, ReplicaState};
use autoglm_core::traffic::ServiceTraffic;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde_json::json;

use crate::WebConfig;
use crate::api::{Api, problem_words, refusal, segment};
use crate::layout;
use crate::session::{self, CsrfForm, Session, SignedIn};

pub(crate) fn here(name: &str) -> String {
    format!("/ui/services/{}", segment(name))
}

/// The badge of a condition status.
pub fn condition_badge(status: ConditionStatus, yes: &str, no: &str) -> Markup {
    match status {
        ConditionStatus::True => html! { span.badge.ok { (yes) } },
        ConditionStatus::False => html! { span.badge.bad { (no) } },
        ConditionStatus::Unknown => html! { span.badge.warn { "Pending" } },
    }
}

fn replica_badge(state: ReplicaState) -> Markup {
    let (class, word) = match state {
        ReplicaState::Ready => ("ok", "ready"),
        ReplicaState::Starting => ("warn", "starting"),
        ReplicaState::Failed => ("bad", "failed"),
        ReplicaState::Stopped => ("", "stopped"),
    };
    html! { span class={"badge " (class)} { (word) } }
}

/// The page, with `notices` (an action's refusal) above the part they
/// concern, and the forms showing what was `typed` into them, if anything.
/// The service's balancing strategy, with the prefix-hash knobs in words.
fn balancing(balancing: &LoadBalancing) -> Markup {
    html! {
        code id="balancing" { (balancing.strategy.as_str()) }
        @if let Some(knobs) = balancing.prefix_hash() {
            " (key: the first " (knobs.prefix_char_length) " characters of each message up to user turn "
            (knobs.user_messages) "; a replica keeps its chats while within "
            (knobs.mean_load_factor) "% of the mean load)"
        }
    }
}

pub(crate) async fn render(
    (api, config): (&Api, WebConfig),
    session: &Session,
    credential: &str,
    name: &str,
    (notices, typed): (&HashMap<&str, Markup>, &HashMap<String, String>),
    status: StatusCode,
) -> Response {
    let here = here(name);
    let path = format!("/api/v1/services/{}", segment(name));
    let manifest: ModelServiceManifest = match api.get_as(&path, credential).await {
        Ok(manifest) => manifest,
        Err(unread) => return unread.page(session, &here, name),
    };
    let (_, traffic) = api
        .call(Method::GET, &format!("{path}/traffic"), credential, None)
        .await;
    let traffic: Option<ServiceTraffic> = serde_json::from_value(traffic).ok();
    let can_write = session.principal.require(Permission::ServicesWrite).is_ok();
    let tasks = super::tasks::list(
        api,
        credential,
        &format!("target=services/{}&limit=10", segment(name)),
    )
    .await;
    let rollout = rollout::read(api, credential, name).await;
    let alerts = super::alerts::of_service(api, session, credential, name).await;
    let spec = &manifest.spec;
    let config_key = match &spec.config_ref {
        Some(r) => Some(config_key(api, credential, r).await),
        None => None,
    };
    let filters = super::filters::service_section(api, credential, name, &spec.filters).await;
    let state = manifest.status.clone().unwrap_or_default();
    let notice = |part: &str| notices.get(part).cloned().unwrap_or_default();
    let body = html! {
        p.muted {
            "Model " a href={"/ui/models/" (spec.model)} { (spec.model) }
            " · generation " (manifest.metadata.generation.unwrap_or(0))
            @if let Some(url) = &state.url { " · called at " code { (url) } }
            " · replicas chosen by " (balancing(&spec.load_balancing.clone().unwrap_or_default()))
        }
        @if let Some((link, label, now)) = &config_key {
            p.muted id="config-ref" {
                "Replicas read config key " a href=(link) { code { (label) } }
                " as " code { "$AUTOGLM_CONFIG_FILE" } " · " (now)
                " · each publish rolls them"
            }
        }
        @if let Some(rollout) = &rollout {
            section id="live-rollout" data-live {
                (rollout::panel(rollout, session, &here, notice("rollout")))
            }
        }
        @if let Some(alerts) = &alerts {
            section id="live-alerts" data-live { (super::alerts::service_panel(name, alerts)) }
        }
        @if let Some(grafana) = config.grafana_url {
            p.muted id="dashboards" {
                "Dashboards: "
                a href=(dashboard(grafana, "autoglm-service", &session.principal.grant.tenant, name)) { "this service by version" }
                " · "
                a href=(dashboard(grafana, "autoglm-runtime", &session.principal.grant.tenant, name)) { "its runtime" }
                " · "
                a href=(dashboard(grafana, "autoglm-overview", &session.principal.grant.tenant, name)) { "the platform" }
            }
        }
        section id="live-status" data-live {
            h2 { "Health" }
            table id="conditions" {
                thead { tr { th scope="col" { "Condition" } th scope="col" { "Status" } th scope="col" { "Reason" } th scope="col" { "Message" } th scope="col" { "Since" } } }
                tbody {
                    @for c in &state.conditions {
                        tr {
                            th scope="row" { (c.type_) }
                            td { (condition_badge(c.status, "True", "False")) }
                            td { (c.reason) }
                            td { (c.message) }
                            td { @if let Some(t) = &c.last_transition_time { (layout::short_time(t)) " UTC" } }
                        }
                    }
                }
            }
            h2 { "Tasks " span.muted { a href="/ui/tasks" { "all tasks" } } }
            @match &tasks {
                Ok(tasks) if tasks.is_empty() => p.empty { "No task has run for this service." },
                Ok(tasks) => (super::tasks::tasks_table("service-tasks", tasks, session, &here)),
                Err(words) => div.error role="alert" { @for w in words { p { (w) } } },
            }
            h2 { "Replicas " span.muted id="replica-count" { (state.ready_replicas) " of " (state.desired_replicas) " ready" } }
            @if state.replicas.is_empty() {
                p.empty { "No replicas are running." }
            } @else {
                table id="replicas" {
                    thead { tr {
                        th scope="col" { "Replica" } th scope="col" { "Version" } th scope="col" { "State" }
                        th.num scope="col" { "Restarts" } th scope="col" { "Last exit" } th.num scope="col" { "Port" } th scope="col" { "Log" }
                    } }
                    tbody {
                        @for r in &state.replicas {
                            tr id={"replica-" (r.id)} {
                                th scope="row" { code { (r.id) } }
                                td { "v" (r.version) }
                                td.state { (replica_badge(r.state)) }
                                td.num { (r.restarts) }
                                td { (r.last_exit.as_deref().unwrap_or("–")) }
                                td.num { (r.port) }
                                td { a href={(here) "/replicas/" (r.id) "/logs"} { "Logs" } }
                            }
                        }
                    }
                }
            }
        }
        section.columns {
            div {
                h2 { "Traffic split" }
                (notice("split"))
                @if can_write && spec.versions.len() > 1 {
                    form.stack method="post" action={(here) "/split"} id="split" {
                        input type="hidden" name="csrf" value=(session.csrf);
                        input type="hidden" name="generation" value=(manifest.metadata.generation.unwrap_or(0));
                        @for v in &spec.versions {
                            label for={"weight-" (v.version)} { "v" (v.version) }
                            input id={"weight-" (v.version)} name={"weight:" (v.version)} type="number" min="0" max="100" value=(typed.get(&format!("weight:{}", v.version)).cloned().unwrap_or_else(|| v.weight.to_string())) required;
                            span.muted { "%" }
                        }
                        button type="submit" { "Apply split" }
                    }
                    p.muted { "Weights must sum to 100. The gateway moves traffic as soon as the change is saved." }
                } @else {
                    p id="split-now" { @for v in &spec.versions { span.label { "v" (v.version) " · " (v.weight) "%" } } }
                }
            }
            @if can_write {
                div {
                    h2 { "Replicas" }
                    (notice("scale"))
                    @if spec.autoscaling.is_some() {
                        p.muted { "Autoscaled on in-flight requests; edit the autoscaling bounds with " code { "autoglm apply" } "." }
                    } @else {
                        form.stack method="post" action={(here) "/scale"} id="scale" {
                            input type="hidden" name="csrf" value=(session.csrf);
                            label for="replicas" { "Replicas per version" }
                            input id="replicas" name="replicas" type="number" min="0" value=(typed.get("replicas").cloned().unwrap_or_else(|| spec.replicas.unwrap_or(1).to_string())) required;
                            button type="submit" { "Scale" }
                        }
                    }
                    (notice("restart"))
                    form method="post" action={(here) "/restart"} id="restart" {
                        input type="hidden" name="csrf" value=(session.csrf);
                        button type="submit" { "Restart every replica" }
                    }
                }
            }
        }
        @if !can_write {
            // Only a crafted request gets here: the page offers no such form.
            (notice("scale")) (notice("restart"))
        }
        (filters)
        section id="live-charts" data-live {
            h2 { "Traffic" }
            @match &traffic {
                Some(traffic) => (charts::charts(traffic, chrono::Utc::now())),
                None => p.empty { "This console keeps no traffic history: its gateway runs in another process. Read the gateway's metrics from Prometheus." },
            }
        }
    };
    (status, layout::page(session, "/ui", name, body)).into_response()
}

/// A `configRef`'s page, its name, and its live version in words.
async fn config_key(
    api: &Api,
    credential: &str,
    r: &autoglm_core::service::ConfigRef,
) -> (String, String, String) {
    let path = format!(
        "{}/keys/{}/{}",
        segment(r.environment()),
        segment(r.group()),
        segment(&r.key)
    );
    let (status, key) = api
        .call(
            Method::GET,
            &format!("/api/v1/config/environments/{path}"),
            credential,
            None,
        )
        .await;
    let now = match (status.is_success(), key["version"].as_u64()) {
        (true, Some(version)) => format!(
            "now version {version} (md5 {})",
            key["md5"].as_str().unwrap_or_default()
        ),
        _ if status == StatusCode::NOT_FOUND => {
            "the key is gone: replicas keep what they read".to_owned()
        }
        _ => "its version cannot be read here".to_owned(),
    };
    (
        format!("/ui/config/{path}"),
        format!("{}/{}/{}", r.environment(), r.group(), r.key),
        now,
    )
}

/// The Grafana dashboard `uid` (one of `deploy/grafana`'s), its variables
/// set to `tenant` and `service`.
fn dashboard(grafana: &str, uid: &str, tenant: &str, service: &str) -> String {
    format!(
        "{}/d/{uid}?var-tenant={}&var-service={}",
        grafana.trim_end_matches('/'),
        segment(tenant),
        segment(service)
    )
}

/// `GET /ui/services/{name}`.
pub async fn page(
    SignedIn {
        session,
        credential,
    }: SignedIn,
    Extension(api): Extension<Api>,
    Extension(config): Extension<WebConfig>,
    Path(name): Path<String>,
) -> Response {
    render(
        (&api, config),
        &session,
        &credential,
        &name,
        (&HashMap::new(), &HashMap::new()),
        StatusCode::OK,
    )
    .await
}

/// Runs an action's API call; on success back to the page, else the page
/// with the refusal beside the form of `part`.
async fn act(
    (api, config): (&Api, WebConfig),
    (session, credential): (Session, String),
    name: &str,
    part: &'static str,
    (method, path, body): (Method, String, Option<serde_json::Value>),
    typed: &HashMap<String, String>,
) -> Response {
    let (status, answer) = api.call(method, &path, &credential, body).await;
    if status.is_success() {
        return Redirect::to(&here(name)).into_response();
    }
    let notices = HashMap::from([(part, refusal(&format!("{part}-error"), &answer))]);
    render(
        (api, config),
        &session,
        &credential,
        name,
        (&notices, typed),
        status,
    )
    .await
}

/// `POST /ui/services/{name}/split`: new weights, as `weight:{version}` fields.
pub async fn split(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    Extension(config): Extension<WebConfig>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let csrf = form.get("csrf").cloned().unwrap_or_default();
    let (session, credential) =
        match session::require_form(&state, &headers, &here(&name), &csrf).await {
            Ok(s) => s,
            Err(answer) => return answer,
        };
    let path = format!("/api/v1/services/{}", segment(&name));
    let (_, mut manifest) = api.call(Method::GET, &path, &credential, None).await;
    let mut refused = Vec::new();
    if let Some(versions) = manifest["spec"]["versions"].as_array_mut() {
        for v in versions {
            let version = v["version"].as_str().unwrap_or_default().to_owned();
            match form
                .get(&format!("weight:{version}"))
                .map(|w| w.trim().parse::<u32>())
            {
                Some(Ok(weight)) => v["weight"] = json!(weight),
                _ => refused.push(format!("v{version}: a whole number from 0 to 100")),
            }
        }
    }
    if !refused.is_empty() {
        let problem = json!({"detail": "the split was not changed", "errors": refused.iter().map(|m| json!({"path": "weight", "message": m})).collect::<Vec<_>>()});
        let notices = HashMap::from([("split", refusal("split-error", &problem))]);
        return render(
            (&api, config),
            &session,
            &credential,
            &name,
            (&notices, &form),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    if let Some(generation) = form.get("generation").and_then(|g| g.parse::<i64>().ok()) {
        manifest["metadata"]["generation"] = json!(generation);
    }
    if let Some(object) = manifest.as_object_mut() {
        object.remove("status");
    }
    let call = (Method::PUT, path, Some(manifest));
    act(
        (&api, config),
        (session, credential),
        &name,
        "split",
        call,
        &form,
    )
    .await
}

#[derive(Debug, serde::Deserialize)]
pub struct ScaleForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    replicas: String,
}

/// `POST /ui/services/{name}/scale`.
pub async fn scale(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    Extension(config): Extension<WebConfig>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<ScaleForm>,
) -> Response {
    let signed_in = match session::require_form(&state, &headers, &here(&name), &form.csrf).await {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    let replicas = match form.replicas.trim().parse::<u32>() {
        Ok(n) => json!(n),
        // The API says what a replica count must be, in its own words.
        Err(_) => json!(form.replicas.trim()),
    };
    let call = (
        Method::POST,
        format!("/api/v1/services/{}/scale", segment(&name)),
        Some(json!({"replicas": replicas})),
    );
    let typed = HashMap::from([("replicas".to_owned(), form.replicas)]);
    act((&api, config), signed_in, &name, "scale", call, &typed).await
}

/// `POST /ui/services/{name}/restart`.
pub async fn restart(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    Extension(config): Extension<WebConfig>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let signed_in = match session::require_form(&state, &headers, &here(&name), &form.csrf).await {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    let call = (
        Method::POST,
        format!("/api/v1/services/{}/restart", segment(&name)),
        None,
    );
    act(
        (&api, config),
        signed_in,
        &name,
        "restart",
        call,
        &HashMap::new(),
    )
    .await
}

/// Query of the log pages: only the lines of one trace.
#[derive(Debug, Default, serde::Deserialize)]
pub struct LogFilter {
    #[serde(default)]
    trace_id: String,
}

impl LogFilter {
    /// The id asked for, trimmed; none when the box was left empty.
    fn trace_id(&self) -> Option<&str> {
        Some(self.trace_id.trim()).filter(|t| !t.is_empty())
    }

    /// The query string that asks for the same lines again.
    fn query(&self) -> String {
        self.trace_id()
            .map(|t| format!("?trace_id={}", segment(t)))
            .unwrap_or_default()
    }
}

/// `GET /ui/services/{name}/replicas/{replica}/logs`: the end of a replica's
/// log, followed live while the box is ticked; with a trace id, only that
/// trace's lines (every request's log lines carry its `trace_id`).
pub async fn logs(
    SignedIn {
        session,
        credential,
    }: SignedIn,
    Extension(api): Extension<Api>,
    Path((name, replica)): Path<(String, String)>,
    Query(filter): Query<LogFilter>,
) -> Response {
    let here = format!("{}/replicas/{}/logs", here(&name), segment(&replica));

    let (status, text) = log_tail(&api, &credential, (&name, &replica), &filter).await;
    let title = format!("{name} · {replica}");
    let body = html! {
        p { a href={"/ui/services/" (name)} { "← " (name) } }
        form.row method="get" action=(here) id="trace-filter" {
            label for="trace_id" { "Trace id" }
            input id="trace_id" name="trace_id" value=(filter.trace_id) placeholder="32 hex digits, from a traceparent or a log line";
            button type="submit" { "Show its lines" }
            @if filter.trace_id().is_some() { a href=(here) { "all lines" } }
        }
        label.follow { input type="checkbox" id="follow" checked; " Follow" }
        pre.log id="log" data-follow={(here) ".txt" (filter.query())} { (text) }
    };
    (status, layout::page(&session, "/ui", &title, body)).into_response()
}

/// `GET /ui/services/{name}/replicas/{replica}/logs.txt`: the same, as text,
/// for the follow mode.
pub async fn log_text(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    headers: HeaderMap,
    Path((name, replica)): Path<(String, String)>,
    Query(filter): Query<LogFilter>,
) -> Response {
    let here = format!("{}/replicas/{}/logs", here(&name), segment(&replica));
    let (_, credential) = match session::require_with_credential(&state, &headers, &here).await {
        Ok(s) => s,
        Err(to_login) => return to_login,
    };
    let (status, text) = log_tail(&api, &credential, (&name, &replica), &filter).await;
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

async fn log_tail(
    api: &Api,
    credential: &str,
    (name, replica): (&str, &str),
    filter: &LogFilter,
) -> (StatusCode, String) {
    let mut path = format!(
        "/api/v1/services/{}/replicas/{}/logs",
        segment(name),
        segment(replica)
    );
    match filter.trace_id() {
        Some(id) => path.push_str(&format!("?trace_id={}", segment(id))),
        None => path.push_str("?bytes=65536"),
    }
    let (status, text) = api.text(Method::GET, &path, credential).await;
    if status.is_success() {
        (status, without_terminal_codes(&text))
    } else {
        let problem: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        (status, problem_words(&problem).join("; "))
    }
}

/// `text` without terminal escape sequences (colours, cursor moves), which a
/// program writing to its log may still emit and a page would show as noise.
fn without_terminal_codes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        // CSI: ESC [ parameters, then one final byte from '@' to '~'.
        if chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            chars.next();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::without_terminal_codes;

    #[test]
    fn colours_are_taken_out_of_logs() {
        let coloured = "\u{1b}[2m2026\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m ready";
        assert_eq!(without_terminal_codes(coloured), "2026  INFO ready");
        assert_eq!(without_terminal_codes("plain [text]"), "plain [text]");
    }
}
