-- +goose Up
-- Messages carry the token that sent them and the events they had (a bit
-- each: delivery 1, soft_bounce 2, bounce 4, reject 8), and the email logs'
-- index covers what their listings and counts filter on, newest first, so
-- that neither reads the emails behind a page.
ALTER TABLE messages ADD COLUMN token_id INTEGER;
ALTER TABLE messages ADD COLUMN events INTEGER NOT NULL DEFAULT 0;
UPDATE messages SET token_id = (SELECT e.token_id FROM emails e WHERE e.id = messages.email_id);
UPDATE messages SET events = coalesce((SELECT sum(DISTINCT CASE ev.type WHEN 'delivery' THEN 1 WHEN 'soft_bounce' THEN 2
    WHEN 'bounce' THEN 4 WHEN 'reject' THEN 8 ELSE 0 END) FROM email_events ev WHERE ev.message_id = messages.id), 0);
DROP INDEX messages_log;
CREATE INDEX messages_log ON messages (account_id, created_at DESC, email_id DESC, id DESC, domain_id, token_id, state, events);

-- +goose Down
DROP INDEX messages_log;
CREATE INDEX messages_log ON messages (account_id, email_id DESC, id DESC);
ALTER TABLE messages DROP COLUMN events;
ALTER TABLE messages DROP COLUMN token_id;
