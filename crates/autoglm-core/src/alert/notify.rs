//! Notifications in Alertmanager's webhook format (version 4), which every
//! tool that takes Alertmanager's webhooks reads, and the retry schedule of
//! a receiver that does not answer 2xx.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One alert of a payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerAlert {
    /// `firing` or `resolved`.
    pub status: String,
    /// Its labels (`alertname` among them).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Its annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// When it fired.
    pub starts_at: DateTime<Utc>,
    /// When it resolved; Alertmanager's zero time while firing.
    #[serde(default = "zero_time")]
    pub ends_at: DateTime<Utc>,
    /// Where it came from.
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    /// Its identity: a hash of its labels.
    #[serde(default)]
    pub fingerprint: String,
}

/// Alertmanager's webhook body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerPayload {
    /// Always `"4"`.
    pub version: String,
    /// Identifies the group.
    pub group_key: String,
    /// Alerts left out.
    #[serde(default)]
    pub truncated_alerts: u64,
    /// `firing` when any alert fires, else `resolved`.
    pub status: String,
    /// The receiver's name.
    pub receiver: String,
    /// The labels the group is by.
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    /// Labels every alert has.
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    /// Annotations every alert has.
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    /// Where to see it.
    #[serde(default, rename = "externalURL")]
    pub external_url: String,
    /// The alerts.
    pub alerts: Vec<AlertmanagerAlert>,
}

/// Alertmanager's "not yet" time, `0001-01-01T00:00:00Z`.
pub fn zero_time() -> DateTime<Utc> {
    chrono::NaiveDate::from_ymd_opt(1, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(DateTime::<Utc>::MIN_UTC, |t| t.and_utc())
}

/// An alert's identity from its labels.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut hash = Sha256::new();
    for (k, v) in labels {
        hash.update(k.as_bytes());
        hash.update([0xff]);
        hash.update(v.as_bytes());
        hash.update([0xff]);
    }
    hex::encode(&hash.finalize()[..8])
}

impl AlertmanagerPayload {
    /// The payload for one alert (autoglm groups by alert: each series is
    /// its own notification).
    pub fn single(receiver: &str, external_url: &str, alert: AlertmanagerAlert) -> Self {
        let name = alert.labels.get("alertname").cloned().unwrap_or_default();
        AlertmanagerPayload {
            version: "4".to_owned(),
            group_key: format!(
                "{{}}:{{alertname={:?}, fingerprint={:?}}}",
                name, alert.fingerprint
            ),
            truncated_alerts: 0,
            status: alert.status.clone(),
            receiver: receiver.to_owned(),
            group_labels: BTreeMap::from([("alertname".to_owned(), name)]),
            common_labels: alert.labels.clone(),
            common_annotations: alert.annotations.clone(),
            external_url: external_url.to_owned(),
            alerts: vec![alert],
        }
    }
}

/// Attempts a notification gets before it becomes a dead letter.
pub const MAX_ATTEMPTS: u32 = 5;

/// The wait after failed attempt `attempt` (1-based): 1 s doubling, at most 60 s.
pub fn retry_delay(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(6)).min(Duration::from_secs(60))
}

/// A notification to deliver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// Its id.
    pub id: i64,
    /// The tenant.
    #[serde(skip)]
    pub tenant: String,
    /// The incident it tells of.
    pub incident_id: Option<i64>,
    /// Where it goes.
    pub url: String,
    /// The JSON body (Alertmanager's webhook payload).
    pub payload: String,
    /// `pending`, `delivered` or `dead`.
    pub state: String,
    /// Attempts made.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
}
