//! Alerts inside autoglm, so the embedded default has them without a
//! Prometheus. One loop (`Engine::run`) evaluates every rule twice a second
//! over the gateway's per-version traffic history, the platform's replicas
//! and the gateway's queue (`round.rs`, pure), and writes what changed
//! (`act.rs`: incidents, notifications, playbook tasks); a second
//! (`notifier.rs`) delivers notifications with retries and keeps the dead
//! letters, so the evaluator never waits on a receiver.

pub mod act;
mod notifier;
pub mod round;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use autoglm_contract::{Demand, ServicePlatform, TrafficHistory};
use autoglm_core::alert::{
    ActiveAlert, ReadyRule, Silence, TimelineEntry, TimelineKind, Transition,
};
use autoglm_core::task::TaskState;
use autoglm_core::traffic::INTERVAL_SECONDS;
use autoglm_store::{ServiceFilter, Store, StoredService};
use autoglm_tasks::Tasks;
use chrono::Utc;
use parking_lot::RwLock;
use tokio::sync::Notify;

use crate::act::AlertEvent;
use crate::round::{Change, Series, SeriesKey, ServiceSample, VersionSample};

/// How often every rule is evaluated: twice a second, so that an alert
/// fires within a second of its condition holding for its `for`.
pub const EVALUATION_INTERVAL: Duration = Duration::from_millis(500);

/// What the engine reads and whom it tells.
#[derive(Clone, Debug)]
pub struct Parts {
    /// The store.
    pub store: Arc<Store>,
    /// The gateway's traffic, where one runs in this process.
    pub history: Arc<dyn TrafficHistory>,
    /// The platform's status of each service.
    pub platform: Arc<dyn ServicePlatform>,
    /// The gateway's waiting requests, where one runs in this process.
    pub demand: Option<Arc<Demand>>,
    /// The task scheduler, woken when a playbook queues a task.
    pub tasks: Tasks,
    /// The console's address, for links in notifications.
    pub external_url: String,
}

/// The series that are pending or firing now, for the API and the pages.
#[derive(Debug, Clone, Default)]
pub struct Board {
    active: Arc<RwLock<Vec<(String, ActiveAlert)>>>,
    notify: Arc<Notify>,
}

impl Board {
    /// The tenant's pending and firing series.
    pub fn active(&self, tenant: &str) -> Vec<ActiveAlert> {
        self.active
            .read()
            .iter()
            .filter(|(t, _)| t == tenant)
            .map(|(_, a)| a.clone())
            .collect()
    }

    /// Wakes the notifier: a write queued a notification.
    pub fn notification_queued(&self) {
        self.notify.notify_one();
    }
}

/// The evaluator and its notifier.
#[derive(Debug)]
pub struct Engine {
    parts: Parts,
    board: Board,
    memory: Memory,
}

/// What a round keeps for the next: the series, and the rules as last read.
#[derive(Debug, Default)]
struct Memory {
    series: Series,
    rules: Rules,
}

/// The stored rules, checked, re-read only when the table changed: reading
/// and checking 1,000 rules costs more than evaluating them.
#[derive(Debug, Default)]
pub struct Rules {
    stamp: Option<autoglm_store::alerts::RulesStamp>,
    ready: Vec<(String, ReadyRule)>,
}

impl Rules {
    /// Every rule that checks, with its tenant, read again if the table
    /// changed since the last call; a stored rule that no longer checks (a
    /// newer autoglm may have written it) is left out with a warning.
    pub fn refresh(&mut self, store: &Store) -> autoglm_store::Result<&[(String, ReadyRule)]> {
        let stamp = store.alert_rules_stamp()?;
        if self.stamp.as_ref() != Some(&stamp) {
            self.ready = store
                .alert_rules(None)?
                .into_iter()
                .filter_map(|s| match s.rule.ready() {
                    Ok(ready) => Some((s.tenant, ready)),
                    Err(errors) => {
                        tracing::warn!(rule = %s.rule.name, ?errors, "alerts: a stored rule does not check");
                        None
                    }
                })
                .collect();
            self.stamp = Some(stamp);
        }
        Ok(&self.ready)
    }
}

impl Engine {
    /// An engine that shows its state on `board`.
    pub fn new(parts: Parts, board: Board) -> Engine {
        Engine {
            parts,
            board,
            memory: Memory::default(),
        }
    }

    /// Runs the evaluator and the notifier until the task is dropped.
    pub async fn run(mut self) {
        let notifier = tokio::spawn(notifier::run(
            self.parts.store.clone(),
            self.board.notify.clone(),
        ));
        let _stop_notifier = AbortOnDrop(notifier);
        if let Err(e) = self.resume() {
            tracing::warn!(error = %e, "alerts: could not read the incidents left open");
        }
        let mut tick = tokio::time::interval(EVALUATION_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // The next tick, or sooner when a pending series is due to fire.
            let due = self.memory.series.next_due().map(|at| {
                // A little after, so that the round's clock has passed it.
                let wait = (at - Utc::now()).to_std().unwrap_or_default();
                tokio::time::Instant::now() + wait + Duration::from_millis(5)
            });
            match due {
                Some(due) => {
                    tokio::select! {
                        _ = tick.tick() => {}
                        () = tokio::time::sleep_until(due) => {}
                    }
                }
                None => {
                    tick.tick().await;
                }
            }
            // The round reads the store and writes what changed: blocking work.
            let parts = self.parts.clone();
            let board = self.board.clone();
            let mut memory = std::mem::take(&mut self.memory);
            let result = tokio::task::spawn_blocking(move || {
                let r = evaluate(&parts, &mut memory, &board);
                (memory, r)
            })
            .await;
            match result {
                Ok((memory, outcome)) => {
                    self.memory = memory;
                    if let Err(e) = outcome {
                        tracing::warn!(error = %e, "alerts: an evaluation round failed");
                    }
                }
                Err(e) => tracing::error!(error = %e, "alerts: an evaluation round panicked"),
            }
        }
    }

    /// Seeds the series of incidents an earlier run left open as firing,
    /// so that each resolves when its condition no longer holds.
    fn resume(&mut self) -> autoglm_store::Result<()> {
        for (tenant, incident) in self.parts.store.live_incidents()? {
            if incident.source != "autoglm" {
                continue;
            }
            self.memory.series.resume_firing(
                SeriesKey {
                    tenant,
                    rule: incident.rule.clone(),
                    service: incident.service.clone(),
                    version: incident.version.clone(),
                },
                incident.opened_at,
                incident.labels.clone(),
            );
        }
        Ok(())
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the services that `rules` watch look like now: a rule naming a
/// service reads that one, a rule naming none every service of its tenant;
/// traffic as far back as the longest window.
pub fn samples(
    parts: &Parts,
    rules: &[(String, ReadyRule)],
) -> autoglm_store::Result<Vec<ServiceSample>> {
    let longest = rules
        .iter()
        .map(|(_, r)| r.window)
        .max()
        .unwrap_or_default();
    let intervals = (longest.as_secs() / INTERVAL_SECONDS) as usize + 1;
    let mut every: BTreeSet<&str> = BTreeSet::new();
    let mut named: BTreeSet<(&str, &str)> = BTreeSet::new();
    for (tenant, rule) in rules {
        match &rule.service {
            None => {
                every.insert(tenant);
            }
            Some(service) => {
                named.insert((tenant, service));
            }
        }
    }
    let mut stored: Vec<(String, StoredService)> = Vec::new();
    for tenant in &every {
        let services = parts.store.list_services(&ServiceFilter {
            tenant: (*tenant).to_owned(),
            limit: 10_000,
            ..ServiceFilter::default()
        })?;
        stored.extend(services.into_iter().map(|s| ((*tenant).to_owned(), s)));
    }
    for (tenant, service) in named.into_iter().filter(|(t, _)| !every.contains(t)) {
        match parts.store.service(tenant, service) {
            Ok(s) => stored.push((tenant.to_owned(), s)),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(stored
        .into_iter()
        .map(|(tenant, s)| sample(parts, tenant, &s, intervals))
        .collect())
}

fn sample(
    parts: &Parts,
    tenant: String,
    stored: &StoredService,
    intervals: usize,
) -> ServiceSample {
    let name = stored.name().to_owned();
    let mut traffic = parts
        .history
        .traffic(&tenant, &name, intervals)
        .map(|t| t.versions)
        .unwrap_or_default();
    let status = parts.platform.status(&tenant, stored);
    let fixed = stored.manifest.spec.replicas;
    let versions = stored
        .manifest
        .spec
        .versions
        .iter()
        .map(|v| {
            let mut sample = VersionSample {
                version: v.version.clone(),
                weight: v.weight,
                ..VersionSample::default()
            };
            if let Some(i) = traffic.iter().position(|x| x.version == v.version) {
                sample.traffic = traffic.swap_remove(i).points;
            }
            if let Some(s) = status
                .as_ref()
                .and_then(|s| s.versions.iter().find(|x| x.version == v.version))
            {
                // A surge (a rolling restart's extra replica) is not
                // missing; an autoscaled version, or one kept warm at
                // weight 0, wants what it runs.
                let wanted = match fixed {
                    Some(n) if v.weight > 0 => n,
                    _ => s.replicas,
                };
                sample.replicas_unavailable =
                    Some(u64::from(wanted.saturating_sub(s.ready_replicas)));
            }
            if let Some(demand) = &parts.demand {
                sample.queue_length = Some(demand.load(&format!("{tenant}.{name}"), &v.version).1);
            }
            sample
        })
        .collect();
    ServiceSample {
        tenant,
        service: name,
        versions,
    }
}

fn evaluate(parts: &Parts, memory: &mut Memory, board: &Board) -> autoglm_store::Result<()> {
    let now = Utc::now();
    let Memory { series, rules } = memory;
    let ready = rules.refresh(&parts.store)?;
    let services = samples(parts, ready)?;
    let silences: Vec<(String, Silence)> = parts.store.silences(None, now, false)?;
    let changes = series.round(ready, &services, &silences, now);
    *board.active.write() = series.active(&silences, now);
    let mut woke_tasks = false;
    let mut queued = false;
    for change in changes {
        let rule = ready
            .iter()
            .find(|(t, r)| *t == change.key.tenant && r.name == change.key.rule)
            .map(|(_, r)| r);
        let event = alert_event(&change, rule);
        match change.transition {
            Transition::Fired => {
                let fired = act::fire(&parts.store, &event, &parts.external_url)?;
                tracing::info!(rule = %change.key.rule, service = %change.key.service, version = %change.key.version, value = ?change.value, incident = fired.incident, task = ?fired.task, "alert fired");
                woke_tasks |= fired.task.is_some();
                queued = true;
            }
            Transition::Resolved => {
                let resolved = act::resolve(&parts.store, &event, now, &parts.external_url)?;
                tracing::info!(rule = %change.key.rule, service = %change.key.service, version = %change.key.version, incident = ?resolved, "alert resolved");
                queued = true;
            }
            Transition::Pending | Transition::Cleared => {}
        }
    }
    follow_playbooks(&parts.store)?;
    if woke_tasks {
        parts.tasks.wake();
    }
    if queued {
        board.notification_queued();
    }
    Ok(())
}

fn alert_event(change: &Change, rule: Option<&ReadyRule>) -> AlertEvent {
    let value = change
        .value
        .map_or("no data".to_owned(), |v| format!("{v:.4}"));
    let message = match (change.transition, rule) {
        (Transition::Fired, Some(r)) => format!(
            "{} of {} version {} is {value}: {} has held for {}s",
            r.metric.as_str(),
            change.key.service,
            change.key.version,
            r.condition_text,
            r.for_duration.as_secs()
        ),
        (Transition::Resolved, _) => {
            format!("resolved: the value is {value} and the condition no longer holds")
        }
        _ => format!("the value is {value}"),
    };
    AlertEvent {
        tenant: change.key.tenant.clone(),
        labels: change.labels.clone(),
        annotations: rule.map(|r| r.annotations.clone()).unwrap_or_default(),
        fired_at: change.fired_at,
        source: "autoglm",
        message,
        silenced_by: change.silenced_by,
        receivers: rule.map(|r| r.receivers.clone()).unwrap_or_default(),
        playbook: rule.and_then(|r| r.playbook.clone()),
    }
}

/// Adds `playbookFinished` to each open or recent incident whose playbook
/// task has ended.
fn follow_playbooks(store: &Store) -> autoglm_store::Result<()> {
    for (incident, task_id) in store.unfinished_playbooks()? {
        let task = store.task(None, task_id)?;
        if !task.state.is_final() {
            continue;
        }
        let message = match task.state {
            TaskState::Succeeded => format!("task {task_id} succeeded"),
            _ => format!(
                "task {task_id} {}{}",
                task.state.as_str(),
                task.error
                    .as_ref()
                    .map(|e| format!(": {}", e.message))
                    .unwrap_or_default()
            ),
        };
        store.bookkeeping(|tx| {
            autoglm_store::alerts::add_event(
                tx,
                incident,
                &TimelineEntry {
                    at: task
                        .finished_at
                        .as_deref()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                        .map_or_else(Utc::now, |t| t.with_timezone(&Utc)),
                    kind: TimelineKind::PlaybookFinished,
                    message,
                    actor: act::ACTOR.to_owned(),
                    task_id: Some(task_id),
                },
            )
        })?;
    }
    Ok(())
}
