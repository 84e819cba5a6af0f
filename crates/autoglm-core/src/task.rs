//! Operations as durable tasks: what a task is on the wire, and the pure
//! rules the task scheduler follows (which kind outranks which, how long a
//! kind may run, how retries back off, which state may follow which, and
//! when a service change has reached its platform).
//!
//! A write that starts work (a service created, changed, scaled, restarted
//! or deleted) commits its desired state and its task in one transaction;
//! the task then takes the change to the platform and follows it there until
//! it is rolled out, failed or cancelled.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::service::{ConditionStatus, ModelServiceManifest, ModelServiceSpec, ModelServiceStatus};

/// What a task does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum TaskKind {
    /// A new service goes onto its platform.
    Deploy,
    /// A service's spec changed (versions, runtime, resources...).
    Update,
    /// A service's replica count changed.
    Scale,
    /// A service's replicas are replaced, one ready replica at a time.
    Restart,
    /// Only the weights of a service's versions changed.
    TrafficSplit,
    /// A service leaves its platform.
    Delete,
    /// A rollout's steps, run until it is done, aborted or waits for a user.
    RolloutStep,
    /// A rollout aborted by a user: all traffic back on the stable version.
    Rollback,
    /// A dataset run through a version, its measurements kept in the registry.
    Evaluate,
}

impl TaskKind {
    /// Every kind, in the order the docs list them.
    pub const ALL: &'static [TaskKind] = &[
        TaskKind::Deploy,
        TaskKind::Update,
        TaskKind::Scale,
        TaskKind::Restart,
        TaskKind::TrafficSplit,
        TaskKind::Delete,
        TaskKind::RolloutStep,
        TaskKind::Rollback,
        TaskKind::Evaluate,
    ];

    /// The name on the wire and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Deploy => "deploy",
            TaskKind::Update => "update",
            TaskKind::Scale => "scale",
            TaskKind::Restart => "restart",
            TaskKind::TrafficSplit => "trafficSplit",
            TaskKind::Delete => "delete",
            TaskKind::RolloutStep => "rolloutStep",
            TaskKind::Rollback => "rollback",
            TaskKind::Evaluate => "evaluate",
        }
    }

    /// The kind named `name`, as [`TaskKind::as_str`] spells it.
    pub fn parse(name: &str) -> Option<TaskKind> {
        TaskKind::ALL.iter().copied().find(|k| k.as_str() == name)
    }

    /// Lower runs first. A rollback first of all; moving traffic and taking
    /// things away come before bringing new things up: they are quick, and
    /// they are what an operator reaches for when something is wrong.
    pub fn priority(self) -> i64 {
        match self {
            TaskKind::Rollback => 0,
            TaskKind::TrafficSplit | TaskKind::Delete => 10,
            TaskKind::Scale | TaskKind::Restart | TaskKind::RolloutStep => 20,
            TaskKind::Update | TaskKind::Deploy => 30,
            // A measurement waits for the changes it would measure.
            TaskKind::Evaluate => 40,
        }
    }

    /// How long one attempt may run before it fails with `timeout`: long
    /// enough for a model to download and load, short enough that a stuck
    /// replica does not hold its service's queue for good.
    pub fn timeout(self) -> Duration {
        match self {
            TaskKind::Deploy | TaskKind::Update | TaskKind::Restart => Duration::from_secs(15 * 60),
            TaskKind::Scale => Duration::from_secs(10 * 60),
            TaskKind::TrafficSplit | TaskKind::Delete | TaskKind::Rollback => {
                Duration::from_secs(5 * 60)
            }
            // Timed pauses last up to a day; a rollout that waits for a user
            // ends its task and gets a new one when the user acts.
            TaskKind::RolloutStep => Duration::from_secs(25 * 3600),
            // Ten thousand lines of generation at a few seconds each.
            TaskKind::Evaluate => Duration::from_secs(3600),
        }
    }
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum TaskState {
    /// Queued, or waiting for its next attempt.
    Pending,
    /// A worker runs it.
    Running,
    /// Done.
    Succeeded,
    /// Gave up: `error` says why.
    Failed,
    /// Cancelled before it finished.
    Cancelled,
}

impl TaskState {
    /// Every state.
    pub const ALL: &'static [TaskState] = &[
        TaskState::Pending,
        TaskState::Running,
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::Cancelled,
    ];

    /// The name on the wire and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Running => "running",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
        }
    }

    /// The state named `name`.
    pub fn parse(name: &str) -> Option<TaskState> {
        TaskState::ALL.iter().copied().find(|s| s.as_str() == name)
    }

    /// No state follows this one.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskState::Succeeded | TaskState::Failed | TaskState::Cancelled
        )
    }

    /// Whether a task may go from `self` to `next`: pending to running or
    /// cancelled; running to any final state, or back to pending (a retry,
    /// or a task resumed after a restart).
    pub fn may_become(self, next: TaskState) -> bool {
        use TaskState::*;
        matches!(
            (self, next),
            (Pending, Running | Cancelled) | (Running, Pending | Succeeded | Failed | Cancelled)
        )
    }
}

/// Why a task failed: a stable code and words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TaskError {
    /// `timeout`, `refused`, `platform`, `interrupted` or `internal`.
    pub code: String,
    /// What happened, in words.
    pub message: String,
    /// Whether another attempt may succeed (a platform that could not be
    /// reached); a refusal or a timeout is not retried.
    #[serde(skip)]
    pub retryable: bool,
}

impl TaskError {
    /// An attempt ran out of its kind's time.
    pub fn timeout(limit: Duration) -> TaskError {
        TaskError::new(
            "timeout",
            format!("the attempt did not finish within {} s", limit.as_secs()),
        )
    }

    /// The platform will not run what was asked (a reason such as
    /// `NeedsKubernetes`): only a new change helps.
    pub fn refused(reason: &str, message: &str) -> TaskError {
        TaskError::new("refused", format!("{reason}: {message}"))
    }

    /// A failure worth another attempt.
    pub fn transient(message: impl Into<String>) -> TaskError {
        TaskError {
            retryable: true,
            ..TaskError::new("platform", message)
        }
    }

    /// A failure of `code` that is not retried.
    pub fn new(code: &str, message: impl Into<String>) -> TaskError {
        TaskError {
            code: code.to_owned(),
            message: message.into(),
            retryable: false,
        }
    }
}

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// The kind of task a committed change of a service's spec is: `before`
/// and `after` are the spec before and after (`None`: no service).
/// Moving weights between the same versions is a traffic split, changing
/// the replica count alone is a scale, anything else an update.
pub fn kind_of_change(
    before: Option<&ModelServiceSpec>,
    after: Option<&ModelServiceSpec>,
) -> TaskKind {
    let (Some(before), Some(after)) = (before, after) else {
        return if after.is_some() {
            TaskKind::Deploy
        } else {
            TaskKind::Delete
        };
    };
    let same_versions = before.versions.len() == after.versions.len()
        && before
            .versions
            .iter()
            .zip(&after.versions)
            .all(|(b, a)| b.version == a.version);
    let weights_back = ModelServiceSpec {
        versions: before.versions.clone(),
        ..after.clone()
    };
    if before != after && same_versions && weights_back == *before {
        return TaskKind::TrafficSplit;
    }
    let replicas_back = ModelServiceSpec {
        replicas: before.replicas,
        ..after.clone()
    };
    if before.replicas != after.replicas && replicas_back == *before {
        return TaskKind::Scale;
    }
    TaskKind::Update
}

/// How far a task got.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TaskProgress {
    /// 0 to 100.
    pub percent: u8,
    /// What it is doing, in words.
    pub message: String,
}

/// What a service task works from, kept with it: the change it carries to
/// the platform, and what the service was before, so that a cancel can put
/// it back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceChange {
    /// The service's generation after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Its restart count after the change.
    #[serde(default)]
    pub restarts: i64,
    /// When the change was committed (the service's `updatedAt`): a cancel
    /// restores `before` only while the service is still as this change left it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed_at: Option<String>,
    /// The service before the change; `None` when the change created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<ModelServiceManifest>,
}

/// A task, as `GET /api/v1/tasks/{id}` answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    /// Unique, increasing.
    pub id: i64,
    /// The tenant it acts in.
    pub tenant: String,
    /// What it does.
    pub kind: TaskKind,
    /// What it acts on, e.g. `services/chat`.
    pub target: String,
    /// Where it is.
    pub state: TaskState,
    /// Lower runs first.
    pub priority: i64,
    /// Attempts started so far.
    pub attempt: u32,
    /// The most attempts it gets.
    pub max_attempts: u32,
    /// How far it got.
    pub progress: TaskProgress,
    /// A cancel was asked for and is being carried out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancel_requested: bool,
    /// The change it carries.
    pub change: ServiceChange,
    /// What it produced, when it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// Why it failed (or why its last attempt failed, while it waits to retry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<TaskError>,
    /// Who asked for it (`user:NAME`, `key:ID`).
    pub created_by: String,
    /// The request that made it.
    pub request_id: String,
    /// RFC 3339.
    pub created_at: String,
    /// When its next attempt may start.
    pub not_before: String,
    /// When its last attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When it reached its final state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

/// Attempts a task gets unless its kind says otherwise.
pub const MAX_ATTEMPTS: u32 = 5;
/// The wait before the second attempt.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// The longest wait between attempts.
pub const BACKOFF_CAP: Duration = Duration::from_secs(60);

/// How long to wait before attempt `attempt + 1` after attempt `attempt`
/// (from 1) failed: exponential from [`BACKOFF_BASE`], capped at
/// [`BACKOFF_CAP`], with "equal jitter" (half fixed, half drawn from
/// `jitter` in [0, 1)) so that tasks failing together do not retry together.
pub fn backoff(attempt: u32, jitter: f64) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let ceiling = exp.min(BACKOFF_CAP);
    let half = ceiling / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

/// Ready reasons with which a platform says it will not run a service as
/// it is: waiting does not help, a new change does.
pub const REFUSAL_REASONS: &[&str] = &[
    "VersionMissing",
    "InvalidRuntime",
    "NeedsKubernetes",
    "KubernetesRefused",
    "InvalidSpec",
    "ProgressDeadlineExceeded",
];

/// Where a service change stands on its platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    /// Every replica runs the change and is ready (or none is wanted).
    Done,
    /// Still on its way.
    Working(TaskProgress),
    /// The platform refused it.
    Refused(TaskError),
}

/// Judges a platform's `status` of a service against the change a task
/// carries: the platform must have seen the change's generation and restart
/// (where it reports them), finished rolling it out, and have every wanted
/// replica ready.
pub fn judge(change: &ServiceChange, status: &ModelServiceStatus) -> Rollout {
    let condition = |kind: &str| status.conditions.iter().find(|c| c.type_ == kind);
    for c in status.conditions.iter() {
        if c.status != ConditionStatus::True && REFUSAL_REASONS.contains(&c.reason.as_str()) {
            return Rollout::Refused(TaskError::refused(&c.reason, &c.message));
        }
    }
    let seen_generation = match (change.generation, status.observed_generation) {
        (Some(wanted), Some(seen)) => seen >= wanted,
        _ => true,
    };
    let seen_restart = status
        .observed_restarts
        .is_none_or(|seen| seen >= change.restarts);
    let percent = if status.desired_replicas == 0 {
        100
    } else {
        (u64::from(status.ready_replicas.min(status.desired_replicas)) * 100
            / u64::from(status.desired_replicas)) as u8
    };
    let ready = format!(
        "{} of {} replicas ready",
        status.ready_replicas, status.desired_replicas
    );
    if !seen_generation || !seen_restart {
        return Rollout::Working(TaskProgress {
            percent: 0,
            message: "waiting for the platform to take the change up".to_owned(),
        });
    }
    let rolling = condition("Progressing").is_some_and(|c| c.reason == "RollingOut");
    let ready_now = condition("Ready").is_some_and(|c| c.status == ConditionStatus::True);
    if ready_now && !rolling {
        return Rollout::Done;
    }
    Rollout::Working(TaskProgress {
        // Never 100 before it is done.
        percent: percent.min(99),
        message: if rolling {
            format!("rolling out: {ready}")
        } else {
            ready
        },
    })
}

#[cfg(test)]
mod tests;
