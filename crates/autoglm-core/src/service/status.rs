//! What the platform reports about a ModelService: replicas per version, each
//! replica's state, and Kubernetes-style conditions.
//!
//! Written only by the platform, so unknown fields are tolerated here: an
//! older client can still read a newer platform's status.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The observed state of a ModelService.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ModelServiceStatus {
    /// How many replicas the platform wants now, all versions together.
    pub desired_replicas: u32,
    /// How many of them are ready.
    pub ready_replicas: u32,
    /// Per version of the traffic split.
    pub versions: Vec<VersionStatus>,
    /// Every replica, for the local platform; empty on Kubernetes (see its pods).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<ReplicaStatus>,
    /// `Ready` and friends.
    pub conditions: Vec<Condition>,
    /// Where clients call the service, e.g. `http://gateway/v1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The spec generation this status describes (Kubernetes only; the
    /// console's answers carry `metadata.generation` beside it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The restart count this status describes (the local platform; on
    /// Kubernetes a restart shows as a rollout of the generation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_restarts: Option<i64>,
    /// The service's rollout, while it runs and after it ended, as the
    /// console keeps it (`GET .../rollout` has every measurement).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,
    /// Kubernetes: the version that last had all traffic, which a rollout
    /// the operator drives starts from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stable_version: Option<String>,
    /// Kubernetes: the state of the rollout the operator drives, every
    /// measurement included (the local platform keeps it in its store).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout_state: Option<crate::rollout::Rollout>,
    /// Kubernetes: the last `autoglm.io/rollout-command` the operator
    /// carried out (a value is carried out once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout_command: Option<String>,
}

/// A rollout in a service's status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct RolloutStatus {
    /// `Progressing`, `Paused`, `Healthy` or `Degraded`.
    pub phase: String,
    /// The step running now.
    pub step: u32,
    /// The canary's share of traffic, in percent.
    pub weight: u32,
    /// The version that had all traffic before.
    pub stable: String,
    /// The version rolling out.
    pub canary: String,
    /// Why it waits, or how it ended.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The last measurement, in words: `errors = 0.02 (stable 0.01): Successful`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_analysis: Option<String>,
}

impl ModelServiceStatus {
    /// A status with no replica running: each version of `spec` listed with
    /// its weight and none ready, and one `Ready` condition.
    pub fn without_replicas(
        spec: &super::ModelServiceSpec,
        desired_replicas: u32,
        ready: Condition,
    ) -> ModelServiceStatus {
        ModelServiceStatus {
            desired_replicas,
            ready_replicas: 0,
            versions: spec
                .versions
                .iter()
                .map(|v| VersionStatus {
                    version: v.version.clone(),
                    weight: v.weight,
                    replicas: 0,
                    ready_replicas: 0,
                })
                .collect(),
            replicas: Vec::new(),
            conditions: vec![ready],
            url: None,
            observed_generation: None,
            observed_restarts: None,
            rollout: None,
            stable_version: None,
            rollout_state: None,
            rollout_command: None,
        }
    }
}

/// Replicas of one version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct VersionStatus {
    /// The model version.
    pub version: String,
    /// Its share of traffic, in percent.
    pub weight: u32,
    /// Replicas running or starting.
    pub replicas: u32,
    /// Replicas ready to serve.
    pub ready_replicas: u32,
}

/// Where one replica is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReplicaState {
    /// Started, not yet answering its ready check.
    #[default]
    Starting,
    /// Serving.
    Ready,
    /// Exited or stopped answering; it may be restarted.
    Failed,
    /// Stopped on purpose (scaled down, service deleted).
    Stopped,
}

/// One replica, as the local platform runs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ReplicaStatus {
    /// Stable within the service, e.g. `chat-3-0`.
    pub id: String,
    /// The model version it serves.
    pub version: String,
    /// Where it is in its life.
    pub state: ReplicaState,
    /// The port it listens on.
    pub port: u16,
    /// The process id, while it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// How many times it was restarted after failing.
    pub restarts: u32,
    /// How the last run ended, e.g. `exit status 1` or `signal 9`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<String>,
}

/// The value of a condition, spelled as Kubernetes does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// It does not.
    False,
    /// Not known yet.
    #[default]
    Unknown,
}

/// A Kubernetes-style condition, e.g. `{type: Ready, status: "True", reason: AllReplicasReady}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct Condition {
    /// What the condition is about: `Ready`, `Progressing`...
    #[serde(rename = "type")]
    pub type_: String,
    /// Whether it holds.
    pub status: ConditionStatus,
    /// A CamelCase word for machines.
    pub reason: String,
    /// A sentence for people.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When `status` last changed, RFC 3339 (Kubernetes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

impl Condition {
    /// A condition of `type_` without a transition time.
    pub fn new(type_: &str, status: ConditionStatus, reason: &str, message: String) -> Condition {
        Condition {
            type_: type_.to_owned(),
            status,
            reason: reason.to_owned(),
            message,
            last_transition_time: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_wire_shape() {
        let status = ModelServiceStatus {
            desired_replicas: 2,
            ready_replicas: 1,
            versions: vec![VersionStatus {
                version: "3".into(),
                weight: 100,
                replicas: 2,
                ready_replicas: 1,
            }],
            replicas: vec![ReplicaStatus {
                id: "chat-3-0".into(),
                version: "3".into(),
                state: ReplicaState::Failed,
                port: 9000,
                pid: None,
                restarts: 2,
                last_exit: Some("exit status 1".into()),
            }],
            conditions: vec![Condition::new(
                "Ready",
                ConditionStatus::False,
                "ReplicasStarting",
                String::new(),
            )],
            url: None,
            observed_generation: None,
            observed_restarts: None,
            rollout: None,
            stable_version: None,
            rollout_state: None,
            rollout_command: None,
        };
        let json = serde_json::to_value(&status).expect("serialise");
        assert_eq!(json["desiredReplicas"], 2);
        assert_eq!(json["versions"][0]["readyReplicas"], 1);
        assert_eq!(json["replicas"][0]["state"], "failed");
        assert_eq!(json["replicas"][0]["lastExit"], "exit status 1");
        assert_eq!(json["conditions"][0]["type"], "Ready");
        assert_eq!(json["conditions"][0]["status"], "False");
        let back: ModelServiceStatus = serde_json::from_value(json).expect("parse");
        assert_eq!(back, status);
    }
}
