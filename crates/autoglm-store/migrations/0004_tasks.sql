-- Operations as durable tasks: the task scheduler's queue. A task is
-- written in the same transaction as the change it carries; the scheduler
-- claims the pending task with the lowest priority number (then the
-- oldest) whose target has no task running and whose not_before has come.
CREATE TABLE tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL REFERENCES tenants (name),
    kind TEXT NOT NULL,
    -- What it acts on, e.g. services/chat.
    target TEXT NOT NULL,
    priority INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    attempt INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts INTEGER NOT NULL CHECK (max_attempts >= 1),
    not_before TEXT NOT NULL,
    percent INTEGER NOT NULL DEFAULT 0 CHECK (percent BETWEEN 0 AND 100),
    message TEXT NOT NULL DEFAULT '',
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    -- JSON: the change it carries (generation, restarts, the service before).
    change TEXT NOT NULL,
    -- JSON, when it succeeded / the last failure.
    result TEXT,
    error TEXT,
    created_by TEXT NOT NULL,
    request_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT
);
CREATE INDEX tasks_queue ON tasks (state, priority, id);
CREATE INDEX tasks_tenant ON tasks (tenant, id);
CREATE INDEX tasks_target ON tasks (tenant, target, state);
