//! The scheduler against a real store, with attempts scripted by the test
//! (`Script`: succeed, fail transiently N times, or hang) so that each rule
//! shows on its own: priorities order execution, one task per target runs
//! at a time, retries back off, timeouts fail, cancel stops a running task,
//! and a scheduler dropped at any breakpoint (as `kill -9` would leave it)
//! loses and doubles nothing once another starts on the same store.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use autoglm_core::audit::AuditEvent;
use autoglm_core::task::{ServiceChange, Task, TaskError, TaskKind, TaskState};
use autoglm_store::{
    AuditFilter, Mutation, NewTask, Store, StoreError, StoredResponse, Transaction, tasks, tenancy,
};
use serde_json::{Value, json};

use crate::breakpoint::Phase;
use crate::{Execute, Reporter, Settings, TaskScheduler, Tasks, Trigger};
use autoglm_breakpoints::Held;

const TENANT: &str = "default";

/// How the scripted attempts of a target behave.
#[derive(Debug, Clone, Copy)]
enum Script {
    Succeed,
    /// Fails with a retryable error this many times, then succeeds.
    FailTimes(u32),
    /// Never ends by itself.
    Hang,
}

/// Attempts as the test scripts them, and what happened.
#[derive(Debug, Default)]
struct Fake {
    scripts: Mutex<HashMap<String, Script>>,
    /// (task id, when an attempt began).
    started: Mutex<Vec<(i64, Instant)>>,
    /// Task ids whose attempt completed with success: the "effects".
    effects: Mutex<Vec<i64>>,
    restored: Mutex<Vec<i64>>,
    running_now: Mutex<Vec<String>>,
    overlaps: Mutex<Vec<String>>,
}

#[derive(Debug, Clone, Default)]
struct Work(Arc<Fake>);

impl Execute for Work {
    async fn execute(&self, task: Task, _: Reporter) -> Result<Value, TaskError> {
        let fake = &self.0;
        fake.started.lock().push((task.id, Instant::now()));
        {
            let mut now = fake.running_now.lock();
            if now.contains(&task.target) {
                fake.overlaps.lock().push(task.target.clone());
            }
            now.push(task.target.clone());
        }
        let script = fake
            .scripts
            .lock()
            .get(&task.target)
            .copied()
            .unwrap_or(Script::Succeed);
        let outcome = match script {
            Script::Succeed => Ok(json!({"done": task.id})),
            Script::FailTimes(n) if task.attempt <= n => Err(TaskError::transient(format!(
                "attempt {} fails",
                task.attempt
            ))),
            Script::FailTimes(_) => Ok(json!({"done": task.id})),
            Script::Hang => std::future::pending().await,
        };
        // Give overlapping attempts of one target a chance to show.
        tokio::time::sleep(Duration::from_millis(20)).await;
        fake.running_now.lock().retain(|t| t != &task.target);
        if outcome.is_ok() {
            fake.effects.lock().push(task.id);
        }
        outcome
    }

    fn cancelled(&self, task: &Task) {
        self.0.restored.lock().push(task.id);
    }
}

fn store() -> (tempfile::TempDir, Arc<Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("autoglm.db")).unwrap());
    write(&store, |tx| tenancy::create_tenant(tx, TENANT).map(|_| ()));
    (dir, store)
}

/// `f` in an audited write, as a user's request would run it.
fn try_write<T>(
    store: &Store,
    f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let audit = AuditEvent {
        time: "2025-01-01T00:00:00.000000Z".into(),
        actor: "user:test".into(),
        tenant: TENANT.into(),
        action: "test".into(),
        target: String::new(),
        request_id: "r".into(),
        outcome: String::new(),
    };
    let mutation = Mutation {
        audit,
        idempotency: None,
    };
    let respond = |_: &T| StoredResponse {
        status: 200,
        body: Vec::new(),
    };
    store.write(mutation, |tx, _| f(tx), respond)
}

fn write<T>(store: &Store, f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>) -> T {
    try_write(store, f).unwrap()
}

fn enqueue(store: &Store, kind: TaskKind, target: &str) -> Task {
    let new = NewTask {
        tenant: TENANT.into(),
        kind,
        target: target.into(),
        change: ServiceChange::default(),
        created_by: "user:test".into(),
        request_id: "r".into(),
    };
    write(store, |tx| tasks::enqueue(tx, &new))
}

fn settings(workers: usize) -> Settings {
    Settings {
        workers,
        timeout_scale: 1.0,
        backoff_scale: 0.2,
    }
}

async fn start(store: &Arc<Store>, tasks: &Tasks, work: &Work, s: Settings) -> TaskScheduler {
    TaskScheduler::start(store.clone(), tasks.clone(), work.clone(), s)
        .await
        .unwrap()
}

/// Waits until task `id` is final, and returns it.
async fn finished(store: &Store, tasks: &Tasks, id: i64) -> Task {
    let mut changes = tasks.subscribe();
    let wait = async {
        loop {
            let t = store.task(None, id).unwrap();
            if t.state.is_final() {
                return t;
            }
            tokio::select! {
                _ = changes.changed() => {}
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .unwrap_or_else(|_| panic!("task {id} did not finish: {:?}", store.task(None, id)))
}

/// The audit actions recorded for task `id`, oldest first.
fn audit_of(store: &Store, id: i64) -> Vec<String> {
    let mut records = store
        .audit_list(&AuditFilter {
            target_prefix: Some(format!("tasks/{id}")),
            limit: 1000,
            ..AuditFilter::default()
        })
        .unwrap();
    records.retain(|r| r.event.target == format!("tasks/{id}"));
    records.reverse();
    records.into_iter().map(|r| r.event.action).collect()
}

#[tokio::test]
async fn the_highest_priority_runs_first_then_the_oldest() {
    let (_dir, store) = store();
    let (tasks, work) = (Tasks::default(), Work::default());
    let deploy = enqueue(&store, TaskKind::Deploy, "services/a");
    let update = enqueue(&store, TaskKind::Update, "services/b");
    let scale = enqueue(&store, TaskKind::Scale, "services/c");
    let split = enqueue(&store, TaskKind::TrafficSplit, "services/d");
    let _s = start(&store, &tasks, &work, settings(1)).await;
    for t in [&deploy, &update, &scale, &split] {
        assert_eq!(
            finished(&store, &tasks, t.id).await.state,
            TaskState::Succeeded
        );
    }
    let order: Vec<i64> = work.0.started.lock().iter().map(|(id, _)| *id).collect();
    assert_eq!(order, vec![split.id, scale.id, deploy.id, update.id]);
}

#[tokio::test]
async fn tasks_of_one_target_never_run_together() {
    let (_dir, store) = store();
    let (tasks, work) = (Tasks::default(), Work::default());
    let ids: Vec<i64> = (0..6)
        .map(|i| {
            let target = if i % 2 == 0 {
                "services/x"
            } else {
                "services/y"
            };
            enqueue(&store, TaskKind::Update, target).id
        })
        .collect();
    let _s = start(&store, &tasks, &work, settings(4)).await;
    for id in &ids {
        assert_eq!(
            finished(&store, &tasks, *id).await.state,
            TaskState::Succeeded
        );
    }
    assert!(
        work.0.overlaps.lock().is_empty(),
        "{:?}",
        work.0.overlaps.lock()
    );
    // Within a target, in the order they were queued.
    let order: Vec<i64> = work.0.started.lock().iter().map(|(id, _)| *id).collect();
    let xs: Vec<i64> = order
        .iter()
        .copied()
        .filter(|id| ids.iter().step_by(2).any(|x| x == id))
        .collect();
    assert_eq!(xs, vec![ids[0], ids[2], ids[4]]);
}

#[tokio::test]
async fn a_transient_failure_is_retried_after_a_growing_backoff() {
    let (_dir, store) = store();
    let (tasks, work) = (Tasks::default(), Work::default());
    work.0
        .scripts
        .lock()
        .insert("services/flaky".into(), Script::FailTimes(2));
    let t = enqueue(&store, TaskKind::Deploy, "services/flaky");
    let _s = start(&store, &tasks, &work, settings(2)).await;
    let done = finished(&store, &tasks, t.id).await;
    assert_eq!(done.state, TaskState::Succeeded);
    assert_eq!(done.attempt, 3);
    assert_eq!(done.result, Some(json!({"done": t.id})));
    let starts: Vec<Instant> = work.0.started.lock().iter().map(|(_, at)| *at).collect();
    assert_eq!(starts.len(), 3);
    // backoff(1) is at least 0.5 s and backoff(2) at least 1 s, scaled by 0.2.
    let first = starts[1] - starts[0];
    let second = starts[2] - starts[1];
    assert!(first >= Duration::from_millis(100), "{first:?}");
    assert!(second >= Duration::from_millis(200), "{second:?}");
    assert_eq!(
        audit_of(&store, t.id),
        [
            "tasks.start",
            "tasks.retry",
            "tasks.start",
            "tasks.retry",
            "tasks.start",
            "tasks.succeed"
        ]
    );
}

#[tokio::test]
async fn a_task_out_of_attempts_fails_with_its_last_error() {
    let (_dir, store) = store();
    let (tasks, work) = (Tasks::default(), Work::default());
    work.0
        .scripts
        .lock()
        .insert("services/broken".into(), Script::FailTimes(99));
    let t = enqueue(&store, TaskKind::Scale, "services/broken");
    let s = Settings {
        backoff_scale: 0.01,
        ..settings(1)
    };
    let _s = start(&store, &tasks, &work, s).await;
    let done = finished(&store, &tasks, t.id).await;
    assert_eq!(done.state, TaskState::Failed);
    assert_eq!(done.attempt, done.max_attempts);
    let error = done.error.unwrap();
    assert_eq!(error.code, "platform");
    assert_eq!(
        error.message,
        format!("attempt {} fails", done.max_attempts)
    );
}

#[tokio::test]
async fn an_attempt_that_runs_past_its_kinds_timeout_fails_without_retrying() {
    let (_dir, store) = store();
    let (tasks, work) = (Tasks::default(), Work::default());
    work.0
        .scripts
        .lock()
        .insert("services/slow".into(), Script::Hang);
    let t = enqueue(&store, TaskKind::TrafficSplit, "services/slow");
    // 5 minutes scaled down to 300 ms.
    let s = Settings {
        timeout_scale: 0.001,
        ..settings(1)
    };
    let _s = start(&store, &tasks, &work, s).await;
    let done = finished(&store, &tasks, t.id).await;
    assert_eq!(done.state, TaskState::Failed);
    assert_eq!(done.attempt, 1);
    assert_eq!(done.error.unwrap().code, "timeout");
}

#[tokio::test]
async fn cancel_stops_a_running_task_and_a_pending_one_never_starts() {
    let (_dir, store) = store();
    let (tasks, work) = (Tasks::default(), Work::default());
    work.0
        .scripts
        .lock()
        .insert("services/stuck".into(), Script::Hang);
    let running = enqueue(&store, TaskKind::Deploy, "services/stuck");
    let queued = enqueue(&store, TaskKind::Update, "services/stuck");
    let _s = start(&store, &tasks, &work, settings(2)).await;
    // Wait until the first attempt runs.
    let mut changes = tasks.subscribe();
    while store.task(None, running.id).unwrap().state != TaskState::Running {
        let _ = tokio::time::timeout(Duration::from_millis(50), changes.changed()).await;
    }
    // The pending one is cancelled at once, in the caller's write.
    let cancelled = write(&store, |tx| tasks::request_cancel(tx, TENANT, queued.id));
    assert_eq!(cancelled.state, TaskState::Cancelled);
    let marked = write(&store, |tx| tasks::request_cancel(tx, TENANT, running.id));
    assert_eq!(marked.state, TaskState::Running);
    assert!(marked.cancel_requested);
    tasks.wake();
    let done = finished(&store, &tasks, running.id).await;
    assert_eq!(done.state, TaskState::Cancelled);
    assert_eq!(work.0.restored.lock().as_slice(), &[running.id]);
    assert!(work.0.effects.lock().is_empty());
    let started: Vec<i64> = work.0.started.lock().iter().map(|(id, _)| *id).collect();
    assert_eq!(
        started,
        vec![running.id],
        "the cancelled pending task never ran"
    );
    // A finished task cannot be cancelled again.
    let again = try_write(&store, |tx| tasks::request_cancel(tx, TENANT, running.id));
    let Err(StoreError::Rejected(code, detail)) = again else {
        panic!("cancelled twice: {again:?}");
    };
    assert_eq!(code.as_str(), "invalid_transition");
    assert!(detail.contains("already cancelled"), "{detail}");
}

#[tokio::test]
async fn a_task_left_running_by_a_crash_is_resumed_by_the_next_start() {
    let (_dir, store) = store();
    let (tasks, work) = (Tasks::default(), Work::default());
    let t = enqueue(&store, TaskKind::Restart, "services/a");
    {
        let s = start(&store, &tasks, &work, settings(1)).await;
        let mut bp = s.breakpoints.attach();
        let held = bp.hold_at(Phase::Claimed(t.id)).await;
        // Claimed and recorded running; then the process dies.
        assert_eq!(store.task(None, t.id).unwrap().state, TaskState::Running);
        s.crash().await;
        drop(held);
    }
    let _s = start(&store, &tasks, &work, settings(1)).await;
    let done = finished(&store, &tasks, t.id).await;
    assert_eq!(done.state, TaskState::Succeeded);
    assert_eq!(done.attempt, 2);
    assert_eq!(work.0.effects.lock().as_slice(), &[t.id]);
    assert_eq!(
        audit_of(&store, t.id),
        [
            "tasks.start",
            "tasks.resume",
            "tasks.start",
            "tasks.succeed"
        ]
    );
}

#[tokio::test]
async fn a_crash_during_the_last_attempt_fails_the_task_as_interrupted() {
    let (_dir, store) = store();
    let (tasks, work) = (Tasks::default(), Work::default());
    work.0
        .scripts
        .lock()
        .insert("services/a".into(), Script::FailTimes(99));
    let t = enqueue(&store, TaskKind::Update, "services/a");
    {
        let s = Settings {
            backoff_scale: 0.01,
            ..settings(1)
        };
        let s = start(&store, &tasks, &work, s).await;
        let mut bp = s.breakpoints.attach();
        let mut held = None;
        for _ in 0..t.max_attempts {
            if let Some(h) = held.take() {
                Held::release(h);
            }
            held = Some(bp.hold_at(Phase::Claimed(t.id)).await);
        }
        s.crash().await;
        drop(held);
    }
    let _s = start(&store, &tasks, &work, settings(1)).await;
    let done = store.task(None, t.id).unwrap();
    assert_eq!(done.state, TaskState::Failed);
    assert_eq!(done.error.unwrap().code, "interrupted");
}

/// The phases a trial may stop at.
fn phases(ids: &[i64]) -> Vec<Phase> {
    let mut all = vec![Phase::Woken(Trigger::Started)];
    for id in ids {
        all.push(Phase::Claimed(*id));
        all.push(Phase::Executed(*id));
        all.push(Phase::Woken(Trigger::Finished(*id)));
    }
    all
}

#[tokio::test]
async fn ten_crashes_at_random_breakpoints_lose_and_double_no_task() {
    use rand::Rng;
    let mut rng = rand::rng();
    for trial in 0..10 {
        let (_dir, store) = store();
        let (tasks, work) = (Tasks::default(), Work::default());
        let kinds = [TaskKind::Deploy, TaskKind::Scale, TaskKind::TrafficSplit];
        let ids: Vec<i64> = (0..5)
            .map(|i| enqueue(&store, kinds[i % 3], &format!("services/s{i}")).id)
            .collect();
        let all = phases(&ids);
        let stop = all[rng.random_range(0..all.len())].clone();
        {
            let s = start(&store, &tasks, &work, settings(2)).await;
            let mut bp = s.breakpoints.attach();
            // Held there, the scheduler is killed: its loop and workers are
            // dropped mid-step, as kill -9 would stop them.
            let held =
                tokio::time::timeout(Duration::from_secs(10), bp.hold_at(stop.clone())).await;
            s.crash().await;
            drop(held);
        }
        let effects_before = work.0.effects.lock().clone();
        let _s = start(&store, &tasks, &work, settings(2)).await;
        for id in &ids {
            let t = finished(&store, &tasks, *id).await;
            assert_eq!(
                t.state,
                TaskState::Succeeded,
                "trial {trial} stopped at {stop:?}: {t:?}"
            );
            let audit = audit_of(&store, *id);
            assert_eq!(
                audit.iter().filter(|a| *a == "tasks.succeed").count(),
                1,
                "trial {trial} stopped at {stop:?}: {audit:?}"
            );
        }
        // An attempt completed before the crash is run again only when its
        // end was never recorded; the effect is the same (a converged platform).
        let effects = work.0.effects.lock().clone();
        for id in &ids {
            let n = effects.iter().filter(|e| *e == id).count();
            assert!(
                (1..=2).contains(&n),
                "trial {trial} at {stop:?}: task {id} ran {n} times"
            );
            if n == 2 {
                assert!(
                    effects_before.contains(id),
                    "a second run only after a crash"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_scheduler_that_was_taken_over_can_neither_claim_nor_end_a_task() {
    let (_dir, store) = store();
    let t = enqueue(&store, TaskKind::Deploy, "services/a");
    let (old, _) = store.start_tasks().unwrap();
    let claimed = store.claim_task(old, chrono::Utc::now()).unwrap().unwrap();
    assert_eq!(claimed.id, t.id);
    // Another scheduler starts (the old one is thought dead): it resumes the task...
    let (new, resumed) = store.start_tasks().unwrap();
    assert_eq!(new, old + 1);
    assert_eq!(resumed[0].state, TaskState::Pending);
    // ...and whatever the old one still tries is refused.
    let late = store.finish_task(old, t.id, Ok(json!({})));
    assert!(
        matches!(&late, Err(StoreError::Rejected(_, m)) if m.contains("superseded")),
        "{late:?}"
    );
    assert!(store.claim_task(old, chrono::Utc::now()).unwrap().is_none());
    assert!(store.task_progress(old, t.id, &Default::default()).is_err());
    assert_eq!(store.task(None, t.id).unwrap().state, TaskState::Pending);
    let mine = store.claim_task(new, chrono::Utc::now()).unwrap().unwrap();
    assert_eq!(mine.attempt, 2);
    assert_eq!(
        store.finish_task(new, t.id, Ok(json!({}))).unwrap().state,
        TaskState::Succeeded
    );
}
