-- Policies as code: every version of each tenant's policies, and of the
-- global ones (tenant '', which no tenant can be named) that judge every
-- tenant. The current policy is its highest version; a version without a
-- spec is a deletion, kept so that the history says who removed it.
CREATE TABLE policies (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 1),
    spec TEXT,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (tenant, name, version)
);
