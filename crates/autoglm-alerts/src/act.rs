//! What a change of an alert does, each in one write as `system:alerts`: a
//! firing alert opens its incident, queues its notifications and runs its
//! playbook's next step as a task (unless silenced, cooling down or over
//! its hourly limit); a resolved one resolves the incident and says so to
//! the receivers. The Alertmanager receiver in the console comes here too.

use std::collections::BTreeMap;

use autoglm_core::alert::notify::{fingerprint, zero_time};
use autoglm_core::alert::{
    AlertmanagerAlert, AlertmanagerPayload, PlaybookStep, ReadyPlaybook, TimelineEntry,
    TimelineKind,
};
use autoglm_core::audit::AuditEvent;
use autoglm_core::rollout::Event;
use autoglm_core::service::ModelServiceManifest;
use autoglm_store::alerts::{self, NewIncident};
use autoglm_store::changes::{self, Committed, Requester};
use autoglm_store::{Store, StoreError, Transaction, services, timestamp};
use chrono::{DateTime, Utc};

/// The evaluator's audit actor.
pub const ACTOR: &str = "system:alerts";

/// A firing or resolved alert, from a rule here or from an Alertmanager.
#[derive(Debug, Clone)]
pub struct AlertEvent {
    /// The tenant.
    pub tenant: String,
    /// The alert's labels (`alertname`, `service`, `version`, `severity`...).
    pub labels: BTreeMap<String, String>,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
    /// When it fired (or, resolved, when it had fired).
    pub fired_at: DateTime<Utc>,
    /// `autoglm` or `alertmanager`.
    pub source: &'static str,
    /// In words, for the timeline.
    pub message: String,
    /// The silence that holds it back, if any.
    pub silenced_by: Option<i64>,
    /// Webhooks to notify.
    pub receivers: Vec<String>,
    /// Its rule's playbook.
    pub playbook: Option<ReadyPlaybook>,
}

impl AlertEvent {
    fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }

    fn payload(&self, status: &str, ends_at: DateTime<Utc>, external_url: &str) -> String {
        let alert = AlertmanagerAlert {
            status: status.to_owned(),
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
            starts_at: self.fired_at,
            ends_at,
            generator_url: format!("{external_url}/ui/alerts"),
            fingerprint: fingerprint(&self.labels),
        };
        serde_json::to_string(&AlertmanagerPayload::single("autoglm", external_url, alert))
            .unwrap_or_default()
    }
}

fn entry(kind: TimelineKind, message: String, task_id: Option<i64>) -> TimelineEntry {
    TimelineEntry {
        at: Utc::now(),
        kind,
        message,
        actor: ACTOR.to_owned(),
        task_id,
    }
}

fn audit(tenant: &str, action: &str, alert: &AlertEvent) -> AuditEvent {
    AuditEvent {
        time: timestamp(Utc::now()),
        actor: ACTOR.to_owned(),
        tenant: tenant.to_owned(),
        action: format!("alerts.{action}"),
        target: format!(
            "alerts/{}/{}/{}",
            alert.label("alertname"),
            alert.label("service"),
            alert.label("version")
        ),
        request_id: String::new(),
        outcome: String::new(),
    }
}

/// What a firing did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fired {
    /// The incident (new or still open).
    pub incident: i64,
    /// The playbook's task, when a step started one.
    pub task: Option<i64>,
}

/// Opens the incident of a firing alert, queues its notifications and runs
/// its playbook's next step, in one write.
pub fn fire(store: &Store, alert: &AlertEvent, external_url: &str) -> autoglm_store::Result<Fired> {
    let fired = store.system_write(|tx| {
        let service = alert.label("service").to_owned();
        let (incident, new) = alerts::open_incident(
            tx,
            &alert.tenant,
            &NewIncident {
                rule: alert.label("alertname").to_owned(),
                service: service.clone(),
                version: alert.label("version").to_owned(),
                severity: alert.label("severity").to_owned(),
                labels: alert.labels.clone(),
                fingerprint: fingerprint(&alert.labels),
                source: alert.source.to_owned(),
                opened_at: alert.fired_at,
            },
            &alert.message,
        )?;
        if !new {
            return Ok(Some((
                Fired {
                    incident,
                    task: None,
                },
                audit(&alert.tenant, "refire", alert),
            )));
        }
        if let Some(silence) = alert.silenced_by {
            alerts::add_event(
                tx,
                incident,
                &entry(
                    TimelineKind::Silenced,
                    format!("silence {silence} holds back notifications and the playbook"),
                    None,
                ),
            )?;
            return Ok(Some((
                Fired {
                    incident,
                    task: None,
                },
                audit(&alert.tenant, "fire", alert),
            )));
        }
        let payload = alert.payload("firing", zero_time(), external_url);
        for url in &alert.receivers {
            alerts::enqueue_notification(tx, &alert.tenant, Some(incident), url, &payload)?;
        }
        let task = match &alert.playbook {
            Some(playbook) => run_playbook(tx, alert, playbook, incident, external_url)?,
            None => None,
        };
        Ok(Some((
            Fired { incident, task },
            audit(&alert.tenant, "fire", alert),
        )))
    })?;
    Ok(fired.unwrap_or_default())
}

/// Resolves the alert's incident (when one is open) and tells the receivers.
pub fn resolve(
    store: &Store,
    alert: &AlertEvent,
    at: DateTime<Utc>,
    external_url: &str,
) -> autoglm_store::Result<Option<i64>> {
    store.system_write(|tx| {
        let Some(id) = alerts::live_incident(tx, &alert.tenant, &fingerprint(&alert.labels))?
        else {
            return Ok(None);
        };
        alerts::resolve_incident(tx, &alert.tenant, id, at, ACTOR, &alert.message)?;
        if alert.silenced_by.is_none() {
            let payload = alert.payload("resolved", at, external_url);
            for url in &alert.receivers {
                alerts::enqueue_notification(tx, &alert.tenant, Some(id), url, &payload)?;
            }
        }
        Ok(Some((id, audit(&alert.tenant, "resolve", alert))))
    })
}

/// The playbook's next step for the alert's service, unless its cooldown or
/// hourly limit holds it back; the task it started, if any.
fn run_playbook(
    tx: &Transaction<'_>,
    alert: &AlertEvent,
    playbook: &ReadyPlaybook,
    incident: i64,
    external_url: &str,
) -> autoglm_store::Result<Option<i64>> {
    let (tenant, rule, service) = (
        &alert.tenant,
        alert.label("alertname"),
        alert.label("service"),
    );
    let now = Utc::now();
    let runs =
        alerts::playbook_runs_since(tx, tenant, rule, service, now - chrono::Duration::hours(1))?;
    let cooldown = chrono::Duration::from_std(playbook.cooldown).unwrap_or(chrono::Duration::MAX);
    let skip = |message: String| {
        alerts::add_event(
            tx,
            incident,
            &entry(TimelineKind::PlaybookSkipped, message, None),
        )
    };
    if let Some(last) = runs.first()
        && now - *last < cooldown
    {
        skip(format!(
            "cooling down: the playbook last ran for {service} at {}, less than {}s ago",
            timestamp(*last),
            playbook.cooldown.as_secs()
        ))?;
        return Ok(None);
    }
    if runs.len() >= playbook.max_per_hour as usize {
        skip(format!(
            "the playbook ran {} times for {service} in the last hour, its limit",
            runs.len()
        ))?;
        return Ok(None);
    }
    let step = &playbook.steps[runs.len().min(playbook.steps.len() - 1)];
    let by = Requester {
        actor: ACTOR.to_owned(),
        request_id: format!("incident-{incident}"),
    };
    let started = match step {
        PlaybookStep::Webhook { url } => {
            let payload = alert.payload("firing", zero_time(), external_url);
            alerts::enqueue_notification(tx, tenant, Some(incident), url, &payload)?;
            Ok(None)
        }
        PlaybookStep::Restart {} => {
            changes::commit_with_task(tx, tenant, service, true, &by, |tx, t| {
                services::restart_service(tx, t, service).map(Some)
            })
            .map(task_of)
        }
        PlaybookStep::ScaleOut { by: more, max } => {
            scale_out(tx, tenant, service, *more, *max, &by)
        }
        PlaybookStep::Rollback {} => rollback(tx, tenant, service, alert.label("version"), &by),
    };
    // A step the service refuses (autoscaled, at its cap, nothing to shift
    // to) is recorded and counts as a run, so that escalation moves on.
    let (task, message) = match started {
        Ok(task) => (
            task,
            match task {
                Some(id) => format!("{} of {service} started as task {id}", step.name()),
                None => format!("{} sent", step.name()),
            },
        ),
        Err(e @ (StoreError::Rejected(..) | StoreError::Invalid(_))) => {
            skip(format!("{} of {service} refused: {e}", step.name()))?;
            alerts::record_playbook_run(
                tx,
                tenant,
                rule,
                service,
                step.name(),
                None,
                Some(incident),
            )?;
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    alerts::record_playbook_run(tx, tenant, rule, service, step.name(), task, Some(incident))?;
    alerts::add_event(
        tx,
        incident,
        &entry(TimelineKind::PlaybookStarted, message, task),
    )?;
    Ok(task)
}

fn task_of(committed: Committed) -> Option<i64> {
    match committed {
        Committed::Task(task) => Some(task.id),
        Committed::Unchanged(_) => None,
    }
}

fn scale_out(
    tx: &Transaction<'_>,
    tenant: &str,
    service: &str,
    more: u32,
    max: u32,
    by: &Requester,
) -> autoglm_store::Result<Option<i64>> {
    let stored = services::find_service(tx, tenant, service)?.ok_or_else(|| gone(service))?;
    let now = stored.manifest.spec.replica_bounds().initial;
    if now >= max {
        return Err(StoreError::rejected(
            autoglm_core::error::ErrorCode::InvalidTransition,
            format!("{now} replicas, already at the playbook's cap of {max}"),
        ));
    }
    let wanted = now.saturating_add(more).min(max);
    changes::commit_with_task(tx, tenant, service, false, by, |tx, t| {
        services::scale_service(tx, t, service, wanted).map(Some)
    })
    .map(task_of)
}

fn gone(service: &str) -> StoreError {
    StoreError::rejected(
        autoglm_core::error::ErrorCode::NotFound,
        format!("service {service:?} does not exist"),
    )
}

/// Aborts the running rollout; without one, moves `version`'s weight to the
/// service's other version with the most.
fn rollback(
    tx: &Transaction<'_>,
    tenant: &str,
    service: &str,
    version: &str,
    by: &Requester,
) -> autoglm_store::Result<Option<i64>> {
    if services::rollout(tx, tenant, service)?.is_some_and(|r| !r.is_final()) {
        let (_, _, task) = changes::command_rollout(tx, tenant, service, Event::Abort, by)?;
        return Ok(task.map(|t| t.id));
    }
    let stored = services::find_service(tx, tenant, service)?.ok_or_else(|| gone(service))?;
    let mut manifest: ModelServiceManifest = stored.manifest.clone();
    let versions = &mut manifest.spec.versions;
    let Some(from) = versions
        .iter()
        .position(|v| v.version == version && v.weight > 0)
    else {
        return Err(StoreError::rejected(
            autoglm_core::error::ErrorCode::InvalidTransition,
            format!("version {version} takes no traffic; nothing to shift"),
        ));
    };
    let Some(to) = (0..versions.len())
        .filter(|i| *i != from)
        .max_by_key(|i| versions[*i].weight)
    else {
        return Err(StoreError::rejected(
            autoglm_core::error::ErrorCode::InvalidTransition,
            format!("version {version} is the service's only version; nothing to shift to"),
        ));
    };
    versions[to].weight += versions[from].weight;
    versions[from].weight = 0;
    manifest.metadata.generation = None;
    changes::commit_with_task(tx, tenant, service, false, by, |tx, t| {
        services::update_service(tx, t, &manifest).map(Some)
    })
    .map(task_of)
}
