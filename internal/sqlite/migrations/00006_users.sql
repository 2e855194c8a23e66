-- +goose Up
-- People who sign in to the dashboard. Each belongs to one account with a
-- role on it (admin 100, viewer 10) and acts under the same rules as a token
-- with that permission. Passwords are stored as argon2id hashes only.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id    INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    email         TEXT    NOT NULL UNIQUE,
    name          TEXT    NOT NULL,
    role          INTEGER NOT NULL CHECK (role IN (10, 100)),
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX users_account ON users (account_id, id);

-- Signed-in sessions, kept server-side so that any instance can serve them.
-- Only the SHA-256 of the cookie's value is stored.
CREATE TABLE sessions (
    id_hash      BLOB    PRIMARY KEY CHECK (length(id_hash) = 32),
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_expires ON sessions (expires_at);

-- One-time links that let a person set up a user: the owner's on the first
-- start. Only the SHA-256 of the link's secret is stored.
CREATE TABLE invites (
    id_hash    BLOB    PRIMARY KEY CHECK (length(id_hash) = 32),
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    role       INTEGER NOT NULL CHECK (role IN (10, 100)),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;

-- +goose Down
DROP TABLE invites;
DROP TABLE sessions;
DROP TABLE users;
