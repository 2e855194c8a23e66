-- +goose Up
-- Jobs that share an ordering key are done one at a time, in the order they
-- were enqueued (a message's webhook deliveries to one endpoint).
ALTER TABLE outbox ADD COLUMN ordering_key TEXT;
CREATE INDEX outbox_ordering ON outbox (ordering_key, id) WHERE state = 'pending' AND ordering_key IS NOT NULL;

-- Endpoints that receive an account's email events, signed with a secret
-- sealed by the secrets key.
CREATE TABLE webhooks (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id         INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    url                TEXT    NOT NULL,
    event_types        TEXT    NOT NULL,
    domain_id          INTEGER REFERENCES resources (id) ON DELETE CASCADE,
    payload_format     TEXT    NOT NULL CHECK (payload_format IN ('json', 'jsonlines')),
    active             INTEGER NOT NULL,
    secret             BLOB    NOT NULL,
    failing_since      INTEGER,
    deactivated_at     INTEGER,
    deactivated_reason TEXT    NOT NULL DEFAULT '',
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);
CREATE INDEX webhooks_account ON webhooks (account_id, id);

-- Each event sent, or to be sent, to each endpoint.
CREATE TABLE webhook_deliveries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id  INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    account_id  INTEGER NOT NULL,
    event_id    INTEGER NOT NULL,
    message_id  TEXT    NOT NULL,
    event_type  TEXT    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_status INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id);
CREATE INDEX webhook_deliveries_final ON webhook_deliveries (updated_at) WHERE state <> 'pending';

-- +goose Down
DROP TABLE webhook_deliveries;
DROP TABLE webhooks;
DROP INDEX outbox_ordering;
ALTER TABLE outbox DROP COLUMN ordering_key;
