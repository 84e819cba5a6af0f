-- Gateway limits, as JSON {requests_per_second, tokens_per_minute}; NULL is unlimited.
ALTER TABLE api_keys ADD COLUMN rate_limit TEXT;
ALTER TABLE tenants ADD COLUMN rate_limit TEXT;

-- What each credential sent to each service version, summed per minute.
-- `credential` is an API key id, or `user:NAME` for a session token.
CREATE TABLE usage (
    tenant TEXT NOT NULL REFERENCES tenants (name),
    minute TEXT NOT NULL,
    credential TEXT NOT NULL,
    service TEXT NOT NULL,
    version TEXT NOT NULL,
    requests INTEGER NOT NULL CHECK (requests >= 0),
    prompt_tokens INTEGER NOT NULL CHECK (prompt_tokens >= 0),
    completion_tokens INTEGER NOT NULL CHECK (completion_tokens >= 0),
    PRIMARY KEY (tenant, minute, credential, service, version)
);
