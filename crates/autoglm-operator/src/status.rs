//! A ModelService's status from what its workloads report: replicas per
//! version, and the conditions `Ready`, `Progressing` and `Degraded` with
//! reasons. Pure: the operator hands in the workloads it has cached and the
//! status it wrote last, so transition times survive unchanged conditions.

use autoglm_core::service::{
    Condition, ConditionStatus, ModelServiceSpec, ModelServiceStatus, VersionStatus,
};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};

/// What the status needs of one version's Deployment or StatefulSet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workload {
    /// The replicas its spec asks for now (the HPA's choice when autoscaled).
    pub desired: u32,
    /// Pods that exist, old and new.
    pub replicas: u32,
    /// Pods of the current template.
    pub updated: u32,
    /// Pods that pass their readiness probe.
    pub ready: u32,
    /// Whether the workload controller has seen the latest spec.
    pub observed: bool,
    /// The Deployment gave up: `Progressing=False`, `ProgressDeadlineExceeded`.
    pub deadline_exceeded: bool,
    /// Why a pod could not be created (`ReplicaFailure`: a ResourceQuota's
    /// refusal, say), in the API server's words.
    pub replica_failure: Option<String>,
}

fn count(n: Option<i32>) -> u32 {
    n.unwrap_or(0).max(0) as u32
}

impl Workload {
    /// A Deployment's rollout state.
    pub fn of_deployment(deployment: &Deployment) -> Workload {
        let status = deployment.status.clone().unwrap_or_default();
        let conditions = status.conditions.clone().unwrap_or_default();
        Workload {
            replica_failure: conditions
                .iter()
                .find(|c| c.type_ == "ReplicaFailure" && c.status == "True")
                .map(|c| c.message.clone().unwrap_or_default()),
            desired: count(deployment.spec.as_ref().and_then(|s| s.replicas)),
            replicas: count(status.replicas),
            updated: count(status.updated_replicas),
            ready: count(status.ready_replicas),
            observed: status.observed_generation >= deployment.metadata.generation,
            deadline_exceeded: conditions.iter().any(|c| {
                c.type_ == "Progressing"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
            }),
        }
    }

    /// A StatefulSet's rollout state.
    pub fn of_stateful_set(set: &StatefulSet) -> Workload {
        let status = set.status.clone().unwrap_or_default();
        let current =
            status.current_revision.is_some() && status.current_revision == status.update_revision;
        Workload {
            desired: count(set.spec.as_ref().and_then(|s| s.replicas)),
            replicas: count(Some(status.replicas)),
            // A finished rolling update leaves updatedReplicas unset on some paths.
            updated: if current {
                count(Some(status.replicas))
            } else {
                count(status.updated_replicas)
            },
            ready: count(status.ready_replicas),
            observed: status.observed_generation >= set.metadata.generation,
            deadline_exceeded: false,
            replica_failure: None,
        }
    }

    /// The rollout of the current template is over: every pod is new.
    fn rolled_out(&self) -> bool {
        self.observed && self.updated >= self.desired && self.replicas == self.updated
    }
}

/// The status of a service whose versions' workloads are `workloads` (in
/// spec order; `None` where one does not exist yet).
pub fn observe(
    spec: &ModelServiceSpec,
    generation: Option<i64>,
    workloads: &[Option<Workload>],
    url: String,
) -> ModelServiceStatus {
    let versions: Vec<VersionStatus> = spec
        .versions
        .iter()
        .zip(workloads)
        .map(|(v, w)| {
            let w = w.clone().unwrap_or_default();
            VersionStatus {
                version: v.version.clone(),
                weight: v.weight,
                replicas: w.replicas,
                ready_replicas: w.ready,
            }
        })
        .collect();
    let desired: u32 = workloads.iter().flatten().map(|w| w.desired).sum();
    let ready: u32 = versions.iter().map(|v| v.ready_replicas).sum();
    let counts = format!("{ready} of {desired} replicas ready");
    let serving = versions
        .iter()
        .filter(|v| v.weight > 0)
        .all(|v| v.ready_replicas > 0);
    let ready_condition = if desired == 0 && workloads.iter().all(Option::is_some) {
        Condition::new(
            "Ready",
            ConditionStatus::True,
            "ScaledToZero",
            counts.clone(),
        )
    } else if serving && ready >= desired {
        Condition::new(
            "Ready",
            ConditionStatus::True,
            "AllReplicasReady",
            counts.clone(),
        )
    } else {
        Condition::new(
            "Ready",
            ConditionStatus::False,
            "ReplicasNotReady",
            counts.clone(),
        )
    };

    let named = |pick: &dyn Fn(Option<&Workload>) -> bool| -> Vec<String> {
        spec.versions
            .iter()
            .zip(workloads)
            .filter(|(_, w)| pick(w.as_ref()))
            .map(|(v, _)| format!("version {}", v.version))
            .collect()
    };
    let stalled = named(&|w| w.is_some_and(|w| w.deadline_exceeded));
    let rolling = named(&|w| w.is_none_or(|w| !w.rolled_out()));
    let progressing = if !stalled.is_empty() {
        Condition::new(
            "Progressing",
            ConditionStatus::False,
            "ProgressDeadlineExceeded",
            format!("{} made no progress in time", stalled.join(", ")),
        )
    } else if !rolling.is_empty() {
        Condition::new(
            "Progressing",
            ConditionStatus::True,
            "RollingOut",
            format!("{} rolling out", rolling.join(", ")),
        )
    } else {
        Condition::new(
            "Progressing",
            ConditionStatus::False,
            "RolloutComplete",
            "every version runs its current template".to_owned(),
        )
    };
    // Short of replicas although nothing is rolling out: pods failed after the rollout.
    let short = named(&|w| w.is_some_and(|w| w.rolled_out() && w.ready < w.desired));
    let degraded = if !stalled.is_empty() {
        Condition::new(
            "Degraded",
            ConditionStatus::True,
            "ProgressDeadlineExceeded",
            progressing.message.clone(),
        )
    } else if !short.is_empty() {
        Condition::new(
            "Degraded",
            ConditionStatus::True,
            "ReplicasUnavailable",
            format!("{} short of ready replicas", short.join(", ")),
        )
    } else {
        Condition::new(
            "Degraded",
            ConditionStatus::False,
            "AsExpected",
            String::new(),
        )
    };
    let mut conditions = vec![ready_condition, progressing, degraded];
    // As the local platform reports a replica its tenant's quota refused.
    let failures: Vec<String> = spec
        .versions
        .iter()
        .zip(workloads)
        .filter_map(|(v, w)| {
            let why = w.as_ref()?.replica_failure.as_ref()?;
            Some(format!("version {}: {why}", v.version))
        })
        .collect();
    if !failures.is_empty() {
        let reason = if failures.iter().any(|f| f.contains("exceeded quota")) {
            "QuotaExceeded"
        } else {
            "FailedCreate"
        };
        conditions.push(Condition::new(
            "ReplicaFailure",
            ConditionStatus::True,
            reason,
            failures.join("; "),
        ));
    }
    ModelServiceStatus {
        desired_replicas: desired,
        ready_replicas: ready,
        versions,
        replicas: Vec::new(),
        conditions,
        url: Some(url),
        observed_generation: generation,
        observed_restarts: None,
        // The reconcile fills these in from the rollout it drives.
        rollout: None,
        stable_version: None,
        rollout_state: None,
        rollout_command: None,
    }
}

/// The status of a service whose spec cannot be rendered: what was there,
/// with every condition saying why.
pub fn invalid(
    previous: Option<&ModelServiceStatus>,
    generation: Option<i64>,
    why: String,
) -> ModelServiceStatus {
    let mut status = previous.cloned().unwrap_or_default();
    status.conditions = vec![
        Condition::new("Ready", ConditionStatus::False, "InvalidSpec", why.clone()),
        Condition::new(
            "Progressing",
            ConditionStatus::False,
            "InvalidSpec",
            why.clone(),
        ),
        Condition::new("Degraded", ConditionStatus::True, "InvalidSpec", why),
    ];
    status.observed_generation = generation;
    status
}

/// Gives each condition its transition time: the previous one where its
/// status did not change, else `now`.
pub fn stamp_transitions(
    status: &mut ModelServiceStatus,
    previous: Option<&ModelServiceStatus>,
    now: &str,
) {
    for condition in &mut status.conditions {
        let before = previous
            .into_iter()
            .flat_map(|p| &p.conditions)
            .find(|c| c.type_ == condition.type_ && c.status == condition.status);
        condition.last_transition_time = Some(
            before
                .and_then(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| now.to_owned()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(weights: &[(&str, u32)]) -> ModelServiceSpec {
        let versions: Vec<_> = weights
            .iter()
            .map(|(v, w)| serde_json::json!({"version": v, "weight": w}))
            .collect();
        serde_json::from_value(
            serde_json::json!({"model": "m", "versions": versions, "replicas": 1}),
        )
        .expect("spec")
    }

    fn settled(n: u32) -> Workload {
        Workload {
            desired: n,
            replicas: n,
            updated: n,
            ready: n,
            observed: true,
            deadline_exceeded: false,
            replica_failure: None,
        }
    }

    fn condition<'a>(status: &'a ModelServiceStatus, type_: &str) -> &'a Condition {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .expect(type_)
    }

    #[test]
    fn a_settled_service_is_ready_and_neither_progressing_nor_degraded() {
        let s = observe(
            &spec(&[("1", 90), ("2", 10)]),
            Some(3),
            &[Some(settled(2)), Some(settled(1))],
            "u".into(),
        );
        assert_eq!((s.desired_replicas, s.ready_replicas), (3, 3));
        assert_eq!(condition(&s, "Ready").reason, "AllReplicasReady");
        assert_eq!(condition(&s, "Progressing").status, ConditionStatus::False);
        assert_eq!(condition(&s, "Progressing").reason, "RolloutComplete");
        assert_eq!(condition(&s, "Degraded").status, ConditionStatus::False);
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(s.versions[1].weight, 10);
    }

    #[test]
    fn a_missing_or_half_updated_workload_is_progressing_and_names_its_version() {
        let mut half = settled(2);
        half.updated = 1;
        half.replicas = 3;
        let s = observe(
            &spec(&[("1", 50), ("2", 50)]),
            Some(1),
            &[Some(half), None],
            "u".into(),
        );
        let progressing = condition(&s, "Progressing");
        assert_eq!(
            (progressing.status, progressing.reason.as_str()),
            (ConditionStatus::True, "RollingOut")
        );
        assert_eq!(progressing.message, "version 1, version 2 rolling out");
        assert_eq!(condition(&s, "Ready").status, ConditionStatus::False);
        assert_eq!(condition(&s, "Degraded").status, ConditionStatus::False);
    }

    #[test]
    fn a_pod_refused_by_a_quota_is_a_replica_failure_naming_the_version() {
        let why = "pods \"chat-1-x\" is forbidden: exceeded quota: autoglm-quota, requested: pods=1, used: pods=2, limited: pods=2";
        let refused = Workload {
            desired: 3,
            replicas: 2,
            updated: 2,
            ready: 2,
            observed: true,
            replica_failure: Some(why.to_owned()),
            ..Workload::default()
        };
        let status = observe(
            &spec(&[("1", 100)]),
            Some(1),
            &[Some(refused)],
            String::new(),
        );
        let failure = condition(&status, "ReplicaFailure");
        assert_eq!(failure.reason, "QuotaExceeded");
        assert_eq!(failure.message, format!("version 1: {why}"));
        let settled = observe(
            &spec(&[("1", 100)]),
            Some(1),
            &[Some(settled(1))],
            String::new(),
        );
        assert!(
            !settled
                .conditions
                .iter()
                .any(|c| c.type_ == "ReplicaFailure")
        );
    }

    #[test]
    fn pods_lost_after_a_rollout_degrade_and_a_deadline_stalls() {
        let mut short = settled(2);
        short.ready = 1;
        let s = observe(&spec(&[("1", 100)]), None, &[Some(short)], "u".into());
        assert_eq!(condition(&s, "Degraded").reason, "ReplicasUnavailable");
        assert_eq!(condition(&s, "Ready").reason, "ReplicasNotReady");

        let mut stuck = settled(2);
        stuck.updated = 0;
        stuck.deadline_exceeded = true;
        let s = observe(&spec(&[("1", 100)]), None, &[Some(stuck)], "u".into());
        assert_eq!(condition(&s, "Degraded").reason, "ProgressDeadlineExceeded");
        assert_eq!(condition(&s, "Progressing").status, ConditionStatus::False);
        assert_eq!(
            condition(&s, "Progressing").message,
            "version 1 made no progress in time"
        );
    }

    #[test]
    fn transition_times_move_only_when_a_status_flips() {
        let mut first = observe(&spec(&[("1", 100)]), None, &[None], "u".into());
        stamp_transitions(&mut first, None, "t1");
        let mut again = observe(&spec(&[("1", 100)]), None, &[None], "u".into());
        stamp_transitions(&mut again, Some(&first), "t2");
        assert_eq!(again, first, "nothing changed, nothing to write");
        let mut ready = observe(&spec(&[("1", 100)]), None, &[Some(settled(1))], "u".into());
        stamp_transitions(&mut ready, Some(&again), "t3");
        assert_eq!(
            condition(&ready, "Ready").last_transition_time.as_deref(),
            Some("t3")
        );
        assert_eq!(
            condition(&ready, "Degraded")
                .last_transition_time
                .as_deref(),
            Some("t1")
        );
    }

    #[test]
    fn an_invalid_spec_says_why_in_every_condition() {
        let s = invalid(None, Some(4), "weights sum to 90".into());
        assert!(
            s.conditions
                .iter()
                .all(|c| c.reason == "InvalidSpec" && c.message == "weights sum to 90")
        );
        assert_eq!(condition(&s, "Degraded").status, ConditionStatus::True);
    }
}
