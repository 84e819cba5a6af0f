//! The web console: server-rendered pages (maud templates compiled into the
//! binary, one stylesheet and one small script of our own) over the console's
//! store and platform, mounted beside the REST API by `autoglm console` and
//! `autoglm up`.
//!
//! A browser logs in with a user name and password (a session token) or an
//! API key; either is kept in an HttpOnly, SameSite=Strict cookie (Secure
//! under TLS) and resolved on every request by the same rules as the API's
//! Bearer header, so a page shows what its principal may see and offers only
//! what it may do. Every form carries a CSRF token, an HMAC of the cookie's
//! credential under the installation's key. A form or query the pages cannot
//! read is refused with an RFC 9457 problem document, as the API refuses.

mod api;
mod extract;
mod fields;
mod layout;
mod login;
mod pages;
mod session;
mod upload;

use autoglm_console::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use pages::{alerts, config, incidents, services};

/// How the pages are served.
#[derive(Debug, Clone, Copy, Default)]
pub struct WebConfig {
    /// Mark cookies Secure: the console serves HTTPS.
    pub secure_cookies: bool,
    /// The Grafana that holds `deploy/grafana`'s dashboards, e.g.
    /// `https://grafana.example.com`: a service's page links to them.
    pub grafana_url: Option<&'static str>,
}

/// The pages, to mount with `autoglm_console::router_with_ui`; `api` is the
/// console's API router, which the pages that change things call.
pub fn router(config: WebConfig, api: Router) -> Router<AppState> {
    Router::new()
        .route("/", get(pages::home))
        .route("/login", get(login::login_form).post(login::login))
        .route("/logout", post(login::logout))
        .route("/ui", get(pages::overview::page))
        .route(
            "/ui/models",
            get(pages::models::page).post(pages::models::create),
        )
        .route("/ui/models/{name}", get(pages::model::page))
        .route(
            "/ui/models/{name}/versions",
            // Files of any size stream through to the API, which sets the limits.
            post(pages::model::upload).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/ui/models/{name}/versions/{version}/stage",
            post(pages::model::set_stage),
        )
        .route(
            "/ui/models/{name}/versions/{version}",
            get(pages::version::page),
        )
        .route(
            "/ui/models/{name}/versions/{version}/evaluations",
            // The dataset goes on to the API, which holds it to its own limit.
            post(pages::version::evaluate).layer(DefaultBodyLimit::max(
                autoglm_console::api::evaluations::DATASET_LIMIT + 64 * 1024,
            )),
        )
        .route("/ui/tasks", get(pages::tasks::page))
        .route("/ui/tasks/{id}/cancel", post(pages::tasks::cancel))
        .route("/ui/alerts", get(alerts::page))
        .route("/ui/alerts/rules", post(alerts::rule::create))
        .route("/ui/alerts/rules/{name}/delete", post(alerts::delete_rule))
        .route("/ui/alerts/silences", post(alerts::silence::create))
        .route(
            "/ui/alerts/silences/{id}/expire",
            post(alerts::expire_silence),
        )
        .route("/ui/incidents", get(incidents::page))
        .route("/ui/incidents/{id}", get(incidents::detail::page))
        .route("/ui/incidents/{id}/{action}", post(incidents::detail::act))
        .merge(config_routes())
        .merge(filter_routes())
        .route("/ui/usage", get(pages::usage::page))
        .route(
            "/ui/quota",
            get(pages::quota::page).post(pages::quota::save),
        )
        .route("/ui/audit", get(pages::audit::page))
        .route("/ui/keys", get(pages::keys::page).post(pages::keys::create))
        .route("/ui/keys/{id}/revoke", post(pages::keys::revoke))
        .route(
            "/ui/policies",
            get(pages::policies::page).post(pages::policies::save),
        )
        .route("/ui/policies/new", get(pages::policies::new))
        .route("/ui/policies/test", post(pages::policies::test))
        .route(
            "/ui/policies/{name}",
            get(pages::policies::detail).post(pages::policies::save),
        )
        .route("/ui/policies/{name}/test", post(pages::policies::test))
        .route("/ui/policies/{name}/delete", post(pages::policies::delete))
        .route("/ui/global-policies", post(pages::policies::save))
        .route("/ui/global-policies/new", get(pages::policies::new))
        .route("/ui/global-policies/test", post(pages::policies::test))
        .route(
            "/ui/global-policies/{name}",
            get(pages::policies::detail).post(pages::policies::save),
        )
        .route(
            "/ui/global-policies/{name}/test",
            post(pages::policies::test),
        )
        .route(
            "/ui/global-policies/{name}/delete",
            post(pages::policies::delete),
        )
        .route(
            "/ui/services/new",
            get(services::form::page).post(services::form::create),
        )
        .route("/ui/services/yaml", post(services::form::yaml))
        .route("/ui/services/{name}", get(services::page))
        .route("/ui/services/{name}/split", post(services::split))
        .route("/ui/services/{name}/scale", post(services::scale))
        .route("/ui/services/{name}/restart", post(services::restart))
        .route(
            "/ui/services/{name}/rollout/{action}",
            post(services::rollout::act),
        )
        .route(
            "/ui/services/{name}/replicas/{replica}/logs",
            get(services::logs),
        )
        .route(
            "/ui/services/{name}/replicas/{replica}/logs.txt",
            get(services::log_text),
        )
        .route("/assets/app.css", get(layout::stylesheet))
        .route("/assets/app.js", get(layout::script))
        .layer(axum::Extension(config))
        .layer(axum::Extension(api::Api(api)))
}

/// The gateway filters' page and its forms.
fn filter_routes() -> Router<AppState> {
    use pages::filters;
    Router::new()
        .route("/ui/filters", get(filters::page))
        .route(
            "/ui/filters/upload",
            // The module streams through to the API, which sets the limit.
            post(filters::upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/ui/filters/attach", post(filters::attach))
        .route("/ui/filters/chain/move", post(filters::move_in_chain))
        .route("/ui/filters/{name}/detach", post(filters::detach))
        .route("/ui/filters/{name}/delete", post(filters::delete))
}

/// The config center's pages. Forms carrying a key's content take what the
/// API takes (1 MiB of content), which form encoding can triple.
fn config_routes() -> Router<AppState> {
    let content = || DefaultBodyLimit::max(4 * 1024 * 1024);
    Router::new()
        .route(
            "/ui/config",
            get(config::environments::page).post(config::environments::create),
        )
        .route(
            "/ui/config/promote",
            get(config::promote::page).post(config::promote::apply),
        )
        .route("/ui/config/requests", get(config::requests::page))
        .route(
            "/ui/config/requests/{id}/{decision}",
            post(config::requests::decide),
        )
        .route(
            "/ui/config/validate",
            post(config::editor::validate).layer(content()),
        )
        .route("/ui/config/{env}", get(config::environment::page))
        .route(
            "/ui/config/{env}/keys",
            post(config::environment::create_key).layer(content()),
        )
        .route(
            "/ui/config/{env}/keys/{group}/{key}",
            // The layer covers the publish only: the method added after it is not under it.
            post(config::editor::publish)
                .layer(content())
                .get(config::editor::page),
        )
        .route(
            "/ui/config/{env}/keys/{group}/{key}/diff",
            get(config::diff::page),
        )
        .route(
            "/ui/config/{env}/keys/{group}/{key}/delete",
            post(config::editor::delete),
        )
        .route(
            "/ui/config/{env}/keys/{group}/{key}/rollback",
            post(config::editor::rollback),
        )
        .route("/ui/config/{env}/snapshots", post(config::snapshots::take))
        .route(
            "/ui/config/{env}/snapshots/{name}/restore",
            post(config::snapshots::restore),
        )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_pages_routes_do_not_clash() {
        // axum refuses overlapping routes when they are added, by panicking.
        let _ = super::router(super::WebConfig::default(), axum::Router::new());
    }
}
