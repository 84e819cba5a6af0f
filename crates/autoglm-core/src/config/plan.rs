//! Diffs and promotion plans: what making one environment hold what another
//! holds would change, key by key, decided before anything is written.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ConfigFormat, ConfigVersion, KeyRef};
use crate::error::FieldError;

/// What a planned change does to its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChangeAction {
    /// The key is new in the target.
    Create,
    /// The key gets new content (or format).
    Update,
    /// The key is deleted from the target.
    Delete,
}

/// One key's change, with the target's state it was planned against: applying
/// it later refuses when the target has moved since (no blind overwrite).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlannedChange {
    /// The group.
    pub group: String,
    /// The key.
    pub key: String,
    /// Create, update or delete.
    pub action: ChangeAction,
    /// The format the key gets.
    pub format: ConfigFormat,
    /// The content the key gets (empty for a delete).
    pub content: String,
    /// The target's md5 when planned (empty when the key was absent).
    pub base_md5: String,
    /// The target's version when planned (0 when absent).
    pub base_version: u64,
    /// The source's version, for a promotion.
    pub source_version: Option<u64>,
    /// `diff -u` from the target's content to the new one.
    pub diff: String,
}

/// `diff -u` of two texts, three lines of context; empty when equal.
pub fn unified_diff(old_label: &str, new_label: &str, old: &str, new: &str) -> String {
    if old == new {
        return String::new();
    }
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(old_label, new_label)
        .to_string()
}

/// Plans making `target` hold the live keys of `source` (only `keys` when
/// not empty), deleting the target's other keys when `prune`. Both sides are
/// the environments' current live versions. Returns the changes and how many
/// keys were already equal.
pub fn plan_promotion(
    from: &str,
    to: &str,
    source: &[ConfigVersion],
    target: &[ConfigVersion],
    keys: &[KeyRef],
    prune: bool,
) -> Result<(Vec<PlannedChange>, u64), Vec<FieldError>> {
    let index = |versions: &[ConfigVersion]| -> BTreeMap<KeyRef, ConfigVersion> {
        versions
            .iter()
            .filter(|v| !v.deleted)
            .map(|v| {
                let key = KeyRef {
                    group: v.group.clone(),
                    key: v.key.clone(),
                };
                (key, v.clone())
            })
            .collect()
    };
    let source = index(source);
    let target = index(target);
    let errors: Vec<FieldError> = keys
        .iter()
        .enumerate()
        .filter(|(_, k)| !(source.contains_key(k) || prune && target.contains_key(k)))
        .map(|(i, k)| {
            FieldError::new(
                format!("keys[{i}]"),
                format!("{}/{} is not in environment {from}", k.group, k.key),
            )
        })
        .collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    let chosen = |k: &KeyRef| keys.is_empty() || keys.contains(k);
    let label = |env: &str, k: &KeyRef| format!("{env}/{}/{}", k.group, k.key);
    let mut changes = Vec::new();
    let mut unchanged = 0;
    for (k, new) in source.iter().filter(|(k, _)| chosen(k)) {
        let old = target.get(k);
        if old.is_some_and(|old| old.md5 == new.md5 && old.format == new.format) {
            unchanged += 1;
            continue;
        }
        let old_content = old.map_or("", |o| o.content.as_str());
        changes.push(PlannedChange {
            group: k.group.clone(),
            key: k.key.clone(),
            action: if old.is_some() {
                ChangeAction::Update
            } else {
                ChangeAction::Create
            },
            format: new.format,
            content: new.content.clone(),
            base_md5: old.map(|o| o.md5.clone()).unwrap_or_default(),
            base_version: old.map_or(0, |o| o.version),
            source_version: Some(new.version),
            diff: unified_diff(&label(to, k), &label(from, k), old_content, &new.content),
        });
    }
    if prune {
        for (k, old) in target
            .iter()
            .filter(|(k, _)| chosen(k) && !source.contains_key(k))
        {
            changes.push(PlannedChange {
                group: k.group.clone(),
                key: k.key.clone(),
                action: ChangeAction::Delete,
                format: old.format,
                content: String::new(),
                base_md5: old.md5.clone(),
                base_version: old.version,
                source_version: None,
                diff: unified_diff(&label(to, k), "/dev/null", &old.content, ""),
            });
        }
    }
    Ok((changes, unchanged))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::md5_hex;

    fn version(env: &str, key: &str, version: u64, content: &str) -> ConfigVersion {
        ConfigVersion {
            environment: env.to_owned(),
            group: "DEFAULT_GROUP".to_owned(),
            key: key.to_owned(),
            version,
            format: ConfigFormat::of_key(key),
            content: content.to_owned(),
            md5: md5_hex(content),
            author: "ann".to_owned(),
            message: String::new(),
            created_at: chrono::DateTime::UNIX_EPOCH,
            deleted: false,
            revision: version,
        }
    }

    fn key(k: &str) -> KeyRef {
        KeyRef {
            group: "DEFAULT_GROUP".to_owned(),
            key: k.to_owned(),
        }
    }

    #[test]
    fn a_promotion_creates_updates_and_prunes_only_what_differs() {
        let source = [
            version("staging", "a.yaml", 3, "a: 2\n"),
            version("staging", "b.yaml", 1, "b: 1\n"),
            version("staging", "same.txt", 5, "same"),
        ];
        let target = [
            version("prod", "a.yaml", 7, "a: 1\n"),
            version("prod", "same.txt", 2, "same"),
            version("prod", "old.txt", 4, "gone"),
        ];
        let (changes, unchanged) =
            plan_promotion("staging", "prod", &source, &target, &[], false).unwrap();
        assert_eq!(unchanged, 1);
        let summary: Vec<_> = changes
            .iter()
            .map(|c| (c.key.as_str(), c.action, c.base_version, c.source_version))
            .collect();
        assert_eq!(
            summary,
            [
                ("a.yaml", ChangeAction::Update, 7, Some(3)),
                ("b.yaml", ChangeAction::Create, 0, Some(1)),
            ]
        );
        assert_eq!(changes[0].base_md5, md5_hex("a: 1\n"));
        assert!(
            changes[0].diff.contains("-a: 1\n+a: 2\n"),
            "{}",
            changes[0].diff
        );
        assert!(
            changes[0]
                .diff
                .starts_with("--- prod/DEFAULT_GROUP/a.yaml\n+++ staging/DEFAULT_GROUP/a.yaml\n")
        );

        let (changes, _) = plan_promotion("staging", "prod", &source, &target, &[], true).unwrap();
        let deleted: Vec<_> = changes
            .iter()
            .filter(|c| c.action == ChangeAction::Delete)
            .map(|c| c.key.as_str())
            .collect();
        assert_eq!(deleted, ["old.txt"]);
    }

    #[test]
    fn chosen_keys_narrow_the_plan_and_unknown_ones_are_refused() {
        let source = [
            version("dev", "a.txt", 1, "x"),
            version("dev", "b.txt", 1, "y"),
        ];
        let (changes, _) =
            plan_promotion("dev", "test", &source, &[], &[key("b.txt")], false).unwrap();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].key, "b.txt");
        let errors = plan_promotion(
            "dev",
            "test",
            &source,
            &[],
            &[key("a.txt"), key("nope")],
            false,
        )
        .unwrap_err();
        assert_eq!(errors[0].path, "keys[1]");
    }

    #[test]
    fn a_format_change_alone_is_an_update() {
        let mut json = version("dev", "a", 1, "{}");
        json.format = ConfigFormat::Json;
        let text = version("test", "a", 1, "{}");
        let (changes, unchanged) =
            plan_promotion("dev", "test", &[json], &[text], &[], false).unwrap();
        assert_eq!((changes.len(), unchanged), (1, 0));
        assert_eq!(changes[0].diff, "");
    }

    #[test]
    fn equal_texts_have_no_diff() {
        assert_eq!(unified_diff("a", "b", "x\n", "x\n"), "");
        let d = unified_diff("v1", "v2", "a\nb\nc\n", "a\nB\nc\n");
        assert_eq!(d, "--- v1\n+++ v2\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n");
    }
}
