//! The new-rule form: a metric of a service's versions (or every
//! service's), a condition held for a while, severity, an optional webhook
//! receiver and an optional first playbook step, sent as the JSON of
//! `POST /api/v1/alerts/rules`; the API's refusals come back beside the
//! fields they concern.

use crate::extract::Form;
use autoglm_console::AppState;
use autoglm_core::alert::AlertMetric;
use axum::Extension;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{HERE, Returned, Shown};
use crate::api::Api;
use crate::fields::{self, FieldErrors};
use crate::session::{self, Session};

/// The form as submitted; every field a string, so nothing typed is lost
/// when it comes back refused.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RuleForm {
    csrf: String,
    name: String,
    service: String,
    metric: String,
    condition: String,
    window: String,
    #[serde(rename = "for")]
    for_duration: String,
    severity: String,
    receiver: String,
    step: String,
    by: String,
    max: String,
    url: String,
    cooldown: String,
    max_per_hour: String,
}

/// The form's fields by id, with the API paths each shows refusals of.
const FIELDS: [(&str, &[&str]); 9] = [
    ("rule-name", &["name"]),
    ("rule-service", &["service"]),
    ("rule-metric", &["metric"]),
    ("rule-condition", &["condition"]),
    ("rule-window", &["window"]),
    ("rule-for", &["for"]),
    ("rule-severity", &["severity"]),
    ("rule-receiver", &["receivers"]),
    ("rule-playbook", &["playbook"]),
];

const STEPS: [(&str, &str); 5] = [
    ("", "none"),
    ("restart", "restart"),
    ("scaleOut", "scale out"),
    ("rollback", "roll back"),
    ("webhook", "call a webhook"),
];

impl RuleForm {
    /// An empty form, with the scale-out step's usual numbers.
    pub fn fresh() -> RuleForm {
        RuleForm {
            by: "1".into(),
            max: "4".into(),
            ..RuleForm::default()
        }
    }

    /// The rule the form describes, and what in it could not be read as a
    /// whole number (the API checks everything else).
    fn rule(&self) -> (Value, FieldErrors) {
        let mut errors = Vec::new();
        let mut number = |path: &str, raw: &str| -> Option<u32> {
            let raw = raw.trim();
            raw.parse::<u32>().ok().or_else(|| {
                errors.push((path.to_owned(), format!("{raw:?} is not a whole number")));
                None
            })
        };
        let mut rule = Map::new();
        for (key, raw) in [
            ("name", &self.name),
            ("service", &self.service),
            ("metric", &self.metric),
            ("condition", &self.condition),
            ("window", &self.window),
            ("for", &self.for_duration),
            ("severity", &self.severity),
        ] {
            // The name, metric and condition go even empty, for the API to name them.
            if !raw.trim().is_empty() || ["name", "metric", "condition"].contains(&key) {
                rule.insert(key.into(), json!(raw.trim()));
            }
        }
        if !self.receiver.trim().is_empty() {
            rule.insert(
                "receivers".into(),
                json!([{"webhook": {"url": self.receiver.trim()}}]),
            );
        }
        let step = match self.step.as_str() {
            "restart" => Some(json!({"restart": {}})),
            "rollback" => Some(json!({"rollback": {}})),
            "webhook" => Some(json!({"webhook": {"url": self.url.trim()}})),
            "scaleOut" => {
                let by = number("playbook.steps[0].scaleOut.by", &self.by);
                let max = number("playbook.steps[0].scaleOut.max", &self.max);
                Some(json!({"scaleOut": {"by": by.unwrap_or(0), "max": max.unwrap_or(0)}}))
            }
            _ => None,
        };
        if let Some(step) = step {
            let mut playbook = Map::new();
            playbook.insert("steps".into(), json!([step]));
            if !self.cooldown.trim().is_empty() {
                playbook.insert("cooldown".into(), json!(self.cooldown.trim()));
            }
            if !self.max_per_hour.trim().is_empty()
                && let Some(n) = number("playbook.maxPerHour", &self.max_per_hour)
            {
                playbook.insert("maxPerHour".into(), json!(n));
            }
            rule.insert("playbook".into(), Value::Object(playbook));
        }
        (Value::Object(rule), errors)
    }
}

/// The form, with what was typed and the refusals, if it came back;
/// `services` are the tenant's, for the service select.
pub fn form(session: &Session, returned: &Returned<RuleForm>, services: &[String]) -> Markup {
    let (f, errors) = (&returned.form, &returned.errors);
    let err = |id: &str| fields::beside(errors, &FIELDS, id);
    let metrics = AlertMetric::all();
    html! {
        h2 { "New rule" }
        @if let Some(summary) = &returned.summary { (fields::summary("rule-error", summary, errors, &FIELDS)) }
        form.fields method="post" action={(HERE) "/rules"} id="new-rule" {
            input type="hidden" name="csrf" value=(session.csrf);
            fieldset {
                legend { "When" }
                div.row {
                    label for="rule-name" { "Name" }
                    input id="rule-name" name="name" value=(f.name) placeholder="high-errors" required aria-describedby="error-rule-name";
                    label for="rule-service" { "Service" }
                    select id="rule-service" name="service" {
                        option value="" selected[f.service.is_empty()] { "every service" }
                        @for s in services { option value=(s) selected[f.service == *s] { (s) } }
                    }
                    label for="rule-metric" { "Metric" }
                    select id="rule-metric" name="metric" {
                        @for m in &metrics { option value=(m.as_str()) selected[f.metric == m.as_str()] { (m.as_str()) } }
                    }
                }
                (err("rule-name")) (err("rule-service")) (err("rule-metric"))
                label for="rule-condition" { "Condition, over the version's value " code { "result" } " and the busiest other version's " code { "baseline" } }
                input id="rule-condition" name="condition" value=(f.condition) placeholder="result > 0.1" required aria-describedby="error-rule-condition";
                (err("rule-condition"))
                div.row {
                    label for="rule-window" { "Window" }
                    input.short id="rule-window" name="window" value=(f.window) placeholder="10s" aria-describedby="error-rule-window";
                    label for="rule-for" { "For" }
                    input.short id="rule-for" name="for" value=(f.for_duration) placeholder="0s" aria-describedby="error-rule-for";
                    label for="rule-severity" { "Severity" }
                    select id="rule-severity" name="severity" {
                        @for s in ["warning", "critical", "info"] { option value=(s) selected[f.severity == s] { (s) } }
                    }
                }
                (err("rule-window")) (err("rule-for")) (err("rule-severity"))
            }
            fieldset {
                legend { "Then" }
                label for="rule-receiver" { "Webhook receiver (Alertmanager's payload; optional)" }
                input id="rule-receiver" name="receiver" value=(f.receiver) placeholder="https://hooks.example.com/alerts" aria-describedby="error-rule-receiver";
                (err("rule-receiver"))
                div.row {
                    label for="rule-step" { "Playbook, first step" }
                    select id="rule-step" name="step" {
                        @for (value, words) in STEPS { option value=(value) selected[f.step == value] { (words) } }
                    }
                    label for="rule-by" { "by" }
                    input.short id="rule-by" name="by" value=(f.by) inputmode="numeric";
                    label for="rule-max" { "up to" }
                    input.short id="rule-max" name="max" value=(f.max) inputmode="numeric";
                    label for="rule-url" { "webhook" }
                    input id="rule-url" name="url" value=(f.url) placeholder="https://…";
                }
                div.row {
                    label for="rule-cooldown" { "Cooldown" }
                    input.short id="rule-cooldown" name="cooldown" value=(f.cooldown) placeholder="5m";
                    label for="rule-max-per-hour" { "At most per hour" }
                    input.short id="rule-max-per-hour" name="max_per_hour" value=(f.max_per_hour) inputmode="numeric" placeholder="6";
                }
                (err("rule-playbook"))
            }
            button type="submit" id="create-rule" { "Create rule" }
        }
    }
}

/// `POST /ui/alerts/rules`: creates the rule, then back to the page.
pub async fn create(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    headers: HeaderMap,
    Form(form): Form<RuleForm>,
) -> Response {
    let (session, credential) =
        match session::require_form(&state, &headers, HERE, &form.csrf).await {
            Ok(s) => s,
            Err(answer) => return answer,
        };
    let body = form.rule();
    let (status, rule) = match Returned::post(
        &api,
        &credential,
        "/api/v1/alerts/rules",
        form,
        body,
        "Some fields are not whole numbers.",
    )
    .await
    {
        Ok(done) => return done,
        Err(refused) => refused,
    };
    let shown = Shown {
        rule,
        ..Shown::fresh()
    };
    super::render(&api, &session, &credential, shown, status).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_is_the_rule_the_api_takes() {
        let form = RuleForm {
            name: "errors".into(),
            service: "chat".into(),
            metric: "errorRatio".into(),
            condition: " result > 0.1 ".into(),
            for_duration: "1m".into(),
            severity: "critical".into(),
            step: "scaleOut".into(),
            ..RuleForm::fresh()
        };
        let (rule, errors) = form.rule();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            rule,
            json!({"name": "errors", "service": "chat", "metric": "errorRatio", "condition": "result > 0.1",
                   "for": "1m", "severity": "critical",
                   "playbook": {"steps": [{"scaleOut": {"by": 1, "max": 4}}]}})
        );
        let rule: autoglm_core::alert::AlertRule =
            serde_json::from_value(rule).expect("the API's rule");
        assert!(rule.ready().is_ok());
    }

    #[test]
    fn every_service_and_no_playbook_leave_their_fields_out() {
        let form = RuleForm {
            name: "slow".into(),
            metric: "latencyP95".into(),
            condition: "result > 500".into(),
            ..RuleForm::fresh()
        };
        let (rule, _) = form.rule();
        assert_eq!(
            rule,
            json!({"name": "slow", "metric": "latencyP95", "condition": "result > 500"})
        );
    }

    #[test]
    fn a_step_number_that_is_not_one_is_named_beside_the_playbook() {
        let form = RuleForm {
            step: "scaleOut".into(),
            by: "two".into(),
            ..RuleForm::fresh()
        };
        let (_, errors) = form.rule();
        let html = fields::beside(&errors, &FIELDS, "rule-playbook").into_string();
        assert!(
            html.contains("&quot;two&quot; is not a whole number"),
            "{html}"
        );
    }
}
