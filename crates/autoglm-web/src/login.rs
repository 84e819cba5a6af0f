//! Logging in (with a password or an API key) and out: the login page and
//! the handlers that set and clear the session cookie.

use crate::extract::{Form, Query};
use autoglm_auth::{authenticate, random_string};
use autoglm_console::AppState;
use autoglm_console::api::auth::password_login;
use autoglm_core::security::LoginRequest;
use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use crate::WebConfig;
use crate::layout;
use crate::session::{CsrfForm, LOGIN_CSRF, SESSION, cookie, require_form, set_cookie};

fn safe_next(next: Option<&str>) -> &str {
    match next {
        // Only this console's pages, and only what a Location header can carry.
        Some(n)
            if n.starts_with("/ui")
                && !n.starts_with("//")
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n
        }
        _ => "/ui",
    }
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

fn login_page(next: &str, csrf: &str, error: Option<&str>, username: &str) -> maud::Markup {
    layout::bare(
        "Log in",
        html! {
            main.login {
                h1 { "autoglm" }
                p.muted { "Log in with your user name and password, or with an API key." }
                @if let Some(error) = error {
                    p.error role="alert" id="login-error" { (error) }
                }
                form method="post" action="/login" {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="next" value=(next);
                    label for="username" { "User name" }
                    input id="username" name="username" autocomplete="username" value=(username);
                    label for="password" { "Password" }
                    input id="password" name="password" type="password" autocomplete="current-password";
                    p.or { "or" }
                    label for="api_key" { "API key" }
                    input id="api_key" name="api_key" type="password" autocomplete="off" placeholder="agk_…";
                    button type="submit" { "Log in" }
                }
            }
        },
    )
}

/// `GET /login`.
pub async fn login_form(
    Extension(config): Extension<WebConfig>,
    Query(query): Query<LoginQuery>,
) -> Response {
    let csrf = random_string(32);
    let mut response =
        login_page(safe_next(query.next.as_deref()), &csrf, None, "").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LOGIN_CSRF, &csrf, 3600, config),
    );
    response
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    api_key: String,
}

/// `POST /login`: a password or an API key; on success the session cookie.
pub async fn login(
    State(state): State<AppState>,
    Extension(config): Extension<WebConfig>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(Some(&form.next)).to_owned();
    let expected = cookie(&headers, LOGIN_CSRF).unwrap_or_default();
    let again = |error: &str| {
        let csrf = random_string(32);
        let mut response = (
            StatusCode::UNAUTHORIZED,
            login_page(&next, &csrf, Some(error), &form.username),
        )
            .into_response();
        response.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(LOGIN_CSRF, &csrf, 3600, config),
        );
        response
    };
    if expected.is_empty() || form.csrf != expected {
        return again("The login form had expired. Please try again.");
    }
    let credential = if !form.api_key.trim().is_empty() {
        let (store, sessions, key) = (
            state.store.clone(),
            state.sessions.clone(),
            form.api_key.trim().to_owned(),
        );
        match tokio::task::spawn_blocking(move || {
            authenticate(&store, &sessions, &key, chrono::Utc::now()).map(|_| key)
        })
        .await
        {
            Ok(Ok(key)) => key,
            Ok(Err(e)) => return again(&format!("That API key cannot log in: {}.", e.detail)),
            Err(_) => return again("The login could not be checked; try again."),
        }
    } else if form.username.is_empty() || form.password.is_empty() {
        return again("Enter your user name and password, or an API key.");
    } else {
        let request = LoginRequest {
            username: form.username.clone(),
            password: form.password.clone(),
            tenant: None,
        };
        match password_login(&state, request, &autoglm_console::request_id(&headers)).await {
            Ok(session) => session.token,
            Err(_) => return again("Wrong user name or password."),
        }
    };
    let mut response = Redirect::to(&next).into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(SESSION, &credential, 12 * 3600, config),
    );
    headers.append(header::SET_COOKIE, set_cookie(LOGIN_CSRF, "", 0, config));
    response
}

/// `POST /logout`: forgets the session cookie.
pub async fn logout(
    State(state): State<AppState>,
    Extension(config): Extension<WebConfig>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(answer) = require_form(&state, &headers, "/ui", &form.csrf).await {
        return answer;
    }
    let mut response = Redirect::to("/login").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(SESSION, "", 0, config));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_only_lead_to_pages_of_this_console() {
        assert_eq!(safe_next(Some("/ui/models")), "/ui/models");
        assert_eq!(safe_next(Some("https://evil.example/ui")), "/ui");
        assert_eq!(safe_next(Some("//evil.example")), "/ui");
        assert_eq!(safe_next(None), "/ui");
    }
}
