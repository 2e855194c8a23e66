-- +goose Up
-- Email events and suppressions. Messages are rebuilt (SQLite cannot change
-- a CHECK) to admit the suppressed state, and to carry their email's sending
-- domain and the indexes of the email logs' listing.
CREATE TABLE messages_new (
    id         TEXT    PRIMARY KEY,
    email_id   INTEGER NOT NULL REFERENCES emails (id) ON DELETE CASCADE,
    account_id INTEGER NOT NULL,
    domain_id  INTEGER,
    recipient  TEXT    NOT NULL,
    state      TEXT    NOT NULL CHECK (state IN ('queued', 'deferred', 'delivered', 'failed', 'captured', 'suppressed')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT    NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO messages_new (id, email_id, account_id, domain_id, recipient, state, attempts, last_error, created_at, updated_at)
    SELECT m.id, m.email_id, m.account_id, e.domain_id, m.recipient, m.state, m.attempts, m.last_error, m.created_at, m.updated_at
      FROM messages m JOIN emails e ON e.id = m.email_id;
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
CREATE INDEX messages_email ON messages (email_id);
-- The email logs: an account's messages newest first, and by recipient.
CREATE INDEX messages_log ON messages (account_id, email_id DESC, id DESC);
CREATE INDEX messages_recipient ON messages (account_id, lower(recipient));

-- What happened to each message after it was accepted, oldest first.
CREATE TABLE email_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT    NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    account_id INTEGER NOT NULL,
    type       TEXT    NOT NULL,
    details    TEXT    NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL
);
CREATE INDEX email_events_message ON email_events (message_id, id);

-- Addresses live mail is not relayed to: for one sending domain, or for
-- every domain of the account (domain_id NULL).
CREATE TABLE suppressions (
    id             TEXT    PRIMARY KEY,
    account_id     INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    email          TEXT    NOT NULL,
    domain_id      INTEGER REFERENCES resources (id) ON DELETE CASCADE,
    domain_name    TEXT    NOT NULL DEFAULT '',
    type           TEXT    NOT NULL,
    sending_stream TEXT    NOT NULL DEFAULT 'transactional',
    source         TEXT,
    created_at     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE UNIQUE INDEX suppressions_email ON suppressions (account_id, email, coalesce(domain_id, 0));
CREATE INDEX suppressions_account ON suppressions (account_id, created_at DESC);

-- +goose Down
DROP TABLE suppressions;
DROP TABLE email_events;
DROP INDEX messages_recipient;
DROP INDEX messages_log;
