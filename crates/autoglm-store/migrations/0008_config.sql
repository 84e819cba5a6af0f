-- The config center: environments per tenant, immutable versions of keys,
-- the current version of each key, snapshots and change requests.

CREATE TABLE config_environments (
    tenant TEXT NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    protected INTEGER NOT NULL DEFAULT 0,
    is_default INTEGER NOT NULL DEFAULT 0,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant, name)
);

INSERT INTO config_environments (tenant, name, description, protected, is_default, created_by, created_at)
SELECT t.name, e.column1, e.column2, e.column3, e.column4, 'system', t.created_at
FROM tenants t CROSS JOIN (VALUES
    ('dev', 'Development', 0, 1),
    ('test', 'Testing', 0, 0),
    ('staging', 'Staging, the last stop before production', 0, 0),
    ('prod', 'Production: writes need config:protected or an approved request', 1, 0)
) e;

-- revision: one sequence for every version of every key, so watchers resume after one.
CREATE TABLE config_versions (
    revision INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    environment TEXT NOT NULL,
    grp TEXT NOT NULL,
    key TEXT NOT NULL,
    version INTEGER NOT NULL,
    format TEXT NOT NULL,
    content TEXT NOT NULL,
    md5 TEXT NOT NULL,
    author TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    UNIQUE (tenant, environment, grp, key, version),
    FOREIGN KEY (tenant, environment) REFERENCES config_environments(tenant, name) ON DELETE CASCADE
);

CREATE TABLE config_keys (
    tenant TEXT NOT NULL,
    environment TEXT NOT NULL,
    grp TEXT NOT NULL,
    key TEXT NOT NULL,
    revision INTEGER NOT NULL REFERENCES config_versions(revision),
    PRIMARY KEY (tenant, environment, grp, key)
);

CREATE TABLE config_snapshots (
    tenant TEXT NOT NULL,
    environment TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant, environment, name),
    FOREIGN KEY (tenant, environment) REFERENCES config_environments(tenant, name) ON DELETE CASCADE
);

CREATE TABLE config_snapshot_items (
    tenant TEXT NOT NULL,
    environment TEXT NOT NULL,
    snapshot TEXT NOT NULL,
    revision INTEGER NOT NULL REFERENCES config_versions(revision),
    PRIMARY KEY (tenant, environment, snapshot, revision),
    FOREIGN KEY (tenant, environment, snapshot)
        REFERENCES config_snapshots(tenant, environment, name) ON DELETE CASCADE
);

CREATE TABLE config_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    environment TEXT NOT NULL,
    source TEXT,
    message TEXT NOT NULL,
    changes TEXT NOT NULL,
    state TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    decided_by TEXT,
    decided_at TEXT,
    reason TEXT NOT NULL DEFAULT '',
    FOREIGN KEY (tenant, environment) REFERENCES config_environments(tenant, name) ON DELETE CASCADE
);

CREATE INDEX config_requests_by_environment ON config_requests(tenant, environment, state);
