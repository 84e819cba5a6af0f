//! The state of one series of a rule (one version of one service), as
//! Prometheus keeps it: inactive until the condition holds, pending while
//! it has held for less than `for`, firing after; the first evaluation where
//! it does not hold (no data included) resolves it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a series stands.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum SeriesState {
    /// The condition does not hold.
    #[default]
    Inactive,
    /// It holds, since `since`, for less than `for`.
    Pending {
        /// When it began to hold.
        since: DateTime<Utc>,
    },
    /// It has held for `for`; firing since `fired_at`.
    Firing {
        /// When it began to hold.
        since: DateTime<Utc>,
        /// When it fired.
        fired_at: DateTime<Utc>,
    },
}

/// What an evaluation changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The condition began to hold (`for` is not over yet).
    Pending,
    /// The alert fired.
    Fired,
    /// It stopped holding before `for` was over.
    Cleared,
    /// It was firing and stopped holding.
    Resolved,
}

impl SeriesState {
    /// Takes one evaluation at `now`: `holds` is the condition over the
    /// value, `None` when there was no value (no data never fires and
    /// resolves a firing alert, as a series gone from Prometheus does).
    pub fn step(
        &mut self,
        holds: Option<bool>,
        for_duration: Duration,
        now: DateTime<Utc>,
    ) -> Option<Transition> {
        let holds = holds.unwrap_or(false);
        let due = |since: DateTime<Utc>| {
            now - since >= chrono::Duration::from_std(for_duration).unwrap_or(chrono::Duration::MAX)
        };
        match (*self, holds) {
            (SeriesState::Inactive, false) => None,
            (SeriesState::Inactive, true) if due(now) => {
                *self = SeriesState::Firing {
                    since: now,
                    fired_at: now,
                };
                Some(Transition::Fired)
            }
            (SeriesState::Inactive, true) => {
                *self = SeriesState::Pending { since: now };
                Some(Transition::Pending)
            }
            (SeriesState::Pending { since }, true) if due(since) => {
                *self = SeriesState::Firing {
                    since,
                    fired_at: now,
                };
                Some(Transition::Fired)
            }
            (SeriesState::Pending { .. }, true) | (SeriesState::Firing { .. }, true) => None,
            (SeriesState::Pending { .. }, false) => {
                *self = SeriesState::Inactive;
                Some(Transition::Cleared)
            }
            (SeriesState::Firing { .. }, false) => {
                *self = SeriesState::Inactive;
                Some(Transition::Resolved)
            }
        }
    }

    /// `inactive`, `pending` or `firing`.
    pub fn name(&self) -> &'static str {
        match self {
            SeriesState::Inactive => "inactive",
            SeriesState::Pending { .. } => "pending",
            SeriesState::Firing { .. } => "firing",
        }
    }
}

/// A series that is pending or firing, as `GET /api/v1/alerts` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActiveAlert {
    /// The rule.
    pub rule: String,
    /// The service.
    pub service: String,
    /// The version.
    pub version: String,
    /// `pending` or `firing`.
    pub state: String,
    /// Since when the condition holds.
    pub since: DateTime<Utc>,
    /// When it fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fired_at: Option<DateTime<Utc>>,
    /// The last value read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Its labels (`alertname`, `service`, `version`, `severity` and the rule's own).
    pub labels: std::collections::BTreeMap<String, String>,
    /// The silence that holds back its notifications and playbook, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silenced_by: Option<i64>,
}
