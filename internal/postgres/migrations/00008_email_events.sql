-- +goose Up
-- Email events and suppressions; messages admit the suppressed state, and
-- carry their email's sending domain and the indexes of the email logs.
ALTER TABLE messages DROP CONSTRAINT messages_state_check;
ALTER TABLE messages ADD CONSTRAINT messages_state_check
    CHECK (state IN ('queued', 'deferred', 'delivered', 'failed', 'captured', 'suppressed'));
ALTER TABLE messages ADD COLUMN domain_id BIGINT;
UPDATE messages m SET domain_id = e.domain_id FROM emails e WHERE e.id = m.email_id;
CREATE INDEX messages_log ON messages (account_id, email_id DESC, id DESC);
CREATE INDEX messages_recipient ON messages (account_id, lower(recipient));

CREATE TABLE email_events (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id TEXT   NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    account_id BIGINT NOT NULL,
    type       TEXT   NOT NULL,
    details    TEXT   NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL
);
CREATE INDEX email_events_message ON email_events (message_id, id);

CREATE TABLE suppressions (
    id             TEXT   PRIMARY KEY,
    account_id     BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    email          TEXT   NOT NULL,
    domain_id      BIGINT REFERENCES resources (id) ON DELETE CASCADE,
    domain_name    TEXT   NOT NULL DEFAULT '',
    type           TEXT   NOT NULL,
    sending_stream TEXT   NOT NULL DEFAULT 'transactional',
    source         TEXT,
    created_at     BIGINT NOT NULL
);
CREATE UNIQUE INDEX suppressions_email ON suppressions (account_id, email, coalesce(domain_id, 0));
CREATE INDEX suppressions_account ON suppressions (account_id, created_at DESC);

-- +goose Down
DROP TABLE suppressions;
DROP TABLE email_events;
DROP INDEX messages_recipient;
DROP INDEX messages_log;
ALTER TABLE messages DROP COLUMN domain_id;
ALTER TABLE messages DROP CONSTRAINT messages_state_check;
ALTER TABLE messages ADD CONSTRAINT messages_state_check
    CHECK (state IN ('queued', 'deferred', 'delivered', 'failed', 'captured'));
