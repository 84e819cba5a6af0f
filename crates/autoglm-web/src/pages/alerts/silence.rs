//! Silences on the alerts page: the table (an expire button on each one
//! that still holds) and the form, one or two label matchers and how long,
//! whose end the page works out from now, since the API takes an end time.

use crate::extract::Form;
use autoglm_console::AppState;
use autoglm_core::alert::Silence;
use autoglm_core::rbac::Permission;
use axum::Extension;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, NaiveDateTime, Utc};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{HERE, Returned, Shown, badge};
use crate::api::Api;
use crate::fields::{self, FieldErrors};
use crate::layout::short_time;
use crate::session::{self, Session};

/// A silence as the API lists it.
#[derive(Debug, Deserialize)]
pub struct Listed {
    #[serde(flatten)]
    silence: Silence,
    state: String,
}

/// The silences, newest first; expire buttons when `session` may write alerts.
pub fn table(silences: &[Listed], session: &Session) -> Markup {
    let can_write = session.principal.require(Permission::AlertsWrite).is_ok();
    let time = |t: &DateTime<Utc>| short_time(&t.to_rfc3339());
    html! {
        @if silences.is_empty() {
            p.empty { "No silences." }
        } @else {
            table id="silences" {
                thead { tr {
                    th.num scope="col" { "#" } th scope="col" { "Matchers" } th scope="col" { "Starts" } th scope="col" { "Ends" }
                    th scope="col" { "State" } th scope="col" { "Comment" } th scope="col" { "By" }
                    @if can_write { th scope="col" { span.muted { "Expire" } } }
                } }
                tbody {
                    @for Listed { silence: s, state } in silences {
                        tr id={"silence-" (s.id)} {
                            th.num scope="row" { (s.id) }
                            td { @for m in &s.matchers { span.label { (m.name) @if m.is_equal { " = " } @else { " != " } (m.value) } } }
                            td { (time(&s.starts_at)) }
                            td { (time(&s.ends_at)) }
                            td.state { (badge(state)) }
                            td { (s.comment) }
                            td { (s.created_by) }
                            @if can_write {
                                td { @if state != "expired" {
                                    form method="post" action={(HERE) "/silences/" (s.id) "/expire"} {
                                        input type="hidden" name="csrf" value=(session.csrf);
                                        button.danger type="submit" id={"expire-" (s.id)} { "Expire" }
                                    }
                                } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The form as submitted, every field a string.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SilenceForm {
    csrf: String,
    label_0: String,
    value_0: String,
    label_1: String,
    value_1: String,
    minutes: String,
    ends: String,
    comment: String,
}

const FIELDS: [(&str, &[&str]); 3] = [
    ("silence-matchers", &["matchers"]),
    ("silence-ends", &["endsAt", "startsAt"]),
    ("silence-comment", &["comment"]),
];

impl SilenceForm {
    /// An empty form: an hour from now.
    pub fn fresh() -> SilenceForm {
        SilenceForm {
            label_0: "service".into(),
            minutes: "60".into(),
            ..SilenceForm::default()
        }
    }

    /// The silence the form describes from `now` (an end time, read in
    /// UTC, wins over a duration), and what in it the page could not read.
    fn spec(&self, now: DateTime<Utc>) -> (Value, FieldErrors) {
        let matchers: Vec<Value> = [
            (&self.label_0, &self.value_0),
            (&self.label_1, &self.value_1),
        ]
        .into_iter()
        .filter(|(name, value)| !name.trim().is_empty() || !value.trim().is_empty())
        .map(|(name, value)| json!({"name": name.trim(), "value": value.trim(), "isEqual": true}))
        .collect();
        let (ends, minutes) = (self.ends.trim(), self.minutes.trim());
        let ends_at = if !ends.is_empty() {
            ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(ends, f).ok())
                .map(|t| t.and_utc())
                .ok_or_else(|| format!("{ends:?} is not a time like 2026-05-01T18:30"))
        } else {
            minutes
                .parse::<u32>()
                .ok()
                .filter(|m| *m > 0)
                .map(|m| now + chrono::Duration::minutes(i64::from(m)))
                .ok_or_else(|| format!("{minutes:?} is not a number of minutes, 1 or more"))
        };
        let mut errors = Vec::new();
        let ends_at = ends_at.unwrap_or_else(|words| {
            errors.push(("endsAt".to_owned(), words));
            now
        });
        let spec = json!({"matchers": matchers, "endsAt": ends_at.to_rfc3339(), "comment": self.comment.trim()});
        (spec, errors)
    }
}

/// The form, with what was typed and the refusals, if it came back.
pub fn form(session: &Session, returned: &Returned<SilenceForm>) -> Markup {
    let (f, errors) = (&returned.form, &returned.errors);
    let err = |id: &str| fields::beside(errors, &FIELDS, id);
    html! {
        h2 { "New silence" }
        @if let Some(summary) = &returned.summary { (fields::summary("silence-error", summary, errors, &FIELDS)) }
        form.fields method="post" action={(HERE) "/silences"} id="new-silence" {
            input type="hidden" name="csrf" value=(session.csrf);
            fieldset {
                legend { "Silence the alerts whose labels are" }
                @for (i, (name, value)) in [(&f.label_0, &f.value_0), (&f.label_1, &f.value_1)].into_iter().enumerate() {
                    div.row {
                        label for={"silence-label-" (i)} { "Label" }
                        input.short id={"silence-label-" (i)} name={"label_" (i)} value=(name) placeholder="service";
                        span { "=" }
                        label for={"silence-value-" (i)} class="muted" { "value" }
                        input id={"silence-value-" (i)} name={"value_" (i)} value=(value) placeholder="chat";
                    }
                }
                (err("silence-matchers"))
                div.row {
                    label for="silence-minutes" { "For (minutes)" }
                    input.short id="silence-minutes" name="minutes" value=(f.minutes) inputmode="numeric" aria-describedby="error-silence-ends";
                    label for="silence-ends" { "or until (UTC)" }
                    input id="silence-ends" name="ends" type="datetime-local" value=(f.ends) aria-describedby="error-silence-ends";
                }
                (err("silence-ends"))
                label for="silence-comment" { "Comment" }
                input id="silence-comment" name="comment" value=(f.comment) placeholder="planned maintenance";
                (err("silence-comment"))
            }
            p.muted { "Silenced alerts still fire and open incidents, but notify no one and run no playbook." }
            button type="submit" id="create-silence" { "Silence" }
        }
    }
}

/// `POST /ui/alerts/silences`.
pub async fn create(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    headers: HeaderMap,
    Form(form): Form<SilenceForm>,
) -> Response {
    let (session, credential) =
        match session::require_form(&state, &headers, HERE, &form.csrf).await {
            Ok(s) => s,
            Err(answer) => return answer,
        };
    let body = form.spec(Utc::now());
    let (status, silence) = match Returned::post(
        &api,
        &credential,
        "/api/v1/alerts/silences",
        form,
        body,
        "The silence's end could not be read.",
    )
    .await
    {
        Ok(done) => return done,
        Err(refused) => refused,
    };
    let shown = Shown {
        silence,
        ..Shown::fresh()
    };
    super::render(&api, &session, &credential, shown, status).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-05-01T12:00:00Z")
            .expect("a time")
            .to_utc()
    }

    #[test]
    fn a_duration_ends_that_many_minutes_from_now() {
        let form = SilenceForm {
            value_0: "chat".into(),
            label_1: "severity".into(),
            value_1: "warning".into(),
            comment: "upgrade".into(),
            ..SilenceForm::fresh()
        };
        let (spec, errors) = form.spec(now());
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            spec,
            json!({"matchers": [{"name": "service", "value": "chat", "isEqual": true},
                                {"name": "severity", "value": "warning", "isEqual": true}],
                   "endsAt": "2026-05-01T13:00:00+00:00", "comment": "upgrade"})
        );
        let spec: autoglm_core::alert::SilenceSpec =
            serde_json::from_value(spec).expect("the API's silence");
        assert!(spec.check(now()).is_ok());
    }

    #[test]
    fn an_end_time_wins_and_a_bad_one_is_named() {
        let form = SilenceForm {
            ends: "2026-05-02T08:30".into(),
            ..SilenceForm::fresh()
        };
        assert_eq!(form.spec(now()).0["endsAt"], "2026-05-02T08:30:00+00:00");
        let form = SilenceForm {
            minutes: "soon".into(),
            ..SilenceForm::fresh()
        };
        let (_, errors) = form.spec(now());
        let html = fields::beside(&errors, &FIELDS, "silence-ends").into_string();
        assert!(
            html.contains("&quot;soon&quot; is not a number of minutes"),
            "{html}"
        );
    }
}
