//! One service's reconciler: starts and stops replicas until each version
//! runs its planned count of the planned launch, replacing changed replicas
//! one ready replica at a time, and publishes the service's view.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use autoglm_contract::{ServiceView, VersionEndpoints, Views};
use autoglm_core::service::{
    Condition, ConditionStatus, ModelServiceStatus, ReplicaState, ReplicaStatus, VersionStatus,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Settings;
use crate::ledger::Ledger;
use crate::plan::{Launch, ServicePlan};
use crate::ports::Ports;
use crate::replica::{Replica, ReplicaSpec};
use autoglm_core::quota::Holding;

/// How often the reconciler looks again without being told.
const RESYNC: Duration = Duration::from_millis(100);

/// A replica with what it was started for and what it holds of its
/// tenant's quotas.
#[derive(Debug)]
struct Tracked {
    version: String,
    launch_key: u64,
    replica: Replica,
    holds: Holding,
}

/// The handle the platform keeps per service.
#[derive(Debug)]
pub struct ServiceRunner {
    plan: watch::Sender<ServicePlan>,
    task: JoinHandle<()>,
}

impl ServiceRunner {
    /// Starts reconciling `plan`; replicas keep their files under `dir`.
    pub fn start(
        plan: ServicePlan,
        dir: PathBuf,
        ports: Arc<Ports>,
        settings: Settings,
        views: Arc<watch::Sender<Arc<Views>>>,
        ledger: Arc<Ledger>,
    ) -> ServiceRunner {
        let (tx, rx) = watch::channel(plan);
        let task = tokio::spawn(reconcile(rx, dir, ports, settings, views, ledger));
        ServiceRunner { plan: tx, task }
    }

    /// Replaces the plan.
    pub fn update(&self, plan: ServicePlan) {
        self.plan.send_if_modified(|current| {
            let changed = *current != plan;
            *current = plan;
            changed
        });
    }

    /// Stops every replica and waits until their processes are gone.
    pub async fn remove(self) {
        drop(self.plan);
        let _ = self.task.await;
    }
}

fn launch_key(launch: &Launch, restart: u64) -> u64 {
    let mut h = DefaultHasher::new();
    (launch, restart).hash(&mut h);
    h.finish()
}

async fn reconcile(
    mut plan_rx: watch::Receiver<ServicePlan>,
    dir: PathBuf,
    ports: Arc<Ports>,
    settings: Settings,
    views: Arc<watch::Sender<Arc<Views>>>,
    ledger: Arc<Ledger>,
) {
    let (name, tenant) = {
        let plan = plan_rx.borrow();
        (plan.name.clone(), plan.tenant.clone())
    };
    // Why the last replica wanted was not started, while it still is.
    let mut refused: Option<String> = None;
    let mut live: Vec<Tracked> = Vec::new();
    let mut retiring: Vec<Tracked> = Vec::new();
    let mut serial = 0u64;
    // When the plan last changed (the progress deadline counts from it), and
    // whether it has been fully rolled out since: a replica that fails after
    // that is `Ready`'s business, not a stalled change, as on Kubernetes.
    let mut since: (Option<ServicePlan>, std::time::Instant) = (None, std::time::Instant::now());
    let mut done_once = false;
    loop {
        let plan = plan_rx.borrow_and_update().clone();
        if since.0.as_ref() != Some(&plan) {
            since = (Some(plan.clone()), std::time::Instant::now());
            done_once = false;
        }
        let stalled = !done_once && since.1.elapsed() > settings.progress_deadline;
        let mut refusal: Option<String> = None;
        for v in &plan.versions {
            let key = launch_key(&v.launch, plan.restart);
            let want = v.replicas as usize;
            let current = |t: &Tracked| t.version == v.version && t.launch_key == key;
            let stale = |t: &Tracked| t.version == v.version && t.launch_key != key;
            let have = live.iter().filter(|t| current(t)).count();
            for _ in have..want {
                if let Err(over) = ledger.take(&tenant, plan.per_replica) {
                    // At full quota a change would wait forever for room its
                    // old replicas hold: one of them goes first (as a
                    // Deployment with maxSurge 0 rolls), and its room is
                    // taken once it has stopped.
                    if retiring.iter().any(|t| t.version == v.version) {
                        // Room is being made already.
                    } else if let Some(i) = pick_retiree(&live, &stale) {
                        retiring.push(live.remove(i));
                    } else {
                        refusal = Some(format!(
                            "a replica of version {} was not started: {over}",
                            v.version
                        ));
                    }
                    break;
                }
                serial += 1;
                let id = format!("{}-{}-{serial}", plan.name, v.version);
                let spec = ReplicaSpec {
                    log: dir.join(format!("{id}.log")),
                    pid_file: dir.join(format!("{id}.pid")),
                    id,
                    launch: v.launch.clone(),
                };
                tracing::info!(service = %plan.name, replica = %spec.id, version = %v.version, "starting a replica");
                live.push(Tracked {
                    version: v.version.clone(),
                    launch_key: key,
                    replica: Replica::start(spec, ports.clone(), settings.clone()),
                    holds: plan.per_replica,
                });
            }
            // Too many of the current launch: retire the least ready first.
            let mut surplus = have.saturating_sub(want);
            while surplus > 0 {
                let Some(i) = pick_retiree(&live, &current) else {
                    break;
                };
                retiring.push(live.remove(i));
                surplus -= 1;
            }
            // Replicas of an older launch go as the new ones become ready, so
            // the version never has fewer ready replicas than before.
            let ready_new = live
                .iter()
                .filter(|t| current(t) && t.replica.report().state == ReplicaState::Ready)
                .count();
            let stale_count = live.iter().filter(|t| stale(t)).count();
            let keep = want.saturating_sub(ready_new).min(stale_count);
            for _ in keep..stale_count {
                let Some(i) = pick_retiree(&live, &stale) else {
                    break;
                };
                retiring.push(live.remove(i));
            }
        }
        // Versions no longer planned keep serving until every planned version
        // that takes traffic has a ready replica of its current launch, so a
        // switch from one version to another never leaves the service empty.
        let planned = |t: &Tracked| plan.versions.iter().any(|v| v.version == t.version);
        let successors_ready = plan
            .versions
            .iter()
            .filter(|v| v.weight > 0 && v.replicas > 0)
            .all(|v| {
                let key = launch_key(&v.launch, plan.restart);
                live.iter().any(|t| {
                    t.version == v.version
                        && t.launch_key == key
                        && t.replica.report().state == ReplicaState::Ready
                })
            });
        if successors_ready {
            while let Some(i) = live.iter().position(|t| !planned(t)) {
                retiring.push(live.remove(i));
            }
        }
        for t in &retiring {
            t.replica.stop();
        }
        retiring.retain(|t| {
            let finished = t.replica.finished();
            if finished {
                ledger.give_back(&tenant, t.holds);
            }
            !finished
        });
        if refusal != refused {
            if let Some(why) = &refusal {
                tracing::warn!(service = %plan.name, %why, "replica refused by quota");
            }
            refused = refusal;
        }

        done_once |= publish(
            &plan,
            (&live, &retiring),
            stalled,
            refused.as_deref(),
            &views,
        );

        tokio::select! {
            changed = plan_rx.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            () = tokio::time::sleep(RESYNC) => {}
        }
    }
    // The service was removed: stop everything, then forget its view.
    views.send_modify(|all| {
        let mut next = (**all).clone();
        next.remove(&name);
        *all = Arc::new(next);
    });
    let all: Vec<Tracked> = live.into_iter().chain(retiring).collect();
    let held = all
        .iter()
        .fold(Holding::default(), |sum, t| sum.plus(t.holds));
    stop_all(all.into_iter().map(|t| t.replica).collect()).await;
    ledger.give_back(&tenant, held);
}

async fn stop_all(replicas: Vec<Replica>) {
    for r in &replicas {
        r.stop();
    }
    for r in replicas {
        r.stop_and_wait().await;
    }
}

/// The replica to retire among those matching `which`: one not ready if any.
fn pick_retiree(live: &[Tracked], which: &dyn Fn(&Tracked) -> bool) -> Option<usize> {
    let mut candidates: Vec<usize> = (0..live.len()).filter(|&i| which(&live[i])).collect();
    // Newest first among equals: older replicas have proven themselves.
    candidates.reverse();
    candidates
        .iter()
        .copied()
        .find(|&i| live[i].replica.report().state != ReplicaState::Ready)
        .or_else(|| candidates.first().copied())
}

/// Publishes the service's view; whether the plan is fully rolled out with
/// every wanted replica ready.
fn publish(
    plan: &ServicePlan,
    (live, retiring): (&[Tracked], &[Tracked]),
    stalled: bool,
    refused: Option<&str>,
    views: &watch::Sender<Arc<Views>>,
) -> bool {
    let mut status = ModelServiceStatus::default();
    let mut endpoints = Vec::new();
    for v in &plan.versions {
        let mine: Vec<&Tracked> = live.iter().filter(|t| t.version == v.version).collect();
        let ready: Vec<SocketAddr> = mine
            .iter()
            .map(|t| t.replica.report())
            .filter(|r| r.state == ReplicaState::Ready)
            .map(|r| SocketAddr::from((Ipv4Addr::LOCALHOST, r.port)))
            .collect();
        status.desired_replicas += v.replicas;
        status.ready_replicas += u32::try_from(ready.len()).unwrap_or(u32::MAX);
        status.versions.push(VersionStatus {
            version: v.version.clone(),
            weight: v.weight,
            replicas: u32::try_from(mine.len()).unwrap_or(u32::MAX),
            ready_replicas: u32::try_from(ready.len()).unwrap_or(u32::MAX),
        });
        endpoints.push(VersionEndpoints {
            version: v.version.clone(),
            weight: v.weight,
            ready,
        });
    }
    // Versions on their way out: ready replicas stay routable, without weight.
    let mut outgoing: Vec<&str> = live
        .iter()
        .map(|t| t.version.as_str())
        .filter(|v| !plan.versions.iter().any(|p| p.version == *v))
        .collect();
    outgoing.sort_unstable();
    outgoing.dedup();
    for version in outgoing {
        let ready = live
            .iter()
            .filter(|t| t.version == version)
            .map(|t| t.replica.report())
            .filter(|r| r.state == ReplicaState::Ready)
            .map(|r| SocketAddr::from((Ipv4Addr::LOCALHOST, r.port)))
            .collect();
        endpoints.push(VersionEndpoints {
            version: version.to_owned(),
            weight: 0,
            ready,
        });
    }
    for t in live.iter().chain(retiring) {
        let r = t.replica.report();
        let state = if retiring.iter().any(|x| x.replica.id == t.replica.id) {
            ReplicaState::Stopped
        } else {
            r.state
        };
        status.replicas.push(ReplicaStatus {
            id: t.replica.id.clone(),
            version: t.version.clone(),
            state,
            port: r.port,
            pid: r.pid,
            restarts: r.restarts,
            last_exit: r.last_exit,
        });
    }
    status.conditions.push(ready_condition(&status));
    status
        .conditions
        .push(progressing_condition(plan, (live, retiring), stalled));
    // As a Deployment reports a ReplicaSet's pods refused by a ResourceQuota.
    if let Some(why) = refused {
        status.conditions.push(Condition::new(
            "ReplicaFailure",
            ConditionStatus::True,
            "QuotaExceeded",
            why.to_owned(),
        ));
    }
    status.observed_generation = Some(plan.generation);
    status.observed_restarts = Some(i64::try_from(plan.restart).unwrap_or(i64::MAX));
    let view = ServiceView {
        status,
        endpoints,
        balancing: plan.balancing.clone(),
        filters: plan.filters.clone(),
    };
    let complete = view.status.ready_replicas >= view.status.desired_replicas
        && view
            .status
            .conditions
            .iter()
            .any(|c| c.type_ == "Progressing" && c.reason == "RolloutComplete");
    views.send_if_modified(|all| {
        if all.get(&plan.name) == Some(&view) {
            return false;
        }
        let mut next = (**all).clone();
        next.insert(plan.name.clone(), view.clone());
        *all = Arc::new(next);
        true
    });
    complete
}

/// `Progressing`, as the operator reports it on Kubernetes: `RollingOut`
/// while a replica of an older launch, of a version no longer planned, or
/// on its way out is still there; `RolloutComplete` once none is; and
/// `ProgressDeadlineExceeded` when the change has not got every wanted
/// replica ready within the deadline (`stalled`).
fn progressing_condition(
    plan: &ServicePlan,
    (live, retiring): (&[Tracked], &[Tracked]),
    stalled: bool,
) -> Condition {
    if stalled {
        return Condition::new(
            "Progressing",
            ConditionStatus::False,
            "ProgressDeadlineExceeded",
            "the change did not get every wanted replica ready within the progress deadline"
                .to_owned(),
        );
    }
    let current = |t: &Tracked| {
        plan.versions
            .iter()
            .any(|v| v.version == t.version && launch_key(&v.launch, plan.restart) == t.launch_key)
    };
    let old = live.iter().filter(|t| !current(t)).count() + retiring.len();
    if old == 0 {
        Condition::new(
            "Progressing",
            ConditionStatus::False,
            "RolloutComplete",
            "every replica runs the current plan".to_owned(),
        )
    } else {
        Condition::new(
            "Progressing",
            ConditionStatus::True,
            "RollingOut",
            format!("{old} replicas of an earlier plan still to replace or stop"),
        )
    }
}

fn ready_condition(status: &ModelServiceStatus) -> Condition {
    let (state, reason, message) = if status.desired_replicas == 0 {
        (
            ConditionStatus::True,
            "ScaledToZero",
            "no replica is wanted now".to_owned(),
        )
    } else if status.ready_replicas >= status.desired_replicas {
        (
            ConditionStatus::True,
            "AllReplicasReady",
            format!(
                "{} of {} replicas ready",
                status.ready_replicas, status.desired_replicas
            ),
        )
    } else {
        (
            ConditionStatus::False,
            "ReplicasNotReady",
            format!(
                "{} of {} replicas ready",
                status.ready_replicas, status.desired_replicas
            ),
        )
    };
    Condition::new("Ready", state, reason, message)
}
