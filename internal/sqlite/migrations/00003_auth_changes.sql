-- +goose Up
-- Changes that affect authentication (a token deleted, edited or reset; an
-- account's resources or plan changed), written in the same transaction as
-- the change. Every tokend process polls it to evict what it has cached, so a
-- change made by another process (the CLI, another instance) reaches all of them.
CREATE TABLE auth_changes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    token_id   INTEGER,
    account_id INTEGER,
    at         INTEGER NOT NULL,
    CHECK (token_id IS NOT NULL OR account_id IS NOT NULL)
);
CREATE INDEX auth_changes_at ON auth_changes (at);

-- +goose Down
DROP TABLE auth_changes;
