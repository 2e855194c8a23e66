-- +goose Up
-- An account's token settings: the days before a token's expiry when
-- tokend warns (comma-separated, NULL for the default 7 and 1), and what a
-- leak reported by a secret scanner does: revoke the token, or notify only.
ALTER TABLE accounts ADD COLUMN expiry_warning_days TEXT;
ALTER TABLE accounts ADD COLUMN leak_policy TEXT NOT NULL DEFAULT 'revoke' CHECK (leak_policy IN ('revoke', 'notify'));

-- The expiry warnings raised, so that each is raised once, whatever the
-- restarts and instances: one row per token, threshold and expiry.
CREATE TABLE token_expiry_warnings (
    token_id   BIGINT NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    days       INTEGER NOT NULL,
    expires_at BIGINT NOT NULL,
    raised_at  BIGINT NOT NULL,
    PRIMARY KEY (token_id, days, expires_at)
);

-- +goose Down
DROP TABLE token_expiry_warnings;
ALTER TABLE accounts DROP COLUMN leak_policy;
ALTER TABLE accounts DROP COLUMN expiry_warning_days;
