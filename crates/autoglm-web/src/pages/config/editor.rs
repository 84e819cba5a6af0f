//! `/ui/config/{env}/keys/{group}/{key}`: a key's editor. The current
//! content in the key form, published with the version it showed as the base
//! (so an edit of a version someone has since replaced is refused, and the
//! page says so, keeping the text); its history with a diff of each version
//! against the one before and a rollback to it; delete. The content is
//! checked as it is typed through `POST /ui/config/validate`, which asks the
//! API (the browser's cookie is not a credential the API takes).

use crate::extract::Form;
use autoglm_console::AppState;
use autoglm_core::config::{ConfigVersion, Environment};
use autoglm_core::registry::Page;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Json};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::publish::{self, Filed, KeyForm};
use super::{
    HERE, Refused, Writes, env_api, env_badges, env_href, key_api, key_href, protection_note, send,
    short_md5,
};
use crate::api::{Api, segment};
use crate::layout::{self, short_time};
use crate::session::{self, Session, SignedIn};

/// The path of one key.
#[derive(Debug, Deserialize)]
pub struct KeyAt {
    env: String,
    group: String,
    key: String,
}

impl KeyAt {
    fn href(&self) -> String {
        key_href(&self.env, &self.group, &self.key)
    }

    fn api(&self) -> String {
        key_api(&self.env, &self.group, &self.key)
    }
}

/// What the editor shows besides the records: the form as it came back
/// with its refusal, and a refused delete or rollback.
#[derive(Debug, Default)]
struct Shown {
    typed: Option<(KeyForm, Refused)>,
    notice: Markup,
}

/// The key's facts: where it is, and its current version.
fn facts(env: &Environment, at: &KeyAt, current: Option<&ConfigVersion>) -> Markup {
    html! {
        dl.facts {
            dt { "Environment" } dd { a href=(env_href(&env.name)) { (env.name) } " " (env_badges(env)) }
            dt { "Group" } dd { (at.group) }
            dt { "Key" } dd { code { (at.key) } }
            @if let Some(v) = current {
                dt { "Version" } dd id="current-version" { (v.version) }
                dt { "Format" } dd { (v.format.as_str()) }
                dt { "md5" } dd { code { (v.md5) } }
                dt { "Author" } dd { (v.author) }
                dt { "Updated" } dd { (short_time(&v.created_at.to_rfc3339())) }
            }
        }
    }
}

/// Every version, newest first, with its diff against the one before and,
/// where the session may write, a rollback to it.
fn history(session: &Session, at: &KeyAt, writes: Writes, versions: &[ConfigVersion]) -> Markup {
    let newest = versions.first().map_or(0, |v| v.version);
    let rollback = writes == Writes::Directly;
    html! {
        table id="history" {
            thead { tr {
                th.num scope="col" { "Version" } th scope="col" { "Author" } th scope="col" { "Message" }
                th scope="col" { "Time" } th scope="col" { "md5" } th scope="col" { "" } th scope="col" { span.muted { "Diff" } }
                @if rollback { th scope="col" { span.muted { "Rollback" } } }
            } }
            tbody {
                @for v in versions {
                    tr id={"version-" (v.version)} {
                        th.num scope="row" { (v.version) }
                        td { (v.author) }
                        td { (v.message) }
                        td { (short_time(&v.created_at.to_rfc3339())) }
                        td { code title=(v.md5) { (short_md5(&v.md5)) } }
                        td { @if v.deleted { span.badge.bad { "deleted" } } }
                        td { a href={(at.href()) "/diff?from=" (v.version.saturating_sub(1)) "&to=" (v.version)} id={"diff-" (v.version)} { "diff vs previous" } }
                        @if rollback {
                            td { @if !v.deleted && v.version != newest {
                                form method="post" action={(at.href()) "/rollback"} {
                                    input type="hidden" name="csrf" value=(session.csrf);
                                    input type="hidden" name="version" value=(v.version);
                                    button type="submit" id={"rollback-" (v.version)} { "Roll back to this version" }
                                }
                            } }
                        }
                    }
                }
            }
        }
    }
}

/// The delete button of a live key, which deletes only the version shown.
fn delete_button(session: &Session, at: &KeyAt, current: &ConfigVersion) -> Markup {
    html! {
        form.stack method="post" action={(at.href()) "/delete"} id="delete-key"
            data-confirm={"Delete " (at.group) "/" (at.key) " from " (at.env) "? Its history stays."} {
            input type="hidden" name="csrf" value=(session.csrf);
            input type="hidden" name="base_md5" value=(current.md5);
            button.danger type="submit" id="delete" { "Delete key" }
        }
    }
}

async fn render(
    api: &Api,
    (session, credential): (&Session, &str),
    at: &KeyAt,
    shown: Shown,
    status: StatusCode,
) -> Response {
    let title = format!("{} · {}/{}", at.env, at.group, at.key);
    let env: Environment = match api.get_as(&env_api(&at.env), credential).await {
        Ok(env) => env,
        Err(unread) => return unread.page(session, HERE, &title),
    };
    let versions: Page<ConfigVersion> = match api
        .get_as(&format!("{}/versions", at.api()), credential)
        .await
    {
        Ok(versions) => versions,
        Err(unread) => return unread.page(session, HERE, &title),
    };
    let current = versions.items.first().filter(|v| !v.deleted);
    let writes = Writes::of(session, &env);
    let (form, refused) = match shown.typed {
        Some((form, refused)) => (form, Some(refused)),
        None => (
            KeyForm {
                group: at.group.clone(),
                key: at.key.clone(),
                format: current
                    .map(|v| v.format.as_str().to_owned())
                    .unwrap_or_default(),
                content: current.map(|v| v.content.clone()).unwrap_or_default(),
                // A deleted key is published again from "no such key".
                base_version: current.map_or(0, |v| v.version).to_string(),
                ..KeyForm::default()
            },
            None,
        ),
    };
    let body = html! {
        p { a href=(env_href(&at.env)) { "← " (at.env) } }
        (facts(&env, at, current))
        (protection_note(&env, writes))
        (shown.notice)
        @if current.is_none() {
            p.muted id="key-deleted" { "This key is deleted; publish it again, or roll back to a version below." }
        }
        (publish::form(session, (&at.href(), true), writes, &form, refused.as_ref()))
        @if let (Some(current), Writes::Directly) = (current, writes) { (delete_button(session, at, current)) }
        h2 { "History" }
        (history(session, at, writes, &versions.items))
    };
    (status, layout::page(session, HERE, &title, body)).into_response()
}

/// `GET /ui/config/{env}/keys/{group}/{key}`.
pub async fn page(
    SignedIn {
        session,
        credential,
    }: SignedIn,
    Extension(api): Extension<Api>,
    Path(at): Path<KeyAt>,
) -> Response {
    let shown = Shown::default();
    render(&api, (&session, &credential), &at, shown, StatusCode::OK).await
}

/// Signs a form of the editor in; the session and credential, or the answer.
async fn sign_in(
    state: &AppState,
    headers: &HeaderMap,
    at: &KeyAt,
    csrf: &str,
) -> Result<(Session, String), Response> {
    session::require_form(state, headers, &at.href(), csrf).await
}

/// `POST /ui/config/{env}/keys/{group}/{key}`: publishes the next version
/// (back to the editor) or files a change request (on to the requests).
pub async fn publish(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    headers: HeaderMap,
    Path(at): Path<KeyAt>,
    Form(mut form): Form<KeyForm>,
) -> Response {
    let (session, credential) = match sign_in(&state, &headers, &at, &form.csrf).await {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    // The key is the page's, whatever the form says.
    (form.group, form.key) = (at.group.clone(), at.key.clone());
    match publish::submit(&api, &credential, &at.env, &form).await {
        Ok(Filed::Published) => Redirect::to(&at.href()).into_response(),
        Ok(Filed::Requested) => Redirect::to(&format!("{HERE}/requests")).into_response(),
        Err(refused) => {
            let status = refused.status;
            let shown = Shown {
                typed: Some((form, refused)),
                ..Shown::default()
            };
            render(&api, (&session, &credential), &at, shown, status).await
        }
    }
}

/// The delete form: the md5 of the version the editor showed.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DeleteForm {
    csrf: String,
    base_md5: String,
}

/// `POST .../delete`: deletes the key if it is still the version shown;
/// on to the environment, or the editor with the refusal.
pub async fn delete(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    headers: HeaderMap,
    Path(at): Path<KeyAt>,
    Form(form): Form<DeleteForm>,
) -> Response {
    let (session, credential) = match sign_in(&state, &headers, &at, &form.csrf).await {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    let path = format!("{}?base_md5={}", at.api(), segment(&form.base_md5));
    match send(&api, &credential, (Method::DELETE, &path), None).await {
        Ok(_) => Redirect::to(&env_href(&at.env)).into_response(),
        Err(refused) => act_refused(&api, (&session, &credential), &at, &refused).await,
    }
}

/// The rollback form: the version whose content comes back.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RollbackForm {
    csrf: String,
    version: String,
}

/// `POST .../rollback`: publishes an earlier version's content again.
pub async fn rollback(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    headers: HeaderMap,
    Path(at): Path<KeyAt>,
    Form(form): Form<RollbackForm>,
) -> Response {
    let (session, credential) = match sign_in(&state, &headers, &at, &form.csrf).await {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    let Ok(version) = form.version.trim().parse::<u64>() else {
        let refused = Refused::missing("version", "name the version to roll back to");
        return act_refused(&api, (&session, &credential), &at, &refused).await;
    };
    let path = format!("{}/rollback", at.api());
    let body = json!({"version": version});
    match send(&api, &credential, (Method::POST, &path), Some(body)).await {
        Ok(_) => Redirect::to(&at.href()).into_response(),
        Err(refused) => act_refused(&api, (&session, &credential), &at, &refused).await,
    }
}

/// The editor with a refused delete or rollback above it.
async fn act_refused(
    api: &Api,
    signed_in: (&Session, &str),
    at: &KeyAt,
    refused: &Refused,
) -> Response {
    let shown = Shown {
        notice: refused.summary("key-action-error", &[]),
        ..Shown::default()
    };
    render(api, signed_in, at, shown, refused.status).await
}

/// What the script sends to be checked: the key form's fields.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ValidateForm {
    key: String,
    format: String,
    content: String,
}

/// `POST /ui/config/validate`: the API's check of content, as JSON, for the
/// key form's script. It stores nothing, so it takes no CSRF token.
pub async fn validate(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    headers: HeaderMap,
    Form(form): Form<ValidateForm>,
) -> Response {
    let credential = match session::require_with_credential(&state, &headers, HERE).await {
        Ok((_, credential)) => credential,
        Err(to_login) => return to_login,
    };
    let key = Some(form.key.trim()).filter(|k| !k.is_empty());
    let format = Some(form.format.trim()).filter(|f| !f.is_empty());
    // The script sends the textarea's value, whose line breaks are LF, as a publish stores them.
    let body = json!({"key": key, "format": format, "content": form.content});
    let (status, answer): (StatusCode, Value) = api
        .call(
            Method::POST,
            "/api/v1/config/validate",
            &credential,
            Some(body),
        )
        .await;
    (status, Json(answer)).into_response()
}
