//! API keys: one's own, created (the secret shown once) and revoked through
//! the console's API. A role that may not manage keys sees no form.

use autoglm_console::AppState;
use autoglm_core::rbac::Permission;
use axum::Extension;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{Api, problem_words};
use crate::layout;
use crate::session::{self, CsrfForm, Session};

const HERE: &str = "/ui/keys";

fn date(value: &Value) -> String {
    value.as_str().map_or_else(
        || "–".to_owned(),
        |t| t.get(..16).unwrap_or(t).replace('T', " "),
    )
}

/// What the API said when it refused, beside the form.
fn refusal(problem: &Value) -> Markup {
    html! { @for line in problem_words(problem) { p.error role="alert" id="key-error" { (line) } } }
}

/// The page: an optional notice (a new secret, or errors), the form, the keys.
async fn render(
    api: &Api,
    session: &Session,
    credential: &str,
    notice: Markup,
    status: StatusCode,
) -> Response {
    if session.principal.require(Permission::KeysWrite).is_err() {
        let body = html! { p.empty id="keys-forbidden" { "Your role cannot manage API keys." } };
        return layout::page(session, HERE, "API keys", body).into_response();
    }
    let (listed, keys) = api
        .call(Method::GET, "/api/v1/keys", credential, None)
        .await;
    let keys = keys.as_array().cloned().unwrap_or_default();
    let body = html! {
        (notice)
        form.search method="post" action="/ui/keys" id="new-key" {
            input type="hidden" name="csrf" value=(session.csrf);
            label for="name" class="muted" { "Name" }
            input id="name" name="name" placeholder="ci-deploy";
            label for="expires_days" class="muted" { "Expires after (days, empty for never)" }
            input id="expires_days" name="expires_days" inputmode="numeric";
            button type="submit" { "Create key" }
        }
        @if !listed.is_success() {
            p.error role="alert" { "The keys could not be read: " (problem_words(&keys.first().cloned().unwrap_or_default()).join("; ")) }
        } @else if keys.is_empty() {
            p.empty { "You have no API keys yet." }
        } @else {
            table id="keys" {
                thead { tr {
                    th scope="col" { "Key" } th scope="col" { "Name" } th scope="col" { "Created" }
                    th scope="col" { "Last used" } th scope="col" { "Expires" } th scope="col" { "State" } th scope="col" { span.muted { "Action" } }
                } }
                tbody {
                    @for key in &keys {
                        @let id = key["id"].as_str().unwrap_or_default();
                        tr id={"key-" (id)} {
                            th scope="row" { code { (id) } }
                            td { (key["name"].as_str().unwrap_or("")) }
                            td { (date(&key["created_at"])) }
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
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    headers: HeaderMap,
) -> Response {
    let (session, credential) = match session::require_with_credential(&state, &headers, HERE).await
    {
        Ok(s) => s,
        Err(to_login) => return to_login,
    };
    render(&api, &session, &credential, html! {}, StatusCode::OK).await
}

#[derive(Debug, Deserialize)]
pub struct NewKey {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    expires_days: String,
}

/// `POST /ui/keys`: creates a key and shows its secret, once.
pub async fn create(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    headers: HeaderMap,
    Form(form): Form<NewKey>,
) -> Response {
    let (session, credential) =
        match session::require_form(&state, &headers, HERE, &form.csrf).await {
            Ok(s) => s,
            Err(answer) => return answer,
        };
    let mut body = json!({});
    if !form.name.trim().is_empty() {
        body["name"] = json!(form.name.trim());
    }
    if !form.expires_days.trim().is_empty() {
        match form.expires_days.trim().parse::<u64>() {
            Ok(days) if days > 0 => body["expires_in_seconds"] = json!(days * 86_400),
            _ => {
                let notice = html! { p.error role="alert" id="key-error" { "Expires after: a whole number of days, 1 or more." } };
                return render(
                    &api,
                    &session,
                    &credential,
                    notice,
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await;
            }
        }
    }
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
        refusal(&answer)
    };
    let status = if status == StatusCode::CREATED {
        StatusCode::OK
    } else {
        status
    };
    render(&api, &session, &credential, notice, status).await
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
            &format!("/api/v1/keys/{id}"),
            &credential,
            None,
        )
        .await;
    if status.is_success() {
        return Redirect::to(HERE).into_response();
    }
    let notice = refusal(&answer);
    render(&api, &session, &credential, notice, status).await
}
