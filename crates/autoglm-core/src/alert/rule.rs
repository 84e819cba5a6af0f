//! An alert rule as users write it (`POST /api/v1/alerts/rules`), and the
//! same rule checked and ready to evaluate: every wrong field is refused
//! with its path, so a rule that is stored can always be evaluated.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::rollout::{Condition, GatewayMetric};
use crate::service::parse_duration;

/// A rule: when `condition` holds over `metric` of a version of the
/// service for `for`, the alert fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlertRule {
    /// Its name, unique in the tenant (the `alertname` label).
    pub name: String,
    /// The service it watches; absent: every service of the tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// `errorRatio`, `requestRate`, `latencyP50`, `latencyP95`,
    /// `latencyP99` (from the gateway's traffic), `replicasUnavailable`
    /// (wanted but not ready) or `queueLength` (requests waiting for a replica).
    pub metric: String,
    /// When it holds, as a rollout's analysis writes it, over the version's
    /// value (`result`) and the value of the service's other version with
    /// the most traffic (`baseline`): `result > 0.1`, `result > baseline * 2`.
    pub condition: String,
    /// The span the traffic metrics are read over, a multiple of the
    /// gateway's 10-second intervals; default `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// How long the condition must hold before the alert fires; default `0s`.
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_duration: Option<String>,
    /// `critical`, `warning` (the default) or `info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// Labels added to every alert of the rule.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations (`summary`, `description`, `runbook_url`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Where notifications go, with Alertmanager's webhook payload.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub receivers: Vec<Receiver>,
    /// What to do when it fires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playbook: Option<Playbook>,
}

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Severity {
    /// Someone must act now.
    Critical,
    /// Someone should look.
    #[default]
    Warning,
    /// For the record.
    Info,
}

impl Severity {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// A notification target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Receiver {
    /// An http(s) URL that takes Alertmanager's webhook payload.
    pub webhook: WebhookTarget,
}

/// A webhook's address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookTarget {
    /// `http://` or `https://`.
    pub url: String,
}

/// What a firing alert does, one step per firing: the first firing runs
/// the first step, the next (within an hour) the second, and the last
/// repeats, as an escalation policy climbs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Playbook {
    /// The steps, in escalation order.
    pub steps: Vec<PlaybookStep>,
    /// Least time between two runs for one service; default `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<String>,
    /// Most runs per service in an hour; default 6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_hour: Option<u32>,
}

/// One action, each carried out as a task (a webhook as a notification).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum PlaybookStep {
    /// Replace the service's replicas, one ready replica at a time.
    Restart {},
    /// Add `by` replicas, up to `max`.
    ScaleOut {
        /// Replicas to add.
        by: u32,
        /// The cap.
        max: u32,
    },
    /// Abort the running rollout; without one, move the alerting version's
    /// weight to the service's other versions.
    Rollback {},
    /// Call a webhook with Alertmanager's payload.
    Webhook {
        /// `http://` or `https://`.
        url: String,
    },
}

impl PlaybookStep {
    /// The step's name, as the timeline and the audit write it.
    pub fn name(&self) -> &'static str {
        match self {
            PlaybookStep::Restart {} => "restart",
            PlaybookStep::ScaleOut { .. } => "scaleOut",
            PlaybookStep::Rollback {} => "rollback",
            PlaybookStep::Webhook { .. } => "webhook",
        }
    }
}

/// What a rule reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertMetric {
    /// A number of the gateway's traffic history.
    Traffic(GatewayMetric),
    /// Replicas wanted but not ready.
    ReplicasUnavailable,
    /// Requests waiting for a ready replica.
    QueueLength,
}

impl AlertMetric {
    /// Every metric, as a rule names them.
    pub fn all() -> Vec<AlertMetric> {
        let mut all: Vec<AlertMetric> = GatewayMetric::ALL
            .iter()
            .map(|m| AlertMetric::Traffic(*m))
            .collect();
        all.extend([AlertMetric::ReplicasUnavailable, AlertMetric::QueueLength]);
        all
    }

    /// The name in a rule.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertMetric::Traffic(m) => m.as_str(),
            AlertMetric::ReplicasUnavailable => "replicasUnavailable",
            AlertMetric::QueueLength => "queueLength",
        }
    }

    /// Parses a rule's `metric`.
    pub fn parse(s: &str) -> Option<AlertMetric> {
        AlertMetric::all().into_iter().find(|m| m.as_str() == s)
    }
}

/// Longest `for`, `window` or cooldown.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// Longest metric window: the gateway keeps an hour.
pub const MAX_WINDOW: Duration = Duration::from_secs(3600);
/// Most receivers, and most playbook steps, of one rule.
pub const MAX_TARGETS: usize = 8;

/// A playbook, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadyPlaybook {
    /// The steps, in escalation order.
    pub steps: Vec<PlaybookStep>,
    /// Least time between two runs for one service.
    pub cooldown: Duration,
    /// Most runs per service in an hour.
    pub max_per_hour: u32,
}

/// A rule, checked and ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadyRule {
    /// Its name.
    pub name: String,
    /// Its service, or every one.
    pub service: Option<String>,
    /// What it reads.
    pub metric: AlertMetric,
    /// When it holds.
    pub condition: Condition,
    /// The condition as written.
    pub condition_text: String,
    /// The span traffic metrics are read over.
    pub window: Duration,
    /// How long it must hold.
    pub for_duration: Duration,
    /// How urgent.
    pub severity: Severity,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
    /// Webhook URLs to notify.
    pub receivers: Vec<String>,
    /// What it does when it fires.
    pub playbook: Option<ReadyPlaybook>,
}

fn duration(
    path: &str,
    value: Option<&str>,
    default: Duration,
    max: Duration,
    errors: &mut Vec<FieldError>,
) -> Duration {
    let Some(value) = value else {
        return default;
    };
    match parse_duration(value) {
        Ok(d) if d > max => {
            errors.push(FieldError::new(
                path,
                format!("{value:?} is longer than {}s", max.as_secs()),
            ));
            default
        }
        Ok(d) => d,
        Err(e) => {
            errors.push(FieldError::new(path, e.to_string()));
            default
        }
    }
}

fn check_url(path: String, url: &str, errors: &mut Vec<FieldError>) {
    let ok = ["http://", "https://"].iter().any(|scheme| {
        url.len() > scheme.len()
            && url[..scheme.len()].eq_ignore_ascii_case(scheme)
            && !url.contains(char::is_whitespace)
    });
    if !ok {
        errors.push(FieldError::new(
            path,
            format!("{url:?} is not an http:// or https:// URL"),
        ));
    }
}

fn check_label_names(path: &str, map: &BTreeMap<String, String>, errors: &mut Vec<FieldError>) {
    for key in map.keys() {
        let mut chars = key.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            errors.push(FieldError::new(
                format!("{path}.{key}"),
                format!("{key:?} is not a label name: letters, digits and '_', not starting with a digit"),
            ));
        }
    }
}

impl AlertRule {
    /// The rule ready to evaluate, or every field that is wrong.
    pub fn ready(&self) -> Result<ReadyRule, Vec<FieldError>> {
        let mut errors = Vec::new();
        if crate::names::validate("rule", &self.name).is_err() {
            errors.push(FieldError::new(
                "name",
                format!(
                    "{:?} is not a rule name: lowercase letters, digits and '-', at most 63",
                    self.name
                ),
            ));
        }
        if let Some(service) = &self.service
            && crate::names::validate("service", service).is_err()
        {
            errors.push(FieldError::new(
                "service",
                format!("{service:?} is not a service name"),
            ));
        }
        let metric = AlertMetric::parse(&self.metric);
        if metric.is_none() {
            let known: Vec<&str> = AlertMetric::all().iter().map(|m| m.as_str()).collect();
            errors.push(FieldError::new(
                "metric",
                format!(
                    "{:?} is not a metric: one of {}",
                    self.metric,
                    known.join(", ")
                ),
            ));
        }
        let condition = match Condition::parse(&self.condition) {
            Ok(c) => Some(c),
            Err(e) => {
                errors.push(FieldError::new(
                    "condition",
                    format!("{:?} does not parse: {e}", self.condition),
                ));
                None
            }
        };
        let window = duration(
            "window",
            self.window.as_deref(),
            Duration::from_secs(crate::traffic::INTERVAL_SECONDS),
            MAX_WINDOW,
            &mut errors,
        );
        let interval = crate::traffic::INTERVAL_SECONDS;
        if !window
            .as_millis()
            .is_multiple_of(u128::from(interval) * 1000)
            || window.is_zero()
        {
            errors.push(FieldError::new(
                "window",
                format!(
                    "the window must be a whole number of the gateway's {interval}-second intervals"
                ),
            ));
        }
        let for_duration = duration(
            "for",
            self.for_duration.as_deref(),
            Duration::ZERO,
            MAX_DURATION,
            &mut errors,
        );
        check_label_names("labels", &self.labels, &mut errors);
        check_label_names("annotations", &self.annotations, &mut errors);
        if self.receivers.len() > MAX_TARGETS {
            errors.push(FieldError::new(
                "receivers",
                format!("at most {MAX_TARGETS} receivers"),
            ));
        }
        for (i, r) in self.receivers.iter().enumerate() {
            check_url(
                format!("receivers[{i}].webhook.url"),
                &r.webhook.url,
                &mut errors,
            );
        }
        let playbook = self
            .playbook
            .as_ref()
            .map(|p| ready_playbook(p, &mut errors));
        match (metric, condition) {
            (Some(metric), Some(condition)) if errors.is_empty() => Ok(ReadyRule {
                name: self.name.clone(),
                service: self.service.clone(),
                metric,
                condition,
                condition_text: self.condition.clone(),
                window,
                for_duration,
                severity: self.severity.unwrap_or_default(),
                labels: self.labels.clone(),
                annotations: self.annotations.clone(),
                receivers: self
                    .receivers
                    .iter()
                    .map(|r| r.webhook.url.clone())
                    .collect(),
                playbook,
            }),
            _ => Err(errors),
        }
    }
}

fn ready_playbook(p: &Playbook, errors: &mut Vec<FieldError>) -> ReadyPlaybook {
    if p.steps.is_empty() || p.steps.len() > MAX_TARGETS {
        errors.push(FieldError::new(
            "playbook.steps",
            format!("a playbook has 1 to {MAX_TARGETS} steps"),
        ));
    }
    for (i, step) in p.steps.iter().enumerate() {
        match step {
            PlaybookStep::ScaleOut { by, max } => {
                if *by == 0 {
                    errors.push(FieldError::new(
                        format!("playbook.steps[{i}].scaleOut.by"),
                        "scale out by at least one replica",
                    ));
                }
                if *max == 0 || *max > crate::service::MAX_REPLICAS {
                    errors.push(FieldError::new(
                        format!("playbook.steps[{i}].scaleOut.max"),
                        format!("the cap is 1 to {}", crate::service::MAX_REPLICAS),
                    ));
                }
            }
            PlaybookStep::Webhook { url } => {
                check_url(format!("playbook.steps[{i}].webhook.url"), url, errors);
            }
            PlaybookStep::Restart {} | PlaybookStep::Rollback {} => {}
        }
    }
    let max_per_hour = p.max_per_hour.unwrap_or(6);
    if max_per_hour == 0 || max_per_hour > 60 {
        errors.push(FieldError::new(
            "playbook.maxPerHour",
            "1 to 60 runs an hour",
        ));
    }
    ReadyPlaybook {
        steps: p.steps.clone(),
        cooldown: duration(
            "playbook.cooldown",
            p.cooldown.as_deref(),
            Duration::from_secs(300),
            MAX_DURATION,
            errors,
        ),
        max_per_hour,
    }
}
