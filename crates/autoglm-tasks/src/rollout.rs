//! What a `rolloutStep` task does: drives a service's rollout state machine
//! (`autoglm-core`'s, pure) with the clock and the gateway's per-version
//! statistics, saves each new state with the split it asks for (one store
//! write: the rollout and spec.versions together), tells the platform and
//! follows it until the split is rolled out. It runs until the rollout is
//! done, aborted, or waits for a user (a pause without duration, a manual
//! pause, an inconclusive measurement); a user's resume or promote starts
//! another. Cut short by a crash, it resumes from the saved state.

use std::time::Duration;

use autoglm_core::rollout::measure::{measure, window};
use autoglm_core::rollout::{Effect, Event, ReadyStep, Rollout};
use autoglm_core::task::{Task, TaskError, TaskProgress};
use autoglm_store::services;
use chrono::Utc;
use serde_json::{Value, json};

use crate::Reporter;
use crate::service::ServiceWork;

/// How often the state is read again while the rollout waits, so a user's
/// pause, promote or abort (written by the console) is seen promptly.
const LOOK: Duration = Duration::from_millis(200);

impl ServiceWork {
    /// Runs `task`'s rollout as far as it goes by itself.
    pub(crate) async fn roll(
        &self,
        task: &Task,
        name: &str,
        progress: &Reporter,
    ) -> Result<Value, TaskError> {
        let tenant = task.tenant.as_str();
        loop {
            let (stored, rollout) = self.load(tenant, name).await?;
            let Some(mut rollout) = rollout else {
                return Err(TaskError::new(
                    "superseded",
                    format!("service {name:?} has no rollout"),
                ));
            };
            let steps = match stored.manifest.spec.rollout.as_ref().map(|r| r.ready()) {
                Some(Ok(steps)) => steps,
                _ => {
                    return Err(TaskError::new(
                        "superseded",
                        "the service no longer has a valid spec.rollout",
                    ));
                }
            };
            let before = rollout.clone();
            let now = Utc::now();
            let mut effects = rollout.on(&steps, Event::Tick, now);
            // Measurements are due now: take them from the gateway and judge.
            while let Some(i) = effects.iter().position(|e| matches!(e, Effect::Measure(_))) {
                let Effect::Measure(metric) = effects.remove(i) else {
                    continue;
                };
                let (value, baseline) = match self.measure(tenant, name, &rollout, &metric).await {
                    Ok(measured) => measured,
                    // Still due: measured again at the next look.
                    Err(why) => {
                        tracing::warn!(service = name, error = %why, "cannot measure a rollout's metric");
                        continue;
                    }
                };
                let event = Event::Measured {
                    metric: metric.name.clone(),
                    value,
                    baseline,
                };
                effects.extend(rollout.on(&steps, event, Utc::now()));
            }
            if rollout != before {
                let moved = effects.iter().any(|e| matches!(e, Effect::SetWeight(_)));
                self.save(tenant, name, &rollout).await?;
                if moved {
                    tracing::info!(service = name, weight = rollout.weight, phase = ?rollout.phase, "rollout moved traffic");
                    self.converge(task, name, progress).await?;
                }
            }
            progress.report(describe(&rollout, &steps)).await;
            if rollout.is_final() {
                return Ok(json!({"message": rollout.message, "rollout": rollout}));
            }
            let Some(due) = rollout.next_due(&steps) else {
                return Ok(
                    json!({"message": format!("waiting for a user: {}", rollout.message), "rollout": rollout}),
                );
            };
            // Wait until due, looking now and then for a user's command.
            let wait = (due - Utc::now()).to_std().unwrap_or_default();
            tokio::time::sleep(wait.min(LOOK)).await;
        }
    }

    async fn load(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<(autoglm_store::StoredService, Option<Rollout>), TaskError> {
        let (store, t, n) = (self.store.clone(), tenant.to_owned(), name.to_owned());
        let read = tokio::task::spawn_blocking(move || {
            Ok::<_, autoglm_store::StoreError>((
                store.service(&t, &n)?,
                store.service_rollout(&t, &n)?,
            ))
        })
        .await;
        match read {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(e)) if e.is_not_found() => Err(TaskError::new(
                "superseded",
                format!("service {name:?} was deleted during its rollout"),
            )),
            Ok(Err(e)) => Err(TaskError::transient(e.to_string())),
            Err(e) => Err(TaskError::new("internal", e.to_string())),
        }
    }

    /// Saves the state with its split, as the system (audited as `rollouts.step`).
    async fn save(&self, tenant: &str, name: &str, rollout: &Rollout) -> Result<(), TaskError> {
        let (store, t, n, r) = (
            self.store.clone(),
            tenant.to_owned(),
            name.to_owned(),
            rollout.clone(),
        );
        let saved = tokio::task::spawn_blocking(move || {
            store.system_write(|tx| {
                services::save_rollout(tx, &t, &n, &r)?;
                let event = autoglm_core::audit::AuditEvent {
                    time: autoglm_store::timestamp(Utc::now()),
                    actor: "system:rollouts".to_owned(),
                    tenant: t.clone(),
                    action: format!("rollouts.{}", phase_word(&r)),
                    target: format!("services/{n}"),
                    request_id: String::new(),
                    outcome: String::new(),
                };
                Ok(Some(((), event)))
            })
        })
        .await;
        match saved {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(TaskError::transient(e.to_string())),
            Err(e) => Err(TaskError::new("internal", e.to_string())),
        }
    }

    /// The canary's and the stable version's `metric` over its interval:
    /// from Prometheus when there is one, else from the gateway of this
    /// process; an error when Prometheus could not answer.
    async fn measure(
        &self,
        tenant: &str,
        name: &str,
        rollout: &Rollout,
        metric: &autoglm_core::rollout::ReadyMetric,
    ) -> Result<(Option<f64>, Option<f64>), String> {
        if let Some(prometheus) = &self.prometheus {
            return prometheus.measure(tenant, name, rollout, metric).await;
        }
        let Some(history) = self.traffic.traffic(tenant, name, 360) else {
            return Ok((None, None));
        };
        let now = Utc::now();
        // The history keeps closed intervals only: the interval that closed
        // last may have begun before the step did, so the window reaches one
        // interval further back, lest a measurement due just after a
        // boundary find next to no data (inconclusive) when there was plenty.
        let span = metric.interval + Duration::from_secs(history.interval_seconds);
        let of = |version: &str| {
            history
                .versions
                .iter()
                .find(|v| v.version == version)
                .and_then(|v| {
                    let points = window(&v.points, now, span);
                    measure(metric.metric, &points, history.interval_seconds)
                })
        };
        Ok((of(&rollout.canary), of(&rollout.stable)))
    }
}

fn phase_word(r: &Rollout) -> &'static str {
    match r.phase {
        autoglm_core::rollout::Phase::Progressing => "progress",
        autoglm_core::rollout::Phase::Paused => "pause",
        autoglm_core::rollout::Phase::Healthy => "complete",
        autoglm_core::rollout::Phase::Degraded => "abort",
    }
}

fn describe(r: &Rollout, steps: &[ReadyStep]) -> TaskProgress {
    let done = r.step.min(steps.len());
    TaskProgress {
        percent: (done * 100 / steps.len().max(1)).min(if r.is_final() { 100 } else { 99 }) as u8,
        message: format!(
            "step {done} of {}: canary {} at {}% ({:?}){}",
            steps.len(),
            r.canary,
            r.weight,
            r.phase,
            if r.message.is_empty() {
                String::new()
            } else {
                format!(", {}", r.message)
            }
        ),
    }
}
