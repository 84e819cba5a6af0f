//! The config center's wire types and rules: environments of a tenant hold
//! groups of keys, every publish of a key is an immutable version with its
//! md5, and the content is checked against its format before it is stored.
//!
//! Nothing here touches IO: the store keeps the versions, the `autoglm-config`
//! crate pushes changes to watchers, and the console and the Nacos-compatible
//! server speak these types.

pub mod format;
pub mod plan;
pub mod settings;

use chrono::{DateTime, Utc};
use md5::{Digest, Md5};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::FieldError;

pub use format::{ConfigFormat, FormatError};
pub use plan::{ChangeAction, PlannedChange, plan_promotion, unified_diff};

/// The largest content a key may hold, in bytes (Nacos' own default is 100 KiB;
/// model configurations such as tokenizer or prompt templates run larger).
pub const MAX_CONTENT_BYTES: usize = 1024 * 1024;

/// The longest key (a Nacos `dataId`).
pub const MAX_KEY_LEN: usize = 255;

/// The longest group.
pub const MAX_GROUP_LEN: usize = 127;

/// The group a key is in when none is named, as in Nacos.
pub const DEFAULT_GROUP: &str = "DEFAULT_GROUP";

/// The environments every tenant starts with; `prod` is protected.
pub const DEFAULT_ENVIRONMENTS: [(&str, &str, bool); 4] = [
    ("dev", "Development", false),
    ("test", "Testing", false),
    ("staging", "Staging, the last stop before production", false),
    (
        "prod",
        "Production: writes need config:protected or an approved request",
        true,
    ),
];

/// The environment the empty or `public` Nacos namespace maps to.
pub const DEFAULT_ENVIRONMENT: &str = "dev";

/// The ConfigMap that holds an environment's live keys on Kubernetes.
pub fn config_map_name(environment: &str) -> String {
    format!("autoglm-config-{environment}")
}

/// The data key of a config key: `GROUP.KEY`, with `:` (which ConfigMap
/// keys may not hold) as `_`.
pub fn data_key(group: &str, key: &str) -> String {
    format!("{group}.{key}").replace(':', "_")
}

/// The lowercase hex md5 of the content's UTF-8 bytes, leading zeros kept,
/// exactly as Nacos clients compute it.
pub fn md5_hex(content: &str) -> String {
    hex::encode(Md5::digest(content.as_bytes()))
}

/// Checks a group or key name: letters, digits and `._:-`, never `..`.
/// Paths, file names and Nacos `dataId`s are built from them, so `/` and
/// `..` would let one name reach another's place.
pub fn check_key_name(kind: &'static str, name: &str) -> Result<(), String> {
    let limit = if kind == "group" {
        MAX_GROUP_LEN
    } else {
        MAX_KEY_LEN
    };
    if name.is_empty() {
        return Err(format!("{kind} must not be empty"));
    }
    if name.len() > limit {
        return Err(format!(
            "{kind} is {} characters long; the limit is {limit}",
            name.len()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
    {
        return Err(format!(
            "{kind} {name:?} contains {bad:?}; use letters, digits and '.', '_', ':', '-'"
        ));
    }
    if name.contains("..") || name == "." {
        return Err(format!("{kind} {name:?} must not contain '..' or be '.'"));
    }
    Ok(())
}

/// An environment: a namespace of the config center within a tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Environment {
    /// Its name, a DNS label (`dev`, `prod`).
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Whether writes need `config:protected` (or an approved change request).
    pub protected: bool,
    /// Whether the empty or `public` Nacos namespace means this environment.
    pub default: bool,
    /// How many live keys it holds.
    pub keys: u64,
    /// Who made it (`system` for the four every tenant starts with).
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// `POST /api/v1/config/environments`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateEnvironment {
    /// A DNS label.
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// Whether writes need `config:protected` (or an approved change request).
    #[serde(default)]
    pub protected: bool,
}

/// One immutable version of a key (the newest is the key's current value).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigVersion {
    /// The environment.
    pub environment: String,
    /// The group.
    pub group: String,
    /// The key (a Nacos `dataId`).
    pub key: String,
    /// 1 for the first publish, one more for each after it (a delete too).
    pub version: u64,
    /// How the content is checked and which extension an export gives it.
    pub format: ConfigFormat,
    /// The content, byte for byte as published (empty for a delete).
    pub content: String,
    /// Lowercase hex md5 of the content (empty for a delete).
    pub md5: String,
    /// Who published it.
    pub author: String,
    /// Why.
    pub message: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Whether this version deletes the key (the history stays).
    pub deleted: bool,
    /// The config center's revision at this version: grows by one for every
    /// version of every key of the installation, so a watcher can resume after it.
    pub revision: u64,
}

impl ConfigVersion {
    /// What a watcher is told about this version.
    pub fn change(&self) -> ConfigChange {
        ConfigChange {
            environment: self.environment.clone(),
            group: self.group.clone(),
            key: self.key.clone(),
            version: self.version,
            md5: self.md5.clone(),
            deleted: self.deleted,
            revision: self.revision,
        }
    }
}

/// A change pushed to watchers: which key moved to which version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigChange {
    /// The environment.
    pub environment: String,
    /// The group.
    pub group: String,
    /// The key.
    pub key: String,
    /// Its new version.
    pub version: u64,
    /// Its new md5 (empty when deleted).
    pub md5: String,
    /// Whether the key was deleted.
    pub deleted: bool,
    /// The config center's revision of this change.
    pub revision: u64,
}

/// `PUT /api/v1/config/environments/{env}/keys/{group}/{key}`: publish a new version.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublishConfig {
    /// The content's format; when left out, the key's current format, else
    /// its extension's (`.yaml`, `.json`, `.toml`, `.properties`), else `text`.
    #[serde(default)]
    pub format: Option<ConfigFormat>,
    /// The content.
    pub content: String,
    /// Why (kept in the history).
    #[serde(default)]
    pub message: String,
    /// Publish only if the key's current md5 is this one (empty: only if the key does not exist).
    #[serde(default)]
    pub base_md5: Option<String>,
    /// Publish only if the key's current version is this one (0: only if the key does not exist).
    #[serde(default)]
    pub base_version: Option<u64>,
}

/// `POST .../rollback`: publish an earlier version's content again.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollbackConfig {
    /// The version whose content comes back.
    pub version: u64,
    /// Why.
    #[serde(default)]
    pub message: String,
}

/// The unified diff between two versions of a key.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigDiff {
    /// The older side.
    pub from: u64,
    /// The newer side.
    pub to: u64,
    /// `diff -u` text; empty when the contents are equal.
    pub unified: String,
}

/// A key of an environment.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyRef {
    /// The group.
    pub group: String,
    /// The key.
    pub key: String,
}

/// `POST /api/v1/config/environments/{env}/snapshots`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSnapshot {
    /// A DNS label, unique in the environment.
    pub name: String,
    /// What it marks.
    #[serde(default)]
    pub description: String,
}

/// A named, immutable set of key versions of one environment.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// The environment.
    pub environment: String,
    /// Its name.
    pub name: String,
    /// What it marks.
    pub description: String,
    /// Who took it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Every live key at that moment, with its version and md5.
    pub items: Vec<SnapshotItem>,
}

/// One key of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotItem {
    /// The group.
    pub group: String,
    /// The key.
    pub key: String,
    /// The version it had.
    pub version: u64,
    /// Its md5 then.
    pub md5: String,
}

/// `POST /api/v1/config/promotions[/preview]`: make `to` hold what `from` holds.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Promote {
    /// The source environment.
    pub from: String,
    /// The target environment.
    pub to: String,
    /// Only these keys (all of `from` when empty).
    #[serde(default)]
    pub keys: Vec<KeyRef>,
    /// Also delete the target's keys that the source does not hold.
    #[serde(default)]
    pub prune: bool,
    /// Why (each new version's message).
    #[serde(default)]
    pub message: String,
}

/// What a promotion would change (or changed), key by key.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionPlan {
    /// The source environment.
    pub from: String,
    /// The target environment.
    pub to: String,
    /// Every key that differs; keys already equal are left out.
    pub changes: Vec<PlannedChange>,
    /// How many of the source's keys were already equal in the target.
    pub unchanged: u64,
}

/// A change waiting for a second user's approval, frozen when requested.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeRequest {
    /// Its id.
    pub id: u64,
    /// The environment it changes.
    pub environment: String,
    /// The environment it promotes from, when it is a promotion.
    pub from: Option<String>,
    /// Why.
    pub message: String,
    /// The changes, each with the target's md5 they were planned against.
    pub changes: Vec<PlannedChange>,
    /// `pending`, `approved` (and applied), `rejected`.
    pub state: String,
    /// Who asked.
    pub requested_by: String,
    /// When.
    pub requested_at: DateTime<Utc>,
    /// Who approved or rejected it.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<DateTime<Utc>>,
    /// The decider's reason.
    pub reason: String,
}

/// `POST /api/v1/config/environments/{env}/requests`: ask for a change of a
/// protected environment; a second user approves or rejects it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestChange {
    /// Promote from this environment (the plan is frozen now).
    #[serde(default)]
    pub from: Option<String>,
    /// With `from`: only these keys.
    #[serde(default)]
    pub keys: Vec<KeyRef>,
    /// With `from`: also delete what the source does not hold.
    #[serde(default)]
    pub prune: bool,
    /// Or these publishes and deletes.
    #[serde(default)]
    pub publish: Vec<ProposedKey>,
    /// Why.
    #[serde(default)]
    pub message: String,
}

/// One key a change request publishes or deletes.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProposedKey {
    /// The group.
    pub group: String,
    /// The key.
    pub key: String,
    /// The format (from the extension when left out).
    #[serde(default)]
    pub format: Option<ConfigFormat>,
    /// The content (ignored for a delete).
    #[serde(default)]
    pub content: String,
    /// Delete the key instead.
    #[serde(default)]
    pub delete: bool,
}

/// `POST .../requests/{id}/approve|reject`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Decide {
    /// Why.
    #[serde(default)]
    pub reason: String,
}

/// `POST /api/v1/config/watch`: answer when any of these keys has an md5
/// other than the one given, or with nothing after the timeout.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Watch {
    /// The keys and the md5 the caller holds of each (empty: it holds none).
    pub keys: Vec<WatchedKey>,
    /// How long to wait, in milliseconds (default and most: 30000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// A watched key with the md5 its watcher holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WatchedKey {
    /// The environment.
    pub environment: String,
    /// The group (`DEFAULT_GROUP` when left out).
    #[serde(default = "default_group")]
    pub group: String,
    /// The key.
    pub key: String,
    /// The md5 held (empty when the watcher holds no value).
    #[serde(default)]
    pub md5: String,
}

fn default_group() -> String {
    DEFAULT_GROUP.to_owned()
}

/// The answer to a watch: the keys whose md5 differs, with what they are now.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WatchAnswer {
    /// Empty when the timeout passed without a change.
    pub changed: Vec<ConfigChange>,
}

/// `POST /api/v1/config/validate`: check content as a publish would, storing nothing.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValidateConfig {
    /// The key it is for (its extension gives the format when none is named).
    #[serde(default)]
    pub key: Option<String>,
    /// The format.
    #[serde(default)]
    pub format: Option<ConfigFormat>,
    /// The content.
    pub content: String,
}

/// What a check found.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Validation {
    /// The format checked against.
    pub format: ConfigFormat,
    /// Whether a publish would take it.
    pub valid: bool,
    /// The first error, when not valid.
    pub error: Option<String>,
    /// Its line and column (1-based) when known.
    pub line: Option<usize>,
    /// Its column.
    pub column: Option<usize>,
}

impl ValidateConfig {
    /// Runs the check.
    pub fn run(&self) -> Validation {
        let format = self
            .format
            .or_else(|| self.key.as_deref().map(ConfigFormat::of_key))
            .unwrap_or(ConfigFormat::Text);
        let error = if self.content.len() > MAX_CONTENT_BYTES {
            Some(FormatError {
                format: format.as_str(),
                location: None,
                message: format!(
                    "content is {} bytes; the limit is {MAX_CONTENT_BYTES}",
                    self.content.len()
                ),
            })
        } else {
            format.check(&self.content).err()
        };
        Validation {
            format,
            valid: error.is_none(),
            line: error.as_ref().and_then(|e| e.location.map(|l| l.0)),
            column: error.as_ref().and_then(|e| e.location.map(|l| l.1)),
            error: error.map(|e| e.to_string()),
        }
    }
}

/// Checks an md5 a client sends: empty, or 32 lowercase or uppercase hex digits.
pub fn check_md5(md5: &str) -> Result<(), String> {
    if md5.is_empty() || (md5.len() == 32 && md5.bytes().all(|b| b.is_ascii_hexdigit())) {
        Ok(())
    } else {
        Err(format!("md5 {md5:?} is not 32 hex digits"))
    }
}

/// Checks what a publish carries: names, size and the content against its format.
pub fn check_publish(
    group: &str,
    key: &str,
    format: ConfigFormat,
    content: &str,
) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    if let Err(e) = check_key_name("group", group) {
        errors.push(FieldError::new("group", e));
    }
    if let Err(e) = check_key_name("key", key) {
        errors.push(FieldError::new("key", e));
    }
    if content.len() > MAX_CONTENT_BYTES {
        errors.push(FieldError::new(
            "content",
            format!(
                "content is {} bytes; the limit is {MAX_CONTENT_BYTES}",
                content.len()
            ),
        ));
    } else if let Err(e) = format.check(content) {
        errors.push(FieldError::new("content", e.to_string()));
    } else if group == settings::SETTINGS_GROUP && key == settings::GATEWAY_KEY {
        // The gateway applies this key live: a wrong field is refused here,
        // not found later by a gateway that cannot apply it.
        if let Err(wrong) = settings::GatewaySettings::parse(format, content) {
            errors.extend(
                wrong
                    .into_iter()
                    .map(|e| FieldError::new(format!("content.{}", e.path), e.message)),
            );
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_is_lowercase_hex_with_leading_zeros() {
        assert_eq!(md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
        // md5("168") starts with two zero digits: they must stay.
        assert_eq!(md5_hex("168"), "006f52e9102a8d3be2fe5614f42ba989");
        assert_eq!(md5_hex("héllo").len(), 32);
    }

    #[test]
    fn key_names_refuse_paths() {
        assert!(check_key_name("key", "model-manager.yaml").is_ok());
        assert!(check_key_name("group", "DEFAULT_GROUP").is_ok());
        assert!(check_key_name("key", "a:b_c-d.e").is_ok());
        for bad in ["", "a/b", "..", "a..b", ".", "a b", "é", "a\\b"] {
            assert!(check_key_name("key", bad).is_err(), "{bad:?} passed");
        }
        assert!(check_key_name("key", &"k".repeat(256)).is_err());
        assert!(check_key_name("group", &"g".repeat(128)).is_err());
    }

    #[test]
    fn md5s_from_clients_are_checked() {
        assert!(check_md5("").is_ok());
        assert!(check_md5("d41d8cd98f00b204e9800998ecf8427e").is_ok());
        assert!(check_md5("D41D8CD98F00B204E9800998ECF8427E").is_ok());
        assert!(check_md5("xyz").is_err());
        assert!(check_md5("g41d8cd98f00b204e9800998ecf8427e").is_err());
    }

    #[test]
    fn a_publish_is_checked_whole() {
        let errors = check_publish("a/b", "..", ConfigFormat::Json, "{").unwrap_err();
        let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["group", "key", "content"]);
        let big = "x".repeat(MAX_CONTENT_BYTES + 1);
        let errors = check_publish("g", "k", ConfigFormat::Text, &big).unwrap_err();
        assert!(errors[0].message.contains("limit"), "{errors:?}");
        assert!(check_publish("g", "k.json", ConfigFormat::Json, "{\"a\": 1}").is_ok());
    }
}
