//! Alerts inside autoglm, so the embedded default has them without a
//! Prometheus: rules over a service's per-version metrics (a condition as a
//! rollout's analysis writes it, held for `for`), the pending → firing →
//! resolved state of each series, silences, Alertmanager's webhook payload,
//! playbooks that act through tasks, and incidents with their timeline and
//! time to resolve. No IO, no clock: time and values come in as arguments.

pub mod incident;
pub mod notify;
pub mod rule;
pub mod silence;
pub mod state;

pub use incident::{Incident, IncidentState, TimelineEntry, TimelineKind, mttr};
pub use notify::{AlertmanagerAlert, AlertmanagerPayload, Notification, retry_delay};
pub use rule::{
    AlertMetric, AlertRule, Playbook, PlaybookStep, ReadyPlaybook, ReadyRule, Receiver, Severity,
};
pub use silence::{Matcher, Silence, SilenceSpec};
pub use state::{ActiveAlert, SeriesState, Transition};

#[cfg(test)]
mod tests;
