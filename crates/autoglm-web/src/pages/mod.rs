//! The pages of the console, one module each.

pub mod alerts;
pub mod audit;
pub mod config;
pub mod filters;
pub mod incidents;
pub mod keys;
pub mod model;
pub mod models;
pub mod overview;
pub mod policies;
pub mod quota;
pub mod services;
pub mod tasks;
pub mod usage;
pub mod version;

use autoglm_console::AppState;
use autoglm_core::rbac::Permission;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use crate::layout;
use crate::session::{self, Session};

/// A read-only page: where it is, what it needs, and what it says when it
/// may not or cannot read.
pub struct Place {
    here: &'static str,
    title: &'static str,
    permission: Permission,
    denied: &'static str,
    unreadable: &'static str,
}

impl Place {
    /// The session of the request, or the answer instead: the redirect to
    /// the login, or the page telling the principal its role may not read.
    async fn open(&self, state: &AppState, headers: &HeaderMap) -> Result<Session, Response> {
        let session = session::require(state, headers, self.here).await?;
        if session.principal.require(self.permission).is_err() {
            let body = html! { p.empty { (self.denied) } };
            let page = layout::page(&session, self.here, self.title, body);
            return Err((axum::http::StatusCode::FORBIDDEN, page).into_response());
        }
        Ok(session)
    }

    /// The page saying the store could not be read.
    fn unreadable(&self, session: &Session) -> Response {
        let body = html! { p.error role="alert" { (self.unreadable) } };
        layout::page(session, self.here, self.title, body).into_response()
    }

    /// The page with `body`.
    fn show(&self, session: &Session, body: maud::Markup) -> Response {
        layout::page(session, self.here, self.title, body).into_response()
    }
}

/// `GET /`: the overview (which sends a browser without a session to log in).
pub async fn home() -> Redirect {
    Redirect::to("/ui")
}
