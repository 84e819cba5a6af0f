-- Policies as code: every version of each tenant's policies. The current
-- policy is its highest version; a version without a spec is a deletion,
-- kept so that the history says who removed it.
CREATE TABLE policies (
    tenant TEXT NOT NULL REFERENCES tenants (name),
    name TEXT NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 1),
    spec TEXT,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (tenant, name, version)
);
