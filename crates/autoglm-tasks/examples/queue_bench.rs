//! The task scheduler's own costs, without a platform: `bench/tasks.sh`
//! runs it. Over a real SQLite file (synchronous=FULL, as the console runs
//! it), it queues N no-op tasks before the scheduler starts and measures
//! (1) how fast the scheduler drains them (every claim and every end is its
//! own fsynced, audited write), (2) enqueue-to-start of those N, and (3) the
//! enqueue-to-start of high-priority probes (traffic splits) queued one at a
//! time while N deploys wait: a priority must jump the queue.
//!
//! Usage: queue_bench [TASKS] [WORKERS] [PROBES]; prints one JSON object.

use std::sync::Arc;
use std::time::{Duration, Instant};

use autoglm_core::audit::AuditEvent;
use autoglm_core::task::{ServiceChange, Task, TaskError, TaskKind, TaskState};
use autoglm_store::{Mutation, NewTask, Store, StoredResponse, tasks, tenancy};
use autoglm_tasks::{Execute, Reporter, Settings, TaskScheduler, Tasks};
use serde_json::{Value, json};

/// Succeeds at once: the scheduler's cost alone.
struct NoOp;

impl Execute for NoOp {
    async fn execute(&self, _: Task, _: Reporter) -> Result<Value, TaskError> {
        Ok(json!({}))
    }

    fn cancelled(&self, _: &Task) {}
}

fn write<T>(
    store: &Store,
    f: impl FnOnce(&autoglm_store::Transaction<'_>) -> Result<T, autoglm_store::StoreError>,
) -> T {
    let audit = AuditEvent {
        time: autoglm_store::timestamp(chrono::Utc::now()),
        actor: "user:bench".into(),
        tenant: "default".into(),
        action: "bench".into(),
        target: String::new(),
        request_id: "bench".into(),
        outcome: String::new(),
    };
    let respond = |_: &T| StoredResponse {
        status: 200,
        body: Vec::new(),
    };
    let mutation = Mutation {
        audit,
        idempotency: None,
    };
    store
        .write(mutation, |tx, _| f(tx), respond)
        .expect("a bench write")
}

fn enqueue(store: &Store, kind: TaskKind, target: String) -> Task {
    let new = NewTask {
        tenant: "default".into(),
        kind,
        target,
        change: ServiceChange::default(),
        created_by: "user:bench".into(),
        request_id: "bench".into(),
    };
    write(store, |tx| tasks::enqueue(tx, &new))
}

fn millis(from: &str, to: &str) -> f64 {
    let parse = |s: &str| chrono::DateTime::parse_from_rfc3339(s).expect("an RFC 3339 time");
    (parse(to) - parse(from)).num_microseconds().unwrap_or(0) as f64 / 1000.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

async fn wait_final(store: &Store, tasks: &Tasks, id: i64) -> Task {
    let mut changes = tasks.subscribe();
    loop {
        let t = store.task(None, id).expect("a task");
        if t.state.is_final() {
            return t;
        }
        let _ = tokio::time::timeout(Duration::from_millis(50), changes.changed()).await;
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers: TASKS WORKERS PROBES"))
        .collect();
    let (n, workers, probes) = (
        args.first().copied().unwrap_or(1000),
        args.get(1).copied().unwrap_or(4),
        args.get(2).copied().unwrap_or(50),
    );
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = Arc::new(Store::open(&dir.path().join("bench.db")).expect("a store"));
    write(&store, |tx| {
        tenancy::create_tenant(tx, "default").map(|_| ())
    });
    let settings = Settings {
        workers,
        ..Settings::default()
    };

    // (1) and (2): drain N queued no-op tasks.
    let queued: Vec<Task> = (0..n)
        .map(|i| enqueue(&store, TaskKind::Deploy, format!("services/s{i}")))
        .collect();
    let tasks = Tasks::default();
    let started = Instant::now();
    let scheduler = TaskScheduler::start(store.clone(), tasks.clone(), NoOp, settings.clone())
        .await
        .expect("the scheduler");
    let mut finished = Vec::with_capacity(n);
    for t in &queued {
        finished.push(wait_final(&store, &tasks, t.id).await);
    }
    let drain = started.elapsed();
    drop(scheduler);
    assert!(finished.iter().all(|t| t.state == TaskState::Succeeded));
    let mut waits: Vec<f64> = finished
        .iter()
        .map(|t| {
            millis(
                &t.created_at,
                t.started_at.as_deref().unwrap_or(&t.created_at),
            )
        })
        .collect();
    waits.sort_by(f64::total_cmp);

    // (3): a traffic split queued while N deploys wait, one probe at a time.
    for i in 0..n {
        enqueue(&store, TaskKind::Deploy, format!("services/d{i}"));
    }
    let tasks = Tasks::default();
    // One worker: a probe waits for the attempt in progress, never for the queue.
    let scheduler = TaskScheduler::start(
        store.clone(),
        tasks.clone(),
        NoOp,
        Settings {
            workers: 1,
            ..settings
        },
    )
    .await
    .expect("the scheduler");
    let mut probe_waits = Vec::with_capacity(probes);
    for i in 0..probes {
        let probe = enqueue(&store, TaskKind::TrafficSplit, format!("services/p{i}"));
        tasks.wake();
        let done = wait_final(&store, &tasks, probe.id).await;
        probe_waits.push(millis(
            &done.created_at,
            done.started_at.as_deref().unwrap_or(&done.created_at),
        ));
    }
    drop(scheduler);
    probe_waits.sort_by(f64::total_cmp);

    println!(
        "{}",
        json!({
            "tasks": n,
            "workers": workers,
            "drain_seconds": drain.as_secs_f64(),
            "tasks_per_second": n as f64 / drain.as_secs_f64(),
            "queued_enqueue_to_start_ms": {"p50": percentile(&waits, 0.5), "p99": percentile(&waits, 0.99)},
            "probes": probes,
            "probe_enqueue_to_start_ms_behind_queue": {"p50": percentile(&probe_waits, 0.5), "p99": percentile(&probe_waits, 0.99)},
        })
    );
}
