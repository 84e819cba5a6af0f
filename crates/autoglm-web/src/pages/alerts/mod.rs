//! The alerts page: the tenant's rules with their state and the series
//! pending or firing now (refreshed live), the silences, and the dead
//! letters (notifications no receiver took); for roles that may write
//! alerts, forms to create rules and silences and buttons to delete a rule
//! and expire a silence, all through the console's API. A service's page
//! shows its own series with [`service_panel`].

pub mod rule;
pub mod silence;

use crate::extract::Form;
use autoglm_console::AppState;
use autoglm_core::alert::{ActiveAlert, AlertRule, Notification, Playbook, PlaybookStep};
use autoglm_core::rbac::Permission;
use autoglm_core::registry::Page;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use crate::api::{Api, refusal, segment};
use crate::fields::{self, FieldErrors};
use crate::layout::{self, short_time};
use crate::session::{self, CsrfForm, Session, SignedIn};

const HERE: &str = "/ui/alerts";

/// A word of the alerts' vocabulary (a series', an incident's or a
/// silence's state, a severity) as a badge: red for what needs someone
/// now, amber for what is on its way or holding, green for what is over.
pub fn badge(word: &str) -> Markup {
    let class = match word {
        "firing" | "open" | "critical" => "bad",
        "pending" | "acknowledged" | "warning" | "active" => "warn",
        "inactive" | "resolved" => "ok",
        _ => "",
    };
    html! { span class={"badge " (class)} { (word) } }
}

/// A rule as the API lists it, with where its series stand.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    #[serde(flatten)]
    rule: AlertRule,
    state: String,
    alerts: Vec<ActiveAlert>,
}

/// A form sent back to the page: what was typed, and, when refused, the
/// summary and the refusals field by field.
#[derive(Debug)]
pub struct Returned<F> {
    form: F,
    summary: Option<String>,
    errors: FieldErrors,
}

impl<F> Returned<F> {
    /// The form, not refused.
    fn new(form: F) -> Returned<F> {
        Returned {
            form,
            summary: None,
            errors: FieldErrors::new(),
        }
    }

    /// The form refused with the API's `problem`.
    fn refused(form: F, problem: &serde_json::Value) -> Returned<F> {
        let summary = problem["detail"]
            .as_str()
            .unwrap_or("the request failed")
            .to_owned();
        Returned {
            form,
            summary: Some(summary),
            errors: fields::of_problem(problem),
        }
    }

    /// POSTs `body` (built from `form`; `errors` are the fields that could
    /// not be read, which `unread` sums up) to `path`: back to the page on
    /// success, else the form with the refusal and its status.
    async fn post(
        api: &Api,
        credential: &str,
        path: &str,
        form: F,
        (body, errors): (Value, FieldErrors),
        unread: &str,
    ) -> Result<Response, (StatusCode, Returned<F>)> {
        if !errors.is_empty() {
            let summary = Some(unread.to_owned());
            return Err((
                StatusCode::UNPROCESSABLE_ENTITY,
                Returned {
                    form,
                    summary,
                    errors,
                },
            ));
        }
        let (status, answer) = api.call(Method::POST, path, credential, Some(body)).await;
        if status.is_success() {
            Ok(Redirect::to(HERE).into_response())
        } else {
            Err((status, Returned::refused(form, &answer)))
        }
    }
}

/// What the page shows besides the records: both forms as they came back
/// and a refused delete or expire.
#[derive(Debug)]
pub struct Shown {
    rule: Returned<rule::RuleForm>,
    silence: Returned<silence::SilenceForm>,
    notice: Markup,
}

impl Shown {
    /// Both forms empty, nothing refused.
    fn fresh() -> Shown {
        Shown {
            rule: Returned::new(rule::RuleForm::fresh()),
            silence: Returned::new(silence::SilenceForm::fresh()),
            notice: Markup::default(),
        }
    }
}

/// Series as a list, each named by `name` (its service on the alerts
/// page, its rule on a service's).
fn series_list(alerts: &[ActiveAlert], name: impl Fn(&ActiveAlert) -> &str) -> Markup {
    html! {
        ul.series {
            @for a in alerts {
                li data-state=(a.state) {
                    (name(a)) " v" (a.version) " " (badge(&a.state)) " "
                    span.value { @match a.value { Some(v) => (format!("{v:.4}")), None => "no data" } }
                    span.muted { " since " (short_time(&a.since.to_rfc3339())) }
                    @if let Some(silence) = a.silenced_by { " " span.label { "silenced by " (silence) } }
                }
            }
        }
    }
}

/// A playbook in words: its steps in escalation order and its limits.
fn playbook_words(playbook: &Playbook) -> String {
    let steps: Vec<String> = playbook
        .steps
        .iter()
        .map(|step| match step {
            PlaybookStep::Restart {} => "restart".to_owned(),
            PlaybookStep::ScaleOut { by, max } => format!("scale out by {by} up to {max}"),
            PlaybookStep::Rollback {} => "roll back".to_owned(),
            PlaybookStep::Webhook { url } => format!("call {url}"),
        })
        .collect();
    format!(
        "{}; at most every {}, {} an hour",
        steps.join(", then "),
        playbook.cooldown.as_deref().unwrap_or("5m"),
        playbook.max_per_hour.unwrap_or(6)
    )
}

fn rules_table(rules: &[Rule], session: &Session) -> Markup {
    let can_write = session.principal.require(Permission::AlertsWrite).is_ok();
    html! {
        table id="rules" {
            thead { tr {
                th scope="col" { "Rule" } th scope="col" { "Service" } th scope="col" { "Metric" }
                th scope="col" { "Condition" } th scope="col" { "For" } th scope="col" { "Severity" }
                th scope="col" { "State" } th scope="col" { "Series" } th scope="col" { "Playbook" }
                @if can_write { th scope="col" { span.muted { "Delete" } } }
            } }
            tbody {
                @for Rule { rule: r, state, alerts } in rules {
                    tr id={"rule-" (r.name)} {
                        th scope="row" { (r.name) }
                        td { @match &r.service {
                            Some(s) => a href={"/ui/services/" (segment(s))} { (s) },
                            None => span.muted { "every service" },
                        } }
                        td { code { (r.metric) } }
                        td { code { (r.condition) } @if let Some(w) = &r.window { span.muted { " over " (w) } } }
                        td { (r.for_duration.as_deref().unwrap_or("0s")) }
                        td { (badge(r.severity.unwrap_or_default().as_str())) }
                        td.state { (badge(state)) }
                        td { @if alerts.is_empty() { span.muted { "–" } } @else { (series_list(alerts, |a| &a.service)) } }
                        td { @match &r.playbook { Some(p) => (playbook_words(p)), None => span.muted { "none" } } }
                        @if can_write {
                            td { form method="post" action={(HERE) "/rules/" (segment(&r.name)) "/delete"} {
                                input type="hidden" name="csrf" value=(session.csrf);
                                button.danger type="submit" id={"delete-" (r.name)} { "Delete" }
                            } }
                        }
                    }
                }
            }
        }
    }
}

fn dead_letters(letters: &[Notification]) -> Markup {
    html! {
        @if letters.is_empty() {
            p.empty { "No dead letters: every notification reached its receiver or is still being tried." }
        } @else {
            table id="dead-letters" {
                thead { tr { th scope="col" { "Receiver" } th.num scope="col" { "Attempts" } th scope="col" { "Last error" } th scope="col" { "Created" } } }
                tbody { @for n in letters {
                    tr { td { code { (n.url) } } td.num { (n.attempts) } td.error { (n.last_error.as_deref().unwrap_or("–")) } td { (short_time(&n.created_at.to_rfc3339())) } }
                } }
            }
        }
    }
}

pub(crate) async fn render(
    api: &Api,
    session: &Session,
    credential: &str,
    shown: Shown,
    status: StatusCode,
) -> Response {
    let rules: Page<Rule> = match api.get_as("/api/v1/alerts/rules", credential).await {
        Ok(rules) => rules,
        Err(unread) => return unread.page(session, HERE, "Alerts"),
    };
    let silences = api
        .get_as("/api/v1/alerts/silences", credential)
        .await
        .map_or_else(|_| Vec::new(), |p: Page<silence::Listed>| p.items);
    let letters = api
        .get_as("/api/v1/alerts/notifications?state=dead", credential)
        .await
        .map_or_else(|_| Vec::new(), |p: Page<Notification>| p.items);
    let can_write = session.principal.require(Permission::AlertsWrite).is_ok();
    let services = if can_write {
        api.names("/api/v1/services?limit=1000", credential, "/metadata/name")
            .await
    } else {
        Vec::new()
    };
    let body = html! {
        p.muted { "A rule watches a metric of each version of a service; when its condition holds for its " code { "for" } ", it fires: an incident opens, its receivers are notified and its playbook runs. " a href="/ui/incidents" { "Incidents" } }
        (shown.notice)
        h2 { "Rules" }
        section id="live-rules" data-live {
            @if rules.items.is_empty() { p.empty { "No alert rules yet." } } @else { (rules_table(&rules.items, session)) }
        }
        @if can_write { (rule::form(session, &shown.rule, &services)) }
        h2 { "Silences" }
        section id="live-silences" data-live { (silence::table(&silences, session)) }
        @if can_write { (silence::form(session, &shown.silence)) }
        h2 { "Dead letters" }
        section id="live-dead-letters" data-live { (dead_letters(&letters)) }
    };
    (status, layout::page(session, HERE, "Alerts", body)).into_response()
}

/// `GET /ui/alerts`.
pub async fn page(
    SignedIn {
        session,
        credential,
    }: SignedIn,
    Extension(api): Extension<Api>,
) -> Response {
    render(&api, &session, &credential, Shown::fresh(), StatusCode::OK).await
}

/// Calls the API for a button (delete a rule, expire a silence); back to
/// the page, or the page with the refusal above it.
async fn act(
    state: &AppState,
    (api, headers, form): (&Api, &HeaderMap, &CsrfForm),
    (method, path): (Method, String),
) -> Response {
    let (session, credential) = match session::require_form(state, headers, HERE, &form.csrf).await
    {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    let (status, answer) = api.call(method, &path, &credential, None).await;
    if status.is_success() {
        return Redirect::to(HERE).into_response();
    }
    let shown = Shown {
        notice: refusal("alerts-error", &answer),
        ..Shown::fresh()
    };
    render(api, &session, &credential, shown, status).await
}

/// `POST /ui/alerts/rules/{name}/delete`.
pub async fn delete_rule(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let path = format!("/api/v1/alerts/rules/{}", segment(&name));
    act(&state, (&api, &headers, &form), (Method::DELETE, path)).await
}

/// `POST /ui/alerts/silences/{id}/expire`.
pub async fn expire_silence(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let path = format!("/api/v1/alerts/silences/{}", segment(&id));
    act(&state, (&api, &headers, &form), (Method::DELETE, path)).await
}

/// The series of service `name` pending or firing now, for its page; `None`
/// when the session may not read alerts.
pub async fn of_service(
    api: &Api,
    session: &Session,
    credential: &str,
    name: &str,
) -> Option<Vec<ActiveAlert>> {
    session.principal.require(Permission::AlertsRead).ok()?;
    let page: Page<ActiveAlert> = api.get_as("/api/v1/alerts", credential).await.ok()?;
    Some(
        page.items
            .into_iter()
            .filter(|a| a.service == name)
            .collect(),
    )
}

/// A service's alerts, small: its series pending or firing now, and where
/// its incidents are.
pub fn service_panel(name: &str, alerts: &[ActiveAlert]) -> Markup {
    html! {
        h2 { "Alerts " span.muted { a href={"/ui/incidents?service=" (segment(name))} id="service-incidents" { "incidents" } " · " a href=(HERE) { "rules" } } }
        @if alerts.is_empty() {
            p.muted id="service-alerts" { "Nothing pending or firing." }
        } @else {
            div id="service-alerts" { (series_list(alerts, |a| &a.rule)) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_rule_reads_beside_its_state() {
        let listed = serde_json::json!({
            "name": "errors", "metric": "errorRatio", "condition": "result > 0.1", "for": "1m",
            "playbook": {"steps": [{"scaleOut": {"by": 1, "max": 4}}, {"rollback": {}}]},
            "state": "inactive", "alerts": [], "createdBy": "user:ann",
            "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"
        });
        let rule: Rule = serde_json::from_value(listed).expect("a listed rule");
        assert_eq!(rule.rule.for_duration.as_deref(), Some("1m"));
        assert_eq!(
            playbook_words(rule.rule.playbook.as_ref().expect("its playbook")),
            "scale out by 1 up to 4, then roll back; at most every 5m, 6 an hour"
        );
    }
}
