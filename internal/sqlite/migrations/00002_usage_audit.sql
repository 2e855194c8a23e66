-- +goose Up
ALTER TABLE api_tokens ADD COLUMN last_used_at INTEGER;

-- Requests per token, UTC day and outcome, flushed in batches from memory.
CREATE TABLE token_usage (
    token_id INTEGER NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    day      TEXT    NOT NULL, -- YYYY-MM-DD, UTC
    outcome  TEXT    NOT NULL CHECK (outcome IN ('success', 'client_error', 'rate_limited', 'server_error')),
    count    INTEGER NOT NULL CHECK (count >= 0),
    PRIMARY KEY (token_id, day, outcome)
);

-- Every change, with who made it and from where. Events outlive the tokens
-- they name, so there are no foreign keys to tokens. account_id is NULL for
-- events that concern no single account (failed authentication from an address).
CREATE TABLE audit_events (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id     INTEGER REFERENCES accounts (id) ON DELETE CASCADE,
    at             INTEGER NOT NULL,
    actor          TEXT    NOT NULL,
    actor_token_id INTEGER,
    action         TEXT    NOT NULL,
    target_type    TEXT    NOT NULL,
    target_id      INTEGER,
    client_addr    TEXT    NOT NULL,
    details        TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_account ON audit_events (account_id, id);

-- The client networks each token has been used from, for new-network alerts.
CREATE TABLE token_networks (
    token_id   INTEGER NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    network    TEXT    NOT NULL,
    first_seen INTEGER NOT NULL,
    PRIMARY KEY (token_id, network)
);

-- +goose Down
DROP TABLE token_networks;
DROP TABLE audit_events;
DROP TABLE token_usage;
ALTER TABLE api_tokens DROP COLUMN last_used_at;
