//! Rollouts on Kubernetes: at each reconcile of a ModelService whose spec
//! wants a new version and has `rollout`, the rollout state machine of
//! `autoglm-core` (the one the local platform runs) gets the clock and the
//! measurements due, taken from Prometheus with the gateway metrics' PromQL
//! (`autoglm_core::rollout::promql`); the reconcile then renders the split
//! the state asks for and keeps the state in the status. The gateway routes
//! by that split while a rollout runs (`autoglm-cluster`'s views).

use std::time::Duration;

use autoglm_core::rollout::cluster::{COMMAND_ANNOTATION, Course, course, parse_command};
use autoglm_core::rollout::{Effect, Event, Phase, ReadyMetric, Rollout};
use autoglm_core::service::ModelServiceSpec;
use autoglm_prometheus::Prometheus;
use autoglm_render::ModelServiceObject;
use chrono::Utc;
use kube::ResourceExt;

/// How soon a measurement is tried again when Prometheus could not answer.
const RETRY: Duration = Duration::from_secs(5);

/// What a reconcile renders and reports for a service's rollout.
#[derive(Debug, Clone)]
pub struct Stepped {
    /// The spec to render: the service's, with the split the rollout asks for.
    pub spec: ModelServiceSpec,
    /// The version that has (or last had) all traffic.
    pub stable: Option<String>,
    /// The rollout's state, for the status.
    pub state: Option<Rollout>,
    /// When to reconcile again for the rollout's sake.
    pub due: Option<Duration>,
    /// The command annotation's value, once carried out (or refused).
    pub command: Option<String>,
    /// What became of a new command, in words, and whether it was refused.
    pub command_outcome: Option<(bool, String)>,
}

/// Carries `ms`'s rollout as far as it goes now.
pub async fn step(ms: &ModelServiceObject, prometheus: Option<&Prometheus>) -> Stepped {
    let status = ms.status.as_ref();
    // A command is new while its value is not the one last carried out.
    let command = ms.annotations().get(COMMAND_ANNOTATION).cloned();
    let new_command = command
        .clone()
        .filter(|c| status.and_then(|s| s.rollout_command.as_ref()) != Some(c));
    let recorded = command.or_else(|| status.and_then(|s| s.rollout_command.clone()));
    let ignored = new_command.as_ref().map(|c| {
        (
            true,
            format!("{COMMAND_ANNOTATION} {c:?}: no rollout is running"),
        )
    });
    let plain = |stable: Option<String>, state: Option<Rollout>| Stepped {
        spec: ms.spec.clone(),
        stable,
        state,
        due: None,
        command: recorded.clone(),
        command_outcome: ignored.clone(),
    };
    let now = Utc::now();
    let chosen = course(
        &ms.spec,
        status.and_then(|s| s.stable_version.as_deref()),
        status.and_then(|s| s.rollout_state.as_ref()),
        now,
    );
    // The console drives the rollouts of the services it writes, moving
    // their spec's split itself.
    let console_drives = ms
        .labels()
        .get("app.kubernetes.io/managed-by")
        .is_some_and(|m| m == autoglm_render::CONSOLE_MANAGER);
    if console_drives {
        return plain(None, None);
    }
    let mut rollout = match chosen {
        Course::Plain { stable, last } => return plain(stable, last),
        Course::Drive(r) => r,
    };
    // The API server checked the spec against the CRD, not the rules of
    // the steps; a spec they refuse renders as it is, its status says why.
    let Some(Ok(steps)) = ms.spec.rollout.as_ref().map(|r| r.ready()) else {
        return plain(Some(rollout.stable.clone()), None);
    };
    let namespace = ms.namespace().unwrap_or_default();
    let name = ms.name_any();
    let mut effects = Vec::new();
    let mut outcome = None;
    if let Some(value) = &new_command {
        outcome = Some(match parse_command(value) {
            Ok(_) if rollout.is_final() => (
                true,
                format!(
                    "{COMMAND_ANNOTATION} {value:?}: the rollout of version {} is over ({:?})",
                    rollout.canary, rollout.phase
                ),
            ),
            Ok(event) => {
                let words = format!("{COMMAND_ANNOTATION} {value:?}: {event:?}");
                effects.extend(rollout.on(&steps, event, now));
                (false, words)
            }
            Err(why) => (true, why),
        });
    }
    effects.extend(rollout.on(&steps, Event::Tick, now));
    let mut retry = false;
    while let Some(i) = effects.iter().position(|e| matches!(e, Effect::Measure(_))) {
        let Effect::Measure(metric) = effects.remove(i) else {
            continue;
        };
        match measure(prometheus, &namespace, &name, &rollout, &metric).await {
            Ok((value, baseline)) => {
                let event = Event::Measured {
                    metric: metric.name.clone(),
                    value,
                    baseline,
                };
                effects.extend(rollout.on(&steps, event, Utc::now()));
            }
            Err(why) => {
                tracing::warn!(service = %name, %namespace, error = %why, "cannot measure a rollout's metric; trying again");
                retry = true;
            }
        }
    }
    let stable = if rollout.phase == Phase::Healthy {
        rollout.canary.clone()
    } else {
        rollout.stable.clone()
    };
    let due = rollout
        .next_due(&steps)
        .map(|at| (at - Utc::now()).to_std().unwrap_or_default());
    let due = if retry {
        Some(due.map_or(RETRY, |d| d.min(RETRY)))
    } else {
        due
    };
    Stepped {
        spec: ModelServiceSpec {
            versions: rollout.split(),
            ..ms.spec.clone()
        },
        stable: Some(stable),
        state: Some(rollout),
        due,
        command: recorded,
        command_outcome: outcome,
    }
}

/// The canary's and the stable version's `metric`; without Prometheus,
/// no data (the rollout pauses as inconclusive).
async fn measure(
    prometheus: Option<&Prometheus>,
    namespace: &str,
    name: &str,
    rollout: &Rollout,
    metric: &ReadyMetric,
) -> Result<(Option<f64>, Option<f64>), String> {
    match prometheus {
        Some(p) => p.measure(namespace, name, rollout, metric).await,
        None => Ok((None, None)),
    }
}
