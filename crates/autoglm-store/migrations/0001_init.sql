-- Tenants, users, roles and API keys.
CREATE TABLE tenants (
    name TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);

CREATE TABLE users (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE memberships (
    username TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    tenant TEXT NOT NULL REFERENCES tenants (name),
    role TEXT NOT NULL CHECK (role IN ('viewer', 'developer', 'operator', 'admin')),
    PRIMARY KEY (username, tenant)
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL UNIQUE,
    name TEXT,
    username TEXT NOT NULL REFERENCES users (username),
    tenant TEXT NOT NULL REFERENCES tenants (name),
    scopes TEXT,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    last_used_at TEXT,
    revoked_at TEXT
);

-- The model registry.
CREATE TABLE models (
    tenant TEXT NOT NULL REFERENCES tenants (name),
    name TEXT NOT NULL,
    description TEXT,
    labels TEXT NOT NULL,
    next_version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant, name)
);

CREATE TABLE model_versions (
    tenant TEXT NOT NULL,
    model TEXT NOT NULL,
    version INTEGER NOT NULL,
    digest TEXT NOT NULL,
    size INTEGER NOT NULL,
    format TEXT NOT NULL,
    files TEXT NOT NULL,
    spec TEXT NOT NULL,
    stage TEXT NOT NULL CHECK (stage IN ('none', 'staging', 'production', 'archived')),
    source TEXT NOT NULL,
    storage_dir TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    stage_changed_at TEXT NOT NULL,
    PRIMARY KEY (tenant, model, version),
    FOREIGN KEY (tenant, model) REFERENCES models (tenant, name) ON DELETE CASCADE
);

-- The hash-chained audit log.
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    actor TEXT NOT NULL,
    tenant TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    request_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_log_tenant ON audit_log (tenant, seq);

-- First responses to POSTs with an Idempotency-Key, replayed on retries.
CREATE TABLE idempotency (
    principal TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    body BLOB NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (principal, key)
);

-- Nonces of commands, kept until their timestamp window has passed.
CREATE TABLE nonces (
    nonce TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);

-- Installation secrets (the JWT signing key).
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
