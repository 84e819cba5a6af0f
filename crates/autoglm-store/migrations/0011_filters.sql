-- Gateway filters: each tenant's uploaded proxy-wasm modules, and its
-- filter chain (JSON: [autoglm_core::filter::FilterRef]). A service's own
-- chain is in its spec.
CREATE TABLE filters (
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    module      BLOB NOT NULL,
    digest      TEXT NOT NULL,
    size        INTEGER NOT NULL,
    abi         TEXT NOT NULL,
    uploaded_by TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (tenant, name)
);

CREATE TABLE filter_chains (
    tenant     TEXT PRIMARY KEY,
    chain      TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
