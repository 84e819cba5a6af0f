//! `spec.rollout` of a ModelService, spelled as Argo Rollouts spells a
//! canary: `steps` of `{setWeight: N}`, `{pause: {duration: 60s}}` (or
//! `pause: {}`, which waits for a promote) and `{analysis: {metrics: [...]}}`,
//! each metric as an AnalysisTemplate's (`interval`, `count`,
//! `successCondition`, `failureCondition`, `failureLimit`,
//! `inconclusiveLimit`) measuring one of the gateway's per-version numbers.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::condition::Condition;
use crate::error::FieldError;
use crate::service::parse_duration;

/// How a new version of a service takes over from the stable one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutSpec {
    /// In order; the canary gets all traffic after the last.
    pub steps: Vec<Step>,
    /// On success, move the new version's registry stage to `production`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub promote_to_production: bool,
}

/// One step: exactly one of its fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Step {
    /// Send this percent of requests to the canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_weight: Option<u32>,
    /// Wait: for `duration`, or without one until promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<Pause>,
    /// Measure the canary (and the stable version as its baseline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Analysis>,
}

/// A pause step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pause {
    /// How long, e.g. `60s`; absent: until promoted or resumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
}

/// An analysis step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Analysis {
    /// What to measure; the default metric (error ratio above 5% fails) when empty.
    #[serde(default)]
    pub metrics: Vec<Metric>,
}

/// A number the gateway keeps per version, over the last interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum GatewayMetric {
    /// Share of answers with a 5xx status, 0 to 1.
    ErrorRatio,
    /// 95th percentile of the time to answer, in seconds.
    LatencyP95,
    /// 50th percentile of the time to answer, in seconds.
    LatencyP50,
    /// 99th percentile of the time to answer, in seconds.
    LatencyP99,
    /// Requests per second.
    RequestRate,
}

impl GatewayMetric {
    /// Every metric, as the docs list them.
    pub const ALL: &'static [GatewayMetric] = &[
        GatewayMetric::ErrorRatio,
        GatewayMetric::LatencyP95,
        GatewayMetric::LatencyP50,
        GatewayMetric::LatencyP99,
        GatewayMetric::RequestRate,
    ];

    /// The name in a spec.
    pub fn as_str(self) -> &'static str {
        match self {
            GatewayMetric::ErrorRatio => "errorRatio",
            GatewayMetric::LatencyP95 => "latencyP95",
            GatewayMetric::LatencyP50 => "latencyP50",
            GatewayMetric::LatencyP99 => "latencyP99",
            GatewayMetric::RequestRate => "requestRate",
        }
    }
}

/// Where a metric's measurements come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Provider {
    /// The gateway's statistics of the canary and of the stable version.
    pub gateway: GatewayProvider,
}

/// The gateway provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayProvider {
    /// `errorRatio`, `latencyP95`, `latencyP50`, `latencyP99` or `requestRate`.
    pub metric: String,
}

/// One metric of an analysis, as in an Argo AnalysisTemplate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metric {
    /// Names the metric in the results.
    pub name: String,
    /// Time between measurements; default `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// How many measurements; default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// A measurement passes when this holds (over `result` and `baseline`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_condition: Option<String>,
    /// A measurement fails when this holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_condition: Option<String>,
    /// Failed measurements tolerated; one more fails the rollout. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_limit: Option<u32>,
    /// Inconclusive measurements tolerated; one more pauses the rollout. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inconclusive_limit: Option<u32>,
    /// What it measures.
    pub provider: Provider,
}

/// Longest pause or interval a step may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);
/// Most steps, and most measurements of one metric.
pub const MAX_STEPS: usize = 64;

/// A metric with its defaults applied and its conditions parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadyMetric {
    /// Its name.
    pub name: String,
    /// What it measures.
    pub metric: GatewayMetric,
    /// Time between measurements.
    pub interval: Duration,
    /// How many.
    pub count: u32,
    /// Passes when this holds.
    pub success: Option<Condition>,
    /// Fails when this holds.
    pub failure: Option<Condition>,
    /// Failed measurements tolerated.
    pub failure_limit: u32,
    /// Inconclusive measurements tolerated.
    pub inconclusive_limit: u32,
}

impl ReadyMetric {
    /// The analysis a rollout runs when it names none: an error ratio above
    /// 5% over an interval of 10 s fails it.
    pub fn default_guard() -> ReadyMetric {
        ReadyMetric {
            name: "error-ratio".to_owned(),
            metric: GatewayMetric::ErrorRatio,
            interval: Duration::from_secs(10),
            count: 1,
            success: None,
            failure: Condition::parse("result > 0.05").ok(),
            failure_limit: 0,
            inconclusive_limit: 0,
        }
    }
}

impl Metric {
    /// The metric ready to run, or each field that is wrong under `path`.
    pub fn ready(&self, path: &str, errors: &mut Vec<FieldError>) -> Option<ReadyMetric> {
        let before = errors.len();
        if crate::names::validate("metric", &self.name).is_err() {
            errors.push(FieldError::new(
                format!("{path}.name"),
                format!(
                    "{:?} is not a metric name: lowercase letters, digits and '-'",
                    self.name
                ),
            ));
        }
        let metric = GatewayMetric::ALL
            .iter()
            .copied()
            .find(|m| m.as_str() == self.provider.gateway.metric);
        if metric.is_none() {
            let known: Vec<&str> = GatewayMetric::ALL.iter().map(|m| m.as_str()).collect();
            errors.push(FieldError::new(
                format!("{path}.provider.gateway.metric"),
                format!(
                    "unknown metric {:?}; the gateway measures {}",
                    self.provider.gateway.metric,
                    known.join(", ")
                ),
            ));
        }
        let interval = match &self.interval {
            None => Some(Duration::from_secs(10)),
            Some(text) => wait(text, &format!("{path}.interval"), errors),
        };
        let count = self.count.unwrap_or(1);
        if count == 0 || count as usize > MAX_STEPS {
            errors.push(FieldError::new(
                format!("{path}.count"),
                format!("count must be 1 to {MAX_STEPS}, got {count}"),
            ));
        }
        let condition = |field: &str, text: &Option<String>, errors: &mut Vec<FieldError>| {
            text.as_deref().and_then(|t| match Condition::parse(t) {
                Ok(c) => Some(c),
                Err(e) => {
                    errors.push(FieldError::new(
                        format!("{path}.{field}"),
                        format!("{t:?} does not parse: {e}"),
                    ));
                    None
                }
            })
        };
        let success = condition("successCondition", &self.success_condition, errors);
        let failure = condition("failureCondition", &self.failure_condition, errors);
        if self.success_condition.is_none() && self.failure_condition.is_none() {
            errors.push(FieldError::new(
                path.to_owned(),
                "a metric needs a successCondition, a failureCondition or both".to_owned(),
            ));
        }
        if errors.len() > before {
            return None;
        }
        Some(ReadyMetric {
            name: self.name.clone(),
            metric: metric?,
            interval: interval?,
            count,
            success,
            failure,
            failure_limit: self.failure_limit.unwrap_or(0),
            inconclusive_limit: self.inconclusive_limit.unwrap_or(0),
        })
    }
}

/// A duration from 1 ms to [`MAX_WAIT`], or the error under `path`.
fn wait(text: &str, path: &str, errors: &mut Vec<FieldError>) -> Option<Duration> {
    match parse_duration(text) {
        Ok(d) if d.is_zero() => {
            errors.push(FieldError::new(
                path,
                format!("{text:?} must be longer than zero"),
            ));
            None
        }
        Ok(d) if d > MAX_WAIT => {
            errors.push(FieldError::new(
                path,
                format!("{text:?} is longer than 24h"),
            ));
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            errors.push(FieldError::new(path, e.to_string()));
            None
        }
    }
}

/// A step as the machine runs it.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadyStep {
    /// Move the canary's weight.
    SetWeight(u32),
    /// Wait this long, or (`None`) until promoted.
    Pause(Option<Duration>),
    /// Measure these metrics.
    Analysis(Vec<ReadyMetric>),
}

impl RolloutSpec {
    /// The steps ready to run, or each field that is wrong (paths under
    /// `spec.rollout`): exactly one kind per step, weights 0 to 100 and
    /// never going down, durations that parse, known metrics, conditions
    /// that parse. A rollout that names no analysis gets the default guard
    /// ([`ReadyMetric::default_guard`]) after each canary weight.
    pub fn ready(&self) -> Result<Vec<ReadyStep>, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut steps = Vec::new();
        if self.steps.is_empty() {
            errors.push(FieldError::new(
                "spec.rollout.steps",
                "a rollout needs at least one step".to_owned(),
            ));
        }
        if self.steps.len() > MAX_STEPS {
            errors.push(FieldError::new(
                "spec.rollout.steps",
                format!("at most {MAX_STEPS} steps, got {}", self.steps.len()),
            ));
        }
        let mut last_weight = 0;
        for (i, step) in self.steps.iter().enumerate() {
            let path = format!("spec.rollout.steps[{i}]");
            let kinds = usize::from(step.set_weight.is_some())
                + usize::from(step.pause.is_some())
                + usize::from(step.analysis.is_some());
            if kinds != 1 {
                errors.push(FieldError::new(
                    path.clone(),
                    format!("a step is exactly one of setWeight, pause and analysis; this one has {kinds}"),
                ));
                continue;
            }
            if let Some(w) = step.set_weight {
                if w > 100 {
                    errors.push(FieldError::new(
                        format!("{path}.setWeight"),
                        format!("a weight is 0 to 100, got {w}"),
                    ));
                } else if w < last_weight {
                    errors.push(FieldError::new(
                        format!("{path}.setWeight"),
                        format!(
                            "weights only go up during a rollout: {w} comes after {last_weight} (abort rolls back)"
                        ),
                    ));
                } else {
                    last_weight = w;
                    steps.push(ReadyStep::SetWeight(w));
                }
            }
            if let Some(p) = &step.pause {
                let d = match &p.duration {
                    None => Some(None),
                    Some(t) => wait(t, &format!("{path}.pause.duration"), &mut errors).map(Some),
                };
                if let Some(d) = d {
                    steps.push(ReadyStep::Pause(d));
                }
            }
            if let Some(a) = &step.analysis {
                if a.metrics.is_empty() {
                    steps.push(ReadyStep::Analysis(vec![ReadyMetric::default_guard()]));
                } else {
                    let ready: Vec<Option<ReadyMetric>> = a
                        .metrics
                        .iter()
                        .enumerate()
                        .map(|(j, m)| {
                            m.ready(&format!("{path}.analysis.metrics[{j}]"), &mut errors)
                        })
                        .collect();
                    let mut names: Vec<&str> = a.metrics.iter().map(|m| m.name.as_str()).collect();
                    names.sort_unstable();
                    if names.windows(2).any(|w| w[0] == w[1]) {
                        errors.push(FieldError::new(
                            format!("{path}.analysis.metrics"),
                            "metric names must differ".to_owned(),
                        ));
                    }
                    steps.push(ReadyStep::Analysis(ready.into_iter().flatten().collect()));
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        // No analysis named: each canary weight is guarded by the default one.
        if !steps.iter().any(|s| matches!(s, ReadyStep::Analysis(_))) {
            let mut guarded = Vec::with_capacity(steps.len() * 2);
            for step in steps {
                let canary = matches!(step, ReadyStep::SetWeight(w) if w > 0 && w < 100);
                guarded.push(step);
                if canary {
                    guarded.push(ReadyStep::Analysis(vec![ReadyMetric::default_guard()]));
                }
            }
            return Ok(guarded);
        }
        Ok(steps)
    }
}
