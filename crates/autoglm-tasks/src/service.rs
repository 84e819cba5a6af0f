//! What a service task does: tells the platform that the service changed,
//! then follows the platform's status until the change is rolled out
//! (every replica of it ready), refused, or gone, reporting the share of
//! ready replicas as progress. Running it again is harmless: the platform
//! converges on what the store holds, so a resumed task only waits again.
//! Rollouts are `rollout.rs`, evaluations `evaluate.rs`.

use std::sync::Arc;
use std::time::Duration;

use autoglm_contract::{ServicePlatform, TrafficHistory};
use autoglm_core::task::{Rollout, ServiceChange, Task, TaskError, TaskKind, TaskProgress, judge};
use autoglm_prometheus::Prometheus;
use autoglm_store::Store;
use serde_json::{Value, json};

use crate::{Execute, Reporter};

/// How often the platform's status is read while a change rolls out.
const FOLLOW: Duration = Duration::from_millis(100);

/// Runs service tasks on a platform.
#[derive(Debug, Clone)]
pub struct ServiceWork {
    pub(crate) store: Arc<Store>,
    pub(crate) platform: Arc<dyn ServicePlatform>,
    pub(crate) traffic: Arc<dyn TrafficHistory>,
    /// Where rollouts measure instead, when the gateways run elsewhere
    /// (Kubernetes) and Prometheus scrapes them.
    pub(crate) prometheus: Option<Prometheus>,
}

impl ServiceWork {
    /// Service tasks over `store` on `platform`; rollouts measure from `traffic`.
    pub fn new(
        store: Arc<Store>,
        platform: Arc<dyn ServicePlatform>,
        traffic: Arc<dyn TrafficHistory>,
    ) -> ServiceWork {
        ServiceWork {
            store,
            platform,
            traffic,
            prometheus: None,
        }
    }

    /// Rollouts measure from `prometheus` (PromQL over the gateways'
    /// metrics) instead of this process's gateway.
    pub fn with_prometheus(self, prometheus: Prometheus) -> ServiceWork {
        ServiceWork {
            prometheus: Some(prometheus),
            ..self
        }
    }

    /// Waits until a deleted service is gone from its platform.
    async fn gone(&self, tenant: &str, name: &str, progress: &Reporter) -> Value {
        self.platform.changed(tenant, name);
        while self.platform.present(tenant, name) {
            progress
                .report(TaskProgress {
                    percent: 50,
                    message: "stopping the replicas".to_owned(),
                })
                .await;
            tokio::time::sleep(FOLLOW).await;
        }
        json!({"message": format!("service {name:?} is gone from its platform")})
    }

    /// Tells the platform about `task`'s service and waits until what the
    /// store holds now is rolled out there.
    pub(crate) async fn converge(
        &self,
        task: &Task,
        name: &str,
        progress: &Reporter,
    ) -> Result<Value, TaskError> {
        let tenant = task.tenant.as_str();
        if !self.platform.runs_services() {
            return Ok(json!({"message": "no platform runs services here: the change is stored"}));
        }
        self.platform.changed(tenant, name);
        loop {
            let (store, t, n) = (self.store.clone(), tenant.to_owned(), name.to_owned());
            let stored = match tokio::task::spawn_blocking(move || store.service(&t, &n)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) if e.is_not_found() => {
                    return Err(TaskError::new(
                        "superseded",
                        format!("service {name:?} was deleted before this change was rolled out"),
                    ));
                }
                Ok(Err(e)) => return Err(TaskError::transient(e.to_string())),
                Err(e) => return Err(TaskError::new("internal", e.to_string())),
            };
            // A rollout's and a rollback's task wait for whatever the store
            // holds now; any other for its own change (or a later one).
            let change = if matches!(task.kind, TaskKind::RolloutStep | TaskKind::Rollback) {
                ServiceChange {
                    generation: Some(stored.generation()),
                    restarts: stored.restarts,
                    ..ServiceChange::default()
                }
            } else {
                task.change.clone()
            };
            let status = self.platform.status(tenant, &stored);
            match status.as_ref().map(|s| judge(&change, s)) {
                Some(Rollout::Done) => {
                    let ready = status.as_ref().map_or(0, |s| s.ready_replicas);
                    return Ok(json!({
                        "message": format!("rolled out: {ready} replicas ready"),
                        "generation": stored.generation(),
                        "status": status,
                    }));
                }
                Some(Rollout::Refused(e)) => return Err(e),
                Some(Rollout::Working(p)) => progress.report(p).await,
                None => {
                    progress
                        .report(TaskProgress {
                            percent: 0,
                            message: "waiting for the platform to take the service up".to_owned(),
                        })
                        .await
                }
            }
            tokio::time::sleep(FOLLOW).await;
        }
    }
}

impl Execute for ServiceWork {
    async fn execute(&self, task: Task, progress: Reporter) -> Result<Value, TaskError> {
        if task.kind == TaskKind::Evaluate {
            return self.evaluate(&task, &progress).await;
        }
        let Some(name) = task.target.strip_prefix("services/") else {
            return Err(TaskError::new(
                "internal",
                format!(
                    "a {} task cannot act on {:?}",
                    task.kind.as_str(),
                    task.target
                ),
            ));
        };
        let name = name.to_owned();
        match task.kind {
            TaskKind::Delete if !self.platform.runs_services() => {
                Ok(json!({"message": "no platform runs services here: the change is stored"}))
            }
            TaskKind::Delete => Ok(self.gone(&task.tenant, &name, &progress).await),
            TaskKind::RolloutStep => self.roll(&task, &name, &progress).await,
            _ => self.converge(&task, &name, &progress).await,
        }
    }

    fn cancelled(&self, task: &Task) {
        if let Some(name) = task.target.strip_prefix("services/") {
            self.platform.changed(&task.tenant, name);
        }
    }
}
