//! API keys: one's own, created (the secret shown once) and revoked through
//! the console's API. A role that may not manage keys sees no form.

use crate::extract::Form;
use autoglm_console::AppState;
use autoglm_core::rbac::Permission;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde_json::{Value, json};

use crate::api::{Api, problem_words, refusal, segment};
use crate::layout;
use crate::session::{self, CsrfForm, Session, SignedIn};

const HERE: &str = "/ui/keys";

fn date(value: &Value) -> String {
    value.as_str().map_or_else(
        || "–".to_owned(),
        |t| t.get(..16).unwrap_or(t).replace('T', " "),
    )
}

/// The page: an optional notice (a new secret, or errors), the form, the keys.
async fn render(
    api: &Api,
    session: &Session,
    credential: &str,
    notice: Markup,
    status: StatusCode,
    form: &NewKey,
) -> Response {
    if session.principal.require(Permission::KeysWrite).is_err() {
        let body = html! { p.empty id="keys-forbidden" { "Your role cannot manage API keys." } };
        return (
            StatusCode::FORBIDDEN,
            layout::page(session, HERE, "API keys", body),
        )
            .into_response();
    }
    let (listed, answer) = api
        .call(Method::GET, "/api/v1/keys", credential, None)
        .await;
    let keys = answer.as_array().cloned().unwrap_or_default();
    let body = html! {
        (notice)
        form.search method="post" action="/ui/keys" id="new-key" {
            input type="hidden" name="csrf" value=(session.csrf);
            label for="name" class="muted" { "Name" }
            input id="name" name="name" placeholder="ci-deploy" value=(form.name);
            label for="expires_days" class="muted" { "Expires after (days, empty for never)" }
            input id="expires_days" name="expires_days" inputmode="numeric" value=(form.expires_days);
            label for="requests_per_second" class="muted" { "Requests/s" }
            input.short id="requests_per_second" name="requests_per_second" inputmode="numeric" value=(form.requests_per_second);
            label for="tokens_per_minute" class="muted" { "Tokens/min" }
            input.short id="tokens_per_minute" name="tokens_per_minute" inputmode="numeric" value=(form.tokens_per_minute);
            fieldset.scopes {
                legend.muted { "Scopes (none ticked: all of your role's permissions)" }
                @for p in Permission::ALL.into_iter().filter(|p| session.principal.grant.allows(*p)) {
                    label { input type="checkbox" name="scope" value=(p.as_str()) checked[form.scopes.iter().any(|s| s == p.as_str())]; " " code { (p.as_str()) } }
                }
            }
            button type="submit" { "Create key" }
        }
        @if !listed.is_success() {
            p.error role="alert" { "The keys could not be read: " (problem_words(&answer).join("; ")) }
        } @else if keys.is_empty() {
            p.empty { "You have no API keys yet." }
        } @else {
            table id="keys" {
                thead { tr {
                    th scope="col" { "Key" } th scope="col" { "Name" } th scope="col" { "Created" }
                    th scope="col" { "Scopes" } th scope="col" { "Limits" }
                    th scope="col" { "Last used" } th scope="col" { "Expires" } th scope="col" { "State" } th scope="col" { span.muted { "Action" } }
                } }
                tbody {
                    @for key in &keys {
                        @let id = key["id"].as_str().unwrap_or_default();
                        tr id={"key-" (id)} {
                            th scope="row" { code { (id) } }
                            td { (key["name"].as_str().unwrap_or("")) }
                            td { (date(&key["created_at"])) }
                            td { @match key["scopes"].as_array() {
                                Some(scopes) => { @for scope in scopes { span.label { (scope.as_str().unwrap_or_default()) } } },
                                None => span.muted { "all of the role" },
                            } }
                            td { (limits(&key["rate_limit"])) }
                            td { (date(&key["last_used_at"])) }
                            td { (date(&key["expires_at"])) }
                            @if key["revoked_at"].is_string() {
                                td { span.badge.bad { "revoked" } } td {}
                            } @else {
                                td { span.badge.ok { "active" } }
                                td {
                                    form method="post" action={"/ui/keys/" (id) "/revoke"} {
                                        input type="hidden" name="csrf" value=(session.csrf);
                                        button type="submit" class="revoke" { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    (status, layout::page(session, HERE, "API keys", body)).into_response()
}

/// `GET /ui/keys`.
pub async fn page(
    SignedIn {
        session,
        credential,
    }: SignedIn,
    Extension(api): Extension<Api>,
) -> Response {
    render(
        &api,
        &session,
        &credential,
        html! {},
        StatusCode::OK,
        &NewKey::default(),
    )
    .await
}

/// A key's gateway limits, in words.
fn limits(limit: &Value) -> String {
    let words: Vec<String> = [
        ("requests_per_second", "req/s"),
        ("tokens_per_minute", "tokens/min"),
    ]
    .into_iter()
    .filter_map(|(field, unit)| limit[field].as_u64().map(|n| format!("{n} {unit}")))
    .collect();
    if words.is_empty() {
        "–".to_owned()
    } else {
        words.join(", ")
    }
}

/// The new-key form: repeated `scope` fields, so read as pairs.
#[derive(Debug, Default)]
pub struct NewKey {
    csrf: String,
    name: String,
    expires_days: String,
    requests_per_second: String,
    tokens_per_minute: String,
    scopes: Vec<String>,
}

impl NewKey {
    fn from_pairs(pairs: Vec<(String, String)>) -> NewKey {
        let mut form = NewKey::default();
        for (field, value) in pairs {
            match field.as_str() {
                "csrf" => form.csrf = value,
                "name" => form.name = value,
                "expires_days" => form.expires_days = value,
                "requests_per_second" => form.requests_per_second = value,
                "tokens_per_minute" => form.tokens_per_minute = value,
                "scope" => form.scopes.push(value),
                _ => {}
            }
        }
        form
    }

    /// The API body, or what in the form is not a positive whole number.
    fn body(&self) -> Result<Value, String> {
        let positive = |label: &str, raw: &str| -> Result<Option<u64>, String> {
            match raw.trim() {
                "" => Ok(None),
                raw => match raw.parse::<u64>() {
                    Ok(n) if n > 0 => Ok(Some(n)),
                    _ => Err(format!("{label}: a whole number, 1 or more (got {raw:?}).")),
                },
            }
        };
        let mut body = json!({});
        if !self.name.trim().is_empty() {
            body["name"] = json!(self.name.trim());
        }
        if let Some(days) = positive("Expires after", &self.expires_days)? {
            let seconds = days
                .checked_mul(86_400)
                .ok_or_else(|| format!("Expires after: {days} days is too far away."))?;
            body["expires_in_seconds"] = json!(seconds);
        }
        let rps = positive("Requests/s", &self.requests_per_second)?;
        let tpm = positive("Tokens/min", &self.tokens_per_minute)?;
        if rps.is_some() || tpm.is_some() {
            body["rate_limit"] = json!({"requests_per_second": rps, "tokens_per_minute": tpm});
        }
        if !self.scopes.is_empty() {
            body["scopes"] = json!(self.scopes);
        }
        Ok(body)
    }
}

/// `POST /ui/keys`: creates a key and shows its secret, once.
pub async fn create(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    headers: HeaderMap,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let form = NewKey::from_pairs(pairs);
    let (session, credential) =
        match session::require_form(&state, &headers, HERE, &form.csrf).await {
            Ok(s) => s,
            Err(answer) => return answer,
        };
    let body = match form.body() {
        Ok(body) => body,
        Err(words) => {
            let notice = html! { p.error role="alert" id="key-error" { (words) } };
            return render(
                &api,
                &session,
                &credential,
                notice,
                StatusCode::UNPROCESSABLE_ENTITY,
                &form,
            )
            .await;
        }
    };
    let (status, answer) = api
        .call(Method::POST, "/api/v1/keys", &credential, Some(body))
        .await;
    let notice = if status == StatusCode::CREATED {
        html! {
            div.notice role="status" {
                p { "Key " code { (answer["id"].as_str().unwrap_or_default()) } " created. Copy its secret now: it is not shown again." }
                p { code id="secret" { (answer["secret"].as_str().unwrap_or_default()) } }
            }
        }
    } else {
        refusal("key-error", &answer)
    };
    // A created key clears the form; a refused one keeps what was typed.
    let empty = NewKey::default();
    let kept = if status == StatusCode::CREATED {
        &empty
    } else {
        &form
    };
    let status = if status == StatusCode::CREATED {
        StatusCode::OK
    } else {
        status
    };
    render(&api, &session, &credential, notice, status, kept).await
}

/// `POST /ui/keys/{id}/revoke`.
pub async fn revoke(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let (session, credential) =
        match session::require_form(&state, &headers, HERE, &form.csrf).await {
            Ok(s) => s,
            Err(answer) => return answer,
        };
    let (status, answer) = api
        .call(
            Method::DELETE,
            &format!("/api/v1/keys/{}", segment(&id)),
            &credential,
            None,
        )
        .await;
    if status.is_success() {
        return Redirect::to(HERE).into_response();
    }
    let notice = refusal("key-error", &answer);
    render(
        &api,
        &session,
        &credential,
        notice,
        status,
        &NewKey::default(),
    )
    .await
}
