//! `/ui/config/{env}`: one environment's live keys (narrowed to a group on
//! request), the form for a new key, and its snapshots; on a protected
//! environment, a session without `config:protected` files change requests
//! instead of publishing.

use crate::extract::{Form, Query};
use autoglm_console::AppState;
use autoglm_core::config::{ConfigVersion, Environment, Snapshot};
use autoglm_core::registry::Page;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::publish::{self, Filed, KeyForm};
use super::snapshots::{self, SnapshotForm};
use super::{
    HERE, Refused, Writes, env_api, env_badges, env_href, key_href, protection_note, short_md5,
};
use crate::api::{Api, segment};
use crate::layout::{self, short_time};
use crate::session::{self, Session, SignedIn};

/// `?group=` of the page.
#[derive(Debug, Default, Deserialize)]
pub struct GroupFilter {
    #[serde(default)]
    group: String,
}

/// What the page shows besides the records: both forms as they came back,
/// with their refusals, and a refused restore.
#[derive(Debug, Default)]
pub struct Shown {
    pub key: (KeyForm, Option<Refused>),
    pub snapshot: (SnapshotForm, Option<Refused>),
    pub notice: Markup,
}

impl Shown {
    /// Both forms empty, nothing refused.
    pub fn fresh() -> Shown {
        Shown {
            key: (KeyForm::fresh(), None),
            ..Shown::default()
        }
    }
}

fn keys_table(env: &str, keys: &[ConfigVersion]) -> Markup {
    html! {
        table id="keys" {
            thead { tr {
                th scope="col" { "Group" } th scope="col" { "Key" } th scope="col" { "Format" }
                th.num scope="col" { "Version" } th scope="col" { "md5" } th scope="col" { "Author" }
                th scope="col" { "Updated" }
            } }
            tbody {
                @for k in keys {
                    tr data-key={(k.group) "/" (k.key)} {
                        td { (k.group) }
                        th scope="row" { a href=(key_href(env, &k.group, &k.key)) { (k.key) } }
                        td { (k.format.as_str()) }
                        td.num.version { (k.version) }
                        td { code title=(k.md5) { (short_md5(&k.md5)) } }
                        td { (k.author) }
                        td { (short_time(&k.created_at.to_rfc3339())) }
                    }
                }
            }
        }
    }
}

/// The groups to narrow the list to, the chosen one marked.
fn group_filter(env: &str, groups: &[String], chosen: &str) -> Markup {
    let here = env_href(env);
    html! {
        nav.filters aria-label="Group" {
            @if chosen.is_empty() { strong { "every group" } } @else { a href=(here) { "every group" } }
            @for g in groups {
                " · "
                @if g == chosen {
                    a href={(here) "?group=" (segment(g))} aria-current="page" { strong { (g) } }
                } @else {
                    a href={(here) "?group=" (segment(g))} { (g) }
                }
            }
        }
    }
}

/// The page of `env` narrowed to `group` (empty: every group).
pub async fn render(
    api: &Api,
    (session, credential): (&Session, &str),
    (env, group): (&str, &str),
    shown: Shown,
    status: StatusCode,
) -> Response {
    let title = format!("Config · {env}");
    let environment: Environment = match api.get_as(&env_api(env), credential).await {
        Ok(environment) => environment,
        Err(unread) => return unread.page(session, HERE, &title),
    };
    let keys_path = format!("{}/keys", env_api(env));
    let every: Page<ConfigVersion> = match api.get_as(&keys_path, credential).await {
        Ok(keys) => keys,
        Err(unread) => return unread.page(session, HERE, &title),
    };
    let mut groups: Vec<String> = every.items.iter().map(|k| k.group.clone()).collect();
    groups.sort();
    groups.dedup();
    // The API narrows the list itself; the unfiltered one above names the groups.
    let listed = if group.is_empty() {
        every.items
    } else {
        let path = format!("{keys_path}?group={}", segment(group));
        match api.get_as::<Page<ConfigVersion>>(&path, credential).await {
            Ok(keys) => keys.items,
            Err(unread) => return unread.page(session, HERE, &title),
        }
    };
    let snapshots_path = format!("{}/snapshots", env_api(env));
    let taken = api
        .get_as(&snapshots_path, credential)
        .await
        .map_or_else(|_| Vec::new(), |p: Page<Snapshot>| p.items);
    let writes = Writes::of(session, &environment);
    let (key_form, key_refused) = &shown.key;
    let (snapshot_form, snapshot_refused) = &shown.snapshot;
    let body = html! {
        p {
            a href=(HERE) { "← Environments" } " · " (environment.description) " " (env_badges(&environment))
        }
        (protection_note(&environment, writes))
        (shown.notice)
        h2 { "Keys" }
        @if groups.len() > 1 || !group.is_empty() { (group_filter(env, &groups, group)) }
        @if listed.is_empty() { p.empty id="no-keys" { "No keys yet." } } @else { (keys_table(env, &listed)) }
        @let action = format!("{}/keys", env_href(env));
        (publish::form(session, (&action, false), writes, key_form, key_refused.as_ref()))
        (snapshots::section(session, (env, writes), &taken, snapshot_form, snapshot_refused.as_ref()))
    };
    (status, layout::page(session, HERE, &title, body)).into_response()
}

/// `GET /ui/config/{env}`.
pub async fn page(
    SignedIn {
        session,
        credential,
    }: SignedIn,
    Extension(api): Extension<Api>,
    Path(env): Path<String>,
    Query(filter): Query<GroupFilter>,
) -> Response {
    let at = (env.as_str(), filter.group.as_str());
    render(
        &api,
        (&session, &credential),
        at,
        Shown::fresh(),
        StatusCode::OK,
    )
    .await
}

/// `POST /ui/config/{env}/keys`: publishes a new key (back to the list) or
/// files a change request for it (on to the requests); else the page with
/// the form as typed and the refusal.
pub async fn create_key(
    State(state): State<AppState>,
    Extension(api): Extension<Api>,
    headers: HeaderMap,
    Path(env): Path<String>,
    Form(form): Form<KeyForm>,
) -> Response {
    let back = env_href(&env);
    let (session, credential) =
        match session::require_form(&state, &headers, &back, &form.csrf).await {
            Ok(s) => s,
            Err(answer) => return answer,
        };
    match publish::submit(&api, &credential, &env, &form).await {
        Ok(Filed::Published) => Redirect::to(&back).into_response(),
        Ok(Filed::Requested) => Redirect::to(&format!("{HERE}/requests")).into_response(),
        Err(refused) => {
            let status = refused.status;
            let shown = Shown {
                key: (form, Some(refused)),
                ..Shown::fresh()
            };
            render(&api, (&session, &credential), (&env, ""), shown, status).await
        }
    }
}
