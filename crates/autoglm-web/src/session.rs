//! The session cookie, what a page requires of it, and CSRF tokens.
//!
//! The cookie holds the bearer credential itself (a session token from a
//! password login, or the API key a user logged in with), so a key keeps its
//! scopes in the browser. A form's CSRF token is an HMAC of that credential
//! under a key derived from the installation's secret (`Sessions::csrf_token`):
//! another site can neither read the cookie nor compute the token, and the
//! token outlives a restart of the console. The login form, before any
//! session, uses a random value in a cookie of its own.

use autoglm_auth::{Principal, authenticate};
use autoglm_console::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::WebConfig;

/// The session cookie.
pub(crate) const SESSION: &str = "autoglm_session";
/// The login form's CSRF cookie.
pub(crate) const LOGIN_CSRF: &str = "autoglm_login_csrf";

/// The value of cookie `name`, if the request has it.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

pub(crate) fn set_cookie(name: &str, value: &str, max_age: i64, config: WebConfig) -> HeaderValue {
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
                csrf: state.sessions.csrf_token(&credential),
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
    !submitted.is_empty() && bool::from(submitted.as_bytes().ct_eq(session.csrf.as_bytes()))
}

/// The answer to a form without the right CSRF token.
pub fn stale_form() -> Response {
    autoglm_console::error::ApiError::new(
        autoglm_core::error::ErrorCode::Forbidden,
        "this form is stale or came from another site: reload the page and try again",
    )
    .into_response()
}

/// Where a login may send the browser: only a page of this console.
/// A form with nothing but its CSRF token (log out, revoke).
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
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
}
