-- Model services: the desired state of what is served. `model` repeats
-- spec.model so that the registry can find the services of a model, and a
-- service's routed versions are read from spec.versions with json_each.
CREATE TABLE services (
    tenant TEXT NOT NULL REFERENCES tenants (name),
    name TEXT NOT NULL,
    model TEXT NOT NULL,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    spec TEXT NOT NULL,
    -- 1 on creation, one more on every change of spec.
    generation INTEGER NOT NULL DEFAULT 1 CHECK (generation >= 1),
    -- How many restarts were asked for, and the last one's time.
    restarts INTEGER NOT NULL DEFAULT 0,
    restarted_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE INDEX services_model ON services (tenant, model);
