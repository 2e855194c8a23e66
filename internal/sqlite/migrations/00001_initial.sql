-- +goose Up
-- Times are Unix microseconds (UTC). AUTOINCREMENT keeps IDs from ever being
-- reused, so a deleted token's ID never names a different token later.
CREATE TABLE accounts (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL,
    plan       TEXT    NOT NULL CHECK (plan IN ('free', 'pro', 'enterprise')),
    rate_limit INTEGER NOT NULL CHECK (rate_limit > 0),
    created_at INTEGER NOT NULL
);

CREATE TABLE resources (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    type       TEXT    NOT NULL CHECK (type IN ('project', 'sandbox', 'domain')),
    project_id INTEGER REFERENCES resources (id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    CHECK ((type = 'sandbox') = (project_id IS NOT NULL))
);
CREATE INDEX resources_account ON resources (account_id, id);
CREATE INDEX resources_project ON resources (project_id) WHERE project_id IS NOT NULL;
CREATE UNIQUE INDEX resources_domain_name ON resources (account_id, name) WHERE type = 'domain';

CREATE TABLE api_tokens (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id  INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    token_hash  BLOB    NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    last4       TEXT    NOT NULL,
    environment TEXT    NOT NULL CHECK (environment IN ('live', 'test')),
    created_by  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    reset_at    INTEGER
);
CREATE INDEX api_tokens_account ON api_tokens (account_id, id);
CREATE INDEX api_tokens_expires ON api_tokens (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE token_permissions (
    token_id      INTEGER NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    resource_type TEXT    NOT NULL CHECK (resource_type IN ('account', 'project', 'sandbox', 'domain')),
    resource_id   INTEGER NOT NULL,
    access_level  INTEGER NOT NULL CHECK (access_level IN (10, 100)),
    PRIMARY KEY (token_id, resource_type, resource_id)
);
CREATE INDEX token_permissions_resource ON token_permissions (resource_type, resource_id);

-- +goose Down
DROP TABLE token_permissions;
DROP TABLE api_tokens;
DROP TABLE resources;
DROP TABLE accounts;
