-- +goose Up
-- What each sandbox holds of captured mail, so that a send checks the
-- sandbox's quota without counting its emails. The triggers below keep it in
-- the transaction that adds or deletes captured mail, whichever way the mail
-- goes: deleted by a caller, evicted for the quota, pruned by the retention,
-- or with its sandbox, project or account (foreign-key cascades fire them too).
CREATE TABLE sandbox_usage (
    sandbox_id INTEGER PRIMARY KEY REFERENCES resources (id) ON DELETE CASCADE,
    emails     INTEGER NOT NULL CHECK (emails >= 0),
    bytes      INTEGER NOT NULL CHECK (bytes >= 0)
);
INSERT INTO sandbox_usage (sandbox_id, emails, bytes)
    SELECT sandbox_id, count(*), sum(size) FROM emails WHERE sandbox_id IS NOT NULL GROUP BY sandbox_id;

-- +goose StatementBegin
CREATE TRIGGER emails_captured_insert AFTER INSERT ON emails WHEN NEW.sandbox_id IS NOT NULL
BEGIN
    INSERT INTO sandbox_usage (sandbox_id, emails, bytes) VALUES (NEW.sandbox_id, 1, NEW.size)
        ON CONFLICT (sandbox_id) DO UPDATE SET emails = emails + 1, bytes = bytes + excluded.bytes;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER emails_captured_delete AFTER DELETE ON emails WHEN OLD.sandbox_id IS NOT NULL
BEGIN
    UPDATE sandbox_usage SET emails = emails - 1, bytes = bytes - OLD.size WHERE sandbox_id = OLD.sandbox_id;
END;
-- +goose StatementEnd

-- Captured mail past the retention, oldest first, without reading the mail.
CREATE INDEX emails_captured ON emails (created_at) WHERE sandbox_id IS NOT NULL;

-- +goose Down
DROP INDEX emails_captured;
DROP TRIGGER emails_captured_delete;
DROP TRIGGER emails_captured_insert;
DROP TABLE sandbox_usage;
