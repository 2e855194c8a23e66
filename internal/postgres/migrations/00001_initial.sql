-- +goose Up
-- The same schema as the SQLite store's migrations 00001 to 00006, in
-- PostgreSQL's terms. Times are Unix microseconds (UTC); identity columns
-- never reuse a value, so a deleted token's ID never names another later.
CREATE TABLE accounts (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name               TEXT   NOT NULL,
    plan               TEXT   NOT NULL CHECK (plan IN ('free', 'pro', 'enterprise')),
    rate_limit         BIGINT NOT NULL CHECK (rate_limit > 0),
    created_at         BIGINT NOT NULL,
    capture_sandbox_id BIGINT
);

CREATE TABLE resources (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    type       TEXT   NOT NULL CHECK (type IN ('project', 'sandbox', 'domain')),
    project_id BIGINT REFERENCES resources (id) ON DELETE CASCADE,
    name       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    CHECK ((type = 'sandbox') = (project_id IS NOT NULL))
);
CREATE INDEX resources_account ON resources (account_id, id);
CREATE INDEX resources_project ON resources (project_id) WHERE project_id IS NOT NULL;
CREATE UNIQUE INDEX resources_domain_name ON resources (account_id, name) WHERE type = 'domain';
ALTER TABLE accounts ADD FOREIGN KEY (capture_sandbox_id) REFERENCES resources (id) ON DELETE SET NULL;

CREATE TABLE api_tokens (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id   BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name         TEXT   NOT NULL,
    token_hash   BYTEA  NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    last4        TEXT   NOT NULL,
    environment  TEXT   NOT NULL CHECK (environment IN ('live', 'test')),
    created_by   TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    reset_at     BIGINT,
    last_used_at BIGINT
);
CREATE INDEX api_tokens_account ON api_tokens (account_id, id);
CREATE INDEX api_tokens_expires ON api_tokens (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE token_permissions (
    token_id      BIGINT  NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    resource_type TEXT    NOT NULL CHECK (resource_type IN ('account', 'project', 'sandbox', 'domain')),
    resource_id   BIGINT  NOT NULL,
    access_level  INTEGER NOT NULL CHECK (access_level IN (10, 100)),
    position      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (token_id, resource_type, resource_id)
);
CREATE INDEX token_permissions_resource ON token_permissions (resource_type, resource_id);

CREATE TABLE token_usage (
    token_id BIGINT NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    day      TEXT   NOT NULL,
    outcome  TEXT   NOT NULL CHECK (outcome IN ('success', 'client_error', 'rate_limited', 'server_error')),
    count    BIGINT NOT NULL CHECK (count >= 0),
    PRIMARY KEY (token_id, day, outcome)
);

CREATE TABLE audit_events (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id     BIGINT REFERENCES accounts (id) ON DELETE CASCADE,
    at             BIGINT NOT NULL,
    actor          TEXT   NOT NULL,
    actor_token_id BIGINT,
    action         TEXT   NOT NULL,
    target_type    TEXT   NOT NULL,
    target_id      BIGINT,
    client_addr    TEXT   NOT NULL,
    details        TEXT   NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_account ON audit_events (account_id, id);

CREATE TABLE token_networks (
    token_id   BIGINT NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    network    TEXT   NOT NULL,
    first_seen BIGINT NOT NULL,
    PRIMARY KEY (token_id, network)
);

CREATE TABLE auth_changes (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_id   BIGINT,
    account_id BIGINT,
    at         BIGINT NOT NULL,
    CHECK (token_id IS NOT NULL OR account_id IS NOT NULL)
);
CREATE INDEX auth_changes_at ON auth_changes (at);

CREATE TABLE outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            TEXT    NOT NULL,
    payload         BYTEA   NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at BIGINT  NOT NULL,
    lease_until     BIGINT,
    last_error      TEXT    NOT NULL DEFAULT '',
    created_at      BIGINT  NOT NULL,
    finished_at     BIGINT,
    CHECK ((state = 'pending') = (finished_at IS NULL))
);
CREATE INDEX outbox_due ON outbox (kind, next_attempt_at) WHERE state = 'pending';
CREATE INDEX outbox_finished ON outbox (finished_at) WHERE state <> 'pending';

CREATE TABLE domain_keys (
    domain_id   BIGINT PRIMARY KEY,
    account_id  BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    domain      TEXT   NOT NULL,
    selector    TEXT   NOT NULL,
    public_key  BYTEA  NOT NULL,
    private_key BYTEA  NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX domain_keys_account ON domain_keys (account_id);

CREATE TABLE emails (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id       BIGINT  NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    token_id         BIGINT  NOT NULL,
    domain_id        BIGINT,
    sandbox_id       BIGINT  REFERENCES resources (id) ON DELETE CASCADE,
    mail_from        TEXT    NOT NULL,
    from_email       TEXT    NOT NULL,
    from_name        TEXT    NOT NULL,
    to_email         TEXT    NOT NULL,
    to_name          TEXT    NOT NULL,
    subject          TEXT    NOT NULL,
    category         TEXT    NOT NULL,
    custom_variables TEXT    NOT NULL DEFAULT '{}',
    raw              BYTEA   NOT NULL,
    size             INTEGER NOT NULL,
    text_size        INTEGER NOT NULL,
    html_size        INTEGER NOT NULL,
    is_read          BOOLEAN NOT NULL DEFAULT false,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    CHECK (domain_id IS NOT NULL OR sandbox_id IS NOT NULL)
);
CREATE INDEX emails_sandbox ON emails (sandbox_id, id) WHERE sandbox_id IS NOT NULL;
CREATE INDEX emails_live ON emails (created_at) WHERE sandbox_id IS NULL;

CREATE TABLE messages (
    id         TEXT    PRIMARY KEY,
    email_id   BIGINT  NOT NULL REFERENCES emails (id) ON DELETE CASCADE,
    account_id BIGINT  NOT NULL,
    recipient  TEXT    NOT NULL,
    state      TEXT    NOT NULL CHECK (state IN ('queued', 'deferred', 'delivered', 'failed', 'captured')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT    NOT NULL DEFAULT '',
    created_at BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL
);
CREATE INDEX messages_email ON messages (email_id);

CREATE TABLE settings (
    name  TEXT  PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id    BIGINT  NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    email         TEXT    NOT NULL UNIQUE,
    name          TEXT    NOT NULL,
    role          INTEGER NOT NULL CHECK (role IN (10, 100)),
    password_hash TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL
);
CREATE INDEX users_account ON users (account_id, id);

CREATE TABLE sessions (
    id_hash      BYTEA  PRIMARY KEY CHECK (octet_length(id_hash) = 32),
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE invites (
    id_hash    BYTEA   PRIMARY KEY CHECK (octet_length(id_hash) = 32),
    account_id BIGINT  NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    role       INTEGER NOT NULL CHECK (role IN (10, 100)),
    created_at BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL
);

-- +goose Down
DROP TABLE invites, sessions, users, settings, messages, emails, domain_keys, outbox, auth_changes,
    token_networks, audit_events, token_usage, token_permissions, api_tokens, resources, accounts CASCADE;
