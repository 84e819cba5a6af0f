//! The task scheduler's durable queue. A task enters in the transaction of
//! the change it carries ([`enqueue`]); every later state change (claimed,
//! retried, resumed, succeeded, failed, cancelled) is one audited write, so
//! the queue survives `kill -9` exactly as far as it was acknowledged.
//!
//! **Architecture Invariant:** at most one task per target runs at a time:
//! [`Store::claim_task`] never picks a task whose target has one running.

use autoglm_core::audit::AuditEvent;
use autoglm_core::error::ErrorCode;
use autoglm_core::task::{
    MAX_ATTEMPTS, ServiceChange, Task, TaskError, TaskKind, TaskProgress, TaskState,
};
use chrono::{DateTime, Utc};
use r2d2_sqlite::rusqlite::{self, Connection, OptionalExtension, Row};
use r2d2_sqlite::rusqlite::{params_from_iter, types::Value};

use crate::Transaction;
use crate::{Result, Store, StoreError, parse_json, services, timestamp};

const COLUMNS: &str = "id, tenant, kind, target, priority, state, attempt, max_attempts, not_before, \
    percent, message, cancel_requested, change, result, error, created_by, request_id, created_at, \
    started_at, finished_at";

fn conversion(e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
}

#[derive(Debug)]
struct Unknown(String);

impl std::fmt::Display for Unknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown {}", self.0)
    }
}

impl std::error::Error for Unknown {}

fn task(r: &Row<'_>) -> rusqlite::Result<Task> {
    let kind: String = r.get(2)?;
    let state: String = r.get(5)?;
    let optional_json = |i| -> rusqlite::Result<Option<String>> { r.get(i) };
    Ok(Task {
        id: r.get(0)?,
        tenant: r.get(1)?,
        kind: TaskKind::parse(&kind).ok_or_else(|| conversion(Unknown(format!("kind {kind}"))))?,
        target: r.get(3)?,
        priority: r.get(4)?,
        state: TaskState::parse(&state)
            .ok_or_else(|| conversion(Unknown(format!("state {state}"))))?,
        attempt: r.get(6)?,
        max_attempts: r.get(7)?,
        not_before: r.get(8)?,
        progress: TaskProgress {
            percent: r.get(9)?,
            message: r.get(10)?,
        },
        cancel_requested: r.get(11)?,
        change: parse_json(&r.get::<_, String>(12)?)?,
        result: optional_json(13)?.as_deref().map(parse_json).transpose()?,
        error: optional_json(14)?
            .as_deref()
            .map(parse_json::<StoredError>)
            .transpose()?
            .map(Into::into),
        created_by: r.get(15)?,
        request_id: r.get(16)?,
        created_at: r.get(17)?,
        started_at: r.get(18)?,
        finished_at: r.get(19)?,
    })
}

/// A [`TaskError`] as stored: with whether it was retryable, which the wire
/// form leaves out.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredError {
    code: String,
    message: String,
    #[serde(default)]
    retryable: bool,
}

impl From<StoredError> for TaskError {
    fn from(e: StoredError) -> TaskError {
        TaskError {
            code: e.code,
            message: e.message,
            retryable: e.retryable,
        }
    }
}

fn stored_error(e: &TaskError) -> Result<String> {
    json(&StoredError {
        code: e.code.clone(),
        message: e.message.clone(),
        retryable: e.retryable,
    })
}

fn json(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::rejected(ErrorCode::Internal, e.to_string()))
}

fn get(conn: &Connection, tenant: Option<&str>, id: i64) -> Result<Task> {
    let found = conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM tasks WHERE id = ?1"),
            [id],
            task,
        )
        .optional()?;
    match found {
        Some(t) if tenant.is_none_or(|tenant| t.tenant == tenant) => Ok(t),
        _ => Err(StoreError::rejected(
            ErrorCode::NotFound,
            format!("task {id} does not exist"),
        )),
    }
}

/// The settings key of the task scheduler's epoch: each scheduler that
/// starts takes the next one, and every state change a scheduler makes is
/// refused once a newer one has started, so a scheduler that lives on after
/// another took over (a zombie: a process thought dead, a write still in
/// flight when its process was replaced) cannot claim or end a task twice.
const EPOCH_KEY: &str = "task_scheduler_epoch";

fn current_epoch(conn: &Connection) -> Result<i64> {
    let epoch: Option<String> = conn
        .query_row(
            "SELECT value FROM settings WHERE key = ?1",
            [EPOCH_KEY],
            |r| r.get(0),
        )
        .optional()?;
    Ok(epoch.and_then(|e| e.parse().ok()).unwrap_or(0))
}

fn superseded(epoch: i64) -> StoreError {
    StoreError::rejected(
        ErrorCode::InvalidTransition,
        format!("task scheduler epoch {epoch} was superseded by a newer scheduler"),
    )
}

/// A task to add to the queue.
#[derive(Debug, Clone)]
pub struct NewTask {
    /// The tenant it acts in.
    pub tenant: String,
    /// What it does.
    pub kind: TaskKind,
    /// What it acts on, e.g. `services/chat`.
    pub target: String,
    /// The change it carries.
    pub change: ServiceChange,
    /// Who asked (the audit actor).
    pub created_by: String,
    /// The request that made it.
    pub request_id: String,
}

/// Adds a task to the queue inside the write of the change it carries.
pub fn enqueue(tx: &Transaction<'_>, new: &NewTask) -> Result<Task> {
    let now = timestamp(Utc::now());
    tx.execute(
        "INSERT INTO tasks (tenant, kind, target, priority, state, max_attempts, not_before, change,
             created_by, request_id, created_at, message)
         VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6, ?7, ?8, ?9, ?6, 'queued')",
        params_from_iter([
            Value::Text(new.tenant.clone()),
            Value::Text(new.kind.as_str().to_owned()),
            Value::Text(new.target.clone()),
            Value::Integer(new.kind.priority()),
            Value::Integer(i64::from(MAX_ATTEMPTS)),
            Value::Text(now),
            Value::Text(json(&new.change)?),
            Value::Text(new.created_by.clone()),
            Value::Text(new.request_id.clone()),
        ]),
    )?;
    get(tx, None, tx.last_insert_rowid())
}

/// The audit record of a state change the scheduler makes to `task`.
fn system_event(task: &Task, action: &str) -> AuditEvent {
    AuditEvent {
        time: timestamp(Utc::now()),
        actor: "system:tasks".to_owned(),
        tenant: task.tenant.clone(),
        action: format!("tasks.{action}"),
        target: format!("tasks/{}", task.id),
        request_id: task.request_id.clone(),
        outcome: String::new(),
    }
}

/// What a cancel did to the service its task had changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Restored {
    /// The service is back as it was before the task's change.
    Back,
    /// A later change superseded the task's: the service is left as that one set it.
    Superseded,
    /// The change needs no undoing (a restart that the platform carries on with).
    Nothing,
}

impl Restored {
    /// In words, for the task's progress message.
    fn describe(&self) -> &'static str {
        match self {
            Restored::Back => "cancelled: the service is back as it was before this task",
            Restored::Superseded => {
                "cancelled: a later change superseded this task's, so the service stays as that one set it"
            }
            Restored::Nothing => "cancelled: a restart already asked for is not undone",
        }
    }
}

/// Puts `task`'s service back as it was before the task's change, when the
/// service is still as that change left it.
fn restore(tx: &Transaction<'_>, task: &Task) -> Result<Restored> {
    let Some(name) = task.target.strip_prefix("services/") else {
        return Ok(Restored::Nothing);
    };
    if task.kind == TaskKind::Restart {
        return Ok(Restored::Nothing);
    }
    let current = services::find_service(tx, &task.tenant, name)?;
    let untouched = match (&current, task.kind) {
        // Nobody made a service of that name again since.
        (None, TaskKind::Delete) => true,
        (Some(s), kind) if kind != TaskKind::Delete => {
            task.change.committed_at.as_deref() == Some(timestamp(s.updated_at).as_str())
        }
        _ => false,
    };
    if !untouched {
        return Ok(Restored::Superseded);
    }
    match &task.change.before {
        None => services::delete_service(tx, &task.tenant, name)?,
        Some(before) if current.is_none() => {
            services::create_service(tx, &task.tenant, before)?;
        }
        Some(before) => {
            let mut manifest = before.clone();
            // Restored over whatever generation the change left.
            manifest.metadata.generation = None;
            services::update_service(tx, &task.tenant, &manifest)?;
        }
    }
    Ok(Restored::Back)
}

/// Which tasks to list.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    /// The tenant.
    pub tenant: String,
    /// Only tasks in this state.
    pub state: Option<TaskState>,
    /// Only tasks of this kind.
    pub kind: Option<TaskKind>,
    /// Only tasks acting on this target.
    pub target: Option<String>,
    /// Only tasks older than this id (the page token: newest first).
    pub before: Option<i64>,
    /// At most this many.
    pub limit: i64,
}

impl Store {
    /// One task of `tenant` (any tenant's when `None`).
    pub fn task(&self, tenant: Option<&str>, id: i64) -> Result<Task> {
        self.read(|c| get(c, tenant, id))
    }

    /// A page of tasks, newest first.
    pub fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<Task>> {
        self.read(|c| {
            let mut sql = format!("SELECT {COLUMNS} FROM tasks WHERE tenant = ?1");
            let mut args = vec![Value::Text(filter.tenant.clone())];
            let mut push = |sql: &mut String, column: &str, value: Value| {
                args.push(value);
                sql.push_str(&format!(" AND {column} ?{}", args.len()));
            };
            if let Some(state) = filter.state {
                push(&mut sql, "state =", Value::Text(state.as_str().to_owned()));
            }
            if let Some(kind) = filter.kind {
                push(&mut sql, "kind =", Value::Text(kind.as_str().to_owned()));
            }
            if let Some(target) = &filter.target {
                push(&mut sql, "target =", Value::Text(target.clone()));
            }
            if let Some(before) = filter.before {
                push(&mut sql, "id <", Value::Integer(before));
            }
            args.push(Value::Integer(filter.limit));
            sql.push_str(&format!(" ORDER BY id DESC LIMIT ?{}", args.len()));
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(params_from_iter(args), task)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Whether a cancel was asked for the task `id`.
    pub fn task_cancel_requested(&self, id: i64) -> Result<bool> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT cancel_requested FROM tasks WHERE id = ?1",
                [id],
                |r| r.get(0),
            )?)
        })
    }

    /// How many tasks are in each unfinished state, for `/metrics`.
    pub fn task_backlog(&self) -> Result<(i64, i64)> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT COALESCE(SUM(state = 'pending'), 0), COALESCE(SUM(state = 'running'), 0)
                 FROM tasks WHERE state IN ('pending', 'running')",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?)
        })
    }

    /// Starts the next task, if one is due: the pending task with the lowest
    /// priority number, then the oldest, whose target has no task running
    /// and whose `not_before` is not after `now`. Its attempt count goes up.
    /// Nothing, when `epoch` is no longer the scheduler's.
    pub fn claim_task(&self, epoch: i64, now: DateTime<Utc>) -> Result<Option<Task>> {
        self.system_write(|tx| {
            if current_epoch(tx)? != epoch {
                return Ok(None);
            }
            let next: Option<i64> = tx
                .query_row(
                    "SELECT t.id FROM tasks t
                     WHERE t.state = 'pending' AND t.not_before <= ?1
                       AND NOT EXISTS (SELECT 1 FROM tasks r WHERE r.state = 'running'
                                       AND r.tenant = t.tenant AND r.target = t.target)
                     ORDER BY t.priority, t.id LIMIT 1",
                    [timestamp(now)],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(id) = next else { return Ok(None) };
            tx.execute(
                "UPDATE tasks SET state = 'running', attempt = attempt + 1, started_at = ?1,
                     message = 'started' WHERE id = ?2",
                (timestamp(now), id),
            )?;
            let claimed = get(tx, None, id)?;
            let event = system_event(&claimed, "start");
            Ok(Some((claimed, event)))
        })
    }

    /// Records how far a running task got (not audited: progress is not a
    /// change of state).
    pub fn task_progress(&self, epoch: i64, id: i64, progress: &TaskProgress) -> Result<()> {
        self.bookkeeping(|tx| {
            if current_epoch(tx)? != epoch {
                return Err(superseded(epoch));
            }
            tx.execute(
                "UPDATE tasks SET percent = ?1, message = ?2 WHERE id = ?3 AND state = 'running'",
                (progress.percent.min(100), &progress.message, id),
            )?;
            Ok(())
        })
    }

    /// Ends a running task: succeeded with `result`, or failed with `error`.
    pub fn finish_task(
        &self,
        epoch: i64,
        id: i64,
        outcome: std::result::Result<serde_json::Value, TaskError>,
    ) -> Result<Task> {
        self.transition(epoch, id, |tx, task| {
            let now = timestamp(Utc::now());
            match &outcome {
                Ok(result) => tx.execute(
                    "UPDATE tasks SET state = 'succeeded', percent = 100, message = ?1,
                         result = ?2, error = NULL, finished_at = ?3 WHERE id = ?4",
                    (
                        result["message"].as_str().unwrap_or("done"),
                        json(result)?,
                        now,
                        id,
                    ),
                )?,
                Err(e) => tx.execute(
                    "UPDATE tasks SET state = 'failed', message = ?1, error = ?2, finished_at = ?3
                     WHERE id = ?4",
                    (e.to_string(), stored_error(e)?, now, id),
                )?,
            };
            let action = if outcome.is_ok() { "succeed" } else { "fail" };
            Ok(system_event(task, action))
        })
    }

    /// Puts a running task back in the queue for another attempt at `at`,
    /// with the error its attempt ended with.
    pub fn retry_task(
        &self,
        epoch: i64,
        id: i64,
        at: DateTime<Utc>,
        error: &TaskError,
    ) -> Result<Task> {
        self.transition(epoch, id, |tx, task| {
            tx.execute(
                "UPDATE tasks SET state = 'pending', not_before = ?1, error = ?2, message = ?3
                 WHERE id = ?4",
                (
                    timestamp(at),
                    stored_error(error)?,
                    format!(
                        "attempt {} failed; retrying at {}",
                        task.attempt,
                        timestamp(at)
                    ),
                    id,
                ),
            )?;
            Ok(system_event(task, "retry"))
        })
    }

    /// Starts a task scheduler: takes the next epoch (so that whatever an
    /// earlier scheduler still tries is refused), then puts every task left
    /// running back in the queue (its work is safe to run again: it carries
    /// a change to a platform that converges), or fails it as `interrupted`
    /// when it has no attempt left. Returns the epoch and the tasks as they
    /// are now.
    pub fn start_tasks(&self) -> Result<(i64, Vec<Task>)> {
        let epoch = self.bookkeeping(|tx| {
            let next = current_epoch(tx)? + 1;
            tx.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (EPOCH_KEY, next.to_string()),
            )?;
            Ok(next)
        })?;
        let running: Vec<i64> = self.read(|c| {
            let mut stmt = c.prepare_cached("SELECT id FROM tasks WHERE state = 'running'")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })?;
        let mut recovered = Vec::new();
        for id in running {
            recovered.push(self.transition(epoch, id, |tx, task| {
                if task.attempt >= task.max_attempts {
                    let e = TaskError::new(
                        "interrupted",
                        "autoglm stopped during the task's last attempt",
                    );
                    tx.execute(
                        "UPDATE tasks SET state = 'failed', message = ?1, error = ?2, finished_at = ?3
                         WHERE id = ?4",
                        (e.to_string(), stored_error(&e)?, timestamp(Utc::now()), id),
                    )?;
                    return Ok(system_event(task, "fail"));
                }
                tx.execute(
                    "UPDATE tasks SET state = 'pending', message = 'resumed after autoglm restarted'
                     WHERE id = ?1",
                    [id],
                )?;
                Ok(system_event(task, "resume"))
            })?);
        }
        Ok((epoch, recovered))
    }

    /// Ends a running task whose cancel was asked for: restores its service
    /// and marks it cancelled.
    pub fn cancel_running_task(&self, epoch: i64, id: i64) -> Result<Task> {
        self.transition(epoch, id, |tx, task| {
            let restored = restore(tx, task)?;
            mark_cancelled(tx, id, restored.describe())?;
            Ok(system_event(task, "cancel"))
        })
    }

    /// Runs `f` over the running task `id` in an audited write; `f` makes
    /// the transition and returns its audit record.
    fn transition(
        &self,
        epoch: i64,
        id: i64,
        f: impl FnOnce(&Transaction<'_>, &Task) -> Result<AuditEvent>,
    ) -> Result<Task> {
        let task = self.system_write(|tx| {
            if current_epoch(tx)? != epoch {
                return Err(superseded(epoch));
            }
            let task = get(tx, None, id)?;
            if task.state != TaskState::Running {
                return Err(StoreError::rejected(
                    ErrorCode::InvalidTransition,
                    format!("task {id} is {}, not running", task.state.as_str()),
                ));
            }
            let event = f(tx, &task)?;
            let after = get(tx, None, id)?;
            // The life cycle's rules, checked where every transition passes.
            if !task.state.may_become(after.state) {
                return Err(StoreError::rejected(
                    ErrorCode::Internal,
                    format!(
                        "task {id} may not go from {} to {}",
                        task.state.as_str(),
                        after.state.as_str()
                    ),
                ));
            }
            Ok(Some((after, event)))
        })?;
        task.ok_or_else(|| StoreError::rejected(ErrorCode::Internal, "transition lost its task"))
    }
}

fn mark_cancelled(tx: &Transaction<'_>, id: i64, message: &str) -> Result<()> {
    tx.execute(
        "UPDATE tasks SET state = 'cancelled', cancel_requested = 1, message = ?1, finished_at = ?2
         WHERE id = ?3",
        (message, timestamp(Utc::now()), id),
    )?;
    Ok(())
}

/// Whether `tenant` has a pending or running task of `kind` on `target`.
pub fn has_active(conn: &Connection, tenant: &str, target: &str, kind: TaskKind) -> Result<bool> {
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM tasks WHERE tenant = ?1 AND target = ?2 AND kind = ?3
                        AND state IN ('pending', 'running'))",
        (tenant, target, kind.as_str()),
        |r| r.get(0),
    )?)
}

/// Asks, inside a caller's write, for `tenant`'s task `id` to be cancelled:
/// a pending task is cancelled at once (its service restored), a running
/// one is marked and its worker stops it. A finished task is refused.
pub fn request_cancel(tx: &Transaction<'_>, tenant: &str, id: i64) -> Result<Task> {
    let task = get(tx, Some(tenant), id)?;
    match task.state {
        TaskState::Pending => {
            let restored = restore(tx, &task)?;
            mark_cancelled(tx, id, restored.describe())?;
        }
        TaskState::Running => {
            tx.execute(
                "UPDATE tasks SET cancel_requested = 1, message = 'cancelling' WHERE id = ?1",
                [id],
            )?;
        }
        done => {
            return Err(StoreError::rejected(
                ErrorCode::InvalidTransition,
                format!(
                    "task {id} is already {}; only a pending or running task can be cancelled",
                    done.as_str()
                ),
            ));
        }
    }
    get(tx, None, id)
}
