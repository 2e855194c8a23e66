-- +goose Up
-- Sends made under an idempotency key: the request's fingerprint and its
-- outcome, so that a retry within a day is answered as the first was.
CREATE TABLE idempotent_sends (
    account_id  BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    key         TEXT   NOT NULL,
    fingerprint BYTEA  NOT NULL,
    results     TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (account_id, key)
);
CREATE INDEX idempotent_sends_created ON idempotent_sends (created_at);

-- +goose Down
DROP TABLE idempotent_sends;
