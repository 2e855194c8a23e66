-- +goose Up
-- The message allowance: how many messages (recipients) an account may send
-- per minute, beside the requests its rate_limit counts. Existing accounts
-- get their plan's default (free 1,000, pro 10,000, enterprise 100,000).
ALTER TABLE accounts ADD COLUMN message_limit INTEGER NOT NULL DEFAULT 1000 CHECK (message_limit > 0);
UPDATE accounts SET message_limit = CASE plan WHEN 'pro' THEN 10000 WHEN 'enterprise' THEN 100000 ELSE 1000 END;

-- +goose Down
ALTER TABLE accounts DROP COLUMN message_limit;
