-- +goose Up
-- Tokens reported as published (by GitHub's secret scanning, say): one row
-- per value's hash and place, so that a report sent again changes nothing
-- and a revoked token is still recognised as a real one.
CREATE TABLE token_leaks (
    token_hash  BLOB    NOT NULL CHECK (length(token_hash) = 32),
    url         TEXT    NOT NULL,
    account_id  INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    token_id    INTEGER NOT NULL,
    reported_at INTEGER NOT NULL,
    PRIMARY KEY (token_hash, url)
);

-- +goose Down
DROP TABLE token_leaks;
