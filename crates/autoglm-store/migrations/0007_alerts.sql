-- Alerts inside autoglm: rules, silences, incidents with their timelines,
-- notifications (with the dead letters), and playbook runs (for cooldowns
-- and hourly limits, counted in the write that starts a run).
CREATE TABLE alert_rules (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant, name)
);

CREATE TABLE silences (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    matchers TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    ends_at TEXT NOT NULL,
    comment TEXT NOT NULL,
    created_by TEXT NOT NULL
);

CREATE TABLE incidents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    rule TEXT NOT NULL,
    service TEXT NOT NULL,
    version TEXT NOT NULL,
    severity TEXT NOT NULL,
    labels TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('autoglm', 'alertmanager')),
    state TEXT NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
    opened_at TEXT NOT NULL,
    acknowledged_at TEXT,
    acknowledged_by TEXT,
    resolved_at TEXT
);
-- At most one incident per alert is not resolved.
CREATE UNIQUE INDEX incidents_live ON incidents (tenant, fingerprint) WHERE state != 'resolved';
CREATE INDEX incidents_by_service ON incidents (tenant, service, id);

CREATE TABLE incident_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    actor TEXT NOT NULL,
    task_id INTEGER
);
CREATE INDEX incident_events_of ON incident_events (incident_id, at, id);
-- The evaluator looks twice a second for playbook tasks whose end is not yet recorded.
CREATE INDEX incident_events_by_kind ON incident_events (kind, task_id);

CREATE TABLE notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    incident_id INTEGER REFERENCES incidents (id) ON DELETE SET NULL,
    url TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at TEXT NOT NULL,
    last_error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX notifications_due ON notifications (state, next_at);

CREATE TABLE playbook_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    rule TEXT NOT NULL,
    service TEXT NOT NULL,
    step TEXT NOT NULL,
    task_id INTEGER,
    incident_id INTEGER,
    at TEXT NOT NULL
);
CREATE INDEX playbook_runs_of ON playbook_runs (tenant, rule, service, at);
