//! The config center's pages: the tenant's environments, one environment's
//! keys and snapshots, a key's editor with its history, the side-by-side diff
//! of two versions, promotions shown as a plan first, and change requests
//! with their approval. Every read and write goes through the console's
//! `/api/v1/config` routes with the browser's credential, so the rule of
//! protected environments (writes need `config:protected`, everyone else
//! files a change request) stays the API's; the pages only offer what it
//! would allow, and show its refusals in its words.

pub mod diff;
pub mod editor;
pub mod environment;
pub mod environments;
pub mod promote;
pub mod publish;
pub mod requests;
pub mod snapshots;

use autoglm_core::config::{ChangeAction, ConfigFormat, Environment};
use autoglm_core::rbac::Permission;
use axum::http::{Method, StatusCode};
use maud::{Markup, html};
use serde_json::Value;

use crate::api::{Api, segment};
use crate::fields::{self, FieldErrors};
use crate::session::Session;

/// Where the navigation marks every config page.
const HERE: &str = "/ui/config";

/// The page of environment `env`.
pub fn env_href(env: &str) -> String {
    format!("{HERE}/{}", segment(env))
}

/// The editor of key `group/key` of `env`.
pub fn key_href(env: &str, group: &str, key: &str) -> String {
    format!("{}/keys/{}/{}", env_href(env), segment(group), segment(key))
}

/// The API's path of environment `env`.
pub fn env_api(env: &str) -> String {
    format!("/api/v1/config/environments/{}", segment(env))
}

/// The API's path of key `group/key` of `env`.
pub fn key_api(env: &str, group: &str, key: &str) -> String {
    format!("{}/keys/{}/{}", env_api(env), segment(group), segment(key))
}

/// How a session may change an environment's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writes {
    /// Publish, delete, roll back and restore.
    Directly,
    /// Only by filing change requests: the environment is protected and the
    /// session lacks `config:protected`.
    ByRequest,
    /// Not at all (a viewer).
    No,
}

impl Writes {
    /// What `session` may do to `env`, as the API would decide it.
    pub fn of(session: &Session, env: &Environment) -> Writes {
        let may = |p| session.principal.require(p).is_ok();
        if !may(Permission::ConfigWrite) {
            Writes::No
        } else if env.protected && !may(Permission::ConfigProtected) {
            Writes::ByRequest
        } else {
            Writes::Directly
        }
    }
}

/// An environment's badges: protected, default.
pub fn env_badges(env: &Environment) -> Markup {
    html! {
        @if env.protected { span.badge.warn title="writes need config:protected or an approved change request" { "protected" } " " }
        @if env.default { span.badge title="the empty or public Nacos namespace" { "default" } }
    }
}

/// What protection means to this session, above an environment's forms.
pub fn protection_note(env: &Environment, writes: Writes) -> Markup {
    html! {
        @if env.protected {
            p.muted id="protected-note" {
                (env.name) " is protected: writing it needs " code { "config:protected" } " (operators and admins). "
                @match writes {
                    Writes::ByRequest => "Your changes are filed as change requests, which a second user approves on ",
                    Writes::Directly => "Your writes land directly; others file change requests, which you approve on ",
                    Writes::No => "Changes to it are approved on ",
                }
                a href={(HERE) "/requests"} { "Change requests" } "."
            }
        }
    }
}

/// A planned change's action as a badge: green for a new key, amber for a
/// changed one, red for a deleted one.
pub fn action_badge(action: ChangeAction) -> Markup {
    let (class, word) = match action {
        ChangeAction::Create => ("ok", "create"),
        ChangeAction::Update => ("warn", "update"),
        ChangeAction::Delete => ("bad", "delete"),
    };
    html! { span class={"badge " (class)} { (word) } }
}

/// The format choice of a key form: from the key's extension (the API's
/// default), or one format by name.
pub fn format_select(chosen: &str) -> Markup {
    html! {
        select id="config-format" name="format" {
            option value="" selected[chosen.is_empty()] { "from the key's extension" }
            @for format in ConfigFormat::ALL {
                option value=(format.as_str()) selected[chosen == format.as_str()] { (format.as_str()) }
            }
        }
    }
}

/// `n` things: `1 key`, `2 keys`.
pub fn count(n: usize, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

/// The first characters of an md5, enough to tell versions apart on a page.
pub fn short_md5(md5: &str) -> &str {
    md5.get(..8).unwrap_or(md5)
}

/// A form the API (or the page, before asking it) refused: the status to
/// answer with, the problem's detail, and the refusals field by field.
#[derive(Debug)]
pub struct Refused {
    /// The API's status.
    pub status: StatusCode,
    /// The problem's code (`generation_mismatch`, `forbidden`).
    pub code: String,
    /// The problem's detail.
    pub detail: String,
    /// The refused fields, by the API's paths.
    pub errors: FieldErrors,
}

impl Refused {
    /// The refusal the API answered with `status` and `problem`.
    pub fn of(status: StatusCode, problem: &Value) -> Refused {
        Refused {
            status,
            code: problem["code"].as_str().unwrap_or_default().to_owned(),
            detail: problem["detail"]
                .as_str()
                .unwrap_or("the request failed")
                .to_owned(),
            errors: fields::of_problem(problem),
        }
    }

    /// A field the page found empty, before asking the API.
    pub fn missing(path: &str, words: &str) -> Refused {
        Refused {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: String::new(),
            detail: "The form is not complete.".to_owned(),
            errors: vec![(path.to_owned(), words.to_owned())],
        }
    }

    /// Whether the API refused because a key changed since the page was
    /// read (a stale base version, a key that moved since a request).
    pub fn is_stale(&self) -> bool {
        self.code == "generation_mismatch"
    }

    /// The refusal above a form whose `fields` show their own (as `#{id}`).
    pub fn summary(&self, id: &str, fields: &fields::Fields) -> Markup {
        fields::summary(id, &self.detail, &self.errors, fields)
    }

    /// The refusal as `#{id}`, after `lead`, the page's own words on what it means.
    pub fn explained(&self, id: &str, lead: Markup) -> Markup {
        html! {
            div.error role="alert" id=(id) {
                (lead)
                p { (self.detail) }
                @for line in fields::others(&self.errors, &[]) { p { (line) } }
            }
        }
    }
}

/// Calls the API for a form: its answer, or the refusal to show with it.
pub async fn send(
    api: &Api,
    credential: &str,
    (method, path): (Method, &str),
    body: Option<Value>,
) -> Result<Value, Refused> {
    let (status, answer) = api.call(method, path, credential, body).await;
    if status.is_success() {
        Ok(answer)
    } else {
        Err(Refused::of(status, &answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_a_url_stay_one_segment_of_the_api_path() {
        assert_eq!(
            key_api("dev", "DEFAULT_GROUP", "a/../b.yaml"),
            "/api/v1/config/environments/dev/keys/DEFAULT_GROUP/a%2F..%2Fb.yaml"
        );
        assert_eq!(
            key_href("prod", "g", "app.json"),
            "/ui/config/prod/keys/g/app.json"
        );
    }

    #[test]
    fn a_conflict_is_stale_and_its_detail_is_kept() {
        let problem =
            serde_json::json!({"code": "generation_mismatch", "detail": "dev/g/k is at version 3"});
        let refused = Refused::of(StatusCode::CONFLICT, &problem);
        assert!(refused.is_stale());
        assert_eq!(refused.detail, "dev/g/k is at version 3");
        assert!(!Refused::missing("key", "name the key").is_stale());
    }
}
