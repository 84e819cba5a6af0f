//! Logging in and out, the session cookie, and CSRF tokens.
//!
//! The cookie holds the bearer credential itself (a session token from a
//! password login, or the API key a user logged in with), so a key keeps its
//! scopes in the browser. A form's CSRF token is a hash of that credential:
//! another site can neither read the cookie nor compute the token. The login
//! form, before any session, uses a random value in a cookie of its own.

use autoglm_auth::{Principal, authenticate, random_string, secret_hash};
use autoglm_console::AppState;
use autoglm_console::api::auth::password_login;
use autoglm_core::security::LoginRequest;
use axum::Extension;
use axum::extract::{Form, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use crate::WebConfig;
use crate::layout;

/// The session cookie.
const SESSION: &str = "autoglm_session";
/// The login form's CSRF cookie.
const LOGIN_CSRF: &str = "autoglm_login_csrf";

/// The value of cookie `name`, if the request has it.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn set_cookie(name: &str, value: &str, max_age: i64, config: WebConfig) -> HeaderValue {
    let secure = if config.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The CSRF token of the forms a holder of `credential` submits.
pub fn csrf_token(credential: &str) -> String {
    secret_hash(&format!("csrf:{credential}"))[..32].to_owned()
}

/// A logged-in browser: who it is, and the token its forms must carry.
pub struct Session {
    /// Who it acts as.
    pub principal: Principal,
    /// What its forms carry.
    pub csrf: String,
}

/// A logged-in browser and the credential in its cookie (for calls to the
/// API), as an extractor: a request without one is sent to the login page,
/// to come back to the path it asked for.
pub struct SignedIn {
    /// Who it is, and its forms' token.
    pub session: Session,
    /// The cookie's credential.
    pub credential: String,
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let (session, credential) =
            require_with_credential(state, &parts.headers, parts.uri.path()).await?;
        Ok(SignedIn {
            session,
            credential,
        })
    }
}

/// The session of the request, or the redirect to the login page.
pub async fn require(
    state: &AppState,
    headers: &HeaderMap,
    here: &str,
) -> Result<Session, Response> {
    require_with_credential(state, headers, here)
        .await
        .map(|(session, _)| session)
}

/// The session and the credential in its cookie (for calls to the API), or
/// the redirect to the login page.
pub async fn require_with_credential(
    state: &AppState,
    headers: &HeaderMap,
    here: &str,
) -> Result<(Session, String), Response> {
    let to_login =
        || Redirect::to(&format!("/login?next={}", crate::api::segment(here))).into_response();
    let Some(credential) = cookie(headers, SESSION).filter(|c| !c.is_empty()) else {
        return Err(to_login());
    };
    let (store, sessions, token) = (
        state.store.clone(),
        state.sessions.clone(),
        credential.clone(),
    );
    match tokio::task::spawn_blocking(move || {
        authenticate(&store, &sessions, &token, chrono::Utc::now())
    })
    .await
    {
        Ok(Ok(principal)) => Ok((
            Session {
                principal,
                csrf: csrf_token(&credential),
            },
            credential,
        )),
        _ => Err(to_login()),
    }
}

/// The session and credential of a submitted form carrying `csrf`, or the
/// answer instead: the login redirect, or the refusal of a stale form.
pub async fn require_form(
    state: &AppState,
    headers: &HeaderMap,
    here: &str,
    csrf: &str,
) -> Result<(Session, String), Response> {
    let (session, credential) = require_with_credential(state, headers, here).await?;
    if !csrf_ok(&session, csrf) {
        return Err(stale_form());
    }
    Ok((session, credential))
}

/// Whether a submitted form carries the session's CSRF token.
pub fn csrf_ok(session: &Session, submitted: &str) -> bool {
    // Compared in constant time, so the token cannot be guessed byte by byte.
    !submitted.is_empty()
        && submitted.len() == session.csrf.len()
        && submitted
            .bytes()
            .zip(session.csrf.bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

/// The answer to a form without the right CSRF token.
pub fn stale_form() -> Response {
    (
        StatusCode::FORBIDDEN,
        "this form is stale or came from another site: reload the page and try again",
    )
        .into_response()
}

/// Where a login may send the browser: only a page of this console.
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

/// A form with nothing but its CSRF token (log out, revoke).
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
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
    fn cookies_are_found_by_name_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; autoglm_session=tok; b=2"),
        );
        assert_eq!(cookie(&headers, SESSION).as_deref(), Some("tok"));
        assert_eq!(cookie(&headers, "c"), None);
    }

    #[test]
    fn logins_only_lead_to_pages_of_this_console() {
        assert_eq!(safe_next(Some("/ui/models")), "/ui/models");
        assert_eq!(safe_next(Some("https://evil.example/ui")), "/ui");
        assert_eq!(safe_next(Some("//evil.example")), "/ui");
        assert_eq!(safe_next(None), "/ui");
    }

    #[test]
    fn the_csrf_token_depends_on_the_credential() {
        assert_ne!(csrf_token("a"), csrf_token("b"));
        assert_eq!(csrf_token("a").len(), 32);
    }
}
