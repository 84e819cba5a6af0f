//! The page frame (header, navigation, who is logged in, log out), the
//! stylesheet and the script: our own, small; pages read and work without them.

use autoglm_core::rbac::Permission;
use axum::http::header;
use axum::response::IntoResponse;
use maud::{DOCTYPE, Markup, html};

use crate::session::Session;

/// The sections of the console, as the navigation lists them, each with
/// the permission a principal needs to be shown it, if any.
const SECTIONS: [(&str, &str, Option<Permission>); 12] = [
    ("/ui", "Overview", None),
    ("/ui/models", "Models", None),
    ("/ui/tasks", "Tasks", None),
    ("/ui/alerts", "Alerts", Some(Permission::AlertsRead)),
    ("/ui/incidents", "Incidents", Some(Permission::AlertsRead)),
    ("/ui/config", "Config", Some(Permission::ConfigRead)),
    ("/ui/policies", "Policies", Some(Permission::PoliciesRead)),
    ("/ui/filters", "Filters", Some(Permission::ServicesRead)),
    ("/ui/keys", "API keys", None),
    ("/ui/usage", "Usage", None),
    ("/ui/quota", "Quota", None),
    ("/ui/audit", "Audit", None),
];

fn head(title: &str) -> Markup {
    html! {
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        title { (title) " · autoglm" }
        link rel="stylesheet" href="/assets/app.css";
        script src="/assets/app.js" defer {}
    }
}

/// A page without a session (the login page).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { (head(title)) }
            body { (body) }
        }
    }
}

/// A page of a logged-in session, with `here` marked in the navigation.
pub fn page(session: &Session, here: &str, title: &str, body: Markup) -> Markup {
    let grant = &session.principal.grant;
    let sections = SECTIONS
        .into_iter()
        .filter(|(_, _, needs)| needs.is_none_or(|p| session.principal.require(p).is_ok()))
        .map(|(path, name, _)| (path, name));
    html! {
        (DOCTYPE)
        html lang="en" {
            head { (head(title)) }
            body {
                header.top {
                    a.brand href="/ui" { "autoglm" }
                    nav aria-label="Sections" {
                        @for (path, name) in sections {
                            @if path == here {
                                a href=(path) aria-current="page" { (name) }
                            } @else {
                                a href=(path) { (name) }
                            }
                        }
                    }
                    div.who {
                        span id="who" { (session.principal.username) " · " (grant.role.as_str()) " in " (grant.tenant) }
                        form method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(session.csrf);
                            button.link type="submit" id="logout" { "Log out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// An RFC 3339 time as a page shows it: `2026-11-29 07:01:49`, in UTC.
pub fn short_time(rfc3339: &str) -> String {
    rfc3339.get(..19).unwrap_or(rfc3339).replace('T', " ")
}

/// `GET /assets/app.js`: live parts of pages, the YAML view of the service
/// form, log follow, upload progress. Pages work without it.
pub async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        include_str!("app.js"),
    )
}

/// `GET /assets/app.css`.
pub async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        include_str!("app.css"),
    )
}
