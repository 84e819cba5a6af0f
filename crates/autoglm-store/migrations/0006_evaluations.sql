-- Evaluations of model versions: a JSONL dataset that an `evaluate` task
-- runs through the replicas of one version. What it measured is that
-- task's result; the row keeps what was asked, and the dataset, so that a
-- task resumed after a crash runs the same lines.
CREATE TABLE evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    model TEXT NOT NULL,
    version INTEGER NOT NULL,
    service TEXT NOT NULL,
    kind TEXT NOT NULL,
    samples INTEGER NOT NULL CHECK (samples >= 1),
    labelled INTEGER NOT NULL CHECK (labelled >= 0),
    concurrency INTEGER NOT NULL CHECK (concurrency >= 1),
    dataset TEXT NOT NULL,
    -- Set in the transaction that inserts the row.
    task_id INTEGER REFERENCES tasks (id),
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    FOREIGN KEY (tenant, model, version)
        REFERENCES model_versions (tenant, model, version) ON DELETE CASCADE
);
CREATE INDEX evaluations_version ON evaluations (tenant, model, version, id);
