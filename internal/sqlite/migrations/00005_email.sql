-- +goose Up
-- The DKIM key of each sending domain. The private key is sealed with the
-- server's secrets key: a copy of this file alone does not reveal it. Keys
-- are not deleted with their domain, so that mail accepted before can still
-- be signed; the purge removes them once no mail waits for them.
CREATE TABLE domain_keys (
    domain_id   INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    domain      TEXT    NOT NULL,
    selector    TEXT    NOT NULL,
    public_key  BLOB    NOT NULL,
    private_key BLOB    NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX domain_keys_account ON domain_keys (account_id);

-- Accepted email: live mail waiting for or done with delivery (sandbox_id NULL;
-- its raw content is dropped once every recipient's delivery is final), and
-- mail captured into a sandbox (sandbox_id set; deleted with the sandbox).
CREATE TABLE emails (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id       INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    token_id         INTEGER NOT NULL,
    domain_id        INTEGER,
    sandbox_id       INTEGER REFERENCES resources (id) ON DELETE CASCADE,
    mail_from        TEXT    NOT NULL,
    from_email       TEXT    NOT NULL,
    from_name        TEXT    NOT NULL,
    to_email         TEXT    NOT NULL,
    to_name          TEXT    NOT NULL,
    subject          TEXT    NOT NULL,
    category         TEXT    NOT NULL,
    custom_variables TEXT    NOT NULL DEFAULT '{}',
    raw              BLOB    NOT NULL,
    size             INTEGER NOT NULL,
    text_size        INTEGER NOT NULL,
    html_size        INTEGER NOT NULL,
    is_read          INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    CHECK (domain_id IS NOT NULL OR sandbox_id IS NOT NULL)
);
CREATE INDEX emails_sandbox ON emails (sandbox_id, id) WHERE sandbox_id IS NOT NULL;
CREATE INDEX emails_live ON emails (created_at) WHERE sandbox_id IS NULL;

-- One row per recipient of an email: what a message id names.
CREATE TABLE messages (
    id         TEXT    PRIMARY KEY,
    email_id   INTEGER NOT NULL REFERENCES emails (id) ON DELETE CASCADE,
    account_id INTEGER NOT NULL,
    recipient  TEXT    NOT NULL,
    state      TEXT    NOT NULL CHECK (state IN ('queued', 'deferred', 'delivered', 'failed', 'captured')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT    NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX messages_email ON messages (email_id);

-- The sandbox that catches an account's test-key sends, made on first use.
ALTER TABLE accounts ADD COLUMN capture_sandbox_id INTEGER REFERENCES resources (id) ON DELETE SET NULL;

-- Server-wide values, such as the check that tells whether the configured
-- secrets key is the one this database's secrets were sealed with.
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;

-- +goose Down
DROP TABLE settings;
ALTER TABLE accounts DROP COLUMN capture_sandbox_id;
DROP TABLE messages;
DROP TABLE emails;
DROP TABLE domain_keys;
