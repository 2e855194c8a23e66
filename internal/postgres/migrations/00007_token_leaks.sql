-- +goose Up
-- Tokens reported as published (by GitHub's secret scanning, say): one row
-- per value's hash and place, so that a report sent again changes nothing
-- and a revoked token is still recognised as a real one.
CREATE TABLE token_leaks (
    token_hash  BYTEA  NOT NULL CHECK (octet_length(token_hash) = 32),
    url         TEXT   NOT NULL,
    account_id  BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    token_id    BIGINT NOT NULL,
    reported_at BIGINT NOT NULL,
    PRIMARY KEY (token_hash, url)
);

-- +goose Down
DROP TABLE token_leaks;
