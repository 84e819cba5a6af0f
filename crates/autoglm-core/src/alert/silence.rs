//! Silences, as Alertmanager has them: label matchers and a time span; an
//! alert they match still fires and opens its incident, but sends no
//! notification and runs no playbook.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::FieldError;

/// One label matcher: equal (or, with `isEqual: false`, not equal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Matcher {
    /// The label, e.g. `alertname`, `service`, `version`, `severity`.
    pub name: String,
    /// The value it is compared with.
    pub value: String,
    /// Equal (the default) or not equal.
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

/// A silence as a user asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SilenceSpec {
    /// Every matcher must match.
    pub matchers: Vec<Matcher>,
    /// From when; default now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<DateTime<Utc>>,
    /// Until when.
    pub ends_at: DateTime<Utc>,
    /// Why.
    #[serde(default)]
    pub comment: String,
}

/// A stored silence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    /// Its id.
    pub id: i64,
    /// Every matcher must match.
    pub matchers: Vec<Matcher>,
    /// From when.
    pub starts_at: DateTime<Utc>,
    /// Until when (an expired silence ends when it was expired).
    pub ends_at: DateTime<Utc>,
    /// Why.
    pub comment: String,
    /// Who.
    pub created_by: String,
}

impl SilenceSpec {
    /// Every wrong field, checked against `now`.
    pub fn check(&self, now: DateTime<Utc>) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.matchers.is_empty() {
            errors.push(FieldError::new(
                "matchers",
                "a silence needs at least one matcher, or it would silence everything",
            ));
        }
        for (i, m) in self.matchers.iter().enumerate() {
            if m.name.is_empty() {
                errors.push(FieldError::new(
                    format!("matchers[{i}].name"),
                    "name the label to match",
                ));
            }
        }
        let starts = self.starts_at.unwrap_or(now);
        if self.ends_at <= starts || self.ends_at <= now {
            errors.push(FieldError::new(
                "endsAt",
                "the silence must end after it starts, and in the future",
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

impl Silence {
    /// Whether it silences an alert with `labels` at `now`.
    pub fn silences(&self, labels: &BTreeMap<String, String>, now: DateTime<Utc>) -> bool {
        self.starts_at <= now
            && now < self.ends_at
            && self.matchers.iter().all(|m| {
                let value = labels.get(&m.name).map_or("", String::as_str);
                (value == m.value) == m.is_equal
            })
    }

    /// `active`, `pending` (not started) or `expired`.
    pub fn state(&self, now: DateTime<Utc>) -> &'static str {
        if now >= self.ends_at {
            "expired"
        } else if now < self.starts_at {
            "pending"
        } else {
            "active"
        }
    }
}
