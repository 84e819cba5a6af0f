//! Incidents: one opens when an alert fires (or an Alertmanager sends one)
//! and keeps a timeline of what happened until it is resolved, by the alert
//! resolving or by a user; the time from firing to resolved, per service and
//! rule, is the mean time to resolve.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where an incident stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum IncidentState {
    /// Firing, nobody has taken it yet.
    Open,
    /// Someone has taken it.
    Acknowledged,
    /// Over.
    Resolved,
}

impl IncidentState {
    /// The name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentState::Open => "open",
            IncidentState::Acknowledged => "acknowledged",
            IncidentState::Resolved => "resolved",
        }
    }

    /// Parses the name.
    pub fn parse(s: &str) -> Option<IncidentState> {
        [
            IncidentState::Open,
            IncidentState::Acknowledged,
            IncidentState::Resolved,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// What a timeline entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum TimelineKind {
    /// The alert fired.
    Fired,
    /// A matching silence held back notifications and playbooks.
    Silenced,
    /// A receiver took the notification.
    Notified,
    /// A receiver gave up after every retry (a dead letter).
    NotificationFailed,
    /// A playbook step started, as a task.
    PlaybookStarted,
    /// A playbook step did not run (cooldown, hourly limit, or refused).
    PlaybookSkipped,
    /// The playbook's task ended.
    PlaybookFinished,
    /// A user acknowledged it.
    Acknowledged,
    /// The alert resolved, or a user resolved it.
    Resolved,
}

impl TimelineKind {
    /// The name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            TimelineKind::Fired => "fired",
            TimelineKind::Silenced => "silenced",
            TimelineKind::Notified => "notified",
            TimelineKind::NotificationFailed => "notificationFailed",
            TimelineKind::PlaybookStarted => "playbookStarted",
            TimelineKind::PlaybookSkipped => "playbookSkipped",
            TimelineKind::PlaybookFinished => "playbookFinished",
            TimelineKind::Acknowledged => "acknowledged",
            TimelineKind::Resolved => "resolved",
        }
    }
}

/// One event of an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// What.
    pub kind: TimelineKind,
    /// In words.
    pub message: String,
    /// Who (`system:alerts` for the evaluator).
    pub actor: String,
    /// The task a playbook step runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<i64>,
}

/// An incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Incident {
    /// Its id.
    pub id: i64,
    /// The rule (`alertname`).
    pub rule: String,
    /// The service.
    pub service: String,
    /// The version ("" when the alert names none).
    pub version: String,
    /// `critical`, `warning` or `info`.
    pub severity: String,
    /// The alert's labels.
    pub labels: BTreeMap<String, String>,
    /// `autoglm` (its own rules) or `alertmanager` (an external one).
    pub source: String,
    /// Where it stands.
    pub state: IncidentState,
    /// When the alert fired.
    pub opened_at: DateTime<Utc>,
    /// When someone took it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// Who took it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<String>,
    /// When it was over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<DateTime<Utc>>,
    /// Seconds from firing to resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_to_resolve: Option<f64>,
    /// What happened, in order.
    pub timeline: Vec<TimelineEntry>,
}

/// Mean time to resolve, per service and rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Mttr {
    /// The service.
    pub service: String,
    /// The rule.
    pub rule: String,
    /// Incidents opened.
    pub incidents: u64,
    /// Of them, resolved.
    pub resolved: u64,
    /// Mean seconds from firing to resolved, over the resolved ones.
    pub mean_seconds: Option<f64>,
    /// The longest.
    pub max_seconds: Option<f64>,
}

/// MTTR per service and rule over `incidents`, ordered by service and rule.
pub fn mttr(incidents: &[Incident]) -> Vec<Mttr> {
    let mut groups: BTreeMap<(&str, &str), Vec<&Incident>> = BTreeMap::new();
    for i in incidents {
        groups.entry((&i.service, &i.rule)).or_default().push(i);
    }
    groups
        .into_iter()
        .map(|((service, rule), list)| {
            let times: Vec<f64> = list.iter().filter_map(|i| i.seconds_to_resolve).collect();
            Mttr {
                service: service.to_owned(),
                rule: rule.to_owned(),
                incidents: list.len() as u64,
                resolved: times.len() as u64,
                mean_seconds: (!times.is_empty())
                    .then(|| times.iter().sum::<f64>() / times.len() as f64),
                max_seconds: times.iter().copied().reduce(f64::max),
            }
        })
        .collect()
}
