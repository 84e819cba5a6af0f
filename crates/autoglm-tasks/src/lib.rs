//! The task scheduler: the one place where operations run.
//!
//! A write that starts work commits its task with its change (the store's
//! `tasks` table is the queue: durable, ordered by priority then age). One
//! loop ([`follow`]) claims due tasks while the worker pool has room, and
//! every trigger that moves it is in its one `select!`: a new task or a
//! cancel ([`Tasks::wake`]), a worker done, a retry's time come. A worker
//! runs one attempt under its kind's timeout, watching for a cancel, and
//! records how it ended: succeeded, failed, back in the queue after a
//! backoff with jitter, or cancelled with its service restored.
//!
//! After a crash, [`TaskScheduler::start`] puts every task left running back
//! in the queue (an attempt carries a change to a platform that converges,
//! so running it again has the same effect) or fails it when it had no
//! attempt left; nothing is lost and nothing acts twice to a different end.

#[cfg(test)]
mod breakpoint;
mod evaluate;
mod rollout;
mod service;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use autoglm_core::task::{Task, TaskError, TaskProgress, backoff};
use autoglm_store::{Store, StoreError};
use tokio::sync::{Notify, mpsc, watch};

pub use service::ServiceWork;

/// How many tasks run at once by default.
pub const DEFAULT_WORKERS: usize = 4;
/// How often a running task looks for a cancel asked by another process,
/// and how long the loop sleeps at most with nothing due.
const POLL: Duration = Duration::from_millis(500);

/// The handle the console keeps: wakes the loop when it queued a task or
/// asked for a cancel, and tells waiters when any task changed.
#[derive(Debug, Clone)]
pub struct Tasks {
    wake: Arc<Notify>,
    changed: Arc<watch::Sender<u64>>,
}

impl Default for Tasks {
    fn default() -> Tasks {
        Tasks {
            wake: Arc::new(Notify::new()),
            changed: Arc::new(watch::channel(0).0),
        }
    }
}

impl Tasks {
    /// A task was queued or a cancel asked for: the loop looks now.
    pub fn wake(&self) {
        self.wake.notify_one();
        self.bump();
    }

    /// A receiver that sees a new value whenever any task changes state or progress.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// Reports a running attempt's progress.
#[derive(Debug, Clone)]
pub struct Reporter {
    store: Arc<Store>,
    tasks: Tasks,
    epoch: i64,
    id: i64,
    last: Arc<parking_lot::Mutex<TaskProgress>>,
}

impl Reporter {
    /// Records `progress` when it differs from the last report.
    pub async fn report(&self, progress: TaskProgress) {
        {
            let mut last = self.last.lock();
            if *last == progress {
                return;
            }
            *last = progress.clone();
        }
        let (store, epoch, id) = (self.store.clone(), self.epoch, self.id);
        let saved =
            tokio::task::spawn_blocking(move || store.task_progress(epoch, id, &progress)).await;
        if let Ok(Err(e)) = saved {
            tracing::warn!(task = id, error = %e, "cannot record a task's progress");
        }
        self.tasks.bump();
    }
}

/// What runs a task's attempts.
pub trait Execute: Send + Sync + 'static {
    /// Runs one attempt of `task`: its result, or why it failed. Dropped
    /// (cancelled) when the attempt times out or the task is cancelled, so
    /// an attempt must leave nothing half done at any await point.
    fn execute(
        &self,
        task: Task,
        progress: Reporter,
    ) -> impl Future<Output = Result<serde_json::Value, TaskError>> + Send;

    /// Called after `task` was cancelled (its service restored where it
    /// could be): the platform follows what the store holds now.
    fn cancelled(&self, task: &Task);
}

/// How the scheduler runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Tasks running at once.
    pub workers: usize,
    /// Scales every kind's timeout (tests shorten them).
    pub timeout_scale: f64,
    /// Scales every backoff (tests shorten them).
    pub backoff_scale: f64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            workers: DEFAULT_WORKERS,
            timeout_scale: 1.0,
            backoff_scale: 1.0,
        }
    }
}

/// The running scheduler; dropping it stops the loop (running attempts are
/// abandoned as a crash would leave them, and resumed by the next start).
#[derive(Debug)]
pub struct TaskScheduler {
    loop_task: tokio::task::JoinHandle<()>,
    #[cfg(test)]
    breakpoints: Arc<breakpoint::Breakpoints>,
}

impl Drop for TaskScheduler {
    fn drop(&mut self) {
        self.loop_task.abort();
    }
}

#[cfg(test)]
impl TaskScheduler {
    /// Stops the loop and its workers as `kill -9` would, and returns once
    /// none of them can run again: an aborted task is only dropped when the
    /// runtime next reaches it, and until the loop is dropped (and with it
    /// its workers) a worker that was ready could still take a step.
    pub(crate) async fn crash(mut self) {
        self.loop_task.abort();
        let _ = (&mut self.loop_task).await;
    }
}

struct Shared<E> {
    store: Arc<Store>,
    /// This scheduler's epoch: its writes are refused once another started.
    epoch: i64,
    tasks: Tasks,
    work: E,
    settings: Settings,
    #[cfg(test)]
    breakpoints: Arc<breakpoint::Breakpoints>,
}

impl TaskScheduler {
    /// Recovers what a previous run left running, then starts the loop.
    pub async fn start<E: Execute>(
        store: Arc<Store>,
        tasks: Tasks,
        work: E,
        settings: Settings,
    ) -> Result<TaskScheduler, StoreError> {
        let recovering = store.clone();
        let (epoch, recovered) = tokio::task::spawn_blocking(move || recovering.start_tasks())
            .await
            .map_err(|_| StoreError::Poisoned)??;
        for t in &recovered {
            tracing::info!(task = t.id, kind = t.kind.as_str(), target = %t.target, state = t.state.as_str(), "task recovered after a restart");
        }
        #[cfg(test)]
        let breakpoints = Arc::new(breakpoint::Breakpoints::default());
        let shared = Arc::new(Shared {
            store,
            epoch,
            tasks,
            work,
            settings,
            #[cfg(test)]
            breakpoints: breakpoints.clone(),
        });
        Ok(TaskScheduler {
            loop_task: tokio::spawn(follow(shared)),
            #[cfg(test)]
            breakpoints,
        })
    }
}

/// What moves the loop.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Trigger {
    /// The first look after start.
    Started,
    /// A task was queued or a cancel asked for.
    Woken,
    /// A worker finished the task with this id.
    Finished(i64),
    /// The poll interval passed: a retry may be due, or another console
    /// queued work.
    Poll,
}

async fn follow<E: Execute>(shared: Arc<Shared<E>>) {
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<i64>();
    let mut running = 0usize;
    let mut trigger = Trigger::Started;
    // Aborting this loop must abort its workers too, as a crash would.
    let mut workers = tokio::task::JoinSet::new();
    loop {
        #[cfg(test)]
        shared
            .breakpoints
            .reach(breakpoint::Phase::Woken(trigger.clone()))
            .await;
        if let Trigger::Finished(_) = trigger {
            running -= 1;
        }
        while running < shared.settings.workers {
            let (store, epoch) = (shared.store.clone(), shared.epoch);
            let claimed =
                tokio::task::spawn_blocking(move || store.claim_task(epoch, chrono::Utc::now()))
                    .await;
            let task = match claimed {
                Ok(Ok(Some(task))) => task,
                Ok(Ok(None)) => break,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "cannot claim a task");
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, "claiming a task panicked");
                    break;
                }
            };
            tracing::info!(task = task.id, kind = task.kind.as_str(), target = %task.target, attempt = task.attempt, "task started");
            shared.tasks.bump();
            running += 1;
            #[cfg(test)]
            shared
                .breakpoints
                .reach(breakpoint::Phase::Claimed(task.id))
                .await;
            let (shared, done) = (shared.clone(), done_tx.clone());
            workers.spawn(async move {
                let id = task.id;
                attempt(&shared, task).await;
                let _ = done.send(id);
            });
        }
        while workers.try_join_next().is_some() {}
        trigger = tokio::select! {
            () = shared.tasks.wake.notified() => Trigger::Woken,
            Some(id) = done_rx.recv() => Trigger::Finished(id),
            () = tokio::time::sleep(POLL) => Trigger::Poll,
        };
    }
}

/// How an attempt ended.
enum Ending {
    Done(Result<serde_json::Value, TaskError>),
    Cancelled,
}

/// Runs one attempt of `task` and records how it ended.
async fn attempt<E: Execute>(shared: &Shared<E>, task: Task) {
    let id = task.id;
    let limit = task.kind.timeout().mul_f64(shared.settings.timeout_scale);
    let reporter = Reporter {
        store: shared.store.clone(),
        tasks: shared.tasks.clone(),
        epoch: shared.epoch,
        id,
        last: Arc::new(parking_lot::Mutex::new(task.progress.clone())),
    };
    let run = tokio::time::timeout(limit, shared.work.execute(task.clone(), reporter));
    let ending = tokio::select! {
        outcome = run => Ending::Done(outcome.unwrap_or_else(|_| Err(TaskError::timeout(limit)))),
        () = cancel_asked(shared, id) => Ending::Cancelled,
    };
    #[cfg(test)]
    shared
        .breakpoints
        .reach(breakpoint::Phase::Executed(id))
        .await;
    let (store, epoch) = (shared.store.clone(), shared.epoch);
    let backoff_scale = shared.settings.backoff_scale;
    let recorded = tokio::task::spawn_blocking(move || match ending {
        Ending::Cancelled => store.cancel_running_task(epoch, id),
        Ending::Done(Ok(result)) => store.finish_task(epoch, id, Ok(result)),
        Ending::Done(Err(e)) if e.retryable && task.attempt < task.max_attempts => {
            let wait = backoff(task.attempt, rand::random::<f64>()).mul_f64(backoff_scale);
            let at = chrono::Utc::now()
                + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
            store.retry_task(epoch, id, at, &e)
        }
        Ending::Done(Err(e)) => store.finish_task(epoch, id, Err(e)),
    })
    .await;
    match recorded {
        Ok(Ok(t)) => {
            tracing::info!(task = id, state = t.state.as_str(), message = %t.progress.message, "task attempt ended");
            if t.state == autoglm_core::task::TaskState::Cancelled {
                shared.work.cancelled(&t);
            }
        }
        Ok(Err(e)) => tracing::error!(task = id, error = %e, "cannot record how a task ended"),
        Err(e) => tracing::error!(task = id, error = %e, "recording a task panicked"),
    }
    shared.tasks.bump();
}

/// Resolves once a cancel of task `id` is asked for, in this process
/// (seen through [`Tasks`]) or by another (seen by polling).
async fn cancel_asked<E>(shared: &Shared<E>, id: i64) {
    let mut changes = shared.tasks.subscribe();
    loop {
        let store = shared.store.clone();
        if let Ok(Ok(true)) =
            tokio::task::spawn_blocking(move || store.task_cancel_requested(id)).await
        {
            return;
        }
        tokio::select! {
            _ = changes.changed() => {}
            () = tokio::time::sleep(POLL) => {}
        }
    }
}
