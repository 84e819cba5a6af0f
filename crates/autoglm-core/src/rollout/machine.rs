//! The rollout state machine: pure, one [`Rollout::on`] per event, the
//! same for the local platform and the operator. The driver feeds it the
//! time, measurements and a user's commands, and carries out the weight it
//! asks for; the machine never reads a clock or a metric itself.
//!
//! Phases, as Argo Rollouts names them: `Progressing` (running steps),
//! `Paused` (a pause step, a user, or an inconclusive measurement),
//! `Healthy` (every step done: the canary is the stable version) and
//! `Degraded` (aborted: all traffic back on the stable version).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::spec::{ReadyMetric, ReadyStep};

/// Where a rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    /// Running its steps.
    Progressing,
    /// Waiting: for a pause's end, a promote or a resume.
    Paused,
    /// Done: the canary took all traffic and is the stable version.
    Healthy,
    /// Aborted: all traffic went back to the stable version.
    Degraded,
}

/// One measurement of a metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Measurement {
    /// The canary's value; `None`: no data in the interval.
    pub value: Option<f64>,
    /// The stable version's value over the same interval.
    pub baseline: Option<f64>,
    /// `Successful`, `Failed` or `Inconclusive`.
    pub phase: MeasurementPhase,
    /// When it was taken.
    pub at: DateTime<Utc>,
}

/// How a measurement judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MeasurementPhase {
    /// The success condition held (or the failure condition did not).
    Successful,
    /// The failure condition held (or the success condition did not).
    Failed,
    /// No data, or a condition could not be read.
    Inconclusive,
}

/// A metric's measurements in the current analysis step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricResult {
    /// The metric's name.
    pub name: String,
    /// The step it belongs to.
    pub step: usize,
    /// Measurements, oldest first.
    pub measurements: Vec<Measurement>,
}

impl MetricResult {
    fn count(&self, phase: MeasurementPhase) -> u32 {
        self.measurements
            .iter()
            .filter(|m| m.phase == phase)
            .count() as u32
    }
}

/// A rollout's state, as its service's status shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// Where it is.
    pub phase: Phase,
    /// The version that had all traffic before.
    pub stable: String,
    /// The version rolling out.
    pub canary: String,
    /// The step running now (the number of steps once done).
    pub step: usize,
    /// The canary's share of traffic now, in percent.
    pub weight: u32,
    /// Why it is paused or degraded, or what it waits for.
    pub message: String,
    /// A user paused it: it stays paused until resumed, across restarts.
    #[serde(default)]
    pub paused_by_user: bool,
    /// When the current step began.
    pub step_started_at: DateTime<Utc>,
    /// The measurements of analysis steps, and of the guard.
    #[serde(default)]
    pub analysis: Vec<MetricResult>,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Time passed: a pause may be over, a measurement due.
    Tick,
    /// A measurement of metric `metric` of the current step: the canary's
    /// value and the stable version's, `None` where the interval held no data.
    Measured {
        /// Its name.
        metric: String,
        /// The canary's value.
        value: Option<f64>,
        /// The stable version's.
        baseline: Option<f64>,
    },
    /// A user: hold here.
    Pause,
    /// A user: go on (after a manual pause, a pause without duration, or an
    /// inconclusive measurement).
    Resume,
    /// A user: skip the remaining steps, the canary takes all traffic.
    Promote,
    /// A user: all traffic back on the stable version.
    Abort,
}

/// What the driver should do after an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Route `weight` percent to the canary, the rest to the stable version.
    SetWeight(u32),
    /// Measure `metric` now and report it with [`Event::Measured`].
    Measure(ReadyMetric),
    /// The canary is the stable version now (and, if the spec asks, in production).
    MarkStable,
}

impl Rollout {
    /// A rollout from `stable` to `canary`, starting at its first step at `now`.
    pub fn start(stable: &str, canary: &str, now: DateTime<Utc>) -> Rollout {
        Rollout {
            phase: Phase::Progressing,
            stable: stable.to_owned(),
            canary: canary.to_owned(),
            step: 0,
            weight: 0,
            message: String::new(),
            paused_by_user: false,
            step_started_at: now,
            analysis: Vec::new(),
        }
    }

    /// The traffic split this state asks for: all on the canary once
    /// healthy, all on the stable version once degraded, else the canary's
    /// weight (both versions listed, so the canary's replicas run at 0%).
    pub fn split(&self) -> Vec<crate::service::VersionWeight> {
        let weight = |version: &str, weight: u32| crate::service::VersionWeight {
            version: version.to_owned(),
            weight,
        };
        match self.phase {
            Phase::Healthy => vec![weight(&self.canary, 100)],
            Phase::Degraded => vec![weight(&self.stable, 100)],
            _ => vec![
                weight(&self.stable, 100 - self.weight),
                weight(&self.canary, self.weight),
            ],
        }
    }

    /// When the rollout next has something to do by itself (a pause ends, a
    /// measurement is due); `None` when it is final or waits for a user.
    pub fn next_due(&self, steps: &[ReadyStep]) -> Option<DateTime<Utc>> {
        if self.is_final() || self.paused_by_user {
            return None;
        }
        let after = |d: std::time::Duration| {
            self.step_started_at + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
        };
        match steps.get(self.step) {
            None | Some(ReadyStep::SetWeight(_)) => Some(self.step_started_at),
            Some(ReadyStep::Pause(Some(d))) => Some(after(*d)),
            Some(ReadyStep::Pause(None)) => None,
            Some(ReadyStep::Analysis(_)) if self.phase == Phase::Paused => None,
            Some(ReadyStep::Analysis(metrics)) => metrics
                .iter()
                .filter_map(|m| {
                    let taken = self
                        .result_of(&m.name)
                        .map_or(0, |r| r.measurements.len() as u32);
                    (taken < m.count).then(|| after(m.interval * (taken + 1)))
                })
                .min(),
        }
    }

    /// The summary a service's status carries.
    pub fn summary(&self) -> crate::service::RolloutStatus {
        let last = self
            .analysis
            .iter()
            .flat_map(|r| r.measurements.iter().map(move |m| (r, m)))
            .max_by_key(|(_, m)| m.at)
            .map(|(r, m)| {
                let value = m
                    .value
                    .map_or_else(|| "no data".to_owned(), |v| format!("{v}"));
                let stable = m
                    .baseline
                    .map_or_else(|| "-".to_owned(), |v| format!("{v}"));
                format!("{} = {value} (stable {stable}): {:?}", r.name, m.phase)
            });
        crate::service::RolloutStatus {
            phase: format!("{:?}", self.phase),
            step: u32::try_from(self.step).unwrap_or(u32::MAX),
            weight: self.weight,
            stable: self.stable.clone(),
            canary: self.canary.clone(),
            message: self.message.clone(),
            last_analysis: last,
        }
    }

    /// Whether nothing more will happen.
    pub fn is_final(&self) -> bool {
        matches!(self.phase, Phase::Healthy | Phase::Degraded)
    }

    /// Applies `event` at `now` to a rollout running `steps`; what the
    /// driver must do. Runs as many steps as can run at once (weights move,
    /// finished pauses end) and stops at the first that must wait.
    pub fn on(&mut self, steps: &[ReadyStep], event: Event, now: DateTime<Utc>) -> Vec<Effect> {
        if self.is_final() {
            return Vec::new();
        }
        let mut effects = Vec::new();
        match event {
            Event::Abort => {
                self.abort("aborted by a user".to_owned(), &mut effects);
                return effects;
            }
            Event::Promote => {
                self.step = steps.len();
                self.paused_by_user = false;
                self.finish(&mut effects);
                return effects;
            }
            Event::Pause => {
                self.paused_by_user = true;
                self.phase = Phase::Paused;
                self.message = "paused by a user".to_owned();
                return effects;
            }
            Event::Resume => {
                if self.paused_by_user || self.phase == Phase::Paused {
                    self.paused_by_user = false;
                    self.phase = Phase::Progressing;
                    self.message.clear();
                    match steps.get(self.step) {
                        // A pause without duration ends with a resume.
                        Some(ReadyStep::Pause(None)) => self.next_step(now),
                        // An analysis paused on an inconclusive measurement
                        // starts its measurements again.
                        Some(ReadyStep::Analysis(_)) => {
                            let step = self.step;
                            self.analysis.retain(|r| r.step != step);
                            self.step_started_at = now;
                        }
                        _ => {}
                    }
                }
            }
            Event::Measured {
                metric,
                value,
                baseline,
            } => {
                if let Some(ReadyStep::Analysis(metrics)) = steps.get(self.step)
                    && let Some(m) = metrics.iter().find(|m| m.name == metric)
                    && !self.paused_by_user
                    && self.phase == Phase::Progressing
                {
                    self.record(m, value, baseline, now, &mut effects);
                    if self.is_final() || self.phase == Phase::Paused {
                        return effects;
                    }
                }
            }
            Event::Tick => {}
        }
        if self.paused_by_user || (self.phase == Phase::Paused && self.waits_for_user(steps)) {
            return effects;
        }
        self.run(steps, now, &mut effects);
        effects
    }

    /// Paused for a reason only a user ends (not a timed pause).
    fn waits_for_user(&self, steps: &[ReadyStep]) -> bool {
        !matches!(steps.get(self.step), Some(ReadyStep::Pause(Some(_))))
    }

    fn run(&mut self, steps: &[ReadyStep], now: DateTime<Utc>, effects: &mut Vec<Effect>) {
        loop {
            match steps.get(self.step) {
                None => {
                    self.finish(effects);
                    return;
                }
                Some(ReadyStep::SetWeight(w)) => {
                    if self.weight != *w {
                        self.weight = *w;
                        effects.push(Effect::SetWeight(*w));
                    }
                    self.next_step(now);
                }
                Some(ReadyStep::Pause(Some(d))) => {
                    let ends = self.step_started_at
                        + chrono::Duration::from_std(*d).unwrap_or(chrono::Duration::MAX);
                    if now < ends {
                        self.phase = Phase::Paused;
                        self.message = format!("pause until {}", ends.to_rfc3339());
                        return;
                    }
                    self.phase = Phase::Progressing;
                    self.message.clear();
                    self.next_step(now);
                }
                Some(ReadyStep::Pause(None)) => {
                    self.phase = Phase::Paused;
                    self.message = "waiting for a promote or a resume".to_owned();
                    return;
                }
                Some(ReadyStep::Analysis(metrics)) => {
                    let mut pending = false;
                    for m in metrics {
                        let taken = self
                            .result_of(&m.name)
                            .map_or(0, |r| r.measurements.len() as u32);
                        if taken >= m.count {
                            continue;
                        }
                        pending = true;
                        // Measurement k is due `interval` after k intervals of the step.
                        let due = self.step_started_at
                            + chrono::Duration::from_std(m.interval * (taken + 1))
                                .unwrap_or(chrono::Duration::MAX);
                        if now >= due {
                            effects.push(Effect::Measure(m.clone()));
                        }
                    }
                    if pending {
                        self.message = format!("analysing step {}", self.step);
                        return;
                    }
                    self.next_step(now);
                }
            }
        }
    }

    fn result_of(&self, metric: &str) -> Option<&MetricResult> {
        self.analysis
            .iter()
            .find(|r| r.step == self.step && r.name == metric)
    }

    fn record(
        &mut self,
        m: &ReadyMetric,
        value: Option<f64>,
        baseline: Option<f64>,
        now: DateTime<Utc>,
        effects: &mut Vec<Effect>,
    ) {
        let phase = judge(m, value, baseline);
        let step = self.step;
        let index = match self
            .analysis
            .iter()
            .position(|r| r.step == step && r.name == m.name)
        {
            Some(i) => i,
            None => {
                self.analysis.push(MetricResult {
                    name: m.name.clone(),
                    step,
                    measurements: Vec::new(),
                });
                self.analysis.len() - 1
            }
        };
        let result = &mut self.analysis[index];
        if result.measurements.len() as u32 >= m.count {
            return;
        }
        result.measurements.push(Measurement {
            value,
            baseline,
            phase,
            at: now,
        });
        let failed = result.count(MeasurementPhase::Failed);
        let inconclusive = result.count(MeasurementPhase::Inconclusive);
        if failed > m.failure_limit {
            let shown = value.map_or_else(|| "no data".to_owned(), |v| format!("{v}"));
            let against = baseline.map_or_else(String::new, |b| format!(" (stable: {b})"));
            self.abort(
                format!(
                    "metric {} failed at step {step}: {shown}{against}, {failed} failed of {} allowed",
                    m.name, m.failure_limit
                ),
                effects,
            );
        } else if inconclusive > m.inconclusive_limit {
            self.phase = Phase::Paused;
            self.message = format!(
                "metric {} was inconclusive (no data or no baseline) at step {step}; resume to measure again, or promote or abort",
                m.name
            );
        }
    }

    fn abort(&mut self, why: String, effects: &mut Vec<Effect>) {
        self.phase = Phase::Degraded;
        self.paused_by_user = false;
        self.message = why;
        if self.weight != 0 {
            self.weight = 0;
            effects.push(Effect::SetWeight(0));
        }
    }

    fn finish(&mut self, effects: &mut Vec<Effect>) {
        if self.weight != 100 {
            self.weight = 100;
            effects.push(Effect::SetWeight(100));
        }
        self.phase = Phase::Healthy;
        self.message = format!("version {} is stable", self.canary);
        effects.push(Effect::MarkStable);
    }

    fn next_step(&mut self, now: DateTime<Utc>) {
        self.step += 1;
        self.step_started_at = now;
    }
}

/// How one measurement judges: failure first, as Argo does; no data is
/// inconclusive, never a pass.
pub fn judge(m: &ReadyMetric, value: Option<f64>, baseline: Option<f64>) -> MeasurementPhase {
    let Some(value) = value else {
        return MeasurementPhase::Inconclusive;
    };
    if let Some(failure) = &m.failure {
        match failure.holds(value, baseline) {
            Some(true) => return MeasurementPhase::Failed,
            None => return MeasurementPhase::Inconclusive,
            Some(false) => {}
        }
    }
    match m.success.as_ref().map(|s| s.holds(value, baseline)) {
        Some(Some(true)) | None => MeasurementPhase::Successful,
        Some(Some(false)) => MeasurementPhase::Failed,
        Some(None) => MeasurementPhase::Inconclusive,
    }
}
