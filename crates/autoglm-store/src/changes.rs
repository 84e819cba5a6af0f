//! A change to a service with the task that carries it to its platform, in
//! the caller's write: the one way a user's request (the console) and a
//! playbook step (the alert evaluator) change a service, so both queue the
//! same task for the same change.

use crate::Transaction;
use autoglm_core::error::ErrorCode;
use autoglm_core::rollout::{Event, ReadyStep, Rollout};
use autoglm_core::task::{ServiceChange, Task, TaskKind, kind_of_change};

use crate::tasks::{self, NewTask};
use crate::{Result, StoreError, StoredService, services, timestamp};

/// What a committed change started.
#[derive(Debug, Clone)]
pub enum Committed {
    /// The task that takes the change to the platform.
    Task(Box<Task>),
    /// Nothing changed: the service as it is.
    Unchanged(Box<StoredService>),
}

/// Who asks, for the task and its audit.
#[derive(Debug, Clone)]
pub struct Requester {
    /// The audit actor.
    pub actor: String,
    /// The request id (or the incident that asked).
    pub request_id: String,
}

/// Applies `change` to service `name` and queues the task that carries it
/// to the platform. `change` returns the service after the change (`None`:
/// deleted); `restart` says the change is a restart, which the spec alone
/// does not show.
pub fn commit_with_task(
    tx: &Transaction<'_>,
    tenant: &str,
    name: &str,
    restart: bool,
    by: &Requester,
    change: impl FnOnce(&Transaction<'_>, &str) -> Result<Option<StoredService>>,
) -> Result<Committed> {
    let before = services::find_service(tx, tenant, name)?;
    let rollout_before = match &before {
        Some(_) => services::rollout(tx, tenant, name)?,
        None => None,
    };
    let after = change(tx, tenant)?;
    let rollout_after = match &after {
        Some(_) => services::rollout(tx, tenant, name)?,
        None => None,
    };
    let rollout_started = rollout_after != rollout_before
        && rollout_after
            .as_ref()
            .is_some_and(|r| !r.is_final() && r.step == 0);
    if let (Some(b), Some(a)) = (&before, &after)
        && b.updated_at == a.updated_at
    {
        return Ok(Committed::Unchanged(Box::new(a.clone())));
    }
    let kind = if restart {
        TaskKind::Restart
    } else if rollout_started {
        TaskKind::RolloutStep
    } else {
        kind_of_change(
            before.as_ref().map(|b| &b.manifest.spec),
            after.as_ref().map(|a| &a.manifest.spec),
        )
    };
    let change = ServiceChange {
        generation: after.as_ref().map(StoredService::generation),
        restarts: after.as_ref().map_or(0, |a| a.restarts),
        committed_at: after.as_ref().map(|a| timestamp(a.updated_at)),
        before: before.map(|b| b.manifest),
    };
    let task = tasks::enqueue(
        tx,
        &NewTask {
            tenant: tenant.to_owned(),
            kind,
            target: format!("services/{name}"),
            change,
            created_by: by.actor.clone(),
            request_id: by.request_id.clone(),
        },
    )?;
    Ok(Committed::Task(Box::new(task)))
}

/// The steps of a stored service's rollout.
pub fn rollout_steps(stored: &StoredService) -> Vec<ReadyStep> {
    stored
        .manifest
        .spec
        .rollout
        .as_ref()
        .and_then(|r| r.ready().ok())
        .unwrap_or_default()
}

/// Why a service has no rollout to command.
pub fn no_rollout(name: &str) -> StoreError {
    StoreError::rejected(
        ErrorCode::NotFound,
        format!(
            "service {name:?} has no rollout; one starts when a service with spec.rollout changes its version"
        ),
    )
}

/// Applies a user's (or a playbook's) `event` to the running rollout of
/// service `name`, saves its new state with the split it asks for, and
/// makes sure a task carries it on: an abort queues a rollback, which
/// outranks every other task; any other command a `rolloutStep` task when
/// none is queued or running. Returns the rollout, its steps and the task
/// queued.
pub fn command_rollout(
    tx: &Transaction<'_>,
    tenant: &str,
    name: &str,
    event: Event,
    by: &Requester,
) -> Result<(Rollout, Vec<ReadyStep>, Option<Task>)> {
    let stored = services::find_service(tx, tenant, name)?.ok_or_else(|| {
        StoreError::rejected(
            ErrorCode::NotFound,
            format!("service {name:?} does not exist"),
        )
    })?;
    let mut rollout = services::rollout(tx, tenant, name)?.ok_or_else(|| no_rollout(name))?;
    if rollout.is_final() {
        return Err(StoreError::rejected(
            ErrorCode::InvalidTransition,
            format!(
                "the rollout of version {} is over ({:?}: {}); a new one starts with the next version",
                rollout.canary, rollout.phase, rollout.message
            ),
        ));
    }
    let steps = rollout_steps(&stored);
    let kind = if event == Event::Abort {
        TaskKind::Rollback
    } else {
        TaskKind::RolloutStep
    };
    rollout.on(&steps, event, chrono::Utc::now());
    services::save_rollout(tx, tenant, name, &rollout)?;
    let target = format!("services/{name}");
    let mut task = None;
    if kind == TaskKind::Rollback || !tasks::has_active(tx, tenant, &target, kind)? {
        task = Some(tasks::enqueue(
            tx,
            &NewTask {
                tenant: tenant.to_owned(),
                kind,
                target,
                change: ServiceChange::default(),
                created_by: by.actor.clone(),
                request_id: by.request_id.clone(),
            },
        )?);
    }
    Ok((rollout, steps, task))
}
