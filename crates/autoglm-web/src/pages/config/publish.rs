//! The key form that the environment's page (a new key) and the editor (a
//! key's next version) share: its fields, with the content checked as it is
//! typed, and its submission, a publish or, where the environment is
//! protected and the session may not write it, a change request.

use axum::http::Method;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Refused, Writes, env_api, format_select, key_api, send};
use crate::api::Api;
use crate::fields;
use crate::session::Session;

/// The form's fields, each with the API paths it shows refusals of (a
/// request's content is refused as `changes[0]`).
pub const FIELDS: [(&str, &[&str]); 3] = [
    ("config-group", &["group"]),
    ("config-key", &["key"]),
    ("config-content", &["content", "changes", "publish"]),
];

/// Where the content is checked as it is typed.
pub const VALIDATE: &str = "/ui/config/validate";

/// The form as submitted, every field a string.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct KeyForm {
    pub csrf: String,
    pub group: String,
    pub key: String,
    /// A format's name, or empty for the key's extension.
    pub format: String,
    pub content: String,
    pub message: String,
    /// The version the editor showed; empty on a new key's form.
    pub base_version: String,
    /// `publish`, or `request` for a change request.
    pub intent: String,
}

impl KeyForm {
    /// A new key's form: in the default group, its format from its extension.
    pub fn fresh() -> KeyForm {
        KeyForm {
            group: autoglm_core::config::DEFAULT_GROUP.to_owned(),
            ..KeyForm::default()
        }
    }

    /// The version the publish must find, so that a stale edit is refused:
    /// the one the editor showed, or 0 (no such key yet) for a new key, so
    /// the new-key form never overwrites a key that already exists.
    fn base_version(&self) -> u64 {
        self.base_version.trim().parse().unwrap_or(0)
    }

    /// The content as typed. Browsers send a textarea's line breaks as CRLF
    /// whatever the text held (its value shows them as LF), so they are
    /// LF again here, or every edit in a browser would rewrite every line.
    fn content(&self) -> String {
        self.content.replace("\r\n", "\n")
    }

    /// The format as the API takes it: none means "from the extension".
    fn format(&self) -> Value {
        match self.format.trim() {
            "" => Value::Null,
            name => json!(name),
        }
    }
}

/// What a submitted form did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filed {
    /// A new version is live.
    Published,
    /// A change request waits for a second user.
    Requested,
}

/// Sends the form for environment `env`: the publish, or the change request.
pub async fn submit(
    api: &Api,
    credential: &str,
    env: &str,
    form: &KeyForm,
) -> Result<Filed, Refused> {
    let (group, key) = (form.group.trim(), form.key.trim());
    if group.is_empty() {
        return Err(Refused::missing("group", "name the group"));
    }
    if key.is_empty() {
        return Err(Refused::missing("key", "name the key"));
    }
    if form.intent == "request" {
        let body = json!({
            "publish": [{"group": group, "key": key, "format": form.format(), "content": form.content()}],
            "message": form.message,
        });
        let path = format!("{}/requests", env_api(env));
        send(api, credential, (Method::POST, &path), Some(body)).await?;
        return Ok(Filed::Requested);
    }
    let body = json!({
        "format": form.format(),
        "content": form.content(),
        "message": form.message,
        "baseVersion": form.base_version(),
    });
    let path = key_api(env, group, key);
    send(api, credential, (Method::PUT, &path), Some(body)).await?;
    Ok(Filed::Published)
}

/// The form posting to `action`; `editing` when it is the editor's (the
/// group and key are then fixed). Nothing for a session that may not write.
pub fn form(
    session: &Session,
    (action, editing): (&str, bool),
    writes: Writes,
    f: &KeyForm,
    refused: Option<&Refused>,
) -> Markup {
    let errors = refused.map(|r| r.errors.clone()).unwrap_or_default();
    let err = |id: &str| fields::beside(&errors, &FIELDS, id);
    let (intent, label) = match writes {
        Writes::Directly => ("publish", "Publish"),
        Writes::ByRequest => ("request", "Request change"),
        Writes::No => return html! {},
    };
    html! {
        @if !editing { h2 { "New key" } }
        @if let Some(refused) = refused {
            @if refused.is_stale() {
                (refused.explained("key-error", html! {
                    p id="key-stale" {
                        @if editing {
                            "Someone published a newer version since this editor was opened, so nothing was saved. "
                            "Your text is kept below: reload the page to see the current version, then publish again."
                        } @else {
                            "A key of that name already exists: open it from the list to edit it."
                        }
                    }
                }))
            } @else {
                (refused.summary("key-error", &FIELDS))
            }
        }
        form.fields method="post" action=(action) id="key-form" {
            input type="hidden" name="csrf" value=(session.csrf);
            @if editing {
                input type="hidden" name="group" value=(f.group);
                input type="hidden" name="key" value=(f.key);
                input type="hidden" name="base_version" value=(f.base_version);
            }
            fieldset {
                @if !editing {
                    div.row {
                        label for="config-group" { "Group" }
                        input id="config-group" name="group" value=(f.group) aria-describedby="error-config-group";
                        label for="config-key" { "Key" }
                        input id="config-key" name="key" value=(f.key) placeholder="application.yaml" aria-describedby="error-config-key";
                    }
                    (err("config-group"))
                    (err("config-key"))
                }
                div.row {
                    label for="config-format" { "Format" }
                    (format_select(&f.format))
                }
                label for="config-content" { "Content" }
                textarea id="config-content" name="content" rows="14" spellcheck="false"
                    data-validate=(VALIDATE) aria-describedby="config-content-validation error-config-content" {
                    // A textarea drops one newline right after its tag: this one, not the content's.
                    "\n" (f.content)
                }
                p.validation id="config-content-validation" aria-live="polite" {}
                (err("config-content"))
                label for="config-message" { "Message" }
                input id="config-message" name="message" value=(f.message) placeholder="why this change";
            }
            button type="submit" name="intent" value=(intent) id="key-submit" { (label) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_browsers_crlf_is_lf_again_and_no_format_means_the_extension() {
        let form = KeyForm {
            content: "a: 1\r\nb: 2\r\n".into(),
            ..KeyForm::fresh()
        };
        assert_eq!(form.content(), "a: 1\nb: 2\n");
        assert_eq!(form.format(), Value::Null);
        assert_eq!(form.base_version(), 0, "a new key must not exist yet");
        let edited = KeyForm {
            format: "yaml".into(),
            base_version: "7".into(),
            ..KeyForm::fresh()
        };
        assert_eq!((edited.format(), edited.base_version()), (json!("yaml"), 7));
    }
}
