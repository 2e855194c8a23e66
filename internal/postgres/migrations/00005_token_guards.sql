-- +goose Up
-- A token's own guards, as JSON written by the store: the networks it may be
-- used from, its rate limit below the plan's and its quota. NULL: none.
ALTER TABLE api_tokens ADD COLUMN guards TEXT;

-- What each token with a quota has spent of it in its current period (a
-- day or a month, starting at period_start, Unix microseconds UTC).
CREATE TABLE token_quota_usage (
    token_id     BIGINT PRIMARY KEY REFERENCES api_tokens (id) ON DELETE CASCADE,
    period_start BIGINT NOT NULL,
    used         BIGINT NOT NULL CHECK (used >= 0)
);

-- +goose Down
DROP TABLE token_quota_usage;
ALTER TABLE api_tokens DROP COLUMN guards;
